//! Instances of the EC2 API: a boto3-launched instance is a host namespace
//! in its subnet, reached on a port from the template's database; its
//! groups changed by ModifyInstanceAttribute close it; terminated, its
//! namespace goes and DescribeInstances shows it `terminated`.
use std::process::Command;

use serde_json::Value;
use vpc_tests::{connects, fixture_path, peer_server, pyenv_python, text};

use super::{allow, aws, group, network, ok, run_instance, s, subnet, up, Instance, Network};

#[test]
fn a_boto3_instance_is_a_host_reached_closed_by_its_groups_and_gone_when_terminated() {
    let (d, url) = up("ec2inst");
    let Network { vpc, subnet, db_sg } = network(&d);
    let out = Command::new(pyenv_python())
        .arg(fixture_path("ec2_instances.py"))
        .args([&url, &vpc, &subnet, &db_sg])
        .output()
        .unwrap();
    assert!(out.status.success(), "ec2_instances.py: {}", text(&out));
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (id, ip) = (s(&made["instance"]), s(&made["ip"]));
    // The instance is a host as a template's: its namespace, by its
    // logical id (the id without the dash).
    let logical = id.replace('-', "");
    let ns = d.netns(&logical);
    assert!(
        std::path::Path::new("/run/netns").join(&ns).exists(),
        "{ns} missing"
    );
    let _server = peer_server(&ns, &format!("{ip}:7100"));
    assert!(
        connects(&d, "exec", "Db", &ip, 7100, 5),
        "the database reaches the instance on 7100 (its group allows the database's)"
    );
    assert!(
        !connects(&d, "exec", "Db", &ip, 7101, 1),
        "nothing else is allowed"
    );

    // The template's instance is described too, in its own reservation.
    let db = ok(
        &url,
        &[
            "describe-instances",
            "--filters",
            "Name=private-ip-address,Values=10.42.1.10",
        ],
    );
    let dbi = &db["Reservations"][0]["Instances"][0];
    assert_eq!(dbi["SubnetId"], subnet.as_str(), "{db}");
    assert_eq!(dbi["SecurityGroups"][0]["GroupId"], db_sg.as_str(), "{db}");
    let db_id = s(&dbi["InstanceId"]);
    let e = aws(&url, &["terminate-instances", "--instance-ids", &db_id]).unwrap_err();
    assert!(e.contains("(OperationNotPermitted)"), "{e}");

    // Its groups replaced by one without rules: new connections fail.
    ok(
        &url,
        &[
            "modify-instance-attribute",
            "--instance-id",
            &id,
            "--groups",
            &s(&made["closed"]),
        ],
    );
    let attr = ok(
        &url,
        &[
            "describe-instance-attribute",
            "--instance-id",
            &id,
            "--attribute",
            "groupSet",
        ],
    );
    assert_eq!(attr["Groups"][0]["GroupId"], made["closed"], "{attr}");
    assert!(!connects(&d, "exec", "Db", &ip, 7100, 1), "closed");
    ok(
        &url,
        &[
            "modify-instance-attribute",
            "--instance-id",
            &id,
            "--groups",
            &s(&made["group"]),
        ],
    );
    assert!(connects(&d, "exec", "Db", &ip, 7100, 5), "open again");

    // Terminated: shutting-down as AWS answers, its namespace gone, and
    // described as terminated.
    let t = ok(&url, &["terminate-instances", "--instance-ids", &id]);
    assert_eq!(
        t["TerminatingInstances"][0]["CurrentState"]["Name"], "shutting-down",
        "{t}"
    );
    assert_eq!(
        t["TerminatingInstances"][0]["PreviousState"]["Name"], "running",
        "{t}"
    );
    assert!(
        !std::path::Path::new("/run/netns").join(&ns).exists(),
        "{ns} still there"
    );
    assert!(!connects(&d, "exec", "Db", &ip, 7100, 1));
    let gone = ok(&url, &["describe-instances", "--instance-ids", &id]);
    let gi = &gone["Reservations"][0]["Instances"][0];
    assert_eq!(gi["State"]["Name"], "terminated", "{gone}");
    assert_eq!(gi["State"]["Code"], 48, "{gone}");
    assert!(gi.get("PrivateIpAddress").is_none(), "{gone}");
    let running = ok(
        &url,
        &[
            "describe-instances",
            "--filters",
            "Name=instance-state-name,Values=running",
        ],
    );
    let ids: Vec<&Value> = running["Reservations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["Instances"].as_array().unwrap())
        .map(|i| &i["InstanceId"])
        .collect();
    assert_eq!(ids, [&Value::String(db_id)], "{running}");
    let again = ok(&url, &["terminate-instances", "--instance-ids", &id]);
    assert_eq!(
        again["TerminatingInstances"][0]["CurrentState"]["Name"],
        "terminated"
    );

    // AWS's codes for ids that are not there or not ids.
    let e = aws(
        &url,
        &[
            "describe-instances",
            "--instance-ids",
            "i-0000000000000000a",
        ],
    )
    .unwrap_err();
    assert!(e.contains("(InvalidInstanceID.NotFound)"), "{e}");
    let e = aws(&url, &["terminate-instances", "--instance-ids", "web-1"]).unwrap_err();
    assert!(e.contains("(InvalidInstanceID.Malformed)"), "{e}");
}

/// StopInstances / StartInstances through the AWS CLI: a stopped instance
/// keeps its private address, loses the public one it was launched with,
/// its processes are killed and it does not answer; started again, it
/// answers at the same private address. EC2's `IncorrectInstanceState`.
#[test]
fn a_stopped_instance_does_not_answer_and_started_again_it_does_at_the_same_address() {
    let (d, url) = up("ec2stop");
    let Network { vpc, db_sg, .. } = network(&d);
    let subnet = subnet(&url, &vpc, "10.42.3.0/24");
    ok(
        &url,
        &[
            "modify-subnet-attribute",
            "--subnet-id",
            &subnet,
            "--map-public-ip-on-launch",
        ],
    );
    let sg = group(&url, &vpc, "app");
    allow(&url, &sg, "7500", &db_sg);
    let Instance { id, ip, ns, .. } = run_instance(&d, &url, &subnet, &sg, None);
    let describe = || {
        ok(&url, &["describe-instances", "--instance-ids", &id])["Reservations"][0]["Instances"][0]
            .clone()
    };
    assert!(
        describe().get("PublicIpAddress").is_some(),
        "{}",
        describe()
    );
    let _server = peer_server(&ns, &format!("{ip}:7500"));
    assert!(
        connects(&d, "exec", "Db", &ip, 7500, 5),
        "running, it answers"
    );
    // A process of the instance: killed when it stops.
    let mut sleeper = Command::new("ip")
        .args(["netns", "exec", &ns, "sleep", "600"])
        .spawn()
        .unwrap();

    let stopped = ok(&url, &["stop-instances", "--instance-ids", &id]);
    let change = &stopped["StoppingInstances"][0];
    assert_eq!(change["CurrentState"]["Name"], "stopping", "{stopped}");
    assert_eq!(change["PreviousState"]["Name"], "running", "{stopped}");
    let i = describe();
    assert_eq!(i["State"]["Name"], "stopped", "{i}");
    assert_eq!(
        i["PrivateIpAddress"],
        ip.as_str(),
        "it keeps its private address: {i}"
    );
    assert!(
        i.get("PublicIpAddress").is_none(),
        "its launch address went: {i}"
    );
    assert_eq!(
        i["NetworkInterfaces"][0]["PrivateIpAddress"],
        ip.as_str(),
        "{i}"
    );
    let st = ok(
        &url,
        &[
            "describe-instance-status",
            "--instance-ids",
            &id,
            "--include-all-instances",
        ],
    );
    assert_eq!(
        st["InstanceStatuses"][0]["InstanceState"]["Name"], "stopped",
        "{st}"
    );
    let running_only = ok(&url, &["describe-instance-status", "--instance-ids", &id]);
    assert_eq!(
        running_only["InstanceStatuses"].as_array().map(Vec::len),
        Some(0)
    );
    let status = (0..50)
        .find_map(|_| {
            let s = sleeper.try_wait().unwrap();
            if s.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            s
        })
        .expect("the instance's process was killed");
    assert!(!status.success(), "{status}");
    assert!(
        !connects(&d, "exec", "Db", &ip, 7500, 1),
        "a stopped instance does not answer"
    );
    for args in [
        ["reboot-instances", "--instance-ids", &id],
        ["stop-instances", "--instance-ids", &id],
    ] {
        let r = aws(&url, &args);
        if args[0] == "reboot-instances" {
            let e = r.unwrap_err();
            assert!(e.contains("(IncorrectInstanceState)"), "{e}");
        } else {
            let v = r.unwrap();
            assert_eq!(
                v["StoppingInstances"][0]["CurrentState"]["Name"], "stopped",
                "{v}"
            );
        }
    }

    let started = ok(&url, &["start-instances", "--instance-ids", &id]);
    let change = &started["StartingInstances"][0];
    assert_eq!(change["CurrentState"]["Name"], "pending", "{started}");
    assert_eq!(change["PreviousState"]["Name"], "stopped", "{started}");
    assert_eq!(describe()["State"]["Name"], "running");
    assert_eq!(describe()["PrivateIpAddress"], ip.as_str());
    assert!(
        connects(&d, "exec", "Db", &ip, 7500, 5),
        "started again, it answers at the same private address"
    );
    ok(&url, &["reboot-instances", "--instance-ids", &id]);

    ok(&url, &["terminate-instances", "--instance-ids", &id]);
    let e = aws(&url, &["start-instances", "--instance-ids", &id]).unwrap_err();
    assert!(e.contains("(IncorrectInstanceState)"), "{e}");
}

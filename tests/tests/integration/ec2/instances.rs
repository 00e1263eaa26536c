//! Instances of the EC2 API: a boto3-launched instance is a host namespace
//! in its subnet, reached on a port from the template's database; its
//! groups changed by ModifyInstanceAttribute close it; terminated, its
//! namespace goes and DescribeInstances shows it `terminated`.
use std::process::Command;

use serde_json::Value;
use vpc_tests::{connects, fixture_path, peer_server, pyenv_python, text};

use super::{aws, ok, s, up};

#[test]
fn a_boto3_instance_is_a_host_reached_closed_by_its_groups_and_gone_when_terminated() {
    let (d, url) = up("ec2inst");
    let vpc = vpc::ec2::ids::derived("vpc", &d.name, &d.name, "Vpc");
    let subnet = vpc::ec2::ids::derived("subnet", &d.name, &d.name, "DbSubnet");
    let db_sg = vpc::ec2::ids::derived("sg", &d.name, &d.name, "DbSg");
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

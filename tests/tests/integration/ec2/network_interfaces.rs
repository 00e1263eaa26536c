//! Network interfaces of the EC2 API: an instance's interface is listed by
//! DescribeNetworkInterfaces (attached at device index 0, refused by
//! DeleteNetworkInterface); an AWS CLI-made interface is a host namespace
//! in its subnet, `available`, reached from the template's database once
//! ModifyNetworkInterfaceAttribute gives it a group that allows it, and
//! gone with its namespace when deleted.
use serde_json::Value;
use vpc_tests::{connects, peer_server};

use super::{allow, aws, group, network, ok, s, up, Network};

/// The namespaces of `d` whose names start with `prefix`.
fn namespaces(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|r| {
            r.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

fn one(v: &Value) -> &Value {
    let list = v["NetworkInterfaces"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    &list[0]
}

#[test]
fn instances_interfaces_are_listed_and_an_api_interface_is_a_host_its_groups_open() {
    let (d, url) = up("ec2nic");
    let Network { vpc, subnet, db_sg } = network(&d);
    let db = vpc::ec2::ids::derived("i", &d.name, &d.name, "Db");

    // The template's instance: its interface, the one DescribeInstances shows.
    let inst = ok(&url, &["describe-instances", "--instance-ids", &db]);
    let eni =
        s(&inst["Reservations"][0]["Instances"][0]["NetworkInterfaces"][0]["NetworkInterfaceId"]);
    let by_instance = ok(
        &url,
        &[
            "describe-network-interfaces",
            "--filters",
            &format!("Name=attachment.instance-id,Values={db}"),
        ],
    );
    let n = one(&by_instance);
    assert_eq!(n["NetworkInterfaceId"], eni.as_str(), "{n}");
    assert_eq!(n["InterfaceType"], "interface", "{n}");
    assert_eq!(n["RequesterManaged"], false, "{n}");
    assert_eq!(n["Status"], "in-use", "{n}");
    assert_eq!(n["Attachment"]["InstanceId"], db.as_str(), "{n}");
    assert_eq!(n["Attachment"]["DeviceIndex"], 0, "{n}");
    assert_eq!(n["Attachment"]["Status"], "attached", "{n}");
    assert_eq!(n["PrivateIpAddress"], "10.42.1.10", "{n}");
    assert_eq!(n["PrivateIpAddresses"][0]["PrivateIpAddress"], "10.42.1.10");
    assert_eq!(n["Groups"][0]["GroupId"], db_sg.as_str(), "{n}");
    assert_eq!(n["Groups"][0]["GroupName"], "db", "{n}");
    assert_eq!(n["SubnetId"], subnet.as_str(), "{n}");
    assert_eq!(n["VpcId"], vpc.as_str(), "{n}");
    let by_ip = ok(
        &url,
        &[
            "describe-network-interfaces",
            "--filters",
            "Name=private-ip-address,Values=10.42.1.10",
            "Name=status,Values=in-use",
            "Name=requester-managed,Values=false",
        ],
    );
    assert_eq!(one(&by_ip)["NetworkInterfaceId"], eni.as_str());
    let e = aws(
        &url,
        &["delete-network-interface", "--network-interface-id", &eni],
    )
    .unwrap_err();
    assert!(
        e.contains("(InvalidParameterValue)") && e.contains("is currently in use"),
        "{e}"
    );

    // An interface of the API: available, a host namespace in its subnet.
    let made = ok(
        &url,
        &[
            "create-network-interface",
            "--subnet-id",
            &subnet,
            "--private-ip-address",
            "10.42.1.50",
            "--description",
            "appliance",
            "--tag-specifications",
            "ResourceType=network-interface,Tags=[{Key=Name,Value=appliance}]",
        ],
    );
    let m = &made["NetworkInterface"];
    let id = s(&m["NetworkInterfaceId"]);
    assert!(id.starts_with("eni-") && id != eni, "{made}");
    assert_eq!(m["Status"], "available", "{made}");
    assert!(m.get("Attachment").is_none(), "{made}");
    assert_eq!(m["Description"], "appliance", "{made}");
    assert_eq!(m["PrivateIpAddress"], "10.42.1.50", "{made}");
    assert_eq!(m["TagSet"][0]["Value"], "appliance", "{made}");
    // Without groups, the VPC's default group, as EC2 gives.
    let dflt = ok(
        &url,
        &[
            "describe-security-groups",
            "--filters",
            &format!("Name=vpc-id,Values={vpc}"),
            "Name=group-name,Values=default",
        ],
    );
    let dflt_sg = s(&dflt["SecurityGroups"][0]["GroupId"]);
    assert_eq!(m["Groups"][0]["GroupId"], dflt_sg.as_str(), "{made}");
    for filter in [
        "Name=description,Values=appl*".to_string(),
        "Name=status,Values=available".to_string(),
        "Name=tag:Name,Values=appliance".to_string(),
        format!("Name=group-id,Values={dflt_sg}"),
    ] {
        let found = ok(
            &url,
            &[
                "describe-network-interfaces",
                "--filters",
                &filter,
                &format!("Name=subnet-id,Values={subnet}"),
            ],
        );
        assert_eq!(one(&found)["NetworkInterfaceId"], id.as_str(), "{filter}");
    }
    let ns = namespaces(&format!("{}-eni", d.name));
    assert_eq!(ns.len(), 1, "{ns:?}");
    let ns = ns[0].clone();
    let _server = peer_server(&ns, "10.42.1.50:7200");
    assert!(
        !connects(&d, "exec", "Db", "10.42.1.50", 7200, 1),
        "the default group does not let the database in"
    );

    // A group that lets the database in on 7200: connections pass.
    let sg = group(&url, &vpc, "appliance");
    allow(&url, &sg, "7200", &db_sg);
    ok(
        &url,
        &[
            "modify-network-interface-attribute",
            "--network-interface-id",
            &id,
            "--groups",
            &sg,
        ],
    );
    assert!(
        connects(&d, "exec", "Db", "10.42.1.50", 7200, 5),
        "its new group lets the database in"
    );
    for args in [
        ["--no-source-dest-check"].as_slice(),
        &["--description", "Value=router"],
    ] {
        let mut a = vec![
            "modify-network-interface-attribute",
            "--network-interface-id",
            &id,
        ];
        a.extend_from_slice(args);
        ok(&url, &a);
    }
    let now = ok(
        &url,
        &[
            "describe-network-interfaces",
            "--network-interface-ids",
            &id,
        ],
    );
    let n = one(&now);
    assert_eq!(n["Groups"][0]["GroupId"], sg.as_str(), "{n}");
    assert_eq!(n["SourceDestCheck"], false, "{n}");
    assert_eq!(n["Description"], "router", "{n}");

    // Not attachable to an instance here: said so.
    let e = aws(
        &url,
        &[
            "attach-network-interface",
            "--network-interface-id",
            &id,
            "--instance-id",
            &db,
            "--device-index",
            "1",
        ],
    )
    .unwrap_err();
    assert!(e.contains("(UnsupportedOperation)"), "{e}");

    // Deleted: its namespace goes, and it is not there any more.
    ok(
        &url,
        &["delete-network-interface", "--network-interface-id", &id],
    );
    assert!(
        !std::path::Path::new("/run/netns").join(&ns).exists(),
        "{ns} still there"
    );
    let e = aws(
        &url,
        &[
            "describe-network-interfaces",
            "--network-interface-ids",
            &id,
        ],
    )
    .unwrap_err();
    assert!(e.contains("(InvalidNetworkInterfaceID.NotFound)"), "{e}");
    let e = aws(
        &url,
        &["delete-network-interface", "--network-interface-id", &id],
    )
    .unwrap_err();
    assert!(e.contains("(InvalidNetworkInterfaceID.NotFound)"), "{e}");
}

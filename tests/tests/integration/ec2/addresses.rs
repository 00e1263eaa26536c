//! Elastic IP associations through the AWS CLI: an Elastic IP associated
//! with an instance (its primary address) and another with a secondary
//! address of its interface are each reached from a host of the internet,
//! and the server sees that host; disassociated, they are not. EC2's
//! errors: no internet gateway, already associated, an unknown
//! association.
use vpc_tests::{connects, fixture, peer_server, text, Deployment};

use super::{
    allow, aws, group, internet_gateway, main_table, ok, refused, run_instance, s, subnet, up_from,
    Instance,
};

/// What the server at `ip:port` answers the internet host `Example`: the
/// address and port it saw the connection from.
fn seen_from(d: &Deployment, ip: &str, port: u16) -> String {
    let cmd = format!("echo hi | timeout 10 nc -w3 {ip} {port}");
    let out = d.vpc(&["exec", "Example", "--", "sh", "-c", &cmd]);
    text(&out)
}

#[test]
fn elastic_ips_associated_with_an_instance_and_a_secondary_address_reach_it_until_disassociated() {
    let (d, url) = up_from("ec2eip", fixture!("ec2/internet.yaml"), &[]);
    let vpc = vpc::ec2::ids::derived("vpc", &d.name, &d.name, "Vpc");
    let subnet = subnet(&url, &vpc, "10.43.1.0/24");
    let sg = group(&url, &vpc, "web");
    allow(&url, &sg, "7400", "0.0.0.0/0");
    let Instance { id, eni, ns, .. } = run_instance(&d, &url, &subnet, &sg, Some("10.43.1.10"));
    let alloc = |_: ()| {
        let a = ok(&url, &["allocate-address", "--domain", "vpc"]);
        (s(&a["AllocationId"]), s(&a["PublicIp"]))
    };
    let (eip1, ip1) = alloc(());
    let (eip2, ip2) = alloc(());
    let associate = ["associate-address", "--allocation-id"];
    refused(
        aws(
            &url,
            &[&associate[..], &[&eip1, "--instance-id", &id]].concat(),
        ),
        "Gateway.NotAttached",
    );

    // An internet gateway and the default route through it.
    internet_gateway(&url, &vpc, &main_table(&url, &vpc));

    // The first Elastic IP to the instance: its primary address.
    let a1 = s(&ok(
        &url,
        &[&associate[..], &[&eip1, "--instance-id", &id]].concat(),
    )["AssociationId"]);
    assert!(a1.starts_with("eipassoc-"), "{a1}");
    let d1 = ok(&url, &["describe-addresses", "--allocation-ids", &eip1]);
    let addr = &d1["Addresses"][0];
    assert_eq!(addr["AssociationId"], a1.as_str(), "{d1}");
    assert_eq!(addr["InstanceId"], id.as_str(), "{d1}");
    assert_eq!(addr["NetworkInterfaceId"], eni.as_str(), "{d1}");
    assert_eq!(addr["PrivateIpAddress"], "10.43.1.10", "{d1}");
    let di = ok(&url, &["describe-instances", "--instance-ids", &id]);
    assert_eq!(
        di["Reservations"][0]["Instances"][0]["PublicIpAddress"],
        ip1.as_str(),
        "{di}"
    );
    let _primary = peer_server(&ns, "10.43.1.10:7400");
    let seen = seen_from(&d, &ip1, 7400);
    assert!(
        seen.starts_with("203.0.113.10:"),
        "the server sees the internet host: {seen}"
    );

    // The second to a secondary address of its interface.
    ok(
        &url,
        &[
            "assign-private-ip-addresses",
            "--network-interface-id",
            &eni,
            "--private-ip-addresses",
            "10.43.1.20",
        ],
    );
    let on_secondary = [
        "--network-interface-id",
        &eni,
        "--private-ip-address",
        "10.43.1.20",
    ];
    refused(
        aws(
            &url,
            &[&associate[..], &[&eip1], &on_secondary[..]].concat(),
        ),
        "Resource.AlreadyAssociated",
    );
    let a2 = s(&ok(
        &url,
        &[&associate[..], &[&eip2], &on_secondary[..]].concat(),
    )["AssociationId"]);
    let by_private = ok(
        &url,
        &[
            "describe-addresses",
            "--filters",
            "Name=private-ip-address,Values=10.43.1.20",
        ],
    );
    assert_eq!(by_private["Addresses"][0]["AssociationId"], a2.as_str());
    let _secondary = peer_server(&ns, "10.43.1.20:7400");
    let seen = seen_from(&d, &ip2, 7400);
    assert!(seen.starts_with("203.0.113.10:"), "{seen}");
    let nic = ok(
        &url,
        &[
            "describe-network-interfaces",
            "--network-interface-ids",
            &eni,
        ],
    );
    let ips = &nic["NetworkInterfaces"][0]["PrivateIpAddresses"];
    assert_eq!(ips[1]["Association"]["PublicIp"], ip2.as_str(), "{nic}");

    // Disassociated: the Elastic IP no longer reaches the instance.
    ok(&url, &["disassociate-address", "--association-id", &a1]);
    assert!(
        !connects(&d, "exec", "Example", &ip1, 7400, 1),
        "a disassociated Elastic IP is nobody's"
    );
    let seen = seen_from(&d, &ip2, 7400);
    assert!(seen.starts_with("203.0.113.10:"), "the other stays: {seen}");
    let d1 = ok(&url, &["describe-addresses", "--allocation-ids", &eip1]);
    assert!(d1["Addresses"][0].get("AssociationId").is_none(), "{d1}");
    refused(
        aws(&url, &["disassociate-address", "--association-id", &a1]),
        "InvalidAssociationID.NotFound",
    );
    // AllowReassociation moves the second to the primary address.
    ok(
        &url,
        &[
            &associate[..],
            &[&eip2, "--instance-id", &id, "--allow-reassociation"],
        ]
        .concat(),
    );
    let seen = seen_from(&d, &ip2, 7400);
    assert!(seen.starts_with("203.0.113.10:"), "{seen}");
    let d2 = ok(&url, &["describe-addresses", "--allocation-ids", &eip2]);
    assert_eq!(d2["Addresses"][0]["PrivateIpAddress"], "10.43.1.10", "{d2}");
}

//! Secondary private addresses through the AWS CLI: one assigned to an
//! instance's interface is on its namespace's `eth0` and reached from the
//! template's database in another subnet, with the interface's groups;
//! unassigned, it is not. CreateNetworkInterface's
//! `SecondaryPrivateIpAddressCount`, AllowReassignment and EC2's errors.
use std::process::Command;

use serde_json::Value;
use vpc_tests::{connects, peer_server, text};

use super::{
    allow, aws, group, network, ok, refused, run_instance, s, subnet, up, Instance, Network,
};

/// The private addresses DescribeNetworkInterfaces lists for `eni`, each
/// with its `Primary`.
fn addresses(url: &str, eni: &str) -> Vec<(String, bool)> {
    let v = ok(
        url,
        &[
            "describe-network-interfaces",
            "--network-interface-ids",
            eni,
        ],
    );
    v["NetworkInterfaces"][0]["PrivateIpAddresses"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|a| (s(&a["PrivateIpAddress"]), a["Primary"] == true))
        .collect()
}

/// `ip` is on `eth0` of namespace `ns`.
fn on_eth0(ns: &str, ip: &str) -> bool {
    let out = Command::new("ip")
        .args(["-n", ns, "-4", "addr", "show", "dev", "eth0"])
        .output()
        .unwrap();
    text(&out).contains(&format!("inet {ip}/32"))
}

/// Assign- or UnassignPrivateIpAddresses (`verb`) of `eni`, with `args`.
fn change(url: &str, verb: &str, eni: &str, args: &[&str]) -> Result<Value, String> {
    let action = format!("{verb}-private-ip-addresses");
    aws(
        url,
        &[&[action.as_str(), "--network-interface-id", eni], args].concat(),
    )
}

#[test]
fn a_secondary_address_is_reached_with_its_interfaces_groups_until_unassigned() {
    let (d, url) = up("ec2ips");
    let Network { vpc, db_sg, .. } = network(&d);
    let subnet = subnet(&url, &vpc, "10.42.2.0/24");
    let sg = group(&url, &vpc, "app");
    allow(&url, &sg, "7300", &db_sg);
    let Instance { eni, ns, .. } = run_instance(&d, &url, &subnet, &sg, Some("10.42.2.10"));

    let assigned = change(
        &url,
        "assign",
        &eni,
        &["--private-ip-addresses", "10.42.2.77"],
    )
    .unwrap();
    assert_eq!(
        assigned["AssignedPrivateIpAddresses"][0]["PrivateIpAddress"], "10.42.2.77",
        "{assigned}"
    );
    assert_eq!(
        addresses(&url, &eni),
        [("10.42.2.10".into(), true), ("10.42.2.77".into(), false)]
    );
    let by_ip = ok(
        &url,
        &[
            "describe-network-interfaces",
            "--filters",
            "Name=addresses.private-ip-address,Values=10.42.2.77",
        ],
    );
    assert_eq!(
        by_ip["NetworkInterfaces"][0]["NetworkInterfaceId"],
        eni.as_str()
    );
    assert!(on_eth0(&ns, "10.42.2.77"), "the namespace has it");
    let _server = peer_server(&ns, "10.42.2.77:7300");
    assert!(
        connects(&d, "exec", "Db", "10.42.2.77", 7300, 5),
        "the database reaches the secondary address (the interface's group allows it)"
    );
    assert!(
        !connects(&d, "exec", "Db", "10.42.2.77", 7301, 1),
        "the interface's group holds for it: nothing else is allowed"
    );

    // EC2's errors.
    let assign = |ip: &str, code: &str| {
        refused(
            change(&url, "assign", &eni, &["--private-ip-addresses", ip]),
            code,
        );
    };
    assign("10.42.1.77", "InvalidParameterValue");
    assign("10.42.2.3", "InvalidParameterValue");
    refused(
        change(
            &url,
            "unassign",
            &eni,
            &["--private-ip-addresses", "10.42.2.78"],
        ),
        "InvalidParameterValue",
    );
    refused(
        change(
            &url,
            "assign",
            &eni,
            &["--secondary-private-ip-address-count", "40"],
        ),
        "PrivateIpAddressLimitExceeded",
    );

    // Unassigned: off the namespace, and not reached any more.
    change(
        &url,
        "unassign",
        &eni,
        &["--private-ip-addresses", "10.42.2.77"],
    )
    .unwrap();
    assert_eq!(addresses(&url, &eni), [("10.42.2.10".into(), true)]);
    assert!(!on_eth0(&ns, "10.42.2.77"), "the namespace lost it");
    assert!(
        !connects(&d, "exec", "Db", "10.42.2.77", 7300, 1),
        "an unassigned address is nobody's"
    );

    // A standalone interface with two secondary addresses picked by EC2.
    let made = ok(
        &url,
        &[
            "create-network-interface",
            "--subnet-id",
            &subnet,
            "--secondary-private-ip-address-count",
            "2",
        ],
    );
    let other = s(&made["NetworkInterface"]["NetworkInterfaceId"]);
    let listed = addresses(&url, &other);
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(listed.iter().filter(|(_, p)| *p).count(), 1, "{listed:?}");
    // One of them taken by the instance's interface: in use, unless
    // reassigned; then it moves.
    let taken = listed[1].0.clone();
    assign(&taken, "InvalidIPAddress.InUse");
    assign(&listed[0].0, "InvalidIPAddress.InUse");
    let reassign = ["--private-ip-addresses", &taken, "--allow-reassignment"];
    change(&url, "assign", &eni, &reassign).unwrap();
    assert_eq!(
        addresses(&url, &eni),
        [("10.42.2.10".into(), true), (taken.clone(), false)]
    );
    assert_eq!(
        addresses(&url, &other),
        [listed[0].clone(), listed[2].clone()]
    );
    assert!(on_eth0(&ns, &taken), "the instance's namespace has it now");
    // By count on the instance: the lowest free addresses.
    let counted = change(
        &url,
        "assign",
        &eni,
        &["--secondary-private-ip-address-count", "2"],
    )
    .unwrap();
    assert_eq!(
        counted["AssignedPrivateIpAddresses"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "{counted}"
    );
}

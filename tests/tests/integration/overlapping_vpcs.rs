//! Separate VPCs with the same block in one deployment, as at AWS: each
//! is an address space of its own on the router.
use std::{
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    time::Duration,
};

use vpc_tests::{fixture, peer_server, spawn_in_netns, text, Deployment, FAST};

const TEMPLATE: &str = fixture!("overlapping_vpcs.yaml");

/// The address a `peer_server` at `to` saw for a connection from function
/// `f`'s execution environment (it answers with it); `None`: no answer.
fn seen_from(d: &Deployment, f: &str, to: &str) -> Option<String> {
    let to = to.parse().unwrap();
    spawn_in_netns(&d.exec_env_netns(f), move || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        s.write_all(b"who\n").ok()?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).ok()?;
        Some(line.trim().rsplit_once(':')?.0.to_string())
    })
    .join()
    .unwrap()
}

/// Two VPCs of 10.0.0.0/16, a database at 10.0.2.10 in each and a
/// function in each: each function reaches its own VPC's database (which
/// sees the function's ENI, at the same address in both VPCs) and never
/// the other's; both reach the internet through their own NAT gateway
/// (two public addresses); conntrack tells the connections apart by VPC;
/// a peering of the two is refused.
#[test]
fn overlapping_vpcs_stay_apart_end_to_end() {
    let d = Deployment::up("ovl", TEMPLATE, FAST);
    let (eni1, eni2) = (d.eni_address("Private1"), d.eni_address("Private2"));
    assert_eq!(eni1, eni2, "the first free address of each VPC's subnet");
    let db = "10.0.2.10:5432";
    let db1 = peer_server(&d.netns("Db1"), db);
    let db2 = peer_server(&d.netns("Db2"), db);
    let example = peer_server(&d.netns("Example"), "203.0.113.10:80");
    assert_eq!(seen_from(&d, "Fn1", db).as_deref(), Some(eni1.as_str()));
    assert_eq!(seen_from(&d, "Fn2", db).as_deref(), Some(eni2.as_str()));
    let public1 = seen_from(&d, "Fn1", "203.0.113.10:80").expect("Fn1 reaches the internet");
    let public2 = seen_from(&d, "Fn2", "203.0.113.10:80").expect("Fn2 reaches the internet");
    assert_ne!(public1, public2, "each through its own NAT gateway");
    assert!(public1.starts_with("198.51.100.") && public2.starts_with("198.51.100."));
    // Each database answered exactly its own VPC's function.
    assert_eq!((db1.stop(), db2.stop(), example.stop()), (1, 1, 2));
    // conntrack: the two database connections, same tuples but for the
    // execution environment's address, each in its VPC through its ENI.
    let out = d.vpc(&["conntrack", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut to_db: Vec<(String, String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["original"]["dport"] == 5432)
        .map(|c| {
            assert_eq!(c["reply"]["src"], "10.0.2.10", "{c}");
            assert_eq!(c["reply"]["dst"].as_str().unwrap(), eni1, "{c}");
            let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            (s(&c["vpc"]), s(&c["eni"]), s(&c["original"]["src"]))
        })
        .collect();
    to_db.sort();
    assert_eq!(to_db.len(), 2, "{rows}");
    assert_eq!((to_db[0].0.as_str(), to_db[1].0.as_str()), ("One", "Two"));
    assert_ne!(to_db[0].1, to_db[1].1, "two ENIs: {to_db:?}");
    assert_ne!(to_db[0].2, to_db[1].2, "two execution environments");
    // A peering between them: refused, naming both blocks.
    let peering = "  Peering: {Type: AWS::EC2::VPCPeeringConnection, Properties: {VpcId: !Ref One, PeerVpcId: !Ref Two}}\n";
    let out = d.try_apply(&format!("{TEMPLATE}{peering}"));
    assert!(!out.status.success());
    let err = text(&out);
    assert!(
        err.contains(
            "the CIDR '10.0.0.0/16' of VPC One overlaps the CIDR '10.0.0.0/16' of VPC Two"
        ),
        "{err}"
    );
    // Nothing changed: each function still reaches its own database only.
    let db1 = peer_server(&d.netns("Db1"), db);
    assert_eq!(seen_from(&d, "Fn1", db).as_deref(), Some(eni1.as_str()));
    assert_eq!(db1.stop(), 1);
}

//! The agent adds ENIs as a group fills, up to the subnet's addresses and the group's limit.
use vpc_tests::{fixture, text, wait_for, Deployment};

use super::{open_connections, tcp_holder};

/// ENIs of 10 ports: 8 connections put the first at 80%, the agent adds
/// a second ENI of the same (subnet, groups) with the subnet's next
/// address, and the next connections, which the first cannot all take,
/// land on it. The database's group admits it (its rule references the
/// Lambda group, whose members now include the new address).
#[test]
fn the_agent_adds_an_eni_when_the_group_fills_and_connections_land_on_it() {
    let d = Deployment::up(
        "e2ew",
        "default",
        &[
            "--eni-delay",
            "100ms",
            "--wait",
            "--eni-capacity",
            "10",
            "--eni-return-delay",
            "2s",
            "--timeout",
            "tcp-closing=1",
            "--timeout",
            "tcp-closed=1",
        ],
    );
    let server = tcp_holder(&d.netns("DatabaseInstance"), "10.0.1.10:5432");
    let mut held = open_connections(&d, "OrdersFunction", "10.0.1.10:5432", 8, 30);
    assert_eq!(held.len(), 8);
    let in_a = |l: &Vec<serde_json::Value>| {
        l.iter()
            .filter(|e| e["subnet"] == "PrivateSubnetA")
            .cloned()
            .collect::<Vec<_>>()
    };
    wait_for("a second ENI in PrivateSubnetA", 60, || {
        in_a(&d.eni_list()).len() == 2
    });
    held.extend(open_connections(
        &d,
        "OrdersFunction",
        "10.0.1.10:5432",
        8,
        30,
    ));
    assert_eq!(held.len(), 16, "every connection opened");
    let enis = in_a(&d.eni_list());
    let (first, second) = (&enis[0], &enis[1]);
    assert_eq!(first["scaled"], false);
    assert_eq!(second["scaled"], true);
    assert_eq!(second["group"], first["id"]);
    assert_eq!(second["subnet"], "PrivateSubnetA");
    assert_eq!(second["security_groups"], first["security_groups"]);
    assert_eq!(second["capacity"], 10);
    let (a, b) = (
        first["connections"].as_u64().unwrap(),
        second["connections"].as_u64().unwrap(),
    );
    assert_eq!(a + b, 16, "{enis:?}");
    assert!(a <= 10 && b >= 6, "{enis:?}");
    let second_ip = second["address"].as_str().unwrap();
    // The state records the ENI: what a restarted agent and `down` see.
    let state = serde_json::to_value(vpc::deploy::State::load(&d.name).unwrap()).unwrap();
    assert!(state["model"]["enis"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["ip"] == second_ip && e["scaled"] == true));
    // Both ends close: the connections are collected.
    drop(held);
    let peers = server.stop();
    assert!(
        peers.iter().any(|p| p.ip().to_string() == second_ip),
        "the database saw {peers:?}"
    );
    let s = d.status();
    assert_eq!(s["functions"][0]["state"], "Active");
    assert_eq!(
        s["nat"]["failed"].as_u64(),
        Some(
            s["counters"]["dropped"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r[0] == "nat_port_exhausted")
                .unwrap()[1]
                .as_u64()
                .unwrap()
        )
    );
    // Every connection closed and collected: the added ENI, drained for the
    // return delay, is returned; the group's first stays.
    wait_for("the drained ENI returned", 60, || {
        let l = in_a(&d.eni_list());
        l.len() == 1 && l[0]["id"] == first["id"]
    });
    let state = serde_json::to_value(vpc::deploy::State::load(&d.name).unwrap()).unwrap();
    assert!(!state["model"]["enis"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["ip"] == second_ip));
}

/// The function's subnet is a /28 whose 11 usable addresses are taken (10
/// interfaces and the ENI): at 80% of its 4 ports the agent finds no
/// address for a second ENI, the function reports SubnetOutOfIPAddresses,
/// and connections that find no port are dropped and counted.
#[test]
fn a_full_subnet_reports_subnet_out_of_ip_addresses_and_drops_what_finds_no_port() {
    let mut t = String::from(fixture!("small_subnet.yaml"));
    for i in 0..10 {
        t += &format!(
            "  If{i}: {{Type: AWS::EC2::NetworkInterface, Properties: {{SubnetId: !Ref Small, GroupSet: [!Ref FnSg]}}}}\n"
        );
    }
    let d = Deployment::up(
        "e2ex",
        &t,
        &["--eni-delay", "100ms", "--wait", "--eni-capacity", "4"],
    );
    let server = tcp_holder(&d.netns("Db"), "10.0.2.10:5432");
    let held = open_connections(&d, "Fn", "10.0.2.10:5432", 4, 30);
    assert_eq!(held.len(), 4);
    wait_for("SubnetOutOfIPAddresses", 60, || {
        d.status()["functions"][0]["state_reason_code"] == "SubnetOutOfIPAddresses"
    });
    let s = d.status();
    assert_eq!(s["functions"][0]["state"], "Active", "{s}");
    assert!(s["functions"][0]["state_reason"]
        .as_str()
        .unwrap()
        .contains("Small"));
    assert_eq!(d.eni_list().len(), 1);
    // No port left on the only ENI: new connections are dropped.
    let failed_before = s["nat"]["failed"].as_u64().unwrap();
    let more = open_connections(&d, "Fn", "10.0.2.10:5432", 2, 2);
    assert!(more.is_empty(), "a fifth connection opened");
    assert!(d.status()["nat"]["failed"].as_u64().unwrap() > failed_before);
    assert!(d.dropped("nat_port_exhausted") > 0);
    let text_status = text(&d.vpc(&["status"]));
    assert!(
        text_status.contains("SubnetOutOfIPAddresses"),
        "{text_status}"
    );
    drop(held);
    server.stop();
}

/// ENIs of one port: each connection fills one, the agent adds the next, up
/// to the group's 8; past that the function reports EniLimitExceeded and a
/// further connection finds no port.
#[test]
fn a_group_of_eight_full_enis_reports_eni_limit_exceeded() {
    let d = Deployment::up(
        "e2ex",
        "default",
        &["--eni-delay", "100ms", "--wait", "--eni-capacity", "1"],
    );
    let server = tcp_holder(&d.netns("DatabaseInstance"), "10.0.1.10:5432");
    let in_a = |d: &Deployment| {
        d.eni_list()
            .iter()
            .filter(|e| e["subnet"] == "PrivateSubnetA")
            .count()
    };
    let mut held = vec![];
    for n in 1..=8 {
        // The n-th connection fills ENI n; the agent then adds ENI n + 1.
        held.extend(open_connections(
            &d,
            "OrdersFunction",
            "10.0.1.10:5432",
            1,
            30,
        ));
        assert_eq!(held.len(), n, "connection {n} opened");
        if n < 8 {
            wait_for(&format!("ENI {}", n + 1), 60, || in_a(&d) == n + 1);
        }
    }
    wait_for("EniLimitExceeded", 60, || {
        d.status()["functions"][0]["state_reason_code"] == "EniLimitExceeded"
    });
    assert_eq!(in_a(&d), 8);
    let more = open_connections(&d, "OrdersFunction", "10.0.1.10:5432", 1, 2);
    assert!(more.is_empty(), "a ninth connection opened");
    assert!(d.dropped("nat_port_exhausted") > 0);
    drop(held);
    server.stop();
}

//! Drops by interface and reason, and every rejected flow recorded while
//! the agent runs, flow log or not: what the console shows
//! (`/console/api/counters`, `/console/api/flows`).
use serde_json::Value;
use vpc_common::{map_names, FlowRejectKey, FlowWindow, FL_DROPS_WINDOW};
use vpc_tests::{fixture, http_get, one_syn, spawn_in_netns, wait_for, Deployment};

fn get(api: &str, path: &str) -> Value {
    serde_json::from_str(&http_get(&format!("{api}{path}"))).expect("JSON")
}

/// The recorded drops to `dport`, once there is one.
fn drops_to(api: &str, dport: u16) -> Vec<Value> {
    let mut found = vec![];
    wait_for("the refused flow in /console/api/flows", 15, || {
        let flows = get(api, "/console/api/flows");
        found = flows["drops"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["dport"] == dport)
            .cloned()
            .collect();
        !found.is_empty()
    });
    found
}

/// `FL_REJECTS` entries left (`reserved`: the drop recorder's only).
fn reject_entries(d: &Deployment, reserved: bool) -> usize {
    use vpc::datapath::Maps;
    let mut maps = vpc::datapath::PinnedMaps::open(&vpc::paths::pin_dir(&d.name)).unwrap();
    let m: aya::maps::HashMap<_, FlowRejectKey, FlowWindow> =
        aya::maps::HashMap::try_from(maps.map(map_names::FL_REJECTS).unwrap()).unwrap();
    m.keys()
        .filter_map(|k| k.ok())
        .filter(|k| !reserved || k.window == FL_DROPS_WINDOW)
        .count()
}

/// The default deployment has no flow log. A SYN from the function to
/// the database's port 22, which its groups refuse: the flows view lists
/// it with its reason, from the function's environment through its ENI;
/// the function's interface counts it by reason, its reasons summing to its
/// drops; the datapath's reserved entry is taken out once idle.
#[test]
fn a_refused_connection_is_recorded_with_its_reason_and_interface_without_a_flow_log() {
    let d = Deployment::up(
        "drops",
        "default",
        &[
            "--eni-delay",
            "100ms",
            "--wait",
            "--api-addr",
            "127.0.0.1:0",
        ],
    );
    let s = d.status();
    let api = s["api_url"].as_str().unwrap().to_string();
    spawn_in_netns(&d.exec_env_netns("OrdersFunction"), || {
        one_syn("10.0.1.10:22".parse().unwrap())
    })
    .join()
    .unwrap();
    let drop = drops_to(&api, 22).remove(0);
    let eni = s["enis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subnet"] == "PrivateSubnetA")
        .unwrap();
    assert_eq!(drop["reason"], "sg_ingress_denied", "{drop}");
    assert!(!drop["why"].as_str().unwrap().is_empty(), "{drop}");
    assert_eq!(drop["protocol"], "tcp");
    // As the VPC sees it: from the ENI's address; the packet from the
    // environment's.
    assert_eq!(drop["src"], eni["address"], "{drop}");
    assert_eq!(drop["dst"], "10.0.1.10");
    assert_eq!(drop["packet_dst"], "10.0.1.10");
    assert_ne!(drop["packet_src"], drop["src"]);
    assert_eq!(drop["packets"], 1, "one SYN: {drop}");
    assert_eq!(drop["from"], "orders", "{drop}");
    assert_eq!(drop["to"], "DatabaseInstance", "{drop}");
    assert_eq!(drop["eni"], eni["id"], "{drop}");
    assert!(drop["first_s"].as_u64().unwrap() > 1_700_000_000, "{drop}");
    // Filtered on the agent as the page filters: by function, ENI,
    // address and port.
    let with = |q: &str| {
        get(&api, &format!("/console/api/flows?{q}"))["drops"]
            .as_array()
            .unwrap()
            .len()
    };
    let eni_id = eni["id"].as_str().unwrap();
    assert_eq!(with("function=ORDERS&port=22"), 1);
    assert_eq!(with(&format!("eni={}&address=10.0.1.10", &eni_id[..8])), 1);
    assert_eq!(with("port=2"), 0, "a port is matched whole");
    assert_eq!(with("function=reports"), 0);
    // Under any name but a loopback one (DNS rebinding), the console
    // answers nothing.
    let status = |host: &str| {
        use std::io::{Read as _, Write as _};
        let addr = api.trim_start_matches("http://");
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        write!(
            c,
            "GET /console/api/flows HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out.lines().next().unwrap_or("").to_string()
    };
    assert!(status("rebound.example:80").contains(" 403 "));
    assert!(status(api.trim_start_matches("http://")).contains(" 200 "));

    let c = get(&api, "/console/api/counters");
    let env = c["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["node"] == "OrdersFunction")
        .unwrap_or_else(|| panic!("{c}"));
    assert!(env["interface"].is_string(), "{env}");
    let by_reason: u64 = env["drops"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert!(
        env["drops"]["sg_ingress_denied"].as_u64() >= Some(1),
        "{env}"
    );
    assert_eq!(Some(by_reason), env["dropped"].as_u64(), "{env}");
    assert!(c["drops"]["sg_ingress_denied"].as_u64() >= Some(1), "{c}");
    for i in c["interfaces"].as_array().unwrap() {
        let sum: u64 = i["drops"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum();
        assert_eq!(Some(sum), i["dropped"].as_u64(), "{i}");
    }
    // The Prometheus family says the same.
    let body = http_get(s["metrics_url"].as_str().unwrap());
    assert!(
        body.contains("vpc_interface_drops_total{node=\"OrdersFunction\",eni=\"\",reason=\"sg_ingress_denied\"} 1"),
        "{body}"
    );
    // Idle, the reserved window's entry is taken out: drops never fill
    // the map.
    wait_for("the reserved entry taken out", 10, || {
        reject_entries(&d, true) == 0
    });
    let again = get(&api, "/console/api/flows");
    assert!(
        again["drops"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["dport"] == 22 && x["packets"] == 1),
        "still listed, counted once: {again}"
    );
}

/// With flow logs the datapath records rejects in their windows, and the
/// agent's one ring-buffer reader hands them to both: the console lists a
/// host's refused connection (counted once, also after the flow logs took
/// their windows' entries out), and the flow log still writes its REJECT.
#[test]
fn with_a_flow_log_a_refused_flow_is_recorded_once_and_still_logged() {
    let dir = crate::flow_logs::TempDir::new("drops");
    let d = Deployment::up(
        "dropsfl",
        fixture!("flow_logs.yaml"),
        &[
            "--eni-delay",
            "100ms",
            "--wait",
            "--api-addr",
            "127.0.0.1:0",
            "--flow-logs-dir",
            &dir.arg(),
        ],
    );
    let api = d.status()["api_url"].as_str().unwrap().to_string();
    // Db's group takes 5432 from the function's group only.
    spawn_in_netns(&d.netns("App"), || {
        one_syn("10.0.2.10:5432".parse().unwrap())
    })
    .join()
    .unwrap();
    let drop = drops_to(&api, 5432).remove(0);
    assert_eq!(drop["reason"], "sg_ingress_denied", "{drop}");
    assert_eq!(
        (&drop["src"], &drop["from"], &drop["to"]),
        (
            &Value::from("10.0.1.20"),
            &Value::from("App"),
            &Value::from("Db")
        ),
        "{drop}"
    );
    assert_eq!(drop["eni"], Value::Null, "no Hyperplane ENI: {drop}");
    // The flow logs' windows (2 and 4 s) end and take their entries out.
    wait_for("the flow logs' windows written", 20, || {
        reject_entries(&d, false) == 0
    });
    let again = drops_to(&api, 5432);
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0]["packets"], 1, "counted once: {again:?}");
    let journal = vpc::flowlogs::agent::journal_path(&d.name);
    wait_for("the REJECT in the flow log", 20, || {
        std::fs::read_to_string(&journal).is_ok_and(|j| {
            j.lines().any(|l| {
                l.contains("10.0.1.20 10.0.2.10 ")
                    && l.contains(" 5432 6 1 ")
                    && l.contains("REJECT")
            })
        })
    });
}

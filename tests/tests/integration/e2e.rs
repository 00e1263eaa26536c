//! End to end: `vpc up` builds real namespaces and veths, attaches the XDP
//! router, and real sockets and `nc` send real packets through it.
use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::unix::process::CommandExt as _,
    sync::{atomic::Ordering::Relaxed, mpsc},
    time::{Duration, Instant},
};

use vpc_common::map_names;
use vpc_tests::{
    connects, fixture, http_get, line_echo_server, metric, namespaces_with_prefix, spawn_in_netns,
    tcp_server, text, vpc, wait_for, Deployment, Running, FAST,
};

/// A `vpc` child process in a process group of its own (with `ip netns
/// exec`, the shell and what it runs): killed whole if the test fails
/// before it ends. Inside, `timeout --foreground` keeps to that group.
struct Child(Option<std::process::Child>);

impl Child {
    fn spawn(d: &Deployment, args: &[&str]) -> Self {
        let c = std::process::Command::new(vpc_tests::vpc_bin())
            .arg("--name")
            .arg(&d.name)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        Child(Some(c))
    }

    fn wait(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            // Not yet reaped: the group's id is still its own.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = c.wait();
        }
    }
}

/// A file under the temporary directory, removed on drop, pass or fail.
struct TempPath(std::path::PathBuf);

impl TempPath {
    fn new(name: &str) -> Self {
        TempPath(std::env::temp_dir().join(name))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Answers one datagram with "echo:" + its payload; returns the peer.
fn udp_echo_server(ns: &str, addr: &str) -> Running<Option<SocketAddr>> {
    let addr: SocketAddr = addr.parse().unwrap();
    Running::start(ns, move |ready, stop| {
        let s = UdpSocket::bind(addr).unwrap();
        // Short waits, to see the stop flag.
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        ready.send(()).unwrap();
        let mut buf = [0u8; 1500];
        let (n, peer) = loop {
            match s.recv_from(&mut buf) {
                Ok(r) => break r,
                Err(_) if stop.load(Relaxed) => return None,
                Err(_) => {}
            }
        };
        let mut reply = b"echo:".to_vec();
        reply.extend_from_slice(&buf[..n]);
        s.send_to(&reply, peer).unwrap();
        Some(peer)
    })
}

/// Sends `msg` to `to` from namespace `ns`; the reply and its source, if any
/// arrives within `secs`.
fn udp_request(ns: &str, to: &str, msg: &'static [u8], secs: u64) -> Option<(String, SocketAddr)> {
    let to: SocketAddr = to.parse().unwrap();
    spawn_in_netns(ns, move || {
        let any = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
        let s = UdpSocket::bind(any).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(secs))).unwrap();
        s.send_to(msg, to).unwrap();
        let mut buf = [0u8; 1500];
        let (n, from) = s.recv_from(&mut buf).ok()?;
        Some((String::from_utf8_lossy(&buf[..n]).into_owned(), from))
    })
    .join()
    .unwrap()
}

#[test]
fn function_reaches_the_database_through_its_hyperplane_eni() {
    let d = Deployment::up("e2ea", "default", FAST);
    let eni = d.eni_address("PrivateSubnetA");
    let server = tcp_server(&d.netns("DatabaseInstance"), "10.0.1.10:5432");
    // A real client in the execution environment, through the CLI.
    let out = d.vpc(&[
        "invoke",
        "orders",
        "--",
        "sh",
        "-c",
        "echo ping | timeout 30 nc -q1 $DB_HOST $DB_PORT",
    ]);
    assert!(out.status.success(), "invoke failed: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pong"),
        "{}",
        text(&out)
    );
    let peer = server.finish(30).expect("the database saw a connection");
    // The database sees the ENI's address and a NAT port, never the Lambda side.
    assert_eq!(peer.ip().to_string(), eni);
    assert!(peer.port() >= 1024);
    let s = d.status();
    assert!(s["counters"]["forwarded"].as_u64().unwrap() >= 6, "{s}");
    assert_eq!(s["functions"][0]["state"], "Active");
    // Socket-fed ports get TC by default (see `Hooks::DEFAULT`).
    assert_eq!(s["attach_mode"], "tc");
    let enia = s["enis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subnet"] == "PrivateSubnetA")
        .unwrap();
    assert_eq!(
        enia["connections"], 1,
        "the connection stays tracked on the ENI: {s}"
    );
    // `vpc conntrack list`: the original tuple from the execution
    // environment, the reply tuple to the ENI's address and the port the
    // database saw, packets and bytes both ways ("ping" out, "pong" back,
    // each in one segment after the handshake).
    let out = d.vpc(&["conntrack", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    let c = &rows[0];
    assert_eq!(c["protocol"], "tcp");
    assert_eq!(c["original"]["src"], "198.19.0.10", "{c}");
    assert_eq!(c["original"]["dst"], "10.0.1.10");
    assert_eq!(c["original"]["dport"], 5432);
    assert_eq!(c["reply"]["src"], "10.0.1.10");
    assert_eq!(c["reply"]["dst"].as_str().unwrap(), eni);
    assert_eq!(c["reply"]["dport"], peer.port(), "{c}");
    assert_eq!(c["eni"], enia["id"]);
    for dir in ["original", "reply"] {
        let (p, b) = (
            c[dir]["packets"].as_u64().unwrap(),
            c[dir]["bytes"].as_u64().unwrap(),
        );
        // At least handshake + data + FIN; every packet 40-80 bytes of
        // headers, plus the 5 bytes of payload.
        assert!(p >= 3 && b >= 40 * p + 5 && b <= 80 * p + 5, "{dir}: {c}");
    }
    let text_out = d.vpc(&["conntrack", "list"]);
    let line = String::from_utf8_lossy(&text_out.stdout).into_owned();
    assert!(
        line.starts_with("tcp      6 ") && line.contains(&format!("dst={eni} sport=5432")),
        "{line}"
    );
}

/// The default template's function lists two subnets: it has two
/// execution environments, each sending through its own subnet's ENI.
#[test]
fn a_function_with_two_subnets_has_an_execution_environment_in_each() {
    let d = Deployment::up("e2emenv", "default", FAST);
    let (eni_a, eni_b) = (
        d.eni_address("PrivateSubnetA"),
        d.eni_address("PrivateSubnetB"),
    );
    assert_ne!(eni_a, eni_b);
    let s = d.status();
    let f = &s["functions"][0];
    assert_eq!(f["id"], "OrdersFunction");
    let envs = f["execution_environments"].as_array().unwrap();
    assert_eq!(envs.len(), 2, "{f}");
    assert_eq!(envs[0]["env"], 1);
    assert_eq!(envs[0]["id"], "OrdersFunction");
    assert_eq!(envs[0]["netns"], d.exec_env_netns("OrdersFunction"));
    assert_eq!(envs[0]["address"], "198.19.0.10");
    assert_eq!(envs[0]["subnet"], "PrivateSubnetA");
    assert_eq!(envs[0]["eni_address"].as_str().unwrap(), eni_a);
    assert_eq!(envs[1]["env"], 2);
    assert_eq!(envs[1]["id"], "OrdersFunction.2");
    assert_eq!(envs[1]["netns"], d.exec_env_netns_n("OrdersFunction", 2));
    assert_eq!(envs[1]["address"], "198.19.16.10");
    assert_eq!(envs[1]["subnet"], "PrivateSubnetB");
    assert_eq!(envs[1]["eni_address"].as_str().unwrap(), eni_b);
    // Both namespaces exist; the second is named after the first.
    let ns = namespaces_with_prefix(&d.name);
    for e in envs {
        assert!(
            ns.contains(&e["netns"].as_str().unwrap().to_string()),
            "{ns:?}"
        );
    }
    // Environment 1 (the default) reaches the database from subnet A's
    // ENI, environment 2 from subnet B's: each server sees the peer.
    let db = d.netns("DatabaseInstance");
    for (env, eni) in [(None, &eni_a), (Some("1"), &eni_a), (Some("2"), &eni_b)] {
        let server = tcp_server(&db, "10.0.1.10:5432");
        let mut args = vec!["invoke", "orders"];
        if let Some(n) = env {
            args.extend(["--env", n]);
        }
        args.extend([
            "--",
            "sh",
            "-c",
            "echo ping | timeout 30 nc -q1 $DB_HOST $DB_PORT",
        ]);
        let out = d.vpc(&args);
        assert!(out.status.success(), "invoke --env {env:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("pong"),
            "{}",
            text(&out)
        );
        let peer = server.finish(30).expect("the database saw a connection");
        assert_eq!(&peer.ip().to_string(), eni, "--env {env:?}");
        assert!(peer.port() >= 1024);
    }
    // The tracked connections came from each environment's own address.
    let out = d.vpc(&["conntrack", "list", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let srcs: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["original"]["src"].as_str().unwrap())
        .collect();
    assert!(srcs.contains(&"198.19.16.10"), "{rows}");
    assert!(srcs.contains(&"198.19.0.10"), "{rows}");
    // There is no third environment.
    let out = d.vpc(&["invoke", "orders", "--env", "3", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("2 execution environment(s)"),
        "{}",
        text(&out)
    );
    // `vpc eni list`: the function on both ENIs, each with its environment.
    let enis = d.eni_list();
    for (subnet, env) in [
        ("PrivateSubnetA", "OrdersFunction"),
        ("PrivateSubnetB", "OrdersFunction.2"),
    ] {
        let e = enis.iter().find(|e| e["subnet"] == subnet).unwrap();
        assert_eq!(e["functions"], serde_json::json!(["orders"]), "{e}");
        assert_eq!(e["execution_environments"], serde_json::json!([env]), "{e}");
    }
    // `vpc status` (text) lists both environments.
    let out = d.vpc(&["status"]);
    let t = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        t.contains("env 1  198.19.0.10") && t.contains("env 2  198.19.16.10"),
        "{t}"
    );
    assert!(t.contains("subnet PrivateSubnetB"), "{t}");
}

#[test]
fn the_agent_serves_metrics_that_match_the_datapath() {
    let mut flags = FAST.to_vec();
    flags.extend(["--conntrack-max", "1000"]);
    let d = Deployment::up("e2em2", "default", &flags);
    // One refused SYN, never retransmitted: status and metrics, read one
    // after the other, count the same drops.
    spawn_in_netns(&d.exec_env_netns("OrdersFunction"), || {
        vpc_tests::one_syn("10.0.1.10:22".parse().unwrap())
    })
    .join()
    .unwrap();
    wait_for("the SYN refused", 30, || {
        d.dropped("sg_ingress_denied") >= 1
    });
    let s = d.status();
    let url = s["metrics_url"]
        .as_str()
        .expect("a metrics URL")
        .to_string();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "loopback by default: {url}"
    );
    let body = http_get(&url);
    // OpenMetrics text: every sample line is `name{labels} value`, and it ends with EOF.
    assert!(body.ends_with("# EOF\n"), "{body}");
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect(line);
        assert!(value.parse::<f64>().is_ok(), "{line}");
        let name = series.split('{').next().unwrap();
        assert!(
            name.starts_with("vpc_") && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
    }
    let sample = |series: &str| -> u64 {
        metric(&body, series).unwrap_or_else(|| panic!("{series} missing: {body}")) as u64
    };
    // The refused connection is counted the same by status and by metrics.
    let denied = sample(r#"vpc_packets_dropped_total{reason="sg_ingress_denied"}"#);
    assert!(denied >= 1);
    assert_eq!(denied, d.dropped("sg_ingress_denied"));
    assert_eq!(
        sample("vpc_packets_forwarded_total"),
        s["counters"]["forwarded"].as_u64().unwrap()
    );
    assert_eq!(
        sample(r#"vpc_function_state{function="OrdersFunction",state="Active"}"#),
        1
    );
    assert!(body.contains("vpc_eni_connections{eni=\"eni-"), "{body}");
    assert_eq!(sample("vpc_conntrack_capacity_connections"), 500);
}

#[test]
fn ports_the_groups_do_not_allow_fail() {
    let d = Deployment::up("e2eb", "default", FAST);
    let out = connects(&d, "invoke", "orders", "10.0.1.10", 22, 1);
    assert!(!out, "port 22 is not open to the function's group");
    // AppServer is not in the database's allowed groups.
    let out = connects(&d, "exec", "AppServer", "10.0.1.10", 5432, 1);
    assert!(!out);
    assert!(d.dropped("sg_ingress_denied") >= 2);
}

#[test]
fn hosts_cannot_open_connections_to_the_function_or_its_eni() {
    let d = Deployment::up("e2ec", "default", FAST);
    let eni = d.eni_address("PrivateSubnetA");
    // Something listens in the execution environment; nobody may reach it.
    let server = tcp_server(&d.exec_env_netns("OrdersFunction"), "0.0.0.0:7000");
    for target in [eni.as_str(), "198.19.0.10"] {
        let out = connects(&d, "exec", "DatabaseInstance", target, 7000, 1);
        assert!(!out, "{target}:7000 must not be reachable");
    }
    assert_eq!(server.stop(), None);
    assert!(d.dropped("hyperplane_unsolicited") >= 1);
    assert!(d.dropped("no_route") >= 1);
}

#[test]
fn udp_request_response_works_through_nat() {
    let d = Deployment::up("e2ed", "default", FAST);
    let eni = d.eni_address("PrivateSubnetA");
    let server = udp_echo_server(&d.netns("DatabaseInstance"), "10.0.1.10:9000");
    let (reply, from) = udp_request(
        &d.exec_env_netns("OrdersFunction"),
        "10.0.1.10:9000",
        b"hello",
        30,
    )
    .expect("reply through NAT");
    assert_eq!(reply, "echo:hello");
    assert_eq!(
        from.to_string(),
        "10.0.1.10:9000",
        "the reply is translated back"
    );
    let peer = server.finish(30).expect("datagram arrived");
    assert_eq!(peer.ip().to_string(), eni);
}

#[test]
fn nothing_crosses_the_router_without_its_programs() {
    // At either hook: XDP, and TC (the default).
    let mut xdp = FAST.to_vec();
    xdp.extend(["--hook", "xdp"]);
    for (name, flags) in [("e2ee", &xdp[..]), ("e2eet", FAST)] {
        nothing_crosses_without_the_programs(Deployment::up(name, "default", flags));
    }
}

fn nothing_crosses_without_the_programs(d: Deployment) {
    let router = vpc::topology::router_netns(&d.name);
    let fwd = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &router,
            "sysctl",
            "-n",
            "net.ipv4.ip_forward",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&fwd.stdout).trim(),
        "0",
        "kernel forwarding stays off in the router"
    );
    // Works with the programs attached...
    let server = tcp_server(&d.netns("DatabaseInstance"), "10.0.1.10:5432");
    let ok = connects(&d, "invoke", "orders", "10.0.1.10", 5432, 5);
    assert!(ok);
    assert!(server.finish(30).is_some());
    assert!(!router_links(&d).is_empty());
    // ...and nothing crosses once they are detached (unpinning the links
    // releases the last reference to each attachment).
    let links = vpc::deploy::pin_dir(&d.name).join("links");
    for e in std::fs::read_dir(&links).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    // The kernel frees a link whose last reference went in a work item:
    // the detach follows the unpin shortly, not at once.
    wait_for("the router's programs to be detached", 30, || {
        router_links(&d).is_empty()
    });
    let server = tcp_server(&d.netns("DatabaseInstance"), "10.0.1.10:5433");
    let out = connects(&d, "invoke", "orders", "10.0.1.10", 5433, 2);
    assert!(!out, "a packet crossed with nothing attached");
    assert_eq!(server.stop(), None);
}

#[test]
fn invoke_fails_with_resource_not_ready_while_the_function_is_pending() {
    // Pending until the test clock moves: for as long as the test takes.
    let d = Deployment::up("e2ef", "default", &["--clock", "test", "--eni-delay", "5m"]);
    let s = d.status();
    assert_eq!(s["functions"][0]["state"], "Pending");
    assert_eq!(s["functions"][0]["state_reason_code"], "Creating");
    let out = d.vpc(&["invoke", "orders", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("ResourceNotReadyException"),
        "{}",
        text(&out)
    );
    // The ENI is not in the datapath yet: nothing leaves the execution environment.
    let before = d.dropped("no_route");
    let c = spawn_in_netns(&d.exec_env_netns("OrdersFunction"), || {
        TcpStream::connect_timeout(&"10.0.1.10:5432".parse().unwrap(), Duration::from_secs(1))
            .is_ok()
    });
    assert!(!c.join().unwrap());
    assert!(d.dropped("no_route") > before);
}

#[test]
fn a_bad_template_names_the_resource_and_field_and_applies_nothing() {
    let name = vpc_tests::unique_name("e2eg");
    let path = std::env::temp_dir().join(format!("{name}.yaml"));
    let bad = vpc::DEFAULT_TEMPLATE.replace("FromPort: 9000", "FromPort: 90000");
    std::fs::write(&path, bad).unwrap();
    let out = vpc(&name, &["up", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains("Resources.DatabaseUdpIngress.Properties.FromPort"),
        "{msg}"
    );
    assert!(
        namespaces_with_prefix(&name).is_empty(),
        "nothing may be half-applied"
    );
    assert!(!vpc::deploy::state_dir(&name).exists());
    assert!(!vpc::deploy::pin_dir(&name).exists());
}

#[test]
fn down_removes_namespaces_links_pins_and_state() {
    let d = Deployment::up("e2eh", "default", FAST);
    let name = d.name.clone();
    // Router, two hosts, the function's two execution environments and
    // the VPC's resolver.
    assert_eq!(namespaces_with_prefix(&name).len(), 6);
    assert!(vpc::deploy::pin_dir(&name)
        .join("maps")
        .join(map_names::CT)
        .exists());
    // Every VPC-side namespace has its resolv.conf (for `ip netns exec`).
    let etc = |ns: &str| std::path::Path::new("/etc/netns").join(ns);
    assert!(etc(&d.netns("DatabaseInstance"))
        .join("resolv.conf")
        .exists());
    drop(d);
    assert!(namespaces_with_prefix(&name).is_empty());
    let etc_left: Vec<_> = std::fs::read_dir("/etc/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("{name}-")))
                .collect()
        })
        .unwrap_or_default();
    assert!(etc_left.is_empty(), "{etc_left:?}");
    assert!(!vpc::deploy::pin_dir(&name).exists());
    assert!(!vpc::deploy::state_dir(&name).exists());
    let out = vpc(&name, &["status"]);
    assert!(!out.status.success());
}

#[test]
fn the_agent_collects_connections_after_their_idle_timeout() {
    // The idle time passes on the test clock, not while a loaded machine
    // gets to the first check.
    let d = Deployment::up(
        "e2ei",
        "default",
        &[
            "--clock",
            "test",
            "--eni-delay",
            "0s",
            "--wait",
            "--timeout",
            "udp=30",
        ],
    );
    let server = udp_echo_server(&d.netns("DatabaseInstance"), "10.0.1.10:9000");
    assert!(udp_request(
        &d.exec_env_netns("OrdersFunction"),
        "10.0.1.10:9000",
        b"x",
        30
    )
    .is_some());
    assert!(server.finish(30).is_some());
    assert_eq!(d.status()["connections"], 1);
    let out = d.vpc(&["clock", "advance", "31s"]);
    assert!(out.status.success(), "{}", text(&out));
    // The agent sweeps every second.
    wait_for("the expired connection collected", 30, || {
        d.status()["connections"] == 0
    });
}

#[test]
fn down_cleans_up_after_an_up_that_died_half_way() {
    let d = Deployment::up("e2ej", "default", &["--eni-delay", "100ms"]);
    // As if `vpc up` had been killed before writing its state (the store
    // with it).
    std::fs::remove_file(vpc::deploy::state_dir(&d.name).join(vpc::store::FILE)).unwrap();
    let out = d.vpc(&["down"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(namespaces_with_prefix(&d.name).is_empty());
    assert!(!vpc::deploy::pin_dir(&d.name).exists());
    std::mem::forget(d); // already down
}

/// The database sits in subnet B behind a custom ACL: rule 50 denies 5433,
/// rule 100 admits the rest of the VPC; outbound only TCP replies.
const ACL_TEMPLATE: &str = fixture!("acl_deny_before_allow.yaml");

#[test]
fn a_lower_numbered_acl_deny_beats_a_later_allow() {
    let d = Deployment::up("e2ek", ACL_TEMPLATE, FAST);
    let server = tcp_server(&d.netns("Db"), "10.0.2.10:5432");
    let ok = d.vpc(&[
        "invoke",
        "reports",
        "--",
        "sh",
        "-c",
        "echo hi | timeout 30 nc -q1 10.0.2.10 5432",
    ]);
    assert!(
        ok.status.success() && String::from_utf8_lossy(&ok.stdout).contains("pong"),
        "{}",
        text(&ok)
    );
    assert!(server.finish(30).is_some());
    // The groups allow 5433; the ACL's rule 50 denies it before rule 100 allows.
    let server = tcp_server(&d.netns("Db"), "10.0.2.10:5433");
    let out = connects(&d, "invoke", "reports", "10.0.2.10", 5433, 1);
    assert!(!out);
    assert_eq!(server.stop(), None);
    assert!(d.dropped("nacl_ingress_denied") >= 1);
}

#[test]
fn a_missing_ephemeral_port_rule_breaks_replies() {
    let d = Deployment::up("e2el", ACL_TEMPLATE, FAST);
    let server = udp_echo_server(&d.netns("Db"), "10.0.2.10:9000");
    let reply = udp_request(&d.exec_env_netns("Fn"), "10.0.2.10:9000", b"ping", 2);
    assert!(
        reply.is_none(),
        "the reply must not come back: no outbound UDP rule"
    );
    assert!(
        server.finish(30).is_some(),
        "the request itself got in (rule 100)"
    );
    assert!(d.dropped("nacl_egress_denied") >= 1);
}

#[test]
fn live_changes_groups_spare_tracked_connections_acls_cut_them() {
    let d = Deployment::up("e2em", ACL_TEMPLATE, FAST);
    let _server = line_echo_server(&d.netns("Db"), "10.0.2.10:5432");
    // A long-lived connection from the function, driven step by step: each
    // message with how long to wait for its echo (long where it must come,
    // short where it must not).
    let (go_tx, go_rx) = mpsc::channel::<(&'static str, u64)>();
    let (res_tx, res_rx) = mpsc::channel::<bool>();
    let client = spawn_in_netns(&d.exec_env_netns("Fn"), move || {
        let s =
            TcpStream::connect_timeout(&"10.0.2.10:5432".parse().unwrap(), Duration::from_secs(30))
                .unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        for (msg, secs) in go_rx {
            w.set_read_timeout(Some(Duration::from_secs(secs))).unwrap();
            let mut line = String::new();
            let ok = w.write_all(format!("{msg}\n").as_bytes()).is_ok()
                && r.read_line(&mut line).is_ok()
                && line.trim() == msg;
            res_tx.send(ok).unwrap();
        }
    });
    go_tx.send(("one", 30)).unwrap();
    assert!(res_rx.recv().unwrap(), "the connection works");
    // Remove the database's 5432-5433 rule: new connections fail at once,
    // the tracked one goes on (security groups are stateful).
    let no_rule = ACL_TEMPLATE.replace("        - {IpProtocol: tcp, FromPort: 5432, ToPort: 5433, SourceSecurityGroupId: !Ref FnSg}\n", "");
    assert_ne!(no_rule, ACL_TEMPLATE);
    d.apply(&no_rule);
    go_tx.send(("two", 30)).unwrap();
    assert!(
        res_rx.recv().unwrap(),
        "a tracked connection survives a group rule's removal"
    );
    let fresh = connects(&d, "invoke", "Fn", "10.0.2.10", 5432, 1);
    assert!(!fresh, "a new connection sees the removal at once");
    // The same policy again: the generation slot flips back. Conntrack keeps
    // ACL verdicts per policy epoch; with only the slot as the epoch, the
    // deny below (applied in the slot "two" passed under) would be missed.
    d.apply(&no_rule);
    // An ACL deny in front of the allow: it applies to the established
    // connection too (ACLs are stateless).
    let deny = no_rule.replace("RuleNumber: 50, Protocol: 6, RuleAction: deny, CidrBlock: 10.0.0.0/16, PortRange: {From: 5433, To: 5433}", "RuleNumber: 50, Protocol: 6, RuleAction: deny, CidrBlock: 10.0.0.0/16, PortRange: {From: 5432, To: 5433}");
    assert_ne!(deny, no_rule);
    d.apply(&deny);
    let before = d.dropped("nacl_ingress_denied");
    go_tx.send(("three", 2)).unwrap();
    assert!(
        !res_rx.recv().unwrap(),
        "an ACL change cuts an established connection"
    );
    assert!(d.dropped("nacl_ingress_denied") > before);
    drop(go_tx);
    client.join().unwrap();
}

#[test]
fn sg_rule_edits_from_the_cli_take_effect_for_new_connections() {
    let d = Deployment::up("e2en", ACL_TEMPLATE, FAST);
    let reach = |wait| connects(&d, "invoke", "Fn", "10.0.2.10", 5432, wait);
    // Bound before the first connection, listening until the test ends.
    let _listener = tcp_holder(&d.netns("Db"), "10.0.2.10:5432");
    assert!(reach(5));
    let rule = [
        "--protocol",
        "tcp",
        "--port",
        "5432-5433",
        "--peer-group",
        "FnSg",
    ];
    let mut revoke = vec!["sg", "revoke-ingress", "DbSg"];
    revoke.extend(rule);
    let out = d.vpc(&revoke);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!reach(1), "revoked: new connections fail");
    let out = d.vpc(&revoke);
    assert!(
        !out.status.success() && text(&out).contains("InvalidPermission.NotFound"),
        "{}",
        text(&out)
    );
    let mut authorize = vec!["sg", "authorize-ingress", "DbSg"];
    authorize.extend(rule);
    let out = d.vpc(&authorize);
    assert!(out.status.success(), "{}", text(&out));
    assert!(reach(5), "authorized again");
    let out = d.vpc(&authorize);
    assert!(
        text(&out).contains("InvalidPermission.Duplicate"),
        "{}",
        text(&out)
    );
    let out = d.vpc(&[
        "sg",
        "authorize-ingress",
        "DbSg",
        "--protocol",
        "tcp",
        "--port",
        "1",
        "--peer-group",
        "Nope",
    ]);
    assert!(
        text(&out).contains("InvalidGroup.NotFound"),
        "{}",
        text(&out)
    );
}

#[test]
fn concurrent_policy_edits_are_serialized_and_none_is_lost() {
    let d = Deployment::up("e2eo", ACL_TEMPLATE, FAST);
    // Eight edits at once, each adding its own rule: all must land, and the
    // policy in force must stay whole (the function still reaches the DB).
    std::thread::scope(|s| {
        for port in 7001..7009u16 {
            let d = &d;
            s.spawn(move || {
                let port = port.to_string();
                let out = d.vpc(&[
                    "sg",
                    "authorize-ingress",
                    "DbSg",
                    "--protocol",
                    "tcp",
                    "--port",
                    &port,
                    "--cidr",
                    "10.0.1.0/24",
                ]);
                assert!(out.status.success(), "{}", text(&out));
            });
        }
    });
    let state = vpc::deploy::State::load(&d.name).unwrap();
    let db = state.model.group("DbSg").unwrap();
    assert_eq!(
        db.ingress.len(),
        2 + 8,
        "an edit was lost: {:?}",
        db.ingress
    );
    let server = tcp_server(&d.netns("Db"), "10.0.2.10:5432");
    assert!(
        connects(&d, "invoke", "Fn", "10.0.2.10", 5432, 5),
        "the policy in force is whole"
    );
    assert!(server.finish(30).is_some());
}

/// A dual-stack VPC (Amazon-provided /56, subnet blocks from `Fn::Cidr`):
/// the database in subnet B, two functions in subnet A sharing one
/// Hyperplane ENI, one with `Ipv6AllowedForDualStack` and one without.
const DUAL_STACK_TEMPLATE: &str = fixture!("dual_stack_functions.yaml");

/// The IPv6 addresses `vpc status` shows: (database, the ENI of subnet A).
fn dual_stack_addresses(d: &Deployment) -> (String, String) {
    let s = d.status();
    let db = s["hosts"][0]["ipv6_address"].as_str().unwrap().to_string();
    let eni = s["enis"][0]["ipv6_address"].as_str().unwrap().to_string();
    (db, eni)
}

#[test]
fn a_dual_stack_function_reaches_an_instance_over_ipv6_through_its_eni() {
    let d = Deployment::up("e2ep", DUAL_STACK_TEMPLATE, FAST);
    let (db6, eni6) = dual_stack_addresses(&d);
    let s = d.status();
    // Amazon-provided /56 from the documented pool, subnet blocks from Fn::Cidr,
    // addresses after AWS's four reserved ones; the Lambda side's IPv6 range.
    assert_eq!(db6, "2001:db8:ec2:102::4", "{s}");
    assert_eq!(eni6, "2001:db8:ec2:101::4", "{s}");
    let dual = s["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function_name"] == "dual")
        .unwrap();
    assert_eq!(dual["ipv6_address"], "2001:2::a");
    assert_eq!(dual["ipv6_allowed_for_dual_stack"], true);
    let text_status = text(&d.vpc(&["status"]));
    assert!(
        text_status.contains(&format!("10.0.2.10       + {db6}")),
        "{text_status}"
    );
    // TCP over IPv6 with a real client: the database sees the ENI's IPv6 address.
    let server = tcp_server(&d.netns("Db"), &format!("[{db6}]:5432"));
    let cmd = format!("echo ping | timeout 30 nc -6 -q1 {db6} 5432");
    let out = d.vpc(&["invoke", "dual", "--", "sh", "-c", &cmd]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("pong"),
        "{}",
        text(&out)
    );
    let peer = server.finish(30).expect("the database saw a connection");
    assert_eq!(
        peer.ip().to_string(),
        eni6,
        "source NAT to the ENI's IPv6 address"
    );
    assert!(peer.port() >= 1024);
    // Tracked on the ENI, as IPv4 connections are.
    assert_eq!(d.status()["enis"][0]["connections"], 1);
    // UDP over IPv6: request and reply through NAT.
    let server = udp_echo_server(&d.netns("Db"), &format!("[{db6}]:9000"));
    let (reply, from) = udp_request(
        &d.exec_env_netns("Dual"),
        &format!("[{db6}]:9000"),
        b"hello6",
        30,
    )
    .expect("reply through NAT");
    assert_eq!(reply, "echo:hello6");
    assert_eq!(from.to_string(), format!("[{db6}]:9000"), "translated back");
    let peer = server.finish(30).expect("datagram arrived");
    assert_eq!(peer.ip().to_string(), eni6);
    // Nothing unexpected reached the router (no DAD, RS or MLD from the namespaces).
    let s = d.status();
    assert_eq!(
        s["counters"]["dropped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[1].as_u64().unwrap())
            .sum::<u64>(),
        0,
        "{s}"
    );
    // Nothing opens a connection to the ENI's IPv6 address either.
    assert!(!connects(&d, "exec", "Db", &eni6, 7000, 1));
    assert!(d.dropped("hyperplane_unsolicited") >= 1);
}

#[test]
fn without_ipv6_allowed_for_dual_stack_ipv6_fails_and_ipv4_works() {
    let d = Deployment::up("e2eq", DUAL_STACK_TEMPLATE, FAST);
    let (db6, _) = dual_stack_addresses(&d);
    let s = d.status();
    let v4only = s["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function_name"] == "v4only")
        .unwrap();
    assert_eq!(v4only["ipv6_allowed_for_dual_stack"], false);
    assert_eq!(v4only["eni"], s["functions"][0]["eni"], "one shared ENI");
    // Counts every IPv6 connection until the test's last one.
    let server = tcp_holder(&d.netns("Db"), &format!("[{db6}]:5432"));
    // No IPv6 route in its execution environment, as at AWS...
    assert!(!connects(&d, "invoke", "v4only", &db6, 5432, 1));
    // ...and should it make one, the router drops its IPv6 all the same.
    let before = d.dropped("ipv6_not_allowed");
    let cmd = format!(
        "ip -6 route add default via fe80::1 dev eth0 && timeout 5 nc -6 -z -w1 {db6} 5432"
    );
    let out = d.vpc(&["invoke", "v4only", "--", "sh", "-c", &cmd]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        d.dropped("ipv6_not_allowed") > before,
        "dropped by the datapath, with its own reason"
    );
    // The same IPv6 connection works from the function with the flag (same ENI)...
    assert!(connects(&d, "invoke", "dual", &db6, 5432, 5));
    // ...and IPv4 from the function without it.
    let server4 = tcp_server(&d.netns("Db"), "10.0.2.10:5432");
    assert!(connects(&d, "invoke", "v4only", "10.0.2.10", 5432, 5));
    let peer4 = server4.finish(30).expect("IPv4 connection");
    assert_eq!(peer4.ip().to_string(), "10.0.1.4");
    let peers = server.stop();
    assert_eq!(
        peers.len(),
        1,
        "only the allowed function got in over IPv6: {peers:?}"
    );
}

/// Sends 100 MB of random bytes with `nc` from `function` to `dst`:5432 on
/// host `host`, and checks that what arrived has the same SHA-256. Returns
/// how long the transfer took (the bytes made and hashed beforehand: under
/// load that alone takes seconds).
fn send_100_mb(d: &Deployment, function: &str, host: &str, dst: &str) -> Duration {
    let six = if dst.contains(':') { "-6" } else { "-4" };
    let listen = format!("timeout --foreground 120 nc {six} -l {dst} 5432 | sha256sum");
    let server = Child::spawn(d, &["exec", host, "--", "sh", "-c", &listen]);
    wait_for("the server to listen", 30, || {
        let ss = d.vpc(&["exec", host, "--", "ss", "-Hltn", "sport = :5432"]);
        !String::from_utf8_lossy(&ss.stdout).trim().is_empty()
    });
    let sent = TempPath::new(&format!("{}-100m", d.name));
    let f = sent.0.display().to_string();
    let made = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "set -e; head -c 100M /dev/urandom > {f}; sha256sum < {f}"
        ))
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    assert_eq!(std::fs::metadata(&sent.0).unwrap().len(), 100 << 20);
    let want = String::from_utf8_lossy(&made.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let started = Instant::now();
    let cmd = format!("timeout 120 nc {six} -N {dst} 5432 < {f}");
    let client = d.vpc(&["invoke", function, "--", "sh", "-c", &cmd]);
    assert!(client.status.success(), "{}", text(&client));
    let received = server.wait();
    let took = started.elapsed();
    let got = String::from_utf8_lossy(&received.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        got,
        want,
        "the checksum of what arrived differs ({})",
        text(&received)
    );
    eprintln!("100 MB to {dst} through the ENI in {took:?}");
    took
}

#[test]
fn a_100_mb_tcp_transfer_over_ipv6_through_the_eni_arrives_intact() {
    let d = Deployment::up("e2er", DUAL_STACK_TEMPLATE, FAST);
    let (db6, _) = dual_stack_addresses(&d);
    let took = send_100_mb(&d, "dual", "Db", &db6);
    // Seconds here, also on a loaded machine; a minute is a path gone
    // wrong (a slow path per packet, retransmissions).
    assert!(took < Duration::from_secs(60), "{took:?}");
    // The connection was NATed to the ENI and tracked: at TC (the default)
    // the router forwards the sender's GSO buffers whole, up to 64 KiB each.
    assert!(d.status()["counters"]["forwarded"].as_u64().unwrap() > 1_500);
}

#[test]
fn the_tc_hook_forwards_gso_buffers_with_the_same_policy_and_nat() {
    // Every port at TC: the endpoints keep TSO and checksum offload, so the
    // router sees GSO superpackets with partial checksums and must NAT them.
    let mut flags = FAST.to_vec();
    flags.extend(["--hook", "tc"]);
    let d = Deployment::up("e2et", DUAL_STACK_TEMPLATE, &flags);
    let s = d.status();
    assert_eq!(s["attach_mode"], "tc", "{s}");
    let (db6, _) = dual_stack_addresses(&d);
    send_100_mb(&d, "dual", "Db", "10.0.2.10");
    send_100_mb(&d, "dual", "Db", &db6);
    let s = d.status();
    let fwd = s["counters"]["forwarded"].as_u64().unwrap();
    let conns = s["enis"][0]["connections"].as_u64().unwrap();
    assert!(fwd > 1_000, "{s}");
    assert!(conns >= 2, "both transfers tracked on the ENI: {s}");
    // The server saw the ENI, not the execution environment.
    let server = tcp_server(&d.netns("Db"), "10.0.2.10:5432");
    assert!(connects(&d, "invoke", "dual", "10.0.2.10", 5432, 5));
    assert_eq!(
        server.finish(30).expect("a connection").ip().to_string(),
        d.eni_address("A")
    );
    // Policy is the same code: a port the groups refuse fails, counted.
    let before = d.dropped("sg_ingress_denied");
    assert!(!connects(&d, "invoke", "dual", "10.0.2.10", 5433, 1));
    assert!(d.dropped("sg_ingress_denied") > before);
    // Hooks mix per port: the database back at XDP, replies still flow.
    drop(d);
    let mut flags = FAST.to_vec();
    flags.extend(["--hook", "tc", "--hook", "Db=xdp"]);
    let d = Deployment::up("e2eu", DUAL_STACK_TEMPLATE, &flags);
    assert_eq!(d.status()["attach_mode"], "tc+xdp-native");
    let server = tcp_server(&d.netns("Db"), "10.0.2.10:5432");
    assert!(connects(&d, "invoke", "dual", "10.0.2.10", 5432, 5));
    assert!(server.finish(30).is_some());
}

/// Sets an integer socket option.
fn set_int_opt(fd: std::os::fd::RawFd, level: i32, name: i32, val: i32) {
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &val as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt {level}/{name}");
}

/// A raw IPv4 socket for `proto`, with a receive timeout.
fn raw_socket(proto: i32, secs: i64) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, proto) };
    assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    let tv = libc::timeval {
        tv_sec: secs,
        tv_usec: 0,
    };
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// The function's path MTU to `to` as its socket sees it (`IP_MTU`).
fn ip_mtu(s: &UdpSocket) -> i32 {
    use std::os::fd::AsRawFd;
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU,
            &mut v as *mut i32 as *mut libc::c_void,
            &mut len,
        )
    };
    assert_eq!(r, 0, "IP_MTU: {}", std::io::Error::last_os_error());
    v
}

#[test]
fn icmp_errors_reach_the_function_through_its_eni_and_path_mtu_discovery_works() {
    use std::os::fd::AsRawFd;
    let d = Deployment::up("e2ep", "default", FAST);
    let (fn_ns, db_ns) = (
        d.exec_env_netns("OrdersFunction"),
        d.netns("DatabaseInstance"),
    );
    // 1. Nothing listens on the database's 9000/udp: its kernel answers the
    // function's datagram with a port unreachable about ENI:port, which the
    // router translates back, so the function's connected socket sees it.
    let refused = spawn_in_netns(&fn_ns, || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.connect("10.0.1.10:9000").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.send(b"anyone?").unwrap();
        let mut buf = [0u8; 64];
        s.recv(&mut buf).map_err(|e| e.kind())
    })
    .join()
    .unwrap();
    assert_eq!(
        refused.err(),
        Some(std::io::ErrorKind::ConnectionRefused),
        "the database kernel's port unreachable reached the function's socket"
    );
    // 2. Path MTU: the database (a real kernel, with a raw socket) sends
    // "fragmentation needed, next-hop MTU 1200" about the datagram it got
    // from the ENI, as a router with a smaller link would. The function's
    // kernel must find its socket by the quoted packet (so the quote must
    // be translated back to its own address and port) and lower its path
    // MTU. A veth cannot produce this itself: one with a smaller MTU drops
    // a frame redirected into it without a word, and nothing here forwards
    // through the kernel to send the error.
    let (ready_tx, ready_rx) = mpsc::channel();
    let db = spawn_in_netns(&db_ns, move || {
        // Listening, so the kernel sends no port unreachable this time.
        let _sink = UdpSocket::bind("10.0.1.10:9000").unwrap();
        let udp_raw = raw_socket(libc::IPPROTO_UDP, 30);
        let icmp_raw = raw_socket(libc::IPPROTO_ICMP, 30);
        ready_tx.send(()).unwrap();
        let mut pkt = [0u8; 2048];
        let n = loop {
            let n = unsafe {
                libc::recv(
                    udp_raw.as_raw_fd(),
                    pkt.as_mut_ptr() as *mut libc::c_void,
                    pkt.len(),
                    0,
                )
            };
            assert!(n > 0, "no datagram: {}", std::io::Error::last_os_error());
            let ihl = (pkt[0] & 0xf) as usize * 4;
            if u16::from_be_bytes([pkt[ihl + 2], pkt[ihl + 3]]) == 9000 {
                break n as usize;
            }
        };
        let from = std::net::Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
        let mut msg = vec![3u8, 4, 0, 0, 0, 0];
        msg.extend_from_slice(&1200u16.to_be_bytes());
        msg.extend_from_slice(&pkt[..n.min(548)]);
        let c = vpc::packet::checksum(&[&msg]);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        let to = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(from.octets()),
            },
            sin_zero: [0; 8],
        };
        let r = unsafe {
            libc::sendto(
                icmp_raw.as_raw_fd(),
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
                &to as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        assert_eq!(r, msg.len() as isize, "{}", std::io::Error::last_os_error());
        from
    });
    ready_rx.recv().unwrap();
    let mtu = spawn_in_netns(&fn_ns, || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.connect("10.0.1.10:9000").unwrap();
        set_int_opt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        );
        let before = ip_mtu(&s);
        s.send(b"probe").unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut mtu = before;
        while mtu == before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            mtu = ip_mtu(&s);
        }
        // The error is also reported once on the socket (EMSGSIZE); then a
        // datagram over the new path MTU is refused at the source, and a
        // small one still goes.
        let _ = s.send(b"pending error");
        let big = s.send(&[0u8; 1300]).map_err(|e| e.raw_os_error());
        let small = s.send(b"small").is_ok();
        (before, mtu, big, small)
    })
    .join()
    .unwrap();
    let eni = db.join().unwrap();
    assert_eq!(eni.to_string(), d.eni_address("PrivateSubnetA"));
    assert_eq!(mtu.0, 1500);
    assert_eq!(mtu.1, 1200, "the function's path MTU follows the error");
    assert_eq!(mtu.2, Err(Some(libc::EMSGSIZE)));
    assert!(mtu.3, "datagrams within the path MTU still go");
    let route = std::process::Command::new("ip")
        .args(["-n", &fn_ns, "route", "get", "10.0.1.10"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&route.stdout).contains("mtu 1200"),
        "{}",
        text(&route)
    );
    assert_eq!(d.dropped("icmp_error_untracked"), 0);
}

/// Accepts connections on `addr` and holds them open until stopped (the
/// connections an ENI counts stay while the test looks); `stop` returns
/// every peer.
fn tcp_holder(ns: &str, addr: &str) -> Running<Vec<SocketAddr>> {
    let addr: SocketAddr = addr.parse().unwrap();
    Running::start(ns, move |ready, stop| {
        let l = TcpListener::bind(addr).expect("bind");
        l.set_nonblocking(true).unwrap();
        ready.send(()).unwrap();
        let (mut peers, mut held) = (vec![], vec![]);
        loop {
            match l.accept() {
                Ok((s, peer)) => {
                    peers.push(peer);
                    held.push(s);
                }
                Err(_) if stop.load(Relaxed) => return peers,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    })
}

/// `n` TCP connections from a function's execution environment to `to`,
/// held open by the caller; those that did not open within `secs` are
/// missing (a dropped SYN is retried by TCP after 1 s).
fn open_connections(
    d: &Deployment,
    function: &str,
    to: &str,
    n: usize,
    secs: u64,
) -> Vec<TcpStream> {
    let to: SocketAddr = to.parse().unwrap();
    let ns = d.exec_env_netns(function);
    (0..n)
        .map(|_| {
            spawn_in_netns(&ns, move || {
                TcpStream::connect_timeout(&to, Duration::from_secs(secs)).ok()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .filter_map(|h| h.join().unwrap())
        .collect()
}

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

/// Each ENI's id, address and groups.
fn eni_ids(d: &Deployment) -> Vec<String> {
    d.eni_list()
        .iter()
        .map(|e| format!("{} {} {}", e["id"], e["address"], e["security_groups"]))
        .collect()
}

/// The links (link id, program id) of the deployment's router programs,
/// XDP and TC: the same ids after an agent restart mean nothing was
/// re-attached.
fn router_links(d: &Deployment) -> Vec<(u32, u32)> {
    let progs = vpc::deploy::pin_dir(&d.name).join("progs");
    let ids: Vec<u32> = [
        vpc::datapath::ROUTER_PROGRAM,
        vpc::datapath::ROUTER_TC_PROGRAM,
    ]
    .iter()
    .filter_map(|p| aya::programs::ProgramInfo::from_pin(progs.join(p)).ok())
    .map(|i| i.id())
    .collect();
    let mut links: Vec<(u32, u32)> = aya::programs::loaded_links()
        .filter_map(Result::ok)
        .filter(|l| ids.contains(&l.program_id()))
        .map(|l| (l.id(), l.program_id()))
        .collect();
    links.sort();
    links
}

#[test]
fn a_killed_agent_drops_no_connection_and_its_successor_adopts_the_pinned_datapath() {
    let d = Deployment::up("e2ekill", "default", FAST);
    let db = "10.0.1.10";
    let progs = router_links(&d);
    assert!(!progs.is_empty());
    let first = d.status()["agent_pid"].as_u64().expect("a running agent");
    let enis = eni_ids(&d);

    let listen = format!("timeout --foreground 300 nc -4 -l {db} 5432 | sha256sum");
    let server = Child::spawn(&d, &["exec", "DatabaseInstance", "--", "sh", "-c", &listen]);
    wait_for("the server to listen", 30, || {
        let ss = d.vpc(&[
            "exec",
            "DatabaseInstance",
            "--",
            "ss",
            "-Hltn",
            "sport = :5432",
        ]);
        !String::from_utf8_lossy(&ss.stdout).trim().is_empty()
    });
    // One connection sending 64 KiB every 50 ms until the test says stop:
    // the agent dies and a new one starts in the middle of it, however
    // long that takes.
    let sent = TempPath::new(&format!("{}-stream", d.name));
    let stop = TempPath::new(&format!("{}-stream-stop", d.name));
    let cmd = format!(
        "set -e; while [ ! -e {s} ]; do head -c 65536 /dev/urandom; sleep 0.05; done \
         | tee {f} | timeout --foreground 300 nc -4 -N {db} 5432; wc -c < {f}; sha256sum < {f}",
        f = sent.0.display(),
        s = stop.0.display()
    );
    let client = Child::spawn(&d, &["invoke", "orders", "--", "sh", "-c", &cmd]);
    wait_for("the stream to be tracked", 30, || {
        d.vpc(&["conntrack", "list"])
            .stdout
            .windows(4)
            .any(|w| w == b"5432")
    });

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the agent to be gone", 30, || {
        d.status()["agent_running"] == false
    });
    // No agent: the pinned programs forward on their own.
    let forwarded = || d.status()["counters"]["forwarded"].as_u64().unwrap();
    let before = forwarded();
    wait_for("packets forwarded with no agent", 30, || {
        forwarded() > before
    });

    let out = d.vpc(&["agent", "--detach"]);
    assert!(out.status.success(), "{}", text(&out));
    let second = d.status()["agent_pid"].as_u64().expect("the new agent");
    assert_ne!(second, first);
    // Only one agent at a time.
    let again = d.vpc(&["agent", "--detach"]);
    assert!(!again.status.success());
    assert!(
        text(&again).contains(&format!("an agent (pid {second}) already runs")),
        "{}",
        text(&again)
    );

    // The stream goes on under the new agent (a few more chunks), then ends.
    let size = || std::fs::metadata(&sent.0).map(|m| m.len()).unwrap_or(0);
    let at_restart = size();
    wait_for("the stream to go on", 30, || {
        size() >= at_restart + 4 * 65536
    });
    std::fs::write(&stop.0, b"").unwrap();
    let client = client.wait();
    assert!(client.status.success(), "{}", text(&client));
    let received = server.wait();
    let client_out = String::from_utf8_lossy(&client.stdout).into_owned();
    let mut lines = client_out.lines();
    let len: u64 = lines.next().unwrap_or_default().parse().unwrap_or(0);
    assert!(
        len >= at_restart + 4 * 65536 && len.is_multiple_of(65536),
        "whole chunks sent across the restart: {client_out}"
    );
    let want = lines.next().unwrap().split_whitespace().next().unwrap();
    let got = String::from_utf8_lossy(&received.stdout);
    assert_eq!(
        got.split_whitespace().next(),
        Some(want),
        "the bytes that arrived differ from those sent"
    );

    // Adopted, not recreated: the same programs on the same ports, the
    // function still Active, and the new agent does the agent's work.
    assert_eq!(router_links(&d), progs);
    let s = d.status();
    assert_eq!(s["functions"][0]["state"], "Active", "{s}");
    assert_eq!(eni_ids(&d), enis);
    let url = s["metrics_url"]
        .as_str()
        .expect("the new agent serves metrics")
        .to_string();
    assert!(http_get(&url).contains("packets_forwarded"));
}

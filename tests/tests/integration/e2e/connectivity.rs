//! What crosses the router: a function through its ENI to its database, and nothing else.
use vpc_tests::{connects, namespaces_with_prefix, tcp_server, text, wait_for, Deployment, FAST};

use super::{router_links, udp_echo_server, udp_request};

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

/// Two packets of one new UDP flow at the same moment from the two CPUs
/// (as a resolver's parallel A and AAAA queries from one socket): both
/// replies come back. The CPU whose entries lose the insert sends its
/// packet as part of the winner's connection (`ct::open`'s clash), rather
/// than leaving a reply entry whose NAT port no connection owns, whose
/// reply would be dropped as `hyperplane_unsolicited`. Without the fix a
/// few hundred tries lose replies on two CPUs; with it none may.
#[test]
fn a_new_flow_sent_from_two_cpus_at_once_gets_both_replies() {
    use std::{
        net::{SocketAddr, UdpSocket},
        sync::{atomic::Ordering::Relaxed, Barrier},
        time::{Duration, Instant},
    };
    use vpc_tests::Running;
    let d = Deployment::up("e2eclash", "default", FAST);
    // UDP 9000: what the default template's groups let through.
    let to: SocketAddr = "10.0.1.10:9000".parse().unwrap();
    let echo = Running::start(&d.netns("DatabaseInstance"), move |ready, stop| {
        let s = UdpSocket::bind(to).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        ready.send(()).unwrap();
        let mut buf = [0u8; 64];
        while !stop.load(Relaxed) {
            if let Ok((n, peer)) = s.recv_from(&mut buf) {
                let _ = s.send_to(&buf[..n], peer);
            }
        }
    });
    const FLOWS: u16 = 300;
    let lost = vpc_tests::spawn_in_netns(&d.exec_env_netns("OrdersFunction"), move || {
        let cpus = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(2);
        let mut lost: u32 = 0;
        for i in 0..FLOWS {
            // Two sockets on one local port: one 5-tuple, two senders.
            let pair: Vec<UdpSocket> = (0..2).map(|_| bind_shared(40000 + i)).collect();
            let go = Barrier::new(2);
            std::thread::scope(|sc| {
                for (n, s) in pair.iter().enumerate() {
                    let go = &go;
                    sc.spawn(move || {
                        let mut set = nix::sched::CpuSet::new();
                        set.set(n % cpus).unwrap();
                        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
                        go.wait();
                        s.send_to(&[n as u8], to).unwrap();
                    });
                }
            });
            let mut got = 0;
            let deadline = Instant::now() + Duration::from_secs(2);
            let mut buf = [0u8; 64];
            while got < 2 && Instant::now() < deadline {
                for s in &pair {
                    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                    if s.recv_from(&mut buf).is_ok() {
                        got += 1;
                    }
                }
            }
            lost += 2 - got;
            assert!(
                i < 10 || lost < 2 * (i as u32 + 1),
                "no reply at all: the path is broken, not racing"
            );
        }
        lost
    })
    .join()
    .unwrap();
    echo.stop();
    assert_eq!(lost, 0, "replies lost out of {}", 2 * FLOWS as u32);
    assert_eq!(d.dropped("hyperplane_unsolicited"), 0);
    assert_eq!(d.dropped("ct_clash"), 0);
}

/// A UDP socket on `port` that another may share (`SO_REUSEPORT`, set
/// before binding).
fn bind_shared(port: u16) -> std::net::UdpSocket {
    use nix::sys::socket::{
        bind, setsockopt, socket, sockopt::ReusePort, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    setsockopt(&fd, ReusePort, &true).unwrap();
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(0, 0, 0, 0, port),
    )
    .unwrap();
    std::net::UdpSocket::from(fd)
}

//! Per-interface allowances end to end, with real sockets: one host floods
//! the VPC resolver and opens connections as fast as it can; another
//! host's new connections to a server open throughout, the flood's excess
//! is counted under the flooder's interface (`vpc status`, the metrics),
//! flow logs lose nothing, and once the flood stops the flooder's count of
//! tracked connections goes back to 0.
use std::{
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::atomic::Ordering::Relaxed,
    time::{Duration, Instant},
};

use vpc_tests::{fixture, http_get, spawn_in_netns, unique_name, wait_for, Deployment, Running};

/// The linklocal allowance: AWS's 1,024 packets per second.
const PPS: f64 = 1024.0;
/// The conntrack allowance the test sets (`--conntrack-allowance`).
const ALLOWANCE: i64 = 128;
const SERVER: &str = "10.0.1.10:8080";
const RESOLVER: &str = "10.0.0.2:53";

/// A DNS query for `example.com` (type A, recursion desired).
fn dns_query(id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in ["example", "com"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// One SYN to `to`, the socket closed at once (it sends nothing more; the
/// peer's SYN-ACK gets a RST): whether it went out.
fn syn(to: SocketAddr) -> bool {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, SockaddrStorage};
    use std::os::fd::AsRawFd;
    let Ok(s) = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK,
        None,
    ) else {
        return false;
    };
    connect(s.as_raw_fd(), &SockaddrStorage::from(to)) == Err(nix::errno::Errno::EINPROGRESS)
}

/// The `vpc status` entry of `node`'s interface.
fn interface(d: &Deployment, node: &str) -> serde_json::Value {
    d.status()["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["node"] == node)
        .unwrap_or_else(|| panic!("no interface of {node}"))
        .clone()
}

fn count(i: &serde_json::Value, field: &str) -> i64 {
    i["allowances"][field]
        .as_i64()
        .or_else(|| i[field].as_i64())
        .unwrap_or_else(|| panic!("{field} in {i}"))
}

/// Accepts connections on `addr` and closes them at once until stopped:
/// how many.
fn server(ns: &str, addr: &str) -> Running<usize> {
    let addr: SocketAddr = addr.parse().unwrap();
    Running::start(ns, move |ready, stop| {
        let l = TcpListener::bind(addr).expect("bind");
        l.set_nonblocking(true).unwrap();
        ready.send(()).unwrap();
        let mut n = 0;
        while !stop.load(Relaxed) {
            match l.accept() {
                Ok(_) => n += 1,
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        n
    })
}

#[test]
fn one_flooding_host_cannot_stop_anothers_new_connections() {
    let logs = std::env::temp_dir().join(unique_name("vpc-allowances"));
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _logs = Remove(logs.clone());
    let logs_arg = logs.display().to_string();
    // A table of 512 connections, which one host could fill on its own;
    // short timeouts, so the flood's connections go soon after it stops.
    let d = Deployment::up(
        "allow",
        fixture!("allowances.yaml"),
        &[
            "--conntrack-max",
            "1024",
            "--conntrack-allowance",
            &ALLOWANCE.to_string(),
            "--timeout",
            "udp=2",
            "--timeout",
            "udp-stream=2",
            "--timeout",
            "tcp-syn=2",
            "--timeout",
            "tcp-closed=1",
            "--flow-logs-dir",
            &logs_arg,
        ],
    );
    let (flooder, other) = (d.netns("Flooder"), d.netns("Other"));
    let accepted = server(&d.netns("Server"), SERVER);

    // 1. The resolver, from one socket as fast as it goes: a burst of
    // 1,024 and 1,024 a second pass, the rest is dropped and counted.
    let before = interface(&d, "Flooder");
    let (sent, took) = spawn_in_netns(&flooder, || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        let start = Instant::now();
        let mut sent = 0u32;
        while sent < 20_000 && start.elapsed() < Duration::from_secs(3) {
            if s.send_to(&dns_query(sent as u16), RESOLVER).is_ok() {
                sent += 1;
            }
        }
        let took = start.elapsed();
        // Kept open while the answers come: none is refused with ICMP.
        std::thread::sleep(Duration::from_millis(500));
        (sent, took)
    })
    .join()
    .unwrap();
    let after = interface(&d, "Flooder");
    let forwarded = count(&after, "forwarded") - count(&before, "forwarded");
    let limited = count(&after, "linklocal_allowance_exceeded")
        - count(&before, "linklocal_allowance_exceeded");
    // A coarse clock tick and a packet per CPU of slack.
    let bound = PPS + (PPS * took.as_secs_f64()).ceil() + 16.0;
    assert!(
        forwarded as f64 <= bound,
        "{forwarded} queries passed in {took:?} (sent {sent})"
    );
    assert!(
        forwarded >= PPS as i64 && limited > 0,
        "{forwarded} passed, {limited} limited of {sent}"
    );
    assert_eq!(d.dropped("linklocal_allowance_exceeded"), limited as u64);

    // 2. The flood: new sockets to the resolver and SYNs to the server, as
    // fast as they go, while the other host opens connections.
    let flood = Running::start(&flooder, |ready, stop| {
        let server: SocketAddr = SERVER.parse().unwrap();
        ready.send(()).unwrap();
        let (mut queries, mut syns) = (0u64, 0u64);
        while !stop.load(Relaxed) {
            if let Ok(s) = UdpSocket::bind("0.0.0.0:0") {
                if s.send_to(&dns_query(queries as u16), RESOLVER).is_ok() {
                    queries += 1;
                }
            }
            for _ in 0..4 {
                syns += syn(server) as u64;
            }
        }
        (queries, syns)
    });
    // Let the flood reach its allowance first.
    wait_for("the flooder at its allowance", 30, || {
        count(&interface(&d, "Flooder"), "conntrack_allowance_exceeded") > 0
    });
    for i in 0..10 {
        let to: SocketAddr = SERVER.parse().unwrap();
        let ok = spawn_in_netns(&other, move || {
            TcpStream::connect_timeout(&to, Duration::from_secs(5)).is_ok()
        })
        .join()
        .unwrap();
        assert!(ok, "connection {i} of the other host");
        let held = count(&interface(&d, "Flooder"), "connections");
        assert!(held <= ALLOWANCE + 2, "the flooder holds {held}");
    }
    // Its DNS too: the other host has its own linklocal allowance.
    let answered = spawn_in_netns(&other, || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        (0..3).any(|i| {
            let _ = s.send_to(&dns_query(i), RESOLVER);
            s.recv_from(&mut [0u8; 512]).is_ok()
        })
    })
    .join()
    .unwrap();
    assert!(answered, "the resolver answers the other host");
    let (queries, syns) = flood.stop();
    assert!(queries > 0 && syns > ALLOWANCE as u64, "{queries} {syns}");
    let s = d.status();
    let (f, o) = (interface(&d, "Flooder"), interface(&d, "Other"));
    assert!(count(&f, "conntrack_allowance_exceeded") > 0, "{f}");
    assert!(count(&f, "linklocal_allowance_exceeded") > limited, "{f}");
    assert_eq!(count(&o, "conntrack_allowance_exceeded"), 0, "{o}");
    assert_eq!(count(&o, "linklocal_allowance_exceeded"), 0, "{o}");
    assert_eq!(d.dropped("ct_full"), 0, "the table never filled");
    assert_eq!(
        d.dropped("conntrack_allowance_exceeded"),
        count(&f, "conntrack_allowance_exceeded") as u64
    );
    // The metrics, named as AWS's ENA statistics, per interface.
    let body = http_get(s["metrics_url"].as_str().expect("metrics"));
    let sample = |name: &str, node: &str| -> f64 {
        body.lines()
            .find(|l| l.starts_with(name) && l.contains(&format!("node=\"{node}\"")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{name} of {node} in\n{body}"))
    };
    assert!(sample("vpc_conntrack_allowance_exceeded_total", "Flooder") > 0.0);
    assert!(sample("vpc_linklocal_allowance_exceeded_total", "Flooder") > 0.0);
    assert_eq!(
        sample("vpc_conntrack_allowance_exceeded_total", "Other"),
        0.0
    );
    let available = sample("vpc_conntrack_allowance_available", "Other");
    assert!(
        available <= ALLOWANCE as f64 && available >= ALLOWANCE as f64 - 20.0,
        "{available}"
    );
    // 3. The flood over, its connections go, and the count with them.
    wait_for("the flooder's connections collected", 60, || {
        count(&interface(&d, "Flooder"), "connections") == 0
    });

    wait_for("the other host's too", 60, || {
        count(&interface(&d, "Other"), "connections") == 0
    });
    wait_for("an empty table", 60, || d.status()["connections"] == 0);
    assert!(accepted.stop() >= 10);
    // 4. Flow logs: the other host's connections are in its stream, and no
    // window of any interface says records were skipped.
    let other_eni = d.status()["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == "Other")
        .unwrap()["eni_id"]
        .as_str()
        .unwrap()
        .to_string();
    let stream = logs
        .join("cloudwatch/allowances")
        .join(format!("{other_eni}-all"));
    wait_for("the other host's records", 60, || {
        std::fs::read_to_string(&stream)
            .is_ok_and(|t| t.lines().filter(|l| l.contains(" 8080 6 ")).count() > 0)
    });
    for e in std::fs::read_dir(logs.join("cloudwatch/allowances")).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains("SKIPDATA"), "{}:\n{text}", p.display());
    }
    assert_eq!(d.status()["flow_log_stats"]["events_lost"], 0);
}

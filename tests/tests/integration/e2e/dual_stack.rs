//! IPv6 through a dual-stack function's ENI, 100 MB transfers, and the TC hook's GSO buffers.
use std::time::{Duration, Instant};

use vpc_tests::{connects, fixture, tcp_server, text, wait_for, Deployment, FAST};

use super::{tcp_holder, udp_echo_server, udp_request, Child, TempPath};

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

//! End to end through route tables and gateways: `vpc up` builds real
//! namespaces, real sockets and `nc` send real packets. The internet is the
//! project's own namespaces (test hosts at documentation addresses, RFC
//! 5737): nothing is ever sent beyond them.
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    time::{Duration, Instant},
};

use vpc_common::map_names;
use vpc_tests::{
    connects, fixture, spawn_in_netns, tcp_server, text, wait_for, Deployment, FAST, NAT_INSTANCE,
};

/// A public subnet (public addresses on launch) whose table sends
/// 0.0.0.0/0 to an internet gateway, attached to the VPC by `ATTACH` (or
/// not); a private subnet on the main table; a host on the internet.
const ROUTED: &str = fixture!("internet_gateway.yaml");

const ATTACH: &str = "  Attach: {Type: AWS::EC2::VPCGatewayAttachment, Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}}";

/// Web's public address: the first of the public pool (no Elastic IP).
const WEB_PUBLIC: &str = "198.51.100.10";

#[test]
fn a_public_instance_reaches_the_internet_and_is_reached_only_on_its_allowed_port() {
    let d = Deployment::up("gwb", &ROUTED.replace("ATTACH", ATTACH), FAST);
    // Out: the internet host sees the instance's public address.
    let server = tcp_server(&d.netns("Example"), "203.0.113.10:443");
    assert!(connects(&d, "exec", "Web", "203.0.113.10", 443, 5));
    let peer = server
        .finish(30)
        .expect("the internet host got the connection");
    assert_eq!(peer.ip().to_string(), WEB_PUBLIC);
    // In: to the public address, port 80 only (its group's rule).
    let server = tcp_server(&d.netns("Web"), "10.0.1.10:80");
    assert!(connects(&d, "exec", "Example", WEB_PUBLIC, 80, 5));
    let peer = server.finish(30).expect("the instance got the connection");
    assert_eq!(
        peer.ip().to_string(),
        "203.0.113.10",
        "groups see the real source"
    );
    let server = tcp_server(&d.netns("Web"), "10.0.1.10:22");
    assert!(!connects(&d, "exec", "Example", WEB_PUBLIC, 22, 1));
    assert!(d.dropped("sg_ingress_denied") >= 1);
    assert_eq!(server.stop(), None);
    // A private address does not reach the internet, nor anything beyond
    // the test hosts the internet either.
    assert!(!connects(&d, "exec", "Db", "203.0.113.10", 443, 1));
    assert!(d.dropped("no_route") >= 1);
    assert!(!connects(&d, "exec", "Web", "192.0.2.1", 443, 1));
    assert!(d.dropped("internet_unreachable") >= 1);
}

#[test]
fn detaching_the_internet_gateway_blackholes_its_route_and_cuts_connections() {
    let d = Deployment::up("gwa", &ROUTED.replace("ATTACH", ATTACH), FAST);
    // A connection from the instance to the internet host, kept open.
    let (tx, rx) = std::sync::mpsc::channel();
    let srv = spawn_in_netns(&d.netns("Example"), move || {
        let l = TcpListener::bind("203.0.113.10:443").unwrap();
        tx.send(()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        let mut lines = 0;
        // Echo what arrives until the client stops or the time runs out.
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            lines += 1;
            if s.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        lines
    });
    rx.recv().unwrap();
    let client = spawn_in_netns(&d.netns("Web"), || {
        let mut s = TcpStream::connect("203.0.113.10:443").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(b"one\n").unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        s
    });
    let mut conn = client.join().unwrap();
    // Detach the gateway (the attachment leaves the template): its route
    // stays, as a blackhole.
    d.apply(&ROUTED.replace("ATTACH", ""));
    // The established connection is cut: routing is stateless.
    let _ = conn.write_all(b"two\n");
    let mut buf = [0u8; 4];
    assert!(conn.read_exact(&mut buf).is_err(), "the reply came through");
    assert!(d.dropped("route_blackhole") >= 1);
    // New connections either way are dropped as blackholed.
    let blackholed = d.dropped("route_blackhole");
    assert!(!connects(&d, "exec", "Web", "203.0.113.10", 443, 1));
    assert!(!connects(&d, "exec", "Example", WEB_PUBLIC, 80, 1));
    assert!(d.dropped("route_blackhole") >= blackholed + 2);
    // The VPC itself still routes.
    let server = tcp_server(&d.netns("Db"), "10.0.2.10:5432");
    assert!(connects(&d, "exec", "Web", "10.0.2.10", 5432, 5));
    assert!(server.finish(30).is_some());
    drop(conn);
    let _ = srv.join();
}

/// The classic template: a VPC, two public and two private subnets, an
/// internet gateway, one NAT gateway (in public subnet A), and private
/// route tables sending 0.0.0.0/0 to it (`NATROUTES`, or not); a function
/// in the private subnets; a host on the internet.
const CLASSIC: &str = fixture!("nat_gateway_two_azs.yaml");

const NATROUTES: &str = "  NatA: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PrivateRtA, DestinationCidrBlock: 0.0.0.0/0, NatGatewayId: !Ref Nat}}\n  NatB: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PrivateRtB, DestinationCidrBlock: 0.0.0.0/0, NatGatewayId: !Ref Nat}}";

/// A function without `VpcConfig` runs in Lambda's own VPC, which has
/// internet access (AWS): it reaches the internet's hosts, from Lambda's
/// own NAT address, and resolves their names through the internet's
/// resolver; nothing of a customer VPC is reachable from it.
#[test]
fn a_function_without_vpc_config_reaches_the_internet_and_no_vpc() {
    let t = format!(
        "{}\n  Plain: {{Type: AWS::Lambda::Function, Properties: {{FunctionName: plain}}}}\n",
        ROUTED.replace("ATTACH", ATTACH)
    );
    let d = Deployment::up("gwo", &t, FAST);
    let server = tcp_server(&d.netns("Example"), "203.0.113.10:443");
    let out = d.vpc(&[
        "invoke",
        "plain",
        "--",
        "sh",
        "-c",
        "echo hi | timeout 5 nc -w2 203.0.113.10 443",
    ]);
    assert!(text(&out).contains("pong"), "{}", text(&out));
    let peer = server.finish(30).expect("the internet host got it");
    assert_eq!(
        peer.ip().to_string(),
        vpc::model::internet::LAMBDA_OWN_NAT.to_string()
    );
    // Its resolver is the internet's: a public name resolves.
    let out = d.vpc(&[
        "invoke",
        "plain",
        "--",
        "getent",
        "hosts",
        "lambda.us-east-1.amazonaws.com",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // Nothing in the VPC: neither its private addresses nor the ENI side.
    let db = tcp_server(&d.netns("Db"), "10.0.2.10:5432");
    assert!(!connects(&d, "invoke", "plain", "10.0.2.10", 5432, 1));
    assert_eq!(db.stop(), None);
    assert!(d.dropped("internet_unreachable") >= 1);
    // Nothing opens a connection to it from the internet.
    assert!(!connects(&d, "exec", "Example", "198.18.2.1", 443, 1));
}

fn classic(attach: bool, nat_routes: bool) -> String {
    CLASSIC
        .replace("ATTACH", if attach { ATTACH } else { "" })
        .replace("NATROUTES", if nat_routes { NATROUTES } else { "" })
}

/// The function (execution environment `env`) fetches a line from the
/// internet host's port 443: the reply, if any.
fn fetch(d: &Deployment, env: &str) -> Option<String> {
    let out = d.vpc(&[
        "invoke",
        "fetch",
        "--env",
        env,
        "--",
        "sh",
        "-c",
        "echo hi | timeout 5 nc -w2 203.0.113.10 443",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success() && text.contains("pong")).then_some(text)
}

/// The classic template, its private subnets behind one network ACL that
/// lets in TCP from outside the VPC on ports `from`-`to` only.
fn classic_private_inbound(from: u16, to: u16) -> String {
    let mut t = classic(true, true);
    t.push_str(&format!(
        "  PrivAcl: {{Type: AWS::EC2::NetworkAcl, Properties: {{VpcId: !Ref Vpc}}}}
  PrivAclA: {{Type: AWS::EC2::SubnetNetworkAclAssociation, Properties: {{SubnetId: !Ref PrivateA, NetworkAclId: !Ref PrivAcl}}}}
  PrivAclB: {{Type: AWS::EC2::SubnetNetworkAclAssociation, Properties: {{SubnetId: !Ref PrivateB, NetworkAclId: !Ref PrivAcl}}}}
  PrivIn: {{Type: AWS::EC2::NetworkAclEntry, Properties: {{NetworkAclId: !Ref PrivAcl, RuleNumber: 100, Protocol: 6, RuleAction: allow, CidrBlock: 0.0.0.0/0, PortRange: {{From: {from}, To: {to}}}}}}}
  PrivOut: {{Type: AWS::EC2::NetworkAclEntry, Properties: {{NetworkAclId: !Ref PrivAcl, RuleNumber: 100, Protocol: -1, RuleAction: allow, Egress: true, CidrBlock: 0.0.0.0/0}}}}
"
    ));
    t
}

/// A function's connection through the NAT gateway leaves its Hyperplane
/// ENI from a port of the ENI, as at AWS, and the gateway sends the replies
/// there: with ENIs of 1,000 ports (1024-2023) and the private subnets'
/// ACL letting in from the internet only those, a real connection from the
/// function gets its reply; with the ACL letting in only the range Linux
/// picks the execution environment's own ports from (32768-60999), the
/// reply is denied (`nacl_ingress_denied`).
#[test]
fn a_functions_connection_through_the_nat_gateway_is_judged_on_its_enis_port() {
    let d = Deployment::up(
        "gwe",
        &classic_private_inbound(1024, 2023),
        &["--eni-delay", "100ms", "--wait", "--eni-capacity", "1000"],
    );
    let server = tcp_server(&d.netns("Example"), "203.0.113.10:443");
    assert!(fetch(&d, "1").is_some(), "no answer through the ENI's port");
    let peer = server.finish(30).expect("the internet host got it");
    assert_eq!(peer.ip().to_string(), "198.51.100.10");
    assert_eq!(d.dropped("nacl_ingress_denied"), 0);
    d.apply(&classic_private_inbound(32768, 60999));
    let server = tcp_server(&d.netns("Example"), "203.0.113.10:443");
    assert!(
        fetch(&d, "1").is_none(),
        "a reply on the environment's port"
    );
    assert!(d.dropped("nacl_ingress_denied") >= 1);
    let _ = server.stop();
}

#[test]
fn the_classic_template_brings_a_private_function_to_the_internet_through_the_nat_gateway() {
    let d = Deployment::up("gwc", &classic(true, true), FAST);
    let nat_ip = "198.51.100.10";
    // Both execution environments (private subnets A and B) go out through
    // their ENI, then the NAT gateway: the internet host sees its Elastic IP.
    for env in ["1", "2"] {
        let server = tcp_server(&d.netns("Example"), "203.0.113.10:443");
        assert!(
            fetch(&d, env).is_some(),
            "env {env}: no answer from the internet"
        );
        let peer = server.finish(30).expect("the internet host got it");
        assert_eq!(peer.ip().to_string(), nat_ip, "env {env}");
    }
    // Without the private routes: nothing leaves the private subnets.
    d.apply(&classic(true, false));
    let server = tcp_server(&d.netns("Example"), "203.0.113.10:443");
    assert!(fetch(&d, "1").is_none());
    assert_eq!(server.stop(), None);
    assert!(d.dropped("no_route") >= 1);
    // The routes back, and the internet gateway detached: the NAT
    // gateway's own route is a blackhole, and stops it.
    d.apply(&classic(false, true));
    let server = tcp_server(&d.netns("Example"), "203.0.113.10:443");
    assert!(fetch(&d, "1").is_none());
    assert_eq!(server.stop(), None);
    assert!(d.dropped("route_blackhole") >= 1);
    // Attached again: it works again.
    d.apply(&classic(true, true));
    let server = tcp_server(&d.netns("Example"), "203.0.113.10:443");
    assert!(fetch(&d, "1").is_some(), "{}", d.status()["counters"]);
    assert!(server.finish(30).is_some());
}

#[test]
fn a_connection_idle_past_the_nat_gateways_timeout_gets_a_reset() {
    let d = Deployment::up(
        "gwd",
        &classic(true, true),
        &[
            "--eni-delay",
            "100ms",
            "--wait",
            "--timeout",
            "nat-gateway-idle=2",
        ],
    );
    // An echo server on the internet host.
    let (tx, rx) = std::sync::mpsc::channel();
    let srv = spawn_in_netns(&d.netns("Example"), move || {
        let l = TcpListener::bind("203.0.113.10:443").unwrap();
        tx.send(()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 || s.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    rx.recv().unwrap();
    // The function's execution environment talks, falls silent for longer
    // than the gateway's idle timeout, and talks again: reset.
    let client = spawn_in_netns(&d.exec_env_netns("Fn"), || {
        let mut s = TcpStream::connect("203.0.113.10:443").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(b"one\n").unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        std::thread::sleep(Duration::from_millis(3500));
        let _ = s.write_all(b"two\n");
        s.read(&mut buf).map_err(|e| e.kind())
    });
    let after_idle = client.join().unwrap();
    assert_eq!(
        after_idle,
        Err(std::io::ErrorKind::ConnectionReset),
        "the gateway's RST"
    );
    let status = d.status();
    assert!(
        status.to_string().contains("idle_timeouts\":1"),
        "IdleTimeoutCount in vpc status: {}",
        status["nat"]
    );
    drop(srv);
}

/// Makes instance `host` a router that masquerades what it forwards out
/// of `eth0`, as a NAT instance does; it sends no ICMP redirects, so the
/// traffic routed to it stays with it.
fn forward_and_masquerade(d: &Deployment, host: &str) {
    let setup = "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 \
                 net.ipv4.conf.eth0.send_redirects=0 && \
                 nft add table ip nat && \
                 nft 'add chain ip nat post { type nat hook postrouting priority 100; }' && \
                 nft add rule ip nat post oifname eth0 masquerade";
    let out = d.vpc(&["exec", host, "--", "sh", "-c", setup]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_nat_instance_takes_a_private_subnet_to_the_internet_only_without_its_source_dest_check() {
    let d = Deployment::up("gwn", &NAT_INSTANCE.replace("CHECK", "false"), FAST);
    forward_and_masquerade(&d, "NatInstance");
    // The internet host sees the NAT instance's public address.
    let server = tcp_server(&d.netns("Example"), "203.0.113.10:443");
    assert!(connects(&d, "exec", "App", "203.0.113.10", 443, 5));
    let peer = server.finish(30).expect("the internet host got it");
    assert_eq!(peer.ip().to_string(), "198.51.100.10");
    // Its group lets only 443 in from the private subnet.
    assert!(!connects(&d, "exec", "App", "203.0.113.10", 80, 1));
    assert!(d.dropped("sg_ingress_denied") >= 1);
    drop(d);
    // With the check on, EC2 hands it nothing that is not its own.
    let d = Deployment::up("gwo", &NAT_INSTANCE.replace("CHECK", "true"), FAST);
    forward_and_masquerade(&d, "NatInstance");
    let server = tcp_server(&d.netns("Example"), "203.0.113.10:443");
    assert!(!connects(&d, "exec", "App", "203.0.113.10", 443, 1));
    assert!(d.dropped("source_dest_check") >= 1);
    assert_eq!(server.stop(), None);
}

/// AWS's "more specific routing": subnet A's table sends subnet B's range
/// to a middlebox instance in a third subnet (source/destination check
/// off), which beats `local` by longest prefix. Without forwarding in the
/// instance nothing reaches B; with it (masquerading, as a NAT instance
/// does) B sees the instance's address.
const MORE_SPECIFIC: &str = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  A: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  B: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24}}
  M: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.3.0/24}}
  RtA: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}
  AssocA: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref A, RouteTableId: !Ref RtA}}
  ToB: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref RtA, DestinationCidrBlock: 10.0.2.0/24, InstanceId: !Ref Fw}}
  Sg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: 7000 from the VPC
      VpcId: !Ref Vpc
      SecurityGroupIngress: [{IpProtocol: tcp, FromPort: 7000, ToPort: 7000, CidrIp: 10.0.0.0/16}]
  Fw: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref M, PrivateIpAddress: 10.0.3.5, SourceDestCheck: false, SecurityGroupIds: [!Ref Sg]}}
  App: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref A, PrivateIpAddress: 10.0.1.10, SecurityGroupIds: [!Ref Sg]}}
  Db: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref B, PrivateIpAddress: 10.0.2.10, SecurityGroupIds: [!Ref Sg]}}
"#;

#[test]
fn a_route_more_specific_than_local_sends_a_subnets_traffic_through_a_middlebox() {
    let d = Deployment::up("gwms", MORE_SPECIFIC, FAST);
    let server = tcp_server(&d.netns("Db"), "10.0.2.10:7000");
    assert!(
        !connects(&d, "exec", "App", "10.0.2.10", 7000, 1),
        "the middlebox does not forward yet: nothing reaches B"
    );
    forward_and_masquerade(&d, "Fw");
    assert!(connects(&d, "exec", "App", "10.0.2.10", 7000, 5));
    let peer = server.finish(30).expect("B got the connection");
    assert_eq!(peer.ip().to_string(), "10.0.3.5", "through the middlebox");
}

/// Echoes every connection accepted on each of `addrs` in `ns` until
/// `stop`. Bumping `abort` makes it give up the connections it holds at
/// once (a RST, no FIN_WAIT: the tuple is free again); `open` counts those
/// not given up yet.
fn echo_servers(
    ns: &str,
    addrs: &[&str],
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    abort: std::sync::Arc<std::sync::atomic::AtomicU32>,
    open: std::sync::Arc<std::sync::atomic::AtomicU32>,
) -> std::thread::JoinHandle<()> {
    use std::sync::atomic::Ordering::Relaxed;
    struct Open(std::sync::Arc<std::sync::atomic::AtomicU32>);
    impl Drop for Open {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Relaxed);
        }
    }
    let addrs: Vec<SocketAddr> = addrs.iter().map(|a| a.parse().unwrap()).collect();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = spawn_in_netns(ns, move || {
        let ls: Vec<TcpListener> = addrs
            .iter()
            .map(|a| {
                let l = TcpListener::bind(a).expect("bind");
                l.set_nonblocking(true).unwrap();
                l
            })
            .collect();
        tx.send(()).unwrap();
        while !stop.load(Relaxed) {
            for l in &ls {
                if let Ok((s, _)) = l.accept() {
                    let (abort, born) = (abort.clone(), abort.load(Relaxed));
                    open.fetch_add(1, Relaxed);
                    let open = open.clone();
                    std::thread::spawn(move || {
                        // Counted down once the socket is closed (dropped
                        // before the guard declared ahead of it).
                        let _open = Open(open);
                        let mut s = s;
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_millis(100)))
                            .unwrap();
                        let mut buf = [0u8; 64];
                        let deadline = Instant::now() + Duration::from_secs(60);
                        while abort.load(Relaxed) == born && Instant::now() < deadline {
                            match s.read(&mut buf) {
                                Ok(0) => return,
                                Ok(n) => {
                                    if s.write_all(&buf[..n]).is_err() {
                                        return;
                                    }
                                }
                                Err(_) => {}
                            }
                        }
                        let linger = libc::linger {
                            l_onoff: 1,
                            l_linger: 0,
                        };
                        // SAFETY: a valid socket and option of its size.
                        unsafe {
                            libc::setsockopt(
                                std::os::fd::AsRawFd::as_raw_fd(&s),
                                libc::SOL_SOCKET,
                                libc::SO_LINGER,
                                &linger as *const _ as *const libc::c_void,
                                std::mem::size_of::<libc::linger>() as u32,
                            )
                        };
                    });
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    rx.recv().unwrap();
    h
}

/// Connects from the current namespace and has one line echoed.
fn echoed(addr: &str) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"one\n")?;
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf)?;
    Ok(s)
}

#[test]
fn a_nat_gateway_holds_its_ports_per_destination_until_a_test_clock_idles_them_out() {
    // One port per destination: a second connection to 203.0.113.10:443
    // finds none, while :444 still gets one; on a test clock, AWS's 350 s
    // idle timeout passes in an instant.
    let d = Deployment::up(
        "gwp",
        &classic(true, true),
        &[
            "--eni-delay",
            "0s",
            "--wait",
            "--clock",
            "test",
            "--nat-gateway-capacity",
            "1",
        ],
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let abort = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let open = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let srv = echo_servers(
        &d.netns("Example"),
        &["203.0.113.10:443", "203.0.113.10:444"],
        stop.clone(),
        abort.clone(),
        open.clone(),
    );
    // The function's execution environment, step by step as told.
    let (go, steps) = std::sync::mpsc::channel::<u32>();
    let (done, results) = std::sync::mpsc::channel::<std::io::Result<()>>();
    let client = spawn_in_netns(&d.exec_env_netns("Fn"), move || {
        let first = echoed("203.0.113.10:443");
        done.send(first.as_ref().map(|_| ()).map_err(|e| e.kind().into()))
            .unwrap();
        done.send(echoed("203.0.113.10:443").map(|_| ())).unwrap();
        let other = echoed("203.0.113.10:444");
        done.send(other.as_ref().map(|_| ()).map_err(|e| e.kind().into()))
            .unwrap();
        // Idle past the timeout: the first connection speaks again.
        steps.recv().unwrap();
        let mut s = first.unwrap();
        let _ = s.write_all(b"two\n");
        let mut buf = [0u8; 4];
        done.send(s.read(&mut buf).map(|_| ())).unwrap();
        // Its port free again: a new connection to the same destination.
        steps.recv().unwrap();
        done.send(echoed("203.0.113.10:443").map(|_| ())).unwrap();
    });
    let next = || results.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(next().is_ok(), "the first connection to :443");
    assert!(next().is_err(), "a second one to :443 has no port");
    assert!(next().is_ok(), "a connection to :444 has its own");
    let s = d.status();
    assert!(
        s["nat"]["failed"].as_u64().unwrap() >= 1,
        "ErrorPortAllocation: {}",
        s["nat"]
    );
    assert!(d.dropped("nat_port_exhausted") >= 1);
    // 355 s on the test clock: past 350 s, within the GC's grace (tcp-closed,
    // 60 s).
    let out = d.vpc(&["clock", "advance", "355s"]);
    assert!(out.status.success(), "{}", text(&out));
    go.send(1).unwrap();
    assert_eq!(
        next().map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "the gateway's RST"
    );
    assert!(d.status().to_string().contains("idle_timeouts\":1"));
    // Past the grace, the GC (every second, however loaded the machine)
    // gives the port back.
    let out = d.vpc(&["clock", "advance", "65s"]);
    assert!(out.status.success(), "{}", text(&out));
    let claims = || {
        d.status()["maps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["map"] == map_names::NAT_PORTS)
            .unwrap()["entries"]
            .as_u64()
            .unwrap()
    };
    wait_for("both connections idled out, their ports back", 30, || {
        claims() == 0
    });
    // The gateway's next connection to :443 leaves from the same port
    // 1024: the server gives up its stale end first (the gateway's RST
    // went only to the VPC side, as at AWS; it would answer the new SYN
    // with an ACK of the old connection).
    abort.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    wait_for("the server to give up its connections", 30, || {
        open.load(std::sync::atomic::Ordering::Relaxed) == 0
    });
    go.send(2).unwrap();
    let r = next();
    assert!(
        r.is_ok(),
        "the port is free again: {r:?} {}\n{}",
        text(&d.vpc(&["conntrack", "list"])),
        d.status()
    );
    client.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    srv.join().unwrap();
}

#[test]
fn a_private_instance_pings_the_internet_through_the_nat_gateway() {
    let app = "  App: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref PrivateA, PrivateIpAddress: 10.0.2.10, SecurityGroupIds: [!Ref FnSg]}}\n";
    let d = Deployment::up("gwi", &format!("{}{app}", classic(true, true)), FAST);
    let out = d.vpc(&[
        "exec",
        "App",
        "--",
        "ping",
        "-c",
        "2",
        "-W",
        "2",
        "203.0.113.10",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // The echo went out from the Elastic IP with the gateway's identifier,
    // and its reply came back to the instance.
    let ct = text(&d.vpc(&["conntrack", "list"]));
    assert!(
        ct.lines().any(|l| l.contains("icmp")
            && l.contains("src=10.0.2.10 dst=203.0.113.10")
            && l.contains("src=203.0.113.10 dst=198.51.100.10")),
        "{ct}"
    );
    // Without the route, no echo leaves.
    d.apply(&format!("{}{app}", classic(true, false)));
    let out = d.vpc(&[
        "exec",
        "App",
        "--",
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        "203.0.113.10",
    ]);
    assert!(!out.status.success());
    assert!(d.dropped("no_route") >= 1);
}

/// A dual-stack VPC: the public subnet's table sends `::/0` to the
/// internet gateway, the private subnet's to an egress-only gateway. Web
/// (public) accepts port 80, Db (private) port 22, both from anywhere over
/// IPv6: only the gateway stands between Db and the internet. A function
/// with `Ipv6AllowedForDualStack` in the private subnet; a test host with
/// an IPv6 address.
const DUAL: &str = fixture!("ipv6_gateways_web_server.yaml");

const INET6: &str = "2001:db8:f00d::10";

/// `echo hi | nc -6` from `who` (`exec` a host, `invoke` a function) to
/// the internet host's port 443: whether "pong" came back.
fn fetch6(d: &Deployment, verb: &str, who: &str, host: &str) -> bool {
    let cmd = format!("echo hi | timeout 5 nc -6 -w2 {host} 443");
    let out = d.vpc(&[verb, who, "--", "sh", "-c", &cmd]);
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("pong")
}

#[test]
fn ipv6_through_an_egress_only_gateway_one_way_only() {
    let d = Deployment::up("gwe", DUAL, FAST);
    let db6 = "2001:db8:ec2:102::10";
    // Out from the instance: the internet host sees its own address.
    let server = tcp_server(&d.netns("Example"), &format!("[{INET6}]:443"));
    assert!(
        fetch6(&d, "exec", "Db", INET6),
        "{}",
        d.status()["counters"]
    );
    let peer = server.finish(30).expect("the internet host got it");
    assert_eq!(peer.ip().to_string(), db6, "no NAT for IPv6");
    // Out from the function, by name (the resolver's AAAA record): its
    // ENI's IPv6 address and a NAT port, then the gateway as it is.
    let eni6 = d.status()["enis"][0]["ipv6_address"]
        .as_str()
        .unwrap()
        .to_string();
    let server = tcp_server(&d.netns("Example"), &format!("[{INET6}]:443"));
    assert!(
        fetch6(&d, "invoke", "fetch6", "example.internet.test"),
        "{}",
        d.status()["counters"]
    );
    let peer = server.finish(30).expect("the internet host got it");
    assert_eq!(peer.ip().to_string(), eni6);
    assert!(peer.port() >= 1024);
    // In: refused at the gateway, though Db's group allows port 22; the
    // function's ENI opens nothing either.
    let before = d.dropped("egress_only_inbound");
    let server = tcp_server(&d.netns("Db"), &format!("[{db6}]:22"));
    assert!(!connects(&d, "exec", "Example", db6, 22, 1));
    assert_eq!(server.stop(), None);
    assert!(!connects(&d, "exec", "Example", &eni6, 22, 1));
    assert!(d.dropped("egress_only_inbound") >= before + 2);
    assert_eq!(d.dropped("sg_ingress_denied"), 0);
}

#[test]
fn a_public_instance_is_reached_over_ipv6_through_the_internet_gateway_on_its_allowed_port_only() {
    let d = Deployment::up("gwf", DUAL, FAST);
    let web6 = "2001:db8:ec2:101::10";
    // Out: its own address, no translation.
    let server = tcp_server(&d.netns("Example"), &format!("[{INET6}]:443"));
    assert!(
        fetch6(&d, "exec", "Web", INET6),
        "{}",
        d.status()["counters"]
    );
    assert_eq!(server.finish(30).unwrap().ip().to_string(), web6);
    // In: port 80 (its group's rule), the groups seeing the real source.
    let server = tcp_server(&d.netns("Web"), &format!("[{web6}]:80"));
    assert!(connects(&d, "exec", "Example", web6, 80, 5));
    let peer = server.finish(30).expect("the instance got it");
    assert_eq!(peer.ip().to_string(), INET6);
    // Any other port: its groups refuse it.
    let server = tcp_server(&d.netns("Web"), &format!("[{web6}]:22"));
    assert!(!connects(&d, "exec", "Example", web6, 22, 1));
    assert_eq!(server.stop(), None);
    assert!(d.dropped("sg_ingress_denied") >= 1);
    assert_eq!(d.dropped("egress_only_inbound"), 0);
}

#[test]
fn a_private_instances_large_udp_datagrams_cross_the_nat_gateway_in_fragments() {
    let app = "  App: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref PrivateA, PrivateIpAddress: 10.0.2.10, SecurityGroupIds: [!Ref FnSg]}}\n";
    let d = Deployment::up("gwf", &format!("{}{app}", classic(true, true)), FAST);
    // An echo server on the internet host: each datagram back as it came.
    let (tx, rx) = std::sync::mpsc::channel();
    let srv = spawn_in_netns(&d.netns("Example"), move || {
        let s = std::net::UdpSocket::bind("203.0.113.10:9999").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tx.send(()).unwrap();
        let mut peers = vec![];
        let mut buf = vec![0u8; 65536];
        for _ in 0..2 {
            let Ok((n, peer)) = s.recv_from(&mut buf) else {
                break;
            };
            peers.push((n, peer));
            s.send_to(&buf[..n], peer).unwrap();
        }
        peers
    });
    rx.recv().unwrap();
    // A whole datagram opens the connection, then 4,000 bytes: three
    // fragments on a 1,500-byte link, each way.
    let client = spawn_in_netns(&d.netns("App"), || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        s.connect("203.0.113.10:9999").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = vec![0u8; 65536];
        let mut got = vec![];
        for size in [10usize, 4000] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            s.send(&data).unwrap();
            got.push(s.recv(&mut buf).map(|n| n == size && buf[..n] == data[..]));
        }
        got
    });
    let got: Vec<bool> = client
        .join()
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap_or(false))
        .collect();
    assert_eq!(got, [true, true], "{}", d.status()["counters"]);
    let peers = srv.join().unwrap();
    assert_eq!(peers.len(), 2);
    assert_eq!(peers[1].0, 4000, "reassembled whole");
    assert_eq!(
        peers[1].1.ip().to_string(),
        "198.51.100.10",
        "from the Elastic IP"
    );
    // One whole datagram and three fragments each way.
    let ct = text(&d.vpc(&["conntrack", "list"]));
    let line = ct.lines().find(|l| l.contains("dport=9999")).expect(&ct);
    assert_eq!(line.matches("packets=4 ").count(), 2, "{line}");
}

/// The answer of an AWS service's public endpoint to `curl` by its regional
/// name (the VPC resolver answers it), run by `args` (`exec X`, `invoke F`).
fn public_service(d: &Deployment, args: &[&str], service: &str) -> Option<serde_json::Value> {
    let url = format!("http://{service}.us-east-1.amazonaws.com/x");
    let mut a = args.to_vec();
    a.extend(["--", "curl", "-sS", "--max-time", "5", url.as_str()]);
    let out = d.vpc(&a);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// AWS's public service endpoints (S3, DynamoDB, SQS, STS here) are
/// reached as at AWS through an internet gateway, from a public address,
/// and through a NAT gateway, from the gateway's address; not from a
/// subnet with no way out.
#[test]
fn public_service_endpoints_are_reached_through_the_internet_and_nat_gateways() {
    let d = Deployment::up("gwsvc", &ROUTED.replace("ATTACH", ATTACH), FAST);
    for service in ["s3", "dynamodb", "sqs", "sts"] {
        let r = public_service(&d, &["exec", "Web"], service)
            .unwrap_or_else(|| panic!("{service} through the internet gateway"));
        assert_eq!(
            r["Service"],
            format!("com.amazonaws.us-east-1.{service}"),
            "{r}"
        );
        assert_eq!(r["VpcEndpointId"], "-");
        assert_eq!(r["SourceIp"], WEB_PUBLIC, "from its public address: {r}");
    }
    assert_eq!(
        public_service(&d, &["exec", "Db"], "sqs"),
        None,
        "no route out"
    );
    drop(d);
    let d = Deployment::up("gwsvn", &classic(true, true), FAST);
    let r = public_service(&d, &["invoke", "fetch", "--env", "1"], "sts")
        .expect("sts through the NAT gateway");
    assert_eq!(r["Service"], "com.amazonaws.us-east-1.sts");
    assert_eq!(
        r["SourceIp"], "198.51.100.10",
        "from the NAT gateway's address: {r}"
    );
}

//! Route tables in the datapath, through BPF_PROG_TEST_RUN: the table of
//! the subnet a packet leaves decides, by longest prefix, before any group
//! or NAT port is looked at.
use std::net::IpAddr;

use vpc::packet::{parse_and_verify, Frame, L4, TCP_ACK, TCP_SYN};
use vpc_common::DropReason;
use vpc_tests::{fixture, in_private_netns, Harness, NAT_INSTANCE, XDP_DROP, XDP_REDIRECT};

/// A public subnet (0.0.0.0/0 to an attached internet gateway, a
/// prefix-list route and a static route to a detached one) and a private
/// subnet on the main table; a host and a function in each, the hosts with
/// Elastic IPs, a public-subnet host without one; one internet test host.
const TEMPLATE: &str = fixture!("route_tables.yaml");

fn syn(src: &str, dst: &str, sport: u16) -> Vec<u8> {
    let (s, d): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    Frame::new(
        s,
        d,
        L4::Tcp {
            sport,
            dport: 443,
            flags: TCP_SYN,
        },
    )
    .build()
}

/// The function's execution environment address (first function: .10).
fn env_addr(h: &Harness, id: &str) -> String {
    let f = h.model.functions.iter().find(|f| f.id == id).unwrap();
    f.envs()[0].ip.to_string()
}

#[test]
fn the_leaving_subnets_table_decides_by_longest_prefix_and_a_blackhole_drops() {
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        h.activate();
        let web = h.ifindex("Web");
        let db = h.ifindex("Db");
        let public_fn = h.ifindex("PublicFn");
        let private_fn = h.ifindex("PrivateFn");
        let quiet = h.ifindex("Quiet");
        let (pub_env, priv_env) = (env_addr(&h, "PublicFn"), env_addr(&h, "PrivateFn"));
        // (ingress, source, destination, expected drop or None: forwarded)
        let cases: Vec<(u32, &str, &str, Option<DropReason>)> = vec![
            // The local route, across subnets, both ways.
            (web, "10.0.1.10", "10.0.2.10", None),
            (db, "10.0.2.10", "10.0.1.10", None),
            // 0.0.0.0/0 -> the attached gateway; no test host owns it.
            (
                web,
                "10.0.1.10",
                "8.8.8.8",
                Some(DropReason::InternetUnreachable),
            ),
            // The gateway translates only hosts with a public address.
            (
                quiet,
                "10.0.1.20",
                "203.0.113.10",
                Some(DropReason::NoPublicAddress),
            ),
            // 192.0.2.0/24 is longer, and its gateway is detached.
            (
                web,
                "10.0.1.10",
                "192.0.2.1",
                Some(DropReason::RouteBlackhole),
            ),
            // The prefix list's entry (detached gateway) ...
            (
                web,
                "10.0.1.10",
                "198.51.100.1",
                Some(DropReason::RouteBlackhole),
            ),
            // ... loses to the equal static route.
            (
                web,
                "10.0.1.10",
                "203.0.113.1",
                Some(DropReason::InternetUnreachable),
            ),
            // The main table knows only the VPC.
            (db, "10.0.2.10", "8.8.8.8", Some(DropReason::NoRoute)),
            (db, "10.0.2.10", "192.0.2.1", Some(DropReason::NoRoute)),
            // A function leaves by its ENI's subnet, and its table.
            (public_fn, &pub_env, "10.0.2.10", None),
            (
                public_fn,
                &pub_env,
                "192.0.2.1",
                Some(DropReason::RouteBlackhole),
            ),
            // An ENI of Lambda never has a public address, public subnet or not.
            (
                public_fn,
                &pub_env,
                "203.0.113.10",
                Some(DropReason::NoPublicAddress),
            ),
            (private_fn, &priv_env, "8.8.8.8", Some(DropReason::NoRoute)),
            (private_fn, &priv_env, "10.0.1.10", None),
        ];
        for (i, (ingress, src, dst, want)) in cases.into_iter().enumerate() {
            let before = h.counters();
            let (verdict, _) = h.run(ingress, &syn(src, dst, 40000 + i as u16));
            let after = h.counters();
            match want {
                None => assert_eq!(verdict, XDP_REDIRECT, "{src} -> {dst}"),
                Some(reason) => {
                    assert_eq!(verdict, XDP_DROP, "{src} -> {dst}");
                    assert_eq!(
                        after.dropped(reason),
                        before.dropped(reason) + 1,
                        "{src} -> {dst}: {}",
                        reason.name()
                    );
                }
            }
        }
        // Route drops come before the NAT port claim: no port was taken by
        // the dropped function packets.
        use vpc::datapath::Maps;
        let claims: usize = h.dp.nat_claims().unwrap().values().sum();
        assert_eq!(claims, 2, "one claim per forwarded function connection");
    });
}

fn frame(src: &str, dst: &str, l4: L4) -> Vec<u8> {
    Frame::new(src.parse().unwrap(), dst.parse().unwrap(), l4).build()
}

fn tcp(src: &str, dst: &str, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    frame(
        src,
        dst,
        L4::Tcp {
            sport,
            dport,
            flags,
        },
    )
}

/// (source, destination, source port, destination port) of a forwarded
/// frame, every checksum verified.
fn seen(out: &[u8]) -> (String, String, u16, u16) {
    let p = parse_and_verify(out).unwrap();
    (p.src.to_string(), p.dst.to_string(), p.sport, p.dport)
}

#[test]
fn the_internet_gateway_translates_one_to_one_both_ways_and_only_for_its_routes() {
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        let (web, db, inet) = (h.ifindex("Web"), h.ifindex("Db"), h.ifindex("Example"));
        let s = |a: &str| a.to_string();
        // Out: the source becomes the Elastic IP (Elastic IPs are numbered in
        // logical-id order: DbIp .10, WebIp .11), the port stays.
        let (v, out) = h.run(web, &tcp("10.0.1.10", "203.0.113.10", 40000, 443, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(
            seen(&out),
            (s("198.51.100.11"), s("203.0.113.10"), 40000, 443)
        );
        // The reply, to the public address, back to the private one.
        let synack = tcp(
            "203.0.113.10",
            "198.51.100.11",
            443,
            40000,
            TCP_SYN | TCP_ACK,
        );
        let (v, out) = h.run(inet, &synack);
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(seen(&out), (s("203.0.113.10"), s("10.0.1.10"), 443, 40000));
        // In: a connection from the internet to the public address.
        let syn_in = tcp("203.0.113.10", "198.51.100.11", 50000, 22, TCP_SYN);
        let (v, out) = h.run(inet, &syn_in);
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(seen(&out), (s("203.0.113.10"), s("10.0.1.10"), 50000, 22));
        let reply = tcp("10.0.1.10", "203.0.113.10", 22, 50000, TCP_SYN | TCP_ACK);
        let (v, out) = h.run(web, &reply);
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(
            seen(&out),
            (s("198.51.100.11"), s("203.0.113.10"), 22, 50000)
        );
        // ICMP echo: the IPv4 header checksum follows the address.
        let ping = L4::Icmp {
            ty: 8,
            code: 0,
            id: 7,
            seq: 1,
        };
        let (v, out) = h.run(inet, &frame("203.0.113.10", "198.51.100.11", ping));
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(seen(&out).1, "10.0.1.10");
        let pong = L4::Icmp {
            ty: 0,
            code: 0,
            id: 7,
            seq: 1,
        };
        let (v, out) = h.run(web, &frame("10.0.1.10", "203.0.113.10", pong));
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(seen(&out).0, "198.51.100.11");
        // A public address nobody holds; the private address itself.
        let before = h.counters().dropped(DropReason::NoRoute);
        for dst in ["198.51.100.99", "10.0.1.10"] {
            let (v, _) = h.run(inet, &tcp("203.0.113.10", dst, 50001, 22, TCP_SYN));
            assert_eq!(v, XDP_DROP, "{dst}");
        }
        // Db has an Elastic IP, but its subnet (main table) has no route to
        // the gateway: neither way works.
        let (v, _) = h.run(
            inet,
            &tcp("203.0.113.10", "198.51.100.10", 50002, 22, TCP_SYN),
        );
        assert_eq!(v, XDP_DROP);
        let (v, _) = h.run(db, &tcp("10.0.2.10", "203.0.113.10", 40001, 443, TCP_SYN));
        assert_eq!(v, XDP_DROP);
        assert_eq!(h.counters().dropped(DropReason::NoRoute), before + 4);
        // The internet host cannot pretend to be someone else.
        let (v, _) = h.run(
            inet,
            &tcp("203.0.113.11", "198.51.100.11", 50003, 22, TCP_SYN),
        );
        assert_eq!(v, XDP_DROP);
        assert_eq!(h.counters().dropped(DropReason::Spoofed), 1);
    });
}

/// AWS's classic layout, cut to one AZ: a public subnet with the NAT
/// gateway (0.0.0.0/0 to the internet gateway), a private subnet whose
/// table sends 0.0.0.0/0 to the NAT gateway, a host and a function there;
/// two internet hosts.
const CLASSIC: &str = fixture!("nat_gateway.yaml");

fn udp(src: &str, dst: &str, sport: u16, dport: u16) -> Vec<u8> {
    frame(
        src,
        dst,
        L4::Udp {
            sport,
            dport,
            no_checksum: false,
        },
    )
}

#[test]
fn a_nat_gateway_translates_hosts_and_functions_to_its_elastic_ip_and_back() {
    in_private_netns(|| {
        let mut h = Harness::new(CLASSIC);
        h.activate();
        let (app, func, inet) = (h.ifindex("App"), h.ifindex("Fn"), h.ifindex("Example"));
        let exec = env_addr(&h, "Fn");
        let nat_ip = "198.51.100.10";
        // A host: its source becomes the gateway's Elastic IP and a port of
        // the gateway's; the reply comes back to it.
        let (v, out) = h.run(app, &tcp("10.0.2.10", "203.0.113.10", 40000, 443, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT);
        let (src, dst, port, dport) = seen(&out);
        assert_eq!(
            (src.as_str(), dst.as_str(), dport),
            (nat_ip, "203.0.113.10", 443)
        );
        assert!(port >= 1024);
        let (v, out) = h.run(
            inet,
            &tcp("203.0.113.10", nat_ip, 443, port, TCP_SYN | TCP_ACK),
        );
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(
            seen(&out),
            ("203.0.113.10".into(), "10.0.2.10".into(), 443, 40000)
        );
        // A function: its ENI, then the gateway, in one rewrite each way.
        let (v, out) = h.run(func, &udp(&exec, "203.0.113.10", 5000, 53));
        assert_eq!(v, XDP_REDIRECT);
        let (src, _, uport, _) = seen(&out);
        assert_eq!(src, nat_ip);
        let (v, out) = h.run(inet, &udp("203.0.113.10", nat_ip, 53, uport));
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(seen(&out), ("203.0.113.10".into(), exec.clone(), 53, 5000));
        // Nothing opens a connection to the gateway from the internet.
        let (v, _) = h.run(inet, &tcp("203.0.113.10", nat_ip, 50000, 80, TCP_SYN));
        assert_eq!(v, XDP_DROP);
        // ICMP echo: the identifier is the "port", the gateway's own out,
        // the host's back, with the ICMP checksum following it.
        let echo = |ty, id| L4::Icmp {
            ty,
            code: 0,
            id,
            seq: 1,
        };
        let id_of = |f: &[u8]| u16::from_be_bytes([f[38], f[39]]);
        let (v, out) = h.run(app, &frame("10.0.2.10", "203.0.113.10", echo(8, 7)));
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(seen(&out).0, nat_ip, "every checksum verified");
        let nat_id = id_of(&out);
        assert!(nat_id >= 1024);
        let (v, out) = h.run(inet, &frame("203.0.113.10", nat_ip, echo(0, nat_id)));
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(seen(&out).1, "10.0.2.10");
        assert_eq!(id_of(&out), 7);
        // The echo request's key does not open the way in.
        let (v, _) = h.run(inet, &frame("203.0.113.10", nat_ip, echo(8, nat_id)));
        assert_eq!(v, XDP_DROP);
        // Other ICMP has nothing to translate: dropped.
        let before = h.counters().dropped(DropReason::NatGatewayProtocol);
        let (v, _) = h.run(app, &frame("10.0.2.10", "203.0.113.10", echo(13, 7)));
        assert_eq!(v, XDP_DROP);
        let other = L4::Other { proto: 47 };
        let (v, _) = h.run(app, &frame("10.0.2.10", "203.0.113.10", other));
        assert_eq!(v, XDP_DROP);
        assert_eq!(
            h.counters().dropped(DropReason::NatGatewayProtocol),
            before + 2
        );
        // An ICMP error about the host's connection (port unreachable,
        // quoting what the gateway sent) goes back to the host translated.
        let (v, sent) = h.run(app, &udp("10.0.2.10", "203.0.113.10", 5001, 53));
        assert_eq!(v, XDP_REDIRECT);
        let err = L4::IcmpError {
            ty: 3,
            code: 3,
            info: 0,
            quote: vpc::packet::quote(&sent, 548),
        };
        let (v, out) = h.run(inet, &frame("203.0.113.10", nat_ip, err));
        assert_eq!(v, XDP_REDIRECT);
        let (o, q) = vpc::packet::parse_icmp_error(&out).expect("every checksum valid");
        assert_eq!(o.dst.to_string(), "10.0.2.10");
        assert_eq!(
            (q.src.to_string(), q.sport, q.dst.to_string(), q.dport),
            ("10.0.2.10".into(), 5001, "203.0.113.10".into(), 53)
        );
    });
}

#[test]
fn a_nat_gateway_counts_its_ports_per_destination_and_idle_ones_expire() {
    use vpc::datapath::{Maps, Timeouts};
    in_private_netns(|| {
        let mut h = Harness::new(CLASSIC);
        // One port per destination and protocol (so always 1024);
        // connections idle for 350 s (on the datapath's test clock: no
        // real-time window to miss) are forgotten.
        h.dp.set_nat_gateway_capacity(1).unwrap();
        let t = Timeouts {
            tcp_closed: std::time::Duration::from_millis(1),
            ..Timeouts::default()
        };
        h.dp.set_timeouts(&t).unwrap();
        let (app, inet, other) = (h.ifindex("App"), h.ifindex("Example"), h.ifindex("Other"));
        let nat_ip = "198.51.100.10";
        let out_port = |h: &mut Harness, sport: u16, dst: &str, dport: u16| {
            let (v, out) = h.run(app, &tcp("10.0.2.10", dst, sport, dport, TCP_SYN));
            (v == XDP_REDIRECT).then(|| seen(&out))
        };
        let first = out_port(&mut h, 40000, "203.0.113.10", 443);
        assert_eq!(
            first,
            Some((nat_ip.into(), "203.0.113.10".into(), 1024, 443))
        );
        // The destination (address, port, protocol) is full ...
        assert_eq!(out_port(&mut h, 40001, "203.0.113.10", 443), None);
        assert_eq!(h.counters().dropped(DropReason::NatPortExhausted), 1);
        assert_eq!(h.dp.nat_stats().unwrap().failed, 1, "ErrorPortAllocation");
        // ... the others are not: another port, another address, another
        // protocol, each from the same source port 1024 of the gateway.
        assert_eq!(
            out_port(&mut h, 40001, "203.0.113.10", 444),
            Some((nat_ip.into(), "203.0.113.10".into(), 1024, 444))
        );
        assert_eq!(
            out_port(&mut h, 40002, "203.0.113.20", 443),
            Some((nat_ip.into(), "203.0.113.20".into(), 1024, 443))
        );
        let (v, out) = h.run(app, &udp("10.0.2.10", "203.0.113.10", 5000, 443));
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(seen(&out).2, 1024);
        assert_eq!(h.dp.nat_claims().unwrap().values().sum::<usize>(), 4);
        // The 5-tuples stay unique: each reply finds its own connection.
        for (from, src, sport, to) in [
            (inet, "203.0.113.10", 443, 40000),
            (inet, "203.0.113.10", 444, 40001),
            (other, "203.0.113.20", 443, 40002),
        ] {
            let synack = tcp(src, nat_ip, sport, 1024, TCP_SYN | TCP_ACK);
            let (v, out) = h.run(from, &synack);
            assert_eq!(v, XDP_REDIRECT, "{src}:{sport}");
            assert_eq!(seen(&out), (src.into(), "10.0.2.10".into(), sport, to));
        }
        // Idle past the gateway's timeout: the next packet of a connection
        // gets a RST back from the gateway (AWS's IdleTimeoutCount), and
        // the GC takes the entries and the ports.
        h.dp.advance_clock(351_000_000_000).unwrap();
        let ack = tcp("10.0.2.10", "203.0.113.10", 40000, 443, TCP_ACK);
        let (v, out) = h.run(app, &ack);
        assert_eq!(v, XDP_REDIRECT, "the RST goes back to the sender");
        assert_eq!(
            seen(&out),
            ("203.0.113.10".into(), "10.0.2.10".into(), 443, 40000)
        );
        assert_eq!(out[47], vpc::packet::TCP_RST, "RST alone");
        assert_eq!(&out[38..42], &ack[42..46], "SEQ = the segment's ACK");
        assert_eq!(out[0..6], ack[6..12], "to the sender's MAC");
        assert_eq!(h.dp.nat_stats().unwrap().idle_timeouts, 1);
        std::thread::sleep(std::time::Duration::from_millis(10));
        assert_eq!(
            h.dp.ct_gc(&t).unwrap(),
            4,
            "three TCP and one UDP connection"
        );
        assert_eq!(h.dp.nat_claims().unwrap().values().sum::<usize>(), 0);
        assert_eq!(
            out_port(&mut h, 40003, "203.0.113.10", 443),
            Some((nat_ip.into(), "203.0.113.10".into(), 1024, 443)),
            "the port is free again"
        );
    });
}

#[test]
fn a_test_clock_ages_connections_through_the_nat_gateway() {
    use vpc::datapath::{Maps, Timeouts};
    in_private_netns(|| {
        let mut h = Harness::new(CLASSIC);
        h.dp.set_nat_gateway_capacity(1).unwrap();
        let t = Timeouts::default();
        h.dp.set_timeouts(&t).unwrap();
        let app = h.ifindex("App");
        let syn = |sport| tcp("10.0.2.10", "203.0.113.10", sport, 443, TCP_SYN);
        assert_eq!(h.run(app, &syn(40000)).0, XDP_REDIRECT);
        let synack = tcp(
            "203.0.113.10",
            "198.51.100.10",
            443,
            1024,
            TCP_SYN | TCP_ACK,
        );
        assert_eq!(h.run(h.ifindex("Example"), &synack).0, XDP_REDIRECT);
        assert_eq!(h.run(app, &syn(40001)).0, XDP_DROP, "full");
        // Established, AWS's 350 s, on a clock moved by 349 s: still there.
        h.dp.advance_clock(349_000_000_000).unwrap();
        assert_eq!(h.dp.ct_gc(&t).unwrap(), 0);
        let ack = tcp("10.0.2.10", "203.0.113.10", 40000, 443, TCP_ACK);
        let (v, out) = h.run(app, &ack);
        assert_eq!((v, seen(&out).1.as_str()), (XDP_REDIRECT, "203.0.113.10"));
        // 351 s idle: forgotten; its next packet is reset.
        h.dp.advance_clock(351_000_000_000).unwrap();
        let (v, out) = h.run(app, &ack);
        assert_eq!((v, out[47]), (XDP_REDIRECT, vpc::packet::TCP_RST));
        assert_eq!(h.dp.nat_stats().unwrap().idle_timeouts, 1);
        // The GC keeps it tcp-closed (10 s) for late packets, then frees
        // the port.
        h.dp.advance_clock(11_000_000_000).unwrap();
        assert_eq!(h.dp.ct_gc(&t).unwrap(), 1);
        assert_eq!(h.run(app, &syn(40001)).0, XDP_REDIRECT, "the port is free");
    });
}

#[test]
fn a_route_to_an_instance_hands_it_the_packet_unchanged_only_without_its_source_dest_check() {
    in_private_netns(|| {
        let mut h = Harness::new(&NAT_INSTANCE.replace("CHECK", "false"));
        h.activate();
        let (app, nat) = (h.ifindex("App"), h.ifindex("NatInstance"));
        let nat_mac = h.links["NatInstance"].mac;
        let s = |a: &str| a.to_string();
        // Out: to the NAT instance's interface, addresses and ports as sent.
        let (v, out) = h.run(app, &tcp("10.0.2.10", "203.0.113.10", 40000, 443, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(out[0..6], nat_mac);
        assert_eq!(seen(&out), (s("10.0.2.10"), s("203.0.113.10"), 40000, 443));
        // Its answer (what it translated back) comes from its interface
        // with the internet's address: part of the connection.
        let back = tcp("203.0.113.10", "10.0.2.10", 443, 40000, TCP_SYN | TCP_ACK);
        let (v, out) = h.run(nat, &back);
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(out[0..6], h.links["App"].mac);
        // Its inbound groups see the packet as it is: 443 only.
        let (v, _) = h.run(app, &tcp("10.0.2.10", "203.0.113.10", 40001, 80, TCP_SYN));
        assert_eq!(v, XDP_DROP);
        assert_eq!(h.counters().dropped(DropReason::SgIngressDenied), 1);
        // The function's packets go the same way, after its ENI's NAT.
        let env = env_addr(&h, "Fn");
        let (v, out) = h.run(
            h.ifindex("Fn"),
            &tcp(&env, "203.0.113.10", 40002, 443, TCP_SYN),
        );
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(out[0..6], nat_mac);
        let (src, dst, _, _) = seen(&out);
        assert_eq!(
            (src.starts_with("10.0.2."), dst.as_str()),
            (true, "203.0.113.10")
        );
        // Sending from an address not its own is still refused: only the
        // receiving side of the check is off here (see the README).
        let (v, _) = h.run(nat, &tcp("203.0.113.10", "10.0.2.10", 443, 40009, TCP_SYN));
        assert_eq!(v, XDP_DROP);
        assert_eq!(h.counters().dropped(DropReason::Spoofed), 1);
    });
    // With the check on, EC2 drops what is not for the instance.
    in_private_netns(|| {
        let mut h = Harness::new(&NAT_INSTANCE.replace("CHECK", "true"));
        let app = h.ifindex("App");
        let (v, _) = h.run(app, &tcp("10.0.2.10", "203.0.113.10", 40000, 443, TCP_SYN));
        assert_eq!(v, XDP_DROP);
        assert_eq!(h.counters().dropped(DropReason::SourceDestCheck), 1);
    });
}

/// A private subnet with no NAT gateway and no internet route: its table
/// has only the S3 gateway endpoint's route; another subnet on the main
/// table; an interface endpoint (SQS) in the private subnet whose group
/// admits the app's group on 443 only; `Tight` may send only to S3's
/// managed prefix list, on 443.
fn endpoints_template() -> String {
    let pl = vpc::model::endpoint::managed_prefix_list_id("us-east-1", "s3");
    fixture!("vpc_endpoints_prefix_list.yaml").replace("PL", &pl)
}

#[test]
fn a_gateway_endpoint_route_reaches_its_service_without_nat_and_the_service_opens_nothing() {
    in_private_netns(|| {
        let t = endpoints_template();
        let mut h = Harness::new(&t);
        h.activate();
        let (app, strict, lonely) = (h.ifindex("App"), h.ifindex("Strict"), h.ifindex("Lonely"));
        let (svc, func) = (h.ifindex("AwsServices"), h.ifindex("Fn"));
        let s3 = "198.18.0.10";
        let s = |a: &str| a.to_string();
        // Out by the endpoint's route, the private source unchanged.
        let (v, out) = h.run(app, &tcp("10.0.2.10", s3, 40000, 443, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(seen(&out), (s("10.0.2.10"), s(s3), 40000, 443));
        assert_eq!(
            out[0..6],
            h.links["AwsServices"].mac,
            "to the services' port"
        );
        // The reply is tracked: back to the instance.
        let (v, out) = h.run(svc, &tcp(s3, "10.0.2.10", 443, 40000, TCP_SYN | TCP_ACK));
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(seen(&out), (s(s3), s("10.0.2.10"), 443, 40000));
        // A new flow from the services: dropped.
        let before = h.counters();
        let (v, _) = h.run(svc, &tcp(s3, "10.0.2.10", 443, 22, TCP_SYN));
        assert_eq!(v, XDP_DROP);
        let r = DropReason::AwsServiceUnsolicited;
        assert_eq!(h.counters().dropped(r), before.dropped(r) + 1);
        // (ingress, source, destination, port, expected drop)
        let cases: Vec<(u32, &str, &str, u16, DropReason)> = vec![
            // The main table has no endpoint route.
            (lonely, "10.0.3.10", s3, 443, DropReason::NoRoute),
            // DynamoDB has no endpoint here.
            (app, "10.0.2.10", "198.18.0.11", 443, DropReason::NoRoute),
            // Egress to the managed prefix list on 443 only.
            (strict, "10.0.2.20", s3, 80, DropReason::SgEgressDenied),
        ];
        for (i, (ingress, src, dst, port, want)) in cases.into_iter().enumerate() {
            let before = h.counters();
            let (v, _) = h.run(ingress, &tcp(src, dst, 41000 + i as u16, port, TCP_SYN));
            assert_eq!(v, XDP_DROP, "{src} -> {dst}:{port}");
            assert_eq!(
                h.counters().dropped(want),
                before.dropped(want) + 1,
                "{}",
                want.name()
            );
        }
        let (v, _) = h.run(strict, &tcp("10.0.2.20", s3, 42000, 443, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT, "the prefix-list rule allows 443");
        // A function: its Hyperplane ENI's address, then the subnet's route.
        let exec = env_addr(&h, "Fn");
        let (v, out) = h.run(func, &tcp(&exec, s3, 5000, 443, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT);
        let (src, dst, nat_port, _) = seen(&out);
        // The endpoint's ENI took 10.0.2.4 first.
        assert_eq!(
            (src.as_str(), dst.as_str()),
            ("10.0.2.5", s3),
            "the Hyperplane ENI"
        );
        let (v, out) = h.run(svc, &tcp(s3, "10.0.2.5", 443, nat_port, TCP_SYN | TCP_ACK));
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(seen(&out), (s(s3), exec, 443, 5000));
        // A gateway endpoint's route leads to its service and nowhere else:
        // one written by hand for a VPC host is refused.
        use vpc::datapath::Maps;
        let mut e = h.entries.clone();
        let table = e.route_tables["PrivateRt"];
        let target = vpc_common::RouteTarget {
            kind: vpc_common::route_kind::GATEWAY_ENDPOINT,
            id: 1,
            ..Default::default()
        };
        let key = vpc_common::RouteKey {
            table_family: vpc::compile::route::table_family(table, false),
            addr: vpc_common::v4_mapped([10, 0, 3, 10]),
        };
        e.routes
            .push((vpc_common::ROUTE_FIXED_BITS + 128, key, target));
        h.dp.install(&e).unwrap();
        let r = DropReason::EndpointServiceMismatch;
        let before = h.counters().dropped(r);
        let (v, _) = h.run(app, &tcp("10.0.2.10", "10.0.3.10", 43000, 443, TCP_SYN));
        assert_eq!(v, XDP_DROP);
        assert_eq!(h.counters().dropped(r), before + 1);
    });
}

#[test]
fn an_interface_endpoint_eni_is_a_vpc_address_with_its_own_groups_and_opens_nothing() {
    in_private_netns(|| {
        let t = endpoints_template();
        let mut h = Harness::new(&t);
        h.activate();
        let (app, lonely, eni) = (h.ifindex("App"), h.ifindex("Lonely"), h.ifindex("Sqs.1"));
        let ip = h
            .model
            .hosts
            .iter()
            .find(|x| x.id == "Sqs.1")
            .unwrap()
            .ip
            .to_string();
        assert_eq!(ip, "10.0.2.4", "the subnet's first free address");
        let (v, out) = h.run(app, &tcp("10.0.2.10", &ip, 40000, 443, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(seen(&out).1, ip);
        let (v, _) = h.run(eni, &tcp(&ip, "10.0.2.10", 443, 40000, TCP_SYN | TCP_ACK));
        assert_eq!(v, XDP_REDIRECT, "the reply");
        let before = h.counters();
        let (v, _) = h.run(lonely, &tcp("10.0.3.10", &ip, 40001, 443, TCP_SYN));
        assert_eq!(v, XDP_DROP);
        let r = DropReason::SgIngressDenied;
        assert_eq!(
            h.counters().dropped(r),
            before.dropped(r) + 1,
            "not the app's group"
        );
        let (v, _) = h.run(eni, &tcp(&ip, "10.0.2.10", 443, 22, TCP_SYN));
        assert_eq!(v, XDP_DROP);
        let r = DropReason::AwsServiceUnsolicited;
        assert_eq!(h.counters().dropped(r), before.dropped(r) + 1);
    });
}

#[test]
fn a_private_nat_gateways_traffic_to_the_internet_gateway_is_dropped() {
    use vpc::datapath::Maps;
    let t = CLASSIC.replace(
        "SubnetId: !Ref Public, AllocationId: !GetAtt NatIp.AllocationId",
        "SubnetId: !Ref Public, ConnectivityType: private",
    );
    in_private_netns(|| {
        let mut h = Harness::new(&t);
        h.activate();
        let (app, func) = (h.ifindex("App"), h.ifindex("Fn"));
        let exec = env_addr(&h, "Fn");
        let ping = L4::Icmp {
            ty: 8,
            code: 0,
            id: 7,
            seq: 1,
        };
        for (port, frame) in [
            (app, tcp("10.0.2.10", "203.0.113.10", 40000, 443, TCP_SYN)),
            (app, frame("10.0.2.10", "203.0.113.10", ping)),
            (func, udp(&exec, "203.0.113.10", 5000, 53)),
        ] {
            let before = h.counters();
            let (v, _) = h.run(port, &frame);
            assert_eq!(v, XDP_DROP);
            assert_eq!(
                h.counters().dropped(DropReason::NatGatewayPrivateInternet),
                before.dropped(DropReason::NatGatewayPrivateInternet) + 1
            );
        }
        assert_eq!(h.dp.nat_claims().unwrap().values().sum::<usize>(), 0);
    });
}

/// A dual-stack VPC: a public subnet whose table sends `::/0` to the
/// internet gateway, a private one whose table sends it to an egress-only
/// gateway; an instance in each (both accept port 22 from anywhere over
/// IPv6, so only the gateway can refuse it), a dual-stack function in the
/// private subnet; a test host with an IPv6 address.
const DUAL: &str = fixture!("ipv6_gateways.yaml");

const INET6: &str = "2001:db8:f00d::10";
const WEB6: &str = "2001:db8:ec2:101::10";
const DB6: &str = "2001:db8:ec2:102::10";

/// The IPv6 address of the Hyperplane ENI in `subnet`.
fn eni6_in(h: &Harness, subnet: &str) -> String {
    let e = h.model.enis.iter().find(|e| e.subnet == subnet).unwrap();
    e.ip6.unwrap().to_string()
}

/// A forwarded frame, unchanged but for its MACs (no NAT for IPv6).
fn unchanged(v: u32, sent: &[u8], out: &[u8]) {
    assert_eq!(v, XDP_REDIRECT);
    assert_eq!(&out[12..], &sent[12..], "only the MACs change");
    parse_and_verify(out).unwrap();
}

#[test]
fn ipv6_crosses_the_internet_gateway_untranslated_both_ways_and_only_on_allowed_ports() {
    in_private_netns(|| {
        let mut h = Harness::new(DUAL);
        let (web, inet) = (h.ifindex("Web"), h.ifindex("Example"));
        // Out, and the reply.
        let syn = tcp(WEB6, INET6, 40000, 443, TCP_SYN);
        let (v, out) = h.run(web, &syn);
        unchanged(v, &syn, &out);
        assert_eq!(out[0..6], h.links["Example"].mac, "to the test host");
        let synack = tcp(INET6, WEB6, 443, 40000, TCP_SYN | TCP_ACK);
        let (v, out) = h.run(inet, &synack);
        unchanged(v, &synack, &out);
        assert_eq!(out[0..6], h.links["Web"].mac);
        // In: to the instance's own address, on its allowed port, and the reply.
        let syn_in = tcp(INET6, WEB6, 50000, 22, TCP_SYN);
        let (v, out) = h.run(inet, &syn_in);
        unchanged(v, &syn_in, &out);
        let reply = tcp(WEB6, INET6, 22, 50000, TCP_SYN | TCP_ACK);
        let (v, out) = h.run(web, &reply);
        unchanged(v, &reply, &out);
        // ICMPv6 echo in: the groups allow only port 22.
        let ping = L4::Icmp {
            ty: 128,
            code: 0,
            id: 9,
            seq: 1,
        };
        let (v, _) = h.run(inet, &frame(INET6, WEB6, ping));
        assert_eq!(v, XDP_DROP);
        // Another port: refused by the instance's groups.
        let (v, _) = h.run(inet, &tcp(INET6, WEB6, 50001, 80, TCP_SYN));
        assert_eq!(v, XDP_DROP);
        assert_eq!(h.counters().dropped(DropReason::SgIngressDenied), 2);
        // An address no test host owns; a test host sending as another.
        let (v, _) = h.run(web, &tcp(WEB6, "2001:db8:dead::1", 40001, 443, TCP_SYN));
        assert_eq!(v, XDP_DROP);
        assert_eq!(h.counters().dropped(DropReason::InternetUnreachable), 1);
        let (v, _) = h.run(inet, &tcp("2001:db8:f00d::11", WEB6, 50002, 22, TCP_SYN));
        assert_eq!(v, XDP_DROP);
        assert_eq!(h.counters().dropped(DropReason::Spoofed), 1);
        // A Hyperplane ENI's address opens nothing, IPv6 included (V2N is
        // outbound only), though its subnet routes to the internet gateway.
        let (v, _) = h.run(
            inet,
            &tcp(INET6, &eni6_in(&h, "Public"), 50003, 22, TCP_SYN),
        );
        assert_eq!(v, XDP_DROP);
        assert_eq!(h.counters().dropped(DropReason::HyperplaneUnsolicited), 1);
        // IPv4 still needs a public address, which Web has not.
        let (v, _) = h.run(web, &tcp("10.0.1.10", "203.0.113.10", 40002, 443, TCP_SYN));
        assert_eq!(v, XDP_DROP);
        assert_eq!(
            h.counters().dropped(DropReason::NoRoute),
            1,
            "no IPv4 route"
        );
    });
}

#[test]
fn an_egress_only_gateway_passes_ipv6_out_and_back_and_drops_what_the_internet_opens() {
    in_private_netns(|| {
        let mut h = Harness::new(DUAL);
        h.activate();
        let (db, inet, func) = (h.ifindex("Db"), h.ifindex("Example"), h.ifindex("Fn"));
        // Out and the reply, TCP and UDP, untranslated.
        let syn = tcp(DB6, INET6, 40000, 443, TCP_SYN);
        let (v, out) = h.run(db, &syn);
        unchanged(v, &syn, &out);
        let synack = tcp(INET6, DB6, 443, 40000, TCP_SYN | TCP_ACK);
        let (v, out) = h.run(inet, &synack);
        unchanged(v, &synack, &out);
        let (v, out) = h.run(db, &udp(DB6, INET6, 5000, 53));
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(seen(&out), (DB6.into(), INET6.into(), 5000, 53));
        let (v, _) = h.run(inet, &udp(INET6, DB6, 53, 5000));
        assert_eq!(v, XDP_REDIRECT, "the UDP reply");
        // Whatever the internet opens is dropped at the gateway, though
        // the instance's groups would allow it: TCP, UDP, ICMPv6 echo, and
        // a SYN against the reply direction of the open connection.
        let ping = L4::Icmp {
            ty: 128,
            code: 0,
            id: 3,
            seq: 1,
        };
        let unsolicited = [
            tcp(INET6, DB6, 50000, 22, TCP_SYN),
            udp(INET6, DB6, 53, 5001),
            frame(INET6, DB6, ping),
            tcp(INET6, DB6, 443, 40000, TCP_SYN),
        ];
        for f in &unsolicited {
            let (v, _) = h.run(inet, f);
            assert_eq!(v, XDP_DROP);
        }
        assert_eq!(h.counters().dropped(DropReason::EgressOnlyInbound), 4);
        // A function in the subnet: its ENI's IPv6 address and a NAT port
        // out, then the gateway passes it as it is; the reply comes back.
        let env6 = h.model.function("Fn").unwrap().envs()[0].ip6.unwrap();
        let env6 = env6.to_string();
        let eni6 = eni6_in(&h, "Private");
        let (v, out) = h.run(func, &tcp(&env6, INET6, 41000, 443, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT);
        let (src, dst, port, dport) = seen(&out);
        assert_eq!(
            (src.as_str(), dst.as_str(), dport),
            (eni6.as_str(), INET6, 443)
        );
        assert!(port >= 1024);
        let (v, out) = h.run(inet, &tcp(INET6, &eni6, 443, port, TCP_SYN | TCP_ACK));
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(seen(&out), (INET6.into(), env6.clone(), 443, 41000));
        // Nothing opens a connection to the ENI's address from the internet.
        let (v, _) = h.run(inet, &tcp(INET6, &eni6, 50003, 22, TCP_SYN));
        assert_eq!(v, XDP_DROP);
        assert_eq!(h.counters().dropped(DropReason::EgressOnlyInbound), 5);
    });
}

#[test]
fn udp_fragments_of_a_nat_gateway_connection_pass_and_other_fragments_do_not() {
    use vpc::packet::{checksum, fragment, reassemble};
    in_private_netns(|| {
        let mut h = Harness::new(CLASSIC);
        let (app, inet) = (h.ifindex("App"), h.ifindex("Example"));
        let nat_ip = "198.51.100.10";
        let big = |src: &str, dst: &str, sport, dport| {
            let data: Vec<u8> = (0..200u8).collect();
            Frame::new(
                src.parse().unwrap(),
                dst.parse().unwrap(),
                L4::Udp {
                    sport,
                    dport,
                    no_checksum: false,
                },
            )
            .payload(&data)
            .build()
        };
        let fragment_drops = |h: &mut Harness| h.counters().dropped(DropReason::Fragment);
        // A fragment opens no connection.
        let [first, _] = fragment(&big("10.0.2.10", "203.0.113.10", 5000, 53), 48, 7);
        assert_eq!(h.run(app, &first).0, XDP_DROP);
        assert_eq!(fragment_drops(&mut h), 1);
        // The connection, opened by a whole datagram.
        let (v, out) = h.run(app, &udp("10.0.2.10", "203.0.113.10", 5000, 53));
        assert_eq!(v, XDP_REDIRECT);
        let port = seen(&out).2;
        // Out: both fragments translated; put back together, the datagram
        // is the gateway's, every checksum right (the UDP one was fixed in
        // the first fragment, which holds it).
        let [first, last] = fragment(&big("10.0.2.10", "203.0.113.10", 5000, 53), 48, 7);
        let (v, f1) = h.run(app, &first);
        assert_eq!(v, XDP_REDIRECT);
        let (v, f2) = h.run(app, &last);
        assert_eq!(v, XDP_REDIRECT, "the later fragment follows the first");
        assert_eq!(checksum(&[&f2[14..34]]), 0, "its IPv4 header checksum");
        assert_eq!(&f2[26..30], &[198, 51, 100, 10]);
        assert_eq!(
            seen(&reassemble(&f1, &f2)),
            (nat_ip.into(), "203.0.113.10".into(), port, 53)
        );
        // Back: the reply's fragments, to the host.
        let [first, last] = fragment(&big("203.0.113.10", nat_ip, 53, port), 96, 9);
        let (v, f1) = h.run(inet, &first);
        assert_eq!(v, XDP_REDIRECT);
        let (v, f2) = h.run(inet, &last);
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(
            seen(&reassemble(&f1, &f2)),
            ("203.0.113.10".into(), "10.0.2.10".into(), 53, 5000)
        );
        // A later fragment whose first was not seen; TCP and ICMP ones.
        let before = fragment_drops(&mut h);
        let [_, stray] = fragment(&big("10.0.2.10", "203.0.113.10", 5000, 53), 48, 8);
        assert_eq!(h.run(app, &stray).0, XDP_DROP);
        let (v, _) = h.run(app, &tcp("10.0.2.10", "203.0.113.10", 40000, 443, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT);
        let data = [0u8; 64];
        let ack = Frame::new(
            "10.0.2.10".parse().unwrap(),
            "203.0.113.10".parse().unwrap(),
            L4::Tcp {
                sport: 40000,
                dport: 443,
                flags: TCP_ACK,
            },
        )
        .payload(&data)
        .build();
        let [first, last] = fragment(&ack, 40, 10);
        assert_eq!(h.run(app, &first).0, XDP_DROP, "TCP");
        assert_eq!(h.run(app, &last).0, XDP_DROP, "TCP");
        let ping = Frame::new(
            "10.0.2.10".parse().unwrap(),
            "203.0.113.10".parse().unwrap(),
            L4::Icmp {
                ty: 8,
                code: 0,
                id: 3,
                seq: 1,
            },
        )
        .payload(&data)
        .build();
        let [first, _] = fragment(&ping, 40, 11);
        assert_eq!(h.run(app, &first).0, XDP_DROP, "ICMP");
        assert_eq!(fragment_drops(&mut h), before + 4);
    });
}

/// The classic layout with ACLs of AWS's examples: the public subnet (the
/// NAT gateway's) lets in 80 and 443 from anywhere and everything from the
/// VPC, plus `PUBLIC_EPHEMERAL`; the private subnet lets in only the
/// ephemeral range 32768-65535 from outside the VPC.
fn classic_with_acls(public_ephemeral: bool) -> String {
    let mut t = CLASSIC.to_string();
    t.push_str(
        "  PubAcl: {Type: AWS::EC2::NetworkAcl, Properties: {VpcId: !Ref Vpc}}
  PubAclAssoc: {Type: AWS::EC2::SubnetNetworkAclAssociation, Properties: {SubnetId: !Ref Public, NetworkAclId: !Ref PubAcl}}
  PubIn443: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref PubAcl, RuleNumber: 100, Protocol: 6, RuleAction: allow, CidrBlock: 0.0.0.0/0, PortRange: {From: 443, To: 443}}}
  PubInVpc: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref PubAcl, RuleNumber: 110, Protocol: -1, RuleAction: allow, CidrBlock: 10.0.0.0/16}}
  PubOut: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref PubAcl, RuleNumber: 100, Protocol: -1, RuleAction: allow, Egress: true, CidrBlock: 0.0.0.0/0}}
  PrivAcl: {Type: AWS::EC2::NetworkAcl, Properties: {VpcId: !Ref Vpc}}
  PrivAclAssoc: {Type: AWS::EC2::SubnetNetworkAclAssociation, Properties: {SubnetId: !Ref Private, NetworkAclId: !Ref PrivAcl}}
  PrivInEphemeral: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref PrivAcl, RuleNumber: 100, Protocol: 6, RuleAction: allow, CidrBlock: 0.0.0.0/0, PortRange: {From: 32768, To: 65535}}}
  PrivInVpc: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref PrivAcl, RuleNumber: 110, Protocol: -1, RuleAction: allow, CidrBlock: 10.0.0.0/16}}
  PrivOut: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref PrivAcl, RuleNumber: 100, Protocol: -1, RuleAction: allow, Egress: true, CidrBlock: 0.0.0.0/0}}
",
    );
    if public_ephemeral {
        t.push_str("  PubInEphemeral: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref PubAcl, RuleNumber: 120, Protocol: 6, RuleAction: allow, CidrBlock: 0.0.0.0/0, PortRange: {From: 1024, To: 65535}}}\n");
    }
    t
}

/// A NAT gateway's replies cross two subnet boundaries, as at AWS: into the
/// gateway's subnet on the gateway's port (AWS's classic mistake, a public
/// ACL without the ephemeral range, breaks them), then into the sender's
/// subnet on the sender's own port. And a connection through the gateway
/// ends when the gateway's own route to the internet goes.
#[test]
fn a_nat_gateways_replies_meet_both_subnets_acls_and_its_connections_end_with_its_route() {
    use vpc::datapath::Maps;
    in_private_netns(|| {
        let mut h = Harness::new(&classic_with_acls(false));
        // One port per destination: the gateway's port is 1024, below the
        // private subnet's inbound range; the host's own port is above it.
        h.dp.set_nat_gateway_capacity(1).unwrap();
        let (app, inet) = (h.ifindex("App"), h.ifindex("Example"));
        let syn = tcp("10.0.2.10", "203.0.113.10", 40000, 443, TCP_SYN);
        let (v, out) = h.run(app, &syn);
        assert_eq!(v, XDP_REDIRECT, "out: every ACL on the way allows it");
        assert_eq!(seen(&out).2, 1024);
        let synack = tcp(
            "203.0.113.10",
            "198.51.100.10",
            443,
            1024,
            TCP_SYN | TCP_ACK,
        );
        let (v, _) = h.run(inet, &synack);
        assert_eq!(v, XDP_DROP, "the public ACL has no ephemeral range");
        assert_eq!(h.counters().dropped(DropReason::NaclIngressDenied), 1);
        // The range added (a policy change): the reply passes both subnets;
        // the private one judges the host's port, 40000, not the gateway's.
        h.switch_to(&classic_with_acls(true));
        let (v, out) = h.run(inet, &synack);
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(
            seen(&out),
            ("203.0.113.10".into(), "10.0.2.10".into(), 443, 40000)
        );
        let ack = tcp("10.0.2.10", "203.0.113.10", 40000, 443, TCP_ACK);
        assert_eq!(h.run(app, &ack).0, XDP_REDIRECT);
        // The internet gateway detached: the gateway's subnet routes the
        // internet to a blackhole, and the connection ends both ways.
        let detached = classic_with_acls(true).replace(
            "  Attach: {Type: AWS::EC2::VPCGatewayAttachment, Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}}\n",
            "",
        );
        assert_ne!(detached, classic_with_acls(true));
        h.switch_to(&detached);
        assert_eq!(h.run(app, &ack).0, XDP_DROP);
        let data = tcp("203.0.113.10", "198.51.100.10", 443, 1024, TCP_ACK);
        assert_eq!(h.run(inet, &data).0, XDP_DROP);
        assert_eq!(h.counters().dropped(DropReason::RouteBlackhole), 2);
    });
}

#[test]
fn a_nat_gateway_lets_one_datagram_at_a_time_hold_an_identification_to_a_receiver_for_30_s() {
    use vpc::{datapath::Maps, packet::fragment};
    // A second host behind the gateway.
    let tpl = CLASSIC.replace(
        "  Fn:",
        "  App2: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Private, PrivateIpAddress: 10.0.2.11, SecurityGroupIds: [!Ref Sg]}}\n  Fn:",
    );
    in_private_netns(|| {
        let mut h = Harness::new(&tpl);
        let (a, b) = (h.ifindex("App"), h.ifindex("App2"));
        let big = |src: &str| {
            let data: Vec<u8> = (0..200u8).collect();
            let l4 = L4::Udp {
                sport: 5000,
                dport: 53,
                no_checksum: false,
            };
            Frame::new(src.parse().unwrap(), "203.0.113.10".parse().unwrap(), l4)
                .payload(&data)
                .build()
        };
        let drops = |h: &mut Harness| h.counters().dropped(DropReason::Fragment);
        for (port, src) in [(a, "10.0.2.10"), (b, "10.0.2.11")] {
            let (v, _) = h.run(port, &udp(src, "203.0.113.10", 5000, 53));
            assert_eq!(v, XDP_REDIRECT, "{src}'s connection");
        }
        // A's datagram with id 7 is in flight: to 203.0.113.10 both would
        // leave as (198.51.100.10, id 7), so B's with id 7 is refused, and
        // B's later fragments with it have no first.
        let [a1, a2] = fragment(&big("10.0.2.10"), 48, 7);
        let [b1, b2] = fragment(&big("10.0.2.11"), 48, 7);
        assert_eq!(h.run(a, &a1).0, XDP_REDIRECT);
        let before = drops(&mut h);
        assert_eq!(h.run(b, &b1).0, XDP_DROP, "the id is A's");
        assert_eq!(h.run(b, &b2).0, XDP_DROP);
        assert_eq!(drops(&mut h), before + 2);
        assert_eq!(h.run(a, &a2).0, XDP_REDIRECT, "A's datagram is whole");
        // Another id is free; A reusing its own id replaces its datagram.
        let [b1, b2] = fragment(&big("10.0.2.11"), 48, 8);
        assert_eq!(h.run(b, &b1).0, XDP_REDIRECT);
        assert_eq!(h.run(b, &b2).0, XDP_REDIRECT);
        assert_eq!(h.run(a, &a1).0, XDP_REDIRECT);
        // 31 s after its first fragment, with its connection live, a later
        // fragment of A's datagram is dropped, and id 7 is B's to take.
        let keep = |h: &mut Harness| {
            for (port, src) in [(a, "10.0.2.10"), (b, "10.0.2.11")] {
                let (v, _) = h.run(port, &udp(src, "203.0.113.10", 5000, 53));
                assert_eq!(v, XDP_REDIRECT, "{src}'s connection is live");
            }
        };
        h.dp.advance_clock(20_000_000_000).unwrap();
        keep(&mut h);
        assert_eq!(h.run(a, &a2).0, XDP_REDIRECT, "20 s: still in time");
        h.dp.advance_clock(11_000_000_000).unwrap();
        keep(&mut h);
        let before = drops(&mut h);
        assert_eq!(h.run(a, &a2).0, XDP_DROP, "31 s: too late");
        assert_eq!(drops(&mut h), before + 1);
        let [b1, b2] = fragment(&big("10.0.2.11"), 48, 7);
        assert_eq!(h.run(b, &b1).0, XDP_REDIRECT, "A's claim is stale");
        assert_eq!(h.run(b, &b2).0, XDP_REDIRECT);
        assert_eq!(h.run(a, &a2).0, XDP_DROP, "and no longer A's");
    });
}

/// Two NAT gateways; the private table's default route names `TARGET`.
fn classic_two_nat_gateways(target: &str) -> String {
    CLASSIC.replace("NatGatewayId: !Ref Nat}", &format!("NatGatewayId: !Ref {target}}}"))
        + "  NatZIp: {Type: AWS::EC2::EIP, Properties: {Domain: vpc}}\n  NatZ: {Type: AWS::EC2::NatGateway, Properties: {SubnetId: !Ref Public, AllocationId: !GetAtt NatZIp.AllocationId}}\n"
}

/// A route moved to another NAT gateway: that gateway never saw the old
/// connections (their ports are the first one's), so they end there, and
/// new ones leave with the new gateway's Elastic IP.
#[test]
fn connections_end_when_their_route_moves_to_another_nat_gateway() {
    in_private_netns(|| {
        let mut h = Harness::new(&classic_two_nat_gateways("Nat"));
        let (app, inet) = (h.ifindex("App"), h.ifindex("Example"));
        let (v, out) = h.run(app, &tcp("10.0.2.10", "203.0.113.10", 40000, 443, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT);
        let (src, _, port, _) = seen(&out);
        assert_eq!(src, "198.51.100.10", "Nat's Elastic IP");
        let synack = tcp(
            "203.0.113.10",
            "198.51.100.10",
            443,
            port,
            TCP_SYN | TCP_ACK,
        );
        assert_eq!(h.run(inet, &synack).0, XDP_REDIRECT);
        h.switch_to(&classic_two_nat_gateways("NatZ"));
        let ack = tcp("10.0.2.10", "203.0.113.10", 40000, 443, TCP_ACK);
        assert_eq!(h.run(app, &ack).0, XDP_DROP, "out");
        let data = tcp("203.0.113.10", "198.51.100.10", 443, port, TCP_ACK);
        assert_eq!(h.run(inet, &data).0, XDP_DROP, "back");
        assert_eq!(h.counters().dropped(DropReason::CtInvalid), 2);
        let (v, out) = h.run(app, &tcp("10.0.2.10", "203.0.113.10", 40001, 443, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(seen(&out).0, "198.51.100.11", "NatZ's Elastic IP");
    });
}

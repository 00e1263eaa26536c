//! Connection tracking and the Hyperplane ENI's NAT through
//! BPF_PROG_TEST_RUN: source NAT both ways with every checksum, the
//! conntrack table's limits and idle timeouts, the GC, the NAT port
//! allocator, and ICMP errors about a function's connections translated
//! back.
use std::net::IpAddr;

use vpc::datapath::Maps;
use vpc::packet::{parse_and_verify, parse_icmp_error, Frame, L4, TCP_ACK, TCP_SYN};
use vpc_common::{map_names, v4_mapped, DropReason};
use vpc_tests::{in_private_netns, Harness, Rng, XDP_DROP, XDP_REDIRECT};

use super::{
    add_ipv6, check, echo, echo_request, expect_translated, icmp_error, ip, tcp, udp, APP, DB, DB6,
    ENI, ENI6, EXEC, EXEC6, FRAG_NEEDED, PACKET_TOO_BIG, PORT_UNREACHABLE, PORT_UNREACHABLE6,
    TEMPLATE, TIME_EXCEEDED, TIME_EXCEEDED6,
};

#[test]
fn a_full_conntrack_table_drops_new_connections_and_keeps_established_ones() {
    in_private_netns(|| {
        // Eight entries: four connections (two entries each).
        let mut h = Harness::with_conntrack(TEMPLATE, 8);
        let (app_if, db_if) = (h.ifindex("App"), h.ifindex("Db"));
        for id in 1..=4 {
            assert_eq!(
                h.run(app_if, &echo(APP, DB, 8, id)).0,
                XDP_REDIRECT,
                "ping {id}"
            );
        }
        assert_eq!(h.run(app_if, &echo(APP, DB, 8, 5)).0, XDP_DROP);
        check(&mut h, DropReason::CtFull, 1);
        // The tracked ones go on, both ways.
        for id in 1..=4 {
            assert_eq!(
                h.run(db_if, &echo(DB, APP, 0, id)).0,
                XDP_REDIRECT,
                "reply {id}"
            );
            assert_eq!(
                h.run(app_if, &echo(APP, DB, 8, id)).0,
                XDP_REDIRECT,
                "again {id}"
            );
        }
        check(&mut h, DropReason::CtFull, 1);
    });
}

#[test]
fn function_tcp_is_source_natted_to_its_eni_and_replies_come_back() {
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        let (fn_if, db_if) = (h.ifindex("Fn"), h.ifindex("Db"));
        let (v, out) = h.run(fn_if, &tcp(EXEC, DB, 40000, 5432, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT);
        let p = parse_and_verify(&out).expect("checksums after SNAT");
        assert_eq!((p.src, p.dst, p.dport), (ip(ENI), ip(DB), 5432));
        assert!(p.sport >= 1024, "NAT port {} outside 1024-65535", p.sport);
        // MACs rewritten for the database's link.
        assert_eq!(p.dst_mac, h.links["Db"].mac);
        assert_eq!(p.src_mac, h.links["Db"].router_mac);
        assert_eq!(p.ttl, 64, "the VPC fabric does not decrement TTL");
        // The reply, addressed to the ENI, goes back to the execution environment.
        let (v, back) = h.run(db_if, &tcp(DB, ENI, 5432, p.sport, TCP_SYN | TCP_ACK));
        assert_eq!(v, XDP_REDIRECT);
        let b = parse_and_verify(&back).expect("checksums after reverse NAT");
        assert_eq!(
            (b.src, b.sport, b.dst, b.dport),
            (ip(DB), 5432, ip(EXEC), 40000)
        );
        assert_eq!(b.dst_mac, h.links["Fn"].mac);
        // Further packets of the flow keep the same translation.
        let (v, again) = h.run(fn_if, &tcp(EXEC, DB, 40000, 5432, TCP_ACK));
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(parse_and_verify(&again).unwrap().sport, p.sport);
        assert_eq!(h.counters().forwarded, 3);
        assert_eq!(h.counters().total_dropped(), 0);
    });
}

#[test]
fn udp_nat_keeps_checksums_right_including_the_zero_checksum() {
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        let (fn_if, db_if) = (h.ifindex("Fn"), h.ifindex("Db"));
        for (sport, zero) in [(5000u16, false), (5001, true)] {
            let (v, out) = h.run(fn_if, &udp(EXEC, DB, sport, 9000, zero));
            assert_eq!(v, XDP_REDIRECT);
            let p = parse_and_verify(&out).expect("checksums");
            assert_eq!((p.src, p.dport), (ip(ENI), 9000));
            let l4 = 14 + 20;
            let csum = u16::from_be_bytes([out[l4 + 6], out[l4 + 7]]);
            assert_eq!(
                csum == 0,
                zero,
                "a zero UDP checksum stays zero, a real one stays real"
            );
            let (v, back) = h.run(db_if, &udp(DB, ENI, 9000, p.sport, zero));
            assert_eq!(v, XDP_REDIRECT);
            let b = parse_and_verify(&back).unwrap();
            assert_eq!((b.dst, b.dport), (ip(EXEC), sport));
        }
    });
}

#[test]
fn unsolicited_inbound_to_an_eni_or_execution_environment_is_dropped() {
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        let db_if = h.ifindex("Db");
        assert_eq!(
            h.run(db_if, &tcp(DB, ENI, 5432, 33333, TCP_SYN)).0,
            XDP_DROP
        );
        assert_eq!(h.run(db_if, &udp(DB, ENI, 9000, 33333, false)).0, XDP_DROP);
        check(&mut h, DropReason::HyperplaneUnsolicited, 2);
        assert_eq!(
            h.run(db_if, &tcp(DB, EXEC, 5432, 40000, TCP_SYN)).0,
            XDP_DROP
        );
        check(&mut h, DropReason::NoRoute, 1);
    });
}

#[test]
fn idle_timeouts_follow_the_connection_state_and_gc_removes_expired_connections() {
    use vpc::datapath::Timeouts;
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        // Idle time passes on the datapath's test clock: a loaded machine
        // cannot expire the handshake before its SYN-ACK.
        let t = Timeouts::default();
        h.dp.set_timeouts(&t).unwrap();
        let (fn_if, db_if) = (h.ifindex("Fn"), h.ifindex("Db"));
        // TCP: the handshake completes, so the established timeout applies.
        let (_, out) = h.run(fn_if, &tcp(EXEC, DB, 40000, 5432, TCP_SYN));
        let nat_port = parse_and_verify(&out).unwrap().sport;
        assert_eq!(
            h.run(db_if, &tcp(DB, ENI, 5432, nat_port, TCP_SYN | TCP_ACK))
                .0,
            XDP_REDIRECT
        );
        // UDP: one request, no reply yet.
        let (_, out) = h.run(fn_if, &udp(EXEC, DB, 5000, 9000, false));
        let udp_port = parse_and_verify(&out).unwrap().sport;
        // A handshake that never completes.
        assert_eq!(
            h.run(fn_if, &tcp(EXEC, DB, 40001, 5432, TCP_SYN)).0,
            XDP_REDIRECT
        );
        // Past the handshake (60 s) and UDP (30 s) timeouts.
        h.dp.advance_clock(61_000_000_000).unwrap();
        assert_eq!(
            h.run(fn_if, &tcp(EXEC, DB, 40000, 5432, TCP_ACK)).0,
            XDP_REDIRECT,
            "established outlives the handshake timeout"
        );
        assert_eq!(
            h.run(db_if, &udp(DB, ENI, 9000, udp_port, false)).0,
            XDP_DROP,
            "the UDP reply came after the timeout"
        );
        check(&mut h, DropReason::HyperplaneUnsolicited, 1);
        assert_eq!(h.dp.connections().unwrap().len(), 3);
        assert_eq!(
            h.dp.ct_gc(&t).unwrap(),
            2,
            "the UDP flow and the half-open TCP flow expire"
        );
        let left = h.dp.connections().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(u16::from_be(left[0].0.sport), 40000);
        assert_eq!(left[0].1.state, vpc_common::ct_state::ESTABLISHED);
    });
}

#[test]
fn gc_frees_the_nat_port_of_an_expired_flow_whose_tuple_came_back() {
    use std::time::Duration;
    use vpc::datapath::Timeouts;
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        let t = Timeouts {
            udp: Duration::from_millis(1),
            ..Timeouts::default()
        };
        h.dp.set_timeouts(&t).unwrap();
        let fn_if = h.ifindex("Fn");
        let (_, first) = h.run(fn_if, &udp(EXEC, DB, 5000, 9000, false));
        let p1 = parse_and_verify(&first).unwrap().sport;
        std::thread::sleep(Duration::from_millis(10));
        // Same tuple after expiry: a new connection, most likely another port.
        let (_, second) = h.run(fn_if, &udp(EXEC, DB, 5000, 9000, false));
        let p2 = parse_and_verify(&second).unwrap().sport;
        let reply_keys = |h: &mut Harness| -> usize {
            let m: aya::maps::HashMap<_, vpc_common::CtKey, vpc_common::CtEntry> =
                aya::maps::HashMap::try_from(h.dp.map(map_names::CT).unwrap()).unwrap();
            m.iter()
                .filter_map(|r| r.ok())
                .filter(|(_, e)| e.dir == vpc_common::CT_DIR_REPLY)
                .count()
        };
        if p1 != p2 {
            assert_eq!(
                reply_keys(&mut h),
                2,
                "the stale reply entry is still there before GC"
            );
        }
        // Sweep with a long UDP timeout: the new flow stays, the stale
        // reply entry (its original now belongs to the new flow) goes.
        let keep = Timeouts {
            udp: Duration::from_secs(60),
            ..Timeouts::default()
        };
        h.dp.ct_gc(&keep).unwrap();
        assert_eq!(
            reply_keys(&mut h),
            1,
            "the NAT port of the expired flow is free again"
        );
        assert_eq!(h.dp.connections().unwrap().len(), 1);
    });
}

#[test]
fn tracked_entries_admit_only_what_the_connection_expects() {
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        let (fn_if, db_if, app_if) = (h.ifindex("Fn"), h.ifindex("Db"), h.ifindex("App"));
        // A ping from the app is answered, but the database cannot send an
        // echo *request* back under the same identifier.
        assert_eq!(h.run(app_if, &echo(APP, DB, 8, 77)).0, XDP_REDIRECT);
        assert_eq!(h.run(db_if, &echo(DB, APP, 8, 77)).0, XDP_DROP);
        check(&mut h, DropReason::SgIngressDenied, 1);
        // A SYN from the database against a function connection's reply
        // direction opens nothing: it is a new, unsolicited connection.
        let (_, out) = h.run(fn_if, &tcp(EXEC, DB, 40000, 5432, TCP_SYN));
        let nat = parse_and_verify(&out).unwrap().sport;
        assert_eq!(h.run(db_if, &tcp(DB, ENI, 5432, nat, TCP_SYN)).0, XDP_DROP);
        check(&mut h, DropReason::HyperplaneUnsolicited, 1);
        assert_eq!(
            h.run(db_if, &tcp(DB, ENI, 5432, nat, TCP_SYN | TCP_ACK)).0,
            XDP_REDIRECT
        );
    });
}

#[test]
fn icmp_errors_about_a_function_tcp_connection_reach_it_translated_back() {
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        let (fn_if, db_if, app_if) = (h.ifindex("Fn"), h.ifindex("Db"), h.ifindex("App"));
        let fn_link = h.links["Fn"];
        let syn = tcp(EXEC, DB, 40000, 5432, TCP_SYN);
        let (v, natted) = h.run(fn_if, &syn);
        assert_eq!(v, XDP_REDIRECT);
        let nat = parse_and_verify(&natted).unwrap().sport;
        // The whole packet quoted (as Linux does: the inner TCP checksum
        // is in the quote and fixed), then only its IP header and 8 bytes
        // (RFC 792's minimum: ports, no checksum, left as it is).
        for (kind, len) in [(FRAG_NEEDED, 1000), (FRAG_NEEDED, 28), (TIME_EXCEEDED, 40)] {
            let err = icmp_error(DB, ENI, kind, &natted, len, None);
            let want = icmp_error(DB, EXEC, kind, &syn, len, Some(&fn_link));
            expect_translated(&mut h, db_if, &err, &want);
            let (o, q) = parse_icmp_error(&want).unwrap();
            assert_eq!((o.src, o.dst), (ip(DB), ip(EXEC)));
            assert_eq!(
                (q.src, q.sport, q.dst, q.dport),
                (ip(EXEC), 40000, ip(DB), 5432)
            );
            assert_eq!(q.complete, len == 1000);
        }
        // The 8-byte quote keeps the bytes after the ports as they were:
        // the router does not invent a checksum it cannot see.
        let err = icmp_error(DB, ENI, FRAG_NEEDED, &natted, 28, None);
        let (_, out) = h.run(db_if, &err);
        let q = 14 + 20 + 8;
        assert_eq!(
            out[q + 24..q + 28],
            err[q + 24..q + 28],
            "sequence number untouched"
        );
        assert_eq!(h.counters().total_dropped(), 0, "{:?}", h.counters());
        // Errors that quote no tracked connection (another NAT port,
        // another peer port, a packet the database never got, the app on
        // behalf of the database, the database's error arriving on the
        // app's port, an error to the function's own address) are ICMP like
        // any other: nothing opens a connection to an ENI, the source check
        // and the routes apply.
        let other = nat.wrapping_add(1).max(1024);
        let untracked = [
            (
                db_if,
                icmp_error(
                    DB,
                    ENI,
                    FRAG_NEEDED,
                    &tcp(ENI, DB, other, 5432, TCP_SYN),
                    1000,
                    None,
                ),
            ),
            (
                db_if,
                icmp_error(
                    DB,
                    ENI,
                    FRAG_NEEDED,
                    &tcp(ENI, DB, nat, 5433, TCP_SYN),
                    1000,
                    None,
                ),
            ),
            (
                db_if,
                icmp_error(
                    DB,
                    ENI,
                    FRAG_NEEDED,
                    &tcp(ENI, APP, nat, 5432, TCP_SYN),
                    1000,
                    None,
                ),
            ),
            (
                app_if,
                icmp_error(APP, ENI, FRAG_NEEDED, &natted, 1000, None),
            ),
            (
                app_if,
                icmp_error(DB, ENI, FRAG_NEEDED, &natted, 1000, None),
            ),
            (db_if, icmp_error(DB, EXEC, FRAG_NEEDED, &syn, 1000, None)),
        ];
        let reasons = [
            DropReason::HyperplaneUnsolicited,
            DropReason::HyperplaneUnsolicited,
            DropReason::HyperplaneUnsolicited,
            DropReason::HyperplaneUnsolicited,
            DropReason::Spoofed,
            DropReason::NoRoute,
        ];
        for (i, ((port, err), reason)) in untracked.iter().zip(reasons).enumerate() {
            let before = h.counters().dropped(reason);
            assert_eq!(h.run(*port, err).0, XDP_DROP, "case {i}");
            assert_eq!(h.counters().dropped(reason), before + 1, "case {i}");
        }
        // A quote that is not TCP or UDP, or too short to hold the ports.
        let ping = Frame::new(
            ip(ENI),
            ip(DB),
            L4::Icmp {
                ty: 8,
                code: 0,
                id: 1,
                seq: 1,
            },
        )
        .build();
        assert_eq!(
            h.run(db_if, &icmp_error(DB, ENI, FRAG_NEEDED, &ping, 1000, None))
                .0,
            XDP_DROP
        );
        check(&mut h, DropReason::HyperplaneUnsolicited, 5);
        assert_eq!(
            h.run(db_if, &icmp_error(DB, ENI, FRAG_NEEDED, &natted, 27, None))
                .0,
            XDP_DROP
        );
        check(&mut h, DropReason::Malformed, 1);
        // The connection itself goes on.
        assert_eq!(
            h.run(db_if, &tcp(DB, ENI, 5432, nat, TCP_SYN | TCP_ACK)).0,
            XDP_REDIRECT
        );
    });
}

#[test]
fn icmpv6_packet_too_big_about_a_function_connection_reaches_it_translated_back() {
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        add_ipv6(&mut h);
        let (fn_if, db_if) = (h.ifindex("Fn"), h.ifindex("Db"));
        let fn_link = h.links["Fn"];
        let syn = tcp(EXEC6, DB6, 45000, 80, TCP_SYN);
        let (v, natted) = h.run(fn_if, &syn);
        assert_eq!(v, XDP_REDIRECT);
        let nat = parse_and_verify(&natted).unwrap().sport;
        for (kind, len) in [
            (PACKET_TOO_BIG, 1000),
            (PACKET_TOO_BIG, 48),
            (TIME_EXCEEDED6, 1000),
        ] {
            let err = icmp_error(DB6, ENI6, kind, &natted, len, None);
            let want = icmp_error(DB6, EXEC6, kind, &syn, len, Some(&fn_link));
            expect_translated(&mut h, db_if, &err, &want);
            let (_, q) = parse_icmp_error(&want).unwrap();
            assert_eq!(
                (q.src, q.sport, q.dst, q.dport),
                (ip(EXEC6), 45000, ip(DB6), 80)
            );
        }
        assert_eq!(h.counters().total_dropped(), 0, "{:?}", h.counters());
        let stray = tcp(ENI6, DB6, nat, 81, TCP_SYN);
        assert_eq!(
            h.run(
                db_if,
                &icmp_error(DB6, ENI6, PACKET_TOO_BIG, &stray, 1000, None)
            )
            .0,
            XDP_DROP
        );
        check(&mut h, DropReason::HyperplaneUnsolicited, 1);
        // ICMPv6 echo from a function stays unsupported, as ICMP echo.
        assert_eq!(h.run(fn_if, &echo_request(EXEC6, DB6, 128)).0, XDP_DROP);
        check(&mut h, DropReason::FunctionProtocol, 1);
    });
}

#[test]
fn icmp_errors_about_function_udp_translate_both_ways_and_keep_a_zero_checksum() {
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        add_ipv6(&mut h);
        let (fn_if, db_if) = (h.ifindex("Fn"), h.ifindex("Db"));
        let (fn_link, db_link) = (h.links["Fn"], h.links["Db"]);
        for (sport, zero) in [(5000u16, false), (5001, true)] {
            let dgram = udp(EXEC, DB, sport, 9000, zero);
            let (v, natted) = h.run(fn_if, &dgram);
            assert_eq!(v, XDP_REDIRECT);
            let nat = parse_and_verify(&natted).unwrap().sport;
            // Port unreachable from the database, about the function's datagram.
            let err = icmp_error(DB, ENI, PORT_UNREACHABLE, &natted, 1000, None);
            let want = icmp_error(DB, EXEC, PORT_UNREACHABLE, &dgram, 1000, Some(&fn_link));
            expect_translated(&mut h, db_if, &err, &want);
            let q = 14 + 20 + 8 + 20;
            assert_eq!(
                want[q + 6..q + 8] == [0, 0],
                zero,
                "a zero UDP checksum stays zero"
            );
            // And the function's own error about a reply it got (its socket
            // was gone): out through the ENI like the connection.
            let reply = udp(DB, ENI, 9000, nat, zero);
            let (v, got) = h.run(db_if, &reply);
            assert_eq!(v, XDP_REDIRECT);
            let err = icmp_error(EXEC, DB, PORT_UNREACHABLE, &got, 1000, None);
            let want = icmp_error(ENI, DB, PORT_UNREACHABLE, &reply, 1000, Some(&db_link));
            expect_translated(&mut h, fn_if, &err, &want);
        }
        // IPv6.
        let dgram = udp(EXEC6, DB6, 5002, 9000, false);
        let (v, natted) = h.run(fn_if, &dgram);
        assert_eq!(v, XDP_REDIRECT);
        let err = icmp_error(DB6, ENI6, PORT_UNREACHABLE6, &natted, 1000, None);
        let want = icmp_error(DB6, EXEC6, PORT_UNREACHABLE6, &dgram, 1000, Some(&fn_link));
        expect_translated(&mut h, db_if, &err, &want);
        assert_eq!(h.counters().total_dropped(), 0, "{:?}", h.counters());
    });
}

/// Adds a second Hyperplane ENI to the function's group (as the agent
/// does when the first fills up) and reinstalls the entries: group
/// references now match its address too. Returns its address.
fn add_group_eni(h: &mut Harness) -> IpAddr {
    let mut e = h.model.enis[0].clone();
    e.index = h.model.enis.len() as u32 + 1;
    e.id = "eni-0second".into();
    e.ip = h.model.free_ip(&e.subnet).expect("a free address");
    e.scaled = true;
    let addr = IpAddr::V4(e.ip);
    h.model.enis.push(e);
    h.entries = vpc::compile::compile(&h.model, &h.links, 0).expect("compile");
    h.dp.install(&h.entries).expect("install");
    addr
}

/// Cilium-style statistical test of the port allocator: one ENI of 1,000
/// ports, filled to 10, 50, 90 and 99% with claims at random ports (fixed
/// seed) and their bits set, as the datapath's allocations leave them;
/// then 20,000 new connections each, every one released again (claim,
/// then bit) so the occupancy p stays put. None fails: a port is free, so
/// the allocator finds it, and always in the bitmap: no allocation
/// reaches the scan (past the pool's 16 words). The walk starts at the
/// word of a random port, so its first call succeeds when that word has a
/// free port: with probability q, the share of the ports in such words
/// (known from the fill). The tolerance is 6 standard deviations of the
/// binomial.
#[test]
fn nat_port_allocation_never_fails_below_the_limit_and_finds_its_port_in_the_bitmap() {
    use aya::maps::HashMap as M;
    use vpc::datapath::NatPortBitmap;
    use vpc_common::{CtKey, NatPortKey};
    const CAP: u32 = 1000;
    const SAMPLES: usize = 20000;
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        h.dp.set_eni_capacity(CAP).unwrap();
        let (fn_if, exec, db) = (h.ifindex("Fn"), ip(EXEC), ip(DB));
        let pool = h.entries.enis[0].1.pool;
        let bitmap = NatPortBitmap::open(&mut h.dp).unwrap().unwrap();
        let claim = |port: u16| NatPortKey {
            eni: pool,
            port: port.to_be(),
            proto: 6,
            ..Default::default()
        };
        let mut rng = Rng(0x05ee_d0fa_110c);
        for level in [10u32, 50, 90, 99] {
            // Fill: `level`% of the ports, chosen at random (Fisher-Yates).
            let mut ports: Vec<u16> = (0..CAP as u16).map(|i| 1024 + i).collect();
            let filled = (CAP * level / 100) as usize;
            for i in 0..filled {
                let j = i + (rng.next_u64() % (CAP as usize - i) as u64) as usize;
                ports.swap(i, j);
            }
            {
                let mut m: M<_, NatPortKey, CtKey> =
                    M::try_from(h.dp.map(map_names::NAT_PORTS).unwrap()).unwrap();
                for k in m.keys().filter_map(|k| k.ok()).collect::<Vec<_>>() {
                    m.remove(&k).unwrap();
                    bitmap.clear(&k);
                }
                for port in &ports[..filled] {
                    bitmap.set(&claim(*port));
                    m.insert(claim(*port), CtKey::default(), 0).unwrap();
                }
            }
            // The share of ports whose 64-port word has a free port.
            let taken: std::collections::HashSet<u16> = ports[..filled].iter().copied().collect();
            let word_free = |w: u32| {
                (w * 64..((w + 1) * 64).min(CAP)).any(|o| !taken.contains(&(1024 + o as u16)))
            };
            let q = (0..CAP).filter(|o| word_free(o / 64)).count() as f64 / CAP as f64;
            let before = h.dp.nat_stats().unwrap();
            for i in 0..SAMPLES {
                let sport = 10_000 + i as u16;
                let (v, out) = h.run(fn_if, &tcp(EXEC, DB, sport, 5432, TCP_SYN));
                assert_eq!(
                    v, XDP_REDIRECT,
                    "fill {level}%: connection {i} found no port"
                );
                let nat_port = parse_and_verify(&out).unwrap().sport;
                assert!(
                    (1024..1024 + CAP as u16).contains(&nat_port),
                    "port {nat_port} outside the ENI's 1,000"
                );
                assert!(!taken.contains(&nat_port), "port {nat_port} was claimed");
                // Release the connection, its claim, then its bit: p stays put.
                let orig = vpc_common::CtKey {
                    saddr: mapped(exec),
                    daddr: mapped(db),
                    sport: sport.to_be(),
                    dport: 5432u16.to_be(),
                    proto: 6,
                    ..Default::default()
                };
                let mut ct: M<_, CtKey, vpc_common::CtEntry> =
                    M::try_from(h.dp.map(map_names::CT).unwrap()).unwrap();
                let e = ct.get(&orig, 0).expect("tracked");
                ct.remove(&e.twin).unwrap();
                ct.remove(&orig).unwrap();
                let mut m: M<_, NatPortKey, CtKey> =
                    M::try_from(h.dp.map(map_names::NAT_PORTS).unwrap()).unwrap();
                let c = vpc::datapath::nat_claim(&orig, &e).unwrap();
                m.remove(&c).unwrap();
                bitmap.clear(&c);
            }
            let after = h.dp.nat_stats().unwrap();
            assert_eq!(after.failed, before.failed, "fill {level}%: a failure");
            assert_eq!((after.allocated() - before.allocated()) as usize, SAMPLES);
            // Past the 16 words (histogram buckets 17-32 and up): the scan.
            let scanned: u64 = (5..after.probe_histogram.len())
                .map(|b| after.probe_histogram[b].1 - before.probe_histogram[b].1)
                .sum();
            assert_eq!(scanned, 0, "fill {level}%: allocations that scanned");
            let first = (after.probe_histogram[0].1 - before.probe_histogram[0].1) as f64;
            let sd = (q * (1.0 - q) / SAMPLES as f64).sqrt();
            eprintln!(
                "fill {level}%: first-word rate {:.4}, expected {q:.4}",
                first / SAMPLES as f64
            );
            assert!(
                (first / SAMPLES as f64 - q).abs() <= 6.0 * sd + 1.0 / SAMPLES as f64,
                "fill {level}%: {first} first-word successes of {SAMPLES}, expected {q:.3}"
            );
        }
        assert_eq!(h.counters().dropped(DropReason::NatPortExhausted), 0);
        assert_eq!(h.dp.nat_stats().unwrap().failed, 0);
    });
}

/// An ENI's ports come back through its free-port bitmap: an ENI of 200
/// ports filled by new connections (SYNs), one more refused
/// (`nat_port_exhausted`), the GC ends them all (the handshake timeout):
/// their claims go, then their bits; then 200 new connections take the
/// ports again, each found by the walk of the pool's 4 words, none through
/// the scan (with the bits left set every one would scan: 5 calls or
/// more), and one more is refused again. Every bit is set exactly while its
/// port is claimed.
#[test]
fn an_enis_ports_released_by_the_gc_come_back_through_its_bitmap() {
    use vpc::datapath::{NatPortBitmap, Timeouts};
    use vpc_common::NatPortKey;
    const CAP: u16 = 200;
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        h.dp.set_eni_capacity(CAP as u32).unwrap();
        let t = Timeouts::default();
        h.dp.set_timeouts(&t).unwrap();
        let fn_if = h.ifindex("Fn");
        let pool = h.entries.enis[0].1.pool;
        let bitmap = NatPortBitmap::open(&mut h.dp).unwrap().unwrap();
        let bits = |claimed: &std::collections::BTreeSet<u16>| {
            for port in 1024..1024 + CAP {
                let c = NatPortKey {
                    eni: pool,
                    port: port.to_be(),
                    proto: 6,
                    ..Default::default()
                };
                assert_eq!(
                    bitmap.is_set(&c),
                    Some(claimed.contains(&port)),
                    "port {port}: its bit against its claim"
                );
            }
        };
        for round in 0..2u16 {
            let before = h.dp.nat_stats().unwrap();
            let mut ports = std::collections::BTreeSet::new();
            for i in 0..CAP {
                let sport = 10_000 + round * 1000 + i;
                let (v, out) = h.run(fn_if, &tcp(EXEC, DB, sport, 5432, TCP_SYN));
                assert_eq!(
                    v, XDP_REDIRECT,
                    "round {round}: connection {i} found no port"
                );
                ports.insert(parse_and_verify(&out).unwrap().sport);
            }
            assert_eq!(ports.len(), CAP as usize);
            assert!(ports.iter().all(|p| (1024..1024 + CAP).contains(p)));
            let more = tcp(EXEC, DB, 30_000 + round, 5432, TCP_SYN);
            assert_eq!(
                h.run(fn_if, &more).0,
                XDP_DROP,
                "round {round}: past capacity"
            );
            let after = h.dp.nat_stats().unwrap();
            assert_eq!(after.failed - before.failed, 1);
            // Buckets 1, 2, 3-4: within the 4 words; 5 and more: the scan.
            let scanned: u64 = (3..after.probe_histogram.len())
                .map(|b| after.probe_histogram[b].1 - before.probe_histogram[b].1)
                .sum();
            assert_eq!(scanned, 0, "round {round}: allocations that scanned");
            bits(&ports);
            // Past the handshake timeout: the GC ends every connection.
            h.dp.advance_clock(61_000_000_000).unwrap();
            assert_eq!(h.dp.ct_gc(&t).unwrap(), CAP as usize);
            assert!(h.dp.nat_claims().unwrap().is_empty());
            bits(&Default::default());
        }
    });
}

fn mapped(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(a) => v4_mapped(a.octets()),
        IpAddr::V6(a) => a.octets(),
    }
}

/// 64,512 + 1,000 new connections (SYNs with distinct source ports) from
/// the execution environment at the default capacity (the ephemeral range,
/// 64,512 ports per ENI and protocol) with a group of two ENIs: the first
/// ENI takes every connection until each of its ports is claimed, exactly
/// 64,512, the overflow lands on the second, nothing is dropped, and a
/// connection reaches the second ENI only after the first refused it (the
/// first's bitmap said full and its whole scan found nothing: 65,521
/// calls or more).
#[test]
fn connections_fill_the_first_eni_of_a_group_exactly_and_overflow_onto_the_next() {
    use vpc_common::DEFAULT_ENI_CAPACITY as CAP;
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        let second = add_group_eni(&mut h);
        let first = ip(ENI);
        let fn_if = h.ifindex("Fn");
        let n = CAP as usize + 1000;
        let started = std::time::Instant::now();
        let mut on = [vec![], vec![]];
        let mut first_overflow = None;
        for i in 0..n {
            let frame = tcp(EXEC, DB, 1 + i as u16, 5432, TCP_SYN);
            let (v, out) = h.run(fn_if, &frame);
            assert_eq!(
                v,
                XDP_REDIRECT,
                "connection {i} dropped: {:?}",
                h.counters()
            );
            let p = parse_and_verify(&out).unwrap();
            match p.src {
                a if a == first => on[0].push(p.sport),
                a if a == second => {
                    first_overflow.get_or_insert(i);
                    on[1].push(p.sport)
                }
                a => panic!("connection {i} left from {a}"),
            }
        }
        let elapsed = started.elapsed();
        let (a, b) = (on[0].len(), on[1].len());
        eprintln!(
            "{n} connections in {elapsed:?}: ENI 1 {a} ({:.1}%), ENI 2 {b}, first overflow at {:?}",
            100.0 * a as f64 / CAP as f64,
            first_overflow
        );
        assert_eq!(a + b, n);
        assert_eq!(a, CAP as usize, "ENI 1 holds every one of its ports");
        assert_eq!(b, 1000, "the overflow");
        assert_eq!(first_overflow, Some(CAP as usize));
        // Ports are unique per ENI.
        for ports in &mut on {
            let len = ports.len();
            ports.sort();
            ports.dedup();
            assert_eq!(ports.len(), len, "a NAT port handed out twice");
        }
        let claims = h.dp.nat_claims().unwrap();
        assert_eq!(claims.get(&(1, 6)).copied(), Some(a));
        assert_eq!(claims.get(&(2, 6)).copied(), Some(b));
        // Every connection on ENI 2 took more than ENI 1's 1,008 words and
        // 64,512 scanned ports (the histogram's last bucket: 65+).
        let nat = h.dp.nat_stats().unwrap();
        let last = nat.probe_histogram.last().unwrap().1;
        assert!(last >= b as u64, "{nat:?}");
        assert_eq!(nat.failed, 0);
        assert_eq!(h.counters().total_dropped(), 0);
    });
}

/// An agent killed in the middle of a GC can leave a NAT claim whose
/// connection is gone: its successor finds such claims and, a moment later,
/// gives back those still orphaned; the claims of live connections stay.
#[test]
fn orphaned_nat_claims_are_found_and_released_and_live_ones_stay() {
    use aya::maps::HashMap as M;
    use vpc_common::{CtEntry, CtKey};
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        let (fn_if, exec, db) = (h.ifindex("Fn"), ip(EXEC), ip(DB));
        for sport in 1..=3u16 {
            let (v, _) = h.run(fn_if, &tcp(EXEC, DB, sport, 5432, TCP_SYN));
            assert_eq!(v, XDP_REDIRECT);
        }
        assert_eq!(h.dp.nat_orphans().unwrap(), vec![]);
        // The GC removed connection 2's entries, then the agent died.
        let orig = CtKey {
            saddr: mapped(exec),
            daddr: mapped(db),
            sport: 2u16.to_be(),
            dport: 5432u16.to_be(),
            proto: 6,
            ..Default::default()
        };
        let mut ct: M<_, CtKey, CtEntry> = M::try_from(h.dp.map(map_names::CT).unwrap()).unwrap();
        let e = ct.get(&orig, 0).expect("tracked");
        ct.remove(&e.twin).unwrap();
        ct.remove(&orig).unwrap();
        let orphans = h.dp.nat_orphans().unwrap();
        assert_eq!(
            orphans,
            vec![(vpc::datapath::nat_claim(&orig, &e).unwrap(), e.twin)]
        );
        assert_eq!(h.dp.release_nat_orphans(&orphans).unwrap(), 1);
        assert_eq!(h.dp.nat_claims().unwrap().values().sum::<usize>(), 2);
        assert_eq!(h.dp.nat_orphans().unwrap(), vec![]);
        // Nothing to release twice.
        assert_eq!(h.dp.release_nat_orphans(&orphans).unwrap(), 0);
    });
}

/// A function's client reuses its source port once a connection closed
/// (the server closed first, so the client holds no TIME_WAIT): the new
/// connection gets a new NAT port, and the old one stays claimed as long
/// as a closed connection would keep it, since the server may still hold
/// the old tuple in TIME_WAIT (a SYN on it would meet PAWS).
#[test]
fn a_reopened_tuple_keeps_the_old_nat_port_for_the_closed_timeout() {
    use std::time::Duration;
    use vpc::datapath::Timeouts;
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        // The closed timeout passes on the datapath's test clock, not in a
        // real one a loaded machine can overrun; the new connection's
        // handshake outlives it.
        let t = Timeouts {
            tcp_closed: Duration::from_secs(60),
            tcp_syn: Duration::from_secs(600),
            ..Timeouts::default()
        };
        h.dp.set_timeouts(&t).unwrap();
        let (fn_if, db_if) = (h.ifindex("Fn"), h.ifindex("Db"));
        let claims = |h: &mut Harness| h.dp.nat_claims().unwrap().values().sum::<usize>();
        let (_, out) = h.run(fn_if, &tcp(EXEC, DB, 40000, 5432, TCP_SYN));
        let first = parse_and_verify(&out).unwrap().sport;
        let synack = tcp(DB, ENI, 5432, first, TCP_SYN | TCP_ACK);
        assert_eq!(h.run(db_if, &synack).0, XDP_REDIRECT);
        let rst = tcp(DB, ENI, 5432, first, vpc::packet::TCP_RST | TCP_ACK);
        assert_eq!(h.run(db_if, &rst).0, XDP_REDIRECT);
        // The same client port again: a new connection, a new NAT port.
        let (v, out) = h.run(fn_if, &tcp(EXEC, DB, 40000, 5432, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT);
        let second = parse_and_verify(&out).unwrap().sport;
        assert_ne!(first, second);
        assert_eq!(claims(&mut h), 2);
        // The old reply entry is no longer followed...
        let stale = tcp(DB, ENI, 5432, first, TCP_ACK);
        assert_eq!(h.run(db_if, &stale).0, XDP_DROP);
        // ...but its port stays taken through GC passes inside the closed
        // timeout, and is given back after it.
        h.dp.ct_gc(&t).unwrap();
        h.dp.ct_gc(&t).unwrap();
        assert_eq!(claims(&mut h), 2, "the old port is held");
        h.dp.advance_clock(61_000_000_000).unwrap();
        h.dp.ct_gc(&t).unwrap();
        assert_eq!(claims(&mut h), 1, "the old port is free again");
        let (v, _) = h.run(db_if, &tcp(DB, ENI, 5432, second, TCP_SYN | TCP_ACK));
        assert_eq!(v, XDP_REDIRECT, "the new connection is untouched");
    });
}

//! Per-interface allowances through BPF_PROG_TEST_RUN: the conntrack
//! allowance (connections an interface opened that are tracked at once),
//! whose counts go back to zero whoever removes the connections, and the
//! linklocal allowance (packets per second to the VPC resolver).
use std::time::{Duration, Instant};

use vpc::datapath::{end_connections_where, Maps, Timeouts};
use vpc::packet::{parse_and_verify, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use vpc_common::DropReason;
use vpc_tests::{in_private_netns, Harness, XDP_DROP, XDP_REDIRECT};

use super::{check, echo, tcp, udp, APP, DB, ENI, EXEC, TEMPLATE};

/// The VPC resolver of `one_subnet.yaml` (10.0.0.0/16: base + 2).
const RESOLVER: &str = "10.0.0.2";

/// Connections port `id` has tracked now.
fn conns(h: &mut Harness, id: &str) -> i64 {
    let i = h.ifindex(id);
    h.dp.port_allowances(i).unwrap().connections
}

#[test]
fn an_interface_past_its_conntrack_allowance_opens_nothing_more_and_the_others_still_do() {
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        h.dp.set_conntrack_allowance(4).unwrap();
        let (app_if, db_if, fn_if) = (h.ifindex("App"), h.ifindex("Db"), h.ifindex("Fn"));
        for id in 1..=4 {
            assert_eq!(h.run(app_if, &echo(APP, DB, 8, id)).0, XDP_REDIRECT);
        }
        assert_eq!(conns(&mut h, "App"), 4);
        // The fifth: dropped, counted for the app's interface only.
        assert_eq!(h.run(app_if, &echo(APP, DB, 8, 5)).0, XDP_DROP);
        check(&mut h, DropReason::ConntrackAllowanceExceeded, 1);
        let a = h.dp.port_allowances(app_if).unwrap();
        assert_eq!((a.connections, a.conntrack_allowance_exceeded), (4, 1));
        // Its tracked connections go on, both ways.
        for id in 1..=4 {
            assert_eq!(h.run(db_if, &echo(DB, APP, 0, id)).0, XDP_REDIRECT);
            assert_eq!(h.run(app_if, &echo(APP, DB, 8, id)).0, XDP_REDIRECT);
        }
        // Another interface has an allowance of its own.
        let (v, out) = h.run(fn_if, &tcp(EXEC, DB, 40000, 5432, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT);
        let nat = parse_and_verify(&out).unwrap().sport;
        assert_eq!(conns(&mut h, "Fn"), 1);
        // The reply direction charges no one.
        let synack = tcp(DB, ENI, 5432, nat, TCP_SYN | TCP_ACK);
        assert_eq!(h.run(db_if, &synack).0, XDP_REDIRECT);
        assert_eq!(conns(&mut h, "Db"), 0);
        // Once its connections are collected, the app opens again.
        h.dp.advance_clock(601_000_000_000).unwrap();
        h.dp.ct_gc(&Timeouts::default()).unwrap();
        assert_eq!(conns(&mut h, "App"), 0);
        assert_eq!(h.run(app_if, &echo(APP, DB, 8, 5)).0, XDP_REDIRECT);
        check(&mut h, DropReason::ConntrackAllowanceExceeded, 1);
    });
}

/// Every way a connection's entries go takes it back from its port's
/// count: the GC (closed, reset, idle), a new connection on the same tuple
/// (the datapath evicts the old one), one the other way round taking the
/// tuple over, the reconciler ending connections. Hundreds of connections
/// later, every count is back to 0 and the table is empty.
#[test]
fn conntrack_allowance_counts_return_to_zero_whatever_removes_the_connections() {
    // The app and the database admit anything from the VPC, so that either
    // may open a connection to the other.
    let open = TEMPLATE
        .replace(
            "- {IpProtocol: icmp, FromPort: 8, ToPort: -1, CidrIp: 10.0.0.0/16}",
            "- {IpProtocol: -1, CidrIp: 10.0.0.0/16}",
        )
        .replace(
            "GroupDescription: app\n",
            "GroupDescription: app\n      SecurityGroupIngress: [{IpProtocol: -1, CidrIp: 10.0.0.0/16}]\n",
        );
    assert_ne!(open, TEMPLATE);
    in_private_netns(|| {
        let mut h = Harness::new(&open);
        h.dp.set_conntrack_allowance(1000).unwrap();
        let (app_if, db_if, fn_if) = (h.ifindex("App"), h.ifindex("Db"), h.ifindex("Fn"));
        let t = Timeouts::default();
        for round in 0..4u16 {
            let base = 10000 + round * 1000;
            for i in 0..50u16 {
                let sport = base + i;
                // A function's TCP connection, closed with FINs or a RST.
                let (v, out) = h.run(fn_if, &tcp(EXEC, DB, sport, 5432, TCP_SYN));
                assert_eq!(v, XDP_REDIRECT);
                let nat = parse_and_verify(&out).unwrap().sport;
                let back = |f| tcp(DB, ENI, 5432, nat, f);
                assert_eq!(h.run(db_if, &back(TCP_SYN | TCP_ACK)).0, XDP_REDIRECT);
                if i % 2 == 0 {
                    let fin = tcp(EXEC, DB, sport, 5432, TCP_FIN | TCP_ACK);
                    assert_eq!(h.run(fn_if, &fin).0, XDP_REDIRECT);
                    assert_eq!(h.run(db_if, &back(TCP_FIN | TCP_ACK)).0, XDP_REDIRECT);
                } else {
                    assert_eq!(h.run(db_if, &back(TCP_RST)).0, XDP_REDIRECT);
                }
                // The same client port at once: a new connection replaces it.
                if i % 5 == 0 {
                    let (v, _) = h.run(fn_if, &tcp(EXEC, DB, sport, 5432, TCP_SYN));
                    assert_eq!(v, XDP_REDIRECT);
                }
                // UDP, one datagram each; and a ping whose identifier comes back.
                let (v, _) = h.run(fn_if, &udp(EXEC, DB, sport, 9000, false));
                assert_eq!(v, XDP_REDIRECT);
                let (v, _) = h.run(app_if, &echo(APP, DB, 8, sport));
                assert_eq!(v, XDP_REDIRECT);
                let (v, _) = h.run(app_if, &echo(APP, DB, 8, sport));
                assert_eq!(v, XDP_REDIRECT);
            }
            assert!(conns(&mut h, "Fn") > 0 && conns(&mut h, "App") > 0);
            if round % 2 == 0 {
                // The reconciler ends what the app and the function opened.
                let (app, exec) = (
                    vpc_common::v4_mapped([10, 0, 1, 20]),
                    vpc_common::v4_mapped([198, 19, 0, 10]),
                );
                end_connections_where(&mut h.dp, |k| k.saddr == app || k.saddr == exec).unwrap();
            } else {
                // The GC, past every timeout.
                h.dp.advance_clock(t.tcp_established.as_nanos() as u64 + 1)
                    .unwrap();
                h.dp.ct_gc(&t).unwrap();
                h.dp.ct_gc(&t).unwrap();
            }
            assert_eq!(conns(&mut h, "Fn"), 0, "round {round}");
            assert_eq!(conns(&mut h, "App"), 0, "round {round}");
        }
        // A host's connection taken over by one the other way round (a SYN
        // against its reply direction): the app's count goes to the
        // database's.
        let syn = tcp(APP, DB, 80, 7000, TCP_SYN);
        assert_eq!(h.run(app_if, &syn).0, XDP_REDIRECT);
        assert_eq!(conns(&mut h, "App"), 1);
        let back = tcp(DB, APP, 7000, 80, TCP_SYN);
        assert_eq!(h.run(db_if, &back).0, XDP_REDIRECT);
        assert_eq!((conns(&mut h, "App"), conns(&mut h, "Db")), (0, 1));
        // Everything collected: held reply entries too, a closed timeout on.
        for advance in [t.tcp_established, t.tcp_closed] {
            h.dp.advance_clock(advance.as_nanos() as u64 + 1).unwrap();
            h.dp.ct_gc(&t).unwrap();
            h.dp.ct_gc(&t).unwrap();
        }
        for id in ["App", "Db", "Fn"] {
            assert_eq!(conns(&mut h, id), 0, "{id}");
        }
        assert_eq!(h.dp.connections().unwrap().len(), 0);
        assert_eq!(h.dp.nat_claims().unwrap().values().sum::<usize>(), 0);
    });
}

/// The resolver takes 1,024 packets a second from each interface, with a
/// burst of a second's worth, new flows and established ones alike. The
/// bounds hold whatever the machine's speed: at most a burst plus the rate
/// times the time taken passes, and at least a burst.
#[test]
fn the_resolver_takes_1024_packets_a_second_from_each_interface() {
    const SENT: u32 = 4000;
    const PPS: f64 = 1024.0;
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        let (app_if, db_if) = (h.ifindex("App"), h.ifindex("Db"));
        let burst = |h: &mut Harness, port: u32, src: &str, new_flows: bool| {
            let start = Instant::now();
            let mut passed = 0u32;
            for i in 0..SENT {
                // Half on new source ports, half on one flow.
                let sport = if new_flows && i % 2 == 0 {
                    20000 + i as u16
                } else {
                    5353
                };
                if h.run(port, &udp(src, RESOLVER, sport, 53, false)).0 == XDP_REDIRECT {
                    passed += 1;
                }
            }
            (passed, start.elapsed())
        };
        // A coarse clock tick (4 ms at most) of slack.
        let bound = |took: Duration| PPS + (PPS * took.as_secs_f64()).ceil() + 8.0;
        let (passed, took) = burst(&mut h, app_if, APP, true);
        assert!(passed as f64 >= PPS, "a burst passes: {passed}");
        assert!(passed as f64 <= bound(took), "{passed} in {took:?}");
        let a = h.dp.port_allowances(app_if).unwrap();
        assert_eq!(a.linklocal_allowance_exceeded, (SENT - passed) as u64);
        check(
            &mut h,
            DropReason::LinklocalAllowanceExceeded,
            (SENT - passed) as u64,
        );
        // The database's interface has its own.
        let (db_passed, took) = burst(&mut h, db_if, DB, false);
        assert!(db_passed as f64 >= PPS && db_passed as f64 <= bound(took));
        // A second later (the test clock), the app has a burst again.
        h.dp.advance_clock(1_000_000_000).unwrap();
        let (again, took) = burst(&mut h, app_if, APP, false);
        assert!(
            again as f64 >= PPS && again as f64 <= bound(took),
            "{again}"
        );
        // Traffic to anyone else is not counted.
        assert_eq!(h.run(app_if, &echo(APP, DB, 8, 9)).0, XDP_REDIRECT);
    });
}

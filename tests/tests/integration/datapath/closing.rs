//! How a TCP connection ends, through BPF_PROG_TEST_RUN: after both FINs
//! its packets no longer refresh it (a TIME_WAIT-like timeout from the
//! moment it closed), after a RST nothing more is forwarded as part of it
//! and the GC removes it at once, and a SYN on a closing or closed tuple
//! opens a new connection in its place.
use vpc::datapath::{Maps, Timeouts};
use vpc::packet::{parse_and_verify, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use vpc_common::DropReason;
use vpc_tests::{in_private_netns, Harness, XDP_DROP, XDP_REDIRECT};

use super::{check, tcp, DB, ENI, EXEC, TEMPLATE};

const SEC: u64 = 1_000_000_000;

/// A function's connection to the database, established: its NAT port.
fn open(h: &mut Harness, sport: u16) -> u16 {
    let (fn_if, db_if) = (h.ifindex("Fn"), h.ifindex("Db"));
    let (v, out) = h.run(fn_if, &tcp(EXEC, DB, sport, 5432, TCP_SYN));
    assert_eq!(v, XDP_REDIRECT);
    let nat = parse_and_verify(&out).unwrap().sport;
    let synack = tcp(DB, ENI, 5432, nat, TCP_SYN | TCP_ACK);
    assert_eq!(h.run(db_if, &synack).0, XDP_REDIRECT);
    let ack = tcp(EXEC, DB, sport, 5432, TCP_ACK);
    assert_eq!(h.run(fn_if, &ack).0, XDP_REDIRECT);
    nat
}

#[test]
fn a_closed_connection_is_not_refreshed_by_its_packets() {
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        let t = Timeouts::default();
        h.dp.set_timeouts(&t).unwrap();
        let (fn_if, db_if) = (h.ifindex("Fn"), h.ifindex("Db"));
        let nat = open(&mut h, 40000);
        let out = |f| tcp(EXEC, DB, 40000, 5432, f);
        let back = |f| tcp(DB, ENI, 5432, nat, f);
        assert_eq!(h.run(fn_if, &out(TCP_FIN | TCP_ACK)).0, XDP_REDIRECT);
        assert_eq!(h.run(db_if, &back(TCP_FIN | TCP_ACK)).0, XDP_REDIRECT);
        // The last ACK, and a peer that keeps sending (a retransmitted FIN)
        // inside the closed timeout: forwarded, but the timeout runs on
        // from the second FIN.
        assert_eq!(h.run(fn_if, &out(TCP_ACK)).0, XDP_REDIRECT);
        for _ in 0..3 {
            h.dp.advance_clock(19 * SEC).unwrap();
            assert_eq!(h.run(db_if, &back(TCP_FIN | TCP_ACK)).0, XDP_REDIRECT);
        }
        // 60 s after it closed it is over, however many packets came since.
        h.dp.advance_clock(4 * SEC).unwrap();
        assert_eq!(h.run(db_if, &back(TCP_FIN | TCP_ACK)).0, XDP_DROP);
        check(&mut h, DropReason::HyperplaneUnsolicited, 1);
        assert_eq!(h.dp.ct_gc(&t).unwrap(), 1);
        assert_eq!(h.dp.nat_claims().unwrap().values().sum::<usize>(), 0);
    });
}

#[test]
fn after_a_rst_nothing_more_is_forwarded_and_the_connection_goes_at_once() {
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        let t = Timeouts::default();
        h.dp.set_timeouts(&t).unwrap();
        let (fn_if, db_if) = (h.ifindex("Fn"), h.ifindex("Db"));
        let nat = open(&mut h, 40000);
        // The RST itself belongs to the connection.
        let rst = tcp(DB, ENI, 5432, nat, TCP_RST | TCP_ACK);
        assert_eq!(h.run(db_if, &rst).0, XDP_REDIRECT);
        // Whatever either side sends after it does not.
        assert_eq!(
            h.run(fn_if, &tcp(EXEC, DB, 40000, 5432, TCP_ACK)).0,
            XDP_DROP
        );
        check(&mut h, DropReason::CtInvalid, 1);
        assert_eq!(h.run(db_if, &tcp(DB, ENI, 5432, nat, TCP_ACK)).0, XDP_DROP);
        check(&mut h, DropReason::HyperplaneUnsolicited, 1);
        // The GC's next pass removes it, without any time passing, and
        // gives its NAT port and its place in the allowance back.
        assert_eq!(h.dp.ct_gc(&t).unwrap(), 1);
        assert_eq!(h.dp.nat_claims().unwrap().values().sum::<usize>(), 0);
        assert_eq!(h.dp.port_allowances(fn_if).unwrap().connections, 0);
        // A RST from the function's side ends it the same way.
        let nat = open(&mut h, 40001);
        let rst = tcp(EXEC, DB, 40001, 5432, TCP_RST);
        assert_eq!(h.run(fn_if, &rst).0, XDP_REDIRECT);
        let late = tcp(DB, ENI, 5432, nat, TCP_ACK);
        assert_eq!(h.run(db_if, &late).0, XDP_DROP);
        check(&mut h, DropReason::HyperplaneUnsolicited, 2);
    });
}

#[test]
fn a_syn_on_a_closing_or_closed_tuple_opens_a_new_connection() {
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        let (fn_if, db_if) = (h.ifindex("Fn"), h.ifindex("Db"));
        // One FIN (closing), both FINs (closed), a RST.
        for (sport, end) in [
            (40000u16, &[TCP_FIN | TCP_ACK][..]),
            (40001, &[TCP_FIN | TCP_ACK, 0]),
            (40002, &[TCP_RST]),
        ] {
            let nat = open(&mut h, sport);
            for (i, f) in end.iter().enumerate() {
                let v = if i == 0 {
                    h.run(fn_if, &tcp(EXEC, DB, sport, 5432, *f)).0
                } else {
                    h.run(db_if, &tcp(DB, ENI, 5432, nat, TCP_FIN | TCP_ACK)).0
                };
                assert_eq!(v, XDP_REDIRECT);
            }
            // A new SYN: a new connection with a new NAT port, and the old
            // one's replies are no longer followed.
            let (v, out) = h.run(fn_if, &tcp(EXEC, DB, sport, 5432, TCP_SYN));
            assert_eq!(v, XDP_REDIRECT, "port {sport}");
            let second = parse_and_verify(&out).unwrap().sport;
            assert_ne!(second, nat, "port {sport}");
            let synack = tcp(DB, ENI, 5432, second, TCP_SYN | TCP_ACK);
            assert_eq!(h.run(db_if, &synack).0, XDP_REDIRECT);
            assert_eq!(
                h.run(db_if, &tcp(DB, ENI, 5432, nat, TCP_ACK)).0,
                XDP_DROP,
                "port {sport}"
            );
        }
        // One connection per tuple is counted.
        assert_eq!(h.dp.port_allowances(fn_if).unwrap().connections, 3);
    });
}

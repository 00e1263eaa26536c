//! The internet gateway: one-to-one translation to Elastic IPs, and only for its routes.
use vpc::packet::{L4, TCP_ACK, TCP_SYN};
use vpc_common::DropReason;
use vpc_tests::{in_private_netns, Harness, XDP_DROP, XDP_REDIRECT};

use super::{frame, seen, tcp, TEMPLATE};

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

/// The same 4-tuple opened again through the internet gateway, whose 1:1
/// NAT keeps the ports (so the new connection's reply key is the old
/// one's): after both FINs, a RST or one FIN, a new SYN replaces the old
/// connection at once instead of waiting for the GC (`ct_full` before).
#[test]
fn a_tuple_reopened_through_the_internet_gateway_is_a_new_connection_at_once() {
    use vpc::datapath::Maps;
    use vpc::packet::{TCP_FIN, TCP_RST};
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        let (web, inet) = (h.ifindex("Web"), h.ifindex("Example"));
        let out = |f| tcp("10.0.1.10", "203.0.113.10", 40000, 443, f);
        let back = |f| tcp("203.0.113.10", "198.51.100.11", 443, 40000, f);
        let endings: [&[(bool, u8)]; 3] = [
            &[
                (true, TCP_FIN | TCP_ACK),
                (false, TCP_FIN | TCP_ACK),
                (true, TCP_ACK),
            ],
            &[(false, TCP_RST)],
            &[(true, TCP_FIN | TCP_ACK)],
        ];
        for (i, ending) in endings.iter().enumerate() {
            assert_eq!(h.run(web, &out(TCP_SYN)).0, XDP_REDIRECT, "SYN {i}");
            assert_eq!(h.run(inet, &back(TCP_SYN | TCP_ACK)).0, XDP_REDIRECT);
            assert_eq!(h.run(web, &out(TCP_ACK)).0, XDP_REDIRECT);
            for (from_web, f) in *ending {
                let (port, frame) = if *from_web {
                    (web, out(*f))
                } else {
                    (inet, back(*f))
                };
                assert_eq!(h.run(port, &frame).0, XDP_REDIRECT, "ending {i}");
            }
        }
        assert_eq!(h.run(web, &out(TCP_SYN)).0, XDP_REDIRECT, "the last SYN");
        assert_eq!(h.counters().dropped(DropReason::CtFull), 0);
        assert_eq!(h.counters().total_dropped(), 0, "{:?}", h.counters());
        // One connection, counted once, and its two entries.
        assert_eq!(h.dp.connections().unwrap().len(), 1);
        assert_eq!(h.dp.port_allowances(web).unwrap().connections, 1);
    });
}

//! The internet gateway: one-to-one translation to Elastic IPs, and only for its routes.
use vpc::packet::{L4, TCP_ACK, TCP_SYN};
use vpc_common::DropReason;
use vpc_tests::{fixture, in_private_netns, Harness, XDP_DROP, XDP_REDIRECT};

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

/// The 1:1 NAT keeps its two directions apart: a public-to-private entry
/// keyed by an address that is also a VPC host's private one (what a VPC
/// over the public pool would make, which the model refuses) neither
/// changes how that host leaves nor hands the host's traffic to another.
#[test]
fn a_public_address_equal_to_a_private_one_is_never_read_as_it() {
    use aya::maps::HashMap as BpfHash;
    use vpc::datapath::Maps;
    use vpc_common::{map_names, v4_mapped};
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        let (web, inet) = (h.ifindex("Web"), h.ifindex("Example"));
        let ip = |a: &str| v4_mapped(a.parse::<std::net::Ipv4Addr>().unwrap().octets());
        // As if userspace had erred: Web's private address is also a
        // public one, held by Db.
        // (The template's one VPC has index 1.)
        let in_vpc = |a: &str| vpc_common::AddrKey::of(1, ip(a));
        let mut m: BpfHash<_, [u8; 16], vpc_common::AddrKey> =
            BpfHash::try_from(h.dp.map(map_names::PUBLIC_TO_PRIVATE).unwrap()).unwrap();
        m.insert(ip("10.0.1.10"), in_vpc("10.0.2.10"), 0).unwrap();
        // Web still leaves as its own public address...
        let (v, out) = h.run(web, &tcp("10.0.1.10", "203.0.113.10", 40000, 443, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(seen(&out).0, "198.51.100.11");
        // ... and its replies come back to it.
        let synack = tcp(
            "203.0.113.10",
            "198.51.100.11",
            443,
            40000,
            TCP_SYN | TCP_ACK,
        );
        let (v, out) = h.run(inet, &synack);
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(seen(&out).1, "10.0.1.10");
        // A private address with no public one of its own does not leave
        // as the host whose public address it equals.
        let mut m: BpfHash<_, vpc_common::AddrKey, [u8; 16]> =
            BpfHash::try_from(h.dp.map(map_names::PRIVATE_TO_PUBLIC).unwrap()).unwrap();
        m.remove(&in_vpc("10.0.1.10")).unwrap();
        let before = h.counters().dropped(DropReason::NoPublicAddress);
        let (v, _) = h.run(web, &tcp("10.0.1.10", "203.0.113.10", 40001, 443, TCP_SYN));
        assert_eq!(v, XDP_DROP);
        assert_eq!(
            h.counters().dropped(DropReason::NoPublicAddress),
            before + 1
        );
    });
}

/// The internet's hosts reach one another, AWS's public endpoints among
/// them (Lambda's, 198.18.1.10 and 2001:2:ffff::10): no gateway, no NAT,
/// no groups, both families; tracked, so what comes back is a reply, and
/// the public endpoints open nothing themselves. A test host still
/// reaches a VPC only through its public addresses.
#[test]
fn hosts_of_the_internet_reach_one_another_untranslated() {
    in_private_netns(|| {
        let mut h = Harness::new(fixture!("ipv6_gateways.yaml"));
        let (inet, public) = (h.ifindex("Example"), h.ifindex("AwsPublic"));
        let s = |a: &str| a.to_string();
        for (client, server) in [
            ("203.0.113.10", "198.18.1.10"),
            ("2001:db8:f00d::10", "2001:2:ffff::10"),
        ] {
            let (v, out) = h.run(inet, &tcp(client, server, 40000, 80, TCP_SYN));
            assert_eq!(v, XDP_REDIRECT, "{client} -> {server}");
            assert_eq!(seen(&out), (s(client), s(server), 40000, 80));
            let synack = tcp(server, client, 80, 40000, TCP_SYN | TCP_ACK);
            let (v, out) = h.run(public, &synack);
            assert_eq!(v, XDP_REDIRECT);
            assert_eq!(seen(&out), (s(server), s(client), 80, 40000));
            let (v, _) = h.run(inet, &tcp(client, server, 40000, 80, TCP_ACK));
            assert_eq!(v, XDP_REDIRECT);
            // Not a reply of anything: refused.
            let before = h.counters().dropped(DropReason::CtInvalid);
            let stray = tcp(server, client, 80, 40001, TCP_SYN | TCP_ACK);
            assert_eq!(h.run(public, &stray).0, XDP_DROP);
            assert_eq!(h.counters().dropped(DropReason::CtInvalid), before + 1);
        }
        // A VPC's private address from the internet: no route, as before.
        let before = h.counters().dropped(DropReason::NoRoute);
        let (v, _) = h.run(inet, &tcp("203.0.113.10", "10.0.1.10", 40002, 22, TCP_SYN));
        assert_eq!(v, XDP_DROP);
        assert_eq!(h.counters().dropped(DropReason::NoRoute), before + 1);
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

/// Separate VPCs with the same block: two hosts at 10.0.1.10, each with a
/// public address of its own. Each leaves as its own public address, its
/// replies come back to it, and a new flow to either public address
/// reaches that address's host; the private address alone reaches
/// neither from the internet.
#[test]
fn public_addresses_of_overlapping_vpcs_lead_to_their_own_hosts() {
    in_private_netns(|| {
        let mut h = Harness::new(fixture!("overlapping_vpcs.yaml"));
        let (web1, web2, inet) = (h.ifindex("Web1"), h.ifindex("Web2"), h.ifindex("Example"));
        let public = |h: &Harness, id: &str| h.model.public_ip(id).unwrap().to_string();
        let (p1, p2) = (public(&h, "Web1"), public(&h, "Web2"));
        assert_ne!(p1, p2);
        for (port, own, id) in [(web1, &p1, "Web1"), (web2, &p2, "Web2")] {
            // Out: the same private tuple from both VPCs.
            let (v, out) = h.run(port, &tcp("10.0.1.10", "203.0.113.10", 40000, 443, TCP_SYN));
            assert_eq!(v, XDP_REDIRECT);
            assert_eq!(seen(&out).0, *own);
            // Back: to the host of that public address's VPC.
            let synack = tcp("203.0.113.10", own, 443, 40000, TCP_SYN | TCP_ACK);
            let (v, out) = h.run(inet, &synack);
            assert_eq!(v, XDP_REDIRECT);
            assert_eq!(seen(&out).1, "10.0.1.10");
            assert_eq!(out[0..6], h.links[id].mac, "back to {id}");
        }
        // In: each public address to its own host.
        for (own, id) in [(&p1, "Web1"), (&p2, "Web2")] {
            let (v, out) = h.run(inet, &tcp("203.0.113.10", own, 50000, 80, TCP_SYN));
            assert_eq!(v, XDP_REDIRECT, "{id}");
            assert_eq!(seen(&out).1, "10.0.1.10");
            assert_eq!(out[0..6], h.links[id].mac, "to {id}");
        }
        let (v, _) = h.run(inet, &tcp("203.0.113.10", "10.0.1.10", 50001, 80, TCP_SYN));
        assert_eq!(v, XDP_DROP);
    });
}

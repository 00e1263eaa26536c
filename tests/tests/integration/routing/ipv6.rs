//! IPv6 routes: through the internet gateway untranslated, and the egress-only gateway.
use vpc::packet::{L4, TCP_ACK, TCP_SYN};
use vpc_common::DropReason;
use vpc_tests::{fixture, in_private_netns, Harness, XDP_DROP, XDP_REDIRECT};

use super::{frame, seen, tcp, udp, unchanged};

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

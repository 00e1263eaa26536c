//! Established flows after a route change, through BPF_PROG_TEST_RUN: as at
//! AWS, a route change applies to a flow at its next packet. The route is
//! looked up again for flows inside one subnet too, and must still lead to
//! the same target: a firewall's fail-over (the route moved to another
//! instance) cuts what went through the old one, and a blackhole cuts
//! everything it now catches.
use vpc::packet::{TCP_ACK, TCP_SYN};
use vpc_common::DropReason;
use vpc_tests::{fixture, in_private_netns, Harness, XDP_DROP, XDP_REDIRECT};

use super::tcp;

/// Two firewall instances (source/destination check off) and a web host in
/// the public subnet, an app host in the private one; each subnet's
/// default route names `public` / `private`.
fn layout(public: &str, private: &str) -> String {
    fixture!("middleboxes.yaml")
        .replace("PUBLIC", public)
        .replace("PRIVATE", private)
}

const A: &str = "InstanceId: !Ref FirewallA";
const B: &str = "InstanceId: !Ref FirewallB";
const IGW: &str = "GatewayId: !Ref Igw";
/// A gateway not attached to the VPC: its routes are `blackhole`.
const BLACKHOLE: &str = "GatewayId: !Ref Detached";
const INET: &str = "203.0.113.10";

/// Opens `host`'s connection from `src`:`sport` to the internet test host
/// through the firewall `fw` (its default route), the firewall answering
/// for the internet; checks that each packet goes where it should.
fn open_through(h: &mut Harness, host: &str, src: &str, sport: u16, fw: &str) {
    let (from, via) = (h.ifindex(host), h.ifindex(fw));
    let (v, out) = h.run(from, &tcp(src, INET, sport, 443, TCP_SYN));
    assert_eq!(v, XDP_REDIRECT, "{host}'s SYN");
    assert_eq!(out[0..6], h.links[fw].mac, "to {fw}");
    let (v, out) = h.run(via, &tcp(INET, src, 443, sport, TCP_SYN | TCP_ACK));
    assert_eq!(v, XDP_REDIRECT, "{fw}'s answer");
    assert_eq!(out[0..6], h.links[host].mac);
    assert_eq!(
        h.run(from, &tcp(src, INET, sport, 443, TCP_ACK)).0,
        XDP_REDIRECT
    );
}

#[test]
fn a_firewall_fail_over_cuts_the_flows_through_the_old_firewall() {
    in_private_netns(|| {
        let mut h = Harness::new(&layout(IGW, A));
        let app = h.ifindex("App");
        open_through(&mut h, "App", "10.0.2.10", 40000, "FirewallA");
        // The private table now sends the internet to FirewallB, which never
        // saw the connection: its next packet is not delivered to A.
        h.switch_to(&layout(IGW, B));
        let next = tcp("10.0.2.10", INET, 40000, 443, TCP_ACK);
        assert_eq!(h.run(app, &next).0, XDP_DROP);
        assert_eq!(h.counters().dropped(DropReason::CtInvalid), 1);
        // New connections go through B.
        open_through(&mut h, "App", "10.0.2.10", 40001, "FirewallB");
    });
}

#[test]
fn routes_are_checked_again_for_flows_inside_one_subnet() {
    in_private_netns(|| {
        // The web host and the firewalls share the public subnet.
        let mut h = Harness::new(&layout(A, IGW));
        let web = h.ifindex("Web");
        open_through(&mut h, "Web", "10.0.1.10", 40000, "FirewallA");
        // Fail-over to B: the flow through A ends at its next packet.
        h.switch_to(&layout(B, IGW));
        let next = |sport| tcp("10.0.1.10", INET, sport, 443, TCP_ACK);
        assert_eq!(h.run(web, &next(40000)).0, XDP_DROP);
        assert_eq!(h.counters().dropped(DropReason::CtInvalid), 1);
        open_through(&mut h, "Web", "10.0.1.10", 40001, "FirewallB");
        // A blackhole: the flow through B ends too.
        h.switch_to(&layout(BLACKHOLE, IGW));
        assert_eq!(h.run(web, &next(40001)).0, XDP_DROP);
        assert_eq!(h.counters().dropped(DropReason::RouteBlackhole), 1);
        // The route back to B: its flow goes on (the blackhole dropped its
        // packets; B still has it).
        h.switch_to(&layout(B, IGW));
        assert_eq!(h.run(web, &next(40001)).0, XDP_REDIRECT);
    });
}

//! NAT gateways: translation, ports per destination, expiry, fragments, ACLs, private gateways.
use vpc::packet::{Frame, L4, TCP_ACK, TCP_SYN};
use vpc_common::DropReason;
use vpc_tests::{in_private_netns, Harness, XDP_DROP, XDP_REDIRECT};

use super::{env_addr, frame, seen, tcp, udp, CLASSIC};

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

//! Route tables: the leaving subnet's table by longest prefix, routes to instances, routes moved.
use vpc::packet::{TCP_ACK, TCP_SYN};
use vpc_common::DropReason;
use vpc_tests::{in_private_netns, Harness, NAT_INSTANCE, XDP_DROP, XDP_REDIRECT};

use super::{env_addr, seen, syn, tcp, CLASSIC, TEMPLATE};

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

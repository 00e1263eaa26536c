//! VPC endpoints in the datapath: a gateway endpoint's route, an interface endpoint's ENI.
use vpc::packet::{TCP_ACK, TCP_SYN};
use vpc_common::DropReason;
use vpc_tests::{fixture, in_private_netns, Harness, XDP_DROP, XDP_REDIRECT};

use super::{env_addr, seen, tcp};

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

/// AWS: an interface endpoint forgets a connection idle for 350 s, and a
/// later packet of it gets a RST. On the datapath's test clock: still there
/// at 349 s (an established connection elsewhere has five days), reset
/// past 350 s (not counted as a NAT gateway's idle timeout), then collected.
#[test]
fn an_interface_endpoint_forgets_a_connection_idle_for_350_seconds() {
    use vpc::datapath::{Maps, Timeouts};
    in_private_netns(|| {
        let mut h = Harness::new(&endpoints_template());
        h.activate();
        let t = Timeouts::default();
        h.dp.set_timeouts(&t).unwrap();
        let (app, eni) = (h.ifindex("App"), h.ifindex("Sqs.1"));
        let ip = "10.0.2.4";
        let (v, _) = h.run(app, &tcp("10.0.2.10", ip, 40000, 443, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT);
        let synack = tcp(ip, "10.0.2.10", 443, 40000, TCP_SYN | TCP_ACK);
        assert_eq!(h.run(eni, &synack).0, XDP_REDIRECT);
        let ack = tcp("10.0.2.10", ip, 40000, 443, TCP_ACK);
        assert_eq!(h.run(app, &ack).0, XDP_REDIRECT);
        h.dp.advance_clock(349_000_000_000).unwrap();
        assert_eq!(h.dp.ct_gc(&t).unwrap(), 0, "349 s idle: kept");
        let (v, out) = h.run(app, &ack);
        assert_eq!((v, seen(&out).1.as_str()), (XDP_REDIRECT, ip));
        // 351 s idle: the endpoint's RST, back to the client.
        h.dp.advance_clock(351_000_000_000).unwrap();
        let (v, out) = h.run(app, &ack);
        assert_eq!(v, XDP_REDIRECT, "the RST goes back to the sender");
        assert_eq!(
            seen(&out),
            (ip.to_string(), "10.0.2.10".to_string(), 443, 40000)
        );
        assert_eq!(out[47], vpc::packet::TCP_RST, "RST alone");
        assert_eq!(h.dp.nat_stats().unwrap().idle_timeouts, 0);
        // Kept for late packets, then collected.
        h.dp.advance_clock(61_000_000_000).unwrap();
        assert_eq!(h.dp.ct_gc(&t).unwrap(), 1);
    });
}

//! NAT ports through a NAT gateway: a function's connection takes a port of
//! its Hyperplane ENI first, then one of the gateway's (AWS translates it
//! twice); and the gateway's ports per destination, exactly 55,000.
use aya::maps::HashMap as M;
use vpc::datapath::{fn_eni_claim, nat_claim, Maps, Timeouts};
use vpc::packet::{TCP_ACK, TCP_SYN};
use vpc_common::{
    map_names, CtEntry, CtKey, DropReason, NatPortKey, NAT_GATEWAY_CAPACITY, NAT_GATEWAY_ID_BASE,
    NAT_PORT_MIN,
};
use vpc_tests::{in_private_netns, Harness, XDP_DROP, XDP_REDIRECT};

use super::{env_addr, seen, tcp, CLASSIC};

const NAT_IP: &str = "198.51.100.10";
const EXAMPLE: &str = "203.0.113.10";

/// The classic layout with the private subnet's inbound ACL letting in TCP
/// from outside the VPC on ports `from`-`to` only (and everything from the
/// VPC); the public subnet keeps the default ACL.
fn classic_private_inbound(from: u16, to: u16) -> String {
    format!(
        "{CLASSIC}  PrivAcl: {{Type: AWS::EC2::NetworkAcl, Properties: {{VpcId: !Ref Vpc}}}}
  PrivAclAssoc: {{Type: AWS::EC2::SubnetNetworkAclAssociation, Properties: {{SubnetId: !Ref Private, NetworkAclId: !Ref PrivAcl}}}}
  PrivIn: {{Type: AWS::EC2::NetworkAclEntry, Properties: {{NetworkAclId: !Ref PrivAcl, RuleNumber: 100, Protocol: 6, RuleAction: allow, CidrBlock: 0.0.0.0/0, PortRange: {{From: {from}, To: {to}}}}}}}
  PrivInVpc: {{Type: AWS::EC2::NetworkAclEntry, Properties: {{NetworkAclId: !Ref PrivAcl, RuleNumber: 110, Protocol: -1, RuleAction: allow, CidrBlock: 10.0.0.0/16}}}}
  PrivOut: {{Type: AWS::EC2::NetworkAclEntry, Properties: {{NetworkAclId: !Ref PrivAcl, RuleNumber: 100, Protocol: -1, RuleAction: allow, Egress: true, CidrBlock: 0.0.0.0/0}}}}
"
    )
}

/// The original entry of the connection from `src`:`sport`.
fn entry(h: &mut Harness, sport: u16) -> (CtKey, CtEntry) {
    h.dp.connections()
        .unwrap()
        .into_iter()
        .find(|(k, _)| u16::from_be(k.sport) == sport && k.proto == 6)
        .expect("tracked")
}

/// The NAT gateway's `ENIS` pool.
fn gateway_pool(h: &Harness) -> u32 {
    h.entries
        .enis
        .iter()
        .find(|(id, _)| *id >= NAT_GATEWAY_ID_BASE && *id < NAT_GATEWAY_ID_BASE + 64)
        .expect("the NAT gateway's entry")
        .1
        .pool
}

/// A function's connection through a NAT gateway, as at AWS: it leaves its
/// Hyperplane ENI with a port of the ENI (a claim against the ENI's
/// capacity, beside the gateway's own), the private subnet's ACL judges
/// the replies on that port (the gateway sends them to the ENI), not on the
/// execution environment's own, and the GC gives both claims back with
/// the connection.
#[test]
fn a_functions_connection_through_a_nat_gateway_takes_a_port_of_its_eni_first() {
    in_private_netns(|| {
        // ENI ports 1024-2023; the ACL lets in exactly those.
        let mut h = Harness::new(&classic_private_inbound(1024, 2023));
        h.activate();
        h.dp.set_eni_capacity(1000).unwrap();
        let t = Timeouts::default();
        h.dp.set_timeouts(&t).unwrap();
        let (func, inet) = (h.ifindex("Fn"), h.ifindex("Example"));
        let exec = env_addr(&h, "Fn");
        let eni = h.model.enis[0].index;
        let gw = gateway_pool(&h);
        let (v, out) = h.run(func, &tcp(&exec, EXAMPLE, 40000, 443, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT);
        let (src, _, gw_port, _) = seen(&out);
        assert_eq!(src, NAT_IP);
        // Two claims: the ENI's and the gateway's, both naming the
        // connection's reply.
        let claims = h.dp.nat_claims().unwrap();
        assert_eq!(claims.get(&(eni, 6)), Some(&1), "{claims:?}");
        assert_eq!(claims.get(&(gw, 6)), Some(&1), "{claims:?}");
        let (k, e) = entry(&mut h, 40000);
        assert_eq!(e.fn_eni as u32, eni);
        let eni_port = u16::from_be(e.fn_eni_port);
        assert!((1024..2024).contains(&eni_port), "ENI port {eni_port}");
        {
            let ports: M<_, NatPortKey, CtKey> =
                M::try_from(h.dp.map(map_names::NAT_PORTS).unwrap()).unwrap();
            for c in [nat_claim(&k, &e), fn_eni_claim(&k, &e)] {
                assert_eq!(ports.get(&c.unwrap(), 0).unwrap(), e.twin);
            }
        }
        // The reply: into the private subnet on the ENI's port, allowed.
        let synack = tcp(EXAMPLE, NAT_IP, 443, gw_port, TCP_SYN | TCP_ACK);
        let (v, out) = h.run(inet, &synack);
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(seen(&out), (EXAMPLE.into(), exec.clone(), 443, 40000));
        // Both packets counted on the function's ENI (eni_packets_forwarded).
        {
            let a: aya::maps::PerCpuArray<_, u64> =
                aya::maps::PerCpuArray::try_from(h.dp.map(map_names::ENI_STATS).unwrap()).unwrap();
            assert_eq!(a.get(&eni, 0).unwrap().iter().sum::<u64>(), 2);
        }
        // The ACL now lets in the execution environment's port alone: the
        // replies, sent to the ENI's port, are denied.
        h.switch_to(&classic_private_inbound(40000, 40000));
        let data = tcp(EXAMPLE, NAT_IP, 443, gw_port, TCP_ACK);
        assert_eq!(h.run(inet, &data).0, XDP_DROP);
        assert_eq!(h.counters().dropped(DropReason::NaclIngressDenied), 1);
        h.switch_to(&classic_private_inbound(1024, 2023));
        assert_eq!(h.run(inet, &data).0, XDP_REDIRECT);
        // Idle past the gateway's 350 s and the GC's grace: both claims go.
        h.dp.advance_clock(3_600_000_000_000).unwrap();
        assert_eq!(h.dp.ct_gc(&t).unwrap(), 1);
        assert_eq!(h.dp.nat_claims().unwrap().values().sum::<usize>(), 0);
        assert_eq!(h.dp.nat_orphans().unwrap(), vec![]);
    });
}

/// An ENI whose ports are all claimed refuses a connection through the NAT
/// gateway as it would a direct one (`nat_port_exhausted`), taking no port
/// of the gateway; once the group has a second ENI, the connection leaves
/// from that one.
#[test]
fn an_eni_out_of_ports_refuses_a_connection_through_the_nat_gateway_then_the_next_eni_takes_it() {
    in_private_netns(|| {
        let mut h = Harness::new(CLASSIC);
        h.activate();
        h.dp.set_eni_capacity(1).unwrap();
        let func = h.ifindex("Fn");
        let exec = env_addr(&h, "Fn");
        let first = h.model.enis[0].index;
        let gw = gateway_pool(&h);
        assert_eq!(
            h.run(func, &tcp(&exec, EXAMPLE, 40000, 443, TCP_SYN)).0,
            XDP_REDIRECT
        );
        assert_eq!(u16::from_be(entry(&mut h, 40000).1.fn_eni_port), 1024);
        // The gateway has ports for :444; the ENI has none left.
        let second = tcp(&exec, EXAMPLE, 40001, 444, TCP_SYN);
        assert_eq!(h.run(func, &second).0, XDP_DROP);
        assert_eq!(h.counters().dropped(DropReason::NatPortExhausted), 1);
        assert_eq!(h.dp.nat_stats().unwrap().failed, 1);
        let claims = h.dp.nat_claims().unwrap();
        assert_eq!(claims.get(&(first, 6)), Some(&1));
        assert_eq!(claims.get(&(gw, 6)), Some(&1), "no gateway port taken");
        // A second ENI in the group (the agent's scale-out).
        let mut e = h.model.enis[0].clone();
        e.index = h.model.enis.iter().map(|e| e.index).max().unwrap() + 1;
        e.id = "eni-0second".into();
        e.ip = h.model.free_ip(&e.subnet).expect("a free address");
        e.ip6 = None;
        e.scaled = true;
        let next = e.index;
        h.model.enis.push(e);
        h.entries = vpc::compile::compile(&h.model, &h.links, 0).expect("compile");
        h.dp.install(&h.entries).expect("install");
        let (v, out) = h.run(func, &second);
        assert_eq!(v, XDP_REDIRECT);
        assert_eq!(seen(&out).0, NAT_IP);
        assert_eq!(entry(&mut h, 40001).1.fn_eni as u32, next);
        let claims = h.dp.nat_claims().unwrap();
        assert_eq!(claims.get(&(next, 6)), Some(&1), "{claims:?}");
        assert_eq!(claims.get(&(gw, 6)), Some(&2), "{claims:?}");
    });
}

/// A NAT gateway toward one destination (address, port, protocol) holds
/// exactly AWS's 55,000 connections: with all but two of its ports to
/// 203.0.113.10:443 claimed, two hosts' connections find exactly those
/// two, wherever they are, and the next is `ErrorPortAllocation` (counted,
/// as `vpc status` shows it); another destination still gets a port.
#[test]
fn a_nat_gateway_fills_exactly_55000_ports_per_destination_then_error_port_allocation() {
    in_private_netns(|| {
        let mut h = Harness::new(CLASSIC);
        h.activate();
        h.dp.set_conntrack_allowance(0).unwrap();
        let app = h.ifindex("App");
        let gw = gateway_pool(&h);
        let last = NAT_PORT_MIN + (NAT_GATEWAY_CAPACITY - 1) as u16;
        let free = [NAT_PORT_MIN + 17_000, last];
        {
            let mut m: M<_, NatPortKey, CtKey> =
                M::try_from(h.dp.map(map_names::NAT_PORTS).unwrap()).unwrap();
            for port in (NAT_PORT_MIN..=last).filter(|p| !free.contains(p)) {
                let k = NatPortKey {
                    eni: gw,
                    daddr: u32::from_ne_bytes([203, 0, 113, 10]),
                    port: port.to_be(),
                    dport: 443u16.to_be(),
                    proto: 6,
                    ..Default::default()
                };
                m.insert(k, CtKey::default(), 0).unwrap();
            }
        }
        let mut got = vec![];
        for sport in [40000, 40001] {
            let (v, out) = h.run(app, &tcp("10.0.2.10", EXAMPLE, sport, 443, TCP_SYN));
            assert_eq!(v, XDP_REDIRECT, "{:?}", h.counters());
            let (src, _, port, _) = seen(&out);
            assert_eq!(src, NAT_IP);
            got.push(port);
        }
        got.sort();
        assert_eq!(got, free, "the last free ports, found");
        assert_eq!(h.dp.nat_stats().unwrap().failed, 0);
        let (v, _) = h.run(app, &tcp("10.0.2.10", EXAMPLE, 40002, 443, TCP_SYN));
        assert_eq!(v, XDP_DROP);
        assert_eq!(h.counters().dropped(DropReason::NatPortExhausted), 1);
        assert_eq!(h.dp.nat_stats().unwrap().failed, 1, "ErrorPortAllocation");
        let (v, _) = h.run(app, &tcp("10.0.2.10", EXAMPLE, 40003, 444, TCP_SYN));
        assert_eq!(v, XDP_REDIRECT, "another destination");
        // The connections go on.
        let synack = tcp(EXAMPLE, NAT_IP, 443, free[0], TCP_SYN | TCP_ACK);
        assert_eq!(h.run(h.ifindex("Example"), &synack).0, XDP_REDIRECT);
        let ack = tcp("10.0.2.10", EXAMPLE, 40000, 443, TCP_ACK);
        assert_eq!(h.run(app, &ack).0, XDP_REDIRECT);
    });
}

//! Route tables to `ROUTES` / `SUBNET_ROUTE_TABLES` entries: one LPM trie
//! keyed by (table, family, destination), so the datapath finds the longest
//! matching prefix in one lookup whatever the number of routes.
use std::collections::BTreeMap;

use ipnet::IpNet;
use vpc_common::{
    route_kind, subnet_acl_index, RouteKey, RouteTarget, ID_GEN_SHIFT, ROUTE_FIXED_BITS,
};

use super::{mapped, Entries};
// Also its former path, `compile::route::nat_gateway_id`.
pub use super::nat_gateway::nat_gateway_id;
use crate::model::{
    route_table::{Destination, RouteState, Target},
    Model,
};

/// `RouteKey::table_family`.
pub fn table_family(table: u32, v6: bool) -> [u8; 4] {
    ((table << 1) | v6 as u32).to_be_bytes()
}

/// The datapath id of an internet gateway (1-based).
pub fn internet_gateway_id(model: &Model, id: &str) -> u32 {
    model
        .internet_gateways
        .iter()
        .position(|g| g.id == id)
        .expect("validated") as u32
        + 1
}

/// The datapath id of an egress-only internet gateway (1-based).
pub fn egress_only_internet_gateway_id(model: &Model, id: &str) -> u32 {
    model
        .egress_only_internet_gateways
        .iter()
        .position(|g| g.id == id)
        .expect("validated") as u32
        + 1
}

/// A middlebox route's target: the ENI's IPv4 address, octets in memory
/// order (`route_kind::NETWORK_INTERFACE`).
pub fn network_interface_id(model: &Model, host: &str) -> u32 {
    let h = model.hosts.iter().find(|x| x.id == host).expect("active");
    u32::from_ne_bytes(h.ip.octets())
}

/// Every table's routes and every subnet's table, in generation `gen`.
/// Longest prefix wins in the trie; at an equal prefix a static CIDR route
/// beats a prefix-list entry (AWS's rule for overlapping routes), so the
/// prefix-list entry is not written.
pub(crate) fn compile_routes(model: &Model, gen: u32, out: &mut Entries) {
    for (i, t) in model.route_tables.iter().enumerate() {
        let table = (gen << ID_GEN_SHIFT) | (i as u32 + 1);
        out.route_tables.insert(t.id.clone(), table);
        let mut entries: BTreeMap<(bool, [u8; 16], u32), (bool, RouteTarget)> = BTreeMap::new();
        for r in model.routes_of(t) {
            let target = match (model.route_state(t, &r), &r.target) {
                (RouteState::Blackhole, _) => RouteTarget {
                    kind: route_kind::BLACKHOLE,
                    ..Default::default()
                },
                (RouteState::Active, Target::Local) => RouteTarget {
                    kind: route_kind::LOCAL,
                    ..Default::default()
                },
                (RouteState::Active, Target::InternetGateway(g)) => RouteTarget {
                    kind: route_kind::INTERNET_GATEWAY,
                    id: internet_gateway_id(model, g),
                    ..Default::default()
                },
                (RouteState::Active, Target::NatGateway(g)) => RouteTarget {
                    kind: route_kind::NAT_GATEWAY,
                    id: nat_gateway_id(model.nat_gateway(g).expect("active").index),
                    ..Default::default()
                },
                (RouteState::Active, Target::NetworkInterface(h)) => RouteTarget {
                    kind: route_kind::NETWORK_INTERFACE,
                    id: network_interface_id(model, h),
                    ..Default::default()
                },
                (RouteState::Active, Target::VpcEndpoint(e)) => RouteTarget {
                    kind: route_kind::GATEWAY_ENDPOINT,
                    id: model.vpc_endpoint_index(e).expect("active"),
                    ..Default::default()
                },
                (RouteState::Active, Target::EgressOnlyInternetGateway(g)) => RouteTarget {
                    kind: route_kind::EGRESS_ONLY_INTERNET_GATEWAY,
                    id: egress_only_internet_gateway_id(model, g),
                    ..Default::default()
                },
            };
            let is_static = matches!(r.destination, Destination::Cidr(_));
            for cidr in model.route_cidrs(&r) {
                let prefix = mapped(&cidr.trunc());
                match entries.get(&prefix) {
                    Some((true, _)) if !is_static => continue,
                    _ => {
                        entries.insert(prefix, (is_static, target));
                    }
                }
            }
        }
        for ((v6, addr, len), (_, target)) in entries {
            out.routes.push((
                ROUTE_FIXED_BITS + len,
                RouteKey {
                    table_family: table_family(table, v6),
                    addr,
                },
                target,
            ));
        }
    }
    for sn in &model.subnets {
        out.subnet_route_tables.push((
            subnet_acl_index(gen, sn.index),
            out.route_tables[&sn.route_table],
        ));
    }
}

/// The route the datapath would take (a longest-prefix match over the
/// compiled entries, as the trie does), for tests and `vpc explain`.
pub fn lookup(e: &Entries, table: u32, dst: std::net::IpAddr) -> Option<RouteTarget> {
    let net = IpNet::from(dst);
    let (v6, addr, _) = mapped(&net);
    let key = u128::from_be_bytes(addr);
    e.routes
        .iter()
        .filter(|(_, k, _)| k.table_family == table_family(table, v6))
        .filter(|(len, k, _)| {
            let bits = len - ROUTE_FIXED_BITS;
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from_be_bytes(k.addr) & mask == key & mask
        })
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, _, t)| *t)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::model::build;

    #[test]
    fn longest_prefix_wins_and_a_static_route_beats_an_equal_prefix_list_entry() {
        let t = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  S: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  Other: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24}}
  Igw: {Type: AWS::EC2::InternetGateway}
  Attach: {Type: AWS::EC2::VPCGatewayAttachment, Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}}
  Detached: {Type: AWS::EC2::InternetGateway}
  Rt: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}
  Assoc: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref S, RouteTableId: !Ref Rt}}
  Pl: {Type: AWS::EC2::PrefixList, Properties: {PrefixListName: p, AddressFamily: IPv4, MaxEntries: 3, Entries: [{Cidr: 192.0.2.0/24}, {Cidr: 198.51.100.0/24}]}}
  Default: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref Rt, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref Igw}}
  ViaPl: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref Rt, DestinationPrefixListId: !Ref Pl, GatewayId: !Ref Detached}}
  Static: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref Rt, DestinationCidrBlock: 198.51.100.0/24, GatewayId: !Ref Igw}}
"#;
        let m = build(t, &HashMap::new(), "s").unwrap();
        for gen in [0, 1] {
            let e = super::super::compile(&m, &HashMap::new(), gen).unwrap();
            let rt = e.route_tables["Rt"];
            let main = e.route_tables["Vpc.MainRouteTable"];
            assert_eq!(rt >> ID_GEN_SHIFT, gen);
            let kind = |table, a: &str| lookup(&e, table, a.parse().unwrap()).map(|t| t.kind);
            assert_eq!(kind(rt, "10.0.2.9"), Some(route_kind::LOCAL));
            assert_eq!(kind(rt, "8.8.8.8"), Some(route_kind::INTERNET_GATEWAY));
            // The list's entry is longer than 0.0.0.0/0, and its gateway is detached.
            assert_eq!(kind(rt, "192.0.2.7"), Some(route_kind::BLACKHOLE));
            // An equal static route wins over the list's entry.
            assert_eq!(kind(rt, "198.51.100.7"), Some(route_kind::INTERNET_GATEWAY));
            // No IPv6 route at all; the main table only knows the VPC.
            assert_eq!(kind(rt, "2001:db8::1"), None);
            assert_eq!(kind(main, "10.0.1.5"), Some(route_kind::LOCAL));
            assert_eq!(kind(main, "8.8.8.8"), None);
            let sn_rt: Vec<u32> = e.subnet_route_tables.iter().map(|x| x.1).collect();
            // Subnets in logical-id order: Other (main table), S.
            assert_eq!(sn_rt, [main, rt]);
        }
    }

    #[test]
    fn ipv6_routes_reach_both_gateways_and_a_gone_egress_only_gateway_is_a_blackhole() {
        let t = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  V6: {Type: AWS::EC2::VPCCidrBlock, Properties: {VpcId: !Ref Vpc, AmazonProvidedIpv6CidrBlock: true}}
  Igw: {Type: AWS::EC2::InternetGateway}
  Attach: {Type: AWS::EC2::VPCGatewayAttachment, Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}}
  Eigw: {Type: AWS::EC2::EgressOnlyInternetGateway, Properties: {VpcId: !Ref Vpc}}
  Rt: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}
  Out: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref Rt, DestinationIpv6CidrBlock: '::/0', EgressOnlyInternetGatewayId: !Ref Eigw}}
  Both: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref Rt, DestinationIpv6CidrBlock: '2001:db8:f00d::/48', GatewayId: !Ref Igw}}
"#;
        let mut m = build(t, &HashMap::new(), "s").unwrap();
        let e = super::super::compile(&m, &HashMap::new(), 0).unwrap();
        let rt = e.route_tables["Rt"];
        let at = |e: &Entries, a: &str| lookup(e, rt, a.parse().unwrap());
        let out = at(&e, "2001:db8:aaaa::1").unwrap();
        assert_eq!(
            (out.kind, out.id),
            (route_kind::EGRESS_ONLY_INTERNET_GATEWAY, 1)
        );
        assert_eq!(
            at(&e, "2001:db8:f00d::10").map(|t| t.kind),
            Some(route_kind::INTERNET_GATEWAY)
        );
        assert_eq!(
            at(&e, "2001:db8:ec2:100::5").map(|t| t.kind),
            Some(route_kind::LOCAL)
        );
        // IPv4 is untouched by the IPv6 default route.
        assert_eq!(at(&e, "8.8.8.8"), None);
        // The gateway gone (deleted): its route stays, as a blackhole.
        m.egress_only_internet_gateways.clear();
        let e = super::super::compile(&m, &HashMap::new(), 0).unwrap();
        assert_eq!(
            at(&e, "2001:db8:aaaa::1").map(|t| t.kind),
            Some(route_kind::BLACKHOLE)
        );
    }
}

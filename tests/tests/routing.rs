//! Route tables in the datapath, through BPF_PROG_TEST_RUN: the table of
//! the subnet a packet leaves decides, by longest prefix, before any group
//! or NAT port is looked at.
use std::net::IpAddr;

use vpc::packet::{Frame, L4, TCP_SYN};
use vpc_common::DropReason;
use vpc_tests::{in_private_netns, Harness, XDP_DROP, XDP_REDIRECT};

/// A public subnet (0.0.0.0/0 to an attached internet gateway, a
/// prefix-list route and a static route to a detached one) and a private
/// subnet on the main table; a host and a function in each.
pub const TEMPLATE: &str = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  Public: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  Private: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24}}
  Igw: {Type: AWS::EC2::InternetGateway}
  Attach: {Type: AWS::EC2::VPCGatewayAttachment, Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}}
  Detached: {Type: AWS::EC2::InternetGateway}
  PublicRt: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}
  PublicAssoc: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref Public, RouteTableId: !Ref PublicRt}}
  Default: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PublicRt, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref Igw}}
  Gone: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PublicRt, DestinationCidrBlock: 192.0.2.0/24, GatewayId: !Ref Detached}}
  Pl: {Type: AWS::EC2::PrefixList, Properties: {PrefixListName: p, AddressFamily: IPv4, MaxEntries: 2, Entries: [{Cidr: 198.51.100.0/24}, {Cidr: 203.0.113.0/24}]}}
  ViaPl: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PublicRt, DestinationPrefixListId: !Ref Pl, GatewayId: !Ref Detached}}
  Static: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PublicRt, DestinationCidrBlock: 203.0.113.0/24, GatewayId: !Ref Igw}}
  Sg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: all
      VpcId: !Ref Vpc
      SecurityGroupIngress: [{IpProtocol: -1, CidrIp: 0.0.0.0/0}]
  Web: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Public, PrivateIpAddress: 10.0.1.10, SecurityGroupIds: [!Ref Sg]}}
  Db: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Private, PrivateIpAddress: 10.0.2.10, SecurityGroupIds: [!Ref Sg]}}
  PublicFn: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref Public], SecurityGroupIds: [!Ref Sg]}}}
  PrivateFn: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref Private], SecurityGroupIds: [!Ref Sg]}}}
"#;

fn syn(src: &str, dst: &str, sport: u16) -> Vec<u8> {
    let (s, d): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    Frame::new(
        s,
        d,
        L4::Tcp {
            sport,
            dport: 443,
            flags: TCP_SYN,
        },
    )
    .build()
}

/// The function's execution environment address (first function: .10).
fn env_addr(h: &Harness, id: &str) -> String {
    let f = h.model.functions.iter().find(|f| f.id == id).unwrap();
    f.envs()[0].ip.to_string()
}

/// Activates every execution environment (as the agent does once its
/// function's ENI is ready).
fn activate(h: &mut Harness) {
    use vpc::datapath::Maps;
    for f in h.model.functions.clone() {
        for (env, group) in vpc::compile::env_enis(&h.model, &f) {
            let ifindex = h.ifindex(&env);
            h.dp.set_port_eni(ifindex, group).unwrap();
        }
    }
}

#[test]
fn the_leaving_subnets_table_decides_by_longest_prefix_and_a_blackhole_drops() {
    in_private_netns(|| {
        let mut h = Harness::new(TEMPLATE);
        activate(&mut h);
        let web = h.ifindex("Web");
        let db = h.ifindex("Db");
        let public_fn = h.ifindex("PublicFn");
        let private_fn = h.ifindex("PrivateFn");
        let (pub_env, priv_env) = (env_addr(&h, "PublicFn"), env_addr(&h, "PrivateFn"));
        // (ingress, source, destination, expected drop or None: forwarded)
        let cases: Vec<(u32, &str, &str, Option<DropReason>)> = vec![
            // The local route, across subnets, both ways.
            (web, "10.0.1.10", "10.0.2.10", None),
            (db, "10.0.2.10", "10.0.1.10", None),
            // 0.0.0.0/0 -> the attached gateway, beyond which nothing
            // answers in this slice.
            (
                web,
                "10.0.1.10",
                "8.8.8.8",
                Some(DropReason::InternetUnreachable),
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
            (
                public_fn,
                &pub_env,
                "8.8.8.8",
                Some(DropReason::InternetUnreachable),
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

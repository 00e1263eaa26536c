//! Routed paths: a host's new flows and established packets with 1 and 50
//! routes in its subnet's table, inside the VPC, out through the internet
//! gateway's 1:1 NAT, and through a NAT gateway.
use std::{collections::HashMap, net::IpAddr};

use anyhow::{bail, Result};

use super::{bench_datapath, case, run_once, set_mode, Case};
use crate::{
    datapath::BENCH_ROUTER_PROGRAM,
    model,
    packet::{Frame, L4, TCP_ACK, TCP_SYN},
};

/// App (public subnet, an Elastic IP) talks to Db (private subnet) and to
/// an internet test host; Priv (private subnet) reaches it through the NAT
/// gateway. Each table holds `routes` routes: 0.0.0.0/0 (to the internet
/// gateway, or the NAT gateway) and `routes - 1` /24s beside it.
fn template(routes: usize) -> String {
    let mut t = String::from(
        r#"
Metadata:
  Vpc::Internet:
    Hosts:
      Example: {Address: 203.0.113.10}
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  Public: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  Private: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24}}
  Igw: {Type: AWS::EC2::InternetGateway}
  Attach: {Type: AWS::EC2::VPCGatewayAttachment, Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}}
  Rt: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}
  Assoc: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref Public, RouteTableId: !Ref Rt}}
  Default: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref Rt, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref Igw}}
  AppSg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: app, VpcId: !Ref Vpc}}
  DbSg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: db
      VpcId: !Ref Vpc
      SecurityGroupIngress: [{IpProtocol: tcp, FromPort: 5432, ToPort: 5432, CidrIp: 10.0.0.0/16}]
  App: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Public, PrivateIpAddress: 10.0.1.20, SecurityGroupIds: [!Ref AppSg]}}
  AppIp: {Type: AWS::EC2::EIP, Properties: {InstanceId: !Ref App}}
  Db: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Private, PrivateIpAddress: 10.0.2.10, SecurityGroupIds: [!Ref DbSg]}}
  Priv: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Private, PrivateIpAddress: 10.0.2.20, SecurityGroupIds: [!Ref AppSg]}}
  NatIp: {Type: AWS::EC2::EIP, Properties: {Domain: vpc}}
  Nat: {Type: AWS::EC2::NatGateway, Properties: {SubnetId: !Ref Public, AllocationId: !GetAtt NatIp.AllocationId}}
  PrivRt: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}
  PrivAssoc: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref Private, RouteTableId: !Ref PrivRt}}
  PrivDefault: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PrivRt, DestinationCidrBlock: 0.0.0.0/0, NatGatewayId: !Ref Nat}}
"#,
    );
    for i in 1..routes {
        for (table, target) in [
            ("Rt", "GatewayId: !Ref Igw"),
            ("PrivRt", "NatGatewayId: !Ref Nat"),
        ] {
            t += &format!(
                "  {table}R{i}: {{Type: AWS::EC2::Route, Properties: {{RouteTableId: !Ref {table}, DestinationCidrBlock: 172.{}.{}.0/24, {target}}}}}\n",
                16 + i / 256,
                i % 256
            );
        }
    }
    t
}

fn tcp(src: &str, dst: &str, dport: u16, flags: u8) -> Vec<u8> {
    let (s, d): (IpAddr, IpAddr) = (src.parse().expect("address"), dst.parse().expect("address"));
    Frame::new(
        s,
        d,
        L4::Tcp {
            sport: 40000,
            dport,
            flags,
        },
    )
    .min_len(64)
    .build()
}

/// New flows and established packets, inside the VPC, to the internet and
/// through the NAT gateway, with 1 and 50 routes; ratios to this run's
/// baseline `base`.
pub(super) fn routed_cases(repeat: u32, samples: usize, base: f64) -> Result<Vec<Case>> {
    let mut out = vec![];
    for routes in [1usize, 50] {
        let model = model::build(&template(routes), &HashMap::new(), "bench")
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for (src, dst, port, what) in [
            ("App", "10.0.2.10", 5432, "local"),
            ("App", "203.0.113.10", 443, "internet_gateway"),
            ("Priv", "203.0.113.10", 443, "nat_gateway"),
        ] {
            // The sender is the test run's ingress (lo).
            let other = if src == "App" { "Priv" } else { "App" };
            let ids = [(src, 1), ("Db", 100), ("Example", 101), (other, 102)];
            let (mut dp, _, _) = bench_datapath(&model, &ids)?;
            let from = if src == "App" {
                "10.0.1.20"
            } else {
                "10.0.2.20"
            };
            let (syn, ack) = (tcp(from, dst, port, TCP_SYN), tcp(from, dst, port, TCP_ACK));
            set_mode(&mut dp, 0)?;
            if run_once(&mut dp, BENCH_ROUTER_PROGRAM, &syn, 1)?.0 != 4 {
                bail!("routed bench ({what}, {routes} routes): the connection does not open");
            }
            out.push(case(
                &mut dp,
                format!("routed_{what}_new_flow_{routes}_routes"),
                "host's first packet: route lookup in its subnet's table, groups, ACLs, two CT inserts (+ harness teardown); through a gateway also its NAT (and the NAT gateway's port claim and its subnet's route and ACLs)",
                1,
                &syn,
                repeat,
                samples,
                base,
            )?);
            out.push(case(
                &mut dp,
                format!("routed_{what}_established_{routes}_routes"),
                "host's established packet: CT hit (the route is re-checked only after a policy change), NAT through the gateway",
                0,
                &ack,
                repeat,
                samples,
                base,
            )?);
        }
    }
    Ok(out)
}

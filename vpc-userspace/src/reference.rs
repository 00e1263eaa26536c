//! The reference semantics: what AWS would do with a packet, written from
//! AWS's rules (security groups: allow-only, stateful, union of groups;
//! network ACLs: stateless, numbered, first match, at subnet boundaries;
//! route tables: longest prefix of the leaving subnet's table, gateways),
//! not from the datapath. Tests hold the XDP program to it.
use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{
    route::{Destination, Route, RouteState, Target},
    AclEntry, Model, Peer, Protocol, Rule,
};

/// A packet as it leaves its sender, in model terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// Destination port; ICMP: `type << 8 | code`.
    pub port: u16,
    /// The sender's VPC (`Vpc::index`; separate VPCs may share addresses);
    /// 0: the sender is found by its address alone (the first that has it).
    pub space: u32,
}

/// The verdict and the reason, named like the datapath's drop counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny(&'static str, String),
}

impl Verdict {
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Verdict::Allow => None,
            Verdict::Deny(r, _) => Some(r),
        }
    }
}

/// Where an address sits: its subnet, groups and VPC (hosts and
/// Hyperplane ENIs).
struct Side<'m> {
    subnet: &'m str,
    groups: &'m [String],
    vpc: u32,
}

/// The VPC index of subnet `subnet` (0: none).
fn vpc_of(m: &Model, subnet: &str) -> u32 {
    m.subnet(subnet)
        .and_then(|s| m.vpc(&s.vpc))
        .map_or(0, |v| v.index)
}

/// The host owning `ip` in VPC `vpc` (0: in any VPC, the first).
fn host_at(m: &Model, ip: IpAddr, vpc: u32) -> Option<&crate::model::Host> {
    m.hosts
        .iter()
        .filter(|h| vpc == 0 || vpc_of(m, &h.subnet) == vpc)
        .find(|h| h.owns(ip))
}

/// The Hyperplane ENI owning `ip` in VPC `vpc` (0: in any VPC).
fn eni_at(m: &Model, ip: IpAddr, vpc: u32) -> Option<&crate::model::HyperplaneEniSpec> {
    m.enis
        .iter()
        .filter(|e| vpc == 0 || vpc_of(m, &e.subnet) == vpc)
        .find(|e| IpAddr::V4(e.ip) == ip || e.ip6.map(IpAddr::V6) == Some(ip))
}

/// Who owns `ip` in VPC `vpc` (0: in any VPC).
fn side(m: &Model, ip: IpAddr, vpc: u32) -> Option<Side<'_>> {
    if let Some(h) = host_at(m, ip, vpc) {
        return Some(Side {
            subnet: &h.subnet,
            groups: &h.groups,
            vpc: vpc_of(m, &h.subnet),
        });
    }
    eni_at(m, ip, vpc).map(|e| Side {
        subnet: &e.subnet,
        groups: &e.groups,
        vpc: vpc_of(m, &e.subnet),
    })
}

fn rule_matches(m: &Model, r: &Rule, peer: IpAddr, p: &Packet) -> bool {
    let peer_ok = match &r.peer {
        Peer::Cidr(net) => net.contains(&peer),
        Peer::Group(g) => {
            m.members(g).iter().any(|a| IpAddr::V4(*a) == peer)
                || m.members6(g).iter().any(|a| IpAddr::V6(*a) == peer)
        }
        Peer::PrefixList(id) => m
            .prefix_list(id)
            .is_some_and(|l| l.cidrs.iter().any(|c| c.contains(&peer))),
    };
    let proto_ok = match r.protocol {
        Protocol::All => true,
        Protocol::Number(n) => n == p.proto,
    };
    let port_ok = match r.protocol {
        Protocol::All => true,
        pr if pr.has_ports() => (r.from_port..=r.to_port).contains(&(p.port as i32)),
        pr if pr.is_icmp() => {
            let (t, c) = ((p.port >> 8) as i32, (p.port & 0xff) as i32);
            r.from_port == -1 || (r.from_port == t && (r.to_port == -1 || r.to_port == c))
        }
        _ => true,
    };
    peer_ok && proto_ok && port_ok
}

/// Security groups: any rule of any of the groups allows.
pub fn groups_allow(
    m: &Model,
    groups: &[String],
    ingress: bool,
    peer: IpAddr,
    p: &Packet,
) -> Option<String> {
    groups.iter().find_map(|g| {
        let sg = m.group(g)?;
        let rules = if ingress { &sg.ingress } else { &sg.egress };
        rules
            .iter()
            .position(|r| rule_matches(m, r, peer, p))
            .map(|i| format!("{g} rule {i}"))
    })
}

fn entry_matches(e: &AclEntry, peer: IpAddr, p: &Packet) -> bool {
    if !e.cidr.contains(&peer) {
        return false;
    }
    match e.protocol {
        Protocol::All => true,
        Protocol::Number(n) if n != p.proto => false,
        pr if pr.has_ports() => (e.from_port..=e.to_port).contains(&(p.port as i32)),
        pr if pr.is_icmp() => {
            let (t, c) = ((p.port >> 8) as i32, (p.port & 0xff) as i32);
            e.from_port == -1 || (e.from_port == t && (e.to_port == -1 || e.to_port == c))
        }
        _ => true,
    }
}

/// A subnet's ACL: the lowest-numbered matching entry decides; none denies.
pub fn acl_allows(
    m: &Model,
    subnet: &str,
    egress: bool,
    peer: IpAddr,
    p: &Packet,
) -> (bool, String) {
    let acl = &m.subnet(subnet).expect("subnet").acl;
    let entries = &m.acl(acl).expect("acl").entries;
    match entries
        .iter()
        .filter(|e| e.egress == egress)
        .find(|e| entry_matches(e, peer, p))
    {
        Some(e) => (e.allow, format!("{acl} rule {}", e.rule_number)),
        None => (false, format!("{acl} rule *")),
    }
}

fn boundary(m: &Model, from: &str, to: &str, p: &Packet, steps: &mut Vec<String>) -> Verdict {
    if from == to {
        steps.push(format!("network ACLs: not applied inside subnet {from}"));
        return Verdict::Allow;
    }
    let (ok, why) = acl_allows(m, from, true, p.dst, p);
    steps.push(format!(
        "ACL out of {from}: {why} {}",
        if ok { "allows" } else { "denies" }
    ));
    if !ok {
        return Verdict::Deny("nacl_egress_denied", why);
    }
    let (ok, why) = acl_allows(m, to, false, p.src, p);
    steps.push(format!(
        "ACL into {to}: {why} {}",
        if ok { "allows" } else { "denies" }
    ));
    if !ok {
        return Verdict::Deny("nacl_ingress_denied", why);
    }
    Verdict::Allow
}

/// A new connection (or untracked packet) from `p.src`, a host or a
/// Hyperplane ENI after source NAT, to `p.dst`.
pub fn new_connection(m: &Model, p: &Packet) -> Verdict {
    explain(m, p).0
}

/// The route a packet to `dst` leaving `subnet` takes, as AWS picks it: the
/// longest matching prefix of the subnet's table (its association, else
/// the VPC's main table) in the destination's family; at an equal prefix a
/// static CIDR route beats a prefix-list entry. With its table, the prefix
/// that matched and the route's state.
pub fn route(m: &Model, subnet: &str, dst: IpAddr) -> Option<(String, Route, IpNet, RouteState)> {
    let table = m.route_table(&m.subnet(subnet)?.route_table)?;
    let mut best: Option<(Route, IpNet)> = None;
    for r in m.routes_of(table) {
        let is_static = matches!(r.destination, Destination::Cidr(_));
        for cidr in m.route_cidrs(&r) {
            if !cidr.contains(&dst) {
                continue;
            }
            let better = match &best {
                None => true,
                Some((b, c)) => {
                    cidr.prefix_len() > c.prefix_len()
                        || (cidr.prefix_len() == c.prefix_len()
                            && is_static
                            && !matches!(b.destination, Destination::Cidr(_)))
                }
            };
            if better {
                best = Some((r.clone(), cidr));
            }
        }
    }
    best.map(|(r, c)| {
        let state = m.route_state(table, &r);
        (table.id.clone(), r, c, state)
    })
}

/// The route step of `explain`: the route taken, or the verdict of a packet
/// that has none it may take.
fn route_step(
    m: &Model,
    subnet: &str,
    dst: IpAddr,
    steps: &mut Vec<String>,
) -> Result<Target, Verdict> {
    let Some((table, r, cidr, state)) = route(m, subnet, dst) else {
        let why = format!("no route to {dst} in the table of {subnet}");
        steps.push(format!("route out of {subnet}: none matches {dst}"));
        return Err(Verdict::Deny("no_route", why));
    };
    let via = match &r.destination {
        Destination::PrefixList(pl) => format!("{cidr} (prefix list {pl})"),
        Destination::Cidr(_) => cidr.to_string(),
    };
    let target = match &r.target {
        Target::Local => "local".to_string(),
        Target::InternetGateway(g) => format!("internet gateway {g}"),
        Target::NatGateway(g) => format!("NAT gateway {g}"),
        Target::NetworkInterface(h) => format!("network interface of {h}"),
        Target::VpcEndpoint(e) => format!(
            "gateway endpoint {}",
            m.vpc_endpoint(e).map_or(e.as_str(), |e| e.vpce_id.as_str())
        ),
        Target::EgressOnlyInternetGateway(g) => format!("egress-only internet gateway {g}"),
    };
    let name = if r.id == "local" {
        String::new()
    } else {
        format!(" ({})", r.id)
    };
    if state == RouteState::Blackhole {
        steps.push(format!(
            "route in {table}: {via}{name} -> {target}, blackhole"
        ));
        let why = format!("{table} routes {via} to {target}, which is gone");
        return Err(Verdict::Deny("route_blackhole", why));
    }
    steps.push(format!("route in {table}: {via}{name} -> {target}"));
    Ok(r.target)
}

/// The outbound groups of the sender.
fn egress(
    m: &Model,
    groups: &[String],
    p: &Packet,
    steps: &mut Vec<String>,
) -> Result<(), Verdict> {
    match groups_allow(m, groups, false, p.dst, p) {
        Some(rule) => {
            steps.push(format!(
                "outbound, groups [{}]: allowed by {rule}",
                groups.join(", ")
            ));
            Ok(())
        }
        None => {
            let why = format!("no outbound rule of [{}] matches", groups.join(", "));
            Err(Verdict::Deny("sg_egress_denied", why))
        }
    }
}

/// A subnet's outbound ACL toward a peer outside the VPC.
fn acl_out(m: &Model, subnet: &str, p: &Packet, steps: &mut Vec<String>) -> Result<(), Verdict> {
    let (ok, why) = acl_allows(m, subnet, true, p.dst, p);
    steps.push(format!(
        "ACL out of {subnet}: {why} {}",
        if ok { "allows" } else { "denies" }
    ));
    if ok {
        Ok(())
    } else {
        Err(Verdict::Deny("nacl_egress_denied", why))
    }
}

/// The internet test host owning `dst` (or AWS's public endpoints:
/// Lambda's, and the services' at their public addresses), as the
/// gateway's path sees it.
fn internet_host(m: &Model, dst: IpAddr, steps: &mut Vec<String>) -> Result<(), Verdict> {
    let owns = |h: &&crate::model::InternetHost| {
        IpAddr::V4(h.ip) == dst || h.ip6.map(IpAddr::V6) == Some(dst)
    };
    use crate::model::internet::{LAMBDA_PUBLIC, LAMBDA_PUBLIC6};
    let public = dst == IpAddr::V4(LAMBDA_PUBLIC) || dst == IpAddr::V6(LAMBDA_PUBLIC6);
    if public && m.has_internet() {
        steps.push(format!("the internet: AWS's public endpoints ({dst})"));
        return Ok(());
    }
    let service = crate::model::endpoint::PUBLIC_SERVICES
        .iter()
        .find(|(_, ip)| IpAddr::V4(*ip) == dst);
    if let (Some((name, _)), true) = (service, m.has_aws_services()) {
        steps.push(format!("the internet: AWS's {name} endpoint ({dst})"));
        return Ok(());
    }
    match m.internet_hosts.iter().find(owns) {
        Some(h) => {
            steps.push(format!("the internet: test host {} ({dst})", h.id));
            Ok(())
        }
        None => Err(Verdict::Deny(
            "internet_unreachable",
            format!("no internet test host has {dst}"),
        )),
    }
}

/// [`new_connection`] with each check it made, in order, for `vpc explain`.
pub fn explain(m: &Model, p: &Packet) -> (Verdict, Vec<String>) {
    let mut steps = vec![];
    let Some(from) = side(m, p.src, p.space) else {
        return (
            Verdict::Deny("spoofed_source", "unknown sender".into()),
            steps,
        );
    };
    match route_step(m, from.subnet, p.dst, &mut steps) {
        Err(v) => (v, steps),
        Ok(Target::Local) => {
            let v = local(m, &from, p, &mut steps);
            (v, steps)
        }
        // Routes to an egress-only gateway are IPv6 only: the same way out.
        Ok(Target::InternetGateway(_)) | Ok(Target::EgressOnlyInternetGateway(_)) => {
            let v = to_internet(m, &from, p, &mut steps)
                .err()
                .unwrap_or(Verdict::Allow);
            (v, steps)
        }
        Ok(Target::NatGateway(g)) => {
            let v = via_nat_gateway(m, &from, &g, p, &mut steps)
                .err()
                .unwrap_or(Verdict::Allow);
            (v, steps)
        }
        Ok(Target::NetworkInterface(h)) => {
            let v = middlebox(m, &from, &h, p, &mut steps);
            (v, steps)
        }
        Ok(Target::VpcEndpoint(e)) => {
            let v = via_gateway_endpoint(m, &from, &e, p, &mut steps)
                .err()
                .unwrap_or(Verdict::Allow);
            (v, steps)
        }
    }
}

/// Through a gateway endpoint: only to its simulated service; the sender's
/// outbound groups and its subnet's outbound ACL; no NAT, and the service
/// has no groups.
fn via_gateway_endpoint(
    m: &Model,
    from: &Side,
    id: &str,
    p: &Packet,
    steps: &mut Vec<String>,
) -> Result<(), Verdict> {
    let e = m
        .vpc_endpoint(id)
        .expect("an active route's endpoint exists");
    let service = crate::model::endpoint::gateway_service_ip(&e.service);
    if service.map(IpAddr::V4) != Some(p.dst) {
        return Err(Verdict::Deny(
            "endpoint_service_mismatch",
            format!("{} leads only to {}", e.vpce_id, e.service_name),
        ));
    }
    egress(m, from.groups, p, steps)?;
    acl_out(m, from.subnet, p, steps)?;
    steps.push(format!(
        "gateway endpoint {}: to {} at {}, source unchanged",
        e.vpce_id, e.service_name, p.dst
    ));
    Ok(())
}

/// Out through the internet gateway: 1:1 NAT to the sender's public
/// address, which it must have (a Hyperplane ENI never has one); IPv6 as
/// it is, through either gateway (a VPC's IPv6 addresses are global).
fn to_internet(m: &Model, from: &Side, p: &Packet, steps: &mut Vec<String>) -> Result<(), Verdict> {
    if p.dst.is_ipv6() {
        internet_host(m, p.dst, steps)?;
        egress(m, from.groups, p, steps)?;
        acl_out(m, from.subnet, p, steps)?;
        steps.push(format!("gateway: IPv6, {} goes as it is", p.src));
        return Ok(());
    }
    let public = host_at(m, p.src, from.vpc).and_then(|h| {
        m.public_ips
            .iter()
            .find(|x| x.host == h.id && m.private_of(x).map(IpAddr::V4) == Some(p.src))
            .map(|x| x.ip)
    });
    let Some(public) = public else {
        return Err(Verdict::Deny(
            "no_public_address",
            format!("{} has no public IPv4 address", p.src),
        ));
    };
    internet_host(m, p.dst, steps)?;
    egress(m, from.groups, p, steps)?;
    acl_out(m, from.subnet, p, steps)?;
    steps.push(format!(
        "internet gateway: source {} becomes {public}",
        p.src
    ));
    Ok(())
}

/// Through a NAT gateway: the sender's groups, the ACLs from its subnet into
/// the gateway's, the gateway's subnet's route (to an internet gateway) and
/// outbound ACL; then source NAT to the Elastic IP. TCP, UDP and ICMP echo
/// over IPv4.
fn via_nat_gateway(
    m: &Model,
    from: &Side,
    gw: &str,
    p: &Packet,
    steps: &mut Vec<String>,
) -> Result<(), Verdict> {
    let g = m.nat_gateway(gw).expect("an active route's gateway exists");
    let echo = p.proto == 1 && p.port >> 8 == 8;
    if p.dst.is_ipv6() || !(matches!(p.proto, 6 | 17) || echo) {
        return Err(Verdict::Deny(
            "nat_gateway_protocol",
            format!("{gw} translates TCP, UDP and ICMP echo over IPv4"),
        ));
    }
    match route_step(m, &g.subnet, p.dst, steps)? {
        Target::InternetGateway(_) if g.private => {
            return Err(Verdict::Deny(
                "nat_gateway_private_internet",
                format!("{gw} is private: the internet gateway drops what it sends"),
            ))
        }
        Target::InternetGateway(_) => {}
        Target::Local
        | Target::NatGateway(_)
        | Target::NetworkInterface(_)
        | Target::VpcEndpoint(_)
        | Target::EgressOnlyInternetGateway(_) => {
            return Err(Verdict::Deny(
                "no_route",
                format!(
                    "{}'s table does not route {} to an internet gateway",
                    g.subnet, p.dst
                ),
            ))
        }
    }
    internet_host(m, p.dst, steps)?;
    egress(m, from.groups, p, steps)?;
    if let v @ Verdict::Deny(..) = boundary(m, from.subnet, &g.subnet, p, steps) {
        return Err(v);
    }
    acl_out(m, &g.subnet, p, steps)?;
    // A function's packet reaches the gateway from its ENI's address and a
    // port of the ENI (a claim against its capacity), as at AWS.
    if let Some(e) = eni_at(m, p.src, from.vpc) {
        steps.push(format!(
            "Hyperplane ENI {}: source {} and a port of the ENI",
            e.id, e.ip
        ));
    }
    steps.push(format!(
        "NAT gateway {gw}: source becomes {} and a port of its own",
        g.public_ip
    ));
    Ok(())
}

/// Inside the VPC (the `local` route): the sender's VPC's addresses only.
fn local(m: &Model, from: &Side, p: &Packet, steps: &mut Vec<String>) -> Verdict {
    if eni_at(m, p.dst, from.vpc).is_some() {
        return Verdict::Deny(
            "hyperplane_unsolicited",
            "Hyperplane ENIs accept no inbound connections".into(),
        );
    }
    let Some(to) = host_at(m, p.dst, from.vpc) else {
        return Verdict::Deny("no_route", "no host owns the destination".into());
    };
    deliver(m, from, to, p, steps)
}

/// To an instance's or interface's ENI routed to as a middlebox: EC2 hands
/// it packets for others only with its source/destination check off; then
/// as to any host (its inbound groups see the packet as it is).
fn middlebox(m: &Model, from: &Side, id: &str, p: &Packet, steps: &mut Vec<String>) -> Verdict {
    let to = m
        .hosts
        .iter()
        .find(|h| h.id == id)
        .expect("an active route's target exists");
    if to.source_dest_check && !to.owns(p.dst) {
        return Verdict::Deny(
            "source_dest_check",
            format!("{id} is not the destination and its source/destination check is on"),
        );
    }
    steps.push(format!(
        "to {id} ({}) as it is: its source/destination check is off",
        to.ip
    ));
    deliver(m, from, to, p, steps)
}

/// The groups and ACLs between a sender and the host that receives.
fn deliver(
    m: &Model,
    from: &Side,
    to: &crate::model::Host,
    p: &Packet,
    steps: &mut Vec<String>,
) -> Verdict {
    if let Err(v) = egress(m, from.groups, p, steps) {
        return v;
    }
    if let v @ Verdict::Deny(..) = boundary(m, from.subnet, &to.subnet, p, steps) {
        return v;
    }
    match groups_allow(m, &to.groups, true, p.src, p) {
        Some(rule) => steps.push(format!(
            "inbound, groups [{}]: allowed by {rule}",
            to.groups.join(", ")
        )),
        None => {
            let why = format!("no inbound rule of [{}] matches", to.groups.join(", "));
            return Verdict::Deny("sg_ingress_denied", why);
        }
    }
    Verdict::Allow
}

/// A packet of a tracked connection (groups skipped: they are stateful; ACLs
/// are not).
pub fn tracked(m: &Model, p: &Packet) -> Verdict {
    let from = side(m, p.src, p.space);
    match (&from, from.as_ref().and_then(|f| side(m, p.dst, f.vpc))) {
        (Some(from), Some(to)) => boundary(m, from.subnet, to.subnet, p, &mut vec![]),
        _ => Verdict::Deny("no_route", "endpoint unknown".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn packet(m: &Model, from: &str, to: &str, proto: u8, port: u16) -> Packet {
        let ip = |id: &str| -> IpAddr {
            m.hosts
                .iter()
                .find(|h| h.id == id)
                .map(|h| IpAddr::V4(h.ip))
                .unwrap_or_else(|| IpAddr::V4(m.enis[0].ip))
        };
        Packet {
            src: ip(from),
            dst: ip(to),
            proto,
            port,
            space: 0,
        }
    }

    #[test]
    fn explains_the_default_template_rule_by_rule() {
        let m = crate::model::build(crate::DEFAULT_TEMPLATE, &HashMap::new(), "s").unwrap();
        let (v, steps) = explain(&m, &packet(&m, "ENI", "DatabaseInstance", 6, 5432));
        assert_eq!(v, Verdict::Allow);
        assert_eq!(steps.len(), 4);
        assert!(steps[0].contains("-> local"), "{steps:?}");
        assert!(
            steps[3].contains("DatabaseSecurityGroup rule 0"),
            "{steps:?}"
        );
        let (v, steps) = explain(&m, &packet(&m, "AppServer", "DatabaseInstance", 6, 5432));
        assert_eq!(v.reason(), Some("sg_ingress_denied"));
        assert!(
            steps
                .iter()
                .any(|s| s.contains("ACL out of PrivateSubnetB")),
            "{steps:?}"
        );
        assert_eq!(
            new_connection(&m, &packet(&m, "ENI", "DatabaseInstance", 6, 22)).reason(),
            Some("sg_ingress_denied")
        );
        assert_eq!(
            new_connection(&m, &packet(&m, "DatabaseInstance", "ENI", 6, 22)).reason(),
            Some("hyperplane_unsolicited")
        );
        // Echo request (type 8) from the VPC reaches the app server.
        assert_eq!(
            new_connection(&m, &packet(&m, "DatabaseInstance", "AppServer", 1, 8 << 8)),
            Verdict::Allow
        );
        assert_eq!(
            new_connection(&m, &packet(&m, "DatabaseInstance", "AppServer", 1, 3 << 8)).reason(),
            Some("sg_ingress_denied")
        );
    }

    #[test]
    fn explains_ipv6_between_dual_stack_members() {
        let t = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  V6: {Type: AWS::EC2::VPCCidrBlock, Properties: {VpcId: !Ref Vpc, AmazonProvidedIpv6CidrBlock: true}}
  A: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24, Ipv6CidrBlock: "2001:db8:ec2:101::/64", AssignIpv6AddressOnCreation: true}}
  B: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24, Ipv6CidrBlock: "2001:db8:ec2:102::/64", AssignIpv6AddressOnCreation: true}}
  FnSg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: f, VpcId: !Ref Vpc}}
  DbSg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: d
      VpcId: !Ref Vpc
      SecurityGroupIngress: [{IpProtocol: tcp, FromPort: 5432, ToPort: 5432, SourceSecurityGroupId: !Ref FnSg}]
  Db: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref B, SecurityGroupIds: [!Ref DbSg]}}
  F: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref FnSg], Ipv6AllowedForDualStack: true}}}
"#;
        let m = crate::model::build(t, &HashMap::new(), "s").unwrap();
        let eni6 = IpAddr::V6(m.enis[0].ip6.unwrap());
        let db6 = IpAddr::V6(m.hosts[0].ip6.unwrap());
        let p = |src, dst, port| Packet {
            src,
            dst,
            proto: 6,
            port,
            space: 0,
        };
        // FnSg's implicit ::/0 egress, then DbSg's group reference, which
        // covers the ENI's IPv6 address.
        let (v, steps) = explain(&m, &p(eni6, db6, 5432));
        assert_eq!(v, Verdict::Allow, "{steps:?}");
        assert!(steps[1].contains("FnSg rule 1"), "{steps:?}");
        assert_eq!(
            new_connection(&m, &p(eni6, db6, 22)).reason(),
            Some("sg_ingress_denied")
        );
        assert_eq!(
            new_connection(&m, &p(db6, eni6, 22)).reason(),
            Some("hyperplane_unsolicited")
        );
    }

    #[test]
    fn explains_the_way_out_through_each_gateway() {
        let t = |attach: &str, private_route: &str| {
            format!(
                r#"
Metadata: {{Vpc::Internet: {{Hosts: {{Example: {{Address: 203.0.113.10}}}}}}}}
Resources:
  Vpc: {{Type: AWS::EC2::VPC, Properties: {{CidrBlock: 10.0.0.0/16}}}}
  Pub: {{Type: AWS::EC2::Subnet, Properties: {{VpcId: !Ref Vpc, CidrBlock: 10.0.0.0/24, MapPublicIpOnLaunch: true}}}}
  Priv: {{Type: AWS::EC2::Subnet, Properties: {{VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}}}
  Igw: {{Type: AWS::EC2::InternetGateway}}
{attach}
  PubRt: {{Type: AWS::EC2::RouteTable, Properties: {{VpcId: !Ref Vpc}}}}
  PubDefault: {{Type: AWS::EC2::Route, Properties: {{RouteTableId: !Ref PubRt, DestinationCidrBlock: 0.0.0.0/0, GatewayId: !Ref Igw}}}}
  PubAssoc: {{Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {{SubnetId: !Ref Pub, RouteTableId: !Ref PubRt}}}}
  NatIp: {{Type: AWS::EC2::EIP, Properties: {{Domain: vpc}}}}
  Nat: {{Type: AWS::EC2::NatGateway, Properties: {{SubnetId: !Ref Pub, AllocationId: !GetAtt NatIp.AllocationId}}}}
  PrivRt: {{Type: AWS::EC2::RouteTable, Properties: {{VpcId: !Ref Vpc}}}}
{private_route}
  PrivAssoc: {{Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {{SubnetId: !Ref Priv, RouteTableId: !Ref PrivRt}}}}
  Web: {{Type: AWS::EC2::Instance, Properties: {{SubnetId: !Ref Pub}}}}
  Sg: {{Type: AWS::EC2::SecurityGroup, Properties: {{GroupDescription: f, VpcId: !Ref Vpc}}}}
  F: {{Type: AWS::Lambda::Function, Properties: {{VpcConfig: {{SubnetIds: [!Ref Priv], SecurityGroupIds: [!Ref Sg]}}}}}}
"#
            )
        };
        let attach = "  Attach: {Type: AWS::EC2::VPCGatewayAttachment, Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}}";
        let nat = "  PrivDefault: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PrivRt, DestinationCidrBlock: 0.0.0.0/0, NatGatewayId: !Ref Nat}}";
        let example: IpAddr = "203.0.113.10".parse().unwrap();
        let from = |m: &Model, id: &str| -> IpAddr {
            match m.hosts.iter().find(|h| h.id == id) {
                Some(h) => IpAddr::V4(h.ip),
                None => IpAddr::V4(m.enis[0].ip),
            }
        };
        let go = |m: &Model, who: &str, dst: IpAddr, proto: u8| {
            explain(
                m,
                &Packet {
                    src: from(m, who),
                    dst,
                    proto,
                    port: 443,
                    space: 0,
                },
            )
        };
        let m = crate::model::build(&t(attach, nat), &HashMap::new(), "s").unwrap();
        // The function: its ENI's subnet to the NAT gateway, the gateway's
        // subnet to the internet gateway, then the Elastic IP.
        let (v, steps) = go(&m, "ENI", example, 6);
        assert_eq!(v, Verdict::Allow, "{steps:?}");
        assert!(
            steps[0].contains("PrivRt: 0.0.0.0/0 (PrivDefault) -> NAT gateway Nat"),
            "{steps:?}"
        );
        assert!(
            steps[1].contains("PubRt: 0.0.0.0/0 (PubDefault) -> internet gateway Igw"),
            "{steps:?}"
        );
        assert!(
            steps.last().unwrap().contains("source becomes 198.51.100."),
            "{steps:?}"
        );
        let eni = &steps[steps.len() - 2];
        assert!(eni.contains("a port of the ENI"), "{steps:?}");
        assert_eq!(
            go(&m, "ENI", example, 1).0.reason(),
            Some("nat_gateway_protocol")
        );
        // The public host: its own public address through the gateway.
        let (v, steps) = go(&m, "Web", example, 6);
        assert_eq!(v, Verdict::Allow, "{steps:?}");
        assert!(
            steps
                .last()
                .unwrap()
                .contains("internet gateway: source 10.0.0."),
            "{steps:?}"
        );
        let nobody: IpAddr = "192.0.2.99".parse().unwrap();
        assert_eq!(
            go(&m, "Web", nobody, 6).0.reason(),
            Some("internet_unreachable")
        );
        // AWS's public service endpoints (SQS here) are on the internet:
        // through the internet gateway, and the NAT gateway.
        let sqs: IpAddr = "198.18.0.12".parse().unwrap();
        let (v, steps) = go(&m, "Web", sqs, 6);
        assert_eq!(v, Verdict::Allow, "{steps:?}");
        assert!(
            steps.iter().any(|s| s.contains("AWS's sqs endpoint")),
            "{steps:?}"
        );
        assert_eq!(go(&m, "ENI", sqs, 6).0, Verdict::Allow);
        assert_eq!(
            go(&m, "Web", "198.18.0.99".parse().unwrap(), 6).0.reason(),
            Some("internet_unreachable")
        );
        // Without the private route; with the gateway detached.
        let m = crate::model::build(&t(attach, ""), &HashMap::new(), "s").unwrap();
        let (v, steps) = go(&m, "ENI", example, 6);
        assert_eq!(v.reason(), Some("no_route"), "{steps:?}");
        let m = crate::model::build(&t("", nat), &HashMap::new(), "s").unwrap();
        assert_eq!(
            go(&m, "Web", example, 6).0.reason(),
            Some("route_blackhole")
        );
        let (v, steps) = go(&m, "ENI", example, 6);
        assert_eq!(v.reason(), Some("route_blackhole"), "{steps:?}");
        assert!(steps[1].ends_with("blackhole"), "{steps:?}");
    }

    #[test]
    fn explains_ipv6_out_through_both_internet_gateways_untranslated() {
        let t = r#"
Metadata: {Vpc::Internet: {Hosts: {Example: {Address: 203.0.113.10, Ipv6Address: "2001:db8:f00d::10"}}}}
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  V6: {Type: AWS::EC2::VPCCidrBlock, Properties: {VpcId: !Ref Vpc, AmazonProvidedIpv6CidrBlock: true}}
  Pub: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.0.0/24, Ipv6CidrBlock: "2001:db8:ec2:100::/64", AssignIpv6AddressOnCreation: true}}
  Priv: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24, Ipv6CidrBlock: "2001:db8:ec2:101::/64", AssignIpv6AddressOnCreation: true}}
  Igw: {Type: AWS::EC2::InternetGateway}
  Attach: {Type: AWS::EC2::VPCGatewayAttachment, Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}}
  Eigw: {Type: AWS::EC2::EgressOnlyInternetGateway, Properties: {VpcId: !Ref Vpc}}
  PubRt: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}
  PubV6: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PubRt, DestinationIpv6CidrBlock: "::/0", GatewayId: !Ref Igw}}
  PubAssoc: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref Pub, RouteTableId: !Ref PubRt}}
  PrivRt: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}
  PrivV6: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PrivRt, DestinationIpv6CidrBlock: "::/0", EgressOnlyInternetGatewayId: !Ref Eigw}}
  PrivAssoc: {Type: AWS::EC2::SubnetRouteTableAssociation, Properties: {SubnetId: !Ref Priv, RouteTableId: !Ref PrivRt}}
  Shut: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: s, VpcId: !Ref Vpc, SecurityGroupEgress: [{IpProtocol: "-1", CidrIp: 127.0.0.1/32}]}}
  Web: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Pub}}
  Quiet: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Pub, SecurityGroupIds: [!Ref Shut]}}
  Sg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: f, VpcId: !Ref Vpc}}
  F: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref Priv], SecurityGroupIds: [!Ref Sg], Ipv6AllowedForDualStack: true}}}
"#;
        let m = crate::model::build(t, &HashMap::new(), "s").unwrap();
        let host6 =
            |id: &str| IpAddr::V6(m.hosts.iter().find(|h| h.id == id).unwrap().ip6.unwrap());
        let go = |src: IpAddr, dst: &str| {
            explain(
                &m,
                &Packet {
                    src,
                    dst: dst.parse().unwrap(),
                    proto: 6,
                    port: 443,
                    space: 0,
                },
            )
        };
        let (v, steps) = go(host6("Web"), "2001:db8:f00d::10");
        assert_eq!(v, Verdict::Allow, "{steps:?}");
        assert!(steps[0].contains("-> internet gateway Igw"), "{steps:?}");
        assert!(steps.last().unwrap().contains("goes as it is"), "{steps:?}");
        let eni6 = IpAddr::V6(m.enis[0].ip6.unwrap());
        let (v, steps) = go(eni6, "2001:db8:f00d::10");
        assert_eq!(v, Verdict::Allow, "{steps:?}");
        assert!(
            steps[0].contains("-> egress-only internet gateway Eigw"),
            "{steps:?}"
        );
        assert_eq!(
            go(host6("Web"), "2001:db8:dead::1").0.reason(),
            Some("internet_unreachable")
        );
        assert_eq!(
            go(host6("Quiet"), "2001:db8:f00d::10").0.reason(),
            Some("sg_egress_denied")
        );
    }
}

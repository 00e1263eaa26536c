//! The reference semantics: what AWS would do with a packet, written from
//! AWS's rules (security groups: allow-only, stateful, union of groups;
//! network ACLs: stateless, numbered, first match, at subnet boundaries),
//! not from the datapath. Tests hold the XDP program to it.
use std::net::IpAddr;

use crate::model::{AclEntry, Model, Peer, Protocol, Rule};

/// A packet as it leaves its sender, in model terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// Destination port; ICMP: `type << 8 | code`.
    pub port: u16,
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

/// Where an address sits: its subnet and groups (hosts and Hyperplane ENIs).
struct Side<'m> {
    subnet: &'m str,
    groups: &'m [String],
}

fn side<'m>(m: &'m Model, ip: IpAddr) -> Option<Side<'m>> {
    let owns = |v4: std::net::Ipv4Addr, v6: Option<std::net::Ipv6Addr>| match ip {
        IpAddr::V4(a) => a == v4,
        IpAddr::V6(a) => v6 == Some(a),
    };
    if let Some(h) = m.hosts.iter().find(|h| owns(h.ip, h.ip6)) {
        return Some(Side {
            subnet: &h.subnet,
            groups: &h.groups,
        });
    }
    m.enis.iter().find(|e| owns(e.ip, e.ip6)).map(|e| Side {
        subnet: &e.subnet,
        groups: &e.groups,
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

/// [`new_connection`] with each check it made, in order, for `vpc explain`.
pub fn explain(m: &Model, p: &Packet) -> (Verdict, Vec<String>) {
    let mut steps = vec![];
    let Some(from) = side(m, p.src) else {
        return (
            Verdict::Deny("spoofed_source", "unknown sender".into()),
            steps,
        );
    };
    if m.enis
        .iter()
        .any(|e| IpAddr::V4(e.ip) == p.dst || e.ip6.map(IpAddr::V6) == Some(p.dst))
    {
        return (
            Verdict::Deny(
                "hyperplane_unsolicited",
                "Hyperplane ENIs accept no inbound connections".into(),
            ),
            steps,
        );
    }
    let Some(to) = m
        .hosts
        .iter()
        .find(|h| IpAddr::V4(h.ip) == p.dst || h.ip6.map(IpAddr::V6) == Some(p.dst))
    else {
        return (
            Verdict::Deny("no_route", "no host owns the destination".into()),
            steps,
        );
    };
    match groups_allow(m, from.groups, false, p.dst, p) {
        Some(rule) => steps.push(format!(
            "outbound, groups [{}]: allowed by {rule}",
            from.groups.join(", ")
        )),
        None => {
            let why = format!("no outbound rule of [{}] matches", from.groups.join(", "));
            return (Verdict::Deny("sg_egress_denied", why), steps);
        }
    }
    if let v @ Verdict::Deny(..) = boundary(m, from.subnet, &to.subnet, p, &mut steps) {
        return (v, steps);
    }
    match groups_allow(m, &to.groups, true, p.src, p) {
        Some(rule) => steps.push(format!(
            "inbound, groups [{}]: allowed by {rule}",
            to.groups.join(", ")
        )),
        None => {
            let why = format!("no inbound rule of [{}] matches", to.groups.join(", "));
            return (Verdict::Deny("sg_ingress_denied", why), steps);
        }
    }
    (Verdict::Allow, steps)
}

/// A packet of a tracked connection (groups skipped: they are stateful; ACLs
/// are not).
pub fn tracked(m: &Model, p: &Packet) -> Verdict {
    match (side(m, p.src), side(m, p.dst)) {
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
        }
    }

    #[test]
    fn explains_the_default_template_rule_by_rule() {
        let m = crate::model::build(crate::DEFAULT_TEMPLATE, &HashMap::new(), "s").unwrap();
        let (v, steps) = explain(&m, &packet(&m, "ENI", "DatabaseInstance", 6, 5432));
        assert_eq!(v, Verdict::Allow);
        assert_eq!(steps.len(), 3);
        assert!(
            steps[2].contains("DatabaseSecurityGroup rule 0"),
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
        };
        // FnSg's implicit ::/0 egress, then DbSg's group reference, which
        // covers the ENI's IPv6 address.
        let (v, steps) = explain(&m, &p(eni6, db6, 5432));
        assert_eq!(v, Verdict::Allow, "{steps:?}");
        assert!(steps[0].contains("FnSg rule 1"), "{steps:?}");
        assert_eq!(
            new_connection(&m, &p(eni6, db6, 22)).reason(),
            Some("sg_ingress_denied")
        );
        assert_eq!(
            new_connection(&m, &p(db6, eni6, 22)).reason(),
            Some("hyperplane_unsolicited")
        );
    }
}

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
    let IpAddr::V4(v4) = ip else { return None };
    if let Some(h) = m.hosts.iter().find(|h| h.ip == v4) {
        return Some(Side {
            subnet: &h.subnet,
            groups: &h.groups,
        });
    }
    m.enis.iter().find(|e| e.ip == v4).map(|e| Side {
        subnet: &e.subnet,
        groups: &e.groups,
    })
}

fn rule_matches(m: &Model, r: &Rule, peer: IpAddr, p: &Packet) -> bool {
    let peer_ok = match &r.peer {
        Peer::Cidr(net) => net.contains(&peer),
        Peer::Group(g) => m.members(g).iter().any(|a| IpAddr::V4(*a) == peer),
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

fn boundary(m: &Model, from: &str, to: &str, p: &Packet) -> Verdict {
    if from == to {
        return Verdict::Allow;
    }
    let (ok, why) = acl_allows(m, from, true, p.dst, p);
    if !ok {
        return Verdict::Deny("nacl_egress_denied", why);
    }
    let (ok, why) = acl_allows(m, to, false, p.src, p);
    if !ok {
        return Verdict::Deny("nacl_ingress_denied", why);
    }
    Verdict::Allow
}

/// A new connection (or untracked packet) from `p.src`, a host or a
/// Hyperplane ENI after source NAT, to `p.dst`.
pub fn new_connection(m: &Model, p: &Packet) -> Verdict {
    let Some(from) = side(m, p.src) else {
        return Verdict::Deny("spoofed_source", "unknown sender".into());
    };
    if m.enis.iter().any(|e| IpAddr::V4(e.ip) == p.dst) {
        return Verdict::Deny(
            "hyperplane_unsolicited",
            "Hyperplane ENIs accept no inbound connections".into(),
        );
    }
    let Some(to) = m.hosts.iter().find(|h| IpAddr::V4(h.ip) == p.dst) else {
        return Verdict::Deny("no_route", "no host owns the destination".into());
    };
    if groups_allow(m, from.groups, false, p.dst, p).is_none() {
        return Verdict::Deny(
            "sg_egress_denied",
            "no outbound rule of the sender's groups".into(),
        );
    }
    if let v @ Verdict::Deny(..) = boundary(m, from.subnet, &to.subnet, p) {
        return v;
    }
    if groups_allow(m, &to.groups, true, p.src, p).is_none() {
        return Verdict::Deny(
            "sg_ingress_denied",
            "no inbound rule of the receiver's groups".into(),
        );
    }
    Verdict::Allow
}

/// A packet of a tracked connection (groups skipped: they are stateful; ACLs
/// are not).
pub fn tracked(m: &Model, p: &Packet) -> Verdict {
    match (side(m, p.src), side(m, p.dst)) {
        (Some(from), Some(to)) => boundary(m, from.subnet, to.subnet, p),
        _ => Verdict::Deny("no_route", "endpoint unknown".into()),
    }
}

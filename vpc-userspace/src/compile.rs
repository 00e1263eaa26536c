//! From the AWS model to map entries. Pure: the topology's ifindexes and
//! MACs come in as data, so this is tested without a kernel.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use ipnet::IpNet;
use vpc_common::{
    kind, v4_mapped, Endpoint, HyperplaneEni, PortInfo, SgPortKey, SgPrefixKey, DIR_EGRESS,
    DIR_INGRESS, PROTO_ANY, SG_PORT_FIXED_BITS, SG_PREFIX_FIXED_BITS,
};

use crate::model::{Model, Peer, Protocol, Rule};

/// A router port as built by the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkInfo {
    /// Router-side ifindex.
    pub ifindex: u32,
    /// MAC of the endpoint's `eth0`.
    pub mac: [u8; 6],
    /// MAC of the router-side veth.
    pub router_mac: [u8; 6],
}

/// Everything the datapath maps hold for one deployment.
#[derive(Debug, Default, Clone)]
pub struct Entries {
    pub ports: Vec<(u32, PortInfo)>,
    pub endpoints: Vec<([u8; 16], Endpoint)>,
    /// Installed when the owning function becomes Active.
    pub enis: Vec<(u32, HyperplaneEni)>,
    pub sg_prefixes: Vec<(u32, SgPrefixKey, u32)>,
    pub sg_ports: Vec<(u32, SgPortKey)>,
    /// Group set (sorted) -> policy id.
    pub policies: BTreeMap<Vec<String>, u32>,
}

/// Splits an inclusive range into aligned prefixes: (value, prefix bits).
pub fn range_prefixes(lo: u16, hi: u16) -> Vec<(u16, u32)> {
    let (mut lo, hi) = (lo as u32, hi as u32);
    let mut out = vec![];
    while lo <= hi {
        let mut size = if lo == 0 {
            1 << 16
        } else {
            lo & lo.wrapping_neg()
        };
        while lo + size - 1 > hi {
            size >>= 1;
        }
        out.push((lo as u16, 16 - size.trailing_zeros()));
        lo += size;
    }
    out
}

/// `SG_PORTS` (protocol, port, port prefix bits) entries of one rule.
fn rule_ports(r: &Rule) -> Vec<(u8, u16, u32)> {
    match r.protocol {
        Protocol::All => vec![(PROTO_ANY, 0, 0)],
        Protocol::Number(p) if r.protocol.has_ports() => {
            range_prefixes(r.from_port as u16, r.to_port as u16)
                .into_iter()
                .map(|(v, b)| (p, v, b))
                .collect()
        }
        Protocol::Number(p) if r.protocol.is_icmp() => match (r.from_port, r.to_port) {
            (-1, _) => vec![(p, 0, 0)],
            (t, -1) => vec![(p, (t as u16) << 8, 8)],
            (t, c) => vec![(p, ((t as u16) << 8) | c as u16, 16)],
        },
        Protocol::Number(p) => vec![(p, 0, 0)],
    }
}

/// A rule prefix: (is IPv6, 16-byte address, 128-bit prefix length).
type Prefix = (bool, [u8; 16], u32);

fn mapped(net: &IpNet) -> Prefix {
    match net {
        IpNet::V4(n) => (
            false,
            v4_mapped(n.network().octets()),
            n.prefix_len() as u32 + 96,
        ),
        IpNet::V6(n) => (true, n.network().octets(), n.prefix_len() as u32),
    }
}

/// Same family, and `outer` covers `inner`.
fn contains(outer: &Prefix, inner: &Prefix) -> bool {
    if outer.0 != inner.0 || outer.2 > inner.2 {
        return false;
    }
    let (a, b) = (u128::from_be_bytes(outer.1), u128::from_be_bytes(inner.1));
    let mask = if outer.2 == 0 {
        0
    } else {
        u128::MAX << (128 - outer.2)
    };
    a & mask == b & mask
}

/// `SgPrefixKey::policy_dir`: policy, address family and direction.
pub fn policy_dir(policy: u32, v6: bool, dir: u32) -> [u8; 4] {
    ((policy << 2) | ((v6 as u32) << 1) | dir).to_be_bytes()
}

/// Compiles one direction of one policy: classes are the distinct rule
/// prefixes; a class allows the union of every rule whose prefix contains it
/// (CIDRs nest or are disjoint, so the longest match decides the class).
fn compile_direction(
    model: &Model,
    rules: &[Rule],
    policy: u32,
    dir: u32,
    next_class: &mut u32,
    out: &mut Entries,
) {
    let mut expanded: Vec<(Prefix, &Rule)> = vec![];
    for r in rules {
        match &r.peer {
            Peer::Cidr(net) => expanded.push((mapped(net), r)),
            Peer::Group(g) => {
                for ip in model.members(g) {
                    expanded.push(((false, v4_mapped(ip.octets()), 128), r));
                }
            }
        }
    }
    let prefixes: BTreeSet<Prefix> = expanded.iter().map(|(p, _)| *p).collect();
    for prefix in prefixes {
        let class = *next_class;
        *next_class += 1;
        out.sg_prefixes.push((
            SG_PREFIX_FIXED_BITS + prefix.2,
            SgPrefixKey {
                policy_dir: policy_dir(policy, prefix.0, dir),
                addr: prefix.1,
            },
            class,
        ));
        let mut ports = BTreeSet::new();
        for (p, r) in &expanded {
            if contains(p, &prefix) {
                ports.extend(rule_ports(r));
            }
        }
        for (proto, port, bits) in ports {
            out.sg_ports.push((
                SG_PORT_FIXED_BITS + bits,
                SgPortKey {
                    class: class.to_be_bytes(),
                    proto,
                    port: port.to_be_bytes(),
                    _pad: 0,
                },
            ));
        }
    }
}

/// Policy entries for every distinct group set in use (hosts and ENIs).
pub fn compile_policies(model: &Model) -> Entries {
    let mut out = Entries::default();
    let sets: BTreeSet<Vec<String>> = model
        .hosts
        .iter()
        .map(|h| h.groups.clone())
        .chain(model.enis.iter().map(|e| e.groups.clone()))
        .collect();
    let mut next_class = 1;
    for (i, set) in sets.into_iter().enumerate() {
        let policy = i as u32 + 1;
        let mut ingress = vec![];
        let mut egress = vec![];
        for g in &set {
            let sg = model.group(g).expect("validated");
            ingress.extend(sg.ingress.iter().cloned());
            egress.extend(sg.egress.iter().cloned());
        }
        compile_direction(
            model,
            &ingress,
            policy,
            DIR_INGRESS,
            &mut next_class,
            &mut out,
        );
        compile_direction(
            model,
            &egress,
            policy,
            DIR_EGRESS,
            &mut next_class,
            &mut out,
        );
        out.policies.insert(set, policy);
    }
    out
}

/// The port entry of a link and the endpoint entry of its address.
fn attach(out: &mut Entries, l: LinkInfo, ip: std::net::Ipv4Addr, mut port: PortInfo) {
    let addr = v4_mapped(ip.octets());
    port.addr4 = addr;
    out.ports.push((l.ifindex, port));
    out.endpoints.push((
        addr,
        Endpoint {
            ifindex: l.ifindex,
            policy: port.policy,
            vpc: port.vpc,
            kind: port.kind,
            mac: l.mac,
            router_mac: l.router_mac,
            ..Default::default()
        },
    ));
}

/// All entries, given the links the topology built (keyed by resource id:
/// host logical id, or function logical id for its execution environment).
pub fn compile(model: &Model, links: &HashMap<String, LinkInfo>) -> Result<Entries, String> {
    let mut out = compile_policies(model);
    let link = |id: &str| {
        links
            .get(id)
            .copied()
            .ok_or_else(|| format!("no link for {id}"))
    };
    for h in &model.hosts {
        let policy = out.policies[&h.groups];
        let vpc = model
            .vpc(&model.subnet(&h.subnet).expect("validated").vpc)
            .expect("validated")
            .index;
        let port = PortInfo {
            kind: kind::HOST,
            policy,
            vpc,
            ..Default::default()
        };
        attach(&mut out, link(&h.id)?, h.ip, port);
    }
    for e in &model.enis {
        let policy = out.policies[&e.groups];
        let vpc = model.vpc(&e.vpc).expect("validated").index;
        let addr = v4_mapped(e.ip.octets());
        out.endpoints.push((
            addr,
            Endpoint {
                policy,
                vpc,
                kind: kind::HYPERPLANE_ENI,
                ..Default::default()
            },
        ));
        out.enis.push((
            e.index,
            HyperplaneEni {
                addr4: addr,
                policy,
                vpc,
                ..Default::default()
            },
        ));
    }
    for f in &model.functions {
        let port = PortInfo {
            kind: kind::EXEC_ENV,
            eni: f.eni.unwrap_or(0),
            ..Default::default()
        };
        attach(&mut out, link(&f.id)?, f.exec_ip, port);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_into_aligned_prefixes() {
        assert_eq!(range_prefixes(5432, 5432), vec![(5432, 16)]);
        assert_eq!(range_prefixes(0, 65535), vec![(0, 0)]);
        assert_eq!(
            range_prefixes(1024, 65535),
            vec![
                (1024, 6),
                (2048, 5),
                (4096, 4),
                (8192, 3),
                (16384, 2),
                (32768, 1)
            ]
        );
        // Every port of a range is covered exactly once, and nothing else.
        for (lo, hi) in [(1, 1), (3, 17), (80, 443), (1000, 2000), (65534, 65535)] {
            let ps = range_prefixes(lo, hi);
            for port in 0..=65535u32 {
                let hits = ps
                    .iter()
                    .filter(|(v, b)| {
                        let mask = if *b == 0 {
                            0
                        } else {
                            (0xffffu32 << (16 - b)) & 0xffff
                        };
                        port & mask == *v as u32
                    })
                    .count();
                assert_eq!(
                    hits,
                    ((lo as u32..=hi as u32).contains(&port)) as usize,
                    "{lo}-{hi} port {port}"
                );
            }
        }
    }

    #[test]
    fn prefix_containment() {
        let a = mapped(&"10.0.0.0/16".parse().unwrap());
        let b = mapped(&"10.0.1.0/24".parse().unwrap());
        let c = mapped(&"0.0.0.0/0".parse().unwrap());
        assert!(contains(&a, &b) && contains(&c, &a) && !contains(&b, &a));
        let v6 = mapped(&"::/0".parse().unwrap());
        // ::/0 must not cover IPv4: the families are kept apart.
        assert!(!contains(&v6, &a));
    }
}

//! From the AWS model to map entries. Pure: the topology's ifindexes and
//! MACs come in as data, so this is tested without a kernel.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use ipnet::IpNet;
use vpc_common::{
    kind, subnet_acl_index, v4_mapped, Endpoint, EniGroup, HyperplaneEni, PortInfo, SgPortKey,
    SgPrefixKey, CLASS_ALLOW, CLASS_DECIDED, CLASS_GEN_SHIFT, DIR_EGRESS, DIR_INGRESS,
    ID_GEN_SHIFT, MAX_GROUP_ENIS, PROTO_ANY, SG_PORT_FIXED_BITS, SG_PREFIX_FIXED_BITS,
};

use crate::model::{Function, Model, Peer, Protocol, Rule};

/// Datapath ENI id of the IPv4-only view of a dual-stack Hyperplane ENI:
/// the ENI's index with this bit set. A function without
/// `Ipv6AllowedForDualStack` sends through the group of such views, whose
/// `has_v6` is 0, so the router drops its IPv6 (`no_route`) while functions
/// sharing the ENIs with the flag set use their IPv6 addresses. (An ENI is
/// one ENI, as at AWS: a view hands out the same NAT ports, `pool`. Ids
/// stay below 2^16: `CtEntry` keeps them in a u16.)
pub const ENI_V4_ONLY: u32 = 1 << 15;

/// The datapath ENI group of Hyperplane ENI `index` as function `f` sends
/// through it: the index (`| ENI_V4_ONLY` for the IPv4-only view of a
/// dual-stack ENI, for a function without `Ipv6AllowedForDualStack`).
pub fn eni_view(model: &Model, f: &Function, index: u32) -> u32 {
    let dual = model
        .enis
        .iter()
        .any(|e| e.index == index && e.ip6.is_some());
    if dual && !f.ipv6_allowed() {
        index | ENI_V4_ONLY
    } else {
        index
    }
}

/// The datapath ENI group a function's first execution environment sends
/// through: its first subnet's ENI (see `eni_view`).
pub fn function_eni(model: &Model, f: &Function) -> Option<u32> {
    Some(eni_view(model, f, f.eni?))
}

/// The ENI group of each of a function's execution environments, as
/// (node id, group): one per subnet of its `VpcConfig`, in order; none
/// without `VpcConfig`.
pub fn env_enis(model: &Model, f: &Function) -> Vec<(String, u32)> {
    f.envs()
        .into_iter()
        .filter_map(|e| Some((e.id, eni_view(model, f, e.eni?))))
        .collect()
}

/// The `ENI_GROUPS` entry of group `id` (a first ENI's index, or its
/// IPv4-only view): its ENIs in order, at most `MAX_GROUP_ENIS`.
pub fn eni_group(model: &Model, id: u32) -> EniGroup {
    let view = id & ENI_V4_ONLY;
    let mut g = EniGroup::default();
    for e in model
        .eni_group(id & !ENI_V4_ONLY)
        .iter()
        .take(MAX_GROUP_ENIS)
    {
        g.enis[g.count as usize] = e.index | view;
        g.count += 1;
    }
    g
}

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
    pub enis: Vec<(u32, HyperplaneEni)>,
    /// Group id -> its ENIs (`ENI_GROUPS`).
    pub eni_groups: Vec<(u32, EniGroup)>,
    pub sg_prefixes: Vec<(u32, SgPrefixKey, u32)>,
    pub sg_ports: Vec<(u32, SgPortKey)>,
    /// Group set (sorted) -> policy id.
    pub policies: BTreeMap<Vec<String>, u32>,
    pub acl_prefixes: Vec<(u32, SgPrefixKey, u32)>,
    /// (prefix length, key, 1 allow / 0 deny).
    pub acl_ports: Vec<(u32, SgPortKey, u8)>,
    /// Network ACL id -> datapath id (0: the default, allow all).
    pub acls: BTreeMap<String, u32>,
    /// (`SUBNET_ACLS` index, datapath ACL id).
    pub subnet_acls: Vec<(u32, u32)>,
    /// (prefix length, key, target): every route table's routes.
    pub routes: Vec<(u32, vpc_common::RouteKey, vpc_common::RouteTarget)>,
    /// Route table id -> datapath id (generation bit included).
    pub route_tables: BTreeMap<String, u32>,
    /// (`SUBNET_ROUTE_TABLES` index, datapath route table id).
    pub subnet_route_tables: Vec<(u32, u32)>,
    /// `PUBLIC_IPS`: (public, private) and (private, public) of every public
    /// IPv4 address.
    pub public_ips: Vec<([u8; 16], [u8; 16])>,
    /// The policy generation these ids belong to.
    pub gen: u32,
}

mod network_acl;
pub mod route_table;
/// The route tables' module under its former name.
pub use route_table as route;

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

/// A fresh class for `prefix` of (policy or ACL `id`, `dir`), and its
/// prefix entry.
fn new_class(
    prefixes: &mut Vec<(u32, SgPrefixKey, u32)>,
    next_class: &mut u32,
    id: u32,
    dir: u32,
    prefix: &Prefix,
) -> u32 {
    let class = *next_class;
    *next_class += 1;
    prefixes.push((
        SG_PREFIX_FIXED_BITS + prefix.2,
        SgPrefixKey {
            policy_dir: policy_dir(id, prefix.0, dir),
            addr: prefix.1,
        },
        class,
    ));
    class
}

/// Turns the class just pushed into a verdict (see `CLASS_DECIDED`).
fn decided(prefixes: &mut [(u32, SgPrefixKey, u32)], allow: bool) {
    if let Some(last) = prefixes.last_mut() {
        last.2 = CLASS_DECIDED | if allow { CLASS_ALLOW } else { 0 };
    }
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
            Peer::PrefixList(id) => {
                for net in &model.prefix_list(id).expect("validated").cidrs {
                    expanded.push((mapped(net), r));
                }
            }
            Peer::Group(g) => {
                for ip in model.members(g) {
                    expanded.push(((false, v4_mapped(ip.octets()), 128), r));
                }
                for ip in model.members6(g) {
                    expanded.push(((true, ip.octets(), 128), r));
                }
            }
        }
    }
    let prefixes: BTreeSet<Prefix> = expanded.iter().map(|(p, _)| *p).collect();
    for prefix in prefixes {
        let class = new_class(&mut out.sg_prefixes, next_class, policy, dir, &prefix);
        let mut ports = BTreeSet::new();
        for (p, r) in &expanded {
            if contains(p, &prefix) {
                ports.extend(rule_ports(r));
            }
        }
        // An all-protocols rule allows everything: no port lookup needed.
        if ports.contains(&(PROTO_ANY, 0, 0)) {
            decided(&mut out.sg_prefixes, true);
            continue;
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
pub fn compile_policies(model: &Model, gen: u32) -> Entries {
    let mut out = Entries {
        gen,
        ..Entries::default()
    };
    let sets: BTreeSet<Vec<String>> = model
        .hosts
        .iter()
        .map(|h| h.groups.clone())
        .chain(model.enis.iter().map(|e| e.groups.clone()))
        .collect();
    let mut next_class = (gen << CLASS_GEN_SHIFT) + 1;
    for (i, set) in sets.into_iter().enumerate() {
        let policy = (gen << ID_GEN_SHIFT) | (i as u32 + 1);
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

/// The port entry of a link and the endpoint entries of its addresses.
fn attach(
    out: &mut Entries,
    l: LinkInfo,
    ip: std::net::Ipv4Addr,
    ip6: Option<std::net::Ipv6Addr>,
    mut port: PortInfo,
) {
    let addr = v4_mapped(ip.octets());
    port.addr4 = addr;
    if let Some(ip6) = ip6 {
        port.has_v6 = 1;
        port.addr6 = ip6.octets();
    }
    out.ports.push((l.ifindex, port));
    let endpoint = Endpoint {
        ifindex: l.ifindex,
        policy: port.policy,
        vpc: port.vpc,
        subnet: port.subnet,
        kind: port.kind,
        flags: port.flags,
        mac: l.mac,
        router_mac: l.router_mac,
        ..Default::default()
    };
    out.endpoints.push((addr, endpoint));
    if let Some(ip6) = ip6 {
        out.endpoints.push((ip6.octets(), endpoint));
    }
}

/// `ENDPOINTS` and `ENIS` entries.
pub type EniEntries = (Vec<([u8; 16], Endpoint)>, Vec<(u32, HyperplaneEni)>);

/// The `ENDPOINTS` and `ENIS` entries of one Hyperplane ENI, with the
/// policy ids of `policies` (in their generation's slot): its address(es),
/// the ENI, and for a dual-stack ENI its IPv4-only view.
pub fn eni_entries(
    model: &Model,
    e: &crate::model::HyperplaneEniSpec,
    policies: &BTreeMap<Vec<String>, u32>,
) -> EniEntries {
    let policy = policies[&e.groups];
    let gen = policy >> ID_GEN_SHIFT & 1;
    let pair = if gen == 0 { [policy, 0] } else { [0, policy] };
    let vpc = model.vpc(&e.vpc).expect("validated").index;
    let addr = v4_mapped(e.ip.octets());
    let subnet = model
        .subnets
        .iter()
        .position(|s| s.id == e.subnet)
        .expect("validated") as u32
        + 1;
    let endpoint = Endpoint {
        policy: pair,
        vpc,
        subnet,
        kind: kind::HYPERPLANE_ENI,
        ..Default::default()
    };
    let eni = HyperplaneEni {
        addr4: addr,
        policy: pair,
        vpc,
        subnet,
        pool: e.index,
        ..Default::default()
    };
    let mut endpoints = vec![(addr, endpoint)];
    let mut enis = vec![];
    match e.ip6 {
        None => enis.push((e.index, eni)),
        Some(ip6) => {
            endpoints.push((ip6.octets(), endpoint));
            enis.push((
                e.index,
                HyperplaneEni {
                    addr6: ip6.octets(),
                    has_v6: 1,
                    ..eni
                },
            ));
            enis.push((e.index | ENI_V4_ONLY, eni));
        }
    }
    (endpoints, enis)
}

/// All entries, given the links the topology built (keyed by resource id:
/// host logical id, or an execution environment's id: `Function::envs`).
/// `gen`: the policy generation the ids are allocated in; the per-generation
/// pairs get their `gen` slot filled (the other stays 0: deny all).
pub fn compile(
    model: &Model,
    links: &HashMap<String, LinkInfo>,
    gen: u32,
) -> Result<Entries, String> {
    let mut out = compile_policies(model, gen);
    network_acl::compile_acls(model, gen, &mut out);
    route_table::compile_routes(model, gen, &mut out);
    let pair = |id: u32| if gen == 0 { [id, 0] } else { [0, id] };
    // (subnet index, datapath ACL id) of a subnet.
    for (i, sn) in model.subnets.iter().enumerate() {
        out.subnet_acls
            .push((subnet_acl_index(gen, i as u32 + 1), out.acls[&sn.acl]));
    }
    // 1-based subnet index.
    let subnet_index = |subnet: &str| {
        model
            .subnets
            .iter()
            .position(|s| s.id == subnet)
            .expect("validated") as u32
            + 1
    };
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
        let subnet = subnet_index(&h.subnet);
        let port = PortInfo {
            kind: if h.kind == crate::model::HostKind::VpcEndpoint {
                kind::VPC_ENDPOINT
            } else {
                kind::HOST
            },
            policy: pair(policy),
            vpc,
            subnet,
            flags: if h.source_dest_check {
                0
            } else {
                vpc_common::EP_F_NO_SOURCE_DEST_CHECK
            },
            ..Default::default()
        };
        attach(&mut out, link(&h.id)?, h.ip, h.ip6, port);
    }
    for ih in &model.internet_hosts {
        let port = PortInfo {
            kind: kind::INTERNET_HOST,
            ..Default::default()
        };
        attach(&mut out, link(&ih.id)?, ih.ip, ih.ip6, port);
    }
    // Each VPC's resolver. A model compiled without its link (a unit
    // test's hand-made links) has none.
    for vpc in &model.vpcs {
        let Some(l) = vpc.resolver_id().and_then(|id| links.get(&id).copied()) else {
            continue;
        };
        let port = PortInfo {
            kind: kind::RESOLVER,
            vpc: vpc.index,
            ..Default::default()
        };
        attach(&mut out, l, vpc.resolver(), None, port);
    }
    // The simulated AWS services: one port, an endpoint per service
    // address. No groups (`admit` skips them), no VPC, no subnet.
    if let Some(l) = links.get(crate::model::endpoint::AWS_SERVICES_ID).copied() {
        let port = PortInfo {
            kind: kind::AWS_SERVICE,
            ..Default::default()
        };
        let services = crate::model::endpoint::GATEWAY_SERVICES;
        attach(&mut out, l, services[0].1, None, port);
        for (_, ip) in &services[1..] {
            let ep = out.endpoints.last().expect("attached").1;
            out.endpoints.push((v4_mapped(ip.octets()), ep));
        }
    }
    route_table::public_ips(model, &mut out);
    route_table::nat_gateways(model, &mut out);
    // Groups in use: (id, is it an IPv4-only view).
    let groups: BTreeSet<u32> = model
        .functions
        .iter()
        .flat_map(|f| env_enis(model, f))
        .map(|(_, g)| g)
        .collect();
    for e in &model.enis {
        let (endpoints, enis) = eni_entries(model, e, &out.policies);
        out.endpoints.extend(endpoints);
        let first = model.eni_group(e.index)[0].index;
        for (id, eni) in enis {
            // The view of functions without Ipv6AllowedForDualStack.
            if id & ENI_V4_ONLY == 0 || groups.contains(&(first | ENI_V4_ONLY)) {
                out.enis.push((id, eni));
            }
        }
    }
    for g in groups {
        out.eni_groups.push((g, eni_group(model, g)));
    }
    // One port per execution environment, each sending through the ENI
    // group of its own subnet.
    for f in &model.functions {
        for env in f.envs() {
            let port = PortInfo {
                kind: kind::EXEC_ENV,
                eni_group: env.eni.map(|i| eni_view(model, f, i)).unwrap_or(0),
                ..Default::default()
            };
            attach(&mut out, link(&env.id)?, env.ip, env.ip6, port);
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
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

    /// What the tries answer, emulated: longest prefix, then the exact
    /// protocol's port prefix, then the all-protocols entry; a miss denies.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn lpm_decides(
        prefixes: &[(u32, SgPrefixKey, u32)],
        ports: &[(u32, SgPortKey, u8)],
        id: u32,
        dir: u32,
        v6: bool,
        addr: [u8; 16],
        proto: u8,
        port: u16,
    ) -> bool {
        let pd = policy_dir(id, v6, dir);
        let a = u128::from_be_bytes(addr);
        let class = prefixes
            .iter()
            .filter(|(len, k, _)| {
                let bits = len - SG_PREFIX_FIXED_BITS;
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                k.policy_dir == pd && u128::from_be_bytes(k.addr) & mask == a & mask
            })
            .max_by_key(|(len, _, _)| *len)
            .map(|(_, _, c)| *c);
        let Some(class) = class else { return false };
        if class & CLASS_DECIDED != 0 {
            return class & CLASS_ALLOW != 0;
        }
        let lookup = |p: u8| {
            ports
                .iter()
                .filter(|(len, k, _)| {
                    let bits = len - SG_PORT_FIXED_BITS;
                    let mask: u16 = if bits == 0 {
                        0
                    } else {
                        u16::MAX << (16 - bits)
                    };
                    k.class == class.to_be_bytes()
                        && k.proto == p
                        && u16::from_be_bytes(k.port) & mask == port & mask
                })
                .max_by_key(|(len, _, _)| *len)
                .map(|(_, _, v)| *v != 0)
        };
        lookup(proto).or_else(|| lookup(PROTO_ANY)).unwrap_or(false)
    }

    fn lpm_allows(
        e: &Entries,
        policy: u32,
        dir: u32,
        v6: bool,
        addr: [u8; 16],
        proto: u8,
        port: u16,
    ) -> bool {
        let ports: Vec<_> = e.sg_ports.iter().map(|(l, k)| (*l, *k, 1u8)).collect();
        lpm_decides(&e.sg_prefixes, &ports, policy, dir, v6, addr, proto, port)
    }

    /// AWS's semantics, directly: any rule of any group matches.
    fn direct_allows(
        m: &Model,
        groups: &[String],
        ingress: bool,
        v6: bool,
        ip: std::net::IpAddr,
        proto: u8,
        port: u16,
    ) -> bool {
        groups
            .iter()
            .flat_map(|g| {
                let sg = m.group(g).unwrap();
                if ingress {
                    sg.ingress.clone()
                } else {
                    sg.egress.clone()
                }
            })
            .any(|r| {
                let peer = match &r.peer {
                    Peer::Cidr(n) => n.contains(&ip),
                    Peer::Group(g) => {
                        m.members(g).iter().any(|a| std::net::IpAddr::V4(*a) == ip)
                            || m.members6(g).iter().any(|a| std::net::IpAddr::V6(*a) == ip)
                    }
                    Peer::PrefixList(id) => m
                        .prefix_list(id)
                        .unwrap()
                        .cidrs
                        .iter()
                        .any(|c| c.contains(&ip)),
                };
                let fam = ip.is_ipv6() == v6;
                let proto_ok = match r.protocol {
                    Protocol::All => true,
                    Protocol::Number(p) => p == proto,
                };
                let port_ok = match r.protocol {
                    Protocol::All => true,
                    p if p.has_ports() => (r.from_port..=r.to_port).contains(&(port as i32)),
                    p if p.is_icmp() => {
                        let (t, c) = ((port >> 8) as i32, (port & 0xff) as i32);
                        r.from_port == -1
                            || (r.from_port == t && (r.to_port == -1 || r.to_port == c))
                    }
                    _ => true,
                };
                peer && fam && proto_ok && port_ok
            })
    }

    #[test]
    fn compiled_groups_agree_with_the_rules_everywhere() {
        let t = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  S: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  A:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: a
      VpcId: !Ref Vpc
      SecurityGroupIngress:
        - {IpProtocol: tcp, FromPort: 1000, ToPort: 2000, CidrIp: 10.0.0.0/16}
        - {IpProtocol: tcp, FromPort: 22, ToPort: 22, CidrIp: 10.0.1.0/24}
        - {IpProtocol: udp, FromPort: 53, ToPort: 53, CidrIp: 0.0.0.0/0}
        - {IpProtocol: icmp, FromPort: 8, ToPort: -1, CidrIp: 10.0.1.128/25}
        - {IpProtocol: icmp, FromPort: 3, ToPort: 4, CidrIp: 0.0.0.0/0}
        - {IpProtocol: "47", CidrIp: 10.0.1.7/32}
        - {IpProtocol: tcp, FromPort: 443, ToPort: 443, CidrIpv6: "fd00::/8"}
        - {IpProtocol: icmpv6, FromPort: -1, ToPort: -1, CidrIpv6: "::/0"}
        - {IpProtocol: tcp, FromPort: 5000, ToPort: 5001, SourceSecurityGroupId: !Ref B}
        - {IpProtocol: tcp, FromPort: 2000, ToPort: 2001, SourcePrefixListId: !Ref Pl}
      SecurityGroupEgress:
        - {IpProtocol: tcp, FromPort: 0, ToPort: 65535, CidrIp: 10.0.0.0/8}
        - {IpProtocol: -1, CidrIp: 10.0.1.0/28}
  B:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: b
      VpcId: !Ref Vpc
      SecurityGroupIngress:
        - {IpProtocol: -1, CidrIp: 10.0.1.64/26}
        - {IpProtocol: udp, FromPort: 100, ToPort: 65535, CidrIp: 10.0.0.0/16}
  H1: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref S, PrivateIpAddress: 10.0.1.9, SecurityGroupIds: [!Ref A, !Ref B]}}
  H2: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref S, PrivateIpAddress: 10.0.1.200, SecurityGroupIds: [!Ref B]}}
  H3: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref S, PrivateIpAddress: 10.0.1.10, SecurityGroupIds: [!Ref A]}}
  Pl:
    Type: AWS::EC2::PrefixList
    Properties: {PrefixListName: pl, AddressFamily: IPv4, MaxEntries: 5, Entries: [{Cidr: 10.0.1.96/27}, {Cidr: 10.255.0.0/16}]}
"#;
        let m = crate::model::build(t, &HashMap::new(), "s").unwrap();
        let e = compile_policies(&m, 0);
        // Addresses around every rule edge, plus a deterministic spray.
        let mut addrs: Vec<std::net::IpAddr> = [
            "10.0.1.9",
            "10.0.1.200",
            "10.0.1.10",
            "10.0.1.7",
            "10.0.1.8",
            "10.0.1.15",
            "10.0.1.16",
            "10.0.1.63",
            "10.0.1.64",
            "10.0.1.127",
            "10.0.1.128",
            "10.0.0.1",
            "10.1.0.1",
            "10.255.255.255",
            "11.0.0.1",
            "0.0.0.0",
            "fd00::1",
            "fe80::1",
            "::1",
            "::ffff:10.0.1.9",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200 {
            let r = next();
            addrs.push(std::net::IpAddr::V4(std::net::Ipv4Addr::from(
                0x0a00_0000 | (r as u32 & 0x0001_ffff),
            )));
        }
        let ports: Vec<u16> = [
            0, 21, 22, 23, 52, 53, 54, 99, 100, 443, 999, 1000, 1500, 2000, 2001, 4999, 5000, 5001,
            5002, 65535, 0x0800, 0x0801, 0x0300, 0x0304, 0x0305, 0x0400, 0x0401, 0x0500,
        ]
        .to_vec();
        let mut checked = 0;
        for (groups, policy) in &e.policies {
            for ingress in [true, false] {
                for a in &addrs {
                    let v6 = a.is_ipv6();
                    let key = match a {
                        std::net::IpAddr::V4(v) => v4_mapped(v.octets()),
                        std::net::IpAddr::V6(v) => v.octets(),
                    };
                    for proto in [6u8, 17, 1, 58, 47, 50] {
                        for &port in &ports {
                            let dir = if ingress { DIR_INGRESS } else { DIR_EGRESS };
                            let want = direct_allows(&m, groups, ingress, v6, *a, proto, port);
                            let got = lpm_allows(&e, *policy, dir, v6, key, proto, port);
                            assert_eq!(
                                got, want,
                                "groups {groups:?} ingress={ingress} {a} proto {proto} port {port}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 50_000, "{checked}");
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

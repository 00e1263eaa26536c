//! From the AWS model to map entries. Pure: the topology's ifindexes and
//! MACs come in as data, so this is tested without a kernel.
//!
//! One file per resource that has entries of its own (as in `model/`), and
//! `ports.rs` for the port and endpoint of every node; this one holds
//! [`compile`], [`Entries`], [`LinkInfo`] and the prefix helpers the LPM
//! tries share.
use std::collections::{BTreeMap, HashMap};

use ipnet::IpNet;
use vpc_common::{
    v4_mapped, AddrKey, Endpoint, EniGroup, HyperplaneEni, PortInfo, SgPortKey, SgPrefixKey,
    CLASS_ALLOW, CLASS_DECIDED, SG_PREFIX_FIXED_BITS,
};

use crate::model::Model;

mod hyperplane_eni;
mod internet;
mod nat_gateway;
mod network_acl;
mod ports;
pub mod route_table;
mod security_group;
/// The route tables' module under its former name.
pub use route_table as route;

pub use hyperplane_eni::{
    eni_entries, eni_group, eni_view, env_enis, env_group, function_eni, EniEntries, ENI_V4_ONLY,
};
pub use security_group::compile_policies;

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

impl LinkInfo {
    /// A node this router has no port for: an execution environment on
    /// another host of a cluster (nothing is ever sent to one from here:
    /// its connections are its own host's). It gets no entry.
    pub const ELSEWHERE: LinkInfo = LinkInfo {
        ifindex: 0,
        mac: [0; 6],
        router_mac: [0; 6],
    };
}

/// Everything the datapath maps hold for one deployment.
#[derive(Debug, Default, Clone)]
pub struct Entries {
    pub ports: Vec<(u32, PortInfo)>,
    /// `ENDPOINTS`: every address in its space (`AddrKey::of`).
    pub endpoints: Vec<(AddrKey, Endpoint)>,
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
    /// `PUBLIC_TO_PRIVATE`: (public, private in its VPC's space) of every
    /// public IPv4 address.
    pub public_to_private: Vec<([u8; 16], AddrKey)>,
    /// `PRIVATE_TO_PUBLIC`: (private in its VPC's space, public).
    pub private_to_public: Vec<(AddrKey, [u8; 16])>,
    /// The policy generation these ids belong to.
    pub gen: u32,
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
    network_acl::subnet_acls(model, gen, &mut out);
    ports::hosts(model, links, gen, &mut out)?;
    ports::internet_hosts(model, links, &mut out)?;
    ports::resolvers(model, links, &mut out);
    ports::aws_services(links, &mut out);
    ports::aws_public(links, &mut out);
    internet::public_ips(model, &mut out);
    nat_gateway::nat_gateways(model, &mut out);
    hyperplane_eni::enis(model, &mut out);
    hyperplane_eni::own_vpc(model, gen, &mut out);
    ports::exec_envs(model, links, &mut out)?;
    check_capacity(&out)?;
    Ok(out)
}

/// Compiles `model` on made-up links, one per node id: what a deployment
/// would need, checked before any of it is built.
pub fn dry_run(model: &Model, ids: impl IntoIterator<Item = String>) -> Result<Entries, String> {
    let links: HashMap<String, LinkInfo> = ids
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            let l = LinkInfo {
                ifindex: i as u32 + 1,
                mac: [0; 6],
                router_mac: [0; 6],
            };
            (id, l)
        })
        .collect();
    compile(model, &links, 0)
}

/// The router's tables are sized at load: a deployment that needs more
/// entries than one holds is refused (before anything is built: `vpc up`
/// and `vpc apply` compile first), naming the table and its size, rather
/// than failing half way through an install.
pub fn check_capacity(e: &Entries) -> Result<(), String> {
    use vpc_common::{MAX_ENDPOINTS, MAX_ENIS, MAX_PORTS, MAX_PUBLIC_IPS};
    let tables = [
        (
            e.ports.len(),
            MAX_PORTS,
            "router ports (one per instance, network interface, execution environment, VPC resolver and simulated service)",
            "PORTS",
        ),
        (
            e.endpoints.len(),
            MAX_ENDPOINTS,
            "addresses the router delivers to (every IPv4 and IPv6 address of the instances, interfaces, Hyperplane ENIs, execution environments, resolvers and test hosts)",
            "ENDPOINTS",
        ),
        (e.enis.len(), MAX_ENIS, "Hyperplane ENIs", "ENIS"),
        (
            e.public_to_private.len(),
            MAX_PUBLIC_IPS,
            "public IPv4 addresses",
            "PUBLIC_TO_PRIVATE",
        ),
    ];
    for (n, max, what, map) in tables {
        if n > max as usize {
            return Err(format!(
                "the deployment needs {n} {what}; the router's {map} table holds at most {max} (its quota per deployment)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use vpc_common::{PROTO_ANY, SG_PORT_FIXED_BITS};

    use super::*;

    /// A deployment past a table's size is refused by the compiler, naming
    /// the table and its size.
    #[test]
    fn a_deployment_past_the_routers_tables_is_refused_naming_the_quota() {
        let mut t = String::from(
            "Resources:\n  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}\n  S: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.0.0/18}}\n",
        );
        // With the VPC's resolver, one port too many.
        let n = vpc_common::MAX_PORTS as usize;
        for i in 0..n {
            t.push_str(&format!(
                "  H{i}: {{Type: AWS::EC2::Instance, Properties: {{SubnetId: !Ref S}}}}\n"
            ));
        }
        let ids = |m: &Model| {
            crate::topology::node_specs("q", m)
                .into_iter()
                .map(|sp| sp.id)
        };
        let m = crate::model::build(&t, &HashMap::new(), "q").unwrap();
        let err = dry_run(&m, ids(&m)).unwrap_err();
        assert!(
            err.contains("4097 router ports") && err.contains("PORTS table holds at most 4096"),
            "{err}"
        );
        // One host fewer fits.
        let last = format!("  H{}: ", n - 1);
        let t: String = t
            .lines()
            .filter(|l| !l.starts_with(&last))
            .map(|l| format!("{l}\n"))
            .collect();
        let m = crate::model::build(&t, &HashMap::new(), "q").unwrap();
        dry_run(&m, ids(&m)).expect("4096 ports fit");
    }

    /// Each table's size, at its limit and one past it.
    #[test]
    fn every_table_past_its_size_is_named() {
        use vpc_common::{MAX_ENDPOINTS, MAX_ENIS, MAX_PORTS, MAX_PUBLIC_IPS};
        let fill = |e: &mut Entries, table: &str, n: usize| match table {
            "PORTS" => e.ports = vec![(0, PortInfo::default()); n],
            "ENDPOINTS" => e.endpoints = vec![(AddrKey::default(), Endpoint::default()); n],
            "ENIS" => e.enis = vec![(0, HyperplaneEni::default()); n],
            _ => e.public_to_private = vec![([0; 16], AddrKey::default()); n],
        };
        for (table, max) in [
            ("PORTS", MAX_PORTS),
            ("ENDPOINTS", MAX_ENDPOINTS),
            ("ENIS", MAX_ENIS),
            ("PUBLIC_TO_PRIVATE", MAX_PUBLIC_IPS),
        ] {
            let mut e = Entries::default();
            fill(&mut e, table, max as usize);
            check_capacity(&e).unwrap();
            fill(&mut e, table, max as usize + 1);
            let err = check_capacity(&e).unwrap_err();
            assert!(
                err.contains(&format!("{} ", max + 1))
                    && err.contains(&format!("{table} table holds at most {max}")),
                "{err}"
            );
        }
    }

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

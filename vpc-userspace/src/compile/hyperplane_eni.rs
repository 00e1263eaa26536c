//! Hyperplane ENIs to `ENIS` / `ENI_GROUPS` entries and their endpoints,
//! with the IPv4-only view of a dual-stack ENI.
use std::collections::{BTreeMap, BTreeSet};

use vpc_common::{
    kind, route_kind, subnet_acl_index, v4_mapped, AddrKey, Endpoint, EniGroup, HyperplaneEni,
    RouteKey, RouteTarget, ID_GEN_SHIFT, LAMBDA_OWN_ENI, LAMBDA_OWN_SUBNET, MAX_GROUP_ENIS,
    ROUTE_FIXED_BITS,
};

use super::Entries;
use crate::model::{Function, Model};

pub use vpc_common::ENI_V4_ONLY;

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

/// `ENDPOINTS` and `ENIS` entries.
pub type EniEntries = (Vec<(AddrKey, Endpoint)>, Vec<(u32, HyperplaneEni)>);

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
    let subnet = model.subnet_index(&e.subnet);
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
    let mut endpoints = vec![(AddrKey::of(vpc, addr), endpoint)];
    let mut enis = vec![];
    match e.ip6 {
        None => enis.push((e.index, eni)),
        Some(ip6) => {
            endpoints.push((AddrKey::of(vpc, ip6.octets()), endpoint));
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

/// The `ENIS` entries (and endpoints) of every Hyperplane ENI, and the
/// `ENI_GROUPS` entry of every group in use.
pub(super) fn enis(model: &Model, out: &mut Entries) {
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
}

/// The route table id of Lambda's own VPC (the last of a generation's ids,
/// never a model table's).
const LAMBDA_OWN_TABLE: u32 = (1 << ID_GEN_SHIFT) - 1;

/// The ENI group of an execution environment of `f`: its subnet's ENI
/// (`env_eni`, once Active), Lambda's own VPC for a function without
/// `VpcConfig`, or 0 (none yet: nothing leaves).
pub fn env_group(model: &Model, f: &Function, env_eni: Option<u32>) -> u32 {
    match (env_eni, &f.vpc_config) {
        (Some(i), _) => eni_view(model, f, i),
        (None, None) => LAMBDA_OWN_ENI,
        (None, Some(_)) => 0,
    }
}

/// Lambda's own VPC, when a function without `VpcConfig` exists: one ENI
/// (its group of one) at Lambda's own NAT address, no VPC and no groups,
/// in a subnet of its own whose one route (IPv4 only) leads to the
/// internet. The router takes it as the internet's side of Lambda: the
/// test hosts and AWS's public services answer, nothing of a customer VPC
/// is reachable (`hyperplane::new_flow`).
pub(super) fn own_vpc(model: &Model, gen: u32, out: &mut Entries) {
    if model.functions.iter().all(|f| f.vpc_config.is_some()) {
        return;
    }
    let addr = v4_mapped(crate::model::internet::LAMBDA_OWN_NAT.octets());
    out.endpoints.push((
        AddrKey::of(0, addr),
        Endpoint {
            kind: kind::HYPERPLANE_ENI,
            ..Default::default()
        },
    ));
    out.enis.push((
        LAMBDA_OWN_ENI,
        HyperplaneEni {
            addr4: addr,
            subnet: LAMBDA_OWN_SUBNET,
            pool: LAMBDA_OWN_ENI,
            ..Default::default()
        },
    ));
    let mut group = EniGroup {
        count: 1,
        ..Default::default()
    };
    group.enis[0] = LAMBDA_OWN_ENI;
    out.eni_groups.push((LAMBDA_OWN_ENI, group));
    let table = (gen << ID_GEN_SHIFT) | LAMBDA_OWN_TABLE;
    // 0.0.0.0/0, in the trie's IPv4-mapped form (96 fixed bits).
    out.routes.push((
        ROUTE_FIXED_BITS + 96,
        RouteKey {
            table_family: super::route_table::table_family(table, false),
            addr: v4_mapped([0; 4]),
        },
        RouteTarget {
            kind: route_kind::INTERNET_GATEWAY,
            ..Default::default()
        },
    ));
    out.subnet_route_tables
        .push((subnet_acl_index(gen, LAMBDA_OWN_SUBNET), table));
}

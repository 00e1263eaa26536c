//! Drift: what is built (namespaces, link pins, map entries, NAT claims)
//! against what the desired model says, for `vpc verify` and the crash
//! tests. Read-only; an empty list means they agree.
use std::{collections::HashMap as StdHashMap, hash::Hash, path::Path};

use anyhow::Result;
use aya::{
    maps::{Array, HashMap},
    Pod,
};
use vpc_common::{
    map_names, port_slot, port_space_slot, AddrKey, Endpoint, EniGroup, HyperplaneEni, PortInfo,
};

use crate::{
    compile,
    datapath::{Maps, PinnedMaps},
    state::State,
};

/// Every difference between deployment `name`'s desired state and what
/// is built, in words.
pub fn verify(name: &str) -> Result<Vec<String>> {
    let s = State::load(name)?;
    let mut drift = vec![];
    if s.pending {
        drift.push("a reconcile is unfinished (the agent finishes it)".to_string());
    }
    // Nodes: each the model needs, built as it says; no other.
    let (specs, _) = super::hosts::split(name, &s, &s.model);
    for sp in &specs {
        if !s.nodes.iter().any(|n| sp.is_built_as(n)) {
            drift.push(format!("node {}: not built as the model says", sp.id));
        }
    }
    for n in &s.nodes {
        if !specs.iter().any(|sp| sp.is_built_as(n)) {
            drift.push(format!(
                "node {}: built, but the model has it otherwise or not at all",
                n.id
            ));
        }
        if !Path::new("/run/netns").join(&n.netns).exists() {
            drift.push(format!("node {}: namespace {} missing", n.id, n.netns));
        }
        if !s.pin_dir.join("links").join(&n.router_if).exists() {
            drift.push(format!(
                "node {}: no program on its port {}",
                n.id, n.router_if
            ));
        }
    }
    // Namespaces: the ones listed, and no other of the deployment's.
    let prefix = format!("{name}-");
    for e in std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
    {
        let ns = e.file_name().to_string_lossy().into_owned();
        if ns.starts_with(&prefix) && !s.namespaces.contains(&ns) {
            drift.push(format!("namespace {ns}: not the deployment's any more"));
        }
    }
    // Entries: as the model compiles in the generation in force.
    let mut maps = PinnedMaps::open(&s.pin_dir)?;
    let gen = maps.generation()?;
    let links = super::hosts::links(&s);
    let e = match compile::compile(&s.model, &links, gen) {
        Ok(e) => e,
        // A node not built yet: said above.
        Err(e) => {
            drift.push(format!("the entries cannot be compared: {e}"));
            return Ok(drift);
        }
    };
    let other = 1 - gen as usize;
    let ports = read::<u32, PortInfo>(&mut maps, map_names::PORTS)?;
    compare(&mut drift, map_names::PORTS, &e.ports, ports, |v| {
        v.policy[other] = 0
    });
    // The established path's copy of each port's space.
    let spaces: Array<_, u32> = Array::try_from(maps.map(map_names::PORT_SPACES)?)?;
    for (ifindex, p) in &e.ports {
        let slot = port_slot(*ifindex);
        let want = port_space_slot(p.vpc);
        match spaces.get(&slot, 0) {
            Ok(have) if slot == 0 || have == want => {}
            have => drift.push(format!(
                "{}: port {ifindex} is {have:?}, its VPC's space says {want}",
                map_names::PORT_SPACES
            )),
        }
    }
    let endpoints = read::<AddrKey, Endpoint>(&mut maps, map_names::ENDPOINTS)?;
    compare(
        &mut drift,
        map_names::ENDPOINTS,
        &e.endpoints,
        endpoints,
        |v| v.policy[other] = 0,
    );
    let enis = read::<u32, HyperplaneEni>(&mut maps, map_names::ENIS)?;
    compare(&mut drift, map_names::ENIS, &e.enis, enis, |v| {
        v.policy[other] = 0
    });
    let groups = read::<u32, EniGroup>(&mut maps, map_names::ENI_GROUPS)?;
    compare(
        &mut drift,
        map_names::ENI_GROUPS,
        &e.eni_groups,
        groups,
        |_| {},
    );
    let name = map_names::PUBLIC_TO_PRIVATE;
    let have = read::<[u8; 16], AddrKey>(&mut maps, name)?;
    compare(&mut drift, name, &e.public_to_private, have, |_| {});
    let name = map_names::PRIVATE_TO_PUBLIC;
    let have = read::<AddrKey, [u8; 16]>(&mut maps, name)?;
    compare(&mut drift, name, &e.private_to_public, have, |_| {});
    // NAT claims without their connection (an agent killed in a GC leaves
    // them; the next one gives them back within a few seconds).
    for (claim, holder) in maps.nat_orphans()? {
        drift.push(format!(
            "{}: a claim of ENI {} port {} whose connection is gone ({holder:?})",
            map_names::NAT_PORTS,
            claim.eni,
            u16::from_be(claim.port)
        ));
    }
    Ok(drift)
}

fn read<K: Pod + Eq + Hash, V: Pod>(maps: &mut PinnedMaps, name: &str) -> Result<StdHashMap<K, V>> {
    let m: HashMap<_, K, V> = HashMap::try_from(maps.map(name)?)?;
    Ok(m.iter().filter_map(|r| r.ok()).collect())
}

/// Every key of `want` in `have` with its value (after `mask` on both),
/// and no other key.
fn compare<K: Pod + Eq + Hash + std::fmt::Debug, V: Pod + PartialEq + std::fmt::Debug>(
    drift: &mut Vec<String>,
    name: &str,
    want: &[(K, V)],
    mut have: StdHashMap<K, V>,
    mask: impl Fn(&mut V),
) {
    for (k, v) in want {
        let mut v = *v;
        mask(&mut v);
        match have.remove(k) {
            None => drift.push(format!("{name}: {k:?} missing")),
            Some(mut h) => {
                mask(&mut h);
                if h != v {
                    drift.push(format!("{name}: {k:?} is {h:?}, the model says {v:?}"));
                }
            }
        }
    }
    for k in have.keys() {
        drift.push(format!("{name}: {k:?} is not the model's"));
    }
}

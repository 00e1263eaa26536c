//! Hyperplane ENIs at scale: a group whose last ENI nears its capacity
//! gets another ENI of the same (subnet, security groups); a drained ENI
//! that is not its group's first is returned after the delay. Run by the
//! agent once a tick.
use std::{collections::HashMap, time::Duration};

use anyhow::{bail, Result};
use vpc_common::map_names;

use crate::{
    compile,
    datapath::{Maps, PinnedMaps},
    model::{AllocError, Model},
    reconcile::switch_model,
    state::{lock, Lifecycle, State},
};

/// What the agent does to one group of Hyperplane ENIs.
enum EniChange {
    /// Add an ENI to the group of this first ENI.
    Add(u32),
    /// Return this (drained, not first) ENI.
    Remove(u32),
}

/// Grows and shrinks the groups of Hyperplane ENIs, once a tick: a group
/// whose last ENI holds `threshold` of its capacity (in either protocol)
/// gets a new ENI of the same (subnet, groups) with a new address of the
/// subnet; an ENI other than a group's first that has been drained for
/// `return_delay` is returned (not the last one while the one before it is
/// past the threshold, which would only bring it back). One change per
/// tick, under the deployment's lock. `drained`: ENI index -> drained since.
/// Returns the state reasons of the `Active` functions whose reason changes
/// (`lc` is only read: the caller writes them under the lock, so a change
/// made meanwhile, such as an apply's staged update, is never lost).
pub fn scale_enis(
    name: &str,
    maps: &mut PinnedMaps,
    lc: &Lifecycle,
    drained: &mut HashMap<u32, std::time::Instant>,
) -> Result<Vec<StateReason>> {
    let s = State::load(name)?;
    let sc = s.eni_scaling;
    let cap = maps.eni_capacity()? as f64;
    let claims = maps.nat_claims()?;
    let load = |i: u32| {
        [6u8, 17]
            .iter()
            .map(|p| claims.get(&(i, *p)).copied().unwrap_or(0))
            .max()
            .unwrap_or(0) as f64
            / cap
    };
    let m = &s.model;
    let mut change = None;
    let mut reasons: Vec<(u32, Option<(&str, String)>)> = vec![];
    let mut firsts: Vec<u32> = m
        .functions
        .iter()
        .filter(|f| {
            lc.functions
                .get(&f.id)
                .is_some_and(|st| st.state == "Active")
        })
        .flat_map(|f| f.envs().into_iter().filter_map(|e| e.eni))
        .collect();
    firsts.sort();
    firsts.dedup();
    for first in firsts {
        let group = m.eni_group(first);
        let last = group.last().expect("a group has its first ENI");
        if load(last.index) >= sc.threshold {
            if group.len() >= vpc_common::MAX_GROUP_ENIS {
                let why = format!(
                    "EniLimitExceeded: the {} ENIs of ({}, [{}]) are past {:.0}% of their capacity",
                    group.len(),
                    last.subnet,
                    last.groups.join(", "),
                    sc.threshold * 100.0
                );
                reasons.push((first, Some(("EniLimitExceeded", why))));
            } else if change.is_none() {
                change = Some(EniChange::Add(first));
            }
        } else {
            reasons.push((first, None));
        }
        for (i, e) in group.iter().enumerate().skip(1) {
            if load(e.index) > 0.0 {
                drained.remove(&e.index);
                continue;
            }
            let since = *drained
                .entry(e.index)
                .or_insert_with(std::time::Instant::now);
            let is_last = i == group.len() - 1;
            if since.elapsed() >= sc.return_delay
                && (!is_last || load(group[i - 1].index) < sc.threshold)
                && change.is_none()
            {
                change = Some(EniChange::Remove(e.index));
            }
        }
    }
    let mut changed = vec![];
    match change {
        Some(EniChange::Add(first)) => {
            if let Err(why) = add_eni(name, maps, first)? {
                reasons.push((first, Some(("SubnetOutOfIPAddresses", why))));
            }
        }
        Some(EniChange::Remove(index)) if remove_eni(name, maps, index)? => {
            drained.remove(&index);
        }
        Some(EniChange::Remove(_)) => {}
        None => {}
    }
    // Functions report why a group of theirs could not grow, until it can
    // again (the first such group of their subnets' when several).
    for f in &m.functions {
        let mine: Vec<&Option<(&str, String)>> = f
            .envs()
            .iter()
            .filter_map(|e| e.eni)
            .flat_map(|i| reasons.iter().filter(move |(first, _)| *first == i))
            .map(|(_, r)| r)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let reason = mine.iter().find(|r| r.is_some()).copied().unwrap_or(&None);
        let Some(st) = lc.functions.get(&f.id) else {
            continue;
        };
        let (code, why) = match &reason {
            Some((code, why)) => (code.to_string(), Some(why.clone())),
            None => ("Idle".to_string(), None),
        };
        if st.state == "Active" && (st.state_reason_code != code || st.state_reason != why) {
            if reason.is_some() {
                tracing::warn!("{}: {}", f.id, why.as_deref().unwrap_or(""));
            }
            changed.push(StateReason {
                function: f.id.clone(),
                code,
                reason: why,
            });
        }
    }
    Ok(changed)
}

/// An `Active` function's new `StateReasonCode` and `StateReason`.
#[derive(Debug, Clone, PartialEq)]
pub struct StateReason {
    pub function: String,
    pub code: String,
    pub reason: Option<String>,
}

impl StateReason {
    /// Sets the reason, if the function is still `Active`.
    pub fn write(self, lc: &mut Lifecycle) {
        if let Some(st) = lc.functions.get_mut(&self.function) {
            if st.state == "Active" {
                st.state_reason_code = self.code;
                st.state_reason = self.reason;
            }
        }
    }
}

/// Adds an ENI to the group of `first` ([`Model::allocate_eni`]: a new
/// address of its subnet, `Err(reason)` when none is free:
/// `SubnetOutOfIPAddresses`), its entries,
/// the policy switch (group references now match it), then the group.
pub fn add_eni(
    name: &str,
    maps: &mut PinnedMaps,
    first: u32,
) -> Result<std::result::Result<String, String>> {
    let _lock = lock(name)?;
    let mut s = State::load(name)?;
    let Some(proto) = s.model.eni_group(first).first().map(|e| (*e).clone()) else {
        bail!("no Hyperplane ENI {first}");
    };
    let mut model = s.model.clone();
    let index =
        match model.allocate_eni(&proto.subnet, &proto.groups, proto.account.as_deref(), true) {
            Ok(i) => i,
            Err(e @ AllocError::SubnetOutOfIPAddresses { .. }) => return Ok(Err(e.to_string())),
            Err(e) => bail!("{e}"),
        };
    let e = model.enis.last_mut().expect("just allocated");
    e.functions = proto.functions.clone();
    let e = e.clone();
    let own = eni_addrs(&model, &e);
    let (entries, next) = switch_model(&s, maps, &model)?;
    // Its own entries first (nobody sends through it until the group names it).
    {
        let mut m: aya::maps::HashMap<_, vpc_common::AddrKey, vpc_common::Endpoint> =
            aya::maps::HashMap::try_from(maps.map(map_names::ENDPOINTS)?)?;
        for (k, v) in entries.endpoints.iter().filter(|(k, _)| own.contains(k)) {
            m.insert(k, v, 0)?;
        }
        let mut m: aya::maps::HashMap<_, u32, vpc_common::HyperplaneEni> =
            aya::maps::HashMap::try_from(maps.map(map_names::ENIS)?)?;
        for (k, v) in entries
            .enis
            .iter()
            .filter(|(k, _)| k & !compile::ENI_V4_ONLY == index)
        {
            m.insert(k, v, 0)?;
        }
    }
    maps.switch_policy(&entries)?;
    // The policy in force knows the ENI: the state says so before anything
    // else can fail (a later tick or `down` then sees it).
    s.model = model;
    s.save()?;
    for (id, g) in &entries.eni_groups {
        maps.set_eni_group(*id, g)?;
    }
    maps.clear_old_generation(next)?;
    tracing::info!(
        "added Hyperplane ENI {} ({}) to the group of {}",
        e.id,
        e.ip,
        proto.id
    );
    Ok(Ok(e.id))
}

/// Returns ENI `index` (drained, not its group's first): out of its group
/// first; if a connection slipped onto it meanwhile it stays (`false`);
/// else its entries go and the policy follows.
pub fn remove_eni(name: &str, maps: &mut PinnedMaps, index: u32) -> Result<bool> {
    let _lock = lock(name)?;
    let mut s = State::load(name)?;
    let Some(e) = s.model.enis.iter().find(|e| e.index == index).cloned() else {
        return Ok(false);
    };
    let first = s.model.eni_group(index)[0].index;
    if first == index {
        return Ok(false);
    }
    let mut model = s.model.clone();
    model.enis.retain(|x| x.index != index);
    let groups = |m: &Model| -> Vec<u32> {
        [first, first | compile::ENI_V4_ONLY]
            .into_iter()
            .filter(|g| {
                m.functions
                    .iter()
                    .any(|f| compile::env_enis(m, f).iter().any(|(_, e)| e == g))
            })
            .collect()
    };
    for g in groups(&model) {
        maps.set_eni_group(g, &compile::eni_group(&model, g))?;
    }
    // Packets that read the old group finish under RCU in microseconds.
    std::thread::sleep(Duration::from_millis(20));
    if maps.nat_claims()?.keys().any(|(i, _)| *i == index) {
        for g in groups(&s.model) {
            maps.set_eni_group(g, &compile::eni_group(&s.model, g))?;
        }
        return Ok(false);
    }
    let (entries, next) = switch_model(&s, maps, &model)?;
    maps.switch_policy(&entries)?;
    {
        let mut m: aya::maps::HashMap<_, u32, vpc_common::HyperplaneEni> =
            aya::maps::HashMap::try_from(maps.map(map_names::ENIS)?)?;
        let _ = m.remove(&index);
        let _ = m.remove(&(index | compile::ENI_V4_ONLY));
        let mut m: aya::maps::HashMap<_, vpc_common::AddrKey, vpc_common::Endpoint> =
            aya::maps::HashMap::try_from(maps.map(map_names::ENDPOINTS)?)?;
        for k in eni_addrs(&s.model, &e) {
            let _ = m.remove(&k);
        }
    }
    s.model = model;
    s.save()?;
    maps.clear_old_generation(next)?;
    tracing::info!("returned drained Hyperplane ENI {} ({})", e.id, e.ip);
    Ok(true)
}

/// The `ENDPOINTS` keys of Hyperplane ENI `e`: its addresses in its VPC's
/// space.
fn eni_addrs(model: &Model, e: &crate::model::HyperplaneEniSpec) -> Vec<vpc_common::AddrKey> {
    let vpc = model.vpc(&e.vpc).map_or(0, |v| v.index);
    std::iter::once(vpc_common::v4_mapped(e.ip.octets()))
        .chain(e.ip6.map(|a| a.octets()))
        .map(|a| vpc_common::AddrKey::of(vpc, a))
        .collect()
}

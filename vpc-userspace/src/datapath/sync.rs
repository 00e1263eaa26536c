//! Bringing the maps that hold no generation (ports, endpoints, ENIs, ENI
//! groups, public addresses) to the entries of a model, around a policy
//! switch: [`Maps::sync_entries`] before it (added and changed entries,
//! the generation in force left as it is), [`Maps::remove_stale`] after it
//! (what the model no longer has). Each is idempotent: run again after a
//! crash, it finds nothing more to do.
use std::hash::Hash;

use anyhow::{Context, Result};
use aya::{
    maps::{HashMap, MapData},
    Pod,
};
use vpc_common::{map_names, AddrKey, Endpoint, EniGroup, HyperplaneEni, PortInfo};

use super::Maps;
use crate::compile::Entries;

/// A value with one policy id per generation.
trait Slotted: Pod + PartialEq {
    fn policy(&mut self) -> &mut [u32; 2];
}

impl Slotted for PortInfo {
    fn policy(&mut self) -> &mut [u32; 2] {
        &mut self.policy
    }
}
impl Slotted for Endpoint {
    fn policy(&mut self) -> &mut [u32; 2] {
        &mut self.policy
    }
}
impl Slotted for HyperplaneEni {
    fn policy(&mut self) -> &mut [u32; 2] {
        &mut self.policy
    }
}

/// Writes each entry that is missing or differs, keeping the slot of the
/// generation in force (`cur`) as the map has it: a packet until the
/// switch sees the policy it saw before (a new entry: 0, deny all).
fn upsert_slotted<K: Pod + Eq + Hash, V: Slotted>(
    m: &mut HashMap<&mut MapData, K, V>,
    entries: &[(K, V)],
    cur: usize,
    name: &str,
) -> Result<usize> {
    let mut n = 0;
    for (k, v) in entries {
        let old = m.get(k, 0).ok();
        let mut want = *v;
        want.policy()[cur] = old.map_or(0, |mut o| o.policy()[cur]);
        if old != Some(want) {
            m.insert(k, want, 0)
                .with_context(|| format!("{name} insert"))?;
            n += 1;
        }
    }
    Ok(n)
}

fn upsert<K: Pod + Eq + Hash, V: Pod + PartialEq>(
    m: &mut HashMap<&mut MapData, K, V>,
    entries: &[(K, V)],
    name: &str,
) -> Result<usize> {
    let mut n = 0;
    for (k, v) in entries {
        if m.get(k, 0).ok().as_ref() != Some(v) {
            m.insert(k, v, 0)
                .with_context(|| format!("{name} insert"))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Removes every key of the map that `entries` does not have.
fn remove_others<K: Pod + Eq + Hash, V: Pod>(
    m: &mut HashMap<&mut MapData, K, V>,
    entries: &[(K, V)],
) -> Result<Vec<K>> {
    let want: std::collections::HashSet<K> = entries.iter().map(|(k, _)| *k).collect();
    let stale: Vec<K> = m
        .keys()
        .filter_map(|k| k.ok())
        .filter(|k| !want.contains(k))
        .collect();
    for k in &stale {
        m.remove(k)?;
    }
    Ok(stale)
}

/// The map operations of a reconcile (on every kind of map access).
pub trait SyncEntries: Maps {
    /// Before a switch to `e.gen`: every endpoint, ENI, public address and
    /// port of `e` present and as compiled (ports last: a port forwards
    /// only once all it may need is there). ENI groups wait for the switch
    /// (they name ENIs the policy in force may not know). Returns how many
    /// entries were written.
    fn sync_entries(&mut self, e: &Entries) -> Result<usize> {
        let cur = 1 - e.gen as usize;
        let mut n = 0;
        let mut m: HashMap<_, AddrKey, Endpoint> =
            HashMap::try_from(self.map(map_names::ENDPOINTS)?)?;
        n += upsert_slotted(&mut m, &e.endpoints, cur, map_names::ENDPOINTS)?;
        let mut m: HashMap<_, u32, HyperplaneEni> = HashMap::try_from(self.map(map_names::ENIS)?)?;
        n += upsert_slotted(&mut m, &e.enis, cur, map_names::ENIS)?;
        let name = map_names::PUBLIC_TO_PRIVATE;
        let mut m: HashMap<_, [u8; 16], AddrKey> = HashMap::try_from(self.map(name)?)?;
        n += upsert(&mut m, &e.public_to_private, name)?;
        let name = map_names::PRIVATE_TO_PUBLIC;
        let mut m: HashMap<_, AddrKey, [u8; 16]> = HashMap::try_from(self.map(name)?)?;
        n += upsert(&mut m, &e.private_to_public, name)?;
        let mut m: HashMap<_, u32, PortInfo> = HashMap::try_from(self.map(map_names::PORTS)?)?;
        n += upsert_slotted(&mut m, &e.ports, cur, map_names::PORTS)?;
        self.set_port_spaces(&e.ports)?;
        Ok(n)
    }

    /// After the switch: the ENI groups as compiled.
    fn set_eni_groups(&mut self, e: &Entries) -> Result<usize> {
        let mut m: HashMap<_, u32, EniGroup> = HashMap::try_from(self.map(map_names::ENI_GROUPS)?)?;
        upsert(&mut m, &e.eni_groups, map_names::ENI_GROUPS)
    }

    /// Every port as the map has it now.
    fn ports(&mut self) -> Result<std::collections::HashMap<u32, PortInfo>> {
        let m: HashMap<_, u32, PortInfo> = HashMap::try_from(self.map(map_names::PORTS)?)?;
        Ok(m.iter().filter_map(|r| r.ok()).collect())
    }

    /// Last: every port, endpoint, ENI, group and public address `e` does
    /// not have removed. Returns how many entries were removed.
    fn remove_stale(&mut self, e: &Entries) -> Result<usize> {
        let mut n = 0;
        let mut m: HashMap<_, u32, PortInfo> = HashMap::try_from(self.map(map_names::PORTS)?)?;
        let gone = remove_others(&mut m, &e.ports)?;
        n += gone.len();
        self.clear_port_spaces(&gone)?;
        let mut m: HashMap<_, AddrKey, Endpoint> =
            HashMap::try_from(self.map(map_names::ENDPOINTS)?)?;
        n += remove_others(&mut m, &e.endpoints)?.len();
        let mut m: HashMap<_, u32, EniGroup> = HashMap::try_from(self.map(map_names::ENI_GROUPS)?)?;
        n += remove_others(&mut m, &e.eni_groups)?.len();
        let mut m: HashMap<_, u32, HyperplaneEni> = HashMap::try_from(self.map(map_names::ENIS)?)?;
        n += remove_others(&mut m, &e.enis)?.len();
        let m = self.map(map_names::PUBLIC_TO_PRIVATE)?;
        let mut m: HashMap<_, [u8; 16], AddrKey> = HashMap::try_from(m)?;
        n += remove_others(&mut m, &e.public_to_private)?.len();
        let m = self.map(map_names::PRIVATE_TO_PUBLIC)?;
        let mut m: HashMap<_, AddrKey, [u8; 16]> = HashMap::try_from(m)?;
        n += remove_others(&mut m, &e.private_to_public)?.len();
        Ok(n)
    }
}

impl<M: Maps + ?Sized> SyncEntries for M {}

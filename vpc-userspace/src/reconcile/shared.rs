//! The cluster's one desired state, in etcd ([`crate::cluster`]), and this
//! host's copy of it ([docs/multi-host.md](../../../docs/multi-host.md)).
//!
//! Every write to the desired model, through any host (`vpc apply`, the
//! CloudFormation, EC2 and Lambda APIs, the lifecycle's ENIs), runs under
//! the cluster's write lock, taken after the host's own: the host first
//! takes the cluster's latest model (`refresh`), makes its change over it,
//! places what is new (`model::placement::place`) and writes it back in one
//! etcd transaction that fails if anyone wrote in between (`publish`). So
//! two hosts never hand out the same address, and a change through one host
//! is the next change of every other: each agent watches the desired state
//! and reconciles its own part when it moves (`Member::poll`).
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::hosts::ClusterHost;
use crate::{
    cloudformation::Stack,
    cluster::{Cluster, ClusterLock, Settings},
    datapath::PinnedMaps,
    model::{placement, Model},
    state::{lock, State},
};

/// The etcd client settings of a host.
fn settings(c: &ClusterHost) -> Settings {
    Settings {
        endpoints: c.etcd.clone(),
        cluster: c.cluster.clone(),
        host: c.host.clone(),
        underlay: c.underlay.addr(),
        api_addr: None,
        lease_ttl_s: c.lease_ttl_s,
    }
}

pub fn connect(c: &ClusterHost) -> Result<Cluster> {
    Cluster::connect(&settings(c)).with_context(|| format!("cluster {}", c.cluster))
}

/// The desired state as etcd holds it: the model and the stacks.
fn encode(model: &Model, stacks: &[Stack]) -> Result<Value> {
    Ok(json!({ "model": serde_json::to_value(model)?, "stacks": serde_json::to_value(stacks)? }))
}

fn decode(v: Value) -> Result<(Model, Vec<Stack>)> {
    let model = serde_json::from_value(v.get("model").cloned().unwrap_or_default())
        .context("the cluster's desired model")?;
    let stacks = match v.get("stacks") {
        Some(s) => serde_json::from_value(s.clone()).context("the cluster's stacks")?,
        None => vec![],
    };
    Ok((model, stacks))
}

/// The live hosts, this one included even before its agent joins.
fn live(cl: &Cluster, me: &str) -> Result<Vec<String>> {
    let mut hosts: Vec<String> = cl.members()?.into_iter().map(|m| m.host).collect();
    if !hosts.iter().any(|h| h == me) {
        hosts.push(me.to_string());
        hosts.sort();
    }
    Ok(hosts)
}

/// `vpc up` of a host: the cluster's desired state if it has one (a
/// template given as well is refused: `vpc apply` changes the cluster's),
/// else `first`'s, placed and written as the cluster's first. Returns the
/// model, the stacks and the revision.
pub fn for_up(
    c: &ClusterHost,
    template_given: bool,
    first: impl FnOnce() -> Result<(Model, Vec<Stack>)>,
) -> Result<(Model, Vec<Stack>, i64)> {
    let cl = connect(c)?;
    let _lock = cl.lock()?;
    if let Some((v, rev)) = cl.desired()? {
        if template_given {
            bail!(
                "cluster {} already has its desired state (revision {rev}): bring this host up without a template, and change the cluster's with `vpc apply` on any host",
                c.cluster
            );
        }
        let (m, stacks) = decode(v)?;
        return Ok((m, stacks, rev));
    }
    let (mut m, stacks) = first()?;
    placement::place(&mut m, &live(&cl, &c.host)?, &[]);
    match cl.put_desired(&encode(&m, &stacks)?, 0)? {
        Ok(rev) => Ok((m, stacks, rev)),
        Err(rev) => bail!(
            "cluster {}: written by another host meanwhile (revision {rev}): try again",
            c.cluster
        ),
    }
}

/// The cluster's write lock, for a change of the desired model (`None` on
/// one host). Take it after the host's own lock.
pub fn write_lock(s: &State) -> Result<Option<(Cluster, ClusterLock)>> {
    let Some(c) = &s.cluster else {
        return Ok(None);
    };
    let refused = || {
        format!(
            "cluster {}: changes are refused while etcd cannot be reached (the datapath goes on forwarding what it has)",
            c.cluster
        )
    };
    let cl = connect(c).with_context(refused)?;
    let lock = cl.lock().with_context(refused)?;
    Ok(Some((cl, lock)))
}

/// Takes the cluster's desired state into `s` if it moved past the one
/// `s` has (and its stacks into the host's store). Whether it moved.
pub fn refresh(name: &str, cl: &Cluster, s: &mut State) -> Result<bool> {
    let Some(c) = s.cluster.as_mut() else {
        return Ok(false);
    };
    let Some((v, rev)) = cl.desired()? else {
        return Ok(false);
    };
    if rev == c.revision {
        return Ok(false);
    }
    let (m, stacks) = decode(v)?;
    fetch_packages(name, cl, &m)?;
    c.revision = rev;
    if m != s.model {
        s.model = m;
        s.pending = true;
    }
    crate::state::store_of(name)?.put(crate::cloudformation::STACKS, &stacks)?;
    Ok(true)
}

/// Places what `model` adds and writes it as the cluster's desired state
/// (with `stacks`, else the host's), over the revision `s` took.
pub fn publish(
    name: &str,
    cl: &Cluster,
    s: &mut State,
    model: &mut Model,
    stacks: Option<&[Stack]>,
) -> Result<()> {
    let Some(c) = s.cluster.as_mut() else {
        return Ok(());
    };
    placement::place(model, &live(cl, &c.host)?, &[]);
    share_packages(name, cl, model)?;
    let stacks = match stacks {
        Some(st) => st.to_vec(),
        None => crate::cloudformation::load(name)?,
    };
    match cl.put_desired(&encode(model, &stacks)?, c.revision)? {
        Ok(rev) => {
            c.revision = rev;
            Ok(())
        }
        Err(rev) => bail!(
            "cluster {}: the desired state moved to revision {rev} under the write lock: try again",
            c.cluster
        ),
    }
}

/// Function packages (zips) are content-addressed: each goes to etcd
/// once, under its SHA-256, before the model that names it.
fn package_key(p: &crate::lambda::code::Package) -> String {
    format!("code/{}", p.hex())
}

fn share_packages(name: &str, cl: &Cluster, m: &Model) -> Result<()> {
    for p in m.functions.iter().filter_map(|f| f.package.as_ref()) {
        let key = package_key(p);
        if cl.get_blob(&key)?.is_none() {
            let zip = match &p.zip {
                Some(z) => z.to_vec(),
                None => std::fs::read(p.path(name))
                    .with_context(|| format!("package {} of the model", p.sha256))?,
            };
            cl.put_blob(&key, &zip)?;
        }
    }
    Ok(())
}

/// The packages of `m` this host has not stored yet, from etcd.
fn fetch_packages(name: &str, cl: &Cluster, m: &Model) -> Result<()> {
    for p in m.functions.iter().filter_map(|f| f.package.as_ref()) {
        if p.path(name).exists() {
            continue;
        }
        let zip = cl
            .get_blob(&package_key(p))?
            .with_context(|| format!("package {} is not in the cluster", p.sha256))?;
        let mut p = p.clone();
        p.zip = Some(std::sync::Arc::new(zip));
        crate::lambda::code::store(name, &p)?;
    }
    Ok(())
}

/// How often an agent reads the desired state whole, watch or not.
const FULL_READ: Duration = Duration::from_secs(5);

/// The agent's membership: its lease kept alive, the cluster watched.
pub struct Member {
    cl: Cluster,
    last: Option<Instant>,
    last_full: Option<Instant>,
    /// Hosts seen live: one of them no longer live is gone (one never
    /// seen has not joined yet, and its resources wait for it).
    seen: std::collections::BTreeSet<String>,
    /// The gone hosts the leader last placed anew and cooled for.
    handled: Option<Vec<String>>,
}

impl Member {
    /// Joins the cluster if `name` is a host of one.
    pub fn start(name: &str) -> Result<Option<Member>> {
        let s = State::load(name)?;
        let Some(c) = &s.cluster else {
            return Ok(None);
        };
        let mut cl = connect(c)?;
        // A predecessor killed under this name holds its lease until it
        // expires: joined then.
        let deadline = Instant::now() + Duration::from_secs(c.lease_ttl_s as u64 + 2);
        while let Err(e) = cl.join() {
            if Instant::now() > deadline {
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        tracing::info!("joined cluster {} as {}", c.cluster, c.host);
        Ok(Some(Member {
            cl,
            last: None,
            last_full: None,
            seen: Default::default(),
            handled: None,
        }))
    }

    /// Leaves the cluster: the lease revoked, this host's keys gone.
    pub fn leave(&mut self) {
        if let Err(e) = self.cl.leave() {
            tracing::warn!("leaving the cluster: {e:#}");
        }
    }

    /// One step: the members and the desired state taken in (and
    /// reconciled), the NAT port slices rebalanced, and, by the first
    /// host by name, the functions of gone hosts placed anew.
    pub fn poll(&mut self, name: &str, maps: &mut PinnedMaps) -> Result<()> {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return Ok(());
        }
        self.last = Some(Instant::now());
        let members: std::collections::BTreeMap<String, std::net::Ipv4Addr> = self
            .cl
            .members()?
            .into_iter()
            .map(|m| (m.host, m.underlay))
            .collect();
        {
            let _lock = lock(name)?;
            let mut s = State::load(name)?;
            // The desired state is read whole only when the watch says it
            // moved (and every few seconds, in case a change came before
            // the watch began).
            let rev = s.cluster.as_ref().map_or(0, |c| c.revision);
            let moved = self.cl.wait_change(rev, Duration::ZERO)?.desired;
            let due = self.last_full.is_none_or(|t| t.elapsed() >= FULL_READ);
            let mut changed = if moved || due {
                self.last_full = Some(Instant::now());
                refresh(name, &self.cl, &mut s)?
            } else {
                false
            };
            let c = s.cluster.as_mut().expect("a cluster host");
            if c.members != members {
                c.members = members.clone();
                s.pending = true;
                changed = true;
            }
            // Asked only for a slice being given back: reading every claim
            // (a syscall each) on every poll took a core under load.
            let claimed = std::cell::OnceCell::new();
            let maps_once = std::cell::RefCell::new(&mut *maps);
            let in_use = |slice: u32| {
                claimed
                    .get_or_init(|| claimed_slices(&mut maps_once.borrow_mut()).ok())
                    .as_ref()
                    .is_none_or(|c: &std::collections::BTreeSet<u32>| c.contains(&slice))
            };
            let slices = self.cl.slices(&in_use)?;
            let c = s.cluster.as_mut().expect("a cluster host");
            if c.slices != slices && !slices.is_empty() {
                use crate::datapath::Maps;
                // Allocations from these slices only, as many ports as
                // they hold (the configured capacities at most).
                let ports = slices.len() as u32 * vpc_common::NAT_SLICE_PORTS;
                maps.set_port_slices(&slices)?;
                maps.set_eni_capacity(ports.min(c.eni_capacity))?;
                maps.set_nat_gateway_capacity(ports.min(c.nat_gateway_capacity))?;
                tracing::info!("NAT port slices now {slices:?}");
                c.slices = slices;
                changed = true;
            }
            if changed {
                s.save()?;
            }
        }
        self.seen.extend(members.keys().cloned());
        if self.cl.is_leader()? {
            self.leader(name, &members)?;
        }
        Ok(())
    }

    /// The first live host by name: functions of a gone host come up
    /// elsewhere (their next invocation), and its slices cool.
    fn leader(
        &mut self,
        name: &str,
        members: &std::collections::BTreeMap<String, std::net::Ipv4Addr>,
    ) -> Result<()> {
        let live: Vec<String> = members.keys().cloned().collect();
        let gone: Vec<String> = self
            .seen
            .iter()
            .filter(|h| !members.contains_key(*h))
            .cloned()
            .collect();
        // Work only when the gone hosts changed (a poll is 200 ms).
        if self.handled.as_ref() == Some(&gone) {
            return Ok(());
        }
        let s = State::load(name)?;
        // A gone host's slices come back once its connections' peers let go
        // of their tuples (the closed timeout: TIME_WAIT at the peers).
        self.cl
            .cool_slices_of_gone_members(s.timeouts.tcp_closed.as_secs().max(1) as i64)?;
        let mut probe = s.model.clone();
        if !placement::place(&mut probe, &live, &gone).is_empty() {
            let _lock = lock(name)?;
            let _cluster = self.cl.lock()?;
            let mut s = State::load(name)?;
            refresh(name, &self.cl, &mut s)?;
            let mut model = s.model.clone();
            let moved = placement::place(&mut model, &live, &gone);
            if !moved.is_empty() {
                publish(name, &self.cl, &mut s, &mut model, None)?;
                tracing::info!("moved to live hosts: {}", moved.join(", "));
                s.model = model;
                s.pending = true;
                s.save()?;
            }
        }
        // Done (an error above is tried again at the next poll).
        self.handled = Some(gone);
        Ok(())
    }
}

/// The NAT port slices some claim of this host's datapath is in.
fn claimed_slices(maps: &mut PinnedMaps) -> Result<std::collections::BTreeSet<u32>> {
    use crate::datapath::Maps;
    use vpc_common::{map_names, CtKey, NatPortKey, NAT_PORT_MIN, NAT_SLICE_PORTS};
    let claims: aya::maps::HashMap<_, NatPortKey, CtKey> =
        aya::maps::HashMap::try_from(maps.map(map_names::NAT_PORTS)?)?;
    Ok(claims
        .keys()
        .flatten()
        .filter_map(|k| u16::from_be(k.port).checked_sub(NAT_PORT_MIN))
        .map(|o| o as u32 / NAT_SLICE_PORTS)
        .collect())
}

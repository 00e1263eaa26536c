//! The reconciler: the desired model (`State::model`, written by `vpc
//! apply`, the rule edits and the Lambda API) against what is built (the
//! nodes `State::nodes` records and the maps), and the difference applied:
//! nodes of removed or changed resources torn down (their connections
//! ended), new ones built, every map entry brought to the model's, one
//! policy switch, programs attached to new ports, stale entries removed,
//! and each function of the model given its lifecycle state.
//!
//! Each step is idempotent and records what it did before the next one
//! starts, so a process killed anywhere in between leaves a state the next
//! [`converge`] finishes from: the agent runs it when it starts and on
//! every tick while [`State::pending`] is set. Resources that did not
//! change are not touched: their ports, entries and tracked connections
//! stay as they are (a policy change reaches them through the switch, as
//! it always did).
use std::{collections::HashSet, path::Path};

use anyhow::{bail, Context, Result};
use vpc_common::{v4_mapped, AddrKey};

use crate::{
    cloudformation::Stack,
    compile,
    datapath::{Maps, PinnedMaps, SyncEntries},
    lambda::lifecycle::{self, FunctionStatus},
    model::Model,
    state::{lock, store_of, Lifecycle, State, APPLY_LATENCY},
    topology::{self, Node},
};

use super::{attach_port, end_connections, end_connections_of, hosts};

/// Test hook: `VPC_FAULT_AFTER_STEPS=n` ends the process (exit status 86)
/// right after the n-th recorded step of a reconcile, as a crash or a kill
/// there would; the next reconcile must finish the job.
pub const FAULT_ENV: &str = "VPC_FAULT_AFTER_STEPS";

struct Steps {
    left: Option<u32>,
}

impl Steps {
    fn from_env() -> Self {
        Self {
            left: std::env::var(FAULT_ENV).ok().and_then(|v| v.parse().ok()),
        }
    }

    fn done(&mut self, what: &str) {
        tracing::debug!("reconcile: {what}");
        if let Some(n) = self.left.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                eprintln!("{FAULT_ENV}: stopping after: {what}");
                std::process::exit(86);
            }
        }
    }
}

/// What one reconcile changed.
#[derive(Debug, Default, Clone)]
pub struct Converged {
    /// The policy generation in force afterwards.
    pub generation: u32,
    /// When the new generation was switched on (the change in force).
    pub switched: Option<std::time::Instant>,
    pub removed: Vec<String>,
    pub built: Vec<String>,
}

/// Brings the deployment to its desired model (see the module doc).
pub fn converge(name: &str, maps: &mut PinnedMaps) -> Result<Converged> {
    let _lock = lock(name)?;
    converge_locked(name, maps)
}

pub(crate) fn converge_locked(name: &str, maps: &mut PinnedMaps) -> Result<Converged> {
    let mut steps = Steps::from_env();
    let mut s = State::load(name)?;
    let mut out = Converged::default();
    // On a host of a cluster, the nodes placed here; the others are
    // stand-ins (`hosts`).
    let (specs, remote) = hosts::split(name, &s, &s.model);
    // 1. Nodes the model no longer has, or has otherwise (an address, a
    // subnet): out of the maps, their connections ended, torn down.
    let gone: Vec<Node> = s
        .nodes
        .iter()
        .filter(|n| !specs.iter().any(|sp| sp.is_built_as(n)))
        .cloned()
        .collect();
    for n in gone {
        remove_node(maps, &s.pin_dir, &n)?;
        s.nodes.retain(|x| x.id != n.id);
        s.hooks.remove(&n.router_if);
        s.port_modes.remove(&n.router_if);
        s.attach_mode = attach_mode(&s);
        s.save()?;
        let errors = topology::teardown(std::slice::from_ref(&n.netns));
        if !errors.is_empty() {
            bail!("removing {}: {}", n.id, errors.join("; "));
        }
        s.namespaces.retain(|x| *x != n.netns);
        s.save()?;
        steps.done(&format!("removed {}", n.id));
        out.removed.push(n.id);
    }
    // 2. Namespaces listed but never finished (a build a crash cut short).
    let orphans: Vec<String> = s
        .namespaces
        .iter()
        .filter(|ns| **ns != s.router_netns && !s.nodes.iter().any(|n| n.netns == **ns))
        .cloned()
        .collect();
    if !orphans.is_empty() {
        let errors = topology::teardown(&orphans);
        if !errors.is_empty() {
            bail!("removing unfinished namespaces: {}", errors.join("; "));
        }
        s.namespaces.retain(|ns| !orphans.contains(ns));
        s.save()?;
        steps.done("removed unfinished namespaces");
    }
    // 3. New nodes: listed before they exist (`vpc down` finds them
    // whatever happens next), recorded once built.
    let new: Vec<_> = specs
        .into_iter()
        .filter(|sp| !s.nodes.iter().any(|n| sp.is_built_as(n)))
        .collect();
    for spec in new {
        if Path::new("/run/netns").join(&spec.netns).exists() {
            bail!(
                "network namespace {} already exists (not this deployment's: `ip netns del {}`)",
                spec.netns,
                spec.netns
            );
        }
        let port = next_port(&s.nodes, &topology::router_links(name)?);
        s.namespaces.push(spec.netns.clone());
        s.save()?;
        let id = spec.id.clone();
        let node = topology::build_node(name, &s.model, spec, port)
            .with_context(|| format!("building {id}"))?;
        s.hooks.insert(node.router_if.clone(), s.hook_for(&node.id));
        s.nodes.push(node);
        s.save()?;
        steps.done(&format!("built {id}"));
        out.built.push(id);
    }
    // 4. IPv6 default routes follow `Ipv6AllowedForDualStack`.
    let routes: Vec<(usize, bool)> = topology::node_specs(name, &s.model)
        .iter()
        .filter_map(|sp| {
            let i = s.nodes.iter().position(|n| sp.is_built_as(n))?;
            (sp.ip6.is_some() && s.nodes[i].ip6_route != sp.ip6_route).then_some((i, sp.ip6_route))
        })
        .collect();
    for (i, on) in routes {
        topology::set_ip6_route(&s.nodes[i], on)?;
        s.nodes[i].ip6_route = on;
        s.save()?;
    }
    // Secondary addresses follow the interfaces' (in place), and a
    // node's link its instance's state.
    for sp in topology::node_specs(name, &s.model) {
        let Some(i) = s.nodes.iter().position(|n| sp.is_built_as(n)) else {
            continue;
        };
        if s.nodes[i].secondary != sp.secondary {
            topology::set_secondary(&mut s.nodes[i], &sp.secondary)?;
            s.save()?;
        }
        // Stopped and started instances, in place.
        if s.nodes[i].stopped != sp.stopped {
            topology::set_stopped(&mut s.nodes[i], sp.stopped)?;
            s.save()?;
        }
    }
    // DNS settings follow the VPCs' DHCP options (a lease renewed at once).
    for n in &s.nodes {
        if let Some(dns) = topology::dns_of(&s.model, n) {
            topology::set_dns(&n.netns, &dns)?;
        }
    }
    // 5. Entries: everything the model compiles to, the new generation
    // written aside and switched on with one write. A port keeps its ENI
    // group until the groups are written (a new group may name a new ENI
    // only the new policy knows).
    let mut gone_remote = vec![];
    if let Some(c) = s.cluster.as_mut() {
        let next = hosts::stand_ins(&c.remote, &remote);
        gone_remote = c
            .remote
            .iter()
            .filter(|r| !next.iter().any(|x| x.ifindex == r.ifindex))
            .cloned()
            .collect();
        c.remote = next;
    }
    let links = hosts::links(&s);
    let next = 1 - maps.generation()?;
    let entries = compile::compile(&s.model, &links, next).map_err(anyhow::Error::msg)?;
    let before = maps.ports()?;
    let mut held = entries.clone();
    for (k, p) in held.ports.iter_mut() {
        if let Some(cur) = before.get(k) {
            p.eni_group = cur.eni_group;
        }
    }
    maps.sync_entries(&held)?;
    maps.switch_policy(&entries)?;
    out.switched = Some(std::time::Instant::now());
    steps.done("switched the policy");
    maps.set_eni_groups(&entries)?;
    maps.sync_entries(&entries)?;
    if let Some(c) = &s.cluster {
        maps.sync_remote_ports(&hosts::remote_ports(c, &entries))?;
        // A node gone from another host (or moved): its connections here end.
        let addrs: HashSet<AddrKey> = gone_remote
            .iter()
            .flat_map(|r| {
                let vpc = before.get(&r.ifindex).map_or(0, |p| p.vpc);
                std::iter::once(v4_mapped(r.ip.octets()))
                    .chain(r.ip6.map(|a| a.octets()))
                    .map(move |a| AddrKey::of(vpc, a))
            })
            .collect();
        if !addrs.is_empty() {
            end_connections_of(maps, &addrs)?;
        }
    }
    // A connection leaves through one ENI: an execution environment moved
    // to another (or to none) loses its connections.
    let mut ended = HashSet::new();
    for (k, p) in &entries.ports {
        let Some(cur) = before.get(k) else { continue };
        if cur.eni_group != p.eni_group && cur.eni_group != 0 {
            if let Some(n) = s.nodes.iter().find(|n| n.link.ifindex == *k) {
                ended.insert(v4_mapped(n.ip.octets()));
                ended.extend(n.ip6.map(|a| a.octets()));
            }
        }
    }
    if !ended.is_empty() {
        end_connections(maps, &ended)?;
    }
    // 6. New ports join the router (their entries are in place).
    let unattached: Vec<Node> = s
        .nodes
        .iter()
        .filter(|n| !s.pin_dir.join("links").join(&n.router_if).exists())
        .cloned()
        .collect();
    for n in unattached {
        let hook = s.hooks.get(&n.router_if).copied().unwrap_or(s.default_hook);
        let mode = attach_port(name, &s.pin_dir, &n, hook)?;
        s.port_modes.insert(n.router_if.clone(), mode.to_string());
        s.attach_mode = attach_mode(&s);
        s.save()?;
        steps.done(&format!("attached {}", n.id));
    }
    // 7. What the model no longer has.
    maps.remove_stale(&entries)?;
    maps.clear_old_generation(next)?;
    remove_stale_links(&s)?;
    // 8. Each function of the model has a lifecycle state, and only those.
    store_of(name)?.transact(|t| {
        let mut lc: Lifecycle = t.get("lifecycle")?.unwrap_or_default();
        let now = lc.clock.now_ms();
        let eni_delay = s.eni_delay.as_millis() as u64;
        for f in &s.model.functions {
            if lc.functions.contains_key(&f.id) {
                continue;
            }
            let ready =
                lifecycle::enis_exist(&s.model, f.account.as_deref(), f.vpc_config.as_ref());
            let mut st = if f.vpc_config.is_some() {
                FunctionStatus::pending("Creating", now + if ready { 0 } else { eni_delay })
            } else {
                FunctionStatus::active()
            };
            st.life.last_modified_ms = now;
            st.life.last_invoked_ms = now;
            lc.functions.insert(f.id.clone(), st);
        }
        lc.functions
            .retain(|id, _| s.model.functions.iter().any(|f| f.id == *id));
        s.pending = false;
        t.put("lifecycle", &lc)?;
        t.put("state", &s)
    })?;
    out.generation = next;
    Ok(out)
}

/// How the ports' programs are attached, summed up (`tc`, `tc+xdp-native`).
fn attach_mode(s: &State) -> String {
    let mut modes: Vec<&str> = s.port_modes.values().map(String::as_str).collect();
    modes.sort();
    modes.dedup();
    modes.join("+")
}

/// The next free router port number (`r<n>`): past every recorded node's
/// and every link still in the router namespace (one of a node just torn
/// down, or of a build a crash cut short, goes a moment later).
fn next_port(nodes: &[Node], links: &[String]) -> u16 {
    nodes
        .iter()
        .map(|n| n.router_if.as_str())
        .chain(links.iter().map(String::as_str))
        .filter_map(|l| l.strip_prefix('r')?.parse::<u16>().ok())
        .max()
        .unwrap_or(0)
        + 1
}

/// A node's port and addresses out of the maps (no packet is forwarded
/// from or to it), its connections ended, its link pin removed.
fn remove_node(maps: &mut PinnedMaps, pin_dir: &Path, n: &Node) -> Result<()> {
    let addrs: HashSet<AddrKey>;
    {
        use vpc_common::{map_names, Endpoint, PortInfo};
        let mut ports: aya::maps::HashMap<_, u32, PortInfo> =
            aya::maps::HashMap::try_from(maps.map(map_names::PORTS)?)?;
        // Its addresses are in its VPC's space.
        let vpc = ports.get(&n.link.ifindex, 0).map_or(0, |p| p.vpc);
        addrs = std::iter::once(v4_mapped(n.ip.octets()))
            .chain(n.ip6.map(|a| a.octets()))
            .map(|a| AddrKey::of(vpc, a))
            .collect();
        let _ = ports.remove(&n.link.ifindex);
        maps.clear_port_spaces(&[n.link.ifindex])?;
        let mut eps: aya::maps::HashMap<_, AddrKey, Endpoint> =
            aya::maps::HashMap::try_from(maps.map(map_names::ENDPOINTS)?)?;
        for a in &addrs {
            if eps.get(a, 0).is_ok_and(|e| e.ifindex == n.link.ifindex) {
                let _ = eps.remove(a);
            }
        }
    }
    end_connections_of(maps, &addrs)?;
    let pin = pin_dir.join("links").join(&n.router_if);
    if pin.exists() {
        std::fs::remove_file(&pin).with_context(|| format!("removing {}", pin.display()))?;
    }
    Ok(())
}

/// Link pins of ports that no node has (their namespace is gone).
fn remove_stale_links(s: &State) -> Result<()> {
    let dir = s.pin_dir.join("links");
    for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let overlay = s.cluster.is_some() && name == super::hosts::OVERLAY_LINK;
        if !overlay && !s.nodes.iter().any(|n| n.router_if == name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(())
}

/// Why a model cannot replace the one in force in place, in AWS's words:
/// what CloudFormation can only change by replacing the resource (a VPC's
/// primary CIDR block, a subnet's IPv4 block, its IPv6 block for another,
/// its VPC or zone).
pub fn check_update(old: &Model, new: &Model) -> Result<()> {
    let not_updatable = |id: &str, field: &str, what: &str| {
        anyhow::anyhow!(
            "Resources.{id}.Properties.{field}: NotUpdatable: {what} cannot change in place (AWS replaces the resource): give it a new logical id, or run `vpc down` and `vpc up`"
        )
    };
    for v in &new.vpcs {
        if let Some(o) = old.vpc(&v.id) {
            if o.cidr != v.cidr {
                return Err(not_updatable(
                    &v.id,
                    "CidrBlock",
                    &format!("a VPC's primary CIDR block ({} to {})", o.cidr, v.cidr),
                ));
            }
        }
    }
    for sn in &new.subnets {
        if let Some(o) = old.subnet(&sn.id) {
            if o.cidr != sn.cidr {
                return Err(not_updatable(
                    &sn.id,
                    "CidrBlock",
                    &format!("a subnet's CIDR block ({} to {})", o.cidr, sn.cidr),
                ));
            }
            // Associating a block, or giving it back, is done in place
            // (AssociateSubnetCidrBlock); replacing one is not.
            if o.ipv6_cidr.is_some() && sn.ipv6_cidr.is_some() && o.ipv6_cidr != sn.ipv6_cidr {
                return Err(not_updatable(
                    &sn.id,
                    "Ipv6CidrBlock",
                    "a subnet's IPv6 CIDR block",
                ));
            }
            if o.vpc != sn.vpc {
                return Err(not_updatable(&sn.id, "VpcId", "a subnet's VPC"));
            }
            if o.az != sn.az {
                return Err(not_updatable(
                    &sn.id,
                    "AvailabilityZone",
                    "a subnet's Availability Zone",
                ));
            }
        }
    }
    if let Some(sn) = new
        .subnets
        .iter()
        .find(|sn| sn.index >= vpc_common::MAX_SUBNETS)
    {
        bail!(
            "Resources.{}: the datapath has room for {} subnet indices, and this deployment has used them: run `vpc down` and `vpc up`",
            sn.id,
            vpc_common::MAX_SUBNETS - 1
        );
    }
    Ok(())
}

/// `vpc apply`: `template` (built over the model in force) becomes the
/// desired model, and the deployment is reconciled to it. Functions and
/// their ENIs belong to the lifecycle: functions the template adds are
/// created (`Pending` until their ENIs are ready), functions it removed
/// are deleted, the others (and every function created through the API)
/// go on as they run. Returns the policy generation in force.
pub fn apply(name: &str, template: Model) -> Result<u32> {
    apply_built(name, |_, _| Ok((template, None)))
}

/// `apply` of the model of the deployment's stacks, built under its lock
/// by `build` from the model in force and the stacks (so no change made
/// meanwhile is lost); the stacks `build` returns (their templates,
/// status and events) are written in the same transaction as the desired
/// model. Nothing is written if `build` or the checks fail.
pub fn apply_stacks(
    name: &str,
    build: impl FnOnce(&Model, Vec<Stack>) -> Result<(Model, Vec<Stack>)>,
) -> Result<u32> {
    apply_built(name, |prior, _| {
        let (m, stacks) = build(prior, crate::cloudformation::load(name)?)?;
        Ok((m, Some(stacks)))
    })
}

fn apply_built(
    name: &str,
    build: impl FnOnce(&Model, &State) -> Result<(Model, Option<Vec<Stack>>)>,
) -> Result<u32> {
    let gen = apply_edit_with(name, |m, s, lc| {
        let (template, stacks) = build(m, s)?;
        // Packages stored with the model that names them (under the lock).
        crate::lambda::code::store_model(name, &template)?;
        let now = lc.clock.now_ms();
        // Functions both templates declare: changed as a stack update
        // changes them, with UpdateFunctionConfiguration.
        for f in template
            .functions
            .iter()
            .filter(|f| s.template_functions.contains(&f.id))
        {
            let Some(old) = m.function(&f.id).cloned() else {
                continue;
            };
            // Its role as the template now says (checked by the build).
            if let Some(x) = m.functions.iter_mut().find(|x| x.id == f.id) {
                x.role = f.role.clone();
                x.role_known = f.role_known;
            }
            if old.name != f.name || old.account != f.account {
                bail!(
                    "Resources.{}.Properties.FunctionName: NotUpdatable: a function's name or account cannot change in place (AWS replaces the function): give it a new logical id, or run `vpc down` and `vpc up`",
                    f.id
                );
            }
            if old.environment == f.environment
                && old.code == f.code
                && old.package == f.package
                && old.vpc_config == f.vpc_config
            {
                continue;
            }
            let st = lc.functions.entry(f.id.clone()).or_default();
            st.life.revision += 1;
            st.life.last_modified_ms = now;
            if let Some(x) = m.functions.iter_mut().find(|x| x.id == f.id) {
                x.environment = f.environment.clone();
                x.code = f.code.clone();
                x.package = f.package.clone();
            }
            let delay = s.eni_delay.as_millis() as u64;
            lifecycle::stage_vpc_config(m, st, &f.id, f.vpc_config.clone(), now, delay);
        }
        let added: Vec<crate::model::Function> = template
            .functions
            .iter()
            .filter(|f| m.function(&f.id).is_none())
            .cloned()
            .collect();
        let removed: Vec<String> = s
            .template_functions
            .iter()
            .filter(|id| !template.functions.iter().any(|f| f.id == **id))
            .cloned()
            .collect();
        let functions = std::mem::take(&mut m.functions);
        let enis = std::mem::take(&mut m.enis);
        let urls = std::mem::take(&mut m.function_urls);
        let iam = std::mem::take(&mut m.iam);
        *m = template;
        // The IAM API's entities are the deployment's, whatever the templates.
        m.iam = iam;
        m.functions = functions;
        m.enis = enis;
        // Function URLs are the Lambda API's too: those in force stay as
        // they are, the template's new ones are added (below, once the
        // functions are settled).
        let template_urls = std::mem::replace(&mut m.function_urls, urls);
        for id in &removed {
            lifecycle::detach(m, id);
        }
        m.functions.retain(|f| {
            !removed.contains(&f.id)
                && !f
                    .version_of
                    .as_ref()
                    .is_some_and(|(of, _)| removed.contains(of))
        });
        // What the lifecycle keeps must still have its subnets and groups
        // (AWS refuses to delete them under a function); Hyperplane ENIs
        // nothing uses go with their subnet or group.
        for f in &m.functions {
            let Some(vc) = &f.vpc_config else { continue };
            if let Some(sn) = vc.subnets.iter().find(|x| m.subnet(x).is_none()) {
                bail!(
                    "DependencyViolation: The subnet '{sn}' has dependencies and cannot be deleted (function {} is in it)",
                    f.name
                );
            }
            if let Some(g) = vc.groups.iter().find(|g| m.group(g).is_none()) {
                bail!(
                    "DependencyViolation: resource {g} has a dependent object (function {})",
                    f.name
                );
            }
        }
        // An ENI Lambda could not delete is in its subnet and groups until
        // someone deletes it (`vpc eni delete`), as at AWS.
        for e in m.enis.iter().filter(|e| e.available) {
            if m.subnet(&e.subnet).is_none() {
                bail!(
                    "DependencyViolation: The subnet '{}' has dependencies and cannot be deleted (network interface {} is available in it: delete it, vpc eni delete)",
                    e.subnet,
                    e.id
                );
            }
            if let Some(g) = e.groups.iter().find(|g| m.group(g).is_none()) {
                bail!(
                    "DependencyViolation: resource {g} has a dependent object (network interface {}: delete it, vpc eni delete)",
                    e.id
                );
            }
        }
        let gone: Vec<_> = m
            .enis
            .iter()
            .filter(|e| {
                m.subnet(&e.subnet).is_none() || e.groups.iter().any(|g| m.group(g).is_none())
            })
            .map(|e| e.index)
            .collect();
        m.enis.retain(|e| !gone.contains(&e.index));
        m.address_enis_of_dual_stack_subnets();
        lifecycle::refresh_eni_functions(m);
        for mut f in added {
            let (ip, ip6) = lifecycle::exec_addresses(m, f.vpc_config.as_ref()).context(
                "the Lambda service range has no room for another function's execution environments",
            )?;
            f.exec_ip = ip;
            f.exec_ip6 = ip6;
            f.eni = None;
            f.enis.clear();
            m.functions.push(f);
        }
        m.functions.sort_by(|a, b| a.id.cmp(&b.id));
        // A URL goes with its function.
        let ids: HashSet<String> = m.functions.iter().map(|f| f.id.clone()).collect();
        m.function_urls.retain(|u| ids.contains(&u.function));
        for u in template_urls {
            if ids.contains(&u.function) && m.function_url(&u.function, None).is_none() {
                m.function_urls.push(u);
            }
        }
        m.function_urls.sort_by(|a, b| a.function.cmp(&b.function));
        Ok(stacks)
    })?;
    // Packages no function refers to any more.
    crate::lambda::code::gc(name)?;
    Ok(gen)
}

/// A change made by `edit` on the desired model, under the deployment's
/// lock (concurrent edits neither lose one another nor clear the
/// generation in force): checked (nothing is written if it cannot be
/// applied), written as the desired model, then reconciled. Returns the
/// policy generation in force.
pub fn apply_edit(
    name: &str,
    edit: impl FnOnce(&mut Model, &State, &mut Lifecycle) -> Result<()>,
) -> Result<u32> {
    apply_edit_with(name, |m, s, lc| edit(m, s, lc).map(|()| None))
}

/// `apply_edit` whose `edit` may also return the deployment's stacks, to
/// write with the state.
fn apply_edit_with(
    name: &str,
    edit: impl FnOnce(&mut Model, &State, &mut Lifecycle) -> Result<Option<Vec<Stack>>>,
) -> Result<u32> {
    let asked = std::time::Instant::now();
    let _lock = lock(name)?;
    let mut s = State::load(name)?;
    // A host of a cluster changes the cluster's latest model.
    let cluster = super::shared::write_lock(&s)?;
    if let Some((cl, _)) = &cluster {
        super::shared::refresh(name, cl, &mut s)?;
    }
    let mut lc = Lifecycle::load(name)?;
    let mut model = s.model.clone();
    let stacks = edit(&mut model, &s, &mut lc)?;
    check_update(&s.model, &model)?;
    topology::check_namespaces(&topology::planned_namespaces(name, &model))?;
    // Compiled once on made-up links: a model the datapath cannot take is
    // refused before anything is written.
    let links = topology::node_specs(name, &model)
        .iter()
        .enumerate()
        .map(|(i, sp)| {
            let link = compile::LinkInfo {
                ifindex: i as u32 + 1,
                mac: [0; 6],
                router_mac: [0; 6],
            };
            (sp.id.clone(), link)
        })
        .collect();
    compile::compile(&model, &links, 0).map_err(anyhow::Error::msg)?;
    s.template_functions = model
        .functions
        .iter()
        .filter(|f| f.version_of.is_none())
        .filter(|f| s.template_functions.contains(&f.id) || s.model.function(&f.id).is_none())
        .map(|f| f.id.clone())
        .collect();
    if let Some((cl, _)) = &cluster {
        super::shared::publish(name, cl, &mut s, &mut model, stacks.as_deref())?;
    }
    s.model = model;
    s.pending = true;
    store_of(name)?.transact(|t| {
        t.put("state", &s)?;
        if let Some(stacks) = &stacks {
            t.put(crate::cloudformation::STACKS, stacks)?;
        }
        t.put("lifecycle", &lc)
    })?;
    let mut maps = PinnedMaps::open(&s.pin_dir)?;
    let done = converge_locked(name, &mut maps)?;
    let switched = done.switched.unwrap_or_else(std::time::Instant::now);
    store_of(name)?.put(APPLY_LATENCY, &(switched - asked).as_secs_f64())?;
    if !done.removed.is_empty() || !done.built.is_empty() {
        tracing::info!(
            "applied: removed [{}], built [{}]",
            done.removed.join(", "),
            done.built.join(", ")
        );
    }
    Ok(done.generation)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link still in the router namespace (its node's namespace deleted
    /// a moment ago) is not taken again: the next port is past it.
    #[test]
    fn a_new_port_skips_a_link_still_going() {
        let node = |r: &str| Node {
            id: r.into(),
            role: topology::Role::Instance,
            netns: r.into(),
            router_if: r.into(),
            ip: "10.0.1.4".parse().unwrap(),
            gateway: "10.0.1.1".parse().unwrap(),
            link: compile::LinkInfo {
                ifindex: 1,
                mac: [0; 6],
                router_mac: [0; 6],
            },
            ip6: None,
            ip6_route: false,
            secondary: vec![],
            stopped: false,
        };
        let nodes = [node("r1"), node("r5")];
        let links = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(next_port(&nodes, &links(&["lo", "r1", "r5"])), 6);
        assert_eq!(next_port(&nodes, &links(&["lo", "r1", "r5", "r6"])), 7);
        assert_eq!(next_port(&[], &links(&["lo"])), 1);
    }
}

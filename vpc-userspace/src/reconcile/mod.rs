//! The reconciler: one path from the desired model (`State::model`) to
//! namespaces, veths and map entries ([`converge`]); [`apply`] and
//! [`apply_edit`] (templates, rule edits) and [`change`] (the Lambda API
//! and the lifecycle) write the desired model and run it. Nothing else
//! writes to namespaces or maps, but the agent's ENI scaling and
//! conntrack's garbage collection.
use std::collections::HashSet;

use anyhow::Result;

mod converge;
pub mod hosts;
mod network_interface;
pub mod shared;
mod verify;
pub use converge::{apply, apply_edit, apply_stacks, check_update, converge, Converged, FAULT_ENV};
pub use network_interface::delete_network_interface;
pub use verify::verify;

use crate::{
    compile,
    datapath::{self, Hook, Maps, PinnedMaps},
    lambda::lifecycle::Failure,
    model::Model,
    state::{lock, State},
    topology::{self, Node},
};

/// A change of the desired model made by `edit` (functions, their ENIs
/// and attachments, shares), under the deployment's lock, then reconciled
/// (`converge`): new ENIs' entries, the policy switch (group references
/// follow ENI addresses), ENI groups, each execution environment's port
/// (its connections end when its ENI changes), deleted ENIs' entries.
/// `Ok(Err)`: the change is refused (nothing changed).
pub fn change(
    name: &str,
    maps: &mut PinnedMaps,
    edit: impl FnOnce(&mut Model) -> Result<(), Failure>,
) -> Result<Result<(), Failure>> {
    let _lock = lock(name)?;
    let mut s = State::load(name)?;
    // A host of a cluster changes the cluster's latest model.
    let cluster = shared::write_lock(&s)?;
    if let Some((cl, _)) = &cluster {
        shared::refresh(name, cl, &mut s)?;
    }
    let mut model = s.model.clone();
    if let Err(f) = edit(&mut model) {
        return Ok(Err(f));
    }
    if model == s.model && !s.pending {
        return Ok(Ok(()));
    }
    if let Some((cl, _)) = &cluster {
        shared::publish(name, cl, &mut s, &mut model, None)?;
    }
    s.model = model;
    s.pending = true;
    s.save()?;
    converge::converge_locked(name, maps)?;
    Ok(Ok(()))
}

/// Ends the connections opened from the given (function-side) addresses:
/// both conntrack entries, the NAT port claim and their ports' counts. Their next packets find
/// no connection and are dropped (`ct_invalid`, `hyperplane_unsolicited`).
pub fn end_connections(maps: &mut PinnedMaps, addrs: &HashSet<[u8; 16]>) -> Result<usize> {
    datapath::end_connections_where(maps, |k| addrs.contains(&k.saddr))
}

/// Ends the connections opened from or to the given addresses, each in
/// its space (a node that goes).
pub fn end_connections_of(
    maps: &mut PinnedMaps,
    addrs: &HashSet<vpc_common::AddrKey>,
) -> Result<usize> {
    let of = |a: [u8; 16], space: u16| {
        addrs.contains(&vpc_common::AddrKey {
            space: space as u32,
            addr: a,
        })
    };
    datapath::end_connections_where(maps, |k| of(k.saddr, k.space) || of(k.daddr, k.space))
}

/// Attaches the deployment's pinned router program at `hook` on `n`'s
/// router port and pins the link; returns the attach mode. One place for
/// `vpc up` and for ports added at runtime.
pub fn attach_port(
    deployment: &str,
    pin_dir: &std::path::Path,
    n: &Node,
    hook: Hook,
) -> Result<&'static str> {
    let router = topology::router_netns(deployment);
    let pin = pin_dir.join("links").join(&n.router_if);
    match hook {
        Hook::Xdp => {
            let mut prog = datapath::pinned_router(pin_dir)?;
            let ifindex = n.link.ifindex;
            topology::in_netns(&router, || datapath::attach_xdp(&mut prog, ifindex, &pin))
        }
        Hook::Tc => {
            // No XDP on the port: the endpoint keeps its offloads.
            topology::set_tx_offload(deployment, n, true)?;
            let mut prog = datapath::pinned_router_tc(pin_dir)?;
            topology::in_netns(&router, || {
                datapath::attach_tc(&mut prog, &n.router_if, &pin)
            })
        }
    }
}

/// Policy generation switch for a model whose Hyperplane ENIs changed
/// (group references match ENI addresses), the caller holding the lock:
/// compiles `model` into the generation not in force (the caller writes
/// an added ENI's own entries, then switches).
pub(crate) fn switch_model(
    s: &State,
    maps: &mut PinnedMaps,
    model: &Model,
) -> Result<(compile::Entries, u32)> {
    let links = hosts::links(s);
    let next = 1 - maps.generation()?;
    let entries = compile::compile(model, &links, next).map_err(anyhow::Error::msg)?;
    Ok((entries, next))
}

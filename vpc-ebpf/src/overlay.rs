//! Across hosts: the VXLAN overlay between the router namespaces of one
//! VPC's hosts (`docs/datapath.md`, "Across hosts: the overlay"). TC only:
//! XDP has no tunnel metadata.
//!
//! A node on another host is a stand-in port here (a pseudo ifindex with
//! `REMOTE_PORT_FLAG`, its `PORTS` and `ENDPOINTS` entries, and its host in
//! `REMOTE_PORTS`). One host judges a flow: the host of the node that
//! opens it runs the whole pipeline with the destination's stand-in as
//! the egress port, and `send` puts the packet into the overlay. On the
//! other host the packet is either part of a connection tracked there (a
//! reply to a flow that host owns: the pipeline as on any port, the
//! source's stand-in as the port it arrived on), or of a flow the sender
//! owns: delivered as is (`arrival_deliver`), and its relay recorded so
//! that the local node's answers go back as is (`relay`). Nothing from
//! the overlay goes back into it: no loops.
use vpc_common::{addr_space, is_remote_port, vpc_of_vni, DropReason, RemotePort};

use crate::{
    config, ct,
    ctx::Ctx,
    maps::{Scratch, RELAYS, REMOTE_PORTS},
    route, stats,
};

/// `arrival`'s answer for a packet without tunnel metadata (no stand-in
/// has this pseudo ifindex).
pub const NO_TUNNEL: u32 = u32::MAX;
/// `relay`'s answer for a packet that is not the answer of a relayed flow.
pub const NO_RELAY: u32 = u32::MAX;

/// Into the overlay, to the host of the node behind stand-in port
/// `ifindex` (its `REMOTE_PORTS` entry), in its VPC's VNI. At TC only: a
/// frame at XDP has no tunnel metadata to set.
#[inline(never)]
pub fn send<C: Ctx>(ctx: &C, ifindex: u32) -> Result<(), DropReason> {
    if !C::TUNNELS {
        return Err(DropReason::OverlayNeedsTc);
    }
    let overlay = config::overlay();
    match unsafe { REMOTE_PORTS.get(&ifindex) } {
        Some(to) if overlay != 0 => ctx.redirect_tunnel(overlay, to),
        _ => Err(DropReason::OverlayNoHost),
    }
}

/// A packet from the overlay device: its tunnel (kept in `s.tunnel`), the
/// key of its direction in the address space its VNI carries (`s.key`),
/// and the port its source is behind here, which the pipeline then treats
/// as the port it arrived on: a stand-in's pseudo ifindex, or 0 for an
/// address without one (a Hyperplane ENI's after NAT, an unknown one; a
/// local node's address from the overlay is not that node). `NO_TUNNEL`
/// without tunnel metadata.
#[inline(never)]
pub fn arrival<C: Ctx>(ctx: &C, s: &mut Scratch) -> u32 {
    let Some(t) = ctx.tunnel() else {
        return NO_TUNNEL;
    };
    s.tunnel.underlay = t.underlay;
    s.tunnel.vni = t.vni;
    let space = addr_space(vpc_of_vni(t.vni), s.pkt.v6);
    s.key = ct::key(&s.pkt, space);
    match route::endpoint(space, &s.pkt.saddr) {
        Ok(ep) if is_remote_port(ep.ifindex) => ep.ifindex,
        _ => 0,
    }
}

/// A packet from the overlay that is part of no connection here: a flow
/// its sending host owns and judged. Delivered as is to its destination,
/// which must be a node of this host, and its relay recorded under the
/// flow's reply key: only a changed or new one is written, so established
/// traffic costs one lookup.
#[inline(never)]
pub fn arrival_deliver<C: Ctx>(ctx: &C, s: &mut Scratch) -> u32 {
    stats::finish(arrival_deliver_inner(ctx, s))
}

#[inline(always)]
fn arrival_deliver_inner<C: Ctx>(ctx: &C, s: &mut Scratch) -> Result<u32, DropReason> {
    let p = &s.pkt;
    let ep = match route::endpoint(s.key.space as u32, &p.daddr) {
        Ok(ep) if ep.ifindex != 0 && !is_remote_port(ep.ifindex) => ep,
        _ => return Err(DropReason::OverlayNoDestination),
    };
    s.reply_key = ct::reply_key(&s.key, p.is_icmp());
    s.tunnel.ifindex = ep.ifindex;
    s.tunnel._pad = 0;
    match unsafe { RELAYS.get(&s.reply_key) } {
        Some(r) if *r == s.tunnel => {}
        // Full (LRU): the oldest relay goes.
        _ => {
            let _ = RELAYS.insert(&s.reply_key, &s.tunnel, 0);
        }
    }
    route::deliver_to(ctx, ep)
}

/// A packet on local port `ifindex` that is part of no connection here:
/// the answer of a flow another host owns (`arrival_deliver`) goes back to
/// that host as is, into `overlay`, if this port is the one the flow was
/// delivered to (the relay's source check). `NO_RELAY` for any other.
#[inline(never)]
pub fn relay<C: Ctx>(ctx: &C, s: &Scratch, ifindex: u32, overlay: u32) -> u32 {
    let to = match unsafe { RELAYS.get(&s.key) } {
        Some(r) if r.ifindex == ifindex => RemotePort {
            underlay: r.underlay,
            vni: r.vni,
        },
        _ => return NO_RELAY,
    };
    stats::finish(
        ctx.redirect_tunnel(overlay, &to)
            .map(|()| route::redirected(overlay)),
    )
}

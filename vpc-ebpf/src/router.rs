//! The VPC router pipeline: parse, fragments, ICMP errors, the established
//! fast path, the ingress port and its source check, then a new flow by
//! who sends it (a host, a function, the internet) and where its route
//! leads; across hosts, what arrives through the overlay. Orchestration
//! only: each step is a mechanism's (`ct`, `policy`, `route`, `nat`,
//! `hyperplane`, the gateways, `frag`, `flowlog`, `overlay`).
//!
//! The stages are separate BPF functions (`inline(never)`) so each keeps its
//! own stack frame; they return the final XDP action and count drops
//! themselves, so no aggregate crosses a call.
use vpc_common::{
    addr_space, ct_state, kind, route_kind, CtEntry, DropReason, PortInfo, CT_F_DNAT,
    CT_F_LINKLOCAL, CT_F_SNAT,
};

use crate::{
    allowance, config, ct,
    ctx::{self, Ctx, VERDICT_DETAIL_SHIFT, VERDICT_DROP, VERDICT_NO_TUPLE},
    flowlog, frag, hyperplane, internet_gateway,
    maps::{Scratch, SCRATCH},
    nat, nat_gateway, overlay, parse, policy, port, resolver, route,
    stats::{self, finish},
    trace,
};

/// `tracked` found no live connection.
const UNTRACKED: u32 = u32::MAX;
/// `tracked` found a TCP connection a NAT gateway forgot: `pipeline`
/// answers it with the gateway's RST, from its own frame (as
/// `nat_gateway::HOP`).
const IDLE_RESET: u32 = u32::MAX - 2;

/// The pipeline, and its verdict counted for the port the packet came in
/// on and traced (`vpc trace`): every verdict passes here, once.
#[inline(always)]
pub fn run<C: Ctx>(ctx: &C) -> u32 {
    let verdict = pipeline(ctx);
    let action = ctx::action(verdict);
    let ifindex = ctx.ingress_ifindex();
    stats::port(ifindex, action);
    trace::verdict(ifindex, verdict);
    // Last, where nothing else is live across the call: counting the
    // reason inside `stats::port`, before the trace, measured 20 ns more
    // per established packet in two alternated runs (docs/performance.md).
    if action == VERDICT_DROP {
        stats::port_drop(ifindex, verdict);
    }
    action
}

#[inline(always)]
fn pipeline<C: Ctx>(ctx: &C) -> u32 {
    let s = match SCRATCH.get_ptr_mut(0) {
        Some(s) => unsafe { &mut *s },
        None => return stats::drop(DropReason::CtFull) | VERDICT_NO_TUPLE,
    };
    if let Err(r) = parse::parse(ctx, &mut s.pkt) {
        return stats::drop(r) | VERDICT_NO_TUPLE;
    }
    let ingress = ctx.ingress_ifindex();
    // A packet is in the address space of the port it arrives on; its
    // `PortInfo` is needed only for a new flow (below). From the overlay
    // (another host): in its VNI's space, and as if it arrived on the
    // port its source is behind (`overlay::arrival`).
    let overlay = config::overlay();
    let ifindex = if overlay != 0 && ingress == overlay {
        let port = overlay::arrival(ctx, s);
        if port == overlay::NO_TUNNEL {
            return stats::drop(DropReason::OverlayMalformed);
        }
        port
    } else {
        let p = &s.pkt;
        s.key = ct::key(p, port::space(ingress, p.v6));
        ingress
    };
    let now = ct::now();
    // IPv4 fragments: UDP through a NAT gateway only (see `frag`).
    let frag = s.pkt.frag;
    if frag == parse::FRAG_LATER {
        return frag::later(ctx, s, ifindex, now);
    }
    if frag == parse::FRAG_FIRST && !frag::first(s, ifindex, now) {
        return stats::drop(DropReason::Fragment);
    }
    let p = &s.pkt;
    if p.is_icmp_error() {
        // ICMP errors travel with the connection they quote; one that
        // belongs to none is checked below as any untracked ICMP.
        let action = related(ctx, s, ifindex, now);
        if action != UNTRACKED {
            return action;
        }
    } else {
        // Established traffic first.
        let action = tracked(ctx, s, ifindex, now);
        if action == IDLE_RESET {
            return nat_gateway::idle_reset(ctx, s, ifindex);
        }
        if action != UNTRACKED {
            return action;
        }
    }
    // Untracked here, across hosts: from the overlay, a flow the sending
    // host owns; on a local port, perhaps the answer to one. (Read again,
    // not kept across the calls above.)
    let overlay = config::overlay();
    if overlay != 0 {
        if ctx.ingress_ifindex() == overlay {
            return overlay::arrival_deliver(ctx, s);
        }
        let action = overlay::relay(ctx, s, ifindex, overlay);
        if action != overlay::NO_RELAY {
            return action;
        }
    }
    // A fragment opens no connection.
    if frag != 0 {
        return stats::drop(DropReason::Fragment);
    }
    let port = match port::info(ifindex) {
        Some(port) => port,
        None => return stats::drop(DropReason::UnknownPort),
    };
    // A new flow is judged in its port's own space (`PORTS`, the agent's
    // word), whatever the established path's copy says.
    s.key.space = addr_space(port.vpc, s.pkt.v6) as u16;
    let p = &s.pkt;
    // Source/destination check, as EC2 does for every ENI.
    let own = if p.v6 {
        if port.has_v6 == 0 {
            return stats::drop(DropReason::Spoofed);
        }
        &port.addr6
    } else {
        &port.addr4
    };
    if p.saddr != *own {
        return stats::drop(DropReason::Spoofed);
    }
    let action = if port.kind == kind::EXEC_ENV {
        hyperplane::new_flow(ctx, s, port, ifindex, now)
    } else if port.kind == kind::INTERNET_HOST {
        internet_gateway::from_internet(ctx, s, ifindex, now)
    } else if port.kind == kind::RESOLVER {
        stats::drop(DropReason::ResolverNotDns)
    } else if port.kind == kind::AWS_SERVICE || port.kind == kind::VPC_ENDPOINT {
        // The services only answer: their replies are tracked above.
        stats::drop(DropReason::AwsServiceUnsolicited)
    } else {
        host_flow(ctx, s, port, ifindex, now)
    };
    let action = if action == nat_gateway::HOP {
        nat_gateway::via(ctx, s)
    } else {
        action
    };
    if action == CLASHED {
        return after_clash(ctx, s, ifindex, now);
    }
    action
}

/// The verdict of a new flow whose connection another CPU opened first
/// (`ct::open`); not counted yet.
const CLASHED: u32 = VERDICT_DROP | (DropReason::CtClash as u32) << VERDICT_DETAIL_SHIFT;

/// A packet that lost a clash goes as part of the connection that won
/// (its NAT, where any, applied over the frame's own rewrite: `nat`
/// rewrites from what the frame holds); dropped as `ct_clash` only when
/// that connection is gone again.
#[inline(never)]
fn after_clash<C: Ctx>(ctx: &C, s: &mut Scratch, ifindex: u32, now: u64) -> u32 {
    let action = tracked(ctx, s, ifindex, now);
    if action == UNTRACKED || action == IDLE_RESET {
        return stats::clash_lost();
    }
    action
}

/// A packet of a live tracked connection: update it, apply its NAT, deliver.
#[inline(never)]
fn tracked<C: Ctx>(ctx: &C, s: &mut Scratch, ifindex: u32, now: u64) -> u32 {
    let Some((e, orig)) = ct::entry(&s.key, ifindex) else {
        return UNTRACKED;
    };
    // Reset: nothing after the RST is part of the connection.
    if unsafe { (*orig).state } == ct_state::RESET {
        return UNTRACKED;
    }
    if ct::expired(s.pkt.proto, unsafe { &*orig }, now) {
        if nat_gateway::forgot(&s.pkt, e, orig) {
            return IDLE_RESET;
        }
        return UNTRACKED;
    }
    if !ct::follows(&s.key, &s.pkt, e, orig) {
        return UNTRACKED;
    }
    finish(deliver_tracked(ctx, s, e, orig, now))
}

/// An ICMP error (destination unreachable incl. fragmentation needed, time
/// exceeded; ICMPv6 also packet too big) is related traffic of the
/// connection whose packet it quotes, as in Linux's conntrack, and is
/// forwarded as part of it (`UNTRACKED` when it relates to none: the
/// pipeline then checks it as any untracked ICMP):
///
/// * The quoted packet travelled the other way, so its tuple reversed is
///   the key of the direction the error travels in (a database's error
///   about a function's packet, sent to the ENI's address and NAT port,
///   finds the connection's reply entry). The error must be addressed to
///   the quoted packet's source and arrive on that direction's port, which
///   the entry vouches for as the source check would, from the quoted
///   packet's destination (the peer) or from the interface behind that
///   port itself: an on-path middlebox (a NAT instance, a firewall) that
///   the direction comes through, reporting on the packet it was handed.
///   An expired, reset or stale entry relates nothing.
/// * Security groups: the error passes as part of its tracked connection,
///   whatever the rules (AWS: groups are stateful, responses to allowed
///   traffic are allowed whatever the rules in their direction).
/// * Routes and network ACLs, stateless, apply to the error itself as to
///   every packet of its direction (`recheck`): its route must still be the
///   connection's, and the ACLs of every subnet boundary it crosses (both
///   legs through a NAT gateway) judge its ICMP type and code; a
///   function's side is its ENI, seen before the reverse NAT (AWS: allow
///   type 3 code 4 both ways for path-MTU discovery).
/// * NAT: translated back as the connection's direction is (outer address,
///   then the quote's opposite address and port, every checksum fixed; see
///   `nat::icmp_error`), and delivered where the direction goes.
/// * It does not refresh or change the connection.
#[inline(never)]
fn related<C: Ctx>(ctx: &C, s: &mut Scratch, ifindex: u32, now: u64) -> u32 {
    match related_inner(ctx, s, ifindex, now) {
        Ok(Some(action)) => action,
        Ok(None) => UNTRACKED,
        Err(r) => stats::drop(r),
    }
}

#[inline(always)]
fn related_inner<C: Ctx>(
    ctx: &C,
    s: &mut Scratch,
    ifindex: u32,
    now: u64,
) -> Result<Option<u32>, DropReason> {
    if !parse::quote(ctx, &s.pkt, &mut s.quote)? {
        return Ok(None);
    }
    let (p, q) = (&s.pkt, &s.quote);
    if q.saddr != p.daddr {
        return Ok(None);
    }
    s.reply_key = ct::quoted_key(q, s.key.space);
    let ent = match ct::related(&s.reply_key, ifindex, q.proto, now) {
        Some(e) => e,
        None => return Ok(None),
    };
    // From the peer, or from the interface the direction comes through.
    if q.daddr != p.saddr && !from_port(ifindex, p) {
        return Ok(None);
    }
    let snat = ent.flags & CT_F_SNAT != 0;
    let (nat_addr, nat_port) = (&ent.nat_addr, ent.nat_port);
    recheck(p, ent, snat, config::policy_epoch(), &mut false)?;
    if snat || ent.flags & CT_F_DNAT != 0 {
        nat::icmp_error(ctx, p, q, snat, nat_addr, nat_port)?;
    }
    route::deliver(ctx, ent.out_ifindex, &ent.mac, &ent.router_mac).map(Some)
}

/// Whether `p` comes from the address of the interface behind router port
/// `ifindex` itself (a host's or a middlebox's own).
#[inline(always)]
fn from_port(ifindex: u32, p: &parse::Packet) -> bool {
    match port::info(ifindex) {
        Some(port) if p.v6 => port.has_v6 != 0 && port.addr6 == p.saddr,
        Some(port) => port.addr4 == p.saddr,
        None => false,
    }
}

/// Routes and network ACLs apply to tracked packets too (they are
/// stateless): the route is looked up again for every direction, inside
/// one subnet as well, and the ACLs where the packet crosses a subnet
/// boundary, after SNAT, before the reverse NAT. The verdict is kept per
/// direction with the policy epoch it was reached under: a connection's
/// 5-tuple never changes, so only a policy change can change it, and the
/// next packet after one is judged by it (as at AWS, where a route change
/// applies to existing flows at their next packet). Only a packet that
/// passes refreshes its connection.
#[inline(always)]
fn deliver_tracked<C: Ctx>(
    ctx: &C,
    s: &mut Scratch,
    e: *mut CtEntry,
    orig: *mut CtEntry,
    now: u64,
) -> Result<u32, DropReason> {
    let Scratch { pkt: p, fl_key, .. } = s;
    let p = &*p;
    // Read through the raw pointer: for the original direction `e` and
    // `orig` are one entry, which `ct::update` writes (not these fields).
    let (flags, dir) = unsafe { ((*e).flags, (*e).dir) };
    let snat = flags & CT_F_SNAT != 0;
    let epoch = config::policy_epoch();
    let stamp = epoch.wrapping_add(1);
    // ICMP echo keys leave out the code, which ACLs judge: no verdict is
    // kept for ICMP that crosses a subnet boundary.
    let icmp_acl = p.is_icmp() && unsafe { (*e).src_subnet != (*e).dst_subnet };
    if icmp_acl || unsafe { (*e).acl_gen } != stamp {
        let mut last = false;
        if let Err(r) = recheck(p, unsafe { &*e }, snat, epoch, &mut last) {
            let w = flowlog::reject_window(r);
            if w != 0 && unsafe { (*e).route } == route_kind::NAT_GATEWAY {
                flowlog::reject_nat_tracked(fl_key, p, unsafe { &*e }, last, r, w, now);
            } else if w != 0 {
                let (nat_addr, nat_port) = unsafe { (&(*e).nat_addr, (*e).nat_port) };
                flowlog::reject_tracked(fl_key, p, flags, nat_addr, nat_port, r, w, now);
            }
            return Err(r);
        }
        if !icmp_acl {
            unsafe { (*e).acl_gen = stamp };
        }
    }
    // DNS to the VPC resolver: each packet takes a token of the sender's
    // linklocal allowance (one flag test for every other packet).
    if flags & CT_F_LINKLOCAL != 0 {
        allowance::linklocal(unsafe { (*e).in_ifindex }, now)?;
    }
    ct::update(unsafe { &mut *orig }, p, dir, now);
    let w = config::flow_log_window();
    if w != 0 {
        flowlog::count(unsafe { &mut (*e).fl }, p, w, now);
    }
    let ent = unsafe { &*e };
    if snat {
        nat::rewrite(ctx, p, true, &ent.nat_addr, ent.nat_port)?;
    } else if flags & CT_F_DNAT != 0 {
        nat::rewrite(ctx, p, false, &ent.nat_addr, ent.nat_port)?;
    }
    let action = route::deliver(ctx, ent.out_ifindex, &ent.mac, &ent.router_mac)?;
    stats::eni_forwarded(ent.eni);
    // Through a NAT gateway: the function's ENI forwarded it too.
    if ent.fn_eni != 0 {
        stats::eni_forwarded(ent.fn_eni);
    }
    Ok(action)
}

/// A tracked direction's route and ACLs under policy `epoch`. Routing is
/// stateless too: the route this direction took when the connection
/// opened must still be the one that matches, to the same target: the
/// same middlebox (a route moved to another instance or interface, a
/// firewall's fail-over, leads to one that never saw the connection:
/// `ct_invalid`, as for a route moved to another NAT gateway). A direction
/// from the internet (no subnet) is served while its host's subnet routes
/// the peer to the gateway. The ACLs apply where the direction crosses a
/// subnet boundary; the customer-side source of a NATed connection is its
/// ENI.
#[inline(always)]
fn recheck(
    p: &parse::Packet,
    ent: &CtEntry,
    snat: bool,
    epoch: u32,
    last: &mut bool,
) -> Result<(), DropReason> {
    if ent.route == route_kind::NAT_GATEWAY {
        // Two legs, through the gateway's subnet.
        return nat_gateway::recheck(p, ent, epoch & 1, last);
    }
    let (src, dst) = (ent.src_subnet as u32, ent.dst_subnet as u32);
    // Between two hosts of the internet: no VPC's route or ACL to ask.
    if src == 0 && dst == 0 {
        return Ok(());
    }
    let (rsub, raddr) = if src == 0 {
        (dst, &p.saddr)
    } else {
        (src, &p.daddr)
    };
    let r = route::lookup(epoch & 1, rsub, p.v6, raddr)?;
    if r.kind != ent.route {
        return Err(route::refused(r.kind));
    }
    // The middlebox is in the VPC of the port the direction goes out of.
    if r.kind == route_kind::NETWORK_INTERFACE {
        let vpc = match port::info(ent.out_ifindex) {
            Some(port) => port.vpc,
            None => return Err(DropReason::CtInvalid),
        };
        if route::middlebox(vpc, r.id)?.ifindex != ent.out_ifindex {
            return Err(DropReason::CtInvalid);
        }
    }
    if src == dst {
        return Ok(());
    }
    let src_addr = if snat { &ent.nat_addr } else { &p.saddr };
    policy::boundary(p, epoch & 1, src, dst, src_addr, &p.daddr)
}

/// A new flow from an instance or network interface in a customer VPC.
#[inline(never)]
fn host_flow<C: Ctx>(ctx: &C, s: &mut Scratch, port: &PortInfo, ifindex: u32, now: u64) -> u32 {
    match host_flow_inner(ctx, s, port, ifindex, now) {
        Ok(action) => action,
        Err(r) => {
            let w = flowlog::reject_window(r);
            if w != 0 {
                let Scratch { pkt: p, fl_key, .. } = s;
                flowlog::reject_packet(fl_key, p, r, w, now);
            }
            stats::drop(r)
        }
    }
}

#[inline(always)]
fn host_flow_inner<C: Ctx>(
    ctx: &C,
    s: &mut Scratch,
    port: &PortInfo,
    ifindex: u32,
    now: u64,
) -> Result<u32, DropReason> {
    let p = &s.pkt;
    let epoch = config::policy_epoch();
    let r = route::lookup(epoch & 1, port.subnet, p.v6, &p.daddr)?;
    let ep = match r.kind {
        route_kind::LOCAL => route::endpoint(s.key.space as u32, &p.daddr)?,
        route_kind::GATEWAY_ENDPOINT => route::gateway_service(&p.daddr)?,
        route_kind::NETWORK_INTERFACE => route::middlebox(port.vpc, r.id)?,
        route_kind::INTERNET_GATEWAY | route_kind::EGRESS_ONLY_INTERNET_GATEWAY => {
            return internet_gateway::to_internet(ctx, s, port, ifindex, now, epoch, r.kind)
        }
        route_kind::NAT_GATEWAY => {
            return Ok(nat_gateway::hop(
                &mut s.hop,
                r.id,
                ifindex,
                epoch,
                port.subnet,
                now,
                &port.policy,
                &s.pkt.saddr,
            ))
        }
        k => return Err(route::refused(k)),
    };
    route::endpoint_allowed(r.kind, ep, port.vpc)?;
    if ep.kind == kind::EXEC_ENV {
        return Err(DropReason::NoRoute);
    }
    if ep.kind == kind::HYPERPLANE_ENI {
        // V2N is outbound only: nothing opens a connection to a Hyperplane ENI.
        return Err(DropReason::HyperplaneUnsolicited);
    }
    let track = !p.is_icmp() || p.is_echo_request();
    if track && !ct::opens(p) {
        return Err(DropReason::CtInvalid);
    }
    let unfiltered = resolver::unfiltered(p, ep)?;
    if unfiltered {
        allowance::linklocal(ifindex, now)?;
    } else {
        policy::admit(p, epoch, &port.policy, port.subnet, ep, &p.saddr)?;
    }
    // Other ICMP (errors, ...) is checked against the groups but not tracked.
    if track {
        s.reply_key = ct::reply_key(&s.key, p.is_icmp());
        // Replies arrive in the receiver's space (a gateway endpoint's
        // service is in the global one).
        s.reply_key.space = addr_space(ep.vpc, p.v6) as u16;
        ct::bind(s, ifindex, ep, port.subnet, epoch, r.kind)?;
        s.orig.flags = 0;
        s.reply.flags = 0;
        if unfiltered {
            resolver::local_to_sender(s);
        }
        ct::no_eni(s);
        ct::open(s, now)?;
    }
    route::deliver_to(ctx, ep)
}

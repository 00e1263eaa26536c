//! The VPC router pipeline: parse, classify the ingress port, connection
//! tracking, security groups, Hyperplane NAT, delivery.
//!
//! The stages are separate BPF functions (`inline(never)`) so each keeps its
//! own stack frame; they return the final XDP action and count drops
//! themselves, so no aggregate crosses a call.
use aya_ebpf::{bindings::BPF_NOEXIST, programs::XdpContext};
use vpc_common::{
    kind, CtKey, DropReason, PortInfo, CT_DIR_ORIG, CT_DIR_REPLY, CT_F_DNAT, CT_F_SNAT, DIR_EGRESS,
    DIR_INGRESS, NAT_PORT_MAX, NAT_PORT_MIN, NAT_PORT_TRIES,
};

use crate::{
    ct,
    maps::{Scratch, CT, ENIS, PORTS, SCRATCH},
    nat,
    parse::{self, Packet, IPPROTO_TCP, IPPROTO_UDP},
    policy, route, stats,
};

/// `tracked` found no live connection.
const UNTRACKED: u32 = u32::MAX;

#[inline(always)]
fn finish(r: Result<u32, DropReason>) -> u32 {
    match r {
        Ok(action) => action,
        Err(reason) => stats::drop(reason),
    }
}

#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    let s = match SCRATCH.get_ptr_mut(0) {
        Some(s) => unsafe { &mut *s },
        None => return stats::drop(DropReason::CtFull),
    };
    if let Err(r) = parse::parse(ctx, &mut s.pkt) {
        return stats::drop(r);
    }
    let ifindex = ctx.ingress_ifindex() as u32;
    let port = match unsafe { PORTS.get(&ifindex) } {
        Some(port) => port,
        None => return stats::drop(DropReason::UnknownPort),
    };
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
    s.key = CtKey {
        saddr: p.saddr,
        daddr: p.daddr,
        sport: p.sport,
        dport: p.dport,
        proto: p.proto,
        _pad: [0; 3],
    };
    let now = ct::now();
    let action = tracked(ctx, s, now);
    if action != UNTRACKED {
        return action;
    }
    if port.kind == kind::EXEC_ENV {
        function_flow(ctx, s, port, now)
    } else {
        host_flow(ctx, s, port, now)
    }
}

/// A packet of a live tracked connection: update it, apply its NAT, deliver.
#[inline(never)]
fn tracked(ctx: &XdpContext, s: &mut Scratch, now: u64) -> u32 {
    let e = match CT.get_ptr_mut(&s.key) {
        Some(e) => unsafe { &mut *e },
        None => return UNTRACKED,
    };
    let p = &s.pkt;
    let dir = e.dir;
    let orig = if dir == CT_DIR_ORIG {
        &mut *e
    } else {
        match CT.get_ptr_mut(&e.twin) {
            Some(o) => unsafe { &mut *o },
            None => return UNTRACKED,
        }
    };
    if ct::expired(p.proto, orig, now) {
        return UNTRACKED;
    }
    ct::update(orig, p, dir, now);
    finish(deliver_tracked(ctx, s, e))
}

#[inline(always)]
fn deliver_tracked(
    ctx: &XdpContext,
    s: &Scratch,
    e: &vpc_common::CtEntry,
) -> Result<u32, DropReason> {
    let p = &s.pkt;
    let daddr = if e.flags & CT_F_SNAT != 0 {
        nat::rewrite(ctx, p, true, &e.nat_addr, e.nat_port)?;
        &p.daddr
    } else if e.flags & CT_F_DNAT != 0 {
        nat::rewrite(ctx, p, false, &e.nat_addr, e.nat_port)?;
        &e.nat_addr
    } else {
        &p.daddr
    };
    route::deliver(ctx, route::endpoint(daddr)?)
}

/// The sender's outbound rules, then the receiver's inbound rules (which see
/// `src`: the sender's address after any NAT).
#[inline(always)]
fn groups(p: &Packet, sender: u32, receiver: u32, src: &[u8; 16]) -> Result<(), DropReason> {
    let port = p.policy_port();
    if !policy::allowed(sender, DIR_EGRESS, p.v6, &p.daddr, p.proto, port) {
        return Err(DropReason::SgEgressDenied);
    }
    if !policy::allowed(receiver, DIR_INGRESS, p.v6, src, p.proto, port) {
        return Err(DropReason::SgIngressDenied);
    }
    Ok(())
}

/// A new flow from an instance or network interface in a customer VPC.
#[inline(never)]
fn host_flow(ctx: &XdpContext, s: &mut Scratch, port: &PortInfo, now: u64) -> u32 {
    finish(host_flow_inner(ctx, s, port, now))
}

#[inline(always)]
fn host_flow_inner(
    ctx: &XdpContext,
    s: &mut Scratch,
    port: &PortInfo,
    now: u64,
) -> Result<u32, DropReason> {
    let p = &s.pkt;
    let ep = route::endpoint(&p.daddr)?;
    if ep.vpc != port.vpc || ep.kind == kind::EXEC_ENV {
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
    groups(p, port.policy, ep.policy, &p.saddr)?;
    // Other ICMP (errors, ...) is checked against the groups but not tracked.
    if track {
        s.reply_key = ct::reply_key(&s.key, p.is_icmp());
        s.orig.flags = 0;
        s.reply.flags = 0;
        open(s, now)?;
    }
    route::deliver(ctx, ep)
}

/// A new flow from a Lambda execution environment: out through its
/// function's Hyperplane ENI with source NAT.
#[inline(never)]
fn function_flow(ctx: &XdpContext, s: &mut Scratch, port: &PortInfo, now: u64) -> u32 {
    finish(function_flow_inner(ctx, s, port, now))
}

#[inline(always)]
fn function_flow_inner(
    ctx: &XdpContext,
    s: &mut Scratch,
    port: &PortInfo,
    now: u64,
) -> Result<u32, DropReason> {
    let p = &s.pkt;
    if p.proto != IPPROTO_TCP && p.proto != IPPROTO_UDP {
        return Err(DropReason::FunctionProtocol);
    }
    let eni = match unsafe { ENIS.get(&port.eni) } {
        Some(e) => e,
        None => return Err(DropReason::NoRoute),
    };
    if p.v6 && eni.has_v6 == 0 {
        return Err(DropReason::NoRoute);
    }
    let ep = route::endpoint(&p.daddr)?;
    if ep.vpc != eni.vpc || ep.kind != kind::HOST {
        return Err(DropReason::NoRoute);
    }
    if !ct::opens(p) {
        return Err(DropReason::CtInvalid);
    }
    let eni_addr = p.pick(&eni.addr6, &eni.addr4);
    groups(p, eni.policy, ep.policy, eni_addr)?;
    s.orig.flags = CT_F_SNAT;
    s.orig.nat_addr = *eni_addr;
    s.reply.flags = CT_F_DNAT;
    s.reply.nat_addr = p.saddr;
    s.reply.nat_port = p.sport;
    s.reply_key = CtKey {
        saddr: p.daddr,
        daddr: *eni_addr,
        sport: p.dport,
        dport: 0,
        proto: p.proto,
        _pad: [0; 3],
    };
    // Random start, bounded probing: inserting the reply key claims the port.
    let range = (NAT_PORT_MAX - NAT_PORT_MIN) as u32 + 1;
    let start = unsafe { aya_ebpf::helpers::bpf_get_prandom_u32() };
    let mut i = 0;
    while i < NAT_PORT_TRIES {
        let nat_port = ((NAT_PORT_MIN as u32 + (start.wrapping_add(i) % range)) as u16).to_be();
        s.reply_key.dport = nat_port;
        s.orig.nat_port = nat_port;
        if open(s, now)? {
            nat::rewrite(ctx, &s.pkt, true, &s.orig.nat_addr, nat_port)?;
            return route::deliver(ctx, ep);
        }
        i += 1;
    }
    Err(DropReason::NatPortExhausted)
}

/// Inserts both entries of a new connection from `s` (flags and NAT fields
/// already set). With NAT the reply entry goes in first with `BPF_NOEXIST`,
/// so the port is claimed atomically; `Ok(false)` when it is taken.
#[inline(always)]
fn open(s: &mut Scratch, now: u64) -> Result<bool, DropReason> {
    let state = ct::initial_state(&s.pkt);
    for (e, dir, twin) in [
        (&mut s.orig, CT_DIR_ORIG, &s.reply_key),
        (&mut s.reply, CT_DIR_REPLY, &s.key),
    ] {
        e.last_seen = now;
        e.created = now;
        e.state = state;
        e.dir = dir;
        e.packets_orig = if dir == CT_DIR_ORIG { 1 } else { 0 };
        e.packets_reply = 0;
        e.twin = *twin;
    }
    let nat = s.reply.flags & CT_F_DNAT != 0;
    let flags = if nat { BPF_NOEXIST as u64 } else { 0 };
    if CT.insert(&s.reply_key, &s.reply, flags).is_err() {
        return if nat {
            Ok(false)
        } else {
            Err(DropReason::CtFull)
        };
    }
    if CT.insert(&s.key, &s.orig, 0).is_err() {
        let _ = CT.remove(&s.reply_key);
        return Err(DropReason::CtFull);
    }
    Ok(true)
}

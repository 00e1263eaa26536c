//! The VPC router pipeline: parse, classify the ingress port, connection
//! tracking, security groups, Hyperplane NAT, delivery.
//!
//! The stages are separate BPF functions (`inline(never)`) so each keeps its
//! own stack frame; they return the final XDP action and count drops
//! themselves, so no aggregate crosses a call.
use aya_ebpf::{bindings::BPF_NOEXIST, programs::XdpContext};
use vpc_common::{
    cfg, for_gen, kind, subnet_acl_index, CtEntry, CtKey, DropReason, Endpoint, PortInfo,
    CT_DIR_ORIG, CT_DIR_REPLY, CT_F_DNAT, CT_F_SNAT, DIR_EGRESS, DIR_INGRESS, NAT_PORT_MAX,
    NAT_PORT_MIN, NAT_PORT_TRIES,
};

use crate::{
    ct,
    maps::{Scratch, CONFIG, CT, ENIS, PORTS, SCRATCH, SUBNET_ACLS},
    nat,
    parse::{self, Packet, IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_SYN},
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
        _pad0: 0,
        _pad1: 0,
    };
    let now = ct::now();
    let action = tracked(ctx, s, port, now);
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
fn tracked(ctx: &XdpContext, s: &mut Scratch, port: &PortInfo, now: u64) -> u32 {
    // Raw pointers: for the original direction `e` and `orig` are one entry.
    let e = match CT.get_ptr_mut(&s.key) {
        Some(e) => e,
        None => return UNTRACKED,
    };
    let orig = if unsafe { (*e).dir } == CT_DIR_ORIG {
        e
    } else {
        match CT.get_ptr_mut(unsafe { &(*e).twin }) {
            Some(o) => o,
            None => return UNTRACKED,
        }
    };
    if ct::expired(s.pkt.proto, unsafe { &*orig }, now) {
        return UNTRACKED;
    }
    let dir = unsafe { (*e).dir };
    // A reply entry left behind by an earlier connection on the same
    // tuple (its original now belongs to a new one) is not followed.
    if dir != CT_DIR_ORIG && unsafe { (*orig).twin } != s.key {
        return UNTRACKED;
    }
    // A new handshake is a new connection, checked as one: a SYN on a
    // closed entry (port reuse) or against the reply direction.
    let p = &s.pkt;
    if p.proto == IPPROTO_TCP
        && p.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
        && (dir != CT_DIR_ORIG || unsafe { (*orig).state } == vpc_common::ct_state::CLOSED)
    {
        return UNTRACKED;
    }
    finish(deliver_tracked(ctx, s, port, e, orig, now))
}

/// Network ACLs apply to tracked packets too (they are stateless), as the
/// packet crosses the subnet boundary: after SNAT, before the reverse NAT.
/// Only a packet that passes them refreshes its connection.
#[inline(always)]
fn deliver_tracked(
    ctx: &XdpContext,
    s: &Scratch,
    port: &PortInfo,
    e: *const CtEntry,
    orig: *mut CtEntry,
    now: u64,
) -> Result<u32, DropReason> {
    let p = &s.pkt;
    let e = unsafe { &*e };
    let snat = e.flags & CT_F_SNAT != 0;
    let dnat = e.flags & CT_F_DNAT != 0;
    let ep = route::endpoint(if dnat { &e.nat_addr } else { &p.daddr })?;
    // The customer-side end of a NATed connection is its ENI's subnet.
    let (src, src_addr, dst) = if snat {
        (e.eni_subnet as u32, &e.nat_addr, ep.subnet)
    } else if dnat {
        (port.subnet, &p.saddr, e.eni_subnet as u32)
    } else {
        (port.subnet, &p.saddr, ep.subnet)
    };
    // Only a packet that crosses a subnet boundary needs the policy generation.
    if src != dst {
        boundary(p, generation(), src, dst, src_addr, &p.daddr)?;
    }
    let (dir, nat_addr, nat_port) = (e.dir, e.nat_addr, e.nat_port);
    ct::update(unsafe { &mut *orig }, p, dir, now);
    if snat {
        nat::rewrite(ctx, p, true, &nat_addr, nat_port)?;
    } else if dnat {
        nat::rewrite(ctx, p, false, &nat_addr, nat_port)?;
    }
    route::deliver(ctx, ep)
}

/// The policy generation in force. Read once per packet: every policy
/// lookup of a packet uses the value its caller read.
#[inline(always)]
fn generation() -> u32 {
    (CONFIG.get(cfg::GENERATION).copied().unwrap_or(0) & 1) as u32
}

/// Network ACLs at a subnet boundary: the ACL of the subnet the packet
/// leaves (outbound rules, peer = destination), then the one it enters
/// (inbound rules, peer = source). Inside one subnet they do not apply.
/// Sides are subnet indexes; their ACLs come from `SUBNET_ACLS` (0 allows
/// everything and is not looked up).
#[inline(always)]
fn boundary(
    p: &Packet,
    gen: u32,
    src: u32,
    dst: u32,
    src_addr: &[u8; 16],
    dst_addr: &[u8; 16],
) -> Result<(), DropReason> {
    if src == dst {
        return Ok(());
    }
    let acl_of = |subnet: u32| {
        SUBNET_ACLS
            .get(subnet_acl_index(gen, subnet))
            .copied()
            .unwrap_or(0)
    };
    let port = p.policy_port();
    let out = acl_of(src);
    if out != 0 && !policy::acl_allows(out, DIR_EGRESS, p.v6, dst_addr, p.proto, port) {
        return Err(DropReason::NaclEgressDenied);
    }
    let inn = acl_of(dst);
    if inn != 0 && !policy::acl_allows(inn, DIR_INGRESS, p.v6, src_addr, p.proto, port) {
        return Err(DropReason::NaclIngressDenied);
    }
    Ok(())
}

/// A new connection's checks, in AWS's order: the sender's outbound group
/// rules, the ACLs at the subnet boundary, the receiver's inbound group rules
/// (which see `src`: the sender's address after any NAT). `from` is the
/// sender's subnet index. One generation read serves every check.
#[inline(always)]
fn admit(
    p: &Packet,
    sender: &[u32; 2],
    from: u32,
    receiver: &Endpoint,
    src: &[u8; 16],
) -> Result<(), DropReason> {
    let gen = generation();
    let port = p.policy_port();
    if !policy::allowed(
        for_gen(sender, gen),
        DIR_EGRESS,
        p.v6,
        &p.daddr,
        p.proto,
        port,
    ) {
        return Err(DropReason::SgEgressDenied);
    }
    boundary(p, gen, from, receiver.subnet, src, &p.daddr)?;
    let inbound = for_gen(&receiver.policy, gen);
    if !policy::allowed(inbound, DIR_INGRESS, p.v6, src, p.proto, port) {
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
    admit(p, &port.policy, port.subnet, ep, &p.saddr)?;
    // Other ICMP (errors, ...) is checked against the groups but not tracked.
    if track {
        s.reply_key = ct::reply_key(&s.key, p.is_icmp());
        s.orig.flags = 0;
        s.reply.flags = 0;
        s.orig.eni = 0;
        s.reply.eni = 0;
        s.orig.eni_subnet = 0;
        s.reply.eni_subnet = 0;
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
    admit(p, &eni.policy, eni.subnet, ep, eni_addr)?;
    s.orig.eni = port.eni as u16;
    s.reply.eni = port.eni as u16;
    s.orig.eni_subnet = eni.subnet as u16;
    s.reply.eni_subnet = eni.subnet as u16;
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
        _pad0: 0,
        _pad1: 0,
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
        e.bytes_orig = if dir == CT_DIR_ORIG { s.pkt.ip_len as u64 } else { 0 };
        e.bytes_reply = 0;
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

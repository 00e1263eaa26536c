//! Connection tracking: the lookup of a packet's connection, the state
//! machine and idle timeouts, and a new connection's two entries
//! (`bind`, `open`).
use aya_ebpf::bindings::BPF_NOEXIST;
use vpc_common::{
    cfg, ct_state, kind, route_kind, CtEntry, CtKey, DropReason, Endpoint, CT_DIR_ORIG,
    CT_DIR_REPLY, CT_F_DNAT, CT_F_FIN_ORIG, CT_F_FIN_REPLY,
};

use crate::{
    allowance, config,
    copy::copy_mac,
    flowlog,
    maps::{Scratch, CT},
    parse::{
        Packet, Quote, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_FIN,
        TCP_RST, TCP_SYN,
    },
    route,
};

/// CLOCK_MONOTONIC at tick resolution: idle timeouts are seconds, and the
/// coarse clock costs a load where the precise one reads the TSC. Plus
/// what a test clock was moved by (`cfg::CLOCK_OFFSET`, 0 on a real one).
#[inline(always)]
pub fn now() -> u64 {
    let t = unsafe { aya_ebpf::helpers::bpf_ktime_get_coarse_ns() };
    t.wrapping_add(config::get(cfg::CLOCK_OFFSET))
}

/// Idle timeout of a connection in its current state.
#[inline(always)]
pub fn timeout(proto: u8, e: &CtEntry) -> u64 {
    let idx = match proto {
        IPPROTO_TCP => match e.state {
            ct_state::ESTABLISHED => cfg::TCP_ESTABLISHED,
            ct_state::CLOSING => cfg::TCP_CLOSING,
            ct_state::CLOSED => cfg::TCP_CLOSED,
            // After a RST the connection is gone at once.
            ct_state::RESET => return 0,
            _ => cfg::TCP_SYN,
        },
        IPPROTO_UDP => {
            if e.packets_orig >= 2 && e.packets_reply >= 2 {
                cfg::UDP_STREAM
            } else {
                cfg::UDP
            }
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => cfg::ICMP,
        _ => cfg::OTHER,
    };
    let t = config::get(idx);
    // A NAT gateway, and an interface endpoint, forget a connection idle
    // for their own timeout.
    let own = if e.route == route_kind::NAT_GATEWAY {
        config::get(cfg::NAT_GATEWAY_IDLE)
    } else if e.peer == kind::VPC_ENDPOINT {
        config::get(cfg::ENDPOINT_IDLE)
    } else {
        0
    };
    if own != 0 && own < t {
        return own;
    }
    t
}

#[inline(always)]
pub fn expired(proto: u8, e: &CtEntry, now: u64) -> bool {
    now.saturating_sub(e.last_seen) > timeout(proto, e)
}

/// Whether the connection of original entry `e` is over: reset, or idle
/// past its timeout (a RST in this very tick is not yet past zero).
#[inline(always)]
pub fn over(proto: u8, e: &CtEntry, now: u64) -> bool {
    e.state == ct_state::RESET || expired(proto, e, now)
}

/// The key of packet `p`'s direction, in address space `space` (its
/// arrival port's).
#[inline(always)]
pub fn key(p: &Packet, space: u32) -> CtKey {
    CtKey {
        saddr: p.saddr,
        daddr: p.daddr,
        sport: p.sport,
        dport: p.dport,
        proto: p.proto,
        _pad0: 0,
        space: space as u16,
    }
}

/// Key of the reply direction as it will arrive at the router.
#[inline(always)]
pub fn reply_key(k: &CtKey, icmp: bool) -> CtKey {
    CtKey {
        saddr: k.daddr,
        daddr: k.saddr,
        // ICMP echo: same identifier, and the reply's type (0 / 129).
        sport: if icmp { k.sport } else { k.dport },
        dport: if icmp {
            echo_reply_type(k.dport)
        } else {
            k.sport
        },
        proto: k.proto,
        _pad0: 0,
        space: k.space,
    }
}

/// The echo reply type for an echo request type held in a key's `dport`.
#[inline(always)]
fn echo_reply_type(request: u16) -> u16 {
    if request == 128 {
        129
    } else {
        0
    }
}

/// Does this packet open a new connection of its protocol?
#[inline(always)]
pub fn opens(p: &Packet) -> bool {
    match p.proto {
        IPPROTO_TCP => p.tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN,
        IPPROTO_ICMP | IPPROTO_ICMPV6 => p.is_echo_request(),
        _ => true,
    }
}

/// Advances the original-direction entry `e` for a packet seen in `dir`.
/// A closed connection (both FINs) counts its packets but is not refreshed
/// by them: its short timeout runs from the moment it closed, as TIME_WAIT
/// does, whatever its peers still send. A RST ends it (`RESET`): nothing
/// after it is forwarded as part of it.
#[inline(always)]
pub fn update(e: &mut CtEntry, p: &Packet, dir: u8, now: u64) {
    if e.state != ct_state::CLOSED {
        e.last_seen = now;
    }
    if dir == CT_DIR_ORIG {
        e.packets_orig = e.packets_orig.wrapping_add(p.segs);
        e.bytes_orig = e.bytes_orig.wrapping_add(p.ip_len as u64);
    } else {
        e.packets_reply = e.packets_reply.wrapping_add(p.segs);
        e.bytes_reply = e.bytes_reply.wrapping_add(p.ip_len as u64);
    }
    if p.proto != IPPROTO_TCP {
        return;
    }
    let f = p.tcp_flags;
    if f & TCP_RST != 0 {
        e.state = ct_state::RESET;
        return;
    }
    if e.state == ct_state::SYN_SENT
        && dir != CT_DIR_ORIG
        && f & (TCP_SYN | TCP_ACK) == (TCP_SYN | TCP_ACK)
    {
        e.state = ct_state::ESTABLISHED;
    }
    if f & TCP_FIN != 0 {
        e.flags |= if dir == CT_DIR_ORIG {
            CT_F_FIN_ORIG
        } else {
            CT_F_FIN_REPLY
        };
        e.state = if e.flags & (CT_F_FIN_ORIG | CT_F_FIN_REPLY) == (CT_F_FIN_ORIG | CT_F_FIN_REPLY)
        {
            ct_state::CLOSED
        } else {
            ct_state::CLOSING
        };
    }
}

/// State of a connection opened by `p`.
#[inline(always)]
pub fn initial_state(p: &Packet) -> u8 {
    if p.proto == IPPROTO_TCP {
        ct_state::SYN_SENT
    } else {
        ct_state::NEW
    }
}

/// The entry of `key` if it names `ifindex` as the port its direction
/// arrives on (its key holds the source address, so a match is a packet
/// the source check admitted when the connection opened), and its
/// connection's original entry: raw pointers, for the original direction
/// they are one entry.
#[inline(always)]
pub fn entry(key: &CtKey, ifindex: u32) -> Option<(*mut CtEntry, *mut CtEntry)> {
    let e = CT.get_ptr_mut(key)?;
    if unsafe { (*e).in_ifindex } != ifindex {
        return None;
    }
    if unsafe { (*e).dir } == CT_DIR_ORIG {
        return Some((e, e));
    }
    let orig = CT.get_ptr_mut(unsafe { &(*e).twin })?;
    Some((e, orig))
}

/// Whether `p`, found at its live entry `e` (original `orig`), goes on as
/// a packet of that connection. Not when the entry is a reply entry left
/// behind by an earlier connection on the same tuple (its original now
/// belongs to a new one), nor for a new handshake, which is a new
/// connection, checked as one and replacing this one: a SYN on a closing
/// or closed entry (port reuse, as Linux's conntrack reopens a tuple in
/// TIME_WAIT) or against the reply direction.
#[inline(always)]
pub fn follows(key: &CtKey, p: &Packet, e: *mut CtEntry, orig: *mut CtEntry) -> bool {
    let dir = unsafe { (*e).dir };
    if dir != CT_DIR_ORIG && unsafe { (*orig).twin } != *key {
        return false;
    }
    let state = unsafe { (*orig).state };
    !(p.proto == IPPROTO_TCP
        && p.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
        && (dir != CT_DIR_ORIG || state == ct_state::CLOSING || state == ct_state::CLOSED))
}

/// The key of the direction an ICMP error about the quoted packet `q`
/// travels in: the quote's tuple reversed, in the error's own address
/// space `space`.
#[inline(always)]
pub fn quoted_key(q: &Quote, space: u16) -> CtKey {
    CtKey {
        saddr: q.daddr,
        daddr: q.saddr,
        sport: q.dport,
        dport: q.sport,
        proto: q.proto,
        _pad0: 0,
        space,
    }
}

/// The live entry of `key` for an ICMP error arriving on `ifindex` about a
/// packet of protocol `proto`; not a stale reply entry, not an expired
/// connection.
#[inline(always)]
pub fn related(key: &CtKey, ifindex: u32, proto: u8, now: u64) -> Option<&'static CtEntry> {
    let ent = unsafe { CT.get(key) }?;
    if ent.in_ifindex != ifindex {
        return None;
    }
    let orig = if ent.dir == CT_DIR_ORIG {
        ent
    } else {
        match unsafe { CT.get(&ent.twin) } {
            Some(o) if o.twin == *key => o,
            _ => return None,
        }
    };
    if over(proto, orig, now) {
        return None;
    }
    Some(ent)
}

/// Forwarding and ACL-boundary state of both directions of a new
/// connection from subnet index `from` to `ep`, whose checks passed under
/// `epoch`, by a route of kind `route` (kept for re-routing after a policy
/// change). Replies leave by the port the opening packet came in on, to the
/// sender's MAC as the VPC knows it (its endpoint entry, found by the
/// source address the source check admitted).
#[inline(always)]
pub fn bind(
    s: &mut Scratch,
    ifindex: u32,
    ep: &Endpoint,
    from: u32,
    epoch: u32,
    route: u8,
) -> Result<(), DropReason> {
    let sender = route::endpoint(s.key.space as u32, &s.pkt.saddr)?;
    let (o, r) = (&mut s.orig, &mut s.reply);
    o.in_ifindex = ifindex;
    o.out_ifindex = ep.ifindex;
    copy_mac(&mut o.mac, &ep.mac);
    copy_mac(&mut o.router_mac, &ep.router_mac);
    o.src_subnet = from as u16;
    o.dst_subnet = ep.subnet as u16;
    o.acl_gen = epoch.wrapping_add(1);
    o.route = route;
    // Set by `nat_gateway` for a function's connection only.
    (o.fn_eni, o.fn_eni_port, r.fn_eni, r.fn_eni_port) = (0, 0, 0, 0);
    o.peer = ep.kind;
    r.peer = ep.kind;
    r.in_ifindex = ep.ifindex;
    r.out_ifindex = ifindex;
    copy_mac(&mut r.mac, &sender.mac);
    copy_mac(&mut r.router_mac, &sender.router_mac);
    r.src_subnet = ep.subnet as u16;
    r.dst_subnet = from as u16;
    // Not `epoch + 1`, whatever the epoch: the first reply is checked.
    r.acl_gen = epoch;
    // A middlebox's answer is routed by its own subnet's table: locally.
    r.route = if route == route_kind::NETWORK_INTERFACE {
        route_kind::LOCAL
    } else {
        route
    };
    Ok(())
}

/// Not a NATed connection: no ENI, no NAT port claim.
#[inline(always)]
pub fn no_eni(s: &mut Scratch) {
    s.orig.eni = 0;
    s.reply.eni = 0;
    s.orig.eni_subnet = 0;
    s.reply.eni_subnet = 0;
}

/// Inserts both entries of a new connection from `s` (flags and NAT fields
/// already set), charged to the port it was opened from (its conntrack
/// allowance). What it replaces goes first:
///
/// * at its own key, an earlier connection on the same tuple (closed,
///   expired, or the other way round): removed, and its port's count taken
///   back;
/// * at its reply key, that earlier connection's reply entry (the same
///   tuple through a translation that keeps the ports, as the internet
///   gateway's 1:1 NAT does): removed, so the reopened tuple is not refused
///   until the GC collects it; or, for a connection without a claimed NAT
///   port, a connection the other way round, whose original entry it is:
///   removed and taken back, as it would be overwritten.
///
/// The reply entry then goes in first, with `BPF_NOEXIST` for a NATed
/// connection: its port is already claimed (`NAT_PORTS`), so its reply key
/// is new, and a host connection must not take over the reply entry of a
/// live connection of another tuple.
#[inline(always)]
pub fn open(s: &mut Scratch, now: u64) -> Result<(), DropReason> {
    let state = initial_state(&s.pkt);
    for (e, dir, twin) in [
        (&mut s.orig, CT_DIR_ORIG, &s.reply_key),
        (&mut s.reply, CT_DIR_REPLY, &s.key),
    ] {
        e.last_seen = now;
        e.created = now;
        e.state = state;
        e.dir = dir;
        let (packets, bytes) = if dir == CT_DIR_ORIG {
            (s.pkt.segs, s.pkt.ip_len as u64)
        } else {
            (0, 0)
        };
        // Volatile: LLVM would merge the zeros into a `memset` call, a byte
        // loop in BPF.
        unsafe {
            core::ptr::write_volatile(&mut e.packets_orig, packets);
            core::ptr::write_volatile(&mut e.packets_reply, 0);
            core::ptr::write_volatile(&mut e.bytes_orig, bytes);
            core::ptr::write_volatile(&mut e.bytes_reply, 0);
        }
        e.twin = *twin;
        flowlog::clear(&mut e.fl);
    }
    let w = config::flow_log_window();
    let nat = s.reply.flags & CT_F_DNAT != 0;
    // No entry was at the key when the pipeline looked: one is only there
    // now if another CPU opened it meanwhile (a clash, below).
    let mut orig_flags = BPF_NOEXIST as u64;
    if let Some(old) = CT.get_ptr(&s.key) {
        let old = unsafe { &*old };
        if old.dir == CT_DIR_ORIG && clashes(s, old, now) {
            return Err(DropReason::CtClash);
        }
        if w != 0 {
            flowlog::carry(&mut s.orig.fl, old);
        }
        if old.dir == CT_DIR_ORIG {
            evict(&s.key, old.in_ifindex);
        } else {
            // The reply entry of a connection the other way round.
            orig_flags = 0;
        }
    }
    if let Some(old) = CT.get_ptr(&s.reply_key) {
        let old = unsafe { &*old };
        if w != 0 {
            flowlog::carry(&mut s.reply.fl, old);
        }
        if old.dir != CT_DIR_ORIG {
            if old.twin == s.key {
                let _ = CT.remove(&s.reply_key);
            }
        } else if !nat {
            evict(&s.reply_key, old.in_ifindex);
        }
    }
    if w != 0 {
        flowlog::count(&mut s.orig.fl, &s.pkt, w, now);
    }
    let from = s.orig.in_ifindex;
    allowance::admit_connection(from)?;
    let flags = if nat { BPF_NOEXIST as u64 } else { 0 };
    if CT.insert(&s.reply_key, &s.reply, flags).is_err() {
        allowance::release_connection(from);
        return Err(DropReason::CtFull);
    }
    if CT.insert(&s.key, &s.orig, orig_flags).is_err() {
        let _ = CT.remove(&s.reply_key);
        allowance::release_connection(from);
        // Taken by another CPU between the look above and here.
        if CT.get_ptr(&s.key).is_some() {
            return Err(DropReason::CtClash);
        }
        return Err(DropReason::CtFull);
    }
    Ok(())
}

/// Whether `old`, the original entry found at a new connection's key, is
/// a live connection the pipeline's lookup did not see: another CPU opened
/// the same tuple between that lookup and this insert (two packets of a
/// new flow at once, as a resolver's parallel A and AAAA queries from one
/// socket). Not one the pipeline chose to replace (closed, reset, expired,
/// reopened by a SYN, or from another port).
#[inline(always)]
fn clashes(s: &Scratch, old: &CtEntry, now: u64) -> bool {
    old.in_ifindex == s.orig.in_ifindex
        && !over(s.pkt.proto, old, now)
        && !(s.pkt.proto == IPPROTO_TCP
            && s.pkt.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
            && (old.state == ct_state::CLOSING || old.state == ct_state::CLOSED))
}

/// Removes the original entry at `key` of a connection opened from port
/// `ifindex`, and takes it back from that port's count, if this removal is
/// the one that took it (the agent's GC may remove it at the same moment).
#[inline(always)]
pub fn evict(key: &CtKey, ifindex: u32) {
    if CT.remove(key).is_ok() {
        allowance::release_connection(ifindex);
    }
}

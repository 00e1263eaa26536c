//! VPC Flow Logs in the datapath: counters, no event per packet.
//!
//! * Accepted traffic of a tracked connection is counted in its conntrack
//!   entry, per direction and aggregation window (`CtEntry::fl`, two slots
//!   by window parity): packets, bytes, first and last packet, TCP flags
//!   ORed. The agent reads the slot of the window just closed (which no
//!   packet writes any more) and no event is needed.
//! * A rejected packet has no connection to live in: rejects aggregate in
//!   `FL_REJECTS` per (flow as seen in the VPC, reason, window); the first
//!   one of a key in a window sends the key to the `FL_EVENTS` ring buffer,
//!   the rest only count. A full ring buffer is counted (`FL_STATS`), and
//!   the agent writes SKIPDATA for the window.
//!
//! Rejects are recorded flow log or not while the agent runs
//! (`cfg::RECORD_DROPS`): with no flow-log window, under the reserved
//! `FL_DROPS_WINDOW`, which the agent reads and takes out itself (the
//! console's drops). Accepted traffic is counted only while a flow log
//! exists (`CONFIG[cfg::FLOW_WINDOW]` non-zero): a forwarded packet pays
//! one read otherwise. Every reject's window comes from
//! `config::reject_window`.
use aya_ebpf::bindings::BPF_NOEXIST;
use vpc_common::{
    CtEntry, DropReason, FlowRejectKey, FlowWindow, CT_F_DNAT, CT_F_SNAT, FL_GW_NAT_IN,
    FL_GW_NAT_OUT, FL_GW_NAT_REPLY_IN, FL_GW_NAT_REPLY_OUT, FL_GW_NAT_REPLY_SENDER, FL_GW_NONE,
    FL_STAT_EVENTS, FL_STAT_LOST, FL_STAT_REJECT_MAP_FULL,
};

use crate::{
    config,
    copy::{copy_addr, copy_words},
    maps::{FL_EVENTS, FL_REJECTS, FL_STATS},
    parse::{Packet, IPPROTO_TCP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
};

/// TCP flags as flow logs report them: FIN, SYN, RST, and SYN-ACK as 18.
#[inline(always)]
fn logged_flags(p: &Packet) -> u8 {
    if p.proto != IPPROTO_TCP {
        return 0;
    }
    let f = p.tcp_flags;
    let syn_ack = if f & (TCP_SYN | TCP_ACK) == (TCP_SYN | TCP_ACK) {
        TCP_ACK
    } else {
        0
    };
    (f & (TCP_FIN | TCP_SYN | TCP_RST)) | syn_ack
}

#[inline(always)]
fn add(slot: &mut FlowWindow, p: &Packet, w: u32, now: u64) {
    let f = logged_flags(p);
    if slot.window != w {
        slot.window = w;
        slot.packets = p.segs;
        slot.bytes = p.ip_len as u64;
        slot.first_ns = now;
        slot.last_ns = now;
        slot.tcp_flags = f;
    } else {
        slot.packets = slot.packets.wrapping_add(p.segs);
        slot.bytes = slot.bytes.wrapping_add(p.ip_len as u64);
        slot.last_ns = now;
        slot.tcp_flags |= f;
    }
}

/// Counts `p` in window `w` (non-zero) of a direction's slots.
#[inline(always)]
pub fn count(fl: &mut [FlowWindow; 2], p: &Packet, w: u32, now: u64) {
    if w & 1 == 0 {
        add(&mut fl[0], p, w, now)
    } else {
        add(&mut fl[1], p, w, now)
    }
}

/// Empty slots for a new entry.
#[inline(always)]
pub fn clear(fl: &mut [FlowWindow; 2]) {
    fl[0].window = 0;
    fl[1].window = 0;
}

/// Is this drop a flow-log REJECT (a group or ACL said no, or the packet
/// belongs to no connection: unsolicited to a Hyperplane ENI, or TCP after
/// the connection closed)?
#[inline(always)]
pub fn is_reject(r: DropReason) -> bool {
    matches!(
        r,
        DropReason::SgEgressDenied
            | DropReason::SgIngressDenied
            | DropReason::NaclEgressDenied
            | DropReason::NaclIngressDenied
            | DropReason::HyperplaneUnsolicited
            | DropReason::CtInvalid
    )
}

/// The window a drop for `r` is recorded in: 0 when it is no REJECT or
/// nothing records rejects (`config::reject_window`).
#[inline(always)]
pub fn reject_window(r: DropReason) -> u32 {
    if is_reject(r) {
        config::reject_window()
    } else {
        0
    }
}

/// A rejected packet `p` of a connection direction with NAT `flags`
/// (`CtEntry::flags`) and rewrite (`nat_addr`, `nat_port`), as seen in the
/// VPC: after SNAT, before the reverse NAT.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn reject_tracked(
    k: &mut FlowRejectKey,
    p: &Packet,
    flags: u8,
    nat_addr: &[u8; 16],
    nat_port: u16,
    reason: DropReason,
    w: u32,
    now: u64,
) {
    if flags & CT_F_SNAT != 0 {
        key(k, nat_addr, nat_port, &p.daddr, p.dport, &p.saddr, &p.daddr);
    } else if flags & CT_F_DNAT != 0 {
        key(k, &p.saddr, p.sport, &p.daddr, p.dport, &p.saddr, nat_addr);
    } else {
        key(k, &p.saddr, p.sport, &p.daddr, p.dport, &p.saddr, &p.daddr);
    }
    reject(k, p, reason, w, now);
}

/// A rejected packet `p` as it is: no connection, no NAT.
#[inline(always)]
pub fn reject_packet(k: &mut FlowRejectKey, p: &Packet, reason: DropReason, w: u32, now: u64) {
    key(k, &p.saddr, p.sport, &p.daddr, p.dport, &p.saddr, &p.daddr);
    reject(k, p, reason, w, now);
}

/// A new flow into NAT gateway refused by `r` (`nat_gateway::via`), as
/// the VPC sees it: from `sender` (a host's own address, a function's
/// ENI's) before the gateway's NAT. `out`: the gateway's own subnet refused
/// it on the way to the internet. Only a group's or an ACL's refusal is a
/// REJECT (AWS); the rest are drops counted as such.
#[inline(always)]
pub fn reject_nat_gateway(
    k: &mut FlowRejectKey,
    p: &Packet,
    sender: &[u8; 16],
    gateway: u32,
    out: bool,
    reason: DropReason,
    now: u64,
) {
    if !matches!(
        reason,
        DropReason::SgEgressDenied | DropReason::NaclEgressDenied | DropReason::NaclIngressDenied
    ) {
        return;
    }
    let w = config::reject_window();
    if w == 0 {
        return;
    }
    key(k, sender, p.sport, &p.daddr, p.dport, &p.saddr, &p.daddr);
    k.gateway = if out { FL_GW_NAT_OUT } else { FL_GW_NAT_IN };
    k.gw_id = gateway as u16;
    reject(k, p, reason, w, now);
}

/// A new flow from the internet refused by the receiving host's inbound
/// group or its subnet's inbound ACL (`internet_gateway::from_internet`),
/// as the host's interface sees it: to its private address `private`.
#[inline(always)]
pub fn reject_arriving(
    k: &mut FlowRejectKey,
    p: &Packet,
    private: &[u8; 16],
    reason: DropReason,
    now: u64,
) {
    if !matches!(
        reason,
        DropReason::SgIngressDenied | DropReason::NaclIngressDenied
    ) {
        return;
    }
    let w = config::reject_window();
    if w == 0 {
        return;
    }
    key(k, &p.saddr, p.sport, private, p.dport, &p.saddr, private);
    reject(k, p, reason, w, now);
}

#[inline(always)]
fn bump_stat(idx: u32) {
    if let Some(c) = FL_STATS.get_ptr_mut(idx) {
        unsafe { *c += 1 };
    }
}

/// Counts the rejected packet `p` under `k` (addresses and ports filled
/// in by the caller, and `gateway`) in window `w`. A BPF function of its own: the
/// verifier walks it once per call site, not inlined into every path.
#[inline(never)]
pub fn reject(k: &mut FlowRejectKey, p: &Packet, reason: DropReason, w: u32, now: u64) {
    k.proto = p.proto;
    k.reason = reason as u8;
    k._pad = 0;
    k.window = w;
    if let Some(v) = FL_REJECTS.get_ptr_mut(&*k) {
        add(unsafe { &mut *v }, p, w, now);
        return;
    }
    let mut v = FlowWindow::default();
    add(&mut v, p, w, now);
    if FL_REJECTS.insert(&*k, &v, BPF_NOEXIST as u64).is_err() {
        // Another CPU inserted it meanwhile: count there.
        match FL_REJECTS.get_ptr_mut(&*k) {
            Some(v) => add(unsafe { &mut *v }, p, w, now),
            None => bump_stat(FL_STAT_REJECT_MAP_FULL),
        }
        return;
    }
    match FL_EVENTS.output::<FlowRejectKey>(&*k, 0) {
        Ok(()) => bump_stat(FL_STAT_EVENTS),
        Err(_) => bump_stat(FL_STAT_LOST),
    }
}

/// Fills a reject key's addresses and ports (ports in network order); no
/// gateway (`FL_GW_NONE`) unless the caller says so after.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn key(
    k: &mut FlowRejectKey,
    saddr: &[u8; 16],
    sport: u16,
    daddr: &[u8; 16],
    dport: u16,
    pkt_saddr: &[u8; 16],
    pkt_daddr: &[u8; 16],
) {
    copy_addr(&mut k.saddr, saddr);
    copy_addr(&mut k.daddr, daddr);
    copy_addr(&mut k.pkt_saddr, pkt_saddr);
    copy_addr(&mut k.pkt_daddr, pkt_daddr);
    k.sport = sport;
    k.dport = dport;
    k.gateway = FL_GW_NONE;
    k.gw_port = 0;
    k.gw_id = 0;
}

/// A packet of a NAT gateway connection (entry `e`) refused by an ACL
/// after a policy change (`nat_gateway::recheck`; `last`: by its last
/// check), as the VPC sees it: the sender's own address and port (before
/// the gateway's NAT, after the reverse NAT), the gateway's port aside.
#[inline(always)]
pub fn reject_nat_tracked(
    k: &mut FlowRejectKey,
    p: &Packet,
    e: &CtEntry,
    last: bool,
    reason: DropReason,
    w: u32,
    now: u64,
) {
    let egress = matches!(reason, DropReason::NaclEgressDenied);
    if !egress && !matches!(reason, DropReason::NaclIngressDenied) {
        return;
    }
    if e.flags & CT_F_SNAT != 0 {
        // Out: the sender's subnet (egress), into the gateway's, out of it.
        key(k, &p.saddr, p.sport, &p.daddr, p.dport, &p.saddr, &p.daddr);
        k.gateway = if last { FL_GW_NAT_OUT } else { FL_GW_NAT_IN };
        k.gw_port = e.nat_port;
    } else {
        // Back: into the gateway's subnet, out of it, into the sender's.
        key(
            k,
            &p.saddr,
            p.sport,
            &e.nat_addr,
            e.nat_port,
            &p.saddr,
            &e.nat_addr,
        );
        k.gateway = if egress {
            FL_GW_NAT_REPLY_OUT
        } else if last {
            FL_GW_NAT_REPLY_SENDER
        } else {
            FL_GW_NAT_REPLY_IN
        };
        k.gw_port = p.dport;
    }
    k.gw_id = e.eni;
    reject(k, p, reason, w, now);
}

/// A new entry takes over the slots of the entry it replaces at the same
/// key (a tuple reused within a window is the same flow-log flow): what
/// they counted is not yet reported.
#[inline(always)]
pub fn carry(fl: &mut [FlowWindow; 2], old: &CtEntry) {
    // Word copies: a struct copy becomes a byte-loop `memmove` in BPF.
    const WORDS: usize = core::mem::size_of::<[FlowWindow; 2]>() / 8;
    copy_words::<WORDS>(fl.as_mut_ptr() as *mut u64, old.fl.as_ptr() as *const u64);
}

//! Per-CPU verdict counters.
use vpc_common::{probe_bucket, DropReason, NAT_STAT_FAILED, NAT_STAT_HIST, STAT_FORWARDED};

use aya_ebpf::bindings::BPF_NOEXIST;

use crate::{
    ctx::{VERDICT_DETAIL_SHIFT, VERDICT_DROP},
    maps::{ENI_STATS, NAT_STATS, PORT_DROPS, PORT_STATS, STATS},
};

#[inline(always)]
fn bump(idx: u32) {
    if let Some(c) = STATS.get_ptr_mut(idx) {
        // Per-CPU slot: no other writer, a plain add is enough.
        unsafe { *c += 1 };
    }
}

/// Counts a drop; the verdict carries its reason (for `trace`).
#[inline(always)]
pub fn drop(reason: DropReason) -> u32 {
    // A clash is counted only if the pipeline's retry fails too
    // (`router::after_clash`).
    if reason != DropReason::CtClash {
        bump(reason as u32);
    }
    VERDICT_DROP | (reason as u32) << VERDICT_DETAIL_SHIFT
}

/// A clash whose retry found no connection either: counted.
#[inline(always)]
pub fn clash_lost() -> u32 {
    bump(DropReason::CtClash as u32);
    VERDICT_DROP | (DropReason::CtClash as u32) << VERDICT_DETAIL_SHIFT
}

/// A verdict, or the drop counted with its reason.
#[inline(always)]
pub fn finish(r: Result<u32, DropReason>) -> u32 {
    match r {
        Ok(action) => action,
        Err(reason) => drop(reason),
    }
}

#[inline(always)]
pub fn forwarded() {
    bump(STAT_FORWARDED);
}

/// A NAT gateway answered a forgotten connection's packet with a RST.
#[inline(always)]
pub fn nat_idle_timeout() {
    bump_nat(vpc_common::NAT_STAT_IDLE_TIMEOUT);
}

#[inline(always)]
fn bump_nat(idx: u32) {
    if let Some(c) = NAT_STATS.get_ptr_mut(idx) {
        unsafe { *c += 1 };
    }
}

/// The verdict on a packet that arrived on router port `ifindex` (`action`:
/// the hook's action, `ctx::action`).
#[inline(always)]
pub fn port(ifindex: u32, action: u32) {
    let idx = vpc_common::port_stat_index(ifindex, action == VERDICT_DROP);
    if let Some(c) = PORT_STATS.get_ptr_mut(idx) {
        unsafe { *c += 1 };
    }
}

/// Counts a drop (`verdict`) for (port, reason); the first one of the pair
/// inserts it (a per-CPU insert sets this CPU's value, the others' to 0).
/// On the drop path only, last (`router::run`): a BPF function of its own,
/// called where nothing else is live, so the pipeline keeps its registers.
#[inline(never)]
pub fn port_drop(ifindex: u32, verdict: u32) {
    // The reason's byte only: not `VERDICT_NO_TUPLE`'s bit above it.
    let reason = (verdict >> VERDICT_DETAIL_SHIFT) & 0xff;
    let k = vpc_common::port_drop_key(ifindex, reason);
    if let Some(c) = PORT_DROPS.get_ptr_mut(k) {
        unsafe { *c += 1 };
        return;
    }
    if PORT_DROPS.insert(k, 1u64, BPF_NOEXIST as u64).is_err() {
        // Another CPU inserted it meanwhile: count in this CPU's slot.
        if let Some(c) = PORT_DROPS.get_ptr_mut(k) {
            unsafe { *c += 1 };
        }
    }
}

/// A packet forwarded through Hyperplane ENI `eni` (0: none).
#[inline(always)]
pub fn eni_forwarded(eni: u16) {
    if eni == 0 {
        return;
    }
    if let Some(c) = ENI_STATS.get_ptr_mut(eni as u32) {
        unsafe { *c += 1 };
    }
}

/// A NAT port allocation that succeeded after `probes` probes.
#[inline(always)]
pub fn nat_probes(probes: u32) {
    bump_nat(NAT_STAT_HIST + probe_bucket(probes));
}

/// A NAT port allocation that found every ENI of its group full.
#[inline(always)]
pub fn nat_failed() {
    bump_nat(NAT_STAT_FAILED);
}

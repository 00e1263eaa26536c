//! Per-interface allowances, as AWS bounds each ENI and counts in its ENA
//! statistics: one interface cannot take what every tenant shares.
//!
//! * *Conntrack allowance* (`conntrack_allowance_exceeded`): the
//!   connections a router port opened that are tracked now, counted in
//!   `PORT_CONNECTIONS`; a new one past `CONFIG[CT_ALLOWANCE]` is dropped.
//!   One is added when a connection's entries go in, and taken back by
//!   whoever removes its original-direction entry: the datapath when a new
//!   connection replaces it (`ct::open`), the bench harness, the agent's GC
//!   and the reconciler (atomically, through a mapping of the same array).
//! * *Linklocal allowance* (`linklocal_allowance_exceeded`): packets per
//!   second from a port to the VPC resolver, `CONFIG[LINKLOCAL_PPS]` (AWS:
//!   1,024), with a burst of one second's worth, as GCRA (a token bucket
//!   kept as one time per port in `LINKLOCAL_BUCKETS`).
//!
//! Both are read and written without a lock: two CPUs admitting at the
//! same instant may each pass the last place (at most one extra per CPU).
use vpc_common::{
    allowance_stat_index, cfg, port_slot, DropReason, ALLOWANCE_CONNTRACK, ALLOWANCE_LINKLOCAL,
    DEFAULT_LINKLOCAL_PPS,
};

use crate::{
    atomic, config,
    maps::{ALLOWANCE_STATS, LINKLOCAL_BUCKETS, PORT_CONNECTIONS},
};

/// Counts a drop of allowance `which` on port `ifindex`.
#[inline(always)]
fn exceeded(ifindex: u32, which: u32) {
    if let Some(c) = ALLOWANCE_STATS.get_ptr_mut(allowance_stat_index(ifindex, which)) {
        // Per-CPU slot: no other writer.
        unsafe { *c += 1 };
    }
}

/// Adds `delta` (two's complement) to port `ifindex`'s connection count.
#[inline(always)]
fn add(ifindex: u32, delta: u64) {
    if let Some(c) = PORT_CONNECTIONS.get_ptr_mut(port_slot(ifindex)) {
        // An atomic add (BPF_ATOMIC, its result unused): the agent
        // subtracts on the same memory from userspace, other CPUs add.
        unsafe { atomic::add(c, delta) };
    }
}

/// Admits one more connection opened from port `ifindex` (counted), or
/// `conntrack_allowance_exceeded`.
#[inline(always)]
pub fn admit_connection(ifindex: u32) -> Result<(), DropReason> {
    let allowance = config::get(cfg::CT_ALLOWANCE);
    if allowance != 0 {
        let live = match PORT_CONNECTIONS.get(port_slot(ifindex)) {
            Some(c) => (unsafe { core::ptr::read_volatile(c) }) as i64,
            None => 0,
        };
        if live >= allowance as i64 {
            exceeded(ifindex, ALLOWANCE_CONNTRACK);
            return Err(DropReason::ConntrackAllowanceExceeded);
        }
    }
    add(ifindex, 1);
    Ok(())
}

/// A connection opened from port `ifindex` is gone (its original entry
/// removed, or never inserted after `admit_connection`).
#[inline(always)]
pub fn release_connection(ifindex: u32) {
    add(ifindex, u64::MAX);
}

/// A packet from port `ifindex` to the VPC resolver at time `now` (ns, the
/// conntrack clock, test clock included): admitted while the port is within
/// its packets per second, or `linklocal_allowance_exceeded`. GCRA: each
/// packet moves the port's theoretical arrival time on by one interval
/// (1/rate); a packet that would find it more than a second's burst ahead
/// of now is refused and moves nothing.
#[inline(always)]
pub fn linklocal(ifindex: u32, now: u64) -> Result<(), DropReason> {
    let pps = match config::get(cfg::LINKLOCAL_PPS) {
        0 => DEFAULT_LINKLOCAL_PPS as u64,
        n => n,
    };
    let interval = 1_000_000_000 / pps;
    // A burst of `pps` packets: the last one may find the time this far ahead.
    let tolerance = interval * (pps - 1);
    let Some(t) = LINKLOCAL_BUCKETS.get_ptr_mut(port_slot(ifindex)) else {
        return Ok(());
    };
    let tat = unsafe { core::ptr::read_volatile(t) };
    let base = if tat > now { tat } else { now };
    if base - now > tolerance {
        exceeded(ifindex, ALLOWANCE_LINKLOCAL);
        return Err(DropReason::LinklocalAllowanceExceeded);
    }
    unsafe { core::ptr::write_volatile(t, base + interval) };
    Ok(())
}

//! What userspace sets in `CONFIG` (indexes in `vpc_common::cfg`): idle
//! timeouts, the test clock's offset, the policy epoch, NAT capacities and
//! the flow-log window and drop recording, the trace switch, the overlay device. Every read
//! of it is here.
use vpc_common::{cfg, NAT_PORT_RANGE};

use crate::maps::CONFIG;

/// `CONFIG[idx]`, 0 when unset.
#[inline(always)]
pub fn get(idx: u32) -> u64 {
    match CONFIG.get(idx) {
        Some(v) => *v,
        None => 0,
    }
}

/// The policy epoch: a counter bumped by every policy switch, whose low bit
/// is the generation in force. Read once per packet, where needed: every
/// policy lookup of a packet uses the value its caller read.
#[inline(always)]
pub fn policy_epoch() -> u32 {
    get(cfg::GENERATION) as u32
}

/// Source ports per ENI (or NAT gateway) and protocol, from `CONFIG[idx]`
/// (0 or out of range: `default`).
#[inline(always)]
pub fn capacity(idx: u32, default: u32) -> u32 {
    match get(idx) as u32 {
        c if c == 0 || c > NAT_PORT_RANGE => default,
        c => c,
    }
}

/// The flow-log window in force (0: flow logs off): what accepted
/// traffic is counted in.
#[inline(always)]
pub fn flow_log_window() -> u32 {
    get(cfg::FLOW_WINDOW) as u32
}

/// The window a rejected flow is recorded in (every reject asks here): the
/// flow-log window in force, else `FL_DROPS_WINDOW` while the agent records
/// drops, else 0 (not recorded).
#[inline(always)]
pub fn reject_window() -> u32 {
    match flow_log_window() {
        0 if get(cfg::RECORD_DROPS) != 0 => vpc_common::FL_DROPS_WINDOW,
        w => w,
    }
}

/// The overlay device's ifindex (0: one host, no overlay).
#[inline(always)]
pub fn overlay() -> u32 {
    get(cfg::OVERLAY_IFINDEX) as u32
}

/// Whether `vpc trace` is on: the router logs its verdicts.
#[inline(always)]
pub fn trace() -> bool {
    get(cfg::TRACE) != 0
}

//! Per-CPU verdict counters.
use aya_ebpf::bindings::xdp_action;
use vpc_common::{DropReason, STAT_FORWARDED};

use crate::maps::STATS;

#[inline(always)]
fn bump(idx: u32) {
    if let Some(c) = STATS.get_ptr_mut(idx) {
        // Per-CPU slot: no other writer, a plain add is enough.
        unsafe { *c += 1 };
    }
}

#[inline(always)]
pub fn drop(reason: DropReason) -> u32 {
    bump(reason as u32);
    xdp_action::XDP_DROP
}

#[inline(always)]
pub fn forwarded() {
    bump(STAT_FORWARDED);
}

//! Per-CPU verdict counters.
use vpc_common::{DropReason, STAT_FORWARDED};

use crate::{ctx::VERDICT_DROP, maps::STATS};

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
    VERDICT_DROP
}

#[inline(always)]
pub fn forwarded() {
    bump(STAT_FORWARDED);
}

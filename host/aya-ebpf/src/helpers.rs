//! The helpers the router calls, on the host's terms (see `host`).
use crate::{
    bindings::{xdp_action, TC_ACT_REDIRECT, TC_ACT_SHOT},
    host::{Hook, HOOK, NOW, REDIRECT, RNG},
};

/// # Safety
/// None: `unsafe` as the kernel helper's binding is.
pub unsafe fn bpf_ktime_get_coarse_ns() -> u64 {
    NOW.with(|c| c.get())
}

/// xorshift64*, seeded by the harness.
///
/// # Safety
/// None: `unsafe` as the kernel helper's binding is.
pub unsafe fn bpf_get_prandom_u32() -> u32 {
    RNG.with(|c| {
        let mut x = c.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        c.set(x);
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    })
}

/// As the kernel: flags must be 0 (ingress redirect aside, which the
/// router never asks for); the answer is the hook's redirect action.
///
/// # Safety
/// None: `unsafe` as the kernel helper's binding is.
pub unsafe fn bpf_redirect(ifindex: u32, flags: u64) -> i64 {
    let hook = HOOK.with(|c| c.get());
    if flags != 0 {
        return match hook {
            Hook::Xdp => xdp_action::XDP_ABORTED as i64,
            Hook::Tc => TC_ACT_SHOT as i64,
        };
    }
    REDIRECT.with(|c| c.set(Some(ifindex)));
    match hook {
        Hook::Xdp => xdp_action::XDP_REDIRECT as i64,
        Hook::Tc => TC_ACT_REDIRECT as i64,
    }
}

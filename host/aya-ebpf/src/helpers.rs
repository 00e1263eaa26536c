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

/// As the kernel: `callback_fn` (an `extern "C" fn(u64, *mut c_void) ->
/// i64`) for 0..`nr_loops` until it returns non-zero (1; anything else
/// is the kernel's -EINVAL, which the router never gives); flags must be
/// 0. Returns the number of calls made.
///
/// # Safety
/// `callback_fn` must be such a function, `callback_ctx` what it expects.
pub unsafe fn bpf_loop(
    nr_loops: u32,
    callback_fn: *mut core::ffi::c_void,
    callback_ctx: *mut core::ffi::c_void,
    flags: u64,
) -> i64 {
    const E2BIG: i64 = -7;
    const EINVAL: i64 = -22;
    if flags != 0 {
        return EINVAL;
    }
    // The kernel's bound: BPF_MAX_LOOPS.
    if nr_loops > 1 << 23 {
        return E2BIG;
    }
    let f: extern "C" fn(u64, *mut core::ffi::c_void) -> i64 =
        unsafe { core::mem::transmute(callback_fn) };
    for i in 0..nr_loops as u64 {
        match f(i, callback_ctx) {
            0 => {}
            1 => return i as i64 + 1,
            _ => return EINVAL,
        }
    }
    nr_loops as i64
}

/// The host's buffers come from no tunnel: as the kernel for a buffer
/// without tunnel metadata, `-EINVAL`.
///
/// # Safety
/// None: `unsafe` as the kernel helper's binding is.
pub unsafe fn bpf_skb_get_tunnel_key(
    _skb: *mut crate::bindings::__sk_buff,
    _key: *mut crate::bindings::bpf_tunnel_key,
    _size: u32,
    _flags: u64,
) -> i64 {
    -22
}

/// The host has no overlay device: refused (`-EINVAL`), so a packet for
/// another host is dropped, never recorded as redirected.
///
/// # Safety
/// None: `unsafe` as the kernel helper's binding is.
pub unsafe fn bpf_skb_set_tunnel_key(
    _skb: *mut crate::bindings::__sk_buff,
    _key: *mut crate::bindings::bpf_tunnel_key,
    _size: u32,
    _flags: u64,
) -> i64 {
    -22
}

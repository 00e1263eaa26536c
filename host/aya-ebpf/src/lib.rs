//! aya-ebpf's API as the router (vpc-ebpf) uses it, built for the host, so
//! that the router's own source compiles unchanged into a host library
//! (`vpc-ebpf-host`) that fuzzers and tests drive.
//!
//! What the kernel does, the host does as closely as the router can tell:
//! hash maps refuse a new key when full (`E2BIG`) and honour
//! `BPF_NOEXIST` / `BPF_EXIST`; a replaced or removed value stays readable
//! through a pointer taken before (a preallocated element goes back to a
//! free list, it is not unmapped), until [`host::reset`]-style clears;
//! LPM tries match the longest stored prefix; arrays are zeroed and
//! bounded; `bpf_redirect` checks its flags and records the target; time
//! and randomness come from values the harness sets, so a run replays.
//!
//! Nothing here is thread-safe: the maps are process-wide statics, as in
//! the kernel, and one packet runs at a time (`vpc-ebpf-host` holds a lock).
use std::cell::{Cell as StdCell, UnsafeCell};

pub mod bindings;
pub mod helpers;
pub mod maps;
pub mod programs;

pub mod macros {
    pub use aya_ebpf_host_macros::map;
}

/// A lazily built value in a static: the maps' state.
pub(crate) struct Lazy<T>(UnsafeCell<Option<Box<T>>>);

// SAFETY: one packet at a time (see the crate's doc); the harness
// serializes every user.
unsafe impl<T> Sync for Lazy<T> {}

impl<T> Lazy<T> {
    pub(crate) const fn new() -> Self {
        Lazy(UnsafeCell::new(None))
    }

    #[allow(clippy::mut_from_ref)]
    pub(crate) fn get(&self, init: impl FnOnce() -> T) -> &mut T {
        // SAFETY: single-threaded use (above); the box never moves.
        unsafe { (*self.0.get()).get_or_insert_with(|| Box::new(init())) }
    }
}

/// What the harness sets and reads around one run of the router.
pub mod host {
    use super::*;

    /// The hook a run stands for: `bpf_redirect` answers as its program
    /// type does (XDP_REDIRECT or TC_ACT_REDIRECT).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Hook {
        Xdp,
        Tc,
    }

    thread_local! {
        pub(crate) static HOOK: StdCell<Hook> = const { StdCell::new(Hook::Xdp) };
        pub(crate) static NOW: StdCell<u64> = const { StdCell::new(1_000_000_000_000) };
        pub(crate) static RNG: StdCell<u64> = const { StdCell::new(0x9e37_79b9_7f4a_7c15) };
        pub(crate) static REDIRECT: StdCell<Option<u32>> = const { StdCell::new(None) };
    }

    pub fn set_hook(h: Hook) {
        HOOK.with(|c| c.set(h));
    }

    /// `bpf_ktime_get_coarse_ns` from now on.
    pub fn set_now(ns: u64) {
        NOW.with(|c| c.set(ns));
    }

    pub fn now() -> u64 {
        NOW.with(|c| c.get())
    }

    /// Seeds `bpf_get_prandom_u32` (a run replays from its seed).
    pub fn seed(s: u64) {
        RNG.with(|c| c.set(s | 1));
    }

    /// The ifindex of the last successful `bpf_redirect`, cleared.
    pub fn take_redirect() -> Option<u32> {
        REDIRECT.with(|c| c.take())
    }
}

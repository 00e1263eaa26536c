//! Atomic read-modify-writes on map memory that userspace changes too,
//! through a mapping of its own (`BPF_F_MMAPABLE` arrays). BPF: core's
//! intrinsics (its atomic types have no read-modify-write there); they
//! compile to `BPF_ATOMIC` (`lock *(u64 *)` add, and, or: the `FETCH` form
//! when the result is used). The host build of the router (`host/datapath`,
//! stable Rust): core's atomic type.

/// `*c += v`.
#[inline(always)]
pub unsafe fn add(c: *mut u64, v: u64) {
    #[cfg(target_arch = "bpf")]
    core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(c, v);
    #[cfg(not(target_arch = "bpf"))]
    host(c).fetch_add(v, core::sync::atomic::Ordering::Relaxed);
}

/// `*c |= v`, returning the value before.
#[inline(always)]
pub unsafe fn fetch_or(c: *mut u64, v: u64) -> u64 {
    #[cfg(target_arch = "bpf")]
    return core::intrinsics::atomic_or::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
        c, v,
    );
    #[cfg(not(target_arch = "bpf"))]
    return host(c).fetch_or(v, core::sync::atomic::Ordering::Relaxed);
}

/// `*c &= v`.
#[inline(always)]
pub unsafe fn and(c: *mut u64, v: u64) {
    #[cfg(target_arch = "bpf")]
    core::intrinsics::atomic_and::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(c, v);
    #[cfg(not(target_arch = "bpf"))]
    host(c).fetch_and(v, core::sync::atomic::Ordering::Relaxed);
}

#[cfg(not(target_arch = "bpf"))]
#[inline(always)]
unsafe fn host<'a>(c: *mut u64) -> &'a core::sync::atomic::AtomicU64 {
    core::sync::atomic::AtomicU64::from_ptr(c)
}

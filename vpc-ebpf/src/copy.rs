//! Copies that stay loads and stores. A plain copy of a byte array says
//! nothing of its alignment, and LLVM turns it into a call to the BPF
//! build of `memmove`, a byte loop; these move words, volatile, so LLVM
//! cannot merge them back into such a call.
use vpc_common::{AddrKey, CtKey};

/// Copies an address a word at a time. Every address this is used on is a
/// field at a 4-aligned offset of a 4-aligned struct (`Packet`, `CtKey`,
/// `CtEntry`, `HyperplaneEni`; checked in vpc-common).
#[inline(always)]
pub fn copy_addr(dst: &mut [u8; 16], src: &[u8; 16]) {
    copy_n::<u32, 4>(dst.as_mut_ptr() as *mut u32, src.as_ptr() as *const u32);
}

/// `addr` in address space `space`, built as words (a byte array's copy
/// or zeros would become a `memmove` or `memset` call).
#[inline(always)]
pub fn addr_key(space: u32, addr: &[u8; 16]) -> AddrKey {
    let mut k = [space, 0, 0, 0, 0];
    copy_n::<u32, 4>(k[1..].as_mut_ptr(), addr.as_ptr() as *const u32);
    unsafe { core::mem::transmute::<[u32; 5], AddrKey>(k) }
}

/// Copies a MAC three half-words at a time (MAC fields sit at even offsets
/// of `Endpoint` and `CtEntry`), for the same reason as `copy_addr`.
#[inline(always)]
pub fn copy_mac(dst: &mut [u8; 6], src: &[u8; 6]) {
    copy_n::<u16, 3>(dst.as_mut_ptr() as *mut u16, src.as_ptr() as *const u16);
}

/// Copies a conntrack key ten words at a time (`CtKey` is 4-aligned).
#[inline(always)]
pub fn copy_key(dst: &mut CtKey, src: &CtKey) {
    const WORDS: usize = core::mem::size_of::<CtKey>() / 4;
    copy_n::<u32, WORDS>(
        dst as *mut CtKey as *mut u32,
        src as *const CtKey as *const u32,
    );
}

/// Copies `N` words. Packet pointers may be unaligned; x86, where this
/// runs, allows unaligned packet access.
#[inline(always)]
pub fn copy_words<const N: usize>(dst: *mut u64, src: *const u64) {
    copy_n::<u64, N>(dst, src);
}

/// `N` volatile `T` moves: LLVM cannot turn them back into a `memmove`
/// call (it sees a possible overlap and the BPF backend does not expand
/// `memmove` inline).
#[inline(always)]
fn copy_n<T: Copy, const N: usize>(dst: *mut T, src: *const T) {
    for i in 0..N {
        unsafe { core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i))) };
    }
}

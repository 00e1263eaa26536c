//! Arrays of u64 created mappable (`BPF_F_MMAPABLE`), mapped into this
//! process: the agent's GC and a reconcile (other processes) change them
//! while packets on any CPU do, and a read-modify-write through the map
//! syscalls would lose one or the other, so userspace works with atomic
//! instructions on the same memory as the datapath's.
use std::{
    os::fd::{AsFd, AsRawFd, BorrowedFd},
    sync::atomic::AtomicU64,
};

use anyhow::{bail, Context, Result};
use aya::maps::Map;

/// The file descriptor of a hash map or an array.
pub(super) fn fd(map: &Map) -> Result<BorrowedFd<'_>> {
    match map {
        Map::HashMap(d) | Map::Array(d) => Ok(d.fd().as_fd()),
        _ => bail!("not a hash map or an array"),
    }
}

/// A mappable array's `len` values, shared with the datapath.
pub struct MappedWords {
    base: *mut AtomicU64,
    len: usize,
}

impl MappedWords {
    /// Maps array `name` (`map`, of `len` u64 values, created mappable).
    pub fn open(map: &Map, name: &str, len: u32) -> Result<Self> {
        let len = len as usize;
        let fd = fd(map)?.as_raw_fd();
        // SAFETY: a shared mapping of the map's own memory, its max_entries
        // values of 8 bytes, unmapped on drop.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len * std::mem::size_of::<u64>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("mapping {name}"));
        }
        Ok(Self {
            base: p as *mut AtomicU64,
            len,
        })
    }

    /// Value `i` (below the length mapped).
    pub fn word(&self, i: u32) -> &AtomicU64 {
        assert!((i as usize) < self.len, "index {i} past the mapping");
        // SAFETY: inside the mapping, and 8-aligned (page-aligned array
        // memory).
        unsafe { &*self.base.add(i as usize) }
    }
}

impl Drop for MappedWords {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`.
        unsafe {
            libc::munmap(
                self.base as *mut libc::c_void,
                self.len * std::mem::size_of::<u64>(),
            )
        };
    }
}

/// `NAT_PORT_BITMAP`, the free-port index of Hyperplane ENI pools (see
/// `vpc-ebpf/src/port_allocation.rs`): whoever removes a claim of such a
/// pool from `NAT_PORTS` clears its bit after it; whoever claims sets it
/// before.
pub struct NatPortBitmap(MappedWords);

impl NatPortBitmap {
    /// The bitmap of `maps`; none in a deployment pinned by a version
    /// without one (its allocator never reads one).
    pub fn open<M: super::Maps + ?Sized>(maps: &mut M) -> Result<Option<Self>> {
        use vpc_common::{map_names::NAT_PORT_BITMAP, NAT_BITMAP_LEN};
        match maps.map(NAT_PORT_BITMAP) {
            Ok(m) => Ok(Some(Self(MappedWords::open(
                m,
                NAT_PORT_BITMAP,
                NAT_BITMAP_LEN,
            )?))),
            Err(_) => Ok(None),
        }
    }

    /// `claim`'s port is taken (a claim of a pool without a bitmap: nothing).
    pub fn set(&self, claim: &vpc_common::NatPortKey) {
        if let Some((i, bit)) = vpc_common::nat_bitmap_bit(claim) {
            self.0
                .word(i)
                .fetch_or(bit, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// `claim`'s port is free again: its claim is gone.
    pub fn clear(&self, claim: &vpc_common::NatPortKey) {
        if let Some((i, bit)) = vpc_common::nat_bitmap_bit(claim) {
            self.0
                .word(i)
                .fetch_and(!bit, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Whether `claim`'s bit is set (`None`: its pool has no bitmap).
    pub fn is_set(&self, claim: &vpc_common::NatPortKey) -> Option<bool> {
        let (i, bit) = vpc_common::nat_bitmap_bit(claim)?;
        Some(self.0.word(i).load(std::sync::atomic::Ordering::Relaxed) & bit != 0)
    }
}

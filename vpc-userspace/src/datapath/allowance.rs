//! Per-interface allowances, userspace's side (the datapath's is
//! `vpc-ebpf/src/allowance.rs`): the conntrack allowance's counts, which
//! every removal of a connection's original entry takes back from, and the
//! drops of both allowances.
//!
//! The counts are added to by packets on any CPU while the agent's GC or a
//! reconcile (another process) takes back: a read-modify-write through the
//! map syscalls would lose one or the other. So userspace maps the array
//! (`BPF_F_MMAPABLE`) and subtracts with an atomic instruction on the same
//! memory the datapath's `lock add` works on; and it removes an entry with
//! `BPF_MAP_LOOKUP_AND_DELETE_ELEM`, which hands back exactly the entry it
//! deleted (the datapath may replace one at the same key at any moment):
//! a count is taken back once per removed original entry, by whoever
//! removed it.
use std::{
    os::fd::{AsFd, AsRawFd, BorrowedFd},
    sync::atomic::{AtomicU64, Ordering},
};

use anyhow::{bail, Context, Result};
use aya::maps::Map;
use vpc_common::{port_slot, CtEntry, CtKey, CT_DIR_ORIG, MAX_PORTS};

/// The file descriptor of a hash map or an array.
fn fd(map: &Map) -> Result<BorrowedFd<'_>> {
    match map {
        Map::HashMap(d) | Map::Array(d) => Ok(d.fd().as_fd()),
        _ => bail!("not a hash map or an array"),
    }
}

/// `PORT_CONNECTIONS`, mapped into this process.
pub struct PortConnections {
    base: *mut AtomicU64,
    len: usize,
}

impl PortConnections {
    /// Maps the array (`map`: `PORT_CONNECTIONS`, created mappable).
    pub fn open(map: &Map) -> Result<Self> {
        let len = MAX_PORTS as usize * std::mem::size_of::<u64>();
        let fd = fd(map)?.as_raw_fd();
        // SAFETY: a shared mapping of the map's own memory, `len` bytes (its
        // max_entries values of 8 bytes), unmapped on drop.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error()).context("mapping PORT_CONNECTIONS");
        }
        Ok(Self {
            base: p as *mut AtomicU64,
            len,
        })
    }

    fn slot(&self, ifindex: u32) -> &AtomicU64 {
        // SAFETY: `port_slot` is below MAX_PORTS, inside the mapping, and
        // the values are 8-aligned (page-aligned array memory).
        unsafe { &*self.base.add(port_slot(ifindex) as usize) }
    }

    /// Connections router port `ifindex` has tracked now.
    pub fn get(&self, ifindex: u32) -> i64 {
        self.slot(ifindex).load(Ordering::Relaxed) as i64
    }

    /// A connection opened from port `ifindex` is gone.
    pub fn release(&self, ifindex: u32) {
        self.slot(ifindex).fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for PortConnections {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

/// `BPF_MAP_LOOKUP_AND_DELETE_ELEM` on the conntrack map: the entry at
/// `key` as it was when this call deleted it, or `None` if there was none.
pub fn take(ct: &Map, key: &CtKey) -> Result<Option<CtEntry>> {
    #[repr(C)]
    struct ElemAttr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    const BPF_MAP_LOOKUP_AND_DELETE_ELEM: libc::c_long = 21;
    let mut value = CtEntry::default();
    let attr = ElemAttr {
        map_fd: fd(ct)?.as_raw_fd() as u32,
        _pad: 0,
        key: key as *const CtKey as u64,
        value: &mut value as *mut CtEntry as u64,
        flags: 0,
    };
    // SAFETY: the attribute names a key and a value buffer of the map's
    // sizes, alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_LOOKUP_AND_DELETE_ELEM,
            &attr as *const ElemAttr,
            std::mem::size_of::<ElemAttr>(),
        )
    };
    if r == 0 {
        return Ok(Some(value));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENOENT) {
        return Ok(None);
    }
    Err(e).context("BPF_MAP_LOOKUP_AND_DELETE_ELEM on CT")
}

/// Removes the conntrack entry at `key`, and if it was a connection's
/// original entry, takes the connection back from its port's count (none
/// in a deployment pinned by a version without allowances). Returns the
/// entry removed.
pub fn remove(ct: &Map, counts: Option<&PortConnections>, key: &CtKey) -> Result<Option<CtEntry>> {
    let gone = take(ct, key)?;
    if let (Some(e), Some(counts)) = (&gone, counts) {
        if e.dir == CT_DIR_ORIG {
            counts.release(e.in_ifindex);
        }
    }
    Ok(gone)
}

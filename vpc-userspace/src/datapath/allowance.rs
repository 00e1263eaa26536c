//! Per-interface allowances, userspace's side (the datapath's is
//! `vpc-ebpf/src/allowance.rs`): the conntrack allowance's counts, which
//! every removal of a connection's original entry takes back from, and the
//! drops of both allowances.
//!
//! The counts are added to by packets on any CPU while the agent's GC or a
//! reconcile (another process) takes back: userspace maps the array
//! (`mapped`) and subtracts with an atomic instruction on the same memory
//! the datapath's `lock add` works on; and it removes an entry with
//! `BPF_MAP_LOOKUP_AND_DELETE_ELEM`, which hands back exactly the entry it
//! deleted (the datapath may replace one at the same key at any moment):
//! a count is taken back once per removed original entry, by whoever
//! removed it.
use std::{
    os::fd::AsRawFd,
    sync::atomic::{AtomicU64, Ordering},
};

use anyhow::{Context, Result};
use aya::maps::Map;
use vpc_common::{map_names, port_slot, CtEntry, CtKey, CT_DIR_ORIG, MAX_PORTS};

use super::mapped::{fd, MappedWords};

/// `PORT_CONNECTIONS`, mapped into this process.
pub struct PortConnections(MappedWords);

impl PortConnections {
    /// Maps the array (`map`: `PORT_CONNECTIONS`, created mappable).
    pub fn open(map: &Map) -> Result<Self> {
        Ok(Self(MappedWords::open(
            map,
            map_names::PORT_CONNECTIONS,
            MAX_PORTS,
        )?))
    }

    fn slot(&self, ifindex: u32) -> &AtomicU64 {
        self.0.word(port_slot(ifindex))
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

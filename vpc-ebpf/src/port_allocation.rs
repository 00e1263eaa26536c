//! NAT port allocation, one allocator for both translators: a Hyperplane
//! ENI's source NAT (`hyperplane.rs`, one pool per ENI of the group, tried
//! in order) and a NAT gateway's (`nat_gateway.rs`, one pool per
//! destination). A port is claimed in `NAT_PORTS` with `BPF_NOEXIST`, the
//! claim's value the connection's reply key; the agent's GC releases it
//! with the connection.
//!
//! Exact: a pool refuses only when every port of it is claimed. First
//! `NAT_PORT_TRIES` random ports (RFC 6056 style: not predictable; below
//! 90% occupancy they find one 81.5% of the time or more, in a few
//! lookups), then, when all of them were taken, a linear scan of the whole
//! pool from a random offset through `bpf_loop` (a BPF function called per
//! port, so the verifier walks one port, not 64,512), claiming the first
//! free one. A free-port queue per pool would be O(1) but needs the agent
//! to fill and refill it, and a NAT gateway's pools are per destination
//! (created by the first connection to one): the scan needs neither, and
//! costs only when random ports failed, at occupancy p with probability
//! p^16, about 1/(1-p) lookups on average (the free ports are spread by
//! the random probes).
//!
//! What differs is the caller's: the pool, its capacity (`config::capacity`)
//! and the claim's key, which for a NAT gateway names the destination (AWS
//! counts its connections per unique destination, so a port in use toward
//! one destination is free toward the others) and for a Hyperplane ENI
//! does not (`NatPortKey::of_reply`).
use core::ffi::c_void;

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_prandom_u32, bpf_loop},
};
use vpc_common::{DropReason, NatPortKey, NAT_PORT_MIN, NAT_PORT_TRIES};

use crate::{
    maps::{Scratch, NAT_PORTS},
    stats,
};

/// A port of the first `cap` of a pool, for the connection in `s` whose
/// reply key (`s.reply_key`) is complete but the port (its destination the
/// pool's address): `NAT_PORT_TRIES` random ports, then the scan, all one
/// `bpf_loop` (`next_port`). The claim, under `key` (the pool's claim but
/// the port), goes into `s.claim` and the port into the reply key
/// (`echo`: as the ICMP echo identifier, its `sport`). `probes` counts the
/// ports tried across the pools of one allocation; a success is counted
/// in `NAT_STATS`. One loop for both: unrolled random probes, each a
/// state of its own, had the verifier walk the router's allocation paths
/// once per probe and per ENI; the callback is walked until its states
/// converge, a few times. `echo` is a constant for a Hyperplane ENI.
#[inline(always)]
pub fn probe(s: &mut Scratch, key: NatPortKey, echo: bool, cap: u32, probes: &mut u32) -> bool {
    if *probes == TABLE_FULL {
        return false;
    }
    let start = unsafe { bpf_get_prandom_u32() }
        .checked_rem(cap)
        .unwrap_or(0);
    let mut scan = Scan {
        s: s as *mut Scratch,
        key,
        start,
        cap,
        echo: echo as u32,
        outcome: SCAN_NONE,
    };
    // The ports tried: the callback's calls.
    let tried = unsafe {
        bpf_loop(
            NAT_PORT_TRIES + cap,
            next_port as *mut c_void,
            &mut scan as *mut Scan as *mut c_void,
            0,
        )
    };
    *probes = probes.saturating_add(if tried > 0 { tried as u32 } else { 0 });
    match scan.outcome {
        SCAN_CLAIMED => {
            stats::nat_probes(*probes);
            true
        }
        SCAN_FULL => {
            *probes = TABLE_FULL;
            false
        }
        _ => false,
    }
}

enum Tried {
    Claimed,
    Taken,
    /// The claims' table is full (it holds one per connection, as many as
    /// conntrack has room for): no port of any pool helps.
    Full,
}

/// Claims port `NAT_PORT_MIN + offset` of the pool of `key` for the
/// connection in `s`, if free.
#[inline(always)]
fn try_port(s: &mut Scratch, key: NatPortKey, echo: bool, offset: u32) -> Tried {
    let port = ((NAT_PORT_MIN as u32 + offset) as u16).to_be();
    if echo {
        s.reply_key.sport = port;
    } else {
        s.reply_key.dport = port;
    }
    let key = NatPortKey { port, ..key };
    // A lookup first: a taken port costs no bucket lock.
    if NAT_PORTS.get_ptr(&key).is_some() {
        return Tried::Taken;
    }
    match NAT_PORTS.insert(&key, &s.reply_key, BPF_NOEXIST as u64) {
        Ok(()) => {
            s.claim = key;
            Tried::Claimed
        }
        Err(E2BIG) => Tried::Full,
        Err(_) => Tried::Taken,
    }
}

/// The loop's state, on the caller's stack (`bpf_loop` hands callbacks a
/// stack pointer only), with the connection's `Scratch` (a pointer based on
/// the caller's, so the compiler knows the callback writes it).
#[repr(C)]
struct Scan {
    s: *mut Scratch,
    key: NatPortKey,
    start: u32,
    cap: u32,
    echo: u32,
    /// Written once, as the loop stops: a state that changed with every
    /// call (a count) would keep the verifier from ever seeing the
    /// callback's states converge.
    outcome: u32,
}

const SCAN_NONE: u32 = 0;
const SCAN_CLAIMED: u32 = 1;
const SCAN_FULL: u32 = 2;

/// `bpf_loop`'s callback: the `i`th port tried, random for the first
/// `NAT_PORT_TRIES`, then the scan's, from its random start round the
/// pool (each port once). 1 stops the loop (claimed, or the table full).
#[inline(never)]
extern "C" fn next_port(i: u64, ctx: *mut c_void) -> i64 {
    let scan = unsafe { &mut *(ctx as *mut Scan) };
    let s = unsafe { &mut *scan.s };
    let i = i as u32;
    let offset = if i < NAT_PORT_TRIES {
        unsafe { bpf_get_prandom_u32() }
            .checked_rem(scan.cap)
            .unwrap_or(0)
    } else {
        // start < cap and i - TRIES < cap: a subtraction, not a division.
        let o = scan.start.wrapping_add(i - NAT_PORT_TRIES);
        if o >= scan.cap {
            o.wrapping_sub(scan.cap)
        } else {
            o
        }
    };
    match try_port(s, scan.key, scan.echo != 0, offset) {
        Tried::Claimed => {
            scan.outcome = SCAN_CLAIMED;
            1
        }
        Tried::Full => {
            scan.outcome = SCAN_FULL;
            1
        }
        Tried::Taken => 0,
    }
}

const E2BIG: i32 = -7;
/// `probe`'s count once the claims' table refused an insert as full.
const TABLE_FULL: u32 = u32::MAX;

/// No pool gave a port: every port of each is claimed,
/// `nat_port_exhausted`, counted in `NAT_STATS` (a NAT gateway's
/// `ErrorPortAllocation`); or the table of claims was full, which is the
/// tracking table's limit: `ct_full`, as a connection of a host would get.
#[inline(always)]
pub fn exhausted(probes: u32) -> DropReason {
    if probes == TABLE_FULL {
        return DropReason::CtFull;
    }
    stats::nat_failed();
    DropReason::NatPortExhausted
}

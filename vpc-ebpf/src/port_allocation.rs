//! NAT port allocation, one allocator for both translators: a Hyperplane
//! ENI's source NAT (`hyperplane.rs`, one pool per ENI of the group, tried
//! in order) and a NAT gateway's (`nat_gateway.rs`, one pool per
//! destination). A port is claimed in `NAT_PORTS` with `BPF_NOEXIST`, the
//! claim's value the connection's reply key; the agent's GC releases it
//! with the connection. Exact: a pool refuses only when every port of it
//! is claimed.
//!
//! A Hyperplane ENI's pool allocates from its free-port bitmap
//! (`NAT_PORT_BITMAP`), O(1) at any occupancy: from the word of a random
//! port, the first word with a free bit among the pool's first `cap`
//! ports, its first free bit at or after the random port's (RFC 6056: not
//! predictable), set with an atomic fetch-or, then the claim. `NAT_PORTS`
//! stays the truth: a bit another CPU set first, or a claim already there
//! (made without the bitmap: its bit stays set), sends the walk on to the
//! next word, and a walk that found nothing (the bitmap full) hands over
//! to the scan below, so exactness never rests on the bitmap. Whoever
//! removes a claim clears its bit after it (`release`, and the agent
//! through a mapping).
//!
//! A NAT gateway's pools, per destination, are created by the first
//! connection to one, so they have no bitmap (it would need one per
//! destination); they, and an ENI index past `MAX_ENIS`, keep the probing
//! allocator: first `NAT_PORT_TRIES` random ports (below 90% occupancy
//! they find one 81.5% of the time or more, in a few lookups), then the
//! scan. The scan: a linear one of the whole pool from a random offset,
//! claiming the first free port, all of it in the same `bpf_loop` (a BPF
//! function called per word or port, so the verifier walks one, not
//! 64,512). After random ports it runs at occupancy p with probability
//! p^16, about 1/(1-p) lookups on average.
//!
//! A pool's ports are numbered in a virtual space [0, cap): the host's
//! leased NAT port slices (`PORT_SLICES`, across hosts) in order, so that
//! two hosts sharing an ENI never hand out the same tuple. Every virtual
//! offset (a port, a bitmap word) is mapped to its physical one (`phys`,
//! `phys_word`, from the slices the caller loaded: `load_slices`) before
//! it touches a port or a word; the claims, the bits, their release and
//! the agent's GC are physical.
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
use vpc_common::{
    lowest_bit, nat_bitmap_index, DropReason, NatPortKey, NAT_BITMAP_LEN, NAT_BITMAP_WORDS,
    NAT_PORT_MIN, NAT_PORT_TRIES, NAT_SLICES, NAT_SLICE_PORTS, NAT_SLICE_WORDS,
};

use crate::{
    atomic,
    maps::{Scratch, NAT_PORTS, NAT_PORT_BITMAP, PORT_SLICES},
    stats,
};

/// A port of the first `cap` of a pool, for the connection in `s` whose
/// reply key (`s.reply_key`) is complete but the port (its destination the
/// pool's address): the bitmap's words, or `NAT_PORT_TRIES` random ports,
/// then the scan, all one `bpf_loop` (`next_port`). The claim, under `key`
/// (the pool's claim but the port), goes into `s.claim` and the port into
/// the reply key (`echo`: as the ICMP echo identifier, its `sport`).
/// `probes` counts the calls (words or ports tried) across the pools of
/// one allocation; a success is counted in `NAT_STATS`. One loop for all:
/// unrolled random probes, each a state of its own, had the verifier walk
/// the router's allocation paths once per probe and per ENI, and a second
/// loop for the bitmap doubled it; the callback is walked until its
/// states converge, a few times. `echo` is a constant for a Hyperplane
/// ENI.
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
    // The calls: the callback's. As many as the most a pool can need (its
    // words or random ports, then its ports), without asking which pool
    // this is here: a branch would be a state of its own per ENI of a group.
    let tried = unsafe {
        bpf_loop(
            NAT_BITMAP_WORDS.max(NAT_PORT_TRIES) + cap,
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

/// Gives back a claim no connection holds (any pool's): the claim, then
/// its bitmap bit, in that order (a bit set without a claim costs an
/// allocation a retry; a claim without its bit is caught by `BPF_NOEXIST`).
#[inline(always)]
pub fn release(claim: &NatPortKey) {
    let _ = NAT_PORTS.remove(claim);
    let (i, mask) = bit(claim);
    if let Some(w) = NAT_PORT_BITMAP.get_ptr_mut(i) {
        unsafe { atomic::and(w, !mask) };
    }
}

/// The `NAT_PORT_BITMAP` word and bit of `claim`'s port, as arithmetic
/// (`vpc_common::nat_bitmap_bit` is userspace's, with the checks as
/// branches): a pool without a bitmap, or a port below the range, lands
/// past the array, where the map has no word.
#[inline(always)]
fn bit(claim: &NatPortKey) -> (u32, u64) {
    let offset = (u16::from_be(claim.port) as u32).wrapping_sub(NAT_PORT_MIN as u32);
    let i = nat_bitmap_index(claim.eni, claim.proto).wrapping_add(offset / 64);
    (i, 1 << (offset % 64))
}

/// Loads the host's NAT port slices into `s.slices` for an allocation:
/// 4 bits per virtual slice j, its physical slice (`PORT_SLICES` holds 1 +
/// the slice leased; 0, or nonsense, is `j` itself). Read here, once, so
/// the loop's callback maps offsets with arithmetic on memory: a map lookup
/// there would cost it registers, spilled on a stack it has no room for.
#[inline(always)]
pub fn load_slices(s: &mut Scratch) {
    let mut m = 0u64;
    let mut j = 0;
    while j < NAT_SLICES {
        let p = match PORT_SLICES.get(j) {
            Some(&p) if p != 0 && p <= NAT_SLICES => p - 1,
            _ => j,
        };
        m |= (p as u64) << (j * 4);
        j += 1;
    }
    s.slices = m;
}

/// The physical slice of virtual slice `j` (`load_slices`).
#[inline(always)]
fn slice(s: &Scratch, j: u32) -> u32 {
    (s.slices.wrapping_shr(j * 4) & 0xf) as u32
}

/// The physical offset (from `NAT_PORT_MIN`) of a pool's virtual offset `v`.
#[inline(always)]
fn phys(s: &Scratch, v: u32) -> u32 {
    slice(s, v / NAT_SLICE_PORTS) * NAT_SLICE_PORTS + v % NAT_SLICE_PORTS
}

/// The physical bitmap word (from the pool's first) of virtual word `w`.
#[inline(always)]
fn phys_word(s: &Scratch, w: u32) -> u32 {
    slice(s, w / NAT_SLICE_WORDS) * NAT_SLICE_WORDS + w % NAT_SLICE_WORDS
}

enum Tried {
    Claimed,
    Taken,
    /// The claims' table is full (it holds one per connection, as many as
    /// conntrack has room for): no port of any pool helps.
    Full,
}

/// Claims port `NAT_PORT_MIN + offset` (physical) of the pool of `key` for the
/// connection in `s`, if free (`s.claim`, which holds the port tried
/// otherwise). `lookup`: look before the insert (a taken
/// port costs no bucket lock), where ports are tried blind.
#[inline(always)]
fn try_port(s: &mut Scratch, key: NatPortKey, echo: bool, offset: u32, lookup: bool) -> Tried {
    let port = ((NAT_PORT_MIN as u32 + offset) as u16).to_be();
    if echo {
        s.reply_key.sport = port;
    } else {
        s.reply_key.dport = port;
    }
    // Built in `s.claim`, not on the stack: the loop's callback has none
    // to spare (its frame counts in the deepest chain of calls).
    s.claim = NatPortKey { port, ..key };
    if lookup && NAT_PORTS.get_ptr(&s.claim).is_some() {
        return Tried::Taken;
    }
    match NAT_PORTS.insert(&s.claim, &s.reply_key, BPF_NOEXIST as u64) {
        Ok(()) => Tried::Claimed,
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
    /// A random port of the pool (offset): the scan's first, and the
    /// bitmap walk's first word and first bit in a word.
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

/// `bpf_loop`'s callback, call `i`: first the pool's bitmap words from
/// the random start's round the pool (`word`; a pool without a bitmap:
/// `NAT_PORT_TRIES` random ports), then the scan's ports, from the random
/// start round the pool (each port once), whose claim sets the port's
/// bit. 1 stops the loop (claimed, the table full, or every port tried).
/// What the pool is, is worked out here, per call, as arithmetic: in the
/// caller it would be verified once per ENI of a group and way.
#[inline(never)]
extern "C" fn next_port(i: u64, ctx: *mut c_void) -> i64 {
    let scan = unsafe { &mut *(ctx as *mut Scan) };
    let s = unsafe { &mut *scan.s };
    let i = i as u32;
    let base = nat_bitmap_index(scan.key.eni, scan.key.proto);
    let tries = if base < NAT_BITMAP_LEN {
        scan.cap.div_ceil(64)
    } else {
        NAT_PORT_TRIES
    };
    let offset = if i < tries {
        if base < NAT_BITMAP_LEN {
            return word(scan, s, base, i);
        }
        unsafe { bpf_get_prandom_u32() }
            .checked_rem(scan.cap)
            .unwrap_or(0)
    } else {
        let n = i - tries;
        if n >= scan.cap {
            return 1;
        }
        // start < cap and n < cap: a subtraction, not a division.
        let o = scan.start.wrapping_add(n);
        if o >= scan.cap {
            o.wrapping_sub(scan.cap)
        } else {
            o
        }
    };
    let offset = phys(s, offset);
    match try_port(s, scan.key, scan.echo != 0, offset, true) {
        Tried::Claimed => {
            // Found by the scan: the bitmap said taken, or has no such bit
            // (past the array).
            let (i, mask) = bit(&s.claim);
            if let Some(w) = NAT_PORT_BITMAP.get_ptr_mut(i) {
                unsafe { atomic::fetch_or(w, mask) };
            }
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

/// Word `i` of the bitmap walk of the pool at `base` (from the start's
/// word, round the pool's first `cap` ports; the last word may be
/// partial): a free bit of it, the first at or after the start's bit round
/// the word, set with an atomic fetch-or, and its port claimed. A word
/// with no free bit, a bit another CPU set first, or a port claimed
/// without the bitmap (its bit now set) sends the loop on to the next
/// word: the scan after the walk finds what it passed. (The claims' table
/// full leaves the bit set, as a claim would: the scan still finds the
/// port; clearing it would keep a value live across the insert.)
#[inline(always)]
fn word(scan: &mut Scan, s: &mut Scratch, base: u32, i: u32) -> i64 {
    let words = scan.cap.div_ceil(64);
    // start / 64 < words and i < words: a subtraction, not a division.
    let at = (scan.start / 64).wrapping_add(i);
    let at = if at >= words {
        at.wrapping_sub(words)
    } else {
        at
    };
    let phys_at = phys_word(s, at);
    let Some(w) = NAT_PORT_BITMAP.get_ptr_mut(base.wrapping_add(phys_at)) else {
        return 0;
    };
    let tail = scan.cap % 64;
    let valid = if at + 1 == words && tail != 0 {
        (1u64 << tail) - 1
    } else {
        u64::MAX
    };
    let free = !unsafe { core::ptr::read_volatile(w) } & valid;
    if free == 0 {
        return 0;
    }
    let rot = scan.start % 64;
    let bit = (lowest_bit(free.rotate_right(rot)) + rot) % 64;
    let mask = 1u64 << bit;
    if unsafe { atomic::fetch_or(w, mask) } & mask != 0 {
        return 0;
    }
    match try_port(s, scan.key, false, phys_at * 64 + bit, false) {
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

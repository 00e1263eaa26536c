//! NAT port allocation, one allocator for both translators: a Hyperplane
//! ENI's source NAT (`hyperplane.rs`, one pool per ENI of the group, tried
//! in order) and a NAT gateway's (`nat_gateway.rs`, one pool). A port is
//! claimed in `NAT_PORTS` with `BPF_NOEXIST`, the claim's value the
//! connection's reply key; the agent's GC releases it with the connection.
//!
//! What differs is the caller's: the pool, its capacity (`config::capacity`)
//! and the claim's key, which for a NAT gateway names the destination (AWS
//! counts its connections per unique destination, so a port in use toward
//! one destination is free toward the others) and for a Hyperplane ENI
//! does not (`NatPortKey::of_reply`).
use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_get_prandom_u32};
use vpc_common::{CtKey, DropReason, NatPortKey, NAT_PORT_MIN, NAT_PORT_TRIES};

use crate::{maps::NAT_PORTS, stats};

/// `NAT_PORT_TRIES` independent random ports (RFC 6056 style: not
/// predictable) of the first `cap` of a pool, for the connection whose
/// reply key is `reply` (its destination the pool's address); the first
/// free one is claimed under `key` (the pool's claim but the port) and goes
/// into `reply` (`echo`: as the ICMP echo identifier, its `sport`) and
/// `claim`. `probes` counts across the pools of one allocation; a success
/// is counted in `NAT_STATS`. At occupancy p a pool refuses with
/// probability p^16. The pool's key is built once, before the loop, and
/// `echo` is a constant for a Hyperplane ENI: with a test of the protocol
/// in every probe (as `NatPortKey::of_reply` has) the verifier walked the
/// router 2.6 times as long (839,000 instructions instead of 328,000).
#[inline(always)]
pub fn probe(
    reply: &mut CtKey,
    claim: &mut NatPortKey,
    key: NatPortKey,
    echo: bool,
    cap: u32,
    probes: &mut u32,
) -> bool {
    if *probes == TABLE_FULL {
        return false;
    }
    let mut k = 0;
    while k < NAT_PORT_TRIES {
        k += 1;
        *probes += 1;
        let r = unsafe { bpf_get_prandom_u32() }
            .checked_rem(cap)
            .unwrap_or(0);
        let port = ((NAT_PORT_MIN as u32 + r) as u16).to_be();
        if echo {
            reply.sport = port;
        } else {
            reply.dport = port;
        }
        let key = NatPortKey { port, ..key };
        match NAT_PORTS.insert(&key, &*reply, BPF_NOEXIST as u64) {
            Ok(()) => {
                stats::nat_probes(*probes);
                *claim = key;
                return true;
            }
            // The claims' table is full (it holds one per connection, as
            // many as conntrack has room for): no port of any pool helps.
            Err(E2BIG) => {
                *probes = TABLE_FULL;
                return false;
            }
            Err(_) => {}
        }
    }
    false
}

const E2BIG: i32 = -7;
/// `probe`'s count once the claims' table refused an insert as full.
const TABLE_FULL: u32 = u32::MAX;

/// No pool gave a port after `probes` probes: `nat_port_exhausted`,
/// counted in `NAT_STATS` (a NAT gateway's `ErrorPortAllocation`); or the
/// table of claims was full, which is the tracking table's limit:
/// `ct_full`, as a connection of a host would get.
#[inline(always)]
pub fn exhausted(probes: u32) -> DropReason {
    if probes == TABLE_FULL {
        return DropReason::CtFull;
    }
    stats::nat_failed();
    DropReason::NatPortExhausted
}

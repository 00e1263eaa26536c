//! Conntrack's garbage collection and the removal of connections by the
//! reconciler: both entries, the NAT port claim and its bit in the ENI's
//! free-port bitmap, and the port's count of its conntrack allowance
//! (`allowance`), so that nothing leaks.
use anyhow::Result;
use aya::maps::HashMap;
use vpc_common::{ct_state, map_names, CtEntry, CtKey, NatPortKey, CT_DIR_ORIG, CT_DIR_REPLY};

use super::{
    allowance::{self, PortConnections},
    nat_claim, nat_claims_of, Maps, NatPortBitmap, Timeouts,
};

/// Removes expired connections (both entries) and their NAT port claims
/// (two for a function's connection through a NAT gateway: its ENI's and
/// the gateway's);
/// see `Maps::ct_gc`. `on_removed` gets every removed entry (both
/// directions, as removed) first.
pub(super) fn collect<M: Maps + ?Sized>(
    maps: &mut M,
    t: &Timeouts,
    on_removed: &mut dyn FnMut(&CtKey, &CtEntry),
) -> Result<usize> {
    let now = maps.datapath_now()?;
    let counts = port_connections(maps)?;
    let bitmap = NatPortBitmap::open(maps)?;
    let all: Vec<(CtKey, CtEntry)> = {
        let m: HashMap<_, CtKey, CtEntry> = HashMap::try_from(maps.map(map_names::CT)?)?;
        m.iter().filter_map(|r| r.ok()).collect()
    };
    let mut removed = 0;
    for (k, e) in &all {
        let released = {
            let ct = maps.map(map_names::CT)?;
            let mut m: HashMap<_, CtKey, CtEntry> = HashMap::try_from(&mut *ct)?;
            let expired = if e.dir == CT_DIR_ORIG {
                // Reset: gone at this pass, even in the tick of its RST.
                (k.proto == 6 && e.state == ct_state::RESET)
                    || now.saturating_sub(e.last_seen)
                        > timeout_of(t, k.proto, e) + gc_grace(t, k.proto, e)
            } else if m.get(&e.twin, 0).is_ok_and(|o| o.twin == *k) {
                false
            } else if k.proto != 6 || nat_claim(k, e).is_none() {
                // A reply entry is an orphan when its original is gone, or
                // was reopened as a new connection with another reply key
                // (an expired NAT flow whose tuple came back): otherwise it
                // would hold its NAT port for good.
                true
            } else if e.twin != CtKey::default() {
                // A TCP connection's original reopened (its client reused
                // the port): from now on the reply entry stands for the
                // closed connection and keeps its NAT port as long as a
                // closed connection does, while the peer may still hold
                // the tuple in TIME_WAIT. No packet follows it any more
                // (its twin is no key), and its claim keeps the key from
                // anyone else, so writing it races with nothing. Read
                // again: it may have gone with its original earlier in
                // this scan, and must not come back.
                match m.get(k, 0) {
                    Ok(live) if live.twin == e.twin => {
                        let held = CtEntry {
                            twin: CtKey::default(),
                            last_seen: now,
                            state: ct_state::CLOSED,
                            ..live
                        };
                        // BPF_EXIST: only over the entry read.
                        let _ = m.insert(k, held, 2);
                        false
                    }
                    Ok(_) => false,
                    Err(_) => true,
                }
            } else {
                now.saturating_sub(e.last_seen) > t.tcp_closed.as_nanos() as u64
            };
            if !expired {
                continue;
            }
            let ct: &aya::maps::Map = ct;
            let m: HashMap<_, CtKey, CtEntry> = HashMap::try_from(ct)?;
            // (reply key, claim) of what goes.
            let reply = if e.dir == CT_DIR_ORIG { e.twin } else { *k };
            if e.dir == CT_DIR_ORIG {
                match m.get(k, 0) {
                    Ok(fresh) if fresh.last_seen == e.last_seen => {}
                    _ => continue,
                }
                // Its reply entry, if it is still this connection's (a
                // connection the other way round may own the key now).
                if let Ok(r) = m.get(&e.twin, 0) {
                    if r.dir == CT_DIR_REPLY && r.twin == *k {
                        if let Some(r) = allowance::remove(ct, counts.as_ref(), &e.twin)? {
                            on_removed(&e.twin, &r);
                        }
                    }
                }
            }
            if let Some(gone) = allowance::remove(ct, counts.as_ref(), k)? {
                on_removed(k, &gone);
                removed += 1;
            }
            Some((nat_claims_of(k, e), reply))
        };
        if let Some((claims, reply)) = released {
            let mut ports: HashMap<_, NatPortKey, CtKey> =
                HashMap::try_from(maps.map(map_names::NAT_PORTS)?)?;
            for c in claims {
                if ports.get(&c, 0).is_ok_and(|holder| holder == reply) {
                    release(&mut ports, bitmap.as_ref(), &c);
                }
            }
        }
    }
    Ok(removed)
}

/// Ends the connections whose original-direction key `which` picks: both
/// entries (the reply entry only while it is still theirs), the NAT port
/// claim, and their ports' counts.
pub fn end_connections_where<M: Maps + ?Sized>(
    maps: &mut M,
    which: impl Fn(&CtKey) -> bool,
) -> Result<usize> {
    let all: Vec<(CtKey, CtEntry)> = maps
        .connections()?
        .into_iter()
        .filter(|(k, _)| which(k))
        .collect();
    let counts = port_connections(maps)?;
    let bitmap = NatPortBitmap::open(maps)?;
    let ct = maps.map(map_names::CT)?;
    let mut claims = vec![];
    for (k, e) in &all {
        let reply: HashMap<_, CtKey, CtEntry> = HashMap::try_from(&*ct)?;
        if reply
            .get(&e.twin, 0)
            .is_ok_and(|r| r.dir == CT_DIR_REPLY && r.twin == *k)
        {
            allowance::remove(ct, counts.as_ref(), &e.twin)?;
        }
        allowance::remove(ct, counts.as_ref(), k)?;
        claims.extend(nat_claims_of(k, e));
    }
    let mut ports: HashMap<_, NatPortKey, CtKey> =
        HashMap::try_from(maps.map(map_names::NAT_PORTS)?)?;
    for c in claims {
        release(&mut ports, bitmap.as_ref(), &c);
    }
    Ok(all.len())
}

/// Removes claim `c`, then clears its bit (an ENI pool's), in that order:
/// a bit set without a claim costs an allocation a retry, a bit cleared
/// under a claim would offer a taken port.
fn release<T: std::borrow::BorrowMut<aya::maps::MapData>>(
    ports: &mut HashMap<T, NatPortKey, CtKey>,
    bitmap: Option<&NatPortBitmap>,
    c: &NatPortKey,
) {
    if ports.remove(c).is_ok() {
        if let Some(b) = bitmap {
            b.clear(c);
        }
    }
}

/// The mapped counts of the conntrack allowance; none in a deployment
/// pinned by a version without them (its connections are not counted).
/// A map that is there but cannot be mapped is an error: its counts
/// would never come back.
fn port_connections<M: Maps + ?Sized>(maps: &mut M) -> Result<Option<PortConnections>> {
    match maps.map(map_names::PORT_CONNECTIONS) {
        Ok(m) => Ok(Some(PortConnections::open(m)?)),
        Err(_) => Ok(None),
    }
}

/// How long the GC keeps an expired entry: a TCP connection through a NAT
/// gateway or to an interface endpoint stays `tcp-closed` (60 s) past its
/// idle timeout, so that a late packet of it still finds it and gets the
/// RST (not one that was reset: it is gone at once).
fn gc_grace(t: &Timeouts, proto: u8, e: &CtEntry) -> u64 {
    let resets =
        e.route == vpc_common::route_kind::NAT_GATEWAY || e.peer == vpc_common::kind::VPC_ENDPOINT;
    if proto == 6 && resets && e.state != ct_state::RESET {
        t.tcp_closed.as_nanos() as u64
    } else {
        0
    }
}

/// Mirrors `ct::timeout` in the datapath.
pub fn timeout_of(t: &Timeouts, proto: u8, e: &CtEntry) -> u64 {
    let d = match proto {
        6 => match e.state {
            ct_state::ESTABLISHED => t.tcp_established,
            ct_state::CLOSING => t.tcp_closing,
            ct_state::CLOSED => t.tcp_closed,
            ct_state::RESET => std::time::Duration::ZERO,
            _ => t.tcp_syn,
        },
        17 if e.packets_orig >= 2 && e.packets_reply >= 2 => t.udp_stream,
        17 => t.udp,
        1 | 58 => t.icmp,
        _ => t.other,
    };
    let d = if e.route == vpc_common::route_kind::NAT_GATEWAY {
        d.min(t.nat_gateway_idle)
    } else if e.peer == vpc_common::kind::VPC_ENDPOINT {
        d.min(t.endpoint_idle)
    } else {
        d
    };
    d.as_nanos() as u64
}

//! IPv4 fragments. AWS's NAT gateway forwards UDP fragments and drops TCP
//! and ICMP ones; everywhere else the VPC here drops them (`fragment`):
//! without ports no group, ACL or connection applies. The first fragment
//! has the UDP header: it goes as any packet of its connection, which must
//! be a live one through a NAT gateway, and it records the connection for
//! the datagram's later fragments (`FRAGS`), which carry no ports. Those get
//! the connection's address translation alone (their bytes are not in any
//! checksum but the UDP one, which the first fragment's rewrite kept
//! right) and go where it goes, while its ACL verdict is current, for
//! 30 s after the first (`FRAG_TIMEOUT_NS`).
//!
//! The identification is not rewritten, so the first fragment also claims
//! the datagram's translated identity (`FRAG_IDS`): two hosts behind one
//! gateway sending the same id to one receiver would have it mix their
//! fragments; the second first fragment is dropped while the first's
//! datagram is in flight.
use aya_ebpf::bindings::BPF_NOEXIST;
use vpc_common::{
    route_kind, CtEntry, DropReason, FragClaim, FragEntry, FragKey, CT_DIR_ORIG, CT_F_DNAT,
    CT_F_SNAT, FRAG_TIMEOUT_NS,
};

use crate::{
    config::policy_epoch,
    copy::copy_key,
    ct,
    ctx::Ctx,
    maps::{Scratch, CT, FRAGS, FRAG_IDS},
    nat,
    parse::{Packet, IPPROTO_UDP},
    route,
    stats::finish,
};

#[inline(always)]
fn key(p: &Packet, space: u16) -> FragKey {
    let w = |a: &[u8; 16]| u32::from_ne_bytes([a[12], a[13], a[14], a[15]]);
    FragKey {
        saddr: w(&p.saddr),
        daddr: w(&p.daddr),
        id: p.ip_id,
        proto: p.proto,
        _pad: 0,
        space: space as u32,
    }
}

/// The datagram's identity as it leaves: its connection direction's
/// address translation applied to `k`.
#[inline(always)]
fn translated(k: &FragKey, e: &CtEntry) -> FragKey {
    let a = &e.nat_addr;
    let nat = u32::from_ne_bytes([a[12], a[13], a[14], a[15]]);
    let mut t = *k;
    // Translated, the datagram is in the other direction's space.
    t.space = e.twin.space as u32;
    if e.flags & CT_F_SNAT != 0 {
        t.saddr = nat;
    } else if e.flags & CT_F_DNAT != 0 {
        t.daddr = nat;
    }
    t
}

#[inline(always)]
fn stale(first: u64, now: u64) -> bool {
    now.saturating_sub(first) > FRAG_TIMEOUT_NS
}

/// A first fragment (its 5-tuple in `s.key`) may go on as a packet of its
/// connection: UDP of a connection through a NAT gateway, arriving on that
/// direction's port, whose translated identity no other datagram holds
/// (one from the same source, reusing its id, or stale, may be replaced).
/// Then its datagram is recorded for the rest.
#[inline(never)]
pub fn first(s: &Scratch, ifindex: u32, now: u64) -> bool {
    let p = &s.pkt;
    if p.v6 || p.proto != IPPROTO_UDP {
        return false;
    }
    let e = match unsafe { CT.get(&s.key) } {
        Some(e) if e.route == route_kind::NAT_GATEWAY && e.in_ifindex == ifindex => e,
        _ => return false,
    };
    let k = key(p, s.key.space);
    let id = translated(&k, e);
    let claim = FragClaim {
        owner: k,
        first: now,
    };
    if FRAG_IDS.insert(&id, &claim, BPF_NOEXIST as u64).is_err() {
        match unsafe { FRAG_IDS.get(&id) } {
            Some(c) if c.owner == k || stale(c.first, now) => {}
            _ => return false,
        }
        if FRAG_IDS.insert(&id, &claim, 0).is_err() {
            return false;
        }
    }
    let rec = FragEntry {
        ct: s.key,
        first: now,
    };
    FRAGS.insert(&k, &rec, 0).is_ok()
}

/// A later fragment: translated and delivered as its datagram's first was.
#[inline(never)]
pub fn later<C: Ctx>(ctx: &C, s: &mut Scratch, ifindex: u32, now: u64) -> u32 {
    finish(later_inner(ctx, s, ifindex, now))
}

#[inline(always)]
fn later_inner<C: Ctx>(
    ctx: &C,
    s: &mut Scratch,
    ifindex: u32,
    now: u64,
) -> Result<u32, DropReason> {
    let p = &s.pkt;
    if p.v6 || p.proto != IPPROTO_UDP {
        return Err(DropReason::Fragment);
    }
    let k = key(p, s.key.space);
    let first = match unsafe { FRAGS.get(&k) } {
        Some(f) if !stale(f.first, now) => {
            copy_key(&mut s.key, &f.ct);
            f.first
        }
        _ => return Err(DropReason::Fragment),
    };
    let e = match CT.get_ptr_mut(&s.key) {
        Some(e) => e,
        None => return Err(DropReason::Fragment),
    };
    let ent = unsafe { &*e };
    if ent.in_ifindex != ifindex || ent.route != route_kind::NAT_GATEWAY {
        return Err(DropReason::Fragment);
    }
    // Its datagram still holds the identity it leaves with.
    match unsafe { FRAG_IDS.get(&translated(&k, ent)) } {
        Some(c) if c.owner == k && c.first == first => {}
        _ => return Err(DropReason::Fragment),
    }
    let orig = if ent.dir == CT_DIR_ORIG {
        e
    } else {
        match CT.get_ptr_mut(&ent.twin) {
            Some(o) if unsafe { (*o).twin } == s.key => o,
            _ => return Err(DropReason::Fragment),
        }
    };
    if ct::expired(IPPROTO_UDP, unsafe { &*orig }, now) {
        return Err(DropReason::Fragment);
    }
    // The direction's ACLs (and route) passed under the policy in force.
    if ent.src_subnet != ent.dst_subnet && ent.acl_gen != policy_epoch().wrapping_add(1) {
        return Err(DropReason::Fragment);
    }
    let (flags, dir) = (ent.flags, ent.dir);
    ct::update(unsafe { &mut *orig }, &s.pkt, dir, now);
    let ent = unsafe { &*e };
    if flags & CT_F_SNAT != 0 {
        nat::ipv4_addr(ctx, true, &ent.nat_addr)?;
    } else if flags & CT_F_DNAT != 0 {
        nat::ipv4_addr(ctx, false, &ent.nat_addr)?;
    }
    route::deliver(ctx, ent.out_ifindex, &ent.mac, &ent.router_mac)
}

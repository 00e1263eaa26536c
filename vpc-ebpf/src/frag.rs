//! IPv4 fragments. AWS's NAT gateway forwards UDP fragments and drops TCP
//! and ICMP ones; everywhere else the VPC here drops them (`fragment`):
//! without ports no group, ACL or connection applies. The first fragment
//! has the UDP header: it goes as any packet of its connection, which must
//! be a live one through a NAT gateway, and it records the connection for
//! the datagram's later fragments (`FRAGS`), which carry no ports. Those get
//! the connection's address translation alone (their bytes are not in any
//! checksum but the UDP one, which the first fragment's rewrite kept
//! right) and go where it goes, while its ACL verdict is current.
use vpc_common::{route_kind, DropReason, FragKey, CT_DIR_ORIG, CT_F_DNAT, CT_F_SNAT};

use crate::{
    ct,
    ctx::Ctx,
    maps::{Scratch, CT, FRAGS},
    nat,
    parse::{Packet, IPPROTO_UDP},
    route,
    router::{finish, policy_epoch},
};

#[inline(always)]
fn key(p: &Packet) -> FragKey {
    let w = |a: &[u8; 16]| u32::from_ne_bytes([a[12], a[13], a[14], a[15]]);
    FragKey {
        saddr: w(&p.saddr),
        daddr: w(&p.daddr),
        id: p.ip_id,
        proto: p.proto,
        _pad: 0,
    }
}

/// A first fragment (its 5-tuple in `s.key`) may go on as a packet of its
/// connection: UDP of a connection through a NAT gateway, arriving on that
/// direction's port. Then its datagram is recorded for the rest.
#[inline(always)]
pub fn first(s: &Scratch, ifindex: u32) -> bool {
    let p = &s.pkt;
    if p.v6 || p.proto != IPPROTO_UDP {
        return false;
    }
    match unsafe { CT.get(&s.key) } {
        Some(e) if e.route == route_kind::NAT_GATEWAY && e.in_ifindex == ifindex => {}
        _ => return false,
    }
    FRAGS.insert(&key(p), &s.key, 0).is_ok()
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
    match unsafe { FRAGS.get(&key(p)) } {
        Some(k) => s.key = *k,
        None => return Err(DropReason::Fragment),
    }
    let e = match CT.get_ptr_mut(&s.key) {
        Some(e) => e,
        None => return Err(DropReason::Fragment),
    };
    let ent = unsafe { &*e };
    if ent.in_ifindex != ifindex || ent.route != route_kind::NAT_GATEWAY {
        return Err(DropReason::Fragment);
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

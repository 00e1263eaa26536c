//! The internet gateway: 1:1 NAT between a host's private IPv4 address and
//! its public one (`PRIVATE_TO_PUBLIC`, `PUBLIC_TO_PRIVATE`), between a VPC subnet and the internet's
//! test hosts; the ports never change; IPv6 passes untranslated. The
//! egress-only internet gateway: IPv6 out, nothing in. Connections are
//! tracked as any other (groups are stateful).
use vpc_common::{
    for_gen, kind, route_kind, DropReason, PortInfo, CT_F_DNAT, CT_F_SNAT, DIR_EGRESS, DIR_INGRESS,
    GLOBAL_SPACE,
};

use crate::{
    config,
    copy::{addr_key, copy_addr},
    ct,
    ctx::Ctx,
    flowlog,
    maps::Scratch,
    maps::PRIVATE_TO_PUBLIC,
    maps::PUBLIC_TO_PRIVATE,
    nat, policy, route, stats,
};

/// A new flow from a VPC host whose subnet routes it to the internet
/// gateway (`route`), or for IPv6 to either gateway. Checks as at AWS: the
/// sender's outbound groups, its subnet's outbound ACL (the internet has
/// neither groups nor ACLs); then an IPv4 source becomes the host's public
/// address, while IPv6 goes as it is (a VPC's IPv6 addresses are global).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn to_internet<C: Ctx>(
    ctx: &C,
    s: &mut Scratch,
    port: &PortInfo,
    ifindex: u32,
    now: u64,
    epoch: u32,
    route: u8,
) -> Result<u32, DropReason> {
    let p = &s.pkt;
    let v6 = p.v6;
    // The source the internet sees, in the scratch: the stack is short.
    if v6 {
        copy_addr(&mut s.hop.addr, &p.saddr);
    } else if route != route_kind::INTERNET_GATEWAY {
        // An egress-only gateway routes IPv6 only (its routes are).
        return Err(DropReason::NoRoute);
    } else {
        match unsafe { PRIVATE_TO_PUBLIC.get(&addr_key(port.vpc, &p.saddr)) } {
            Some(a) => copy_addr(&mut s.hop.addr, a),
            None => return Err(DropReason::NoPublicAddress),
        }
    }
    // Nothing leaves the project's namespaces: only test hosts answer, and
    // the AWS services at their public addresses.
    let ep = match route::endpoint(GLOBAL_SPACE, &p.daddr) {
        Ok(e) if e.kind == kind::INTERNET_HOST || e.kind == kind::AWS_SERVICE => e,
        _ => return Err(DropReason::InternetUnreachable),
    };
    let track = !p.is_icmp() || p.is_echo_request();
    if track && !ct::opens(p) {
        return Err(DropReason::CtInvalid);
    }
    let gen = epoch & 1;
    let l4port = p.policy_port();
    policy::groups(
        for_gen(&port.policy, gen),
        DIR_EGRESS,
        v6,
        &p.daddr,
        p.proto,
        l4port,
    )?;
    policy::boundary(p, gen, port.subnet, 0, &p.saddr, &p.daddr)?;
    let sport = p.sport;
    if track {
        s.reply_key = ct::reply_key(&s.key, p.is_icmp());
        copy_addr(&mut s.reply_key.daddr, &s.hop.addr);
        // The reply comes from the internet.
        s.reply_key.space = GLOBAL_SPACE as u16;
        ct::bind(s, ifindex, ep, port.subnet, epoch, route)?;
        let (snat, dnat) = if v6 { (0, 0) } else { (CT_F_SNAT, CT_F_DNAT) };
        s.orig.flags = snat;
        copy_addr(&mut s.orig.nat_addr, &s.hop.addr);
        s.orig.nat_port = sport;
        s.reply.flags = dnat;
        copy_addr(&mut s.reply.nat_addr, &s.pkt.saddr);
        s.reply.nat_port = sport;
        ct::no_eni(s);
    }
    if !v6 {
        nat::rewrite(ctx, &s.pkt, true, &s.hop.addr, sport)?;
    }
    if track {
        ct::open(s, now)?;
    }
    route::deliver_to(ctx, ep)
}

/// A new flow from an internet test host (its port's source check passed):
/// IPv4 to a public address, translated to the host's private address;
/// IPv6 to a VPC address itself. Checked as at AWS by the subnet's inbound
/// ACL and the host's inbound groups. The gateway serves the host only
/// while the host's subnet routes the peer to it (detached:
/// `route_blackhole`; no such route: the reply could not leave, so the
/// connection is refused here); an egress-only gateway there opens nothing
/// from the internet (`egress_only_inbound`). To another host of the
/// internet (AWS's public endpoints among them) it goes [`across`].
#[inline(never)]
pub fn from_internet<C: Ctx>(ctx: &C, s: &mut Scratch, ifindex: u32, now: u64) -> u32 {
    let res = from_internet_inner(ctx, s, ifindex, now);
    if let Err(r) = res {
        // Refused by the host's inbound rules: a REJECT on its interface,
        // to its private address (`hop.addr`, set before any such check).
        let Scratch {
            pkt, fl_key, hop, ..
        } = s;
        flowlog::reject_arriving(fl_key, pkt, &hop.addr, r, now);
    }
    stats::finish(res)
}

#[inline(always)]
fn from_internet_inner<C: Ctx>(
    ctx: &C,
    s: &mut Scratch,
    ifindex: u32,
    now: u64,
) -> Result<u32, DropReason> {
    let p = &s.pkt;
    let v6 = p.v6;
    // The private address, in the scratch: on the stack its zeros became a
    // `memset` call. An IPv4 address that is nobody's public one may be
    // another host of the internet's.
    // And its address space: a public address's host's VPC.
    let private = &mut s.hop.addr;
    let mut public = true;
    let mut space = GLOBAL_SPACE;
    if v6 {
        copy_addr(private, &p.daddr);
    } else {
        match unsafe { PUBLIC_TO_PRIVATE.get(&p.daddr) } {
            Some(a) => {
                copy_addr(private, &a.addr);
                space = a.space;
            }
            None => {
                public = false;
                copy_addr(private, &p.daddr);
            }
        }
    }
    let private = &s.hop.addr;
    let ep = route::endpoint(space, private)?;
    if ep.kind == kind::INTERNET_HOST {
        return across(ctx, s, ifindex, ep, now);
    }
    if !public || (ep.kind != kind::HOST && ep.kind != kind::HYPERPLANE_ENI) {
        return Err(DropReason::NoRoute);
    }
    let epoch = config::policy_epoch();
    let gen = epoch & 1;
    let r = route::lookup(gen, ep.subnet, v6, &p.saddr)?;
    if r.kind != route_kind::INTERNET_GATEWAY {
        return Err(route::refused(r.kind));
    }
    // V2N is outbound only, IPv6 as well: a Hyperplane ENI's global
    // address opens nothing (IPv4 never gets here: it has no public one).
    if ep.kind != kind::HOST {
        return Err(DropReason::HyperplaneUnsolicited);
    }
    let track = !p.is_icmp() || p.is_echo_request();
    if track && !ct::opens(p) {
        return Err(DropReason::CtInvalid);
    }
    policy::boundary(p, gen, 0, ep.subnet, &p.saddr, private)?;
    policy::groups(
        for_gen(&ep.policy, gen),
        DIR_INGRESS,
        v6,
        &p.saddr,
        p.proto,
        p.policy_port(),
    )?;
    // The port that stays (ICMP echo: the identifier).
    let dport = if p.is_icmp() { p.sport } else { p.dport };
    if track {
        s.reply_key = ct::reply_key(&s.key, p.is_icmp());
        copy_addr(&mut s.reply_key.saddr, &s.hop.addr);
        s.reply_key.space = space as u16;
        ct::bind(s, ifindex, ep, 0, epoch, route_kind::INTERNET_GATEWAY)?;
        let (dnat, snat) = if v6 { (0, 0) } else { (CT_F_DNAT, CT_F_SNAT) };
        s.orig.flags = dnat;
        copy_addr(&mut s.orig.nat_addr, &s.hop.addr);
        s.orig.nat_port = dport;
        s.reply.flags = snat;
        copy_addr(&mut s.reply.nat_addr, &s.pkt.daddr);
        s.reply.nat_port = dport;
        ct::no_eni(s);
    }
    if !v6 {
        nat::rewrite(ctx, &s.pkt, false, &s.hop.addr, dport)?;
    }
    if track {
        ct::open(s, now)?;
    }
    route::deliver_to(ctx, ep)
}

/// A new flow between two hosts of the internet (a test host and AWS's
/// public endpoints, or two test hosts): the internet routes it as it is,
/// no gateway, no NAT, no groups or ACLs (no VPC is crossed). Tracked like
/// any other, so that only its replies come back.
#[inline(always)]
fn across<C: Ctx>(
    ctx: &C,
    s: &mut Scratch,
    ifindex: u32,
    ep: &'static vpc_common::Endpoint,
    now: u64,
) -> Result<u32, DropReason> {
    let p = &s.pkt;
    let track = !p.is_icmp() || p.is_echo_request();
    if track && !ct::opens(p) {
        return Err(DropReason::CtInvalid);
    }
    if track {
        s.reply_key = ct::reply_key(&s.key, p.is_icmp());
        // Neither side has a subnet: never re-checked against a policy.
        ct::bind(s, ifindex, ep, 0, config::policy_epoch(), route_kind::LOCAL)?;
        s.orig.flags = 0;
        s.reply.flags = 0;
        ct::no_eni(s);
        ct::open(s, now)?;
    }
    route::deliver_to(ctx, ep)
}

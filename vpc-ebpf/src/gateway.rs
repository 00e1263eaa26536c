//! The internet gateway: 1:1 NAT between a host's private IPv4 address and
//! its public one (`PUBLIC_IPS`), between a VPC subnet and the internet's
//! test hosts. Connections are tracked as any other (groups are stateful);
//! the ports never change.
use vpc_common::{
    for_gen, kind, route_kind, DropReason, PortInfo, CT_F_DNAT, CT_F_SNAT, DIR_EGRESS, DIR_INGRESS,
};

use crate::{
    ct,
    ctx::Ctx,
    maps::{Scratch, PUBLIC_IPS},
    nat,
    parse::copy_addr,
    policy, route,
    router::{bind, boundary, open, policy_epoch},
    stats,
};

#[inline(always)]
fn finish(r: Result<u32, DropReason>) -> u32 {
    match r {
        Ok(action) => action,
        Err(reason) => stats::drop(reason),
    }
}

/// A new flow from a VPC host whose subnet routes it to the internet
/// gateway. Checks as at AWS: the sender's outbound groups, its subnet's
/// outbound ACL (the internet has neither groups nor ACLs); then the
/// source becomes the host's public address.
#[inline(always)]
pub fn to_internet<C: Ctx>(
    ctx: &C,
    s: &mut Scratch,
    port: &PortInfo,
    ifindex: u32,
    now: u64,
    epoch: u32,
) -> Result<u32, DropReason> {
    let p = &s.pkt;
    // IPv6 through an internet gateway is not there yet.
    if p.v6 {
        return Err(DropReason::InternetUnreachable);
    }
    let mut public = [0u8; 16];
    match unsafe { PUBLIC_IPS.get(&p.saddr) } {
        Some(a) => copy_addr(&mut public, a),
        None => return Err(DropReason::NoPublicAddress),
    }
    // Nothing leaves the project's namespaces: only test hosts answer.
    let ep = match route::endpoint(&p.daddr) {
        Ok(e) if e.kind == kind::INTERNET_HOST => e,
        _ => return Err(DropReason::InternetUnreachable),
    };
    let track = !p.is_icmp() || p.is_echo_request();
    if track && !ct::opens(p) {
        return Err(DropReason::CtInvalid);
    }
    let gen = epoch & 1;
    let l4port = p.policy_port();
    if !policy::allowed(
        for_gen(&port.policy, gen),
        DIR_EGRESS,
        false,
        &p.daddr,
        p.proto,
        l4port,
    ) {
        return Err(DropReason::SgEgressDenied);
    }
    boundary(p, gen, port.subnet, 0, &p.saddr, &p.daddr)?;
    let sport = p.sport;
    if track {
        s.reply_key = ct::reply_key(&s.key, p.is_icmp());
        copy_addr(&mut s.reply_key.daddr, &public);
        bind(
            s,
            ifindex,
            ep,
            port.subnet,
            epoch,
            route_kind::INTERNET_GATEWAY,
        )?;
        s.orig.flags = CT_F_SNAT;
        copy_addr(&mut s.orig.nat_addr, &public);
        s.orig.nat_port = sport;
        s.reply.flags = CT_F_DNAT;
        copy_addr(&mut s.reply.nat_addr, &s.pkt.saddr);
        s.reply.nat_port = sport;
        clear_eni(s);
    }
    nat::rewrite(ctx, &s.pkt, true, &public, sport)?;
    if track {
        open(s, now)?;
    }
    route::deliver_to(ctx, ep)
}

/// A new flow from an internet test host (its port's source check passed),
/// to a public address: translated to the host's private address and
/// checked as at AWS by the subnet's inbound ACL and the host's inbound
/// groups. The gateway serves the host only while the host's subnet routes
/// the peer to it (detached: `route_blackhole`; no such route: the reply
/// could not leave, so the connection is refused here).
#[inline(never)]
pub fn from_internet<C: Ctx>(ctx: &C, s: &mut Scratch, ifindex: u32, now: u64) -> u32 {
    finish(from_internet_inner(ctx, s, ifindex, now))
}

#[inline(always)]
fn from_internet_inner<C: Ctx>(
    ctx: &C,
    s: &mut Scratch,
    ifindex: u32,
    now: u64,
) -> Result<u32, DropReason> {
    let p = &s.pkt;
    if p.v6 {
        return Err(DropReason::NoRoute);
    }
    let mut private = [0u8; 16];
    match unsafe { PUBLIC_IPS.get(&p.daddr) } {
        Some(a) => copy_addr(&mut private, a),
        None => return Err(DropReason::NoRoute),
    }
    let ep = route::endpoint(&private)?;
    if ep.kind != kind::HOST {
        return Err(DropReason::NoRoute);
    }
    let epoch = policy_epoch();
    let gen = epoch & 1;
    let r = route::lookup(gen, ep.subnet, false, &p.saddr)?;
    if r.kind != route_kind::INTERNET_GATEWAY {
        return Err(route::refused(r.kind));
    }
    let track = !p.is_icmp() || p.is_echo_request();
    if track && !ct::opens(p) {
        return Err(DropReason::CtInvalid);
    }
    boundary(p, gen, 0, ep.subnet, &p.saddr, &private)?;
    if !policy::allowed(
        for_gen(&ep.policy, gen),
        DIR_INGRESS,
        false,
        &p.saddr,
        p.proto,
        p.policy_port(),
    ) {
        return Err(DropReason::SgIngressDenied);
    }
    let dport = p.dport;
    if track {
        s.reply_key = ct::reply_key(&s.key, p.is_icmp());
        copy_addr(&mut s.reply_key.saddr, &private);
        bind(s, ifindex, ep, 0, epoch, route_kind::INTERNET_GATEWAY)?;
        s.orig.flags = CT_F_DNAT;
        copy_addr(&mut s.orig.nat_addr, &private);
        s.orig.nat_port = dport;
        s.reply.flags = CT_F_SNAT;
        copy_addr(&mut s.reply.nat_addr, &s.pkt.daddr);
        s.reply.nat_port = dport;
        clear_eni(s);
    }
    nat::rewrite(ctx, &s.pkt, false, &private, dport)?;
    if track {
        open(s, now)?;
    }
    route::deliver_to(ctx, ep)
}

/// Not a Hyperplane connection: no ENI, no NAT port claim.
#[inline(always)]
fn clear_eni(s: &mut Scratch) {
    s.orig.eni = 0;
    s.reply.eni = 0;
    s.orig.eni_subnet = 0;
    s.reply.eni_subnet = 0;
}

//! Hyperplane ENIs: a Lambda execution environment's new flows leave the
//! VPC side from its function's Hyperplane ENI, with source NAT to the
//! ENI's address and a NAT port of its own (V2N, outbound only). The ENIs
//! of one (subnet, security-group set) form a group, tried in order for a
//! port (`claim_nat_port`); the checks see the ENI chosen.
use vpc_common::{
    addr_space, cfg, kind, route_kind, CtKey, DropReason, Endpoint, EniGroup, NatPortKey, PortInfo,
    CT_F_DNAT, CT_F_SNAT, GLOBAL_SPACE, MAX_GROUP_ENIS, NAT_PORT_RANGE,
};

use crate::{
    allowance, config,
    copy::copy_addr,
    ct,
    ctx::Ctx,
    flowlog,
    maps::{Scratch, ENIS, ENI_GROUPS},
    nat, nat_gateway,
    parse::{IPPROTO_TCP, IPPROTO_UDP},
    policy, port_allocation, resolver, route, stats,
};

/// A new flow from a Lambda execution environment (router port `port`):
/// out through its function's Hyperplane ENI with source NAT; or
/// `nat_gateway::HOP` when its route leads to a NAT gateway.
#[inline(never)]
pub fn new_flow<C: Ctx>(ctx: &C, s: &mut Scratch, port: &PortInfo, ifindex: u32, now: u64) -> u32 {
    stats::finish(new_flow_inner(ctx, s, port, ifindex, now))
}

#[inline(always)]
fn new_flow_inner<C: Ctx>(
    ctx: &C,
    s: &mut Scratch,
    port: &PortInfo,
    ifindex: u32,
    now: u64,
) -> Result<u32, DropReason> {
    let p = &s.pkt;
    if p.proto != IPPROTO_TCP && p.proto != IPPROTO_UDP {
        return Err(DropReason::FunctionProtocol);
    }
    let group = match unsafe { ENI_GROUPS.get(&port.eni_group) } {
        Some(g) if g.count > 0 => g,
        _ => return Err(DropReason::NoRoute),
    };
    // Every ENI of a group has the same subnet, groups and VPC.
    let first = match unsafe { ENIS.get(&group.enis[0]) } {
        Some(e) => e,
        None => return Err(DropReason::NoRoute),
    };
    if p.v6 && first.has_v6 == 0 {
        return Err(DropReason::Ipv6NotAllowed);
    }
    // The function's packets leave the VPC side from its ENI's subnet.
    let epoch = config::policy_epoch();
    let r = route::lookup(epoch & 1, first.subnet, p.v6, &p.daddr)?;
    if r.kind == route_kind::NAT_GATEWAY {
        return Ok(to_nat_gateway(s, port, first, r.id, ifindex, epoch, now));
    }
    // IPv6 leaves through either internet gateway from the ENI's own
    // (global) address; IPv4 would need a public one, which an ENI of
    // Lambda never has (`no_public_address`), but Lambda's own VPC (no
    // VPC: a function without `VpcConfig`) has, its NAT address.
    let internet = (p.v6 || first.vpc == 0)
        && (r.kind == route_kind::INTERNET_GATEWAY
            || r.kind == route_kind::EGRESS_ONLY_INTERNET_GATEWAY);
    // The ENI's NAT puts the packet in its VPC's address space.
    let space = addr_space(first.vpc, p.v6);
    let ep = match r.kind {
        route_kind::LOCAL => route::endpoint(space, &p.daddr)?,
        route_kind::GATEWAY_ENDPOINT => route::gateway_service(&p.daddr)?,
        route_kind::NETWORK_INTERFACE => route::middlebox(first.vpc, r.id)?,
        // Nothing leaves the project's namespaces: only test hosts answer.
        _ if internet => match route::endpoint(GLOBAL_SPACE, &p.daddr) {
            Ok(e) if e.kind == kind::INTERNET_HOST || e.kind == kind::AWS_SERVICE => e,
            _ => return Err(DropReason::InternetUnreachable),
        },
        k => return Err(route::refused(k)),
    };
    if !internet {
        route::endpoint_allowed(r.kind, ep, first.vpc)?;
    }
    if !internet
        && (ep.kind == kind::EXEC_ENV
            || ep.kind == kind::HYPERPLANE_ENI
            || ep.kind == kind::INTERNET_HOST)
    {
        return Err(DropReason::NoRoute);
    }
    if !ct::opens(p) {
        return Err(DropReason::CtInvalid);
    }
    s.reply_key = CtKey {
        saddr: p.daddr,
        daddr: p.daddr,
        sport: p.dport,
        dport: 0,
        proto: p.proto,
        _pad0: 0,
        // Replies arrive in the receiver's space (the ENI's VPC, or the
        // global one: a gateway endpoint's service, the internet).
        space: addr_space(ep.vpc, p.v6) as u16,
    };
    let id = claim_nat_port(s, group)?;
    let claim = s.claim;
    // Until the connection's entries are in, the claim is this packet's to
    // give back; from then on it is the connection's, and goes with it.
    let taken = r.kind;
    if let Err(r) = open(ctx, s, id, ep, ifindex, now, epoch, taken) {
        port_allocation::release(&claim);
        let w = flowlog::reject_window(r);
        if w != 0 {
            // As seen on the ENI: its address and the port it chose.
            let Scratch {
                pkt: p,
                fl_key,
                reply_key,
                ..
            } = s;
            let (eni_addr, nat_port) = (&reply_key.daddr, reply_key.dport);
            flowlog::key(
                fl_key, eni_addr, nat_port, &p.daddr, p.dport, &p.saddr, &p.daddr,
            );
            flowlog::reject(fl_key, p, r, w, now);
        }
        return Err(r);
    }
    let action = route::deliver_to(ctx, ep)?;
    stats::eni_forwarded(s.orig.eni);
    Ok(action)
}

/// Two translations, as at AWS: the function's packet leaves its
/// Hyperplane ENI with the ENI's address and a port of the ENI, then NAT
/// gateway `gw` translates that to its Elastic IP and a port of its own
/// (`nat_gateway::via`, which calls `leave_eni` once the gateway's own
/// checks of the flow passed), in one rewrite.
#[inline(always)]
fn to_nat_gateway(
    s: &mut Scratch,
    port: &PortInfo,
    first: &vpc_common::HyperplaneEni,
    gw: u32,
    ifindex: u32,
    epoch: u32,
    now: u64,
) -> u32 {
    let hop = nat_gateway::hop(
        &mut s.hop,
        gw,
        ifindex,
        epoch,
        first.subnet,
        now,
        &first.policy,
        &first.addr4,
    );
    s.hop.group = port.eni_group;
    hop
}

/// A function's connection into a NAT gateway (`s.hop`) takes a port of its Hyperplane ENI,
/// counted against the ENI's capacity, the next ENI of the group taking
/// the overflow as for any connection: the checks on the way to the
/// gateway then see the ENI chosen (its address), and the gateway's
/// translation starts from it. `via` gives the claim back if the
/// connection does not open.
#[inline(always)]
pub fn leave_eni(s: &mut Scratch) -> Result<(), DropReason> {
    let group = match unsafe { ENI_GROUPS.get(&s.hop.group) } {
        Some(g) if g.count > 0 => g,
        _ => return Err(DropReason::NoRoute),
    };
    // The remote side; `claim_nat_port` fills in the ENI's.
    s.reply_key = ct::reply_key(&s.key, false);
    let id = claim_nat_port(s, group)?;
    let eni = match unsafe { ENIS.get(&id) } {
        Some(e) => e,
        None => {
            port_allocation::release(&s.claim);
            return Err(DropReason::NoRoute);
        }
    };
    s.hop.eni = eni.pool;
    s.hop.eni_claim = s.claim;
    copy_addr(&mut s.hop.addr, &eni.addr4);
    Ok(())
}

/// A NAT port for the connection in `s` (its `reply_key` holds the remote
/// side): the ENIs of the group in order, on each a free port if it has
/// one (`port_allocation::probe`: its free-port bitmap, then a scan), so
/// an ENI fills to its capacity before the next one takes the overflow. Returns
/// the ENI id, the claim in `s.claim`; every ENI full is
/// `nat_port_exhausted`.
/// A BPF function of its own: each probe leaves the verifier a different
/// state (the probe count), and only the result crosses back, so what
/// follows is verified once rather than once per probe.
#[inline(never)]
fn claim_nat_port(s: &mut Scratch, group: &EniGroup) -> Result<u32, DropReason> {
    let cap = config::capacity(cfg::ENI_CAPACITY, NAT_PORT_RANGE);
    let v6 = s.pkt.v6;
    port_allocation::load_slices(s);
    let mut probes = 0u32;
    let mut i = 0usize;
    while i < MAX_GROUP_ENIS {
        if i as u32 >= group.count {
            break;
        }
        let id = group.enis[i];
        i += 1;
        let eni = match unsafe { ENIS.get(&id) } {
            Some(e) if !(v6 && e.has_v6 == 0) => e,
            _ => continue,
        };
        copy_addr(
            &mut s.reply_key.daddr,
            if v6 { &eni.addr6 } else { &eni.addr4 },
        );
        // Unique per (ENI, protocol): the claim names no destination.
        let key = NatPortKey::of_reply(eni.pool, &s.reply_key, false);
        if port_allocation::probe(s, key, false, cap, &mut probes) {
            return Ok(id);
        }
    }
    Err(port_allocation::exhausted(probes))
}

/// The checks, the source NAT and the conntrack entries of a function
/// connection whose NAT port on ENI `id` is claimed (`s.reply_key`
/// complete), under policy `epoch`, by a route of kind `route` (local, or
/// an internet gateway for IPv6). `Ok` once the entries are in.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn open<C: Ctx>(
    ctx: &C,
    s: &mut Scratch,
    id: u32,
    ep: &Endpoint,
    ifindex: u32,
    now: u64,
    epoch: u32,
    route: u8,
) -> Result<(), DropReason> {
    let eni = match unsafe { ENIS.get(&id) } {
        Some(e) => e,
        None => return Err(DropReason::NoRoute),
    };
    let p = &s.pkt;
    let eni_addr = p.pick(&eni.addr6, &eni.addr4);
    let unfiltered = resolver::unfiltered(p, ep)?;
    if unfiltered {
        allowance::linklocal(ifindex, now)?;
    } else if eni.vpc != 0 {
        // Lambda's own VPC (no VPC) has no groups or ACLs of the customer's.
        policy::admit(p, epoch, &eni.policy, eni.subnet, ep, eni_addr)?;
    }
    let nat_port = s.reply_key.dport;
    s.orig.eni = eni.pool as u16;
    s.reply.eni = eni.pool as u16;
    s.orig.eni_subnet = eni.subnet as u16;
    s.reply.eni_subnet = eni.subnet as u16;
    s.orig.flags = CT_F_SNAT;
    copy_addr(&mut s.orig.nat_addr, eni_addr);
    s.orig.nat_port = nat_port;
    s.reply.flags = CT_F_DNAT;
    copy_addr(&mut s.reply.nat_addr, &s.pkt.saddr);
    s.reply.nat_port = s.pkt.sport;
    ct::bind(s, ifindex, ep, eni.subnet, epoch, route)?;
    if unfiltered {
        resolver::local_to_sender(s);
    }
    if ep.ifindex == 0 {
        return Err(DropReason::NoEgressPort);
    }
    // Rewritten before the entries go in: a packet dropped after the rewrite
    // does no harm, a connection without its packet would hold its port.
    nat::rewrite(ctx, &s.pkt, true, &s.orig.nat_addr, nat_port)?;
    ct::open(s, now)
}

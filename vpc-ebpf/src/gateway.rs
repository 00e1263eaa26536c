//! Gateways out of a VPC. The internet gateway: 1:1 NAT between a host's
//! private IPv4 address and its public one (`PUBLIC_IPS`), between a VPC
//! subnet and the internet's test hosts; the ports never change; IPv6
//! passes untranslated (and an egress-only gateway lets none in). The NAT
//! gateway: source NAT to its Elastic IP and a port of its own. Connections
//! are tracked as any other (groups are stateful).
use aya_ebpf::bindings::BPF_NOEXIST;
use vpc_common::{
    cfg, for_gen, kind, route_kind, subnet_acl_index, CtEntry, DropReason, NatPortKey, PortInfo,
    CT_DIR_ORIG, CT_F_DNAT, CT_F_SNAT, DIR_EGRESS, DIR_INGRESS, NAT_GATEWAY_CAPACITY, NAT_PORT_MIN,
    NAT_PORT_TRIES,
};

use crate::{
    ct,
    ctx::Ctx,
    maps::{Scratch, ENIS, ENI_GROUPS, NAT_PORTS, PORTS, PUBLIC_IPS, SUBNET_ACLS},
    nat,
    parse::{
        copy_addr, read, write, Packet, ETH_HLEN, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, TCP_RST,
    },
    policy, route,
    router::{bind, boundary, capacity, finish, open, policy_epoch},
    stats,
};

/// A new flow into NAT gateway `id`, and who sends it as the VPC sees it:
/// a host, or a function's Hyperplane ENI (its groups, subnet, address).
/// Passed in `Scratch::hop`.
pub struct NatHop {
    pub id: u32,
    pub ifindex: u32,
    pub epoch: u32,
    pub subnet: u32,
    pub now: u64,
    pub policy: [u32; 2],
    pub addr: [u8; 16],
}

/// A new flow routed to NAT gateway `id` (its `ENIS` entry: its Elastic IP,
/// subnet and port pool). The checks, as at AWS: the sender's outbound
/// groups, the ACLs from the sender's subnet into the gateway's, then the
/// gateway's subnet routes the destination (to its internet gateway) and
/// its outbound ACL applies; a NAT gateway has no groups. Then the source
/// becomes the Elastic IP and a port the gateway claims in `NAT_PORTS`, as
/// a Hyperplane ENI does (ICMP echo: an identifier of its own). TCP, UDP
/// and ICMP echo only; IPv6 is not translated (no NAT64).
/// A BPF function of its own (hosts and functions both come here, and the
/// verifier walks it once); it counts its drops and returns the action.
#[inline(never)]
pub fn via_nat_gateway<C: Ctx>(ctx: &C, s: &mut Scratch) -> u32 {
    finish(via_nat_gateway_inner(ctx, s))
}

#[inline(always)]
fn via_nat_gateway_inner<C: Ctx>(ctx: &C, s: &mut Scratch) -> Result<u32, DropReason> {
    let from = &s.hop;
    let (id, ifindex, now, epoch) = (from.id, from.ifindex, from.now, from.epoch);
    let (from_policy, from_subnet) = (from.policy, from.subnet);
    let p = &s.pkt;
    // TCP, UDP, ICMP echo (errors travel with their connection).
    let icmp = p.proto == IPPROTO_ICMP;
    if p.v6
        || (p.proto != IPPROTO_TCP && p.proto != IPPROTO_UDP && !icmp)
        || (icmp && !p.is_echo_request())
    {
        return Err(DropReason::NatGatewayProtocol);
    }
    let gw = match unsafe { ENIS.get(&id) } {
        Some(g) => g,
        None => return Err(DropReason::RouteBlackhole),
    };
    let gen = epoch & 1;
    let r = route::lookup(gen, gw.subnet, false, &p.daddr)?;
    if r.kind != route_kind::INTERNET_GATEWAY {
        return Err(route::refused(r.kind));
    }
    // AWS: an internet gateway drops what a private NAT gateway sends it
    // (and nothing else a private one could reach exists here yet).
    if gw.nat_private != 0 {
        return Err(DropReason::NatGatewayPrivateInternet);
    }
    let ep = match route::endpoint(&p.daddr) {
        Ok(e) if e.kind == kind::INTERNET_HOST => e,
        _ => return Err(DropReason::InternetUnreachable),
    };
    if !ct::opens(p) {
        return Err(DropReason::CtInvalid);
    }
    let port = p.policy_port();
    if !policy::allowed(
        for_gen(&from_policy, gen),
        DIR_EGRESS,
        false,
        &p.daddr,
        p.proto,
        port,
    ) {
        return Err(DropReason::SgEgressDenied);
    }
    boundary(p, gen, from_subnet, gw.subnet, &s.hop.addr, &p.daddr)?;
    boundary(p, gen, gw.subnet, 0, &gw.addr4, &p.daddr)?;
    let (gw_subnet, pool) = (gw.subnet, gw.pool);
    // The reply's key but the gateway's port (ICMP: the echo reply's
    // identifier, and its type in `dport`).
    s.reply_key = ct::reply_key(&s.key, icmp);
    copy_addr(&mut s.reply_key.daddr, &gw.addr4);
    claim_port(s, pool)?;
    let claim = s.claim;
    if let Err(r) = nat_gateway_open(
        ctx,
        s,
        ep,
        from_subnet,
        gw_subnet,
        pool,
        ifindex,
        now,
        epoch,
    ) {
        let _ = NAT_PORTS.remove(&claim);
        return Err(r);
    }
    route::deliver_to(ctx, ep)
}

/// A source port of gateway `pool` for the connection in `s` (its
/// `reply_key` complete but the port): `NAT_PORT_TRIES` random ports of its
/// range, the first free one toward this destination (address, port,
/// protocol) claimed in `NAT_PORTS` (`s.claim`): AWS counts a gateway's
/// connections per unique destination, so a port in use toward one
/// destination is free toward the others. None free: `nat_port_exhausted`,
/// counted in `NAT_STATS` (AWS's `ErrorPortAllocation`).
/// A BPF function of its own, as `router::claim_nat_port`: what follows is
/// verified once, not once per probe.
#[inline(never)]
fn claim_port(s: &mut Scratch, pool: u32) -> Result<(), DropReason> {
    let cap = capacity(cfg::NAT_GATEWAY_CAPACITY, NAT_GATEWAY_CAPACITY);
    let mut k = 0;
    while k < NAT_PORT_TRIES {
        k += 1;
        let r = unsafe { aya_ebpf::helpers::bpf_get_prandom_u32() }
            .checked_rem(cap)
            .unwrap_or(0);
        let port = ((NAT_PORT_MIN as u32 + r) as u16).to_be();
        if s.reply_key.proto == IPPROTO_ICMP {
            s.reply_key.sport = port;
        } else {
            s.reply_key.dport = port;
        }
        let claim = NatPortKey::of_reply(pool, &s.reply_key, true);
        if NAT_PORTS
            .insert(&claim, &s.reply_key, BPF_NOEXIST as u64)
            .is_ok()
        {
            stats::nat_probes(k);
            s.claim = claim;
            return Ok(());
        }
    }
    stats::nat_failed();
    Err(DropReason::NatPortExhausted)
}

/// Conntrack entries and the rewrite of a NAT gateway connection whose
/// port is claimed (`s.reply_key` complete).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn nat_gateway_open<C: Ctx>(
    ctx: &C,
    s: &mut Scratch,
    ep: &vpc_common::Endpoint,
    from: u32,
    gw_subnet: u32,
    pool: u32,
    ifindex: u32,
    now: u64,
    epoch: u32,
) -> Result<(), DropReason> {
    let nat_port = s.claim.port;
    let sport = s.pkt.sport;
    bind(s, ifindex, ep, from, epoch, route_kind::NAT_GATEWAY)?;
    s.orig.flags = CT_F_SNAT;
    copy_addr(&mut s.orig.nat_addr, &s.reply_key.daddr);
    s.orig.nat_port = nat_port;
    s.reply.flags = CT_F_DNAT;
    copy_addr(&mut s.reply.nat_addr, &s.pkt.saddr);
    s.reply.nat_port = sport;
    s.orig.eni = pool as u16;
    s.reply.eni = pool as u16;
    s.orig.eni_subnet = gw_subnet as u16;
    s.reply.eni_subnet = gw_subnet as u16;
    nat::rewrite(ctx, &s.pkt, true, &s.orig.nat_addr, nat_port)?;
    open(s, now)
}

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
        match unsafe { PUBLIC_IPS.get(&p.saddr) } {
            Some(a) => copy_addr(&mut s.hop.addr, a),
            None => return Err(DropReason::NoPublicAddress),
        }
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
        v6,
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
        copy_addr(&mut s.reply_key.daddr, &s.hop.addr);
        bind(s, ifindex, ep, port.subnet, epoch, route)?;
        let (snat, dnat) = if v6 { (0, 0) } else { (CT_F_SNAT, CT_F_DNAT) };
        s.orig.flags = snat;
        copy_addr(&mut s.orig.nat_addr, &s.hop.addr);
        s.orig.nat_port = sport;
        s.reply.flags = dnat;
        copy_addr(&mut s.reply.nat_addr, &s.pkt.saddr);
        s.reply.nat_port = sport;
        clear_eni(s);
    }
    if !v6 {
        nat::rewrite(ctx, &s.pkt, true, &s.hop.addr, sport)?;
    }
    if track {
        open(s, now)?;
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
/// from the internet (`egress_only_inbound`).
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
    let v6 = p.v6;
    let mut private = [0u8; 16];
    if v6 {
        copy_addr(&mut private, &p.daddr);
    } else {
        match unsafe { PUBLIC_IPS.get(&p.daddr) } {
            Some(a) => copy_addr(&mut private, a),
            None => return Err(DropReason::NoRoute),
        }
    }
    let ep = route::endpoint(&private)?;
    if ep.kind != kind::HOST && ep.kind != kind::HYPERPLANE_ENI {
        return Err(DropReason::NoRoute);
    }
    let epoch = policy_epoch();
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
    boundary(p, gen, 0, ep.subnet, &p.saddr, &private)?;
    if !policy::allowed(
        for_gen(&ep.policy, gen),
        DIR_INGRESS,
        v6,
        &p.saddr,
        p.proto,
        p.policy_port(),
    ) {
        return Err(DropReason::SgIngressDenied);
    }
    // The port that stays (ICMP echo: the identifier).
    let dport = if p.is_icmp() { p.sport } else { p.dport };
    if track {
        s.reply_key = ct::reply_key(&s.key, p.is_icmp());
        copy_addr(&mut s.reply_key.saddr, &private);
        bind(s, ifindex, ep, 0, epoch, route_kind::INTERNET_GATEWAY)?;
        let (dnat, snat) = if v6 { (0, 0) } else { (CT_F_DNAT, CT_F_SNAT) };
        s.orig.flags = dnat;
        copy_addr(&mut s.orig.nat_addr, &private);
        s.orig.nat_port = dport;
        s.reply.flags = snat;
        copy_addr(&mut s.reply.nat_addr, &s.pkt.daddr);
        s.reply.nat_port = dport;
        clear_eni(s);
    }
    if !v6 {
        nat::rewrite(ctx, &s.pkt, false, &private, dport)?;
    }
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

/// A packet of a TCP connection the NAT gateway forgot (idle past its
/// timeout) becomes, in place, the RST AWS answers with, and goes back out
/// of the port it came in on; counted as `IdleTimeoutCount`. RFC 9293: to
/// a segment with ACK, a RST with SEQ = its ACK and no ACK. IPv4 without
/// options only (a NAT gateway is IPv4); the bytes past the new IP length
/// are left as padding.
#[inline(never)]
pub fn idle_reset<C: Ctx>(ctx: &C, s: &mut Scratch, ifindex: u32) -> u32 {
    finish(idle_reset_inner(ctx, s, ifindex))
}

#[inline(always)]
fn idle_reset_inner<C: Ctx>(ctx: &C, s: &mut Scratch, ifindex: u32) -> Result<u32, DropReason> {
    let p = &s.pkt;
    if p.v6 || p.l4()? != ETH_HLEN + 20 {
        return Err(DropReason::CtInvalid);
    }
    let (dst_mac, src_mac) = (read::<[u8; 6]>(ctx, 0)?, read::<[u8; 6]>(ctx, 6)?);
    // IPv4: the addresses swapped, header only, a fresh checksum.
    let (sa, da) = (read::<u32>(ctx, 26)?, read::<u32>(ctx, 30)?);
    write(ctx, 26, da)?;
    write(ctx, 30, sa)?;
    write(ctx, 16, 40u16.to_be())?;
    write(ctx, 22, 64u8)?;
    write(ctx, 24, 0u16)?;
    write(ctx, 24, fold(sum_words(ctx, ETH_HLEN, 0)?))?;
    // TCP: the ports swapped, SEQ = the segment's ACK, RST alone.
    let ports = read::<[u16; 2]>(ctx, 34)?;
    write(ctx, 34, [ports[1], ports[0]])?;
    let ack = read::<u32>(ctx, 42)?;
    write(ctx, 38, ack)?;
    write(ctx, 42, 0u32)?;
    write(ctx, 46, [5u8 << 4, TCP_RST])?;
    write(ctx, 48, [0u16; 3])?;
    // Pseudo-header (the new addresses, protocol, length 20), then the header.
    let pseudo = (da >> 16) + (da & 0xffff) + (sa >> 16) + (sa & 0xffff);
    let pseudo = pseudo + (6u16.to_be() as u32) + (20u16.to_be() as u32);
    write(ctx, 50, fold(sum_words(ctx, 34, pseudo)?))?;
    stats::nat_idle_timeout();
    route::deliver(ctx, ifindex, &src_mac, &dst_mac)
}

/// `sum` plus the 20 bytes at `off` as 16-bit words, read five 32-bit words
/// at fixed offsets (a loop over a variable offset would cost the verifier
/// its bounds).
#[inline(always)]
fn sum_words<C: Ctx>(ctx: &C, off: usize, sum: u32) -> Result<u32, DropReason> {
    let w = read::<[u32; 5]>(ctx, off)?;
    let half = |x: u32| (x & 0xffff) + (x >> 16);
    Ok(sum + half(w[0]) + half(w[1]) + half(w[2]) + half(w[3]) + half(w[4]))
}

/// One's-complement sum folded and inverted (the words read in network
/// order as native u16s, so the result is in network order too).
#[inline(always)]
fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// A packet of a NAT gateway connection, checked again after a policy
/// change (ICMP: every packet), as AWS routes and filters it: the sender's
/// subnet must still route the peer to the gateway, and the gateway's
/// subnet to an internet gateway; the ACLs apply on both legs. Out: out of
/// the sender's subnet and into the gateway's, then out of the gateway's.
/// Back: into the gateway's subnet on the gateway's port, then out of it
/// and into the sender's on the sender's own port (after the reverse NAT).
/// A BPF function of its own: the established path pays for it only here.
#[inline(never)]
pub fn recheck(p: &Packet, e: &CtEntry, gen: u32) -> Result<(), DropReason> {
    let orig = e.dir == CT_DIR_ORIG;
    let (from, peer, vpc_port) = if orig {
        (e.src_subnet as u32, &p.daddr, e.in_ifindex)
    } else {
        (e.dst_subnet as u32, &p.saddr, e.out_ifindex)
    };
    let gw = e.eni_subnet as u32;
    let r = route::lookup(gen, from, false, peer)?;
    if r.kind != route_kind::NAT_GATEWAY {
        return Err(route::refused(r.kind));
    }
    // Routed to another NAT gateway now: that one never saw the connection
    // (its ports are the gateway's, `CtEntry::eni`).
    if r.id != e.eni as u32 {
        return Err(DropReason::CtInvalid);
    }
    let r = route::lookup(gen, gw, false, peer)?;
    if r.kind != route_kind::INTERNET_GATEWAY {
        return Err(route::refused(r.kind));
    }
    let mut sender = [0u8; 16];
    sender_addr(vpc_port, &mut sender)?;
    let port = p.policy_port();
    if orig {
        if from != gw {
            acl(gen, from, DIR_EGRESS, peer, p, port)?;
            acl(gen, gw, DIR_INGRESS, &sender, p, port)?;
        }
        return acl(gen, gw, DIR_EGRESS, peer, p, port);
    }
    acl(gen, gw, DIR_INGRESS, peer, p, port)?;
    if from != gw {
        let own = if p.is_icmp() {
            port
        } else {
            u16::from_be(e.nat_port)
        };
        acl(gen, gw, DIR_EGRESS, &sender, p, own)?;
        acl(gen, from, DIR_INGRESS, peer, p, own)?;
    }
    Ok(())
}

/// One ACL check: subnet `subnet`'s ACL (none for the internet, 0, or the
/// default ACL) in direction `dir` toward or from `peer` on `port`.
#[inline(always)]
fn acl(
    gen: u32,
    subnet: u32,
    dir: u32,
    peer: &[u8; 16],
    p: &Packet,
    port: u16,
) -> Result<(), DropReason> {
    let a = SUBNET_ACLS
        .get(subnet_acl_index(gen, subnet))
        .copied()
        .unwrap_or(0);
    if a == 0 || policy::acl_allows(a, dir, false, peer, p.proto, port) {
        return Ok(());
    }
    Err(if dir == DIR_EGRESS {
        DropReason::NaclEgressDenied
    } else {
        DropReason::NaclIngressDenied
    })
}

/// The address the VPC sees behind router port `ifindex`: a host's own, a
/// function's ENI's (the group's first: every ENI of a group is in one
/// subnet, which is what the ACLs judge).
#[inline(always)]
fn sender_addr(ifindex: u32, out: &mut [u8; 16]) -> Result<(), DropReason> {
    let port = match unsafe { PORTS.get(&ifindex) } {
        Some(p) => p,
        None => return Err(DropReason::NoRoute),
    };
    if port.kind != kind::EXEC_ENV {
        copy_addr(out, &port.addr4);
        return Ok(());
    }
    let eni =
        unsafe { ENI_GROUPS.get(&port.eni_group) }.and_then(|g| unsafe { ENIS.get(&g.enis[0]) });
    match eni {
        Some(eni) => {
            copy_addr(out, &eni.addr4);
            Ok(())
        }
        None => Err(DropReason::NoRoute),
    }
}

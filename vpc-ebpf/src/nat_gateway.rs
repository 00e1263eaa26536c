//! The NAT gateway: source NAT to its Elastic IP and a port of its own
//! (`port_allocation`, per destination), for hosts and for functions'
//! Hyperplane ENIs (two translations in one rewrite). Its connections are
//! tracked as any other; a packet of one it forgot (idle past its timeout)
//! is answered with a RST, as AWS does.
use aya_ebpf::bindings::BPF_EXIST;
use network_types::{ip::Ipv4Hdr, tcp::TcpHdr};
use vpc_common::{
    cfg, for_gen, kind, route_kind, CtEntry, DropReason, Endpoint, NatPortKey, CT_DIR_ORIG,
    CT_F_DNAT, CT_F_SNAT, DIR_EGRESS, DIR_INGRESS, GLOBAL_SPACE, NAT_GATEWAY_CAPACITY,
};

use crate::{
    config,
    copy::copy_addr,
    ct,
    ctx::{read, write, Ctx},
    flowlog, hyperplane,
    maps::{NatHop, Scratch, ENIS, ENI_GROUPS, NAT_PORTS, NO_GROUP},
    nat,
    parse::{
        Packet, ETH_DST, ETH_HLEN, ETH_SRC, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPV4_CHECK,
        IPV4_DST, IPV4_SRC, IPV4_TOT_LEN, IPV4_TTL, L4_SPORT, TCP_ACK_SEQ, TCP_CHECK, TCP_DOFF,
        TCP_RST, TCP_SEQ, TCP_SYN, TCP_WINDOW,
    },
    policy, port, port_allocation, route, stats,
};

/// A new flow's route leads to a NAT gateway, `Scratch::hop` says which:
/// the pipeline hands it on to `via` from its own frame (three calls deep
/// the stack would not hold it). Not a verdict of any hook.
pub const HOP: u32 = u32::MAX - 1;

/// Notes a new flow into NAT gateway `id` in `h`, sent as the VPC sees it
/// from subnet `subnet` with groups `policy` and address `addr`; `HOP`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn hop(
    h: &mut NatHop,
    id: u32,
    ifindex: u32,
    epoch: u32,
    subnet: u32,
    now: u64,
    policy: &[u32; 2],
    addr: &[u8; 16],
) -> u32 {
    (h.id, h.ifindex, h.epoch, h.subnet, h.now) = (id, ifindex, epoch, subnet, now);
    (h.group, h.eni) = (NO_GROUP, 0);
    h.policy = *policy;
    copy_addr(&mut h.addr, addr);
    HOP
}

/// A new flow routed to NAT gateway `s.hop.id` (its `ENIS` entry: its
/// Elastic IP, subnet and port pool). The checks, as at AWS: the sender's
/// outbound groups, the ACLs from the sender's subnet into the gateway's,
/// then the gateway's subnet routes the destination (to its internet
/// gateway) and its outbound ACL applies; a NAT gateway has no groups.
/// Then the source becomes the Elastic IP and a port the gateway claims
/// (ICMP echo: an identifier of its own). TCP, UDP and ICMP echo only;
/// IPv6 is not translated (no NAT64). A function's flow has taken a port
/// of its Hyperplane ENI first (`hyperplane::leave_eni`), given back here
/// when the connection does not open.
/// A BPF function of its own (hosts and functions both come here, and the
/// verifier walks it once); it counts its drops and returns the action.
#[inline(never)]
pub fn via<C: Ctx>(ctx: &C, s: &mut Scratch) -> u32 {
    // Refused leaving the gateway (its subnet's outbound ACL): logged on
    // the gateway's interface (flow logs).
    let mut out = false;
    let res = via_inner(ctx, s, &mut out);
    if let Err(r) = res {
        // A function's ENI claim made for a connection that did not open.
        if s.hop.eni != 0 {
            port_allocation::release(&s.hop.eni_claim);
        }
        let Scratch {
            pkt, fl_key, hop, ..
        } = s;
        flowlog::reject_nat_gateway(fl_key, pkt, &hop.addr, hop.id, out, r, hop.now);
    }
    stats::finish(res)
}

#[inline(always)]
fn via_inner<C: Ctx>(ctx: &C, s: &mut Scratch, out: &mut bool) -> Result<u32, DropReason> {
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
    let ep = match route::endpoint(GLOBAL_SPACE, &p.daddr) {
        Ok(e) if e.kind == kind::INTERNET_HOST || e.kind == kind::AWS_SERVICE => e,
        _ => return Err(DropReason::InternetUnreachable),
    };
    if !ct::opens(p) {
        return Err(DropReason::CtInvalid);
    }
    if s.hop.group != NO_GROUP {
        hyperplane::leave_eni(s)?;
    }
    let p = &s.pkt;
    let port = p.policy_port();
    policy::groups(
        for_gen(&from_policy, gen),
        DIR_EGRESS,
        false,
        &p.daddr,
        p.proto,
        port,
    )?;
    policy::boundary(p, gen, from_subnet, gw.subnet, &s.hop.addr, &p.daddr)?;
    *out = true;
    policy::boundary(p, gen, gw.subnet, 0, &gw.addr4, &p.daddr)?;
    let (gw_subnet, pool) = (gw.subnet, gw.pool);
    // The reply's key but the gateway's port (ICMP: the echo reply's
    // identifier, and its type in `dport`).
    s.reply_key = ct::reply_key(&s.key, icmp);
    copy_addr(&mut s.reply_key.daddr, &gw.addr4);
    // The reply comes from the internet to the Elastic IP.
    s.reply_key.space = GLOBAL_SPACE as u16;
    claim_port(s, pool)?;
    let claim = s.claim;
    // The ENI's claim names the connection too, as the GC releases it.
    if s.hop.eni != 0 {
        let _ = NAT_PORTS.insert(&s.hop.eni_claim, &s.reply_key, BPF_EXIST as u64);
    }
    if let Err(r) = open(
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
        port_allocation::release(&claim);
        return Err(r);
    }
    // The entries are in: the ENI's claim is the connection's now, and
    // goes with it (`via` gives back only a claim of no connection).
    s.hop.eni = 0;
    let action = route::deliver_to(ctx, ep)?;
    // Counted on the function's ENI too (a host's connection has none).
    if s.orig.fn_eni != 0 {
        stats::eni_forwarded(s.orig.fn_eni);
    }
    Ok(action)
}

/// A source port of gateway `pool` toward the destination of the
/// connection in `s` (its `reply_key` complete but the port), a free one
/// if there is any (`port_allocation::probe`); the claim in `s.claim`.
/// None free:
/// `nat_port_exhausted` (AWS's `ErrorPortAllocation`).
/// A BPF function of its own, as `hyperplane::claim_nat_port`: what
/// follows is verified once, not once per probe.
#[inline(never)]
fn claim_port(s: &mut Scratch, pool: u32) -> Result<(), DropReason> {
    let cap = config::capacity(cfg::NAT_GATEWAY_CAPACITY, NAT_GATEWAY_CAPACITY);
    port_allocation::load_slices(s);
    let mut probes = 0;
    // Per destination: the claim names the remote side (ICMP: the echo's
    // identifier is the port, and there is no destination port).
    let key = NatPortKey::of_reply(pool, &s.reply_key, true);
    let echo = s.reply_key.proto == IPPROTO_ICMP;
    if port_allocation::probe(s, key, echo, cap, &mut probes) {
        return Ok(());
    }
    Err(port_allocation::exhausted(probes))
}

/// Conntrack entries and the rewrite of a NAT gateway connection whose
/// port is claimed (`s.reply_key` complete).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn open<C: Ctx>(
    ctx: &C,
    s: &mut Scratch,
    ep: &Endpoint,
    from: u32,
    gw_subnet: u32,
    pool: u32,
    ifindex: u32,
    now: u64,
    epoch: u32,
) -> Result<(), DropReason> {
    let nat_port = s.claim.port;
    let sport = s.pkt.sport;
    ct::bind(s, ifindex, ep, from, epoch, route_kind::NAT_GATEWAY)?;
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
    if s.hop.eni != 0 {
        let (eni, port) = (s.hop.eni as u16, s.hop.eni_claim.port);
        (s.orig.fn_eni, s.orig.fn_eni_port) = (eni, port);
        (s.reply.fn_eni, s.reply.fn_eni_port) = (eni, port);
    }
    nat::rewrite(ctx, &s.pkt, true, &s.orig.nat_addr, nat_port)?;
    ct::open(s, now)
}

/// Whether the gateway answers `p`, a packet of an expired connection
/// (entry `e`, original `orig`), with a RST: a TCP packet of a connection
/// through it, in the original direction, neither SYN nor RST (the GC
/// keeps such entries a little past their timeout for this). The
/// connection is then closed. An interface endpoint does the same with the
/// connections to it (AWS: both forget a connection idle for 350 s); only
/// the gateway's count as `IdleTimeoutCount`.
#[inline(always)]
pub fn forgot(p: &Packet, e: *mut CtEntry, orig: *mut CtEntry) -> bool {
    let gateway = unsafe { (*orig).route } == route_kind::NAT_GATEWAY;
    if (gateway || unsafe { (*orig).peer } == vpc_common::kind::VPC_ENDPOINT)
        && unsafe { (*e).dir } == CT_DIR_ORIG
        && p.proto == IPPROTO_TCP
        && p.tcp_flags & (TCP_SYN | TCP_RST) == 0
    {
        unsafe { (*orig).state = vpc_common::ct_state::CLOSED };
        if gateway {
            stats::nat_idle_timeout();
        }
        return true;
    }
    false
}

/// A packet of a TCP connection the NAT gateway forgot (`forgot`)
/// becomes, in place, the RST AWS answers with, and goes back out of the
/// port it came in on; counted as `IdleTimeoutCount`. RFC 9293: to a
/// segment with ACK, a RST with SEQ = its ACK and no ACK. IPv4 without
/// options only (a NAT gateway is IPv4); the bytes past the new IP length
/// are left as padding.
#[inline(never)]
pub fn idle_reset<C: Ctx>(ctx: &C, s: &mut Scratch, ifindex: u32) -> u32 {
    stats::finish(idle_reset_inner(ctx, s, ifindex))
}

#[inline(always)]
fn idle_reset_inner<C: Ctx>(ctx: &C, s: &mut Scratch, ifindex: u32) -> Result<u32, DropReason> {
    // IPv4 without options, then TCP.
    const IP: usize = ETH_HLEN;
    const TCP: usize = IP + Ipv4Hdr::LEN;
    let p = &s.pkt;
    if p.v6 || p.l4()? != TCP {
        return Err(DropReason::CtInvalid);
    }
    let dst_mac = read::<[u8; 6]>(ctx, ETH_DST)?;
    let src_mac = read::<[u8; 6]>(ctx, ETH_SRC)?;
    // IPv4: the addresses swapped, header only, a fresh checksum.
    let (sa, da) = (
        read::<u32>(ctx, IP + IPV4_SRC)?,
        read::<u32>(ctx, IP + IPV4_DST)?,
    );
    write(ctx, IP + IPV4_SRC, da)?;
    write(ctx, IP + IPV4_DST, sa)?;
    write(
        ctx,
        IP + IPV4_TOT_LEN,
        (Ipv4Hdr::LEN as u16 + TcpHdr::LEN as u16).to_be(),
    )?;
    write(ctx, IP + IPV4_TTL, 64u8)?;
    write(ctx, IP + IPV4_CHECK, 0u16)?;
    write(ctx, IP + IPV4_CHECK, fold(sum_words(ctx, IP, 0)?))?;
    // TCP: the ports swapped, SEQ = the segment's ACK, RST alone.
    let ports = read::<[u16; 2]>(ctx, TCP + L4_SPORT)?;
    write(ctx, TCP + L4_SPORT, [ports[1], ports[0]])?;
    let ack = read::<u32>(ctx, TCP + TCP_ACK_SEQ)?;
    write(ctx, TCP + TCP_SEQ, ack)?;
    write(ctx, TCP + TCP_ACK_SEQ, 0u32)?;
    write(
        ctx,
        TCP + TCP_DOFF,
        [((TcpHdr::LEN / 4) as u8) << 4, TCP_RST],
    )?;
    // Window, checksum, urgent pointer.
    write(ctx, TCP + TCP_WINDOW, [0u16; 3])?;
    // Pseudo-header (the new addresses, protocol, length 20), then the header.
    let pseudo = (da >> 16) + (da & 0xffff) + (sa >> 16) + (sa & 0xffff);
    let pseudo = pseudo + (IPPROTO_TCP as u16).to_be() as u32 + (TcpHdr::LEN as u16).to_be() as u32;
    write(ctx, TCP + TCP_CHECK, fold(sum_words(ctx, TCP, pseudo)?))?;
    route::deliver(ctx, ifindex, &src_mac, &dst_mac)
}

/// `sum` plus the 20 bytes at `off` (an IPv4 header without options, a TCP
/// header without options) as 16-bit words, read five 32-bit words at
/// fixed offsets (a loop over a variable offset would cost the verifier its
/// bounds).
#[inline(always)]
fn sum_words<C: Ctx>(ctx: &C, off: usize, sum: u32) -> Result<u32, DropReason> {
    const _: () = assert!(Ipv4Hdr::LEN == 20 && TcpHdr::LEN == 20);
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
/// `last` (for flow logs): the refusal, if any, came from the last check
/// (out: the gateway subnet's outbound ACL; back: the sender subnet's
/// inbound ACL).
#[inline(never)]
pub fn recheck(p: &Packet, e: &CtEntry, gen: u32, last: &mut bool) -> Result<(), DropReason> {
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
    sender_addr(e, vpc_port, &mut sender)?;
    let port = p.policy_port();
    if orig {
        if from != gw {
            policy::acl(gen, from, DIR_EGRESS, false, peer, p.proto, port)?;
            policy::acl(gen, gw, DIR_INGRESS, false, &sender, p.proto, port)?;
        }
        *last = true;
        return policy::acl(gen, gw, DIR_EGRESS, false, peer, p.proto, port);
    }
    policy::acl(gen, gw, DIR_INGRESS, false, peer, p.proto, port)?;
    if from != gw {
        // A function's side is its ENI's port (the gateway sends there).
        let own = if p.is_icmp() {
            port
        } else if e.fn_eni != 0 {
            u16::from_be(e.fn_eni_port)
        } else {
            u16::from_be(e.nat_port)
        };
        policy::acl(gen, gw, DIR_EGRESS, false, &sender, p.proto, own)?;
        *last = true;
        policy::acl(gen, from, DIR_INGRESS, false, peer, p.proto, own)?;
    }
    Ok(())
}

/// The address the VPC sees behind router port `ifindex` for connection
/// entry `e`: a host's own, a function's ENI's (the one it left from).
#[inline(always)]
fn sender_addr(e: &CtEntry, ifindex: u32, out: &mut [u8; 16]) -> Result<(), DropReason> {
    if e.fn_eni != 0 {
        return match unsafe { ENIS.get(&(e.fn_eni as u32)) } {
            Some(eni) => {
                copy_addr(out, &eni.addr4);
                Ok(())
            }
            None => Err(DropReason::NoRoute),
        };
    }
    let port = match port::info(ifindex) {
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

//! The VPC router pipeline: parse, classify the ingress port, connection
//! tracking, security groups, Hyperplane NAT, delivery.
//!
//! The stages are separate BPF functions (`inline(never)`) so each keeps its
//! own stack frame; they return the final XDP action and count drops
//! themselves, so no aggregate crosses a call.
use aya_ebpf::bindings::BPF_NOEXIST;
use vpc_common::{
    cfg, for_gen, kind, route_kind, subnet_acl_index, CtEntry, CtKey, DropReason, Endpoint,
    EniGroup, NatPortKey, PortInfo, CT_DIR_ORIG, CT_DIR_REPLY, CT_F_DNAT, CT_F_SNAT, DIR_EGRESS,
    DIR_INGRESS, MAX_GROUP_ENIS, NAT_PORT_MIN, NAT_PORT_RANGE, NAT_PORT_TRIES,
};

use crate::{
    ct,
    ctx::Ctx,
    flowlog, frag, gateway,
    maps::{Scratch, CONFIG, CT, ENIS, ENI_GROUPS, NAT_PORTS, PORTS, SCRATCH, SUBNET_ACLS},
    nat,
    parse::{self, Packet, IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_SYN},
    policy, resolver, route, stats,
};

/// `tracked` found no live connection.
const UNTRACKED: u32 = u32::MAX;
/// A new flow's route leads to a NAT gateway, `Scratch::hop` says which:
/// `run` hands it on from its own frame (three calls deep the stack would
/// not hold it).
const NAT_HOP: u32 = u32::MAX - 1;
/// `tracked` found a TCP connection a NAT gateway forgot: `run` answers it
/// with the gateway's RST, from its own frame (as `NAT_HOP`).
const IDLE_RESET: u32 = u32::MAX - 2;

/// A verdict, or the drop counted with its reason.
#[inline(always)]
pub(crate) fn finish(r: Result<u32, DropReason>) -> u32 {
    match r {
        Ok(action) => action,
        Err(reason) => stats::drop(reason),
    }
}

/// The pipeline, and its verdict counted for the port the packet came in on.
#[inline(always)]
pub fn run<C: Ctx>(ctx: &C) -> u32 {
    let action = pipeline(ctx);
    stats::port(ctx.ingress_ifindex(), action);
    action
}

#[inline(always)]
fn pipeline<C: Ctx>(ctx: &C) -> u32 {
    let s = match SCRATCH.get_ptr_mut(0) {
        Some(s) => unsafe { &mut *s },
        None => return stats::drop(DropReason::CtFull),
    };
    if let Err(r) = parse::parse(ctx, &mut s.pkt) {
        return stats::drop(r);
    }
    let p = &s.pkt;
    s.key = CtKey {
        saddr: p.saddr,
        daddr: p.daddr,
        sport: p.sport,
        dport: p.dport,
        proto: p.proto,
        _pad0: 0,
        _pad1: 0,
    };
    let ifindex = ctx.ingress_ifindex() as u32;
    let now = ct::now();
    // IPv4 fragments: UDP through a NAT gateway only (see `frag`).
    let frag = p.frag;
    if frag == parse::FRAG_LATER {
        return frag::later(ctx, s, ifindex, now);
    }
    if frag == parse::FRAG_FIRST && !frag::first(s, ifindex, now) {
        return stats::drop(DropReason::Fragment);
    }
    let p = &s.pkt;
    // ICMP errors travel with the connection they quote, or not at all.
    if p.is_icmp_error() {
        return related(ctx, s, ifindex, now);
    }
    // Established traffic first. An entry names the port its direction
    // arrives on, and its key holds the source address, so a match is a
    // packet the source check admitted when the connection opened.
    let action = tracked(ctx, s, ifindex, now);
    if action == IDLE_RESET {
        return gateway::idle_reset(ctx, s, ifindex);
    }
    if action != UNTRACKED {
        return action;
    }
    // A fragment opens no connection.
    if frag != 0 {
        return stats::drop(DropReason::Fragment);
    }
    let port = match unsafe { PORTS.get(&ifindex) } {
        Some(port) => port,
        None => return stats::drop(DropReason::UnknownPort),
    };
    let p = &s.pkt;
    // Source/destination check, as EC2 does for every ENI.
    let own = if p.v6 {
        if port.has_v6 == 0 {
            return stats::drop(DropReason::Spoofed);
        }
        &port.addr6
    } else {
        &port.addr4
    };
    if p.saddr != *own {
        return stats::drop(DropReason::Spoofed);
    }
    let action = if port.kind == kind::EXEC_ENV {
        function_flow(ctx, s, port, ifindex, now)
    } else if port.kind == kind::INTERNET_HOST {
        gateway::from_internet(ctx, s, ifindex, now)
    } else if port.kind == kind::RESOLVER {
        stats::drop(DropReason::ResolverNotDns)
    } else if port.kind == kind::AWS_SERVICE || port.kind == kind::VPC_ENDPOINT {
        // The services only answer: their replies are tracked above.
        stats::drop(DropReason::AwsServiceUnsolicited)
    } else {
        host_flow(ctx, s, port, ifindex, now)
    };
    if action == NAT_HOP {
        return gateway::via_nat_gateway(ctx, s);
    }
    action
}

/// A packet of a live tracked connection: update it, apply its NAT, deliver.
#[inline(never)]
fn tracked<C: Ctx>(ctx: &C, s: &mut Scratch, ifindex: u32, now: u64) -> u32 {
    // Raw pointers: for the original direction `e` and `orig` are one entry.
    let e = match CT.get_ptr_mut(&s.key) {
        Some(e) => e,
        None => return UNTRACKED,
    };
    if unsafe { (*e).in_ifindex } != ifindex {
        return UNTRACKED;
    }
    let orig = if unsafe { (*e).dir } == CT_DIR_ORIG {
        e
    } else {
        match CT.get_ptr_mut(unsafe { &(*e).twin }) {
            Some(o) => o,
            None => return UNTRACKED,
        }
    };
    if ct::expired(s.pkt.proto, unsafe { &*orig }, now) {
        // A NAT gateway answers a packet of a TCP connection it forgot
        // with a RST, as AWS does (the GC keeps such entries a little
        // past their timeout for this).
        let p = &s.pkt;
        if unsafe { (*orig).route } == route_kind::NAT_GATEWAY
            && unsafe { (*e).dir } == CT_DIR_ORIG
            && p.proto == IPPROTO_TCP
            && p.tcp_flags & (TCP_SYN | parse::TCP_RST) == 0
        {
            unsafe { (*orig).state = vpc_common::ct_state::CLOSED };
            return IDLE_RESET;
        }
        return UNTRACKED;
    }
    let dir = unsafe { (*e).dir };
    // A reply entry left behind by an earlier connection on the same
    // tuple (its original now belongs to a new one) is not followed.
    if dir != CT_DIR_ORIG && unsafe { (*orig).twin } != s.key {
        return UNTRACKED;
    }
    // A new handshake is a new connection, checked as one: a SYN on a
    // closed entry (port reuse) or against the reply direction.
    let p = &s.pkt;
    if p.proto == IPPROTO_TCP
        && p.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
        && (dir != CT_DIR_ORIG || unsafe { (*orig).state } == vpc_common::ct_state::CLOSED)
    {
        return UNTRACKED;
    }
    finish(deliver_tracked(ctx, s, e, orig, now))
}

/// An ICMP error (destination unreachable incl. fragmentation needed, time
/// exceeded; ICMPv6 also packet too big) is related traffic of the
/// connection whose packet it quotes, as in Linux's conntrack, and is
/// forwarded only as part of it:
///
/// * The quoted packet travelled the other way, so its tuple reversed is
///   the key of the direction the error travels in (a database's error
///   about a function's packet, sent from the ENI's address and NAT port,
///   finds the connection's reply entry). The error must come from the
///   quoted packet's destination, be addressed to its source, and arrive
///   on that direction's port, which the entry's key and port vouch for
///   as the source check would. Anything else, an expired connection or a
///   stale reply entry included, is `icmp_error_untracked`.
/// * Security groups: the error passes as part of its tracked connection,
///   whatever the rules (groups are stateful; AWS documents no rule for
///   related ICMP, and an error is not a new connection to be allowed).
///   Network ACLs are stateless and apply as to every packet, to the ICMP
///   type and code, at the connection's subnet boundary; a function's side
///   is its ENI, seen before the reverse NAT (AWS: allow type 3 code 4 both
///   ways for path-MTU discovery).
/// * NAT: translated back as the connection's direction is (outer address,
///   then the quote's opposite address and port, every checksum fixed; see
///   `nat::icmp_error`), and delivered where the direction goes.
/// * It does not refresh or change the connection.
#[inline(never)]
fn related<C: Ctx>(ctx: &C, s: &mut Scratch, ifindex: u32, now: u64) -> u32 {
    finish(related_inner(ctx, s, ifindex, now))
}

#[inline(always)]
fn related_inner<C: Ctx>(
    ctx: &C,
    s: &mut Scratch,
    ifindex: u32,
    now: u64,
) -> Result<u32, DropReason> {
    parse::quote(ctx, &s.pkt, &mut s.quote)?;
    let (p, q) = (&s.pkt, &s.quote);
    if q.daddr != p.saddr || q.saddr != p.daddr {
        return Err(DropReason::IcmpErrorUntracked);
    }
    s.reply_key = CtKey {
        saddr: p.saddr,
        daddr: p.daddr,
        sport: q.dport,
        dport: q.sport,
        proto: q.proto,
        _pad0: 0,
        _pad1: 0,
    };
    let e = match CT.get_ptr(&s.reply_key) {
        Some(e) => e,
        None => return Err(DropReason::IcmpErrorUntracked),
    };
    let ent = unsafe { &*e };
    if ent.in_ifindex != ifindex {
        return Err(DropReason::IcmpErrorUntracked);
    }
    let orig = if ent.dir == CT_DIR_ORIG {
        ent
    } else {
        match unsafe { CT.get(&ent.twin) } {
            Some(o) if o.twin == s.reply_key => o,
            _ => return Err(DropReason::IcmpErrorUntracked),
        }
    };
    if ct::expired(q.proto, orig, now) {
        return Err(DropReason::IcmpErrorUntracked);
    }
    let snat = ent.flags & CT_F_SNAT != 0;
    let src_addr = if snat { &ent.nat_addr } else { &p.saddr };
    let (src, dst) = (ent.src_subnet as u32, ent.dst_subnet as u32);
    boundary(p, policy_epoch() & 1, src, dst, src_addr, &p.daddr)?;
    if snat || ent.flags & CT_F_DNAT != 0 {
        nat::icmp_error(ctx, p, q, snat, &ent.nat_addr, ent.nat_port)?;
    }
    route::deliver(ctx, ent.out_ifindex, &ent.mac, &ent.router_mac)
}

/// Network ACLs apply to tracked packets too (they are stateless), as the
/// packet crosses the subnet boundary: after SNAT, before the reverse NAT.
/// The verdict is kept per direction with the policy epoch it was reached
/// under: a connection's 5-tuple never changes, so only a policy change
/// can change it. Only a packet that passes refreshes its connection.
#[inline(always)]
fn deliver_tracked<C: Ctx>(
    ctx: &C,
    s: &mut Scratch,
    e: *mut CtEntry,
    orig: *mut CtEntry,
    now: u64,
) -> Result<u32, DropReason> {
    let Scratch { pkt: p, fl_key, .. } = s;
    let p = &*p;
    // Read through the raw pointer: for the original direction `e` and
    // `orig` are one entry, which `ct::update` writes (not these fields).
    let (flags, dir) = unsafe { ((*e).flags, (*e).dir) };
    let (src_subnet, dst_subnet) = unsafe { ((*e).src_subnet, (*e).dst_subnet) };
    let snat = flags & CT_F_SNAT != 0;
    if src_subnet != dst_subnet {
        let epoch = policy_epoch();
        let stamp = epoch.wrapping_add(1);
        // ICMP echo keys leave out the code, which ACLs judge: no verdict
        // is kept for ICMP.
        let icmp = p.is_icmp();
        if icmp || unsafe { (*e).acl_gen } != stamp {
            // The customer-side source of a NATed connection is its ENI.
            let nat_addr = unsafe { &(*e).nat_addr };
            let src_addr = if snat { nat_addr } else { &p.saddr };
            let (src, dst) = (src_subnet as u32, dst_subnet as u32);
            // Routing is stateless too: the route this direction took when
            // the connection opened must still be the one that matches. A
            // direction from the internet (no subnet) is served while its
            // host's subnet routes the peer to the gateway.
            let (rsub, raddr) = if src == 0 {
                (dst, &p.saddr)
            } else {
                (src, &p.daddr)
            };
            let checked = if unsafe { (*e).route } == route_kind::NAT_GATEWAY {
                // Two legs, through the gateway's subnet.
                gateway::recheck(p, unsafe { &*e }, epoch & 1)
            } else {
                let r = route::lookup(epoch & 1, rsub, p.v6, raddr)?;
                if r.kind != unsafe { (*e).route } {
                    return Err(route::refused(r.kind));
                }
                boundary(p, epoch & 1, src, dst, src_addr, &p.daddr)
            };
            if let Err(r) = checked {
                let w = if flowlog::is_reject(r) {
                    flowlog::window()
                } else {
                    0
                };
                if w != 0 {
                    // As seen in the VPC: after SNAT, before the reverse NAT.
                    let nat_port = unsafe { (*e).nat_port };
                    if snat {
                        flowlog::key(
                            fl_key, nat_addr, nat_port, &p.daddr, p.dport, &p.saddr, &p.daddr,
                        );
                    } else if flags & CT_F_DNAT != 0 {
                        flowlog::key(
                            fl_key, &p.saddr, p.sport, &p.daddr, p.dport, &p.saddr, nat_addr,
                        );
                    } else {
                        flowlog::key(
                            fl_key, &p.saddr, p.sport, &p.daddr, p.dport, &p.saddr, &p.daddr,
                        );
                    }
                    flowlog::reject(fl_key, p, r, w, now);
                }
                return Err(r);
            }
            if !icmp {
                unsafe { (*e).acl_gen = stamp };
            }
        }
    }
    ct::update(unsafe { &mut *orig }, p, dir, now);
    let w = flowlog::window();
    if w != 0 {
        flowlog::count(unsafe { &mut (*e).fl }, p, w, now);
    }
    let ent = unsafe { &*e };
    if snat {
        nat::rewrite(ctx, p, true, &ent.nat_addr, ent.nat_port)?;
    } else if flags & CT_F_DNAT != 0 {
        nat::rewrite(ctx, p, false, &ent.nat_addr, ent.nat_port)?;
    }
    let action = route::deliver(ctx, ent.out_ifindex, &ent.mac, &ent.router_mac)?;
    stats::eni_forwarded(ent.eni);
    Ok(action)
}

/// The policy epoch: a counter bumped by every policy switch, whose low bit
/// is the generation in force. Read once per packet, where needed: every
/// policy lookup of a packet uses the value its caller read.
#[inline(always)]
pub(crate) fn policy_epoch() -> u32 {
    CONFIG.get(cfg::GENERATION).copied().unwrap_or(0) as u32
}

/// Network ACLs at a subnet boundary: the ACL of the subnet the packet
/// leaves (outbound rules, peer = destination), then the one it enters
/// (inbound rules, peer = source). Inside one subnet they do not apply.
/// Sides are subnet indexes; their ACLs come from `SUBNET_ACLS` (0 allows
/// everything and is not looked up).
#[inline(always)]
pub(crate) fn boundary(
    p: &Packet,
    gen: u32,
    src: u32,
    dst: u32,
    src_addr: &[u8; 16],
    dst_addr: &[u8; 16],
) -> Result<(), DropReason> {
    if src == dst {
        return Ok(());
    }
    let acl_of = |subnet: u32| {
        SUBNET_ACLS
            .get(subnet_acl_index(gen, subnet))
            .copied()
            .unwrap_or(0)
    };
    let port = p.policy_port();
    let out = acl_of(src);
    if out != 0 && !policy::acl_allows(out, DIR_EGRESS, p.v6, dst_addr, p.proto, port) {
        return Err(DropReason::NaclEgressDenied);
    }
    let inn = acl_of(dst);
    if inn != 0 && !policy::acl_allows(inn, DIR_INGRESS, p.v6, src_addr, p.proto, port) {
        return Err(DropReason::NaclIngressDenied);
    }
    Ok(())
}

/// A new connection's checks, in AWS's order: the sender's outbound group
/// rules, the ACLs at the subnet boundary, the receiver's inbound group rules
/// (which see `src`: the sender's address after any NAT). `from` is the
/// sender's subnet index. One generation read serves every check.
#[inline(always)]
fn admit(
    p: &Packet,
    epoch: u32,
    sender: &[u32; 2],
    from: u32,
    receiver: &Endpoint,
    src: &[u8; 16],
) -> Result<(), DropReason> {
    let gen = epoch & 1;
    let port = p.policy_port();
    if !policy::allowed(
        for_gen(sender, gen),
        DIR_EGRESS,
        p.v6,
        &p.daddr,
        p.proto,
        port,
    ) {
        return Err(DropReason::SgEgressDenied);
    }
    boundary(p, gen, from, receiver.subnet, src, &p.daddr)?;
    // The internet and a service behind a gateway endpoint have no groups.
    if receiver.kind == kind::INTERNET_HOST {
        return Ok(());
    }
    let inbound = for_gen(&receiver.policy, gen);
    if receiver.kind != kind::AWS_SERVICE
        && !policy::allowed(inbound, DIR_INGRESS, p.v6, src, p.proto, port)
    {
        return Err(DropReason::SgIngressDenied);
    }
    Ok(())
}

/// A new flow from an instance or network interface in a customer VPC.
#[inline(never)]
fn host_flow<C: Ctx>(ctx: &C, s: &mut Scratch, port: &PortInfo, ifindex: u32, now: u64) -> u32 {
    match host_flow_inner(ctx, s, port, ifindex, now) {
        Ok(action) => action,
        Err(r) => {
            if flowlog::is_reject(r) {
                let w = flowlog::window();
                if w != 0 {
                    let Scratch { pkt: p, fl_key, .. } = s;
                    flowlog::key(
                        fl_key, &p.saddr, p.sport, &p.daddr, p.dport, &p.saddr, &p.daddr,
                    );
                    flowlog::reject(fl_key, p, r, w, now);
                }
            }
            stats::drop(r)
        }
    }
}

#[inline(always)]
fn host_flow_inner<C: Ctx>(
    ctx: &C,
    s: &mut Scratch,
    port: &PortInfo,
    ifindex: u32,
    now: u64,
) -> Result<u32, DropReason> {
    let p = &s.pkt;
    let epoch = policy_epoch();
    let r = route::lookup(epoch & 1, port.subnet, p.v6, &p.daddr)?;
    let ep = match r.kind {
        route_kind::LOCAL | route_kind::GATEWAY_ENDPOINT => route::endpoint(&p.daddr)?,
        route_kind::NETWORK_INTERFACE => route::middlebox(r.id)?,
        route_kind::INTERNET_GATEWAY | route_kind::EGRESS_ONLY_INTERNET_GATEWAY => {
            return gateway::to_internet(ctx, s, port, ifindex, now, epoch, r.kind)
        }
        route_kind::NAT_GATEWAY => {
            let saddr = p.saddr;
            let h = &mut s.hop;
            (h.id, h.ifindex, h.epoch, h.subnet, h.now) = (r.id, ifindex, epoch, port.subnet, now);
            h.policy = port.policy;
            parse::copy_addr(&mut h.addr, &saddr);
            return Ok(NAT_HOP);
        }
        k => return Err(route::refused(k)),
    };
    route::endpoint_allowed(r.kind, ep, port.vpc)?;
    if ep.kind == kind::EXEC_ENV {
        return Err(DropReason::NoRoute);
    }
    if ep.kind == kind::HYPERPLANE_ENI {
        // V2N is outbound only: nothing opens a connection to a Hyperplane ENI.
        return Err(DropReason::HyperplaneUnsolicited);
    }
    let track = !p.is_icmp() || p.is_echo_request();
    if track && !ct::opens(p) {
        return Err(DropReason::CtInvalid);
    }
    let unfiltered = resolver::unfiltered(p, ep)?;
    if !unfiltered {
        admit(p, epoch, &port.policy, port.subnet, ep, &p.saddr)?;
    }
    // Other ICMP (errors, ...) is checked against the groups but not tracked.
    if track {
        s.reply_key = ct::reply_key(&s.key, p.is_icmp());
        bind(s, ifindex, ep, port.subnet, epoch, r.kind)?;
        if unfiltered {
            resolver::local_to_sender(s);
        }
        s.orig.flags = 0;
        s.reply.flags = 0;
        s.orig.eni = 0;
        s.reply.eni = 0;
        s.orig.eni_subnet = 0;
        s.reply.eni_subnet = 0;
        open(s, now)?;
    }
    route::deliver_to(ctx, ep)
}

/// A new flow from a Lambda execution environment: out through its
/// function's Hyperplane ENI with source NAT.
#[inline(never)]
fn function_flow<C: Ctx>(ctx: &C, s: &mut Scratch, port: &PortInfo, ifindex: u32, now: u64) -> u32 {
    finish(function_flow_inner(ctx, s, port, ifindex, now))
}

#[inline(always)]
fn function_flow_inner<C: Ctx>(
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
    let epoch = policy_epoch();
    let r = route::lookup(epoch & 1, first.subnet, p.v6, &p.daddr)?;
    if r.kind == route_kind::NAT_GATEWAY {
        // Two translations, its ENI's then the gateway's, in one rewrite:
        // the checks see the ENI's address on the way to the gateway.
        let h = &mut s.hop;
        (h.id, h.ifindex, h.epoch, h.subnet, h.now) = (r.id, ifindex, epoch, first.subnet, now);
        h.policy = first.policy;
        parse::copy_addr(&mut h.addr, &first.addr4);
        return Ok(NAT_HOP);
    }
    // IPv6 leaves through either internet gateway from the ENI's own
    // (global) address; IPv4 would need a public one, which an ENI of
    // Lambda never has (`no_public_address`).
    let internet = p.v6
        && (r.kind == route_kind::INTERNET_GATEWAY
            || r.kind == route_kind::EGRESS_ONLY_INTERNET_GATEWAY);
    let ep = match r.kind {
        route_kind::LOCAL | route_kind::GATEWAY_ENDPOINT => route::endpoint(&p.daddr)?,
        route_kind::NETWORK_INTERFACE => route::middlebox(r.id)?,
        // Nothing leaves the project's namespaces: only test hosts answer.
        _ if internet => match route::endpoint(&p.daddr) {
            Ok(e) if e.kind == kind::INTERNET_HOST => e,
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
        _pad1: 0,
    };
    let id = claim_nat_port(s, group)?;
    let claim = s.claim;
    // Until the connection's entries are in, the claim is this packet's to
    // give back; from then on it is the connection's, and goes with it.
    let taken = r.kind;
    if let Err(r) = function_open(ctx, s, id, ep, ifindex, now, epoch, taken) {
        let _ = NAT_PORTS.remove(&claim);
        if flowlog::is_reject(r) {
            let w = flowlog::window();
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
        }
        return Err(r);
    }
    let action = route::deliver_to(ctx, ep)?;
    stats::eni_forwarded(s.orig.eni);
    Ok(action)
}

/// Source ports per ENI (or NAT gateway) and protocol, from `CONFIG[idx]`
/// (0 or out of range: `default`).
#[inline(always)]
pub(crate) fn capacity(idx: u32, default: u32) -> u32 {
    match CONFIG.get(idx).copied().unwrap_or(0) as u32 {
        c if c == 0 || c > NAT_PORT_RANGE => default,
        c => c,
    }
}

/// A NAT port for the connection in `s` (its `reply_key` holds the remote
/// side): the ENIs of the group in order, on each `NAT_PORT_TRIES`
/// independent random ports of its range; the first free one is claimed
/// with `BPF_NOEXIST`, its value the reply key (which names the ENI's
/// address and the port). Returns the ENI id, the claim in `s.claim`;
/// every ENI full is `NatPortExhausted`, counted in `NAT_STATS`.
/// A BPF function of its own: each probe leaves the verifier a different
/// state (the probe count), and only the result crosses back, so what
/// follows is verified once rather than once per probe.
#[inline(never)]
fn claim_nat_port(s: &mut Scratch, group: &EniGroup) -> Result<u32, DropReason> {
    let cap = capacity(cfg::ENI_CAPACITY, NAT_PORT_RANGE);
    let v6 = s.pkt.v6;
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
        parse::copy_addr(
            &mut s.reply_key.daddr,
            if v6 { &eni.addr6 } else { &eni.addr4 },
        );
        let mut k = 0;
        while k < NAT_PORT_TRIES {
            k += 1;
            probes += 1;
            let r = unsafe { aya_ebpf::helpers::bpf_get_prandom_u32() }
                .checked_rem(cap)
                .unwrap_or(0);
            let nat_port = ((NAT_PORT_MIN as u32 + r) as u16).to_be();
            s.reply_key.dport = nat_port;
            let claim = NatPortKey {
                eni: eni.pool,
                daddr: 0,
                port: nat_port,
                dport: 0,
                proto: s.reply_key.proto,
                _pad0: 0,
                _pad1: 0,
            };
            if NAT_PORTS
                .insert(&claim, &s.reply_key, BPF_NOEXIST as u64)
                .is_ok()
            {
                stats::nat_probes(probes);
                s.claim = claim;
                return Ok(id);
            }
        }
    }
    stats::nat_failed();
    Err(DropReason::NatPortExhausted)
}

/// The checks, the source NAT and the conntrack entries of a function
/// connection whose NAT port on ENI `id` is claimed (`s.reply_key`
/// complete), under policy `epoch`, by a route of kind `route` (local, or
/// an internet gateway for IPv6). `Ok` once the entries are in.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn function_open<C: Ctx>(
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
    if !unfiltered {
        admit(p, epoch, &eni.policy, eni.subnet, ep, eni_addr)?;
    }
    let nat_port = s.reply_key.dport;
    s.orig.eni = eni.pool as u16;
    s.reply.eni = eni.pool as u16;
    s.orig.eni_subnet = eni.subnet as u16;
    s.reply.eni_subnet = eni.subnet as u16;
    s.orig.flags = CT_F_SNAT;
    parse::copy_addr(&mut s.orig.nat_addr, eni_addr);
    s.orig.nat_port = nat_port;
    s.reply.flags = CT_F_DNAT;
    parse::copy_addr(&mut s.reply.nat_addr, &p.saddr);
    s.reply.nat_port = p.sport;
    bind(s, ifindex, ep, eni.subnet, epoch, route)?;
    if unfiltered {
        resolver::local_to_sender(s);
    }
    if ep.ifindex == 0 {
        return Err(DropReason::NoEgressPort);
    }
    // Rewritten before the entries go in: a packet dropped after the rewrite
    // does no harm, a connection without its packet would hold its port.
    nat::rewrite(ctx, &s.pkt, true, &s.orig.nat_addr, nat_port)?;
    open(s, now)
}

/// Forwarding and ACL-boundary state of both directions of a new
/// connection from subnet index `from` to `ep`, whose checks passed under
/// `epoch`, by a route of kind `route` (kept for re-routing after a policy
/// change). Replies leave by the port the opening packet came in on, to the
/// sender's MAC as the VPC knows it (its endpoint entry, found by the
/// source address the source check admitted).
#[inline(always)]
pub(crate) fn bind(
    s: &mut Scratch,
    ifindex: u32,
    ep: &Endpoint,
    from: u32,
    epoch: u32,
    route: u8,
) -> Result<(), DropReason> {
    let sender = route::endpoint(&s.pkt.saddr)?;
    let (o, r) = (&mut s.orig, &mut s.reply);
    o.in_ifindex = ifindex;
    o.out_ifindex = ep.ifindex;
    parse::copy_mac(&mut o.mac, &ep.mac);
    parse::copy_mac(&mut o.router_mac, &ep.router_mac);
    o.src_subnet = from as u16;
    o.dst_subnet = ep.subnet as u16;
    o.acl_gen = epoch.wrapping_add(1);
    o.route = route;
    r.in_ifindex = ep.ifindex;
    r.out_ifindex = ifindex;
    parse::copy_mac(&mut r.mac, &sender.mac);
    parse::copy_mac(&mut r.router_mac, &sender.router_mac);
    r.src_subnet = ep.subnet as u16;
    r.dst_subnet = from as u16;
    // Not `epoch + 1`, whatever the epoch: the first reply is checked.
    r.acl_gen = epoch;
    // A middlebox's answer is routed by its own subnet's table: locally.
    r.route = if route == route_kind::NETWORK_INTERFACE {
        route_kind::LOCAL
    } else {
        route
    };
    Ok(())
}

/// Inserts both entries of a new connection from `s` (flags and NAT fields
/// already set). The reply entry goes in first with `BPF_NOEXIST`: a NATed
/// connection's port is already claimed (`NAT_PORTS`), so its reply key is
/// new, and a host connection must not take over another's reply entry.
#[inline(always)]
pub(crate) fn open(s: &mut Scratch, now: u64) -> Result<(), DropReason> {
    let state = ct::initial_state(&s.pkt);
    for (e, dir, twin) in [
        (&mut s.orig, CT_DIR_ORIG, &s.reply_key),
        (&mut s.reply, CT_DIR_REPLY, &s.key),
    ] {
        e.last_seen = now;
        e.created = now;
        e.state = state;
        e.dir = dir;
        let (packets, bytes) = if dir == CT_DIR_ORIG {
            (s.pkt.segs, s.pkt.ip_len as u64)
        } else {
            (0, 0)
        };
        // Volatile: LLVM would merge the zeros into a `memset` call, a byte
        // loop in BPF.
        unsafe {
            core::ptr::write_volatile(&mut e.packets_orig, packets);
            core::ptr::write_volatile(&mut e.packets_reply, 0);
            core::ptr::write_volatile(&mut e.bytes_orig, bytes);
            core::ptr::write_volatile(&mut e.bytes_reply, 0);
        }
        e.twin = *twin;
        flowlog::clear(&mut e.fl);
    }
    let w = flowlog::window();
    if w != 0 {
        if let Some(old) = unsafe { CT.get(&s.key) } {
            flowlog::carry(&mut s.orig.fl, old);
        }
        if let Some(old) = unsafe { CT.get(&s.reply_key) } {
            flowlog::carry(&mut s.reply.fl, old);
        }
        flowlog::count(&mut s.orig.fl, &s.pkt, w, now);
    }
    let nat = s.reply.flags & CT_F_DNAT != 0;
    let flags = if nat { BPF_NOEXIST as u64 } else { 0 };
    if CT.insert(&s.reply_key, &s.reply, flags).is_err() {
        return Err(DropReason::CtFull);
    }
    if CT.insert(&s.key, &s.orig, 0).is_err() {
        let _ = CT.remove(&s.reply_key);
        return Err(DropReason::CtFull);
    }
    Ok(())
}

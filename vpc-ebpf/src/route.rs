//! Routing and delivery: the route table of the subnet a packet leaves
//! (one LPM lookup), then the destination lookup, MAC rewrite and
//! `bpf_redirect`.

use aya_ebpf::maps::lpm_trie::Key;
use vpc_common::{
    is_remote_port, kind, route_kind, subnet_acl_index, DropReason, Endpoint, RouteKey,
    RouteTarget, EP_F_NO_SOURCE_DEST_CHECK, ROUTE_FIXED_BITS,
};

use crate::{
    copy::{addr_key, copy_addr},
    ctx::{write, Ctx, VERDICT_DETAIL_SHIFT, VERDICT_REDIRECT},
    maps::{ENDPOINTS, ROUTES, SUBNET_ROUTE_TABLES},
    overlay,
    parse::{ETH_DST, ETH_SRC},
    stats,
};

/// The route a packet to `daddr` leaving subnet `subnet` takes, in policy
/// generation `gen`: the longest matching prefix of the subnet's table for
/// the packet's family. No match: `no_route` (as at AWS, dropped).
#[inline(always)]
pub fn lookup(
    gen: u32,
    subnet: u32,
    v6: bool,
    daddr: &[u8; 16],
) -> Result<RouteTarget, DropReason> {
    let table = SUBNET_ROUTE_TABLES
        .get(subnet_acl_index(gen, subnet))
        .copied()
        .unwrap_or(0);
    if table == 0 {
        return Err(DropReason::NoRoute);
    }
    let mut k = Key::new(
        ROUTE_FIXED_BITS + 128,
        RouteKey {
            table_family: ((table << 1) | v6 as u32).to_be_bytes(),
            addr: [0; 16],
        },
    );
    copy_addr(&mut k.data.addr, daddr);
    match ROUTES.get(&k) {
        Some(t) => Ok(*t),
        None => Err(DropReason::NoRoute),
    }
}

/// The drop reason of a packet whose route is not the one it may take.
#[inline(always)]
pub fn refused(kind: u8) -> DropReason {
    match kind {
        route_kind::BLACKHOLE => DropReason::RouteBlackhole,
        // Only senders without a public address are refused this route.
        route_kind::INTERNET_GATEWAY => DropReason::NoPublicAddress,
        // Only a connection from the internet is refused it (a tracked one
        // that opened through another route included).
        route_kind::EGRESS_ONLY_INTERNET_GATEWAY => DropReason::EgressOnlyInbound,
        _ => DropReason::NoRoute,
    }
}

/// Whether a new flow by a route of `kind` may reach `ep` from VPC `vpc`:
/// the `local` route reaches the VPC's own addresses, a gateway endpoint's
/// route only its simulated service (and nothing else reaches that).
#[inline(always)]
pub fn endpoint_allowed(kind: u8, ep: &Endpoint, vpc: u32) -> Result<(), DropReason> {
    let service = ep.kind == vpc_common::kind::AWS_SERVICE;
    if kind == route_kind::GATEWAY_ENDPOINT {
        if !service {
            return Err(DropReason::EndpointServiceMismatch);
        }
    } else if service || ep.vpc != vpc {
        return Err(DropReason::NoRoute);
    }
    Ok(())
}

/// The simulated service a gateway endpoint's route leads to at `addr`
/// (global space): anything else is `endpoint_service_mismatch`.
#[inline(always)]
pub fn gateway_service(addr: &[u8; 16]) -> Result<&'static Endpoint, DropReason> {
    match endpoint(vpc_common::GLOBAL_SPACE, addr) {
        Ok(e) if e.kind == kind::AWS_SERVICE => Ok(e),
        _ => Err(DropReason::EndpointServiceMismatch),
    }
}

/// The endpoint owning `addr` in address space `space`.
#[inline(always)]
pub fn endpoint(space: u32, addr: &[u8; 16]) -> Result<&'static Endpoint, DropReason> {
    match unsafe { ENDPOINTS.get(&addr_key(space, addr)) } {
        Some(e) => Ok(e),
        None => Err(DropReason::NoRoute),
    }
}

/// The ENI a route of kind `NETWORK_INTERFACE` of VPC `vpc` leads to
/// (`id`: its IPv4 address): a middlebox, which EC2 hands packets for
/// others only with its source/destination check off.
#[inline(always)]
pub fn middlebox(vpc: u32, id: u32) -> Result<&'static Endpoint, DropReason> {
    // IPv4-mapped, built as words: a byte array's zeros become a `memset`
    // call, a byte loop in BPF.
    let key = [vpc, 0u32, 0, u32::from_ne_bytes([0, 0, 0xff, 0xff]), id];
    let ep = match unsafe { ENDPOINTS.get(&*(key.as_ptr() as *const vpc_common::AddrKey)) } {
        Some(e) => e,
        None => return Err(DropReason::NoRoute),
    };
    if ep.kind != kind::HOST {
        return Err(DropReason::NoRoute);
    }
    if ep.flags & EP_F_NO_SOURCE_DEST_CHECK == 0 {
        return Err(DropReason::SourceDestCheck);
    }
    Ok(ep)
}

/// Delivers to an endpoint found by address (a new flow).
#[inline(always)]
pub fn deliver_to<C: Ctx>(ctx: &C, ep: &Endpoint) -> Result<u32, DropReason> {
    deliver(ctx, ep.ifindex, &ep.mac, &ep.router_mac)
}

/// Rewrites the Ethernet header for the egress link and redirects: to a
/// stand-in port (a node on another host), into the overlay (`overlay::send`).
/// The VPC fabric is transparent: TTL / hop limit stay as they are. The
/// verdict carries the egress ifindex (for `trace`).
#[inline(always)]
pub fn deliver<C: Ctx>(
    ctx: &C,
    ifindex: u32,
    mac: &[u8; 6],
    router_mac: &[u8; 6],
) -> Result<u32, DropReason> {
    if ifindex == 0 {
        return Err(DropReason::NoEgressPort);
    }
    write(ctx, ETH_DST, *mac)?;
    write(ctx, ETH_SRC, *router_mac)?;
    if is_remote_port(ifindex) {
        overlay::send(ctx, ifindex)?;
    } else if !ctx.redirect(ifindex) {
        return Err(DropReason::NoEgressPort);
    }
    Ok(redirected(ifindex))
}

/// A redirect to `ifindex` made: counted, and its verdict.
#[inline(always)]
pub fn redirected(ifindex: u32) -> u32 {
    stats::forwarded();
    VERDICT_REDIRECT | ifindex << VERDICT_DETAIL_SHIFT
}

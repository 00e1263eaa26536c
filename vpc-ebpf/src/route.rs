//! Delivery: destination lookup and the redirect to the endpoint's veth.

use vpc_common::{DropReason, Endpoint};

use crate::{
    ctx::{Ctx, VERDICT_REDIRECT},
    maps::ENDPOINTS,
    parse::write,
    stats,
};

#[inline(always)]
pub fn endpoint(addr: &[u8; 16]) -> Result<&'static Endpoint, DropReason> {
    match unsafe { ENDPOINTS.get(addr) } {
        Some(e) => Ok(e),
        None => Err(DropReason::NoRoute),
    }
}

/// Delivers to an endpoint found by address (a new flow).
#[inline(always)]
pub fn deliver_to<C: Ctx>(ctx: &C, ep: &Endpoint) -> Result<u32, DropReason> {
    deliver(ctx, ep.ifindex, &ep.mac, &ep.router_mac)
}

/// Rewrites the Ethernet header for the egress link and redirects.
/// The VPC fabric is transparent: TTL / hop limit stay as they are.
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
    write(ctx, 0, *mac)?;
    write(ctx, 6, *router_mac)?;
    if !ctx.redirect(ifindex) {
        return Err(DropReason::NoEgressPort);
    }
    stats::forwarded();
    Ok(VERDICT_REDIRECT)
}

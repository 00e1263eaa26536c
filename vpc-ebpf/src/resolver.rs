//! The VPC resolver (base + 2): as at AWS, DNS to it is never filtered by
//! security groups or network ACLs, it answers nothing else, and each
//! interface may send it 1,024 packets per second (its linklocal
//! allowance, `allowance.rs`).

use vpc_common::{kind, DropReason, Endpoint, CT_F_LINKLOCAL};

use crate::{
    maps::Scratch,
    parse::{Packet, IPPROTO_TCP, IPPROTO_UDP},
};

const DNS_PORT: u16 = 53u16.to_be();

/// Whether a new flow to `ep` skips the group and ACL checks: DNS to the
/// resolver does; anything else to it is dropped.
#[inline(always)]
pub fn unfiltered(p: &Packet, ep: &Endpoint) -> Result<bool, DropReason> {
    if ep.kind != kind::RESOLVER {
        return Ok(false);
    }
    let dns = (p.proto == IPPROTO_TCP || p.proto == IPPROTO_UDP) && p.dport == DNS_PORT;
    if dns {
        Ok(true)
    } else {
        Err(DropReason::ResolverNotDns)
    }
}

/// The resolver is local to whoever asks: both directions of the
/// connection stay in the sender's subnet, so no ACL boundary is crossed
/// on later packets either; and every later query takes a token of the
/// sender's linklocal allowance (`CT_F_LINKLOCAL`, flags set before).
#[inline(always)]
pub fn local_to_sender(s: &mut Scratch) {
    s.orig.dst_subnet = s.orig.src_subnet;
    s.reply.src_subnet = s.reply.dst_subnet;
    s.orig.flags |= CT_F_LINKLOCAL;
}

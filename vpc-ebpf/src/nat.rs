//! Address and port rewrites with incremental checksum updates, through the
//! hook's own checksum operations (`Ctx`).
use vpc_common::DropReason;

use crate::{
    ctx::{Ctx, CSUM_PSEUDO, CSUM_ZERO_IS_NONE},
    parse::{read, write, Packet, ETH_HLEN, IPPROTO_TCP, IPPROTO_UDP},
};

/// Rewrites the source (`src`) or destination address and L4 port of a TCP
/// or UDP packet. IPv4 UDP with a zero checksum (none) keeps it zero.
#[inline(always)]
pub fn rewrite<C: Ctx>(
    ctx: &C,
    p: &Packet,
    src: bool,
    addr: &[u8; 16],
    port: u16,
) -> Result<(), DropReason> {
    let l4_off = p.l4()?;
    let (csum_off, zero) = match p.proto {
        IPPROTO_TCP => (l4_off + 16, 0),
        // IPv4 UDP may carry none (0), which stays 0; a computed 0 goes out
        // as 0xffff (RFC 768). IPv6 UDP is never 0 on the wire.
        IPPROTO_UDP => (l4_off + 6, CSUM_ZERO_IS_NONE),
        _ => return Err(DropReason::FunctionProtocol),
    };
    if p.v6 {
        let off = ETH_HLEN + if src { 8 } else { 24 };
        let new = addr_words(addr);
        let mut i = 0;
        while i < 4 {
            let old = read::<u32>(ctx, off + i * 4)?;
            ctx.l4_csum_replace(csum_off, old, new[i], 4, CSUM_PSEUDO | zero)?;
            i += 1;
        }
        write(ctx, off, *addr)?;
    } else {
        let off = ETH_HLEN + if src { 12 } else { 16 };
        let old = read::<u32>(ctx, off)?;
        let new = addr_words(addr)[3];
        ctx.l3_csum_replace(ETH_HLEN + 10, old, new)?;
        ctx.l4_csum_replace(csum_off, old, new, 4, CSUM_PSEUDO | zero)?;
        write(ctx, off, new)?;
    }
    let port_off = l4_off + if src { 0 } else { 2 };
    let old_port = read::<u16>(ctx, port_off)?;
    ctx.l4_csum_replace(csum_off, old_port as u32, port as u32, 2, zero)?;
    write(ctx, port_off, port)
}

/// An address as four words in packet byte order.
#[inline(always)]
fn addr_words(a: &[u8; 16]) -> [u32; 4] {
    let w = |i: usize| u32::from_ne_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
    [w(0), w(4), w(8), w(12)]
}

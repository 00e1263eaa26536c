//! Address and port rewrites with incremental checksum updates.
use aya_ebpf::programs::XdpContext;
use vpc_common::DropReason;

use crate::{
    csum,
    parse::{read, write, Packet, ETH_HLEN, IPPROTO_TCP, IPPROTO_UDP},
};

/// Rewrites the source (`src`) or destination address and L4 port of a TCP
/// or UDP packet. IPv4 UDP with a zero checksum (none) keeps it zero.
#[inline(always)]
pub fn rewrite(
    ctx: &XdpContext,
    p: &Packet,
    src: bool,
    addr: &[u8; 16],
    port: u16,
) -> Result<(), DropReason> {
    let l4_off = p.l4()?;
    let csum_off = match p.proto {
        IPPROTO_TCP => l4_off + 16,
        IPPROTO_UDP => l4_off + 6,
        _ => return Err(DropReason::FunctionProtocol),
    };
    let mut l4 = read::<u16>(ctx, csum_off)?;
    let no_csum = p.proto == IPPROTO_UDP && !p.v6 && l4 == 0;
    if p.v6 {
        let off = ETH_HLEN + if src { 8 } else { 24 };
        let old = read::<[u8; 16]>(ctx, off)?;
        l4 = csum::replace_bytes(l4, &old, addr);
        write(ctx, off, *addr)?;
    } else {
        let off = ETH_HLEN + if src { 12 } else { 16 };
        let old = read::<[u8; 4]>(ctx, off)?;
        let new = [addr[12], addr[13], addr[14], addr[15]];
        let ip = read::<u16>(ctx, ETH_HLEN + 10)?;
        write(ctx, ETH_HLEN + 10, csum::replace_bytes(ip, &old, &new))?;
        if !no_csum {
            l4 = csum::replace_bytes(l4, &old, &new);
        }
        write(ctx, off, new)?;
    }
    let port_off = l4_off + if src { 0 } else { 2 };
    let old_port = read::<u16>(ctx, port_off)?;
    write(ctx, port_off, port)?;
    if !no_csum {
        l4 = csum::replace16(l4, old_port, port);
        // A computed UDP checksum of zero is sent as all ones (RFC 768).
        if p.proto == IPPROTO_UDP && l4 == 0 {
            l4 = 0xffff;
        }
        write(ctx, csum_off, l4)?;
    }
    Ok(())
}

//! Address and port rewrites with incremental checksum updates, through the
//! hook's own checksum operations (`Ctx`).
use vpc_common::DropReason;

use crate::{
    ctx::{read, write, Ctx, CSUM_PSEUDO, CSUM_ZERO_IS_NONE},
    parse::{
        Packet, Quote, ETH_HLEN, ICMP_CHECK, ICMP_ECHO_ID, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP,
        IPV4_CHECK, IPV4_DST, IPV4_SRC, IPV6_DST, IPV6_SRC, L4_DPORT, L4_SPORT, TCP_CHECK,
        UDP_CHECK,
    },
};

/// Rewrites the source (`src`) or destination address and L4 port of a TCP
/// or UDP packet, or the address and echo identifier of an ICMPv4 echo. IPv4 UDP with a zero checksum (none) keeps it zero.
#[inline(always)]
pub fn rewrite<C: Ctx>(
    ctx: &C,
    p: &Packet,
    src: bool,
    addr: &[u8; 16],
    port: u16,
) -> Result<(), DropReason> {
    let l4_off = p.l4()?;
    // ICMPv4 has no pseudo-header: an address change touches only the IP
    // header (the internet gateway's 1:1 NAT of an echo). The echo's
    // identifier is its "port" (the NAT gateway's own one, or back).
    if p.proto == IPPROTO_ICMP && !p.v6 {
        echo_id(ctx, l4_off, port)?;
        let off = ETH_HLEN + if src { IPV4_SRC } else { IPV4_DST };
        let old = read::<u32>(ctx, off)?;
        let new = addr_words(addr)[3];
        ctx.l3_csum_replace(ETH_HLEN + IPV4_CHECK, old, new)?;
        return write(ctx, off, new);
    }
    let (csum_off, zero) = match p.proto {
        IPPROTO_TCP => (l4_off + TCP_CHECK, 0),
        // IPv4 UDP may carry none (0), which stays 0; a computed 0 goes out
        // as 0xffff (RFC 768). IPv6 UDP is never 0 on the wire.
        IPPROTO_UDP => (l4_off + UDP_CHECK, CSUM_ZERO_IS_NONE),
        // Other protocols over IPv4 (GRE, ESP, SCTP ...: only the internet
        // gateway's 1:1 NAT gets them) have no ports and no pseudo-header
        // sum to fix: the address alone, as AWS translates them.
        _ if !p.v6 => return ipv4_addr(ctx, src, addr),
        _ => return Err(DropReason::FunctionProtocol),
    };
    if p.v6 {
        let off = ETH_HLEN + if src { IPV6_SRC } else { IPV6_DST };
        let new = addr_words(addr);
        let mut i = 0;
        while i < 4 {
            let old = read::<u32>(ctx, off + i * 4)?;
            ctx.l4_csum_replace(csum_off, old, new[i], 4, CSUM_PSEUDO | zero)?;
            i += 1;
        }
        write(ctx, off, *addr)?;
    } else {
        let off = ETH_HLEN + if src { IPV4_SRC } else { IPV4_DST };
        let old = read::<u32>(ctx, off)?;
        let new = addr_words(addr)[3];
        ctx.l3_csum_replace(ETH_HLEN + IPV4_CHECK, old, new)?;
        ctx.l4_csum_replace(csum_off, old, new, 4, CSUM_PSEUDO | zero)?;
        write(ctx, off, new)?;
    }
    let port_off = l4_off + if src { L4_SPORT } else { L4_DPORT };
    let old_port = read::<u16>(ctx, port_off)?;
    ctx.l4_csum_replace(csum_off, old_port as u32, port as u32, 2, zero)?;
    write(ctx, port_off, port)
}

/// Rewrites the IPv4 source (`src`) or destination address alone (a later
/// fragment: no L4 header).
#[inline(always)]
pub fn ipv4_addr<C: Ctx>(ctx: &C, src: bool, addr: &[u8; 16]) -> Result<(), DropReason> {
    let off = ETH_HLEN + if src { IPV4_SRC } else { IPV4_DST };
    let old = read::<u32>(ctx, off)?;
    let new = addr_words(addr)[3];
    ctx.l3_csum_replace(ETH_HLEN + IPV4_CHECK, old, new)?;
    write(ctx, off, new)
}

/// The identifier of the ICMPv4 echo at `l4_off` becomes `id`, and its
/// checksum follows.
#[inline(always)]
fn echo_id<C: Ctx>(ctx: &C, l4_off: usize, id: u16) -> Result<(), DropReason> {
    // Checksum and identifier from one base, one bounds check.
    const _: () = assert!(ICMP_ECHO_ID == ICMP_CHECK + 2);
    let at = l4_off + ICMP_CHECK;
    let old = read::<[u16; 2]>(ctx, at)?[1];
    // From the frame, not the parsed packet: a packet rewritten once
    // already (a clash's retry, `ct::open`) is rewritten from what it holds.
    if old == id {
        return Ok(());
    }
    ctx.l4_csum_replace(at, old as u32, id as u32, 2, 0)?;
    write(ctx, l4_off + ICMP_ECHO_ID, id)
}

/// Translates an ICMP error about a NATed connection, as Linux's NAT does
/// for related ICMP: the outer address (the source with `snat`, else the
/// destination) becomes `addr`, and the quoted packet, which travelled the
/// other way, gets the opposite address and port (`addr`, `port`).
///
/// Checksums, all incremental: the outer IPv4 header; the ICMP checksum,
/// which covers the whole message, so every quoted byte changed here
/// (address, IPv4 header checksum, port, L4 checksum) and, for ICMPv6, the
/// pseudo-header; the quoted IPv4 header checksum; and the quoted L4
/// checksum when the quote holds it (a zero IPv4 UDP checksum stays zero).
/// Changes inside the quote are not pseudo-header changes of the packet
/// being forwarded, so they go without `CSUM_PSEUDO`.
#[inline(always)]
pub fn icmp_error<C: Ctx>(
    ctx: &C,
    p: &Packet,
    q: &Quote,
    snat: bool,
    addr: &[u8; 16],
    port: u16,
) -> Result<(), DropReason> {
    let icmp_csum = p.l4()? + ICMP_CHECK;
    let l3 = q.l3()?;
    let l4 = q.l4()?;
    let l4_csum = q.csum()?;
    let zero = if q.proto == IPPROTO_UDP {
        CSUM_ZERO_IS_NONE
    } else {
        0
    };
    let new = addr_words(addr);
    // The quoted packet's address: its destination when the error travels
    // like the connection's SNAT direction, its source otherwise.
    if p.v6 {
        let off = l3 + if snat { IPV6_DST } else { IPV6_SRC };
        let mut i = 0;
        while i < 4 {
            let old = read::<u32>(ctx, off + i * 4)?;
            if l4_csum != 0 {
                quoted_l4_csum(ctx, icmp_csum, l4_csum, old, new[i], 4, zero)?;
            }
            ctx.l4_csum_replace(icmp_csum, old, new[i], 4, 0)?;
            i += 1;
        }
        write(ctx, off, *addr)?;
    } else {
        let off = l3 + if snat { IPV4_DST } else { IPV4_SRC };
        let old = read::<u32>(ctx, off)?;
        let ip_csum = l3 + IPV4_CHECK;
        let before = read::<u16>(ctx, ip_csum)?;
        ctx.l3_csum_replace(ip_csum, old, new[3])?;
        let after = read::<u16>(ctx, ip_csum)?;
        ctx.l4_csum_replace(icmp_csum, before as u32, after as u32, 2, 0)?;
        if l4_csum != 0 {
            quoted_l4_csum(ctx, icmp_csum, l4_csum, old, new[3], 4, zero)?;
        }
        ctx.l4_csum_replace(icmp_csum, old, new[3], 4, 0)?;
        write(ctx, off, new[3])?;
    }
    let port_off = l4 + if snat { L4_DPORT } else { L4_SPORT };
    let old_port = read::<u16>(ctx, port_off)?;
    if l4_csum != 0 {
        quoted_l4_csum(
            ctx,
            icmp_csum,
            l4_csum,
            old_port as u32,
            port as u32,
            2,
            zero,
        )?;
    }
    ctx.l4_csum_replace(icmp_csum, old_port as u32, port as u32, 2, 0)?;
    write(ctx, port_off, port)?;
    // The outer header last: the ICMPv6 checksum covers its addresses.
    if p.v6 {
        let off = ETH_HLEN + if snat { IPV6_SRC } else { IPV6_DST };
        let mut i = 0;
        while i < 4 {
            let old = read::<u32>(ctx, off + i * 4)?;
            ctx.l4_csum_replace(icmp_csum, old, new[i], 4, CSUM_PSEUDO)?;
            i += 1;
        }
        write(ctx, off, *addr)
    } else {
        let off = ETH_HLEN + if snat { IPV4_SRC } else { IPV4_DST };
        let old = read::<u32>(ctx, off)?;
        ctx.l3_csum_replace(ETH_HLEN + IPV4_CHECK, old, new[3])?;
        write(ctx, off, new[3])
    }
}

/// Updates the quoted L4 checksum for a change of the quote, and the ICMP
/// checksum for the change of that checksum field.
#[inline(always)]
fn quoted_l4_csum<C: Ctx>(
    ctx: &C,
    icmp_csum: usize,
    off: usize,
    old: u32,
    new: u32,
    size: u64,
    zero: u64,
) -> Result<(), DropReason> {
    let before = read::<u16>(ctx, off)?;
    ctx.l4_csum_replace(off, old, new, size, zero)?;
    let after = read::<u16>(ctx, off)?;
    ctx.l4_csum_replace(icmp_csum, before as u32, after as u32, 2, 0)
}

/// An address as four words in packet byte order.
#[inline(always)]
fn addr_words(a: &[u8; 16]) -> [u32; 4] {
    let w = |i: usize| u32::from_ne_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
    [w(0), w(4), w(8), w(12)]
}

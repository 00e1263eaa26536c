//! Header parsing with explicit bounds checks. Everything that cannot be
//! parsed is a drop with a reason; nothing is passed unchecked. Header
//! layouts are network-types' (`EthHdr`, `Ipv4Hdr`, `Ipv6Hdr`, `TcpHdr`,
//! `UdpHdr`, `Icmpv4Hdr`): the offsets below are their fields'.
use core::mem::offset_of;

use network_types::{
    eth::{EthHdr, EtherType},
    icmp::{Icmpv4Hdr, Icmpv6Hdr},
    ip::{IpProto, Ipv4Hdr, Ipv6Hdr},
    tcp::TcpHdr,
    udp::UdpHdr,
};
use vpc_common::DropReason;

use crate::ctx::{ptr_at, read, Ctx};

pub const ETH_HLEN: usize = EthHdr::LEN;
pub const IPPROTO_TCP: u8 = IpProto::Tcp as u8;
pub const IPPROTO_UDP: u8 = IpProto::Udp as u8;
pub const IPPROTO_ICMP: u8 = IpProto::Icmp as u8;
pub const IPPROTO_ICMPV6: u8 = IpProto::Ipv6Icmp as u8;
/// IPv6 extension headers we walk, at most this many.
const MAX_EXT_HEADERS: usize = 4;
/// Upper bound on the L4 offset: keeps every offset provably bounded.
pub const MAX_L4_OFF: usize = 256;

/// Where the fields read or rewritten in place sit: in the Ethernet header
/// (from the start of the frame), and from the start of their IP or L4
/// header.
pub const ETH_DST: usize = offset_of!(EthHdr, dst_addr);
pub const ETH_SRC: usize = offset_of!(EthHdr, src_addr);
pub const ETH_TYPE: usize = offset_of!(EthHdr, ether_type);
/// Version and header length (IPv4), version and traffic class (IPv6).
pub const IP_VERSION: usize = offset_of!(Ipv4Hdr, vihl);
pub const IPV4_TOT_LEN: usize = offset_of!(Ipv4Hdr, tot_len);
pub const IPV4_ID: usize = offset_of!(Ipv4Hdr, id);
pub const IPV4_FRAGS: usize = offset_of!(Ipv4Hdr, frags);
pub const IPV4_TTL: usize = offset_of!(Ipv4Hdr, ttl);
pub const IPV4_PROTO: usize = offset_of!(Ipv4Hdr, proto);
pub const IPV4_CHECK: usize = offset_of!(Ipv4Hdr, check);
pub const IPV4_SRC: usize = offset_of!(Ipv4Hdr, src_addr);
pub const IPV4_DST: usize = offset_of!(Ipv4Hdr, dst_addr);
pub const IPV6_PAYLOAD_LEN: usize = offset_of!(Ipv6Hdr, payload_len);
pub const IPV6_NEXT_HDR: usize = offset_of!(Ipv6Hdr, next_hdr);
pub const IPV6_SRC: usize = offset_of!(Ipv6Hdr, src_addr);
pub const IPV6_DST: usize = offset_of!(Ipv6Hdr, dst_addr);
/// TCP and UDP alike (checked below).
pub const L4_SPORT: usize = offset_of!(TcpHdr, source);
pub const L4_DPORT: usize = offset_of!(TcpHdr, dest);
pub const TCP_SEQ: usize = offset_of!(TcpHdr, seq);
pub const TCP_ACK_SEQ: usize = offset_of!(TcpHdr, ack_seq);
/// Data offset (high nibble), then the flags: the header's bitfield bytes
/// (its getters walk bit by bit).
pub const TCP_DOFF: usize = offset_of!(TcpHdr, _bitfield_1);
pub const TCP_FLAGS: usize = TCP_DOFF + 1;
pub const TCP_WINDOW: usize = offset_of!(TcpHdr, window);
pub const TCP_CHECK: usize = offset_of!(TcpHdr, check);
pub const UDP_LEN: usize = offset_of!(UdpHdr, len);
pub const UDP_CHECK: usize = offset_of!(UdpHdr, check);
/// ICMP and ICMPv6 alike (checked below): type, code, checksum, then the
/// echo's identifier.
const ICMP_TYPE: usize = offset_of!(Icmpv4Hdr, type_);
const ICMP_CODE: usize = offset_of!(Icmpv4Hdr, code);
pub const ICMP_CHECK: usize = offset_of!(Icmpv4Hdr, check);
pub const ICMP_ECHO_ID: usize = offset_of!(Icmpv4Hdr, data);
/// The smallest ICMP message: its header, 8 bytes.
pub const ICMP_HLEN: usize = Icmpv4Hdr::LEN;

const _: () = {
    assert!(offset_of!(UdpHdr, src) == L4_SPORT && offset_of!(UdpHdr, dst) == L4_DPORT);
    assert!(offset_of!(Icmpv6Hdr, type_) == ICMP_TYPE);
    assert!(offset_of!(Icmpv6Hdr, code) == ICMP_CODE);
    assert!(offset_of!(Icmpv6Hdr, check) == ICMP_CHECK);
    assert!(offset_of!(Icmpv6Hdr, data) == ICMP_ECHO_ID && Icmpv6Hdr::LEN == ICMP_HLEN);
    assert!(offset_of!(Ipv6Hdr, vcf) == IP_VERSION);
};

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// What the pipeline needs to know about a packet. `repr(C, align(8))`
/// with the addresses first, so that they are copied a word at a time.
#[repr(C, align(8))]
pub struct Packet {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub l4_off: usize,
    /// IP length, header included (what flow logs and conntrack count).
    pub ip_len: u32,
    /// Packets on the wire this one stands for (GSO: its segments).
    pub segs: u32,
    pub v6: bool,
    pub proto: u8,
    pub tcp_flags: u8,
    /// ICMP type and code (0 otherwise).
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// Ports as on the wire (ICMP echo: identifier and 0).
    pub sport: u16,
    pub dport: u16,
    /// IPv4 fragments: `FRAG_FIRST` (offset 0, more to come: it has the
    /// L4 header) or `FRAG_LATER` (no L4 header, no ports); 0: whole.
    pub frag: u8,
    /// IPv4 identification (as on the wire): a datagram's fragments share it.
    pub ip_id: u16,
}

pub const FRAG_FIRST: u8 = 1;
pub const FRAG_LATER: u8 = 2;

impl Packet {
    /// The L4 offset, re-bounded: the verifier forgets bounds of values it
    /// reads back from a map (the packet lives in per-CPU scratch).
    #[inline(always)]
    pub fn l4(&self) -> Result<usize, DropReason> {
        let off = self.l4_off;
        if off > MAX_L4_OFF {
            return Err(DropReason::Malformed);
        }
        Ok(off)
    }

    /// The "port" security groups match on: destination port for TCP/UDP,
    /// `type << 8 | code` for ICMP, 0 otherwise (host order).
    #[inline(always)]
    pub fn policy_port(&self) -> u16 {
        match self.proto {
            IPPROTO_TCP | IPPROTO_UDP => u16::from_be(self.dport),
            IPPROTO_ICMP | IPPROTO_ICMPV6 => ((self.icmp_type as u16) << 8) | self.icmp_code as u16,
            _ => 0,
        }
    }

    /// Chooses the IPv6 or IPv4 one of two addresses. The flag is re-read
    /// and masked so the verifier sees a 0-or-1 offset when LLVM turns the
    /// choice into pointer arithmetic.
    #[inline(always)]
    pub fn pick<'a>(&self, v6: &'a [u8; 16], v4: &'a [u8; 16]) -> &'a [u8; 16] {
        let flag = unsafe { core::ptr::read_volatile(&self.v6 as *const bool as *const u8) } & 1;
        if flag != 0 {
            v6
        } else {
            v4
        }
    }

    #[inline(always)]
    pub fn is_icmp(&self) -> bool {
        self.proto == IPPROTO_ICMP || self.proto == IPPROTO_ICMPV6
    }

    /// ICMP echo request / reply: the only ICMP messages that are tracked.
    #[inline(always)]
    pub fn is_echo_request(&self) -> bool {
        (self.proto == IPPROTO_ICMP && self.icmp_type == 8)
            || (self.proto == IPPROTO_ICMPV6 && self.icmp_type == 128)
    }

    /// An ICMP error that quotes the packet it is about: IPv4 destination
    /// unreachable (3, fragmentation needed among them) and time exceeded
    /// (11); ICMPv6 destination unreachable (1), packet too big (2) and
    /// time exceeded (3).
    #[inline(always)]
    pub fn is_icmp_error(&self) -> bool {
        match self.proto {
            IPPROTO_ICMP => self.icmp_type == 3 || self.icmp_type == 11,
            IPPROTO_ICMPV6 => self.icmp_type >= 1 && self.icmp_type <= 3,
            _ => false,
        }
    }

    #[inline(always)]
    pub fn is_echo_reply(&self) -> bool {
        (self.proto == IPPROTO_ICMP && self.icmp_type == 0)
            || (self.proto == IPPROTO_ICMPV6 && self.icmp_type == 129)
    }
}

/// Upper bounds of the quoted packet's offsets: its IP header follows the
/// 8-byte ICMP header, its L4 header an IPv4 header of at most 60 bytes.
const MAX_QUOTE_L3: usize = MAX_L4_OFF + ICMP_HLEN;
const MAX_QUOTE_L4: usize = MAX_QUOTE_L3 + MAX_IPV4_HLEN;
/// An IPv4 header with every option: IHL 15.
const MAX_IPV4_HLEN: usize = 60;
/// How far into a packet parsing reads at most: an ICMP error after
/// extension headers, the IPv4 header it quotes with every option, and a
/// TCP header.
pub const MAX_PARSED: usize = MAX_QUOTE_L4 + TcpHdr::LEN;

/// The packet an ICMP error quotes (a TCP or UDP packet as it was sent:
/// its IP header and at least the first 8 bytes of its L4 header).
#[repr(C, align(8))]
pub struct Quote {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub l3_off: usize,
    pub l4_off: usize,
    /// Offset of its L4 checksum; 0 when the quote stops before it (a TCP
    /// quote of 8 bytes, as RFC 792 allows).
    pub csum_off: usize,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
}

impl Quote {
    /// Offsets re-bounded, as [`Packet::l4`] (the quote lives in scratch).
    #[inline(always)]
    pub fn l3(&self) -> Result<usize, DropReason> {
        let off = self.l3_off;
        if off > MAX_QUOTE_L3 {
            return Err(DropReason::Malformed);
        }
        Ok(off)
    }

    #[inline(always)]
    pub fn l4(&self) -> Result<usize, DropReason> {
        let off = self.l4_off;
        if off > MAX_QUOTE_L4 {
            return Err(DropReason::Malformed);
        }
        Ok(off)
    }

    #[inline(always)]
    pub fn csum(&self) -> Result<usize, DropReason> {
        let off = self.csum_off;
        if off > MAX_QUOTE_L4 + TCP_CHECK {
            return Err(DropReason::Malformed);
        }
        Ok(off)
    }
}

/// Parses the packet quoted by the ICMP error `p`. Only what the quote
/// holds counts (the outer IP length, not the frame's padding): its IP
/// header whole and 8 bytes of TCP or UDP (ports; UDP's checksum too),
/// the TCP checksum only if the quote holds the whole 20-byte header, as
/// Linux's NAT does. `Ok(false)`: a quote of anything that cannot be a
/// packet of a connection it relates to (not TCP or UDP, a fragment).
#[inline(always)]
pub fn quote<C: Ctx>(ctx: &C, p: &Packet, q: &mut Quote) -> Result<bool, DropReason> {
    let l3 = p.l4()? + ICMP_HLEN;
    let end = ETH_HLEN + p.ip_len as usize;
    let l4;
    if p.v6 {
        // The header checked whole: a 1-byte read at a variable offset
        // compiles to a bounds check the verifier cannot use.
        let ip = ptr_at::<Ipv6Hdr>(ctx, l3).ok_or(DropReason::Malformed)?;
        if field::<_, u8, IP_VERSION>(ip) >> 4 != 6 {
            return Err(DropReason::Malformed);
        }
        q.proto = field::<_, _, IPV6_NEXT_HDR>(ip);
        set_addr(&mut q.saddr, field::<_, _, IPV6_SRC>(ip));
        set_addr(&mut q.daddr, field::<_, _, IPV6_DST>(ip));
        if embeds_v4(&q.saddr) || embeds_v4(&q.daddr) {
            return Err(DropReason::Ipv6EmbeddedV4);
        }
        l4 = l3 + Ipv6Hdr::LEN;
    } else {
        let ip = ptr_at::<Ipv4Hdr>(ctx, l3).ok_or(DropReason::Malformed)?;
        let vihl: u8 = field::<_, _, IP_VERSION>(ip);
        let ihl = ((vihl & 0x0f) as usize) * 4;
        if vihl >> 4 != 4 || ihl < Ipv4Hdr::LEN {
            return Err(DropReason::Malformed);
        }
        if u16::from_be(field::<_, _, IPV4_FRAGS>(ip)) & 0x3fff != 0 {
            // Fragments never cross the router: no connection has one.
            return Ok(false);
        }
        q.proto = field::<_, _, IPV4_PROTO>(ip);
        set_v4_mapped(&mut q.saddr, field::<_, _, IPV4_SRC>(ip));
        set_v4_mapped(&mut q.daddr, field::<_, _, IPV4_DST>(ip));
        l4 = l3 + ihl;
    }
    if l4 + UdpHdr::LEN > end {
        return Err(DropReason::Malformed);
    }
    q.csum_off = match q.proto {
        IPPROTO_TCP if l4 + TcpHdr::LEN <= end => l4 + TCP_CHECK,
        IPPROTO_TCP => 0,
        IPPROTO_UDP => l4 + UDP_CHECK,
        _ => return Ok(false),
    };
    let ports = read::<[u16; 2]>(ctx, l4 + L4_SPORT)?;
    q.sport = ports[0];
    q.dport = ports[1];
    q.l3_off = l3;
    q.l4_off = l4;
    Ok(true)
}

/// The `T` at offset `OFF` of the header at `hdr`, which `ptr_at` checked
/// whole: the field lies inside `H` (checked at compile time), so it needs
/// no bounds check of its own.
#[inline(always)]
fn field<H, T: Copy, const OFF: usize>(hdr: *const H) -> T {
    const { assert!(OFF + core::mem::size_of::<T>() <= core::mem::size_of::<H>()) };
    unsafe { core::ptr::read_unaligned((hdr as *const u8).add(OFF) as *const T) }
}

/// Writes an IPv6 address, read from the packet as four words, into a
/// 4-aligned field a word at a time (an unaligned 16-byte copy becomes a
/// `memmove` call).
#[inline(always)]
fn set_addr(dst: &mut [u8; 16], w: [u32; 4]) {
    let d = dst.as_mut_ptr() as *mut u32;
    for (i, v) in w.iter().enumerate() {
        unsafe { core::ptr::write_volatile(d.add(i), *v) };
    }
}

/// An IPv4-mapped (`::ffff:0:0/96`) or IPv4-compatible (`::/96`, with
/// `::` and `::1`) IPv6 address: IPv4 addresses are kept in the mapped form,
/// so IPv6 must never carry one.
#[inline(always)]
fn embeds_v4(a: &[u8; 16]) -> bool {
    let w = |i: usize| u32::from_ne_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
    w(0) == 0 && w(4) == 0 && (w(8) == 0 || w(8) == u32::from_ne_bytes([0, 0, 0xff, 0xff]))
}

/// Writes `::ffff:a.b.c.d` as four words (`a` as on the wire).
#[inline(always)]
pub fn set_v4_mapped(dst: &mut [u8; 16], a: u32) {
    // Every caller passes a 4-aligned field (`Packet`, `Quote`, `CtKey`).
    let w = dst.as_mut_ptr() as *mut [u32; 4];
    unsafe { *w = [0, 0, u32::from_ne_bytes([0, 0, 0xff, 0xff]), a] };
}

#[inline(always)]
pub fn parse<C: Ctx>(ctx: &C, p: &mut Packet) -> Result<(), DropReason> {
    // Ether types as on the wire (network order), compared as read.
    const V4: u16 = EtherType::Ipv4 as u16;
    const V6: u16 = EtherType::Ipv6 as u16;
    const VLAN: u16 = EtherType::Ieee8021q as u16;
    const QINQ: u16 = EtherType::Ieee8021ad as u16;
    const HOP_BY_HOP: u8 = IpProto::HopOpt as u8;
    const ROUTING: u8 = IpProto::Ipv6Route as u8;
    const DEST_OPTS: u8 = IpProto::Ipv6Opts as u8;
    const FRAGMENT: u8 = IpProto::Ipv6Frag as u8;
    const L3_V6: usize = ETH_HLEN + Ipv6Hdr::LEN;
    let ethertype = read::<u16>(ctx, ETH_TYPE)?;
    p.segs = ctx.segs();
    p.l4_off = 0;
    p.v6 = false;
    p.tcp_flags = 0;
    p.icmp_type = 0;
    p.icmp_code = 0;
    p.sport = 0;
    p.dport = 0;
    p.frag = 0;
    p.ip_id = 0;
    let l4_len: usize;
    match ethertype {
        V4 => {
            // Fields by offset from the frame, not through the header's
            // pointer: kept across `ctx.len()` it costs the XDP build a
            // spill (17 instructions more, 8 bytes more stack).
            ptr_at::<Ipv4Hdr>(ctx, ETH_HLEN).ok_or(DropReason::Malformed)?;
            let vihl = read::<u8>(ctx, ETH_HLEN + IP_VERSION)?;
            let ihl = ((vihl & 0x0f) as usize) * 4;
            if vihl >> 4 != 4 || ihl < Ipv4Hdr::LEN {
                return Err(DropReason::Malformed);
            }
            let tot_len = u16::from_be(read::<u16>(ctx, ETH_HLEN + IPV4_TOT_LEN)?) as usize;
            if tot_len < ihl || ETH_HLEN + tot_len > ctx.len() {
                return Err(DropReason::Malformed);
            }
            // Options are skipped: the header length bounds them.
            let frag = u16::from_be(read::<u16>(ctx, ETH_HLEN + IPV4_FRAGS)?);
            p.proto = read::<u8>(ctx, ETH_HLEN + IPV4_PROTO)?;
            set_v4_mapped(&mut p.saddr, read::<u32>(ctx, ETH_HLEN + IPV4_SRC)?);
            set_v4_mapped(&mut p.daddr, read::<u32>(ctx, ETH_HLEN + IPV4_DST)?);
            p.ip_len = tot_len as u32;
            p.l4_off = ETH_HLEN + ihl;
            l4_len = tot_len - ihl;
            // A fragment: the first has the L4 header (its ports); the
            // others have none, and go by the datagram's identification.
            if frag & 0x3fff != 0 {
                p.ip_id = read::<u16>(ctx, ETH_HLEN + IPV4_ID)?;
                if frag & 0x1fff != 0 {
                    p.frag = FRAG_LATER;
                    return Ok(());
                }
                p.frag = FRAG_FIRST;
            }
        }
        V6 => {
            p.v6 = true;
            let ip = ptr_at::<Ipv6Hdr>(ctx, ETH_HLEN).ok_or(DropReason::Malformed)?;
            let vtc: u8 = field::<_, _, IP_VERSION>(ip);
            if vtc >> 4 != 6 {
                return Err(DropReason::Malformed);
            }
            let payload_len = u16::from_be(field::<_, _, IPV6_PAYLOAD_LEN>(ip)) as usize;
            if L3_V6 + payload_len > ctx.len() {
                return Err(DropReason::Malformed);
            }
            p.ip_len = (Ipv6Hdr::LEN + payload_len) as u32;
            let mut next: u8 = field::<_, _, IPV6_NEXT_HDR>(ip);
            set_addr(&mut p.saddr, field::<_, _, IPV6_SRC>(ip));
            set_addr(&mut p.daddr, field::<_, _, IPV6_DST>(ip));
            if embeds_v4(&p.saddr) || embeds_v4(&p.daddr) {
                return Err(DropReason::Ipv6EmbeddedV4);
            }
            let mut off = L3_V6;
            let mut i = 0;
            let mut done = false;
            // One pass more than the headers walked: after the fourth, the
            // next must be the upper layer (found by the parser's fuzzer:
            // it stopped at the fourth and dropped what followed).
            while i <= MAX_EXT_HEADERS {
                match next {
                    // A fifth: more than the datapath walks.
                    HOP_BY_HOP | ROUTING | DEST_OPTS if i == MAX_EXT_HEADERS => {
                        return Err(DropReason::Ipv6ExtHeader)
                    }
                    // Hop-by-hop, routing, destination options: skip.
                    HOP_BY_HOP | ROUTING | DEST_OPTS => {
                        let hdr = read::<[u8; 2]>(ctx, off)?;
                        next = hdr[0];
                        off += (hdr[1] as usize + 1) * 8;
                        if off > MAX_L4_OFF {
                            return Err(DropReason::Ipv6ExtHeader);
                        }
                    }
                    FRAGMENT => return Err(DropReason::Fragment),
                    _ => {
                        done = true;
                        break;
                    }
                }
                i += 1;
            }
            if !done {
                return Err(DropReason::Ipv6ExtHeader);
            }
            if off - L3_V6 > payload_len {
                return Err(DropReason::Malformed);
            }
            p.proto = next;
            p.l4_off = off;
            l4_len = payload_len - (off - L3_V6);
        }
        // VPC interfaces are untagged: a tagged frame is not classified
        // (TC sees the tag the kernel took off as `vlan_present`, and
        // drops it alike).
        VLAN | QINQ => return Err(DropReason::VlanTagged),
        _ => return Err(DropReason::NotIp),
    }
    let off = p.l4_off;
    if off > MAX_L4_OFF {
        return Err(DropReason::Malformed);
    }
    match p.proto {
        IPPROTO_TCP => {
            if l4_len < TcpHdr::LEN {
                return Err(DropReason::Malformed);
            }
            let tcp = ptr_at::<TcpHdr>(ctx, off).ok_or(DropReason::Malformed)?;
            let doff = ((field::<_, u8, TCP_DOFF>(tcp) >> 4) as usize) * 4;
            if doff < TcpHdr::LEN || doff > l4_len {
                return Err(DropReason::Malformed);
            }
            p.sport = field::<_, _, L4_SPORT>(tcp);
            p.dport = field::<_, _, L4_DPORT>(tcp);
            p.tcp_flags = field::<_, _, TCP_FLAGS>(tcp);
        }
        IPPROTO_UDP => {
            if l4_len < UdpHdr::LEN {
                return Err(DropReason::Malformed);
            }
            let udp = ptr_at::<UdpHdr>(ctx, off).ok_or(DropReason::Malformed)?;
            let ulen = u16::from_be(field::<_, _, UDP_LEN>(udp)) as usize;
            // A first fragment holds only the start of the datagram.
            if ulen < UdpHdr::LEN || (ulen > l4_len && p.frag == 0) {
                return Err(DropReason::Malformed);
            }
            p.sport = field::<_, _, L4_SPORT>(udp);
            p.dport = field::<_, _, L4_DPORT>(udp);
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            if (p.proto == IPPROTO_ICMP) == p.v6 {
                // ICMPv4 in IPv6 or ICMPv6 in IPv4.
                return Err(DropReason::Malformed);
            }
            if l4_len < ICMP_HLEN {
                return Err(DropReason::Malformed);
            }
            let icmp = ptr_at::<Icmpv4Hdr>(ctx, off).ok_or(DropReason::Malformed)?;
            p.icmp_type = field::<_, _, ICMP_TYPE>(icmp);
            p.icmp_code = field::<_, _, ICMP_CODE>(icmp);
            // Echo: (identifier, type), so a request never matches the key a
            // reply is expected on. Other ICMP: a "port" no echo can have.
            if p.is_echo_request() || p.is_echo_reply() {
                p.sport = field::<_, _, ICMP_ECHO_ID>(icmp);
                p.dport = p.icmp_type as u16;
            } else {
                p.dport = u16::MAX;
            }
        }
        _ => {}
    }
    Ok(())
}

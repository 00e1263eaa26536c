//! Header parsing with explicit bounds checks. Everything that cannot be
//! parsed is a drop with a reason; nothing is passed unchecked.
use vpc_common::DropReason;

use crate::ctx::{ptr_at, read, Ctx};

pub const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_ICMPV6: u8 = 58;
/// IPv6 extension headers we walk, at most this many.
const MAX_EXT_HEADERS: usize = 4;
/// Upper bound on the L4 offset: keeps every offset provably bounded.
const MAX_L4_OFF: usize = 256;

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
const MAX_QUOTE_L3: usize = MAX_L4_OFF + 8;
const MAX_QUOTE_L4: usize = MAX_QUOTE_L3 + 60;

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
        if off > MAX_QUOTE_L4 + 16 {
            return Err(DropReason::Malformed);
        }
        Ok(off)
    }
}

/// Parses the packet quoted by the ICMP error `p`. Only what the quote
/// holds counts (the outer IP length, not the frame's padding): its IP
/// header whole and 8 bytes of TCP or UDP (ports; UDP's checksum too),
/// the TCP checksum only if the quote holds the whole 20-byte header, as
/// Linux's NAT does. A quote of anything that cannot be a tracked packet
/// (not TCP or UDP, a fragment) is `IcmpErrorUntracked`.
#[inline(always)]
pub fn quote<C: Ctx>(ctx: &C, p: &Packet, q: &mut Quote) -> Result<(), DropReason> {
    let l3 = p.l4()? + 8;
    let end = ETH_HLEN + p.ip_len as usize;
    let l4;
    if p.v6 {
        // Whole words: a 1-byte read at a variable offset compiles to a
        // bounds check the verifier cannot use.
        let hdr = read::<[u8; 8]>(ctx, l3)?;
        if hdr[0] >> 4 != 6 {
            return Err(DropReason::Malformed);
        }
        q.proto = hdr[6];
        read_addr(ctx, l3 + 8, &mut q.saddr)?;
        read_addr(ctx, l3 + 24, &mut q.daddr)?;
        if embeds_v4(&q.saddr) || embeds_v4(&q.daddr) {
            return Err(DropReason::Ipv6EmbeddedV4);
        }
        l4 = l3 + 40;
    } else {
        let hdr = read::<[u32; 5]>(ctx, l3)?;
        let [vihl, _, _, _] = hdr[0].to_ne_bytes();
        let [_, _, frag_hi, frag_lo] = hdr[1].to_ne_bytes();
        let [_, proto, _, _] = hdr[2].to_ne_bytes();
        let ihl = ((vihl & 0x0f) as usize) * 4;
        if vihl >> 4 != 4 || ihl < 20 {
            return Err(DropReason::Malformed);
        }
        if u16::from_be_bytes([frag_hi, frag_lo]) & 0x3fff != 0 {
            // Fragments never cross the router: no connection has one.
            return Err(DropReason::IcmpErrorUntracked);
        }
        q.proto = proto;
        set_v4_mapped(&mut q.saddr, hdr[3]);
        set_v4_mapped(&mut q.daddr, hdr[4]);
        l4 = l3 + ihl;
    }
    if l4 + 8 > end {
        return Err(DropReason::Malformed);
    }
    q.csum_off = match q.proto {
        IPPROTO_TCP if l4 + 20 <= end => l4 + 16,
        IPPROTO_TCP => 0,
        IPPROTO_UDP => l4 + 6,
        _ => return Err(DropReason::IcmpErrorUntracked),
    };
    let ports = read::<[u16; 2]>(ctx, l4)?;
    q.sport = ports[0];
    q.dport = ports[1];
    q.l3_off = l3;
    q.l4_off = l4;
    Ok(())
}

/// Reads an IPv6 address from the packet into a 4-aligned field, a word at a
/// time (an unaligned 16-byte read becomes a `memmove` call).
#[inline(always)]
fn read_addr(ctx: &impl Ctx, off: usize, dst: &mut [u8; 16]) -> Result<(), DropReason> {
    let w = read::<[u32; 4]>(ctx, off)?;
    let d = dst.as_mut_ptr() as *mut u32;
    for (i, v) in w.iter().enumerate() {
        unsafe { core::ptr::write_volatile(d.add(i), *v) };
    }
    Ok(())
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
    let ethertype = u16::from_be(read::<u16>(ctx, 12)?);
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
        ETH_P_IP => {
            ptr_at::<[u8; 20]>(ctx, ETH_HLEN).ok_or(DropReason::Malformed)?;
            let vihl = read::<u8>(ctx, ETH_HLEN)?;
            let ihl = ((vihl & 0x0f) as usize) * 4;
            if vihl >> 4 != 4 || ihl < 20 {
                return Err(DropReason::Malformed);
            }
            let tot_len = u16::from_be(read::<u16>(ctx, ETH_HLEN + 2)?) as usize;
            if tot_len < ihl || ETH_HLEN + tot_len > ctx.len() {
                return Err(DropReason::Malformed);
            }
            // Options are skipped: the header length bounds them.
            let frag = u16::from_be(read::<u16>(ctx, ETH_HLEN + 6)?);
            p.proto = read::<u8>(ctx, ETH_HLEN + 9)?;
            set_v4_mapped(&mut p.saddr, read::<u32>(ctx, ETH_HLEN + 12)?);
            set_v4_mapped(&mut p.daddr, read::<u32>(ctx, ETH_HLEN + 16)?);
            p.ip_len = tot_len as u32;
            p.l4_off = ETH_HLEN + ihl;
            l4_len = tot_len - ihl;
            // A fragment: the first has the L4 header (its ports); the
            // others have none, and go by the datagram's identification.
            if frag & 0x3fff != 0 {
                p.ip_id = read::<u16>(ctx, ETH_HLEN + 4)?;
                if frag & 0x1fff != 0 {
                    p.frag = FRAG_LATER;
                    return Ok(());
                }
                p.frag = FRAG_FIRST;
            }
        }
        ETH_P_IPV6 => {
            p.v6 = true;
            ptr_at::<[u8; 40]>(ctx, ETH_HLEN).ok_or(DropReason::Malformed)?;
            let vtc = read::<u8>(ctx, ETH_HLEN)?;
            if vtc >> 4 != 6 {
                return Err(DropReason::Malformed);
            }
            let payload_len = u16::from_be(read::<u16>(ctx, ETH_HLEN + 4)?) as usize;
            if ETH_HLEN + 40 + payload_len > ctx.len() {
                return Err(DropReason::Malformed);
            }
            p.ip_len = (40 + payload_len) as u32;
            let mut next = read::<u8>(ctx, ETH_HLEN + 6)?;
            read_addr(ctx, ETH_HLEN + 8, &mut p.saddr)?;
            read_addr(ctx, ETH_HLEN + 24, &mut p.daddr)?;
            if embeds_v4(&p.saddr) || embeds_v4(&p.daddr) {
                return Err(DropReason::Ipv6EmbeddedV4);
            }
            let mut off = ETH_HLEN + 40;
            let mut i = 0;
            let mut done = false;
            while i < MAX_EXT_HEADERS {
                match next {
                    // Hop-by-hop, routing, destination options: skip.
                    0 | 43 | 60 => {
                        let hdr = read::<[u8; 2]>(ctx, off)?;
                        next = hdr[0];
                        off += (hdr[1] as usize + 1) * 8;
                        if off > MAX_L4_OFF {
                            return Err(DropReason::Ipv6ExtHeader);
                        }
                    }
                    44 => return Err(DropReason::Fragment),
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
            if off - (ETH_HLEN + 40) > payload_len {
                return Err(DropReason::Malformed);
            }
            p.proto = next;
            p.l4_off = off;
            l4_len = payload_len - (off - (ETH_HLEN + 40));
        }
        _ => return Err(DropReason::NotIp),
    }
    let off = p.l4_off;
    if off > MAX_L4_OFF {
        return Err(DropReason::Malformed);
    }
    match p.proto {
        IPPROTO_TCP => {
            if l4_len < 20 {
                return Err(DropReason::Malformed);
            }
            let ports = read::<[u16; 2]>(ctx, off)?;
            let doff = ((read::<u8>(ctx, off + 12)? >> 4) as usize) * 4;
            if doff < 20 || doff > l4_len {
                return Err(DropReason::Malformed);
            }
            p.sport = ports[0];
            p.dport = ports[1];
            p.tcp_flags = read::<u8>(ctx, off + 13)?;
        }
        IPPROTO_UDP => {
            if l4_len < 8 {
                return Err(DropReason::Malformed);
            }
            let ports = read::<[u16; 2]>(ctx, off)?;
            let ulen = u16::from_be(read::<u16>(ctx, off + 4)?) as usize;
            // A first fragment holds only the start of the datagram.
            if ulen < 8 || (ulen > l4_len && p.frag == 0) {
                return Err(DropReason::Malformed);
            }
            p.sport = ports[0];
            p.dport = ports[1];
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            if (p.proto == IPPROTO_ICMP) == p.v6 {
                // ICMPv4 in IPv6 or ICMPv6 in IPv4.
                return Err(DropReason::Malformed);
            }
            if l4_len < 8 {
                return Err(DropReason::Malformed);
            }
            let tc = read::<[u8; 2]>(ctx, off)?;
            p.icmp_type = tc[0];
            p.icmp_code = tc[1];
            // Echo: (identifier, type), so a request never matches the key a
            // reply is expected on. Other ICMP: a "port" no echo can have.
            if p.is_echo_request() || p.is_echo_reply() {
                p.sport = read::<u16>(ctx, off + 4)?;
                p.dport = p.icmp_type as u16;
            } else {
                p.dport = u16::MAX;
            }
        }
        _ => {}
    }
    Ok(())
}

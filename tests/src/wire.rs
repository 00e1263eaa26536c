//! An independent reading of a frame: headers decoded by etherparse (not
//! by our parser), with the bounds the datapath documents (docs/datapath.md:
//! IPv4 options by IHL, at most 4 IPv6 hop-by-hop / routing / destination
//! options headers with the L4 header within 256 bytes, IPv6 fragments
//! dropped, IPv4 fragments by offset, IPv4-mapped IPv6 addresses refused).
//! It answers what the router's parser must: the tuple, or the drop
//! reason. The fuzzers hold the parser to it, and the oracle reads frames
//! with it.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    EtherType, Ethernet2HeaderSlice, IpNumber, Ipv4HeaderSlice, Ipv6HeaderSlice,
    Ipv6RawExtHeaderSlice, TcpHeaderSlice, UdpHeaderSlice,
};
use vpc_common::DropReason;

/// IPv6 extension headers the datapath walks, and how many.
const MAX_EXT_HEADERS: usize = 4;
/// The L4 header starts within this many bytes of the frame.
const MAX_L4_OFF: usize = 256;
const ETH: usize = 14;

/// A frame as the datapath must see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wire {
    pub v6: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// TCP/UDP ports; ICMP echo: (identifier, type); other ICMP: (0,
    /// 65535); other protocols and later fragments: 0.
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// 0 whole, 1 first fragment, 2 a later one (IPv4).
    pub frag: u8,
    /// IPv4 identification of a fragment (0 otherwise).
    pub ip_id: u16,
    /// IP length, header included.
    pub ip_len: u32,
    pub l4_off: usize,
}

impl Wire {
    pub fn is_icmp_error(&self) -> bool {
        match self.proto {
            1 => self.icmp_type == 3 || self.icmp_type == 11,
            58 => (1..=3).contains(&self.icmp_type),
            _ => false,
        }
    }

    /// The port groups and ACLs judge: destination port, or ICMP
    /// `type << 8 | code`.
    pub fn policy_port(&self) -> u16 {
        match self.proto {
            6 | 17 => self.dport,
            1 | 58 => (self.icmp_type as u16) << 8 | self.icmp_code as u16,
            _ => 0,
        }
    }
}

/// IPv4-mapped (`::ffff:0:0/96`) or -compatible (`::/96`).
fn embeds_v4(a: &Ipv6Addr) -> bool {
    let o = a.octets();
    o[..8].iter().all(|b| *b == 0) && (o[8..12] == [0, 0, 0, 0] || o[8..12] == [0, 0, 0xff, 0xff])
}

/// The frame's tuple, or why the datapath must drop it.
pub fn parse(f: &[u8]) -> Result<Wire, DropReason> {
    use DropReason::*;
    let eth = Ethernet2HeaderSlice::from_slice(f).map_err(|_| Malformed)?;
    let mut w = Wire {
        v6: false,
        src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        proto: 0,
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        icmp_type: 0,
        icmp_code: 0,
        frag: 0,
        ip_id: 0,
        ip_len: 0,
        l4_off: 0,
    };
    let l4: &[u8] = match eth.ether_type() {
        EtherType::IPV4 => {
            let ip = Ipv4HeaderSlice::from_slice(&f[ETH..]).map_err(|_| Malformed)?;
            let tot = ip.total_len() as usize;
            let ihl = ip.slice().len();
            // The total length covers the header and stays in the frame.
            if tot < ihl || ETH + tot > f.len() {
                return Err(Malformed);
            }
            w.src = IpAddr::V4(ip.source_addr());
            w.dst = IpAddr::V4(ip.destination_addr());
            w.proto = ip.protocol().0;
            w.ip_len = tot as u32;
            w.l4_off = ETH + ihl;
            if ip.more_fragments() || ip.fragments_offset().value() != 0 {
                w.ip_id = ip.identification();
                if ip.fragments_offset().value() != 0 {
                    w.frag = 2;
                    return Ok(w);
                }
                w.frag = 1;
            }
            &f[ETH + ihl..ETH + tot]
        }
        EtherType::IPV6 => {
            let ip = Ipv6HeaderSlice::from_slice(&f[ETH..]).map_err(|_| Malformed)?;
            w.v6 = true;
            let payload = ip.payload_length() as usize;
            let end = ETH + 40 + payload;
            if end > f.len() {
                return Err(Malformed);
            }
            let (src, dst) = (ip.source_addr(), ip.destination_addr());
            w.src = IpAddr::V6(src);
            w.dst = IpAddr::V6(dst);
            w.ip_len = (40 + payload) as u32;
            if embeds_v4(&src) || embeds_v4(&dst) {
                return Err(Ipv6EmbeddedV4);
            }
            let mut next = ip.next_header();
            let mut off = ETH + 40;
            let mut walked = 0;
            loop {
                match next {
                    IpNumber::IPV6_HEADER_HOP_BY_HOP
                    | IpNumber::IPV6_ROUTE_HEADER
                    | IpNumber::IPV6_DESTINATION_OPTIONS => {
                        if walked == MAX_EXT_HEADERS {
                            return Err(Ipv6ExtHeader);
                        }
                        // Its next-header and length bytes must be in the
                        // frame; the whole header within the payload is
                        // checked once the walk ends (as the datapath).
                        if off + 2 > f.len() {
                            return Err(Malformed);
                        }
                        let len = (f[off + 1] as usize + 1) * 8;
                        if off + len <= end {
                            // etherparse reads the same header the same way.
                            let h = Ipv6RawExtHeaderSlice::from_slice(&f[off..end])
                                .expect("a whole extension header");
                            assert_eq!(h.slice().len(), len);
                            next = h.next_header();
                        } else {
                            next = IpNumber(f[off]);
                        }
                        off += len;
                        if off > MAX_L4_OFF {
                            return Err(Ipv6ExtHeader);
                        }
                        walked += 1;
                    }
                    IpNumber::IPV6_FRAGMENTATION_HEADER => return Err(Fragment),
                    _ => break,
                }
            }
            if off > end {
                return Err(Malformed);
            }
            w.proto = next.0;
            w.l4_off = off;
            &f[off..end]
        }
        // VPC interfaces are untagged (802.1Q, 802.1ad; 0x9100, a
        // pre-standard QinQ, is just not IP).
        EtherType::VLAN_TAGGED_FRAME | EtherType::PROVIDER_BRIDGING => return Err(VlanTagged),
        _ => return Err(NotIp),
    };
    match w.proto {
        6 => {
            let t = TcpHeaderSlice::from_slice(l4).map_err(|_| Malformed)?;
            w.sport = t.source_port();
            w.dport = t.destination_port();
            w.tcp_flags = t.slice()[13];
        }
        17 => {
            let u = UdpHeaderSlice::from_slice(l4).map_err(|_| Malformed)?;
            let len = u.length() as usize;
            // A first fragment holds only the start of its datagram.
            if len < 8 || (len > l4.len() && w.frag == 0) {
                return Err(Malformed);
            }
            w.sport = u.source_port();
            w.dport = u.destination_port();
        }
        1 | 58 => {
            if (w.proto == 1) == w.v6 || l4.len() < 8 {
                return Err(Malformed);
            }
            // Type, code and the echo's identifier sit where RFC 792 and
            // RFC 4443 put them whatever the type (etherparse's ICMP slices
            // also hold each type to its own length, which the VPC does not).
            let (ty, code) = (l4[0], l4[1]);
            let echo = if w.proto == 1 {
                matches!(ty, 0 | 8)
            } else {
                matches!(ty, 128 | 129)
            };
            w.icmp_type = ty;
            w.icmp_code = code;
            if echo {
                w.sport = u16::from_be_bytes([l4[4], l4[5]]);
                w.dport = ty as u16;
            } else {
                w.dport = u16::MAX;
            }
        }
        _ => {}
    }
    Ok(w)
}

/// A quoted packet: (source, destination, protocol, source port,
/// destination port).
pub type Quoted = (IpAddr, IpAddr, u8, u16, u16);

/// The packet an ICMP error quotes, or why the datapath must drop the
/// error. Only what the error's IP length holds counts. `Ok(None)`: a
/// quote no connection can have (a fragment, neither TCP nor UDP): the
/// error relates to nothing, and is judged as any ICMP packet.
pub fn quote(f: &[u8], w: &Wire) -> Result<Option<Quoted>, DropReason> {
    use DropReason::*;
    let l3 = w.l4_off + 8;
    let end = ETH + w.ip_len as usize;
    let body = f.get(l3..).unwrap_or(&[]);
    let (src, dst, proto, l4) = if w.v6 {
        // The header must be in the frame (not necessarily in the quote).
        if body.len() < 40 {
            return Err(Malformed);
        }
        let ip = Ipv6HeaderSlice::from_slice(&body[..40]).map_err(|_| Malformed)?;
        let (s, d) = (ip.source_addr(), ip.destination_addr());
        if embeds_v4(&s) || embeds_v4(&d) {
            return Err(Ipv6EmbeddedV4);
        }
        (IpAddr::V6(s), IpAddr::V6(d), ip.next_header().0, l3 + 40)
    } else {
        if body.len() < 20 {
            return Err(Malformed);
        }
        let (v, ihl) = (body[0] >> 4, (body[0] & 0xf) as usize * 4);
        if v != 4 || ihl < 20 {
            return Err(Malformed);
        }
        let frags = u16::from_be_bytes([body[6], body[7]]);
        if frags & 0x3fff != 0 {
            return Ok(None);
        }
        let s = Ipv4Addr::new(body[12], body[13], body[14], body[15]);
        let d = Ipv4Addr::new(body[16], body[17], body[18], body[19]);
        (IpAddr::V4(s), IpAddr::V4(d), body[9], l3 + ihl)
    };
    if l4 + 8 > end {
        return Err(Malformed);
    }
    if proto != 6 && proto != 17 {
        return Ok(None);
    }
    let p = &f[l4..l4 + 4];
    Ok(Some((
        src,
        dst,
        proto,
        u16::from_be_bytes([p[0], p[1]]),
        u16::from_be_bytes([p[2], p[3]]),
    )))
}

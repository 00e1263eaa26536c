//! Frames for BPF_PROG_TEST_RUN: a small builder with correct checksums, and
//! a checker, so datapath tests can compare rewritten bytes exactly.
use std::net::IpAddr;

#[derive(Debug, Clone)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
    },
    /// `no_checksum`: IPv4 UDP with checksum 0 (none).
    Udp {
        sport: u16,
        dport: u16,
        no_checksum: bool,
    },
    /// ICMP / ICMPv6 echo or other type with (id, seq) words.
    Icmp {
        ty: u8,
        code: u8,
        id: u16,
        seq: u16,
    },
    /// An ICMP / ICMPv6 error: type, code, the word after the checksum
    /// (unused, or the MTU of fragmentation needed / packet too big), and
    /// the IP packet it quotes as it was sent, maybe cut ([`quote`]).
    IcmpError {
        ty: u8,
        code: u8,
        info: u32,
        quote: Vec<u8>,
    },
    Other {
        proto: u8,
    },
}

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

#[derive(Debug, Clone)]
pub struct Frame {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: IpAddr,
    pub dst: IpAddr,
    pub l4: L4,
    pub payload: Vec<u8>,
    /// IPv4 options (padded to 4 bytes) or, for IPv6, a hop-by-hop header.
    pub options: bool,
    /// Pad the frame to at least this many bytes (Ethernet minimum: 60).
    pub min_len: usize,
}

impl Frame {
    pub fn new(src: IpAddr, dst: IpAddr, l4: L4) -> Self {
        Self {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src,
            dst,
            l4,
            payload: vec![],
            options: false,
            min_len: 60,
        }
    }
    pub fn payload(mut self, p: &[u8]) -> Self {
        self.payload = p.to_vec();
        self
    }
    pub fn with_options(mut self) -> Self {
        self.options = true;
        self
    }
    pub fn min_len(mut self, n: usize) -> Self {
        self.min_len = n;
        self
    }

    pub fn proto(&self) -> u8 {
        match (&self.l4, self.src) {
            (L4::Tcp { .. }, _) => 6,
            (L4::Udp { .. }, _) => 17,
            (L4::Icmp { .. }, IpAddr::V4(_)) => 1,
            (L4::Icmp { .. }, IpAddr::V6(_)) => 58,
            (L4::IcmpError { .. }, IpAddr::V4(_)) => 1,
            (L4::IcmpError { .. }, IpAddr::V6(_)) => 58,
            (L4::Other { proto }, _) => *proto,
        }
    }

    pub fn build(&self) -> Vec<u8> {
        let proto = self.proto();
        let mut l4 = match &self.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
            } => {
                let mut h = vec![0u8; 20];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..8].copy_from_slice(&1000u32.to_be_bytes());
                h[12] = 5 << 4;
                h[13] = *flags;
                h[14..16].copy_from_slice(&64240u16.to_be_bytes());
                h
            }
            L4::Udp { sport, dport, .. } => {
                let mut h = vec![0u8; 8];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..6].copy_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
                h
            }
            L4::Icmp { ty, code, id, seq } => {
                let mut h = vec![*ty, *code, 0, 0];
                h.extend_from_slice(&id.to_be_bytes());
                h.extend_from_slice(&seq.to_be_bytes());
                h
            }
            L4::IcmpError {
                ty,
                code,
                info,
                quote,
            } => {
                let mut h = vec![*ty, *code, 0, 0];
                h.extend_from_slice(&info.to_be_bytes());
                h.extend_from_slice(quote);
                h
            }
            L4::Other { .. } => vec![],
        };
        l4.extend_from_slice(&self.payload);
        // L4 checksum over the pseudo header.
        let csum_off = match (&self.l4, proto) {
            (L4::Tcp { .. }, _) => Some(16),
            (
                L4::Udp {
                    no_checksum: true, ..
                },
                _,
            ) if self.src.is_ipv4() => None,
            (L4::Udp { .. }, _) => Some(6),
            (L4::Icmp { .. }, 1) => Some(2),
            (L4::Icmp { .. }, _) => Some(2),
            (L4::IcmpError { .. }, _) => Some(2),
            _ => None,
        };
        if let Some(off) = csum_off {
            let c = if proto == 1 {
                checksum(&[&l4])
            } else {
                l4_checksum(self.src, self.dst, proto, &l4)
            };
            let c = if proto == 17 && c == 0 { 0xffff } else { c };
            l4[off..off + 2].copy_from_slice(&c.to_be_bytes());
        }
        let mut f = Vec::with_capacity(128);
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&0x0800u16.to_be_bytes());
                let opts: &[u8] = if self.options {
                    &[0x94, 0x04, 0, 0]
                } else {
                    &[]
                }; // router alert
                let ihl = (20 + opts.len()) / 4;
                let mut ip = vec![0u8; 20];
                ip[0] = 0x40 | ihl as u8;
                ip[2..4].copy_from_slice(&((ihl * 4 + l4.len()) as u16).to_be_bytes());
                ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
                ip[6] = 0x40; // DF
                ip[8] = 64;
                ip[9] = proto;
                ip[12..16].copy_from_slice(&s.octets());
                ip[16..20].copy_from_slice(&d.octets());
                ip.extend_from_slice(opts);
                let c = checksum(&[&ip]);
                ip[10..12].copy_from_slice(&c.to_be_bytes());
                f.extend_from_slice(&ip);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f.extend_from_slice(&0x86ddu16.to_be_bytes());
                let ext: Vec<u8> = if self.options {
                    vec![proto, 0, 1, 4, 0, 0, 0, 0]
                } else {
                    vec![]
                }; // HBH, PadN
                let mut ip = vec![0u8; 40];
                ip[0] = 0x60;
                ip[4..6].copy_from_slice(&((ext.len() + l4.len()) as u16).to_be_bytes());
                ip[6] = if self.options { 0 } else { proto };
                ip[7] = 64;
                ip[8..24].copy_from_slice(&s.octets());
                ip[24..40].copy_from_slice(&d.octets());
                f.extend_from_slice(&ip);
                f.extend_from_slice(&ext);
            }
            _ => panic!("mixed address families"),
        }
        f.extend_from_slice(&l4);
        while f.len() < self.min_len {
            f.push(0);
        }
        f
    }
}

/// One's-complement checksum of the concatenated parts.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for p in parts {
        for &b in p.iter() {
            match odd.take() {
                Some(h) => sum += u16::from_be_bytes([h, b]) as u32,
                None => odd = Some(b),
            }
        }
    }
    if let Some(h) = odd {
        sum += u16::from_be_bytes([h, 0]) as u32;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn l4_checksum(src: IpAddr, dst: IpAddr, proto: u8, l4: &[u8]) -> u16 {
    let mut pseudo = vec![];
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, proto]);
            pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&(l4.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, proto]);
        }
        _ => unreachable!(),
    }
    checksum(&[&pseudo, l4])
}

/// Splits an IPv4 frame without options into two fragments with
/// identification `id`: the first holds `at` bytes of the IP payload (a
/// multiple of 8), the second the rest. Header checksums computed.
pub fn fragment(frame: &[u8], at: usize, id: u16) -> [Vec<u8>; 2] {
    assert!(at.is_multiple_of(8) && frame[14] == 0x45);
    let tot = u16::from_be_bytes([frame[16], frame[17]]) as usize;
    let payload = &frame[34..14 + tot];
    let part = |data: &[u8], off: usize, more: bool| {
        let mut f = frame[..34].to_vec();
        f[16..18].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
        f[18..20].copy_from_slice(&id.to_be_bytes());
        let flags = ((off / 8) as u16) | if more { 0x2000 } else { 0 };
        f[20..22].copy_from_slice(&flags.to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let c = checksum(&[&f[14..34]]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(data);
        f
    };
    [
        part(&payload[..at], 0, true),
        part(&payload[at..], at, false),
    ]
}

/// Puts two IPv4 fragments (first, last) back into one frame, as the
/// receiver's reassembly would, with a fresh header checksum.
pub fn reassemble(first: &[u8], last: &[u8]) -> Vec<u8> {
    let len = |f: &[u8]| u16::from_be_bytes([f[16], f[17]]) as usize;
    let mut f = first[..14 + len(first)].to_vec();
    f.extend_from_slice(&last[34..14 + len(last)]);
    let tot = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&tot.to_be_bytes());
    f[20..22].copy_from_slice(&[0, 0]);
    f[24..26].copy_from_slice(&[0, 0]);
    let c = checksum(&[&f[14..34]]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

/// The IP packet of `frame` (no Ethernet header, no padding), cut to at
/// most `len` bytes: what an ICMP error quotes.
pub fn quote(frame: &[u8], len: usize) -> Vec<u8> {
    let ip_len = match u16::from_be_bytes([frame[12], frame[13]]) {
        0x0800 => u16::from_be_bytes([frame[16], frame[17]]) as usize,
        _ => 40 + u16::from_be_bytes([frame[18], frame[19]]) as usize,
    };
    frame[14..14 + ip_len.min(len)].to_vec()
}

/// Parses and checks an ICMP error built by [`Frame`] (every outer
/// checksum, as [`parse_and_verify`]) and the packet it quotes: its IPv4
/// header checksum, and its L4 checksum when the quote holds the whole
/// packet. Returns the outer packet and what the quote says.
pub fn parse_icmp_error(f: &[u8]) -> Result<(Parsed, Quoted), String> {
    let outer = parse_and_verify(f)?;
    let l4 = match outer.src {
        IpAddr::V4(_) => 14 + (f[14] & 0xf) as usize * 4,
        IpAddr::V6(_) => 54,
    };
    let end = match outer.src {
        IpAddr::V4(_) => 14 + u16::from_be_bytes([f[16], f[17]]) as usize,
        IpAddr::V6(_) => 54 + u16::from_be_bytes([f[18], f[19]]) as usize,
    };
    let q = &f[l4 + 8..end];
    let (src, dst, proto, l4q, full): (IpAddr, IpAddr, u8, &[u8], bool) = match outer.src {
        IpAddr::V4(_) => {
            let ihl = (q[0] & 0xf) as usize * 4;
            if checksum(&[&q[..ihl]]) != 0 {
                return Err("bad quoted IPv4 header checksum".into());
            }
            let tot = u16::from_be_bytes([q[2], q[3]]) as usize;
            let s: [u8; 4] = q[12..16].try_into().unwrap();
            let d: [u8; 4] = q[16..20].try_into().unwrap();
            let full = q.len() >= tot;
            (s.into(), d.into(), q[9], &q[ihl..tot.min(q.len())], full)
        }
        IpAddr::V6(_) => {
            let plen = u16::from_be_bytes([q[4], q[5]]) as usize;
            let s: [u8; 16] = q[8..24].try_into().unwrap();
            let d: [u8; 16] = q[24..40].try_into().unwrap();
            let full = q.len() >= 40 + plen;
            (
                s.into(),
                d.into(),
                q[6],
                &q[40..(40 + plen).min(q.len())],
                full,
            )
        }
    };
    let skip_udp = proto == 17 && src.is_ipv4() && l4q[6] == 0 && l4q[7] == 0;
    if full && !skip_udp && l4_checksum(src, dst, proto, l4q) != 0 {
        return Err(format!("bad quoted L4 checksum (proto {proto})"));
    }
    let inner = Quoted {
        src,
        dst,
        proto,
        sport: u16::from_be_bytes([l4q[0], l4q[1]]),
        dport: u16::from_be_bytes([l4q[2], l4q[3]]),
        len: q.len(),
        complete: full,
    };
    Ok((outer, inner))
}

/// The packet an ICMP error quotes, as [`parse_icmp_error`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quoted {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    /// Bytes quoted.
    pub len: usize,
    /// The whole packet is quoted (so its L4 checksum was checked).
    pub complete: bool,
}

/// What a frame carries, read back after the program ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub ttl: u8,
}

/// Parses a frame built by [`Frame`] and checks every checksum in it.
pub fn parse_and_verify(f: &[u8]) -> Result<Parsed, String> {
    let mut dst_mac = [0; 6];
    let mut src_mac = [0; 6];
    dst_mac.copy_from_slice(&f[0..6]);
    src_mac.copy_from_slice(&f[6..12]);
    let et = u16::from_be_bytes([f[12], f[13]]);
    let (src, dst, proto, l4, ttl): (IpAddr, IpAddr, u8, &[u8], u8) = match et {
        0x0800 => {
            let ihl = (f[14] & 0xf) as usize * 4;
            let tot = u16::from_be_bytes([f[16], f[17]]) as usize;
            if checksum(&[&f[14..14 + ihl]]) != 0 {
                return Err("bad IPv4 header checksum".into());
            }
            let s: [u8; 4] = f[26..30].try_into().unwrap();
            let d: [u8; 4] = f[30..34].try_into().unwrap();
            (
                IpAddr::from(s),
                IpAddr::from(d),
                f[23],
                &f[14 + ihl..14 + tot],
                f[22],
            )
        }
        0x86dd => {
            let plen = u16::from_be_bytes([f[18], f[19]]) as usize;
            let s: [u8; 16] = f[22..38].try_into().unwrap();
            let d: [u8; 16] = f[38..54].try_into().unwrap();
            let mut next = f[20];
            let mut off = 54;
            if next == 0 {
                next = f[off];
                off += (f[off + 1] as usize + 1) * 8;
            }
            (
                IpAddr::from(s),
                IpAddr::from(d),
                next,
                &f[off..54 + plen],
                f[21],
            )
        }
        _ => return Err(format!("ethertype {et:#x}")),
    };
    let (sport, dport) = if l4.len() >= 4 && (proto == 6 || proto == 17) {
        (
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
        )
    } else {
        (0, 0)
    };
    let skip_udp = proto == 17 && src.is_ipv4() && l4[6] == 0 && l4[7] == 0;
    let verify = match proto {
        6 | 17 | 58 if !skip_udp => l4_checksum(src, dst, proto, l4) == 0,
        1 => checksum(&[l4]) == 0,
        _ => true,
    };
    if !verify {
        return Err(format!("bad L4 checksum (proto {proto})"));
    }
    Ok(Parsed {
        dst_mac,
        src_mac,
        src,
        dst,
        proto,
        sport,
        dport,
        ttl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_frames_verify() {
        let v4 = |a: [u8; 4]| IpAddr::from(a);
        for l4 in [
            L4::Tcp {
                sport: 1,
                dport: 2,
                flags: TCP_SYN,
            },
            L4::Udp {
                sport: 1,
                dport: 2,
                no_checksum: false,
            },
            L4::Udp {
                sport: 1,
                dport: 2,
                no_checksum: true,
            },
            L4::Icmp {
                ty: 8,
                code: 0,
                id: 7,
                seq: 1,
            },
        ] {
            let f = Frame::new(v4([10, 0, 0, 1]), v4([10, 0, 0, 2]), l4.clone())
                .payload(b"hello")
                .with_options()
                .build();
            parse_and_verify(&f).unwrap();
            let f6 = Frame::new("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap(), l4)
                .payload(b"hi")
                .with_options()
                .build();
            parse_and_verify(&f6).unwrap();
        }
        // ICMP errors quoting a packet, whole or cut to its ports.
        for (src, dst) in [("10.0.0.1", "10.0.0.2"), ("fd00::1", "fd00::2")] {
            let (src, dst): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
            let l4 = L4::Tcp {
                sport: 1,
                dport: 2,
                flags: TCP_SYN,
            };
            let inner = Frame::new(src, dst, l4).payload(b"data").build();
            for len in [1000, if src.is_ipv4() { 28 } else { 48 }] {
                let err = Frame::new(
                    dst,
                    src,
                    L4::IcmpError {
                        ty: 3,
                        code: 4,
                        info: 1200,
                        quote: quote(&inner, len),
                    },
                )
                .build();
                let (o, q) = parse_icmp_error(&err).unwrap();
                assert_eq!((o.src, o.dst), (dst, src));
                assert_eq!((q.src, q.dst, q.sport, q.dport), (src, dst, 1, 2));
                assert_eq!(q.complete, len == 1000);
            }
        }
        // Known vector: RFC 1071 example words.
        assert_eq!(
            checksum(&[&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]]),
            !0xddf2
        );
    }
}

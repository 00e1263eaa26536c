//! Frames for the fuzzers, from a seeded generator: valid flows of a
//! deployment (built with `vpc::packet`, between the addresses its model
//! knows), the replies and ICMP errors of what the router forwarded,
//! mutations of valid frames (bit flips, bytes set, truncated, extended,
//! a VLAN tag pushed) and garbage. The same generator feeds the kernel
//! (`BPF_PROG_TEST_RUN`) and seeds the host fuzzer's corpus.
use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
};

use vpc::{
    compile::LinkInfo,
    model::Model,
    packet::{self, Frame, L4, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
};

use crate::{wire, Rng};

pub const ATTACH: &str = "  Attach: {Type: AWS::EC2::VPCGatewayAttachment, Properties: {VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}}";

/// The deployments the fuzzers run against: groups and a function; ACLs
/// at a subnet boundary; a NAT gateway to the internet; VPC endpoints;
/// IPv6 through an internet and an egress-only gateway; dual-stack
/// functions; an internet gateway's 1:1 NAT both ways.
pub fn templates() -> Vec<(&'static str, String)> {
    use crate::fixture;
    vec![
        ("one_subnet", fixture!("one_subnet.yaml").to_string()),
        (
            "acl_subnet_boundary",
            fixture!("acl_subnet_boundary.yaml").to_string(),
        ),
        ("nat_gateway", fixture!("nat_gateway.yaml").to_string()),
        (
            "vpc_endpoints",
            fixture!("vpc_endpoints.yaml")
                .replace("TABLES", "[!Ref PrivateRt]")
                .replace("GROUPS", "[!Ref EndpointSg]"),
        ),
        ("ipv6_gateways", fixture!("ipv6_gateways.yaml").to_string()),
        (
            "dual_stack_functions",
            fixture!("dual_stack_functions.yaml").to_string(),
        ),
        (
            "internet_gateway",
            fixture!("internet_gateway.yaml").replace("ATTACH", ATTACH),
        ),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A new flow's first frame, well formed.
    Valid,
    /// The reply (or next packet) of a forwarded frame, or an ICMP error
    /// quoting one.
    Reply,
    /// A valid frame damaged.
    Mutated,
    /// Random bytes (some behind a plausible Ethernet and IP start).
    Garbage,
}

pub struct Gen {
    pub rng: Rng,
    /// (router port, the addresses its node sends from).
    senders: Vec<(u32, Vec<IpAddr>)>,
    /// Every address worth sending to.
    dests: Vec<IpAddr>,
    ports: Vec<u32>,
    /// Replies and errors to send, each from its port.
    pending: VecDeque<(u32, Vec<u8>)>,
    next_port: u16,
    model: Model,
    /// A function's port -> its ENI's addresses (v4, v6): where the VPC
    /// sees it from.
    enis: HashMap<u32, (IpAddr, Option<IpAddr>)>,
}

const PORTS: [u16; 9] = [22, 53, 80, 443, 5432, 8080, 9000, 1024, 65535];

impl Gen {
    pub fn new(m: &Model, links: &HashMap<String, LinkInfo>, seed: u64) -> Self {
        let v6 = |a: Option<std::net::Ipv6Addr>| a.map(IpAddr::V6);
        let mut senders: Vec<(u32, Vec<IpAddr>)> = vec![];
        for h in &m.hosts {
            let a = [Some(IpAddr::V4(h.ip)), v6(h.ip6)].into_iter().flatten();
            senders.push((links[&h.id].ifindex, a.collect()));
        }
        for h in &m.internet_hosts {
            let a = [Some(IpAddr::V4(h.ip)), v6(h.ip6)].into_iter().flatten();
            senders.push((links[&h.id].ifindex, a.collect()));
        }
        for f in &m.functions {
            for e in f.envs() {
                let a = [Some(IpAddr::V4(e.ip)), v6(e.ip6)].into_iter().flatten();
                senders.push((links[&e.id].ifindex, a.collect()));
            }
        }
        let mut dests: Vec<IpAddr> = senders.iter().flat_map(|s| s.1.clone()).collect();
        dests.extend(m.enis.iter().map(|e| IpAddr::V4(e.ip)));
        dests.extend(m.enis.iter().filter_map(|e| v6(e.ip6)));
        dests.extend(m.public_ips.iter().map(|p| IpAddr::V4(p.ip)));
        dests.extend(m.nat_gateways.iter().map(|g| IpAddr::V4(g.public_ip)));
        dests.extend(m.vpcs.iter().map(|v| IpAddr::V4(v.resolver())));
        dests.extend(["10.0.9.9", "8.8.8.8", "2001:db8::99"].map(|a| a.parse::<IpAddr>().unwrap()));
        let mut ports: Vec<u32> = links.values().map(|l| l.ifindex).collect();
        ports.sort();
        let mut enis = HashMap::new();
        for f in &m.functions {
            for e in f.envs() {
                if let Some(eni) = m.enis.iter().find(|x| Some(x.index) == e.eni) {
                    enis.insert(
                        links[&e.id].ifindex,
                        // IPv6 leaves only with `Ipv6AllowedForDualStack`.
                        (IpAddr::V4(eni.ip), v6(eni.ip6).filter(|_| f.ipv6_allowed())),
                    );
                }
            }
        }
        Gen {
            rng: Rng(seed | 1),
            senders,
            dests,
            ports,
            pending: VecDeque::new(),
            next_port: 10_000,
            model: m.clone(),
            enis,
        }
    }

    fn sport(&mut self) -> u16 {
        self.next_port = if self.next_port >= 60_000 {
            10_000
        } else {
            self.next_port + 1
        };
        self.next_port
    }

    fn dport(&mut self) -> u16 {
        if self.rng.chance(80) {
            *self.rng.pick(&PORTS)
        } else {
            self.rng.next_u64() as u16
        }
    }

    /// A new flow's first frame from a random sender: (port, frame); half
    /// of them chosen among flows the reference admits, so that the
    /// forwarding paths get as much of the run as the drops.
    pub fn valid(&mut self) -> (u32, Vec<u8>) {
        if self.rng.chance(50) {
            for _ in 0..16 {
                let (port, f) = self.candidate();
                if self.admitted(port, &f) {
                    return (port, f);
                }
            }
        }
        self.candidate()
    }

    /// Whether the reference admits `f` from `port` as a new connection.
    pub fn admitted(&self, port: u32, f: &[u8]) -> bool {
        let Ok(w) = wire::parse(f) else {
            return false;
        };
        // Lambda: TCP and UDP only.
        if self.enis.contains_key(&port) && !matches!(w.proto, 6 | 17) {
            return false;
        }
        let src = match self.enis.get(&port) {
            Some((v4, v6)) if w.v6 => match v6 {
                Some(a) => *a,
                None => return false,
            },
            Some((v4, _)) => *v4,
            None => w.src,
        };
        let p = vpc::reference::Packet {
            src,
            dst: w.dst,
            proto: w.proto,
            port: w.policy_port(),
            space: 0,
        };
        vpc::reference::new_connection(&self.model, &p) == vpc::reference::Verdict::Allow
    }

    fn candidate(&mut self) -> (u32, Vec<u8>) {
        let (port, addrs) = self.rng.pick(&self.senders).clone();
        let src = *self.rng.pick(&addrs);
        let same: Vec<IpAddr> = self
            .dests
            .iter()
            .copied()
            .filter(|d| d.is_ipv6() == src.is_ipv6() && *d != src)
            .collect();
        let dst = if same.is_empty() {
            src
        } else {
            *self.rng.pick(&same)
        };
        let sport = self.sport();
        let dport = self.dport();
        let l4 = match self.rng.below(10) {
            0..=4 => L4::Tcp {
                sport,
                dport,
                flags: TCP_SYN,
            },
            5..=7 => L4::Udp {
                sport,
                dport,
                no_checksum: self.rng.chance(10),
            },
            8 => L4::Icmp {
                ty: if src.is_ipv6() { 128 } else { 8 },
                code: 0,
                id: sport,
                seq: 1,
            },
            _ => L4::Other {
                proto: *self.rng.pick(&[47u8, 50, 132]),
            },
        };
        let mut f = Frame::new(src, dst, l4);
        if self.rng.chance(10) {
            f = f.with_options();
        }
        if self.rng.chance(20) {
            let n = self.rng.below(200);
            f = f.payload(&vec![0x5a; n]);
        }
        (port, f.build())
    }

    /// Queues what a peer sends back after the router forwarded `out` to
    /// port `egress`: the reply (TCP flags of a handshake, data, a close),
    /// more packets of the flow, or an ICMP error quoting it.
    pub fn forwarded(&mut self, ingress: u32, sent: &[u8], egress: u32, out: &[u8]) {
        let Ok(o) = wire::parse(out) else {
            return;
        };
        if o.frag != 0 || o.is_icmp_error() {
            return;
        }
        let r = self.rng.below(10);
        if r == 0 {
            // An error about it, from where it went.
            let (ty, code) = match (o.v6, self.rng.below(3)) {
                (false, 0) => (3, 4),
                (false, 1) => (3, 3),
                (false, _) => (11, 0),
                (true, 0) => (2, 0),
                (true, 1) => (1, 4),
                (true, _) => (3, 0),
            };
            let len = *self.rng.pick(&[28usize, 48, 68, 1500]);
            let f = Frame::new(
                o.dst,
                o.src,
                L4::IcmpError {
                    ty,
                    code,
                    info: 1400,
                    quote: packet::quote(out, len),
                },
            );
            self.pending.push_back((egress, f.build()));
            return;
        }
        if r == 1 {
            // The sender's next packet of the same flow.
            self.pending.push_back((ingress, sent.to_vec()));
            return;
        }
        let l4 = match o.proto {
            6 => L4::Tcp {
                sport: o.dport,
                dport: o.sport,
                flags: match (o.tcp_flags & TCP_SYN != 0, self.rng.below(4)) {
                    (true, _) => TCP_SYN | TCP_ACK,
                    (false, 0) => TCP_FIN | TCP_ACK,
                    (false, 1) => TCP_RST,
                    _ => TCP_ACK,
                },
            },
            17 => L4::Udp {
                sport: o.dport,
                dport: o.sport,
                no_checksum: false,
            },
            1 | 58 if o.dport == 8 || o.dport == 128 => L4::Icmp {
                ty: if o.v6 { 129 } else { 0 },
                code: 0,
                id: o.sport,
                seq: 1,
            },
            _ => return,
        };
        self.pending
            .push_back((egress, Frame::new(o.dst, o.src, l4).build()));
    }

    /// A damaged copy of `f`.
    pub fn mutate(&mut self, mut f: Vec<u8>) -> Vec<u8> {
        for _ in 0..1 + self.rng.below(3) {
            match self.rng.below(7) {
                // Bit flips, mostly in the headers.
                0 | 1 if !f.is_empty() => {
                    for _ in 0..1 + self.rng.below(4) {
                        let n = if self.rng.chance(80) {
                            f.len().min(80)
                        } else {
                            f.len()
                        };
                        let i = self.rng.below(n);
                        f[i] ^= 1 << self.rng.below(8);
                    }
                }
                // A header byte set.
                2 if !f.is_empty() => {
                    let i = self.rng.below(f.len().min(80));
                    f[i] = self.rng.next_u64() as u8;
                }
                3 if !f.is_empty() => {
                    let n = self.rng.below(f.len());
                    f.truncate(n);
                }
                4 => {
                    for _ in 0..1 + self.rng.below(64) {
                        f.push(self.rng.next_u64() as u8);
                    }
                }
                // Now and then a VLAN tag (802.1Q or 802.1ad) before the
                // ether type: VPC interfaces are untagged.
                5 if f.len() >= 14 && self.rng.chance(10) => {
                    let tpid: [u8; 2] = if self.rng.chance(50) {
                        [0x81, 0x00]
                    } else {
                        [0x88, 0xa8]
                    };
                    let vid = (self.rng.next_u64() as u16 & 0x0fff).to_be_bytes();
                    f.splice(12..12, [tpid[0], tpid[1], vid[0], vid[1]]);
                }
                _ => {
                    // A length field, the IHL or the next header: where
                    // parsers go wrong.
                    if f.len() > 24 {
                        let i = *self.rng.pick(&[14usize, 16, 17, 18, 19, 20, 23]);
                        f[i] = self.rng.next_u64() as u8;
                    }
                }
            }
        }
        f
    }

    /// Random bytes, half behind an Ethernet header of IPv4 or IPv6.
    pub fn garbage(&mut self) -> Vec<u8> {
        let n = self.rng.below(160);
        let mut f: Vec<u8> = (0..n).map(|_| self.rng.next_u64() as u8).collect();
        if f.len() >= 34 && self.rng.chance(50) {
            let v6 = self.rng.chance(50);
            f[12..14].copy_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
            f[14] = if v6 { 0x60 } else { 0x45 };
        }
        f
    }

    /// The next frame: (what it is, the port it arrives on, its bytes).
    pub fn next_frame(&mut self) -> (Kind, u32, Vec<u8>) {
        let r = self.rng.below(100);
        if r < 30 {
            if let Some((port, f)) = self.pending.pop_front() {
                return (Kind::Reply, port, f);
            }
        }
        let (kind, mut port, f) = if r < 60 {
            let (p, f) = self.valid();
            (Kind::Valid, p, f)
        } else if r < 90 {
            let (p, f) = match self.pending.front() {
                Some((p, f)) if self.rng.chance(30) => (*p, f.clone()),
                _ => self.valid(),
            };
            (Kind::Mutated, p, self.mutate(f))
        } else {
            let p = *self.rng.pick(&self.ports);
            (Kind::Garbage, p, self.garbage())
        };
        // Now and then from a port that is not the sender's, or none.
        if kind != Kind::Valid && self.rng.chance(5) {
            // 1: the namespace's loopback, a device the router has no port for.
            port = if self.rng.chance(50) {
                1
            } else {
                *self.rng.pick(&self.ports)
            };
        }
        (kind, port, f)
    }
}

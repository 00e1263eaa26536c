//! The reference semantics over a stream of frames: whether the VPC may
//! forward a frame, given the frames it let through before. New
//! connections are judged by `vpc::reference` (`vpc explain`'s walk:
//! routes, groups, ACLs, gateways); a frame of a connection it admitted
//! passes as that connection's (ACLs re-judged where both ends are in a
//! VPC) on the port its direction arrives on, until a RST ends it; a SYN
//! on the tuple of a closing connection (a FIN seen) or against a
//! connection's reply direction is a new connection, judged as one. An
//! ICMP error passes with the connection it quotes (the quoted tuple
//! reversed, on that direction's port, addressed to the quoted source,
//! from the quoted destination or from the sending interface itself: an
//! on-path middlebox), its type and code judged by the ACLs; one that
//! relates to no connection (quoting a fragment, neither TCP nor UDP, or
//! no connection admitted) is judged as any untracked ICMP packet. What
//! the reference leaves out is written here from AWS's rules: new
//! connections from the internet (to a public address or an IPv6 address
//! whose subnet routes the sender to an internet gateway, through the
//! subnet's inbound ACL and the host's inbound groups), and DNS to the VPC
//! resolver (groups and ACLs do not filter it). A frame the independent
//! parser (`wire`) rejects may never be forwarded.
//!
//! It judges what is forwarded only: a drop is always allowed here (the
//! fuzz runs hold drops to their counters, and an admitted flow's drop to
//! the reasons that may refuse it: [`Oracle::may_refuse`]).
use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv4Addr},
};

use vpc::{
    model::{
        route::{RouteState, Target},
        Model,
    },
    reference::{self, Packet, Verdict},
};

use vpc_common::DropReason;

use crate::wire::{self, Quoted, Wire};

/// A connection direction as the datapath keys it (ICMP echo: identifier
/// and type in the ports).
type Key = (IpAddr, IpAddr, u8, u16, u16);

/// One admitted direction: the addresses its ACLs see (after a function's
/// source NAT, before the reverse NAT), the router port its packets
/// arrive on, and its connection (the original direction's key).
#[derive(Clone, Copy)]
struct Dir {
    src: IpAddr,
    dst: IpAddr,
    port: u32,
    orig: Key,
}

pub struct Oracle<'m> {
    m: &'m Model,
    /// Router port -> node id.
    nodes: HashMap<u32, String>,
    flows: HashMap<Key, Dir>,
    /// A connection (its original key) -> the keys of its directions.
    conns: HashMap<Key, Vec<Key>>,
    /// TCP connections (original keys) one side of which sent a FIN.
    closing: HashSet<Key>,
    /// Frames admitted as a new connection (or untracked packet), as part
    /// of one, as ICMP errors related to one, as ICMP errors related to
    /// none (judged as any ICMP).
    pub admitted: [u64; 4],
}

fn key(w: &Wire) -> Key {
    (w.src, w.dst, w.proto, w.sport, w.dport)
}

/// The reply type of an echo request's type.
fn echo_reply(ty: u16) -> u16 {
    if ty == 128 {
        129
    } else {
        0
    }
}

impl<'m> Oracle<'m> {
    /// `ports`: router ifindex -> node id (hosts, execution environments,
    /// internet hosts, resolvers, services).
    pub fn new(m: &'m Model, ports: impl IntoIterator<Item = (u32, String)>) -> Self {
        Oracle {
            m,
            nodes: ports.into_iter().collect(),
            flows: HashMap::new(),
            conns: HashMap::new(),
            closing: HashSet::new(),
            admitted: [0; 4],
        }
    }

    /// Records direction `k` of connection `d.orig`.
    fn add(&mut self, k: Key, d: Dir) {
        self.flows.insert(k, d);
        self.conns.entry(d.orig).or_default().push(k);
    }

    /// Connection `orig` is over (a RST, or a new one on its tuple): its
    /// directions are forgotten (those a newer connection took over stay).
    fn end(&mut self, orig: Key) {
        for k in self.conns.remove(&orig).unwrap_or_default() {
            if self.flows.get(&k).is_some_and(|d| d.orig == orig) {
                self.flows.remove(&k);
            }
        }
        self.closing.remove(&orig);
    }

    /// The live direction of key `k` if its packets arrive on `port`.
    fn dir(&self, k: &Key, port: u32) -> Option<Dir> {
        self.flows.get(k).filter(|d| d.port == port).copied()
    }

    /// The direction an ICMP error `w` from `from` (on `port`) about the
    /// quoted packet `q` travels with, if it relates to one: the quote's
    /// tuple reversed, arriving on `port`, the error addressed to the
    /// quoted source and sent by the quoted destination or by the
    /// interface behind `port` itself (an on-path middlebox).
    fn related(&self, port: u32, from: &str, w: &Wire, q: Quoted) -> Option<Dir> {
        let (qs, qd, qp, qsp, qdp) = q;
        if qs != w.dst {
            return None;
        }
        let d = self.dir(&(qd, qs, qp, qdp, qsp), port)?;
        (qd == w.src || self.owns(from, w.src)).then_some(d)
    }

    /// Whether a new flow `f` the reference admits may be dropped as
    /// `reason` all the same: for its interface's limits, not a verdict
    /// on the flow. At the conntrack allowance (the sender's interface has
    /// `connections` tracked of its `allowance`, 0: none), and past the
    /// linklocal allowance (packets to the VPC resolver only).
    pub fn may_refuse(
        &self,
        reason: DropReason,
        f: &[u8],
        connections: i64,
        allowance: u64,
    ) -> bool {
        match reason {
            DropReason::ConntrackAllowanceExceeded => {
                allowance != 0 && connections >= allowance as i64
            }
            DropReason::LinklocalAllowanceExceeded => wire::parse(f).is_ok_and(|w| {
                self.m
                    .vpcs
                    .iter()
                    .any(|v| IpAddr::V4(v.resolver()) == w.dst)
            }),
            _ => false,
        }
    }

    /// Does node `id` own `a` (the source check)?
    fn owns(&self, id: &str, a: IpAddr) -> bool {
        let m = self.m;
        let is = |v4: Ipv4Addr, v6: Option<std::net::Ipv6Addr>| {
            a == IpAddr::V4(v4) || v6.map(IpAddr::V6) == Some(a)
        };
        m.hosts.iter().any(|h| h.id == id && is(h.ip, h.ip6))
            || m.internet_hosts
                .iter()
                .any(|h| h.id == id && is(h.ip, h.ip6))
            || m.functions
                .iter()
                .flat_map(|f| f.envs())
                .any(|e| e.id == id && is(e.ip, e.ip6))
    }

    fn is_function(&self, id: &str) -> bool {
        self.m
            .functions
            .iter()
            .flat_map(|f| f.envs())
            .any(|e| e.id == id)
    }

    /// The address a function's execution environment `id` is seen
    /// from in the VPC: its Hyperplane ENI's, in the family of `like`.
    fn eni_of(&self, id: &str, like: IpAddr) -> Option<IpAddr> {
        let env = self
            .m
            .functions
            .iter()
            .flat_map(|f| f.envs())
            .find(|e| e.id == id)?;
        let eni = self.m.enis.iter().find(|e| Some(e.index) == env.eni)?;
        if like.is_ipv6() {
            eni.ip6.map(IpAddr::V6)
        } else {
            Some(IpAddr::V4(eni.ip))
        }
    }

    /// The VPC of a VPC address's owner (host or ENI).
    fn vpc_of(&self, a: IpAddr) -> Option<&str> {
        let m = self.m;
        let subnet = m
            .hosts
            .iter()
            .find(|h| a == IpAddr::V4(h.ip) || h.ip6.map(IpAddr::V6) == Some(a))
            .map(|h| h.subnet.as_str())
            .or_else(|| {
                m.enis
                    .iter()
                    .find(|e| a == IpAddr::V4(e.ip) || e.ip6.map(IpAddr::V6) == Some(a))
                    .map(|e| e.subnet.as_str())
            })?;
        m.subnet(subnet).map(|s| s.vpc.as_str())
    }

    /// A new connection from the internet, by AWS's rules: to a host's
    /// public IPv4 address (1:1 NAT) or its IPv6 address, whose subnet
    /// routes the sender to an internet gateway (not an egress-only one),
    /// through the subnet's inbound ACL and the host's inbound groups.
    fn inbound(&self, w: &Wire) -> Verdict {
        let m = self.m;
        // Hosts of the internet reach one another (and AWS's public
        // endpoints) as they are: the internet is not the VPC's.
        if m.internet_hosts
            .iter()
            .any(|h| w.dst == IpAddr::V4(h.ip) || h.ip6.map(IpAddr::V6) == Some(w.dst))
        {
            return Verdict::Allow;
        }
        let host = m.hosts.iter().find(|h| match w.dst {
            IpAddr::V4(d) => m.public_ip(&h.id) == Some(d),
            IpAddr::V6(d) => h.ip6 == Some(d),
        });
        let Some(h) = host else {
            return Verdict::Deny("no_route", "no host has that public address".into());
        };
        match reference::route(m, &h.subnet, w.src) {
            Some((_, r, _, RouteState::Active))
                if matches!(r.target, Target::InternetGateway(_)) => {}
            _ => {
                return Verdict::Deny(
                    "no_route",
                    "the subnet does not route the sender to an internet gateway".into(),
                )
            }
        }
        let p = Packet {
            src: w.src,
            dst: if w.v6 { w.dst } else { IpAddr::V4(h.ip) },
            proto: w.proto,
            port: w.policy_port(),
            space: 0,
        };
        if !reference::acl_allows(m, &h.subnet, false, p.src, &p).0 {
            return Verdict::Deny("nacl_ingress_denied", "inbound ACL".into());
        }
        if reference::groups_allow(m, &h.groups, true, p.src, &p).is_none() {
            return Verdict::Deny("sg_ingress_denied", "inbound groups".into());
        }
        Verdict::Allow
    }

    /// Judges a frame the datapath forwarded: `input` arrived on port
    /// `ingress` and left, as `output`, by port `egress`. Records the
    /// connection a new one opens.
    pub fn forwarded(
        &mut self,
        ingress: u32,
        input: &[u8],
        output: &[u8],
        egress: u32,
    ) -> Result<(), String> {
        let w = wire::parse(input)
            .map_err(|r| format!("forwarded a frame the parser must drop ({})", r.name()))?;
        let o = wire::parse(output).map_err(|r| {
            format!(
                "forwarded {w:?} as a frame that does not parse ({})",
                r.name()
            )
        })?;
        let from = self
            .nodes
            .get(&ingress)
            .ok_or_else(|| format!("arrived on unknown port {ingress}"))?
            .clone();
        if !self.nodes.contains_key(&egress) {
            return Err(format!("redirected to unknown port {egress}"));
        }
        if w.frag != 0 {
            // Fragments: only UDP of a connection through a NAT gateway
            // (its first fragment by its ports; the rest by the datagram).
            if w.proto == 17 && w.frag == 1 && self.flows.contains_key(&key(&w)) {
                self.admitted[1] += 1;
                return Ok(());
            }
            if w.proto == 17 && w.frag == 2 {
                let known = self
                    .flows
                    .keys()
                    .any(|k| k.0 == w.src && k.1 == w.dst && k.2 == 17);
                if known {
                    self.admitted[1] += 1;
                    return Ok(());
                }
            }
            return Err(format!("forwarded a fragment of no connection: {w:?}"));
        }
        if w.is_icmp_error() {
            let quoted = wire::quote(input, &w).map_err(|r| {
                format!(
                    "forwarded an ICMP error whose quote must drop ({})",
                    r.name()
                )
            })?;
            if let Some(d) = quoted.and_then(|q| self.related(ingress, &from, &w, q)) {
                // Groups do not judge it (stateful); the ACLs, stateless,
                // judge its type and code where both ends are in a VPC
                // (an error from the peer: a middlebox's own address is
                // seen by its own subnet's ACL).
                let known = |a: IpAddr| self.vpc_of(a).is_some();
                if w.src == quoted.unwrap().1 && known(d.src) && known(d.dst) {
                    let p = Packet {
                        src: d.src,
                        dst: d.dst,
                        proto: w.proto,
                        port: w.policy_port(),
                        space: 0,
                    };
                    if let Verdict::Deny(r, why) = reference::tracked(self.m, &p) {
                        return Err(format!(
                            "forwarded a related ICMP error the ACLs deny ({r}: {why}): {w:?}"
                        ));
                    }
                }
                self.admitted[2] += 1;
                return Ok(());
            }
            // Related to nothing: judged below as any untracked ICMP.
        }
        if let Some(d) = self.dir(&key(&w), ingress) {
            let syn = w.proto == 6 && w.tcp_flags & 0x16 == 0x02;
            // A new handshake on a closing tuple or against the reply
            // direction: a new connection (below), replacing this one.
            let reopens = syn && (key(&w) != d.orig || self.closing.contains(&d.orig));
            if !reopens {
                self.follow(&w, &o, d, egress)?;
                self.admitted[1] += 1;
                return Ok(());
            }
            self.end(d.orig);
        }
        // A new connection (or untracked packet).
        if !self.owns(&from, w.src) {
            return Err(format!("forwarded a spoofed source from {from}: {w:?}"));
        }
        let tracked = match w.proto {
            6 => {
                if w.tcp_flags & 0x16 != 0x02 {
                    return Err(format!("opened a connection without a SYN: {w:?}"));
                }
                true
            }
            17 => true,
            1 | 58 => w.dport == 8 || w.dport == 128,
            _ => true,
        };
        let function = self.is_function(&from);
        // The VPC sees a function's packets from its ENI.
        let seen_src = if function {
            if !matches!(w.proto, 6 | 17) {
                return Err(format!("forwarded a function's non-TCP/UDP packet: {w:?}"));
            }
            self.eni_of(&from, w.src)
                .ok_or_else(|| format!("forwarded from {from}, which has no ENI: {w:?}"))?
        } else {
            w.src
        };
        let resolver = self.m.vpcs.iter().any(|v| {
            v.enable_dns_support
                && IpAddr::V4(v.resolver()) == w.dst
                && self.vpc_of(seen_src) == Some(v.id.as_str())
        });
        let verdict = if resolver && matches!(w.proto, 6 | 17) && w.dport == 53 {
            Verdict::Allow
        } else if self.m.internet_hosts.iter().any(|h| h.id == from) {
            self.inbound(&w)
        } else {
            reference::new_connection(
                self.m,
                &Packet {
                    src: seen_src,
                    dst: w.dst,
                    proto: w.proto,
                    port: w.policy_port(),
                    space: 0,
                },
            )
        };
        if let Verdict::Deny(r, why) = verdict {
            return Err(format!(
                "forwarded a new connection the reference denies ({r}: {why}): {from} {w:?}"
            ));
        }
        if tracked {
            // An earlier connection on the tuple is replaced.
            let k = key(&w);
            self.end(k);
            self.add(
                k,
                Dir {
                    src: seen_src,
                    dst: w.dst,
                    port: ingress,
                    orig: k,
                },
            );
            // The reply, as it will arrive: to the output's source, on
            // the port the packet left by.
            let reply = if matches!(w.proto, 1 | 58) {
                (o.dst, o.src, o.proto, o.sport, echo_reply(o.dport))
            } else {
                (o.dst, o.src, o.proto, o.dport, o.sport)
            };
            self.add(
                reply,
                Dir {
                    src: w.dst,
                    dst: seen_src,
                    port: egress,
                    orig: k,
                },
            );
        }
        self.admitted[if w.is_icmp_error() { 3 } else { 0 }] += 1;
        Ok(())
    }

    /// A packet `w` of admitted direction `d`, forwarded as `o` by port
    /// `egress`: the ACLs judge it again; a RST ends its connection, a FIN
    /// makes it closing.
    fn follow(&mut self, w: &Wire, o: &Wire, d: Dir, egress: u32) -> Result<(), String> {
        // ACLs are stateless: judged again where both ends are in a VPC.
        let known = |a: IpAddr| self.vpc_of(a).is_some();
        if known(d.src) && known(d.dst) {
            let p = Packet {
                src: d.src,
                dst: d.dst,
                proto: w.proto,
                port: w.policy_port(),
                space: 0,
            };
            if let Verdict::Deny(r, why) = reference::tracked(self.m, &p) {
                return Err(format!(
                    "forwarded a tracked packet the ACLs deny ({r}: {why}): {w:?}"
                ));
            }
        }
        if w.proto != 6 {
            return Ok(());
        }
        if w.tcp_flags & 0x04 != 0 {
            // Nothing after a RST is part of the connection.
            self.end(d.orig);
            return Ok(());
        }
        if w.tcp_flags & 0x16 == 0x02 {
            // A SYN on the original direction of a connection the router
            // may have let expire (it opens a new one then): a new NAT
            // port may come with it, and the replies to that.
            let reply = (o.dst, o.src, o.proto, o.dport, o.sport);
            self.add(
                reply,
                Dir {
                    src: d.dst,
                    dst: d.src,
                    port: egress,
                    orig: d.orig,
                },
            );
        }
        if w.tcp_flags & 0x01 != 0 {
            self.closing.insert(d.orig);
        }
        Ok(())
    }

    /// Whether `f` belongs to a connection admitted before.
    pub fn knows(&self, f: &[u8]) -> bool {
        wire::parse(f).is_ok_and(|w| self.flows.contains_key(&key(&w)))
    }
}

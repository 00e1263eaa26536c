//! What the fuzz targets check, as functions: the corpus replay (a plain
//! test) runs the same. Each panics on a broken invariant.
use std::{collections::HashMap, net::IpAddr, sync::OnceLock};

use vpc_common::DropReason;
use vpc_tests::{
    frames::templates,
    oracle::Oracle,
    wire::{self, Wire},
};

use crate::{parse_frame, parse_quote, Deployment, Hook, Host, Parsed, XDP_DROP, XDP_REDIRECT};

fn mapped(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

fn agree(p: &Parsed, w: &Wire) -> Result<(), String> {
    let ours = (
        p.v6, p.saddr, p.daddr, p.proto, p.sport, p.dport, p.l4_off, p.ip_len,
    );
    let theirs = (
        w.v6,
        mapped(w.src),
        mapped(w.dst),
        w.proto,
        w.sport,
        w.dport,
        w.l4_off,
        w.ip_len,
    );
    if ours != theirs {
        return Err(format!("tuple: parser {ours:?}, reference {theirs:?}"));
    }
    let ours = (p.tcp_flags, p.icmp_type, p.icmp_code, p.frag, p.ip_id);
    let theirs = (w.tcp_flags, w.icmp_type, w.icmp_code, w.frag, w.ip_id);
    if ours != theirs {
        return Err(format!("fields: parser {ours:?}, reference {theirs:?}"));
    }
    Ok(())
}

/// The router's parser against the independent one: the same tuple and
/// fields, or the same drop reason; for an ICMP error, the same quoted
/// packet, or the same reason.
pub fn parse(frame: &[u8]) {
    let ours = parse_frame(frame);
    let theirs = wire::parse(frame);
    match (&ours, &theirs) {
        (Ok(p), Ok(w)) => {
            if let Err(e) = agree(p, w) {
                panic!("{e}; frame {frame:02x?}");
            }
            if w.is_icmp_error() {
                let ours = parse_quote(frame);
                let theirs = wire::quote(frame, w)
                    .map(|q| q.map(|(s, d, pr, sp, dp)| (mapped(s), mapped(d), pr, sp, dp)));
                assert_eq!(ours, theirs, "quote; frame {frame:02x?}");
            }
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "drop reason; frame {frame:02x?}"),
        _ => panic!("parser {ours:?}, reference {theirs:?}; frame {frame:02x?}"),
    }
}

/// The deployments, built once per process.
fn deployments() -> &'static Vec<Deployment> {
    static D: OnceLock<Vec<Deployment>> = OnceLock::new();
    D.get_or_init(|| {
        templates()
            .iter()
            .map(|(_, t)| Deployment::new(t))
            .collect()
    })
}

/// How a pipeline input is read: `[template][flags]` then records, each
/// `[op][len: u16 BE][frame]`; `op` >= 0xf0 moves the clock instead
/// (`(op & 0xf) + 1` times 20 s: idle timeouts), other values pick the
/// ingress port (`op % (ports + 1)`, the last one a port the router does
/// not know). Flags bit 0: the TC hook (else XDP).
pub struct Records<'a> {
    data: &'a [u8],
}

pub enum Record<'a> {
    Frame(usize, &'a [u8]),
    Advance(u64),
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;
    fn next(&mut self) -> Option<Record<'a>> {
        let (&op, rest) = self.data.split_first()?;
        if op >= 0xf0 {
            self.data = rest;
            return Some(Record::Advance(((op & 0xf) as u64 + 1) * 20_000_000_000));
        }
        if rest.len() < 2 {
            self.data = &[];
            return None;
        }
        let len = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        let frame = &rest[2..2 + len];
        self.data = &rest[2 + len..];
        Some(Record::Frame(op as usize, frame))
    }
}

/// Encodes a pipeline input (the seed corpus).
pub fn encode(template: u8, tc: bool, records: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut v = vec![template, tc as u8];
    for (op, f) in records {
        v.push(*op);
        if *op < 0xf0 {
            v.extend_from_slice(&(f.len() as u16).to_be_bytes());
            v.extend_from_slice(f);
        }
    }
    v
}

/// The router's ports of a deployment, in the order records name them.
pub fn ports(d: &Deployment) -> Vec<(u32, String)> {
    let mut p: Vec<(u32, String)> = d
        .links
        .iter()
        .map(|(id, l)| (l.ifindex, id.clone()))
        .collect();
    p.sort();
    p
}

/// A sequence of frames through the whole pipeline on one deployment:
/// every verdict a drop or a redirect; a drop counted under exactly one
/// reason, a redirect as forwarded, to a port of the deployment, with the
/// frame's length kept, and one the reference semantics allow (the
/// oracle, as for the kernel fuzz run).
pub fn pipeline(data: &[u8]) {
    let [t, flags, rest @ ..] = data else {
        return;
    };
    let all = deployments();
    let ti = *t as usize % all.len();
    let d = &all[ti];
    let hook = if flags & 1 != 0 { Hook::Tc } else { Hook::Xdp };
    let mut h = Host::take();
    if h.installed() != Some(ti) {
        h.clear_all(4096);
        d.install(&mut h);
        h.set_installed(ti);
    }
    h.reset_state();
    let ports = ports(d);
    let mut oracle = Oracle::new(&d.model, ports.clone());
    let mut now = 1_000_000_000_000u64;
    h.set_now(now);
    h.seed(u64::from_le_bytes([*t, *flags, 1, 2, 3, 4, 5, 6]));
    let known: HashMap<u32, ()> = ports.iter().map(|(i, _)| (*i, ())).collect();
    let mut before = h.stats();
    for (i, r) in (Records { data: rest }).enumerate() {
        let (op, frame) = match r {
            Record::Advance(ns) => {
                now += ns;
                h.set_now(now);
                continue;
            }
            Record::Frame(op, f) => (op, f),
        };
        let ingress = ports.get(op % (ports.len() + 1)).map_or(1, |p| p.0);
        let out = h.run(hook, ingress, frame);
        let after = h.stats();
        let moved: Vec<(usize, u64)> = after
            .iter()
            .zip(&before)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| (i, a - b))
            .collect();
        before = after;
        let ctx = || format!("template {ti}, {hook:?}, record {i} on port {ingress}: {frame:02x?}");
        match out.action {
            XDP_REDIRECT => {
                assert_eq!(
                    moved,
                    [(0, 1)],
                    "a redirect counts once as forwarded; {}",
                    ctx()
                );
                let egress = out
                    .redirect
                    .unwrap_or_else(|| panic!("no redirect target; {}", ctx()));
                assert!(
                    known.contains_key(&egress),
                    "to unknown port {egress}; {}",
                    ctx()
                );
                assert_eq!(out.frame.len(), frame.len(), "length kept; {}", ctx());
                if let Err(e) = oracle.forwarded(ingress, frame, &out.frame, egress) {
                    panic!("{e}; {}", ctx());
                }
            }
            XDP_DROP => {
                assert!(
                    moved.len() == 1
                        && moved[0].1 == 1
                        && DropReason::ALL.iter().any(|r| *r as usize == moved[0].0),
                    "a drop counts under exactly one reason: {moved:?}; {}",
                    ctx()
                );
            }
            a => panic!("action {a}; {}", ctx()),
        }
    }
    // Each port's conntrack allowance count is its live connections: every
    // original entry added once, taken back once by what removed it.
    assert_eq!(
        h.port_counts(),
        h.connections_by_port(),
        "PORT_CONNECTIONS (left) against the original entries in CT by port (right); template {ti}, {hook:?}"
    );
    // Every ENI claim is in its pool's bitmap: the walk never offers it.
    assert_eq!(
        h.claims_without_bits(),
        vec![],
        "ENI claims whose NAT_PORT_BITMAP bit is clear; template {ti}, {hook:?}"
    );
}

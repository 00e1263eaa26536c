//! `vpc explain`: a question in resource terms (a sender, a destination, a
//! protocol and a port) turned into a [`reference::Packet`], and the
//! reference's answer with each check it made.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{bail, Result};
use serde::Serialize;

use crate::{
    model::{self, Model},
    reference,
};

/// Would a new connection pass, and why (`vpc explain --output json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The sender as asked: an address, an instance, a network interface, a
    /// function (`F`, or `F.N` for its Nth environment) or an internet test
    /// host.
    pub from: String,
    /// The destination as asked.
    pub to: String,
    /// The addresses they stand for.
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The IP protocol number.
    pub protocol: u8,
    /// The destination port (ICMP: the type).
    pub port: u16,
    /// Each check made, in order.
    pub steps: Vec<String>,
    pub allowed: bool,
    /// Why not: named like the datapath's drop counters.
    pub reason: Option<&'static str>,
    /// Why not, in words.
    pub why: Option<String>,
}

impl Explanation {
    /// ICMP and ICMPv6 name a type where others name a port.
    pub fn is_icmp(&self) -> bool {
        matches!(self.protocol, 1 | 58)
    }
}

/// Explains a new connection from `from` to `to` in `m`. A resource stands
/// for its IPv6 address when the other side is an IPv6 address; a function
/// sends from its Hyperplane ENI (`F.N`: environment N's, the Nth subnet's).
pub fn explain(m: &Model, from: &str, to: &str, protocol: &str, port: u16) -> Result<Explanation> {
    let v6 = [from, to].iter().any(|r| r.parse::<Ipv6Addr>().is_ok());
    let proto = match model::parse_protocol(
        &serde_json::Value::String(protocol.to_string()),
        "--protocol",
    )? {
        model::Protocol::Number(n) => n,
        model::Protocol::All => bail!("--protocol: name one protocol"),
    };
    let icmp = matches!(proto, 1 | 58);
    let p = reference::Packet {
        src: address(m, from, v6)?,
        dst: address(m, to, v6)?,
        proto,
        port: if icmp { port << 8 } else { port },
    };
    let (verdict, steps) = reference::explain(m, &p);
    let (allowed, reason, why) = match verdict {
        reference::Verdict::Allow => (true, None, None),
        reference::Verdict::Deny(reason, why) => (false, Some(reason), Some(why)),
    };
    Ok(Explanation {
        from: from.to_string(),
        to: to.to_string(),
        src: p.src,
        dst: p.dst,
        protocol: proto,
        port,
        steps,
        allowed,
        reason,
        why,
    })
}

/// The address resource `r` stands for (its IPv6 one if `v6`).
fn address(m: &Model, r: &str, v6: bool) -> Result<IpAddr> {
    let pick = |ip: Ipv4Addr, ip6: Option<Ipv6Addr>| {
        if !v6 {
            return Ok(ip.into());
        }
        ip6.map(Into::into)
            .ok_or_else(|| anyhow::anyhow!("{r:?} has no IPv6 address"))
    };
    if let Ok(ip) = r.parse() {
        return Ok(ip);
    }
    if let Some(h) = m.hosts.iter().find(|h| h.id == r) {
        return pick(h.ip, h.ip6);
    }
    if let Some(h) = m.internet_hosts.iter().find(|h| h.id == r) {
        return pick(h.ip, h.ip6);
    }
    // A function sends from its first environment's ENI; `F.N` names
    // environment N's (the Nth subnet's).
    let (f, n) = match r.rsplit_once('.') {
        Some((f, n)) if n.parse::<usize>().is_ok() => (f, n.parse().unwrap_or(1)),
        _ => (r, 1),
    };
    if let Some(e) = m
        .function(f)
        .and_then(|f| {
            f.envs()
                .into_iter()
                .find(|e| e.n == n.max(1))
                .and_then(|e| e.eni)
        })
        .and_then(|i| m.enis.iter().find(|e| e.index == i))
    {
        return pick(e.ip, e.ip6);
    }
    bail!("{r:?} is no address, instance, network interface, VPC function or internet test host")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_stand_for_their_addresses() {
        let m = model::build(crate::DEFAULT_TEMPLATE, &Default::default(), "t").unwrap();
        let host = m.hosts.first().expect("a host");
        let e = explain(&m, &host.id, "10.0.200.1", "tcp", 5432).unwrap();
        assert_eq!(e.src, IpAddr::from(host.ip));
        assert_eq!((e.protocol, e.port, e.is_icmp()), (6, 5432, false));
        assert_eq!(e.allowed, e.reason.is_none());
        assert!(!e.steps.is_empty() || !e.allowed);
        let e = explain(&m, "10.0.1.10", &host.id, "icmp", 8).unwrap();
        assert!(e.is_icmp());
        assert_eq!(
            explain(&m, "nowhere", &host.id, "tcp", 1)
                .unwrap_err()
                .to_string(),
            "\"nowhere\" is no address, instance, network interface, VPC function or internet test host"
        );
        assert_eq!(
            explain(&m, &host.id, "10.0.1.10", "-1", 1)
                .unwrap_err()
                .to_string(),
            "--protocol: name one protocol"
        );
    }
}

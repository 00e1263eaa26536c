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
    let ((src, space), (dst, to_vpc)) = (address(m, from, v6, true)?, address(m, to, v6, false)?);
    let p = reference::Packet {
        src,
        dst,
        proto,
        port: if icmp { port << 8 } else { port },
        space,
    };
    // A destination named in another VPC: its address, routed in the
    // sender's VPC, is not it (no route joins separate VPCs here).
    let (verdict, steps) = if to_vpc != 0 && space != 0 && to_vpc != space {
        let why = format!(
            "{to} is in VPC {}, the sender in VPC {}: no route joins them",
            vpc_name(m, to_vpc),
            vpc_name(m, space)
        );
        (reference::Verdict::Deny("no_route", why), vec![])
    } else {
        reference::explain(m, &p)
    };
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

fn vpc_name(m: &Model, index: u32) -> &str {
    m.vpcs
        .iter()
        .find(|v| v.index == index)
        .map_or("?", |v| v.id.as_str())
}

/// The VPC index of subnet `subnet` (0: none).
fn vpc_of(m: &Model, subnet: &str) -> u32 {
    m.subnet(subnet)
        .and_then(|s| m.vpc(&s.vpc))
        .map_or(0, |v| v.index)
}

/// An address as given: `ADDRESS`, or `ADDRESS@VPC` (a VPC's logical id)
/// where separate VPCs share it. A bare address that hosts or ENIs of
/// several VPCs have is refused, naming them. With its VPC (0: unknown or
/// global).
fn bare_address(m: &Model, r: &str) -> Result<Option<(IpAddr, u32)>> {
    let (a, vpc) = match r.split_once('@') {
        Some((a, v)) => (a, Some(v)),
        None => (r, None),
    };
    let Ok(ip) = a.parse::<IpAddr>() else {
        return Ok(None);
    };
    let owns =
        |v4: Ipv4Addr, v6: Option<Ipv6Addr>| IpAddr::V4(v4) == ip || v6.map(IpAddr::V6) == Some(ip);
    let owners: Vec<(&str, u32)> = m
        .hosts
        .iter()
        .filter(|h| owns(h.ip, h.ip6))
        .map(|h| (h.id.as_str(), vpc_of(m, &h.subnet)))
        .chain(
            m.enis
                .iter()
                .filter(|e| owns(e.ip, e.ip6))
                .map(|e| (e.id.as_str(), vpc_of(m, &e.subnet))),
        )
        .collect();
    if let Some(v) = vpc {
        let index = m
            .vpc(v)
            .map(|v| v.index)
            .ok_or_else(|| anyhow::anyhow!("{r:?}: no VPC {v:?}"))?;
        return Ok(Some((ip, index)));
    }
    let mut vpcs: Vec<u32> = owners.iter().map(|o| o.1).collect();
    vpcs.sort();
    vpcs.dedup();
    if vpcs.len() > 1 {
        let names: Vec<String> = owners
            .iter()
            .map(|(id, v)| format!("{id} (VPC {})", vpc_name(m, *v)))
            .collect();
        bail!(
            "{ip} is an address of several VPCs: {}; name the resource or qualify the address ({ip}@{})",
            names.join(", "),
            vpc_name(m, vpcs[0])
        );
    }
    Ok(Some((ip, vpcs.first().copied().unwrap_or(0))))
}

/// The address resource `r` stands for (its IPv6 one if `v6`), and its
/// VPC (0: none, or unknown). A bare address as the destination
/// (`sender` false) is the sender's VPC's.
fn address(m: &Model, r: &str, v6: bool, sender: bool) -> Result<(IpAddr, u32)> {
    let pick = |ip: Ipv4Addr, ip6: Option<Ipv6Addr>| -> Result<IpAddr> {
        if !v6 {
            return Ok(ip.into());
        }
        ip6.map(Into::into)
            .ok_or_else(|| anyhow::anyhow!("{r:?} has no IPv6 address"))
    };
    if let (false, Ok(ip)) = (sender, r.parse()) {
        return Ok((ip, 0));
    }
    if let Some(a) = bare_address(m, r)? {
        return Ok(a);
    }
    if let Some(h) = m.hosts.iter().find(|h| h.id == r) {
        return Ok((pick(h.ip, h.ip6)?, vpc_of(m, &h.subnet)));
    }
    if let Some(h) = m.internet_hosts.iter().find(|h| h.id == r) {
        return Ok((pick(h.ip, h.ip6)?, 0));
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
        return Ok((pick(e.ip, e.ip6)?, vpc_of(m, &e.subnet)));
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

    /// Separate VPCs sharing addresses: a bare shared address is refused
    /// naming its owners; a resource or `ADDRESS@VPC` says which; a
    /// destination named in another VPC has no route.
    #[test]
    fn addresses_of_several_vpcs_are_named_or_qualified() {
        let t = include_str!("../../tests/fixtures/overlapping_vpcs.yaml");
        let m = model::build(t, &Default::default(), "t").unwrap();
        let e = explain(&m, "10.0.2.10", "10.0.2.4", "tcp", 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "10.0.2.10 is an address of several VPCs: Db1 (VPC One), Db2 (VPC Two); name the resource or qualify the address (10.0.2.10@One)"
        );
        let ok = |from: &str, to: &str| {
            let e = explain(&m, from, to, "tcp", 5432).unwrap();
            (e.allowed, e.reason)
        };
        // Each function reaches its own VPC's database, by name or address.
        assert_eq!(ok("Fn1", "Db1"), (true, None));
        assert_eq!(ok("Fn2", "10.0.2.10"), (true, None));
        assert_eq!(ok("10.0.2.4@Two", "Db2"), (true, None));
        // Db2 is not reachable from VPC One: its address there is Db1's.
        assert_eq!(ok("Fn1", "Db2"), (false, Some("no_route")));
        assert!(explain(&m, "10.0.2.10@Three", "Db1", "tcp", 1).is_err());
    }
}

//! `vpc conntrack list`: tracked connections as `conntrack -L` shows them:
//! the original tuple as the first packet arrived, the reply tuple as
//! replies arrive (after source NAT: to the Hyperplane ENI's address and
//! port), state, time left, and packets and bytes each way.
use std::net::IpAddr;

use serde::Serialize;
use vpc_common::{ct_state, CtEntry, CtKey, CT_F_SNAT};

use crate::{
    datapath::{timeout_of, Timeouts},
    model::Model,
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TCP/UDP ports; for ICMP echo, the identifier and the type.
    pub sport: u16,
    pub dport: u16,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Connection {
    pub protocol: &'static str,
    pub protocol_number: u8,
    /// `conntrack`'s names: SYN_SENT, ESTABLISHED, FIN_WAIT (one side
    /// closed), TIME_WAIT (both), CLOSE (reset); empty for UDP and ICMP.
    pub state: &'static str,
    /// Seconds of idleness left before the agent removes it.
    pub timeout_s: u64,
    pub age_s: u64,
    pub original: Tuple,
    pub reply: Tuple,
    /// The Hyperplane ENI it was translated to (function connections).
    pub eni: Option<String>,
    /// Through a NAT gateway, a function's connection leaves its ENI from
    /// a port of the ENI (its claim) before the gateway's translation,
    /// which the reply tuple shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eni_port: Option<u16>,
    /// The VPC whose address space its VPC-side tuple is in (separate
    /// VPCs may overlap); none between the internet's hosts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc: Option<String>,
}

fn addr(a: &[u8; 16]) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(*a);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

pub fn protocol_name(p: u8) -> &'static str {
    match p {
        6 => "tcp",
        17 => "udp",
        1 => "icmp",
        58 => "icmpv6",
        _ => "unknown",
    }
}

/// Rows for `conns` (original-direction entries, as `Maps::connections`
/// returns them) at `now` on the datapath's clock, newest first; ENIs and
/// VPCs named from model `m`.
pub fn rows(conns: &[(CtKey, CtEntry)], t: &Timeouts, now: u64, m: &Model) -> Vec<Connection> {
    let enis = &m.enis;
    let secs = |ns: u64| ns / 1_000_000_000;
    let mut out: Vec<Connection> = conns
        .iter()
        .map(|(k, e)| {
            // By its index, not its address: ENIs of separate VPCs may
            // share one.
            let by_index = |i: u16| enis.iter().find(|s| i != 0 && s.index == i as u32);
            let eni = (e.flags & CT_F_SNAT != 0)
                .then(|| by_index(e.eni))
                .flatten()
                .or_else(|| by_index(e.fn_eni))
                .map(|s| s.id.clone());
            let space = if k.space != 0 { k.space } else { e.twin.space };
            let vpc = m
                .vpcs
                .iter()
                .find(|v| space != 0 && v.index == space as u32)
                .map(|v| v.id.clone());
            let eni_port = (e.fn_eni != 0).then(|| u16::from_be(e.fn_eni_port));
            let state = match (k.proto, e.state) {
                (6, ct_state::SYN_SENT) => "SYN_SENT",
                (6, ct_state::ESTABLISHED) => "ESTABLISHED",
                (6, ct_state::CLOSING) => "FIN_WAIT",
                (6, ct_state::CLOSED) => "TIME_WAIT",
                (6, ct_state::RESET) => "CLOSE",
                _ => "",
            };
            let idle = now.saturating_sub(e.last_seen);
            let (sport, dport) = (u16::from_be(k.sport), u16::from_be(k.dport));
            let (rsport, rdport) = (u16::from_be(e.twin.sport), u16::from_be(e.twin.dport));
            let icmp = k.proto == 1 || k.proto == 58;
            Connection {
                protocol: protocol_name(k.proto),
                protocol_number: k.proto,
                state,
                timeout_s: secs(timeout_of(t, k.proto, e).saturating_sub(idle)),
                age_s: secs(now.saturating_sub(e.created)),
                original: Tuple {
                    src: addr(&k.saddr),
                    dst: addr(&k.daddr),
                    sport,
                    // ICMP echo keys hold the type, in host order.
                    dport: if icmp { k.dport } else { dport },
                    packets: e.packets_orig as u64,
                    bytes: e.bytes_orig,
                },
                reply: Tuple {
                    src: addr(&e.twin.saddr),
                    dst: addr(&e.twin.daddr),
                    sport: rsport,
                    dport: if icmp { e.twin.dport } else { rdport },
                    packets: e.packets_reply as u64,
                    bytes: e.bytes_reply,
                },
                eni,
                eni_port,
                vpc,
            }
        })
        .collect();
    out.sort_by_key(|c| c.age_s);
    out
}

/// One line, `conntrack -L` style.
pub fn line(c: &Connection) -> String {
    let tuple = |t: &Tuple| {
        if c.protocol.starts_with("icmp") {
            format!(
                "src={} dst={} type={} id={} packets={} bytes={}",
                t.src, t.dst, t.dport, t.sport, t.packets, t.bytes
            )
        } else {
            format!(
                "src={} dst={} sport={} dport={} packets={} bytes={}",
                t.src, t.dst, t.sport, t.dport, t.packets, t.bytes
            )
        }
    };
    let mut s = format!(
        "{:<8} {:<2} {} ",
        c.protocol, c.protocol_number, c.timeout_s
    );
    if !c.state.is_empty() {
        s += c.state;
        s += " ";
    }
    s += &tuple(&c.original);
    s += " ";
    s += &tuple(&c.reply);
    s += &format!(" age={}s", c.age_s);
    if let Some(eni) = &c.eni {
        s += &format!(" eni={eni}");
    }
    if let Some(port) = c.eni_port {
        s += &format!(" eni_port={port}");
    }
    if let Some(vpc) = &c.vpc {
        s += &format!(" vpc={vpc}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpc_common::{v4_mapped, CT_DIR_ORIG};

    #[test]
    fn rows_show_both_tuples_in_host_order_and_icmp_as_type_and_id() {
        let s = |n: u64| n * 1_000_000_000;
        let key = CtKey {
            saddr: v4_mapped([198, 19, 0, 10]),
            daddr: "2001:db8::5"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
            sport: 1234u16.to_be(),
            dport: 8,
            proto: 1,
            ..Default::default()
        };
        let e = CtEntry {
            dir: CT_DIR_ORIG,
            created: s(10),
            last_seen: s(70),
            packets_orig: 3,
            bytes_orig: 252,
            twin: CtKey {
                saddr: key.daddr,
                daddr: key.saddr,
                sport: key.sport,
                dport: 0,
                proto: 1,
                ..Default::default()
            },
            ..Default::default()
        };
        let t = Timeouts::default();
        let rows = rows(&[(key, e)], &t, s(100), &Model::default());
        let c = &rows[0];
        assert_eq!((c.protocol, c.state, c.age_s), ("icmp", "", 90));
        assert_eq!(c.timeout_s, t.icmp.as_secs() - 30);
        assert_eq!(c.original.src.to_string(), "198.19.0.10");
        assert_eq!(c.original.dst.to_string(), "2001:db8::5");
        assert_eq!((&c.eni, c.eni_port), (&None, None));
        assert_eq!(
            line(c),
            format!(
                "icmp     1  {} src=198.19.0.10 dst=2001:db8::5 type=8 id=1234 packets=3 bytes=252 \
                 src=2001:db8::5 dst=198.19.0.10 type=0 id=1234 packets=0 bytes=0 age=90s",
                c.timeout_s
            )
        );
    }

    /// A function's connection through a NAT gateway: SNAT to the
    /// gateway's Elastic IP, and its ENI named by the claim it made there.
    #[test]
    fn a_function_connection_through_a_nat_gateway_names_its_eni_and_port() {
        let key = CtKey {
            saddr: v4_mapped([198, 19, 0, 10]),
            daddr: v4_mapped([203, 0, 113, 10]),
            sport: 40000u16.to_be(),
            dport: 443u16.to_be(),
            proto: 6,
            ..Default::default()
        };
        let e = CtEntry {
            dir: CT_DIR_ORIG,
            flags: CT_F_SNAT,
            nat_addr: v4_mapped([198, 51, 100, 10]),
            nat_port: 1024u16.to_be(),
            fn_eni: 3,
            fn_eni_port: 1500u16.to_be(),
            ..Default::default()
        };
        let eni = crate::model::HyperplaneEniSpec {
            index: 3,
            id: "eni-03".into(),
            subnet: "Private".into(),
            vpc: "Vpc".into(),
            groups: vec![],
            ip: "10.0.2.5".parse().unwrap(),
            functions: vec!["Fn".into()],
            ip6: None,
            scaled: false,
            account: None,
            available: false,
        };
        let m = Model {
            enis: vec![eni],
            ..Default::default()
        };
        let rows = rows(&[(key, e)], &Timeouts::default(), 0, &m);
        assert_eq!(
            (rows[0].eni.as_deref(), rows[0].eni_port),
            (Some("eni-03"), Some(1500))
        );
        assert!(line(&rows[0]).ends_with(" eni=eni-03 eni_port=1500"));
    }
}

//! Security groups: `AWS::EC2::SecurityGroup` and its standalone rules
//! (`AWS::EC2::SecurityGroupIngress`, `AWS::EC2::SecurityGroupEgress`),
//! with EC2's rule semantics, parsing and counting.
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{int_field, parse_v4_cidr, required_str, res_path, Builder, Model};
use crate::template::{ModelError, Result};

pub const SG: &str = "AWS::EC2::SecurityGroup";
pub const SG_INGRESS: &str = "AWS::EC2::SecurityGroupIngress";
pub const SG_EGRESS: &str = "AWS::EC2::SecurityGroupEgress";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// `-1`: every protocol, ports ignored.
    All,
    Number(u8),
}

impl Protocol {
    pub fn has_ports(self) -> bool {
        matches!(self, Protocol::Number(6 | 17))
    }
    pub fn is_icmp(self) -> bool {
        matches!(self, Protocol::Number(1 | 58))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    Cidr(IpNet),
    /// Members of a security group (their private addresses).
    Group(String),
    /// The CIDRs of a managed prefix list.
    PrefixList(String),
}

/// A security-group rule. For ICMP, `from_port` is the type and `to_port`
/// the code (`-1`: all); for protocols without ports both are ignored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rule {
    pub protocol: Protocol,
    pub from_port: i32,
    pub to_port: i32,
    pub peer: Peer,
}

impl Rule {
    pub fn allow_all(peer: Peer) -> Self {
        Rule {
            protocol: Protocol::All,
            from_port: -1,
            to_port: -1,
            peer,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecurityGroup {
    pub id: String,
    pub vpc: String,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
    pub is_default: bool,
    /// The participant account that created it in a shared VPC
    /// (`Metadata.Account`); `None`: the VPC owner's.
    #[serde(default)]
    pub account: Option<String>,
}

impl Model {
    /// Rules as AWS counts them against the quota, (IPv4, IPv6): a prefix
    /// list reference counts its `MaxEntries`.
    pub fn rule_weight(&self, rules: &[Rule]) -> (usize, usize) {
        let (mut v4, mut v6) = (0, 0);
        for r in rules {
            match &r.peer {
                Peer::Cidr(IpNet::V6(_)) => v6 += 1,
                Peer::PrefixList(pl) => match self.prefix_list(pl) {
                    Some(l) if l.ipv6 => v6 += l.max_entries,
                    Some(l) => v4 += l.max_entries,
                    None => v4 += 1,
                },
                _ => v4 += 1,
            }
        }
        (v4, v6)
    }
    pub fn group(&self, id: &str) -> Option<&SecurityGroup> {
        self.groups.iter().find(|g| g.id == id)
    }
    /// Private addresses of a group's members: hosts (every address of
    /// their interfaces) and Hyperplane ENIs.
    pub fn members(&self, group: &str) -> Vec<Ipv4Addr> {
        let hosts = self
            .hosts
            .iter()
            .filter(|h| h.groups.iter().any(|g| g == group))
            .flat_map(|h| h.ips());
        let enis = self
            .enis
            .iter()
            .filter(|e| e.groups.iter().any(|g| g == group))
            .map(|e| e.ip);
        hosts.chain(enis).collect()
    }
    /// IPv6 addresses of a group's members (a group reference matches
    /// both families of its members' addresses, as at AWS).
    pub fn members6(&self, group: &str) -> Vec<Ipv6Addr> {
        let hosts = self
            .hosts
            .iter()
            .filter(|h| h.groups.iter().any(|g| g == group))
            .filter_map(|h| h.ip6);
        let enis = self
            .enis
            .iter()
            .filter(|e| e.groups.iter().any(|g| g == group))
            .filter_map(|e| e.ip6);
        hosts.chain(enis).collect()
    }
}

/// `IpProtocol` as AWS accepts it: a name, a number, or `-1`.
pub fn parse_protocol(v: &Value, path: &str) -> Result<Protocol> {
    let s = match v {
        Value::String(s) => s.to_ascii_lowercase(),
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(ModelError::new(
                path,
                "is required (tcp, udp, icmp, icmpv6, a number, or -1)",
            ))
        }
    };
    Ok(match s.as_str() {
        "-1" | "all" => Protocol::All,
        "tcp" => Protocol::Number(6),
        "udp" => Protocol::Number(17),
        "icmp" => Protocol::Number(1),
        "icmpv6" => Protocol::Number(58),
        n => match n.parse::<u8>() {
            Ok(p) => Protocol::Number(p),
            Err(_) => {
                return Err(ModelError::new(
                    path,
                    format!("{s:?} is not a protocol (tcp, udp, icmp, icmpv6, 0-255, or -1)"),
                ))
            }
        },
    })
}

/// Parses one rule (`AWS::EC2::SecurityGroup{Ingress,Egress}` shape).
/// `ingress` picks the group-peer field name.
pub fn parse_rule(r: &Value, path: &str, ingress: bool) -> Result<Rule> {
    let protocol = parse_protocol(
        r.get("IpProtocol").unwrap_or(&Value::Null),
        &format!("{path}.IpProtocol"),
    )?;
    let from = int_field(
        r.get("FromPort").unwrap_or(&Value::Null),
        &format!("{path}.FromPort"),
    )?;
    let to = int_field(
        r.get("ToPort").unwrap_or(&Value::Null),
        &format!("{path}.ToPort"),
    )?;
    let (from_port, to_port) = match protocol {
        Protocol::All => (-1, -1),
        p if p.has_ports() => {
            let (Some(f), Some(t)) = (from, to) else {
                return Err(ModelError::new(
                    format!("{path}.FromPort"),
                    "FromPort and ToPort are required for tcp and udp",
                ));
            };
            if !(0..=65535).contains(&f) || !(0..=65535).contains(&t) || f > t {
                return Err(ModelError::new(
                    format!("{path}.FromPort"),
                    format!("invalid port range {f}-{t}: ports are 0-65535 and FromPort <= ToPort"),
                ));
            }
            (f as i32, t as i32)
        }
        p if p.is_icmp() => {
            let (t, c) = (from.unwrap_or(-1), to.unwrap_or(-1));
            if !(-1..=255).contains(&t) || !(-1..=255).contains(&c) {
                return Err(ModelError::new(
                    format!("{path}.FromPort"),
                    "ICMP type and code are -1 or 0-255",
                ));
            }
            if t == -1 && c != -1 {
                return Err(ModelError::new(
                    format!("{path}.ToPort"),
                    "ICMP type -1 (all) requires code -1",
                ));
            }
            (t as i32, c as i32)
        }
        _ => (-1, -1),
    };
    let group_field = if ingress {
        "SourceSecurityGroupId"
    } else {
        "DestinationSecurityGroupId"
    };
    let prefix_field = if ingress {
        "SourcePrefixListId"
    } else {
        "DestinationPrefixListId"
    };
    let mut peers = vec![];
    if let Some(p) = r.get(prefix_field).and_then(Value::as_str) {
        peers.push(Peer::PrefixList(p.to_string()));
    }
    if let Some(c) = r.get("CidrIp").and_then(Value::as_str) {
        let net = parse_v4_cidr(c, &format!("{path}.CidrIp"))?;
        peers.push(Peer::Cidr(IpNet::V4(net)));
    }
    if let Some(c) = r.get("CidrIpv6").and_then(Value::as_str) {
        let net: ipnet::Ipv6Net = c.parse().map_err(|_| {
            ModelError::new(
                format!("{path}.CidrIpv6"),
                format!("{c:?} is not an IPv6 CIDR block"),
            )
        })?;
        peers.push(Peer::Cidr(IpNet::V6(net.trunc())));
    }
    if let Some(g) = r.get(group_field).and_then(Value::as_str) {
        peers.push(Peer::Group(g.to_string()));
    }
    if peers.len() != 1 {
        return Err(ModelError::new(
            path,
            format!(
                "exactly one of CidrIp, CidrIpv6, {group_field}, {prefix_field} is required (found {})",
                peers.len()
            ),
        ));
    }
    Ok(Rule {
        protocol,
        from_port,
        to_port,
        peer: peers.remove(0),
    })
}

impl Builder<'_> {
    fn rules(&self, p: &Value, id: &str, field: &str, ingress: bool) -> Result<Vec<Rule>> {
        match p.get(field) {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, r)| parse_rule(r, &format!("{}.{field}[{i}]", res_path(id)), ingress))
                .collect(),
            Some(_) => Err(ModelError::new(
                format!("{}.{field}", res_path(id)),
                "must be a list of rules",
            )),
        }
    }

    pub(super) fn groups(&mut self) -> Result<()> {
        for res in self.of_type(SG) {
            let id = &res.logical_id;
            let p = self.props(res)?;
            required_str(&p, id, "GroupDescription")?;
            let vpc = self.vpc_ref(&p, id, "VpcId")?;
            let ingress = self.rules(&p, id, "SecurityGroupIngress", true)?;
            // A new group allows all outbound traffic until egress rules are given.
            // (And all IPv6 outbound too when the VPC has an IPv6 block.)
            let egress = match p.get("SecurityGroupEgress") {
                None => {
                    let mut all = vec![Rule::allow_all(Peer::Cidr(
                        "0.0.0.0/0".parse().expect("constant"),
                    ))];
                    if self.m.vpc(&vpc).expect("checked").ipv6_cidr.is_some() {
                        all.push(Rule::allow_all(Peer::Cidr(
                            "::/0".parse().expect("constant"),
                        )));
                    }
                    all
                }
                Some(_) => self.rules(&p, id, "SecurityGroupEgress", false)?,
            };
            self.attr(id, "GroupId", id.clone());
            self.attr(id, "VpcId", vpc.clone());
            let account = self.resource_account(res)?;
            self.m.groups.push(SecurityGroup {
                id: id.clone(),
                vpc,
                ingress,
                egress,
                is_default: false,
                account,
            });
        }
        Ok(())
    }

    pub(super) fn standalone_rules(&mut self) -> Result<()> {
        for (kind, ingress) in [(SG_INGRESS, true), (SG_EGRESS, false)] {
            for res in self.of_type(kind) {
                let id = &res.logical_id;
                let p = self.props(res)?;
                let gid = required_str(&p, id, "GroupId")?.to_string();
                let rule = parse_rule(&p, &res_path(id), ingress)?;
                let g = self
                    .m
                    .groups
                    .iter_mut()
                    .find(|g| g.id == gid)
                    .ok_or_else(|| {
                        ModelError::new(
                            format!("{}.GroupId", res_path(id)),
                            format!("{gid:?} is not a security group of this template"),
                        )
                    })?;
                if ingress {
                    g.ingress.push(rule)
                } else {
                    g.egress.push(rule)
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_fields_parse_as_aws_defines_them() {
        let r =
            |s: &str, ingress: bool| parse_rule(&serde_json::from_str(s).unwrap(), "R", ingress);
        let all = r(
            r#"{"IpProtocol": -1, "CidrIp": "0.0.0.0/0", "FromPort": 5, "ToPort": 6}"#,
            true,
        )
        .unwrap();
        assert_eq!(
            (all.protocol, all.from_port, all.to_port),
            (Protocol::All, -1, -1),
            "ports are ignored for -1"
        );
        let gre = r(
            r#"{"IpProtocol": "47", "CidrIp": "10.0.0.0/8", "FromPort": 5, "ToPort": 6}"#,
            true,
        )
        .unwrap();
        assert_eq!((gre.protocol, gre.from_port), (Protocol::Number(47), -1));
        let icmp = r(
            r#"{"IpProtocol": "icmp", "FromPort": 3, "ToPort": -1, "CidrIp": "10.0.0.0/8"}"#,
            true,
        )
        .unwrap();
        assert_eq!(
            (icmp.protocol, icmp.from_port, icmp.to_port),
            (Protocol::Number(1), 3, -1)
        );
        let v6 = r(
            r#"{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIpv6": "2001:db8::/32"}"#,
            false,
        )
        .unwrap();
        assert!(matches!(v6.peer, Peer::Cidr(IpNet::V6(_))));
        let sg = r(r#"{"IpProtocol": "udp", "FromPort": "53", "ToPort": "53", "DestinationSecurityGroupId": "X"}"#, false).unwrap();
        assert_eq!(sg.peer, Peer::Group("X".into()));
        // Errors name the field.
        for (rule, field) in [
            (
                r#"{"IpProtocol": "tcp", "FromPort": 10, "ToPort": 5, "CidrIp": "0.0.0.0/0"}"#,
                "R.FromPort",
            ),
            (
                r#"{"IpProtocol": "tcp", "CidrIp": "0.0.0.0/0"}"#,
                "R.FromPort",
            ),
            (
                r#"{"IpProtocol": "tcpp", "FromPort": 1, "ToPort": 1, "CidrIp": "0.0.0.0/0"}"#,
                "R.IpProtocol",
            ),
            (
                r#"{"IpProtocol": "icmp", "FromPort": -1, "ToPort": 3, "CidrIp": "0.0.0.0/0"}"#,
                "R.ToPort",
            ),
            (
                r#"{"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "CidrIp": "10.0.0.1/8"}"#,
                "R.CidrIp",
            ),
            (r#"{"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1}"#, "R"),
            (
                r#"{"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "CidrIp": "0.0.0.0/0", "SourceSecurityGroupId": "X"}"#,
                "R",
            ),
        ] {
            assert_eq!(r(rule, true).unwrap_err().path, field, "{rule}");
        }
    }
}

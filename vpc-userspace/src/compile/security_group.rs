//! Security groups to `SG_PREFIXES` / `SG_PORTS` entries: one policy per
//! distinct set of groups in use, its rules cut into address classes.
use std::collections::BTreeSet;

use vpc_common::{
    v4_mapped, SgPortKey, CLASS_GEN_SHIFT, DIR_EGRESS, DIR_INGRESS, ID_GEN_SHIFT, PROTO_ANY,
    SG_PORT_FIXED_BITS,
};

use super::{contains, decided, mapped, new_class, range_prefixes, Entries, Prefix};
use crate::model::{Model, Peer, Protocol, Rule};

/// `SG_PORTS` (protocol, port, port prefix bits) entries of one rule.
fn rule_ports(r: &Rule) -> Vec<(u8, u16, u32)> {
    match r.protocol {
        Protocol::All => vec![(PROTO_ANY, 0, 0)],
        Protocol::Number(p) if r.protocol.has_ports() => {
            range_prefixes(r.from_port as u16, r.to_port as u16)
                .into_iter()
                .map(|(v, b)| (p, v, b))
                .collect()
        }
        Protocol::Number(p) if r.protocol.is_icmp() => match (r.from_port, r.to_port) {
            (-1, _) => vec![(p, 0, 0)],
            (t, -1) => vec![(p, (t as u16) << 8, 8)],
            (t, c) => vec![(p, ((t as u16) << 8) | c as u16, 16)],
        },
        Protocol::Number(p) => vec![(p, 0, 0)],
    }
}

/// Compiles one direction of one policy: classes are the distinct rule
/// prefixes; a class allows the union of every rule whose prefix contains it
/// (CIDRs nest or are disjoint, so the longest match decides the class).
fn compile_direction(
    model: &Model,
    rules: &[Rule],
    policy: u32,
    dir: u32,
    next_class: &mut u32,
    out: &mut Entries,
) {
    let mut expanded: Vec<(Prefix, &Rule)> = vec![];
    for r in rules {
        match &r.peer {
            Peer::Cidr(net) => expanded.push((mapped(net), r)),
            Peer::PrefixList(id) => {
                for net in &model.prefix_list(id).expect("validated").cidrs {
                    expanded.push((mapped(net), r));
                }
            }
            Peer::Group(g) => {
                for ip in model.members(g) {
                    expanded.push(((false, v4_mapped(ip.octets()), 128), r));
                }
                for ip in model.members6(g) {
                    expanded.push(((true, ip.octets(), 128), r));
                }
            }
        }
    }
    let prefixes: BTreeSet<Prefix> = expanded.iter().map(|(p, _)| *p).collect();
    for prefix in prefixes {
        let class = new_class(&mut out.sg_prefixes, next_class, policy, dir, &prefix);
        let mut ports = BTreeSet::new();
        for (p, r) in &expanded {
            if contains(p, &prefix) {
                ports.extend(rule_ports(r));
            }
        }
        // An all-protocols rule allows everything: no port lookup needed.
        if ports.contains(&(PROTO_ANY, 0, 0)) {
            decided(&mut out.sg_prefixes, true);
            continue;
        }
        for (proto, port, bits) in ports {
            out.sg_ports.push((
                SG_PORT_FIXED_BITS + bits,
                SgPortKey {
                    class: class.to_be_bytes(),
                    proto,
                    port: port.to_be_bytes(),
                    _pad: 0,
                },
            ));
        }
    }
}

/// Policy entries for every distinct group set in use (hosts and ENIs).
pub fn compile_policies(model: &Model, gen: u32) -> Entries {
    let mut out = Entries {
        gen,
        ..Entries::default()
    };
    let sets: BTreeSet<Vec<String>> = model
        .hosts
        .iter()
        .map(|h| h.groups.clone())
        .chain(model.enis.iter().map(|e| e.groups.clone()))
        .collect();
    let mut next_class = (gen << CLASS_GEN_SHIFT) + 1;
    for (i, set) in sets.into_iter().enumerate() {
        let policy = (gen << ID_GEN_SHIFT) | (i as u32 + 1);
        let mut ingress = vec![];
        let mut egress = vec![];
        for g in &set {
            let sg = model.group(g).expect("validated");
            ingress.extend(sg.ingress.iter().cloned());
            egress.extend(sg.egress.iter().cloned());
        }
        compile_direction(
            model,
            &ingress,
            policy,
            DIR_INGRESS,
            &mut next_class,
            &mut out,
        );
        compile_direction(
            model,
            &egress,
            policy,
            DIR_EGRESS,
            &mut next_class,
            &mut out,
        );
        out.policies.insert(set, policy);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::compile::tests::lpm_decides;

    fn lpm_allows(
        e: &Entries,
        policy: u32,
        dir: u32,
        v6: bool,
        addr: [u8; 16],
        proto: u8,
        port: u16,
    ) -> bool {
        let ports: Vec<_> = e.sg_ports.iter().map(|(l, k)| (*l, *k, 1u8)).collect();
        lpm_decides(&e.sg_prefixes, &ports, policy, dir, v6, addr, proto, port)
    }

    /// AWS's semantics, directly: any rule of any group matches.
    fn direct_allows(
        m: &Model,
        groups: &[String],
        ingress: bool,
        v6: bool,
        ip: std::net::IpAddr,
        proto: u8,
        port: u16,
    ) -> bool {
        groups
            .iter()
            .flat_map(|g| {
                let sg = m.group(g).unwrap();
                if ingress {
                    sg.ingress.clone()
                } else {
                    sg.egress.clone()
                }
            })
            .any(|r| {
                let peer = match &r.peer {
                    Peer::Cidr(n) => n.contains(&ip),
                    Peer::Group(g) => {
                        m.members(g).iter().any(|a| std::net::IpAddr::V4(*a) == ip)
                            || m.members6(g).iter().any(|a| std::net::IpAddr::V6(*a) == ip)
                    }
                    Peer::PrefixList(id) => m
                        .prefix_list(id)
                        .unwrap()
                        .cidrs
                        .iter()
                        .any(|c| c.contains(&ip)),
                };
                let fam = ip.is_ipv6() == v6;
                let proto_ok = match r.protocol {
                    Protocol::All => true,
                    Protocol::Number(p) => p == proto,
                };
                let port_ok = match r.protocol {
                    Protocol::All => true,
                    p if p.has_ports() => (r.from_port..=r.to_port).contains(&(port as i32)),
                    p if p.is_icmp() => {
                        let (t, c) = ((port >> 8) as i32, (port & 0xff) as i32);
                        r.from_port == -1
                            || (r.from_port == t && (r.to_port == -1 || r.to_port == c))
                    }
                    _ => true,
                };
                peer && fam && proto_ok && port_ok
            })
    }

    #[test]
    fn compiled_groups_agree_with_the_rules_everywhere() {
        let t = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  S: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  A:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: a
      VpcId: !Ref Vpc
      SecurityGroupIngress:
        - {IpProtocol: tcp, FromPort: 1000, ToPort: 2000, CidrIp: 10.0.0.0/16}
        - {IpProtocol: tcp, FromPort: 22, ToPort: 22, CidrIp: 10.0.1.0/24}
        - {IpProtocol: udp, FromPort: 53, ToPort: 53, CidrIp: 0.0.0.0/0}
        - {IpProtocol: icmp, FromPort: 8, ToPort: -1, CidrIp: 10.0.1.128/25}
        - {IpProtocol: icmp, FromPort: 3, ToPort: 4, CidrIp: 0.0.0.0/0}
        - {IpProtocol: "47", CidrIp: 10.0.1.7/32}
        - {IpProtocol: tcp, FromPort: 443, ToPort: 443, CidrIpv6: "fd00::/8"}
        - {IpProtocol: icmpv6, FromPort: -1, ToPort: -1, CidrIpv6: "::/0"}
        - {IpProtocol: tcp, FromPort: 5000, ToPort: 5001, SourceSecurityGroupId: !Ref B}
        - {IpProtocol: tcp, FromPort: 2000, ToPort: 2001, SourcePrefixListId: !Ref Pl}
      SecurityGroupEgress:
        - {IpProtocol: tcp, FromPort: 0, ToPort: 65535, CidrIp: 10.0.0.0/8}
        - {IpProtocol: -1, CidrIp: 10.0.1.0/28}
  B:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: b
      VpcId: !Ref Vpc
      SecurityGroupIngress:
        - {IpProtocol: -1, CidrIp: 10.0.1.64/26}
        - {IpProtocol: udp, FromPort: 100, ToPort: 65535, CidrIp: 10.0.0.0/16}
  H1: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref S, PrivateIpAddress: 10.0.1.9, SecurityGroupIds: [!Ref A, !Ref B]}}
  H2: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref S, PrivateIpAddress: 10.0.1.200, SecurityGroupIds: [!Ref B]}}
  H3: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref S, PrivateIpAddress: 10.0.1.10, SecurityGroupIds: [!Ref A]}}
  Pl:
    Type: AWS::EC2::PrefixList
    Properties: {PrefixListName: pl, AddressFamily: IPv4, MaxEntries: 5, Entries: [{Cidr: 10.0.1.96/27}, {Cidr: 10.255.0.0/16}]}
"#;
        let m = crate::model::build(t, &HashMap::new(), "s").unwrap();
        let e = compile_policies(&m, 0);
        // Addresses around every rule edge, plus a deterministic spray.
        let mut addrs: Vec<std::net::IpAddr> = [
            "10.0.1.9",
            "10.0.1.200",
            "10.0.1.10",
            "10.0.1.7",
            "10.0.1.8",
            "10.0.1.15",
            "10.0.1.16",
            "10.0.1.63",
            "10.0.1.64",
            "10.0.1.127",
            "10.0.1.128",
            "10.0.0.1",
            "10.1.0.1",
            "10.255.255.255",
            "11.0.0.1",
            "0.0.0.0",
            "fd00::1",
            "fe80::1",
            "::1",
            "::ffff:10.0.1.9",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200 {
            let r = next();
            addrs.push(std::net::IpAddr::V4(std::net::Ipv4Addr::from(
                0x0a00_0000 | (r as u32 & 0x0001_ffff),
            )));
        }
        let ports: Vec<u16> = [
            0, 21, 22, 23, 52, 53, 54, 99, 100, 443, 999, 1000, 1500, 2000, 2001, 4999, 5000, 5001,
            5002, 65535, 0x0800, 0x0801, 0x0300, 0x0304, 0x0305, 0x0400, 0x0401, 0x0500,
        ]
        .to_vec();
        let mut checked = 0;
        for (groups, policy) in &e.policies {
            for ingress in [true, false] {
                for a in &addrs {
                    let v6 = a.is_ipv6();
                    let key = match a {
                        std::net::IpAddr::V4(v) => v4_mapped(v.octets()),
                        std::net::IpAddr::V6(v) => v.octets(),
                    };
                    for proto in [6u8, 17, 1, 58, 47, 50] {
                        for &port in &ports {
                            let dir = if ingress { DIR_INGRESS } else { DIR_EGRESS };
                            let want = direct_allows(&m, groups, ingress, v6, *a, proto, port);
                            let got = lpm_allows(&e, *policy, dir, v6, key, proto, port);
                            assert_eq!(
                                got, want,
                                "groups {groups:?} ingress={ingress} {a} proto {proto} port {port}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 50_000, "{checked}");
    }
}

//! Network ACLs to `ACL_PREFIXES` / `ACL_PORTS` entries. First match is
//! resolved here, so the datapath does the same two or three LPM lookups as
//! for security groups: for each peer class (the longest rule prefix that
//! contains the address), the port space of every protocol the applicable
//! rules name is cut into segments, each labelled with the action of the
//! lowest-numbered rule that matches it, or deny.
use std::collections::BTreeSet;

use vpc_common::{
    subnet_acl_index, SgPortKey, CLASS_GEN_SHIFT, DIR_EGRESS, DIR_INGRESS, ID_GEN_SHIFT, PROTO_ANY,
    SG_PORT_FIXED_BITS,
};

use super::{contains, mapped, new_class, range_prefixes, Entries, Prefix};
use crate::model::{AclEntry, Model, Protocol};

/// Inclusive "port" interval an entry covers for `proto` (`None`: no match).
fn span(e: &AclEntry, proto: u8) -> Option<(u32, u32)> {
    match e.protocol {
        Protocol::All => Some((0, 65535)),
        Protocol::Number(p) if p != proto => None,
        p if p.has_ports() => Some((e.from_port as u32, e.to_port as u32)),
        p if p.is_icmp() => Some(match (e.from_port, e.to_port) {
            (-1, _) => (0, 65535),
            (t, -1) => ((t as u32) << 8, ((t as u32) << 8) | 0xff),
            (t, c) => (((t as u32) << 8) | c as u32, ((t as u32) << 8) | c as u32),
        }),
        _ => Some((0, 65535)),
    }
}

/// (start, end, allow) segments covering 0-65535 for `proto`, first match.
fn segments(rules: &[&AclEntry], proto: u8) -> Vec<(u32, u32, bool)> {
    let mut cuts: BTreeSet<u32> = [0, 65536].into();
    for r in rules {
        if let Some((lo, hi)) = span(r, proto) {
            cuts.insert(lo);
            cuts.insert(hi + 1);
        }
    }
    let cuts: Vec<u32> = cuts.into_iter().collect();
    let mut out: Vec<(u32, u32, bool)> = vec![];
    for w in cuts.windows(2) {
        let (lo, hi) = (w[0], w[1] - 1);
        let allow = rules
            .iter()
            .find(|r| span(r, proto).is_some_and(|(a, b)| a <= lo && hi <= b))
            .is_some_and(|r| r.allow);
        match out.last_mut() {
            Some(last) if last.2 == allow && last.1 + 1 == lo => last.1 = hi,
            _ => out.push((lo, hi, allow)),
        }
    }
    out
}

fn compile_direction(
    rules: &[&AclEntry],
    acl: u32,
    dir: u32,
    next_class: &mut u32,
    out: &mut Entries,
) {
    let prefixes: BTreeSet<Prefix> = rules.iter().map(|r| mapped(&r.cidr)).collect();
    for prefix in prefixes {
        let class = new_class(&mut out.acl_prefixes, next_class, acl, dir, &prefix);
        // Rule order is kept: `rules` is sorted by rule number.
        let applicable: Vec<&AclEntry> = rules
            .iter()
            .copied()
            .filter(|r| contains(&mapped(&r.cidr), &prefix))
            .collect();
        let named: BTreeSet<u8> = applicable
            .iter()
            .filter_map(|r| match r.protocol {
                Protocol::Number(p) => Some(p),
                Protocol::All => None,
            })
            .collect();
        // Protocols no rule names: only `-1` rules can match them.
        let any = applicable
            .iter()
            .find(|r| r.protocol == Protocol::All)
            .is_some_and(|r| r.allow);
        if named.is_empty() {
            super::decided(&mut out.acl_prefixes, any);
            continue;
        }
        let mut push = |proto: u8, lo: u32, hi: u32, allow: bool| {
            for (port, bits) in range_prefixes(lo as u16, hi as u16) {
                out.acl_ports.push((
                    SG_PORT_FIXED_BITS + bits,
                    SgPortKey {
                        class: class.to_be_bytes(),
                        proto,
                        port: port.to_be_bytes(),
                        _pad: 0,
                    },
                    allow as u8,
                ));
            }
        };
        for proto in named {
            for (lo, hi, allow) in segments(&applicable, proto) {
                push(proto, lo, hi, allow);
            }
        }
        push(PROTO_ANY, 0, 65535, any);
    }
}

/// Datapath ids: a VPC's default ACL as AWS creates it (allow all) is 0,
/// never looked up; one given entries of its own is compiled as any other.
pub fn compile_acls(model: &Model, gen: u32, out: &mut Entries) {
    let mut next_class = (gen << CLASS_GEN_SHIFT) + 1;
    let mut next_id = (gen << ID_GEN_SHIFT) + 1;
    for acl in &model.acls {
        let allow_all = |e: &AclEntry| {
            e.cidr.prefix_len() == 0
                && *e
                    == AclEntry {
                        cidr: e.cidr,
                        ..AclEntry::allow_all(e.rule_number, e.egress)
                    }
        };
        if acl.is_default && acl.entries.iter().all(allow_all) {
            out.acls.insert(acl.id.clone(), 0);
            continue;
        }
        let id = next_id;
        next_id += 1;
        out.acls.insert(acl.id.clone(), id);
        for (egress, dir) in [(false, DIR_INGRESS), (true, DIR_EGRESS)] {
            let rules: Vec<&AclEntry> = acl.entries.iter().filter(|e| e.egress == egress).collect();
            compile_direction(&rules, id, dir, &mut next_class, out);
        }
    }
}

/// `SUBNET_ACLS`: (subnet index, datapath ACL id) of each subnet.
pub(super) fn subnet_acls(model: &Model, gen: u32, out: &mut Entries) {
    for sn in &model.subnets {
        out.subnet_acls
            .push((subnet_acl_index(gen, sn.index), out.acls[&sn.acl]));
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, net::IpAddr};

    use super::*;
    use crate::compile::{compile_policies, tests::lpm_decides};

    /// AWS's rule, directly: the lowest-numbered matching entry decides.
    fn first_match(m: &Model, acl: &str, egress: bool, peer: IpAddr, proto: u8, port: u16) -> bool {
        m.acl(acl)
            .unwrap()
            .entries
            .iter()
            .filter(|e| e.egress == egress)
            .find(|e| {
                e.cidr.contains(&peer)
                    && span(e, proto).is_some_and(|(lo, hi)| (lo..=hi).contains(&(port as u32)))
            })
            .is_some_and(|e| e.allow)
    }

    #[test]
    fn compiled_acls_agree_with_first_match_everywhere() {
        let t = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  Acl: {Type: AWS::EC2::NetworkAcl, Properties: {VpcId: !Ref Vpc}}
  E1: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref Acl, RuleNumber: 10, Protocol: 6, RuleAction: deny, CidrBlock: 10.0.1.0/24, PortRange: {From: 22, To: 22}}}
  E2: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref Acl, RuleNumber: 20, Protocol: 6, RuleAction: allow, CidrBlock: 10.0.0.0/16, PortRange: {From: 1, To: 1024}}}
  E3: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref Acl, RuleNumber: 30, Protocol: -1, RuleAction: deny, CidrBlock: 10.0.2.0/25}}
  E4: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref Acl, RuleNumber: 40, Protocol: 17, RuleAction: allow, CidrBlock: 0.0.0.0/0, PortRange: {From: 1024, To: 65535}}}
  E5: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref Acl, RuleNumber: 50, Protocol: 1, RuleAction: allow, CidrBlock: 10.0.0.0/8, Icmp: {Type: 8, Code: -1}}}
  E6: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref Acl, RuleNumber: 60, Protocol: -1, RuleAction: allow, CidrBlock: 10.0.0.0/16}}
  E7: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref Acl, RuleNumber: 5, Protocol: 6, RuleAction: allow, Egress: true, CidrBlock: 0.0.0.0/0, PortRange: {From: 443, To: 443}}}
  E8: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref Acl, RuleNumber: 6, Protocol: 6, RuleAction: deny, Egress: true, CidrBlock: 10.0.0.0/8, PortRange: {From: 0, To: 65535}}}
  E9: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref Acl, RuleNumber: 7, Protocol: -1, RuleAction: allow, Egress: true, CidrBlock: 0.0.0.0/0}}
  E10: {Type: AWS::EC2::NetworkAclEntry, Properties: {NetworkAclId: !Ref Acl, RuleNumber: 70, Protocol: 6, RuleAction: allow, Ipv6CidrBlock: "fd00::/8", PortRange: {From: 80, To: 80}}}
"#;
        let m = crate::model::build(t, &HashMap::new(), "s").unwrap();
        let mut e = compile_policies(&m, 1);
        compile_acls(&m, 1, &mut e);
        let id = e.acls["Acl"];
        assert_ne!(id, 0);
        let addrs = [
            "10.0.1.5",
            "10.0.2.5",
            "10.0.2.200",
            "10.0.3.1",
            "10.1.0.1",
            "11.0.0.1",
            "fd00::1",
            "fe80::1",
        ];
        let ports = [
            0u16, 1, 21, 22, 23, 80, 443, 1023, 1024, 1025, 5432, 65535, 0x0800, 0x0805, 0x0900,
            0x0300,
        ];
        let mut n = 0;
        for egress in [false, true] {
            for a in addrs {
                let ip: IpAddr = a.parse().unwrap();
                let key = match ip {
                    IpAddr::V4(v) => vpc_common::v4_mapped(v.octets()),
                    IpAddr::V6(v) => v.octets(),
                };
                for proto in [6u8, 17, 1, 58, 47] {
                    for port in ports {
                        let dir = if egress { DIR_EGRESS } else { DIR_INGRESS };
                        let want = first_match(&m, "Acl", egress, ip, proto, port);
                        let got = lpm_decides(
                            &e.acl_prefixes,
                            &e.acl_ports,
                            id,
                            dir,
                            ip.is_ipv6(),
                            key,
                            proto,
                            port,
                        );
                        assert_eq!(got, want, "egress={egress} {a} proto {proto} port {port}");
                        n += 1;
                    }
                }
            }
        }
        assert!(n > 1000);
    }
}

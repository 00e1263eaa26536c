//! Network ACLs to `ACL_PREFIXES` / `ACL_PORTS` entries. First match is
//! resolved here, so the datapath does the same two or three LPM lookups as
//! for security groups: for each peer class (the longest rule prefix that
//! contains the address), the port space of every protocol the applicable
//! rules name is cut into segments, each labelled with the action of the
//! lowest-numbered rule that matches it, or deny.
use std::collections::BTreeSet;

use vpc_common::{
    SgPortKey, SgPrefixKey, DIR_EGRESS, DIR_INGRESS, PROTO_ANY, SG_PORT_FIXED_BITS,
    SG_PREFIX_FIXED_BITS,
};

use super::{contains, mapped, policy_dir, range_prefixes, Entries, Prefix};
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
        let class = *next_class;
        *next_class += 1;
        out.acl_prefixes.push((
            SG_PREFIX_FIXED_BITS + prefix.2,
            SgPrefixKey {
                policy_dir: policy_dir(acl, prefix.0, dir),
                addr: prefix.1,
            },
            class,
        ));
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
        // Protocols no rule names: only `-1` rules can match them.
        let any = applicable
            .iter()
            .find(|r| r.protocol == Protocol::All)
            .is_some_and(|r| r.allow);
        push(PROTO_ANY, 0, 65535, any);
    }
}

/// Datapath ids: a VPC's default ACL (allow all) is 0, never looked up.
pub fn compile_acls(model: &Model, out: &mut Entries) {
    let mut next_class = 1;
    let mut next_id = 1;
    for acl in &model.acls {
        if acl.is_default {
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

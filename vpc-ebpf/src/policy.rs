//! Security groups and network ACLs, each decided in two or three LPM
//! lookups whatever the rule count: (policy, family, direction, peer) ->
//! class, then (class, protocol, port) -> allow or deny. And the checks
//! built on them: a new connection's (`admit`), the ACLs at a subnet
//! boundary (`boundary`, `acl`).
use aya_ebpf::maps::lpm_trie::{Key, LpmTrie};
use vpc_common::{
    for_gen, kind, subnet_acl_index, DropReason, Endpoint, SgPortKey, SgPrefixKey, CLASS_ALLOW,
    CLASS_DECIDED, DIR_EGRESS, DIR_INGRESS, PROTO_ANY, SG_PORT_FIXED_BITS, SG_PREFIX_FIXED_BITS,
};

use crate::{
    maps::{ACL_PORTS, ACL_PREFIXES, SG_PORTS, SG_PREFIXES, SUBNET_ACLS},
    parse::Packet,
};

/// An exact-protocol entry decides; otherwise the all-protocols entry;
/// otherwise deny. (Compiled ACLs cover every port of each protocol they
/// name, so a deny there is never overridden by the all-protocols entry.)
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn decide(
    prefixes: &LpmTrie<SgPrefixKey, u32>,
    ports: &LpmTrie<SgPortKey, u8>,
    id: u32,
    dir: u32,
    v6: bool,
    peer: &[u8; 16],
    proto: u8,
    port: u16,
) -> bool {
    let pk = Key::new(
        SG_PREFIX_FIXED_BITS + 128,
        SgPrefixKey {
            policy_dir: ((id << 2) | ((v6 as u32) << 1) | dir).to_be_bytes(),
            addr: *peer,
        },
    );
    let class = match prefixes.get(&pk) {
        Some(c) if *c & CLASS_DECIDED != 0 => return *c & CLASS_ALLOW != 0,
        Some(c) => c.to_be_bytes(),
        None => return false,
    };
    let mut k = Key::new(
        SG_PORT_FIXED_BITS + 16,
        SgPortKey {
            class,
            proto,
            port: port.to_be_bytes(),
            _pad: 0,
        },
    );
    if let Some(v) = ports.get(&k) {
        return *v != 0;
    }
    k.data.proto = PROTO_ANY;
    matches!(ports.get(&k), Some(v) if *v != 0)
}

/// Security groups: allow rules only, default deny.
#[inline(always)]
pub fn allowed(policy: u32, dir: u32, v6: bool, peer: &[u8; 16], proto: u8, port: u16) -> bool {
    decide(&SG_PREFIXES, &SG_PORTS, policy, dir, v6, peer, proto, port)
}

/// Network ACLs: first match by rule number, final deny.
#[inline(always)]
pub fn acl_allows(acl: u32, dir: u32, v6: bool, peer: &[u8; 16], proto: u8, port: u16) -> bool {
    decide(&ACL_PREFIXES, &ACL_PORTS, acl, dir, v6, peer, proto, port)
}

/// Security group rules of `policy` (one generation's) in direction `dir`,
/// toward (out) or from (in) `peer`.
#[inline(always)]
pub fn groups(
    policy: u32,
    dir: u32,
    v6: bool,
    peer: &[u8; 16],
    proto: u8,
    port: u16,
) -> Result<(), DropReason> {
    if allowed(policy, dir, v6, peer, proto, port) {
        return Ok(());
    }
    Err(if dir == DIR_EGRESS {
        DropReason::SgEgressDenied
    } else {
        DropReason::SgIngressDenied
    })
}

/// The network ACL of subnet index `subnet` in generation `gen` (0: none,
/// for the internet, or the default ACL, which allows everything).
#[inline(always)]
pub fn subnet_acl(gen: u32, subnet: u32) -> u32 {
    SUBNET_ACLS
        .get(subnet_acl_index(gen, subnet))
        .copied()
        .unwrap_or(0)
}

/// One ACL check: subnet `subnet`'s ACL in direction `dir` toward or from
/// `peer` on `port`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn acl(
    gen: u32,
    subnet: u32,
    dir: u32,
    v6: bool,
    peer: &[u8; 16],
    proto: u8,
    port: u16,
) -> Result<(), DropReason> {
    let a = subnet_acl(gen, subnet);
    if a == 0 || acl_allows(a, dir, v6, peer, proto, port) {
        return Ok(());
    }
    Err(if dir == DIR_EGRESS {
        DropReason::NaclEgressDenied
    } else {
        DropReason::NaclIngressDenied
    })
}

/// Network ACLs at a subnet boundary: the ACL of the subnet the packet
/// leaves (outbound rules, peer = destination), then the one it enters
/// (inbound rules, peer = source). Inside one subnet they do not apply.
/// Sides are subnet indexes (0 allows everything and is not looked up).
#[inline(always)]
pub fn boundary(
    p: &Packet,
    gen: u32,
    src: u32,
    dst: u32,
    src_addr: &[u8; 16],
    dst_addr: &[u8; 16],
) -> Result<(), DropReason> {
    if src == dst {
        return Ok(());
    }
    // A closure rather than `subnet_acl`: with it LLVM reads the packet's
    // fields again after each lookup instead of keeping one in a stack slot
    // across it, which keeps `hyperplane::new_flow` at 224 bytes, not 232,
    // on the deepest chain (bench_router, route_packet, new_flow,
    // claim_nat_port: 496 of the verifier's 512 bytes).
    let acl_of = |subnet: u32| {
        SUBNET_ACLS
            .get(subnet_acl_index(gen, subnet))
            .copied()
            .unwrap_or(0)
    };
    let port = p.policy_port();
    let out = acl_of(src);
    if out != 0 && !acl_allows(out, DIR_EGRESS, p.v6, dst_addr, p.proto, port) {
        return Err(DropReason::NaclEgressDenied);
    }
    let inn = acl_of(dst);
    if inn != 0 && !acl_allows(inn, DIR_INGRESS, p.v6, src_addr, p.proto, port) {
        return Err(DropReason::NaclIngressDenied);
    }
    Ok(())
}

/// A new connection's checks, in AWS's order: the sender's outbound group
/// rules, the ACLs at the subnet boundary, the receiver's inbound group rules
/// (which see `src`: the sender's address after any NAT). `from` is the
/// sender's subnet index. One generation read serves every check.
#[inline(always)]
pub fn admit(
    p: &Packet,
    epoch: u32,
    sender: &[u32; 2],
    from: u32,
    receiver: &Endpoint,
    src: &[u8; 16],
) -> Result<(), DropReason> {
    let gen = epoch & 1;
    let port = p.policy_port();
    groups(
        for_gen(sender, gen),
        DIR_EGRESS,
        p.v6,
        &p.daddr,
        p.proto,
        port,
    )?;
    boundary(p, gen, from, receiver.subnet, src, &p.daddr)?;
    // The internet and a service behind a gateway endpoint have no groups.
    if receiver.kind == kind::INTERNET_HOST || receiver.kind == kind::AWS_SERVICE {
        return Ok(());
    }
    let inbound = for_gen(&receiver.policy, gen);
    groups(inbound, DIR_INGRESS, p.v6, src, p.proto, port)
}

//! Security groups and network ACLs, each decided in two or three LPM
//! lookups whatever the rule count: (policy, family, direction, peer) ->
//! class, then (class, protocol, port) -> allow or deny.
use aya_ebpf::maps::lpm_trie::{Key, LpmTrie};
use vpc_common::{
    SgPortKey, SgPrefixKey, CLASS_ALLOW, CLASS_DECIDED, PROTO_ANY, SG_PORT_FIXED_BITS,
    SG_PREFIX_FIXED_BITS,
};

use crate::maps::{ACL_PORTS, ACL_PREFIXES, SG_PORTS, SG_PREFIXES};

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

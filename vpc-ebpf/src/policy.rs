//! Security-group evaluation in two LPM lookups, whatever the rule count:
//! (policy, direction, peer) -> class, then (class, protocol, port) -> allow.
use aya_ebpf::maps::lpm_trie::Key;
use vpc_common::{SgPortKey, SgPrefixKey, PROTO_ANY, SG_PORT_FIXED_BITS, SG_PREFIX_FIXED_BITS};

use crate::maps::{SG_PORTS, SG_PREFIXES};

#[inline(always)]
pub fn allowed(policy: u32, dir: u32, v6: bool, peer: &[u8; 16], proto: u8, port: u16) -> bool {
    let pk = Key::new(
        SG_PREFIX_FIXED_BITS + 128,
        SgPrefixKey {
            policy_dir: ((policy << 2) | ((v6 as u32) << 1) | dir).to_be_bytes(),
            addr: *peer,
        },
    );
    let class = match SG_PREFIXES.get(&pk) {
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
    if SG_PORTS.get(&k).is_some() {
        return true;
    }
    k.data.proto = PROTO_ANY;
    SG_PORTS.get(&k).is_some()
}

//! Security groups and network ACLs: the prefix and port tries' keys.

/// A prefix-trie value with this bit set is a verdict, not a class: every
/// protocol and port decides the same (an allow-all group rule, an ACL whose
/// applicable rules are all `-1`), so the port lookup is skipped.
pub const CLASS_DECIDED: u32 = 1 << 31;
/// With `CLASS_DECIDED`: allow (else deny).
pub const CLASS_ALLOW: u32 = 1 << 30;

/// `SG_PORTS` protocol value meaning "all protocols" (`IpProtocol: -1`).
/// 255 is IANA-reserved, so no real packet carries it.
pub const PROTO_ANY: u8 = 255;

/// Security-group direction bit in [`SgPrefixKey::policy_dir`].
pub const DIR_INGRESS: u32 = 0;
pub const DIR_EGRESS: u32 = 1;

/// `SG_PREFIXES` / `ACL_PREFIXES` LPM key: (policy or ACL, direction, peer
/// address) -> peer class.
/// Rule CIDRs nest or are disjoint, so the longest matching rule CIDR fixes
/// the set of rules whose peer contains the address: that set is the class.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
/// This is the trie key's data; the prefix length sits in front of it
/// (aya's `lpm_trie::Key`, host order).
pub struct SgPrefixKey {
    /// `(policy << 2) | (is_ipv6 << 1) | dir`, big-endian so the trie
    /// compares it as bits. The family bit keeps `::/0` from matching IPv4.
    pub policy_dir: [u8; 4],
    pub addr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<SgPrefixKey>() == 20);
pub const SG_PREFIX_FIXED_BITS: u32 = 32;

/// `SG_PORTS` / `ACL_PORTS` LPM key: (class, protocol, port prefix) -> 1
/// allow, 0 deny. Security groups only store allows.
/// For ICMP the "port" is `type << 8 | code`.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SgPortKey {
    /// Big-endian class id.
    pub class: [u8; 4],
    pub proto: u8,
    /// Big-endian port.
    pub port: [u8; 2],
    pub _pad: u8,
}
const _: () = assert!(core::mem::size_of::<SgPortKey>() == 8);
/// Bits of class + protocol, always part of an `SG_PORTS` prefix.
pub const SG_PORT_FIXED_BITS: u32 = 40;

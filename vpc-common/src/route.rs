//! Route tables: the `ROUTES` trie's key and targets.

/// `ROUTES` LPM key: (route table, family, destination prefix) -> target.
/// The table id carries its policy generation (`ID_GEN_SHIFT`), so a route
/// change is switched on with the rest of the policy.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteKey {
    /// `(table << 1) | is_ipv6`, big-endian so the trie compares it as bits.
    pub table_family: [u8; 4],
    pub addr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<RouteKey>() == 20);
/// Bits of table + family, always part of a `ROUTES` prefix.
pub const ROUTE_FIXED_BITS: u32 = 32;

/// What a route sends to (`RouteTarget::kind`).
pub mod route_kind {
    /// The VPC's own CIDR: delivered to the endpoint owning the address.
    pub const LOCAL: u8 = 1;
    /// The target is gone: dropped (`route_blackhole`).
    pub const BLACKHOLE: u8 = 2;
    /// An internet gateway attached to the VPC (`RouteTarget::id`).
    pub const INTERNET_GATEWAY: u8 = 3;
    /// A NAT gateway (`RouteTarget::id`: its `ENIS` id).
    pub const NAT_GATEWAY: u8 = 4;
    /// An egress-only internet gateway (IPv6 only; `RouteTarget::id`):
    /// out and replies, nothing opened from the internet.
    pub const EGRESS_ONLY_INTERNET_GATEWAY: u8 = 5;
    /// A gateway endpoint (S3, DynamoDB): its service's managed prefix
    /// list, to the simulated service, no NAT (`RouteTarget::id`: the
    /// endpoint's 1-based index).
    pub const GATEWAY_ENDPOINT: u8 = 6;
    /// An instance's or interface's ENI, a middlebox: the packet goes to it
    /// unchanged (`RouteTarget::id`: its IPv4 address, the octets in
    /// memory order, so `id.to_ne_bytes()` are the octets).
    pub const NETWORK_INTERFACE: u8 = 7;
}

/// `ROUTES` value.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteTarget {
    pub kind: u8,
    pub _pad: [u8; 3],
    /// The gateway's datapath id (0 for local and blackhole routes).
    pub id: u32,
}
const _: () = assert!(core::mem::size_of::<RouteTarget>() == 8);

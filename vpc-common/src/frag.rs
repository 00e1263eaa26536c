//! IPv4 fragments through NAT gateways.

use crate::conntrack::CtKey;

/// `FRAGS` key: an IPv4 datagram's fragments, by (source, destination,
/// identification, protocol), as reassembly tells them apart (RFC 791).
/// Addresses and identification as on the wire; `space`: the addresses'
/// space (`CtKey::space`), as separate VPCs may overlap.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub saddr: u32,
    pub daddr: u32,
    pub id: u16,
    pub proto: u8,
    pub _pad: u8,
    pub space: u32,
}
const _: () = assert!(core::mem::size_of::<FragKey>() == 16);
/// Datagrams in flight through NAT gateways whose first fragment was seen
/// (LRU: a datagram's later fragments follow its first within moments).
pub const MAX_FRAGS: u32 = 16_384;
/// A datagram's fragments pass for this long after its first (ns; Linux's
/// `ipfrag_time`, 30 s, after which a receiver has dropped it anyway).
pub const FRAG_TIMEOUT_NS: u64 = 30_000_000_000;

/// `FRAGS` value: the connection direction a datagram (by its key before
/// translation) belongs to, and when its first fragment passed (`first`,
/// datapath clock, ns).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct FragEntry {
    pub ct: CtKey,
    pub first: u64,
}
const _: () = assert!(core::mem::size_of::<FragEntry>() == 48);

/// `FRAG_IDS` value: the datagram (its `FRAGS` key and `first`) holding a
/// translated (source, destination, identification, protocol): two
/// datagrams in flight must not share one, or the receiver mixes them.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct FragClaim {
    pub owner: FragKey,
    pub first: u64,
}
const _: () = assert!(core::mem::size_of::<FragClaim>() == 24);

//! Types shared between the XDP programs and userspace.
//!
//! Every map key and value is `#[repr(C)]` with explicit padding fields and a
//! const size assertion, so the kernel and userspace agree byte for byte.
//! Byte order: addresses and L4 ports are kept in network order (as on the
//! wire); every other integer is host order.
//! Addresses are always 16 bytes: IPv4 is stored IPv4-mapped (`::ffff:a.b.c.d`)
//! so one key type serves both families.
#![no_std]

// One module per concern; everything is re-exported here so the flat paths
// (`vpc_common::CtKey`) the datapath and userspace use keep working.
pub mod cfg;
pub mod conntrack;
pub mod drop_reason;
pub mod eni;
pub mod flowlog;
pub mod frag;
pub mod limits;
pub mod map_names;
pub mod overlay;
pub mod policy;
pub mod port;
pub mod route;
pub mod tput;

pub use conntrack::*;
pub use drop_reason::*;
pub use eni::*;
pub use flowlog::*;
pub use frag::*;
pub use limits::*;
pub use overlay::*;
pub use policy::*;
pub use port::*;
pub use route::*;

/// IPv4-mapped form of an IPv4 address (network order).
#[inline(always)]
pub const fn v4_mapped(a: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
    ]
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for PortInfo {}
    unsafe impl aya::Pod for Endpoint {}
    unsafe impl aya::Pod for AddrKey {}
    unsafe impl aya::Pod for HyperplaneEni {}
    unsafe impl aya::Pod for SgPrefixKey {}
    unsafe impl aya::Pod for SgPortKey {}
    unsafe impl aya::Pod for CtKey {}
    unsafe impl aya::Pod for CtEntry {}
    unsafe impl aya::Pod for EniGroup {}
    unsafe impl aya::Pod for NatPortKey {}
    unsafe impl aya::Pod for FragKey {}
    unsafe impl aya::Pod for FragEntry {}
    unsafe impl aya::Pod for FragClaim {}
    unsafe impl aya::Pod for RouteKey {}
    unsafe impl aya::Pod for RouteTarget {}
    unsafe impl aya::Pod for FlowWindow {}
    unsafe impl aya::Pod for FlowRejectKey {}
    unsafe impl aya::Pod for RemotePort {}
    unsafe impl aya::Pod for Relay {}
}

// The datapath copies addresses a word and MACs a half-word at a time
// (`parse::copy_addr`, `copy_mac`): these fields must stay so aligned.
const _: () = {
    use core::mem::{align_of, offset_of};
    assert!(align_of::<Endpoint>() >= 2);
    assert!(offset_of!(Endpoint, mac) % 2 == 0 && offset_of!(Endpoint, router_mac) % 2 == 0);
    assert!(align_of::<CtEntry>() >= 4);
    assert!(offset_of!(CtEntry, mac) % 2 == 0 && offset_of!(CtEntry, router_mac) % 2 == 0);
    assert!(offset_of!(CtEntry, nat_addr) % 4 == 0);
    assert!(align_of::<CtKey>() >= 4);
    assert!(offset_of!(CtKey, saddr) % 4 == 0 && offset_of!(CtKey, daddr) % 4 == 0);
    assert!(align_of::<HyperplaneEni>() >= 4);
    assert!(offset_of!(HyperplaneEni, addr4) % 4 == 0 && offset_of!(HyperplaneEni, addr6) % 4 == 0);
    assert!(offset_of!(CtEntry, fl) % 8 == 0);
    assert!(align_of::<FlowRejectKey>() >= 4);
    assert!(align_of::<AddrKey>() >= 4 && offset_of!(AddrKey, addr) % 4 == 0);
};

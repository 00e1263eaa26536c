//! Across hosts: the VXLAN overlay that joins the router namespaces of one
//! VPC's hosts (`docs/datapath.md`, "Across hosts: the overlay").
//!
//! A node placed on another host is a *stand-in port* here: a pseudo
//! ifindex (`REMOTE_PORT_FLAG | n`) with its `PORTS` and `ENDPOINTS`
//! entries as a local port has, and a `REMOTE_PORTS` entry saying which
//! host it is on. The host of the node that opens a flow judges it whole;
//! a packet to a stand-in leaves through the overlay device to that host.

/// The high bit of a stand-in port's pseudo ifindex: kernel ifindexes are
/// positive `int`s, so no real port has it.
pub const REMOTE_PORT_FLAG: u32 = 0x8000_0000;

/// Whether router port `ifindex` is a stand-in for a node on another host.
#[inline(always)]
pub const fn is_remote_port(ifindex: u32) -> bool {
    ifindex & REMOTE_PORT_FLAG != 0
}

/// The VXLAN network identifier of VPC `vpc`'s address space: one per VPC,
/// VNI 1 for the global space (VPC 0; VNI 0 is left unused).
#[inline(always)]
pub const fn vni_of_vpc(vpc: u32) -> u32 {
    vpc + 1
}

/// The VPC whose space VNI `vni` carries (`vni_of_vpc`'s inverse; VNI 0,
/// never sent, reads as the global space).
#[inline(always)]
pub const fn vpc_of_vni(vni: u32) -> u32 {
    vni.saturating_sub(1)
}

/// `REMOTE_PORTS` value, keyed by a stand-in's pseudo ifindex: where the
/// node behind it lives.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RemotePort {
    /// The underlay IPv4 address of the node's host (network order).
    pub underlay: [u8; 4],
    /// `vni_of_vpc` of the node's VPC.
    pub vni: u32,
}
const _: () = assert!(core::mem::size_of::<RemotePort>() == 8);

/// `RELAYS` value, keyed by the reply key (`CtKey`) of a flow another host
/// owns and this one delivered to a local node: where that node's answers
/// go back to, and the only port they may come from.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Relay {
    /// The owning host's underlay IPv4 address (network order).
    pub underlay: [u8; 4],
    pub vni: u32,
    /// The local port the flow was delivered to.
    pub ifindex: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<Relay>() == 16);

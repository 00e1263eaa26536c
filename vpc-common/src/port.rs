//! Router ports and endpoints: what sits behind a port or owns an address.

use crate::limits::MAX_PORTS;

/// What sits behind a router port or owns an address.
pub mod kind {
    /// An EC2 instance or a standalone network interface.
    pub const HOST: u8 = 1;
    /// A Lambda execution environment (Lambda service VPC side).
    pub const EXEC_ENV: u8 = 2;
    /// A Hyperplane ENI address: owned by the router, reached only through NAT.
    pub const HYPERPLANE_ENI: u8 = 3;
    /// A host on the internet, behind the internet gateways: a test host,
    /// or AWS's public endpoints (Lambda's API and function URLs). Hosts of
    /// the internet reach one another directly.
    pub const INTERNET_HOST: u8 = 4;
    /// The VPC resolver (base + 2): DNS to it passes no group or ACL.
    pub const RESOLVER: u8 = 5;
    /// A simulated regional AWS service (the "AWS services" namespace),
    /// reached from a VPC only through a gateway endpoint's route.
    pub const AWS_SERVICE: u8 = 6;
    /// An interface endpoint's ENI: reached like any VPC address, it
    /// answers for its service and opens nothing.
    pub const VPC_ENDPOINT: u8 = 7;
}

/// `PORTS` value, keyed by the router-side ifindex (u32).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PortInfo {
    pub kind: u8,
    pub has_v6: u8,
    /// `EP_F_*`.
    pub flags: u8,
    pub _pad: u8,
    /// Security-group policy of a host (union of its groups), per generation.
    pub policy: [u32; 2],
    /// Group of Hyperplane ENIs (`ENI_GROUPS`) an execution environment
    /// sends through (0 until its function is Active).
    pub eni_group: u32,
    pub vpc: u32,
    /// Subnet index of a host (its ACL: `SUBNET_ACLS`).
    pub subnet: u32,
    pub addr4: [u8; 16],
    pub addr6: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<PortInfo>() == 56);

/// `PortInfo::flags`, `Endpoint::flags`: the ENI's source/destination
/// check is off (`SourceDestCheck: false`): it may send from addresses not
/// its own and be routed packets for others (a middlebox).
pub const EP_F_NO_SOURCE_DEST_CHECK: u8 = 1;

/// The global address space: the Lambda service range, the internet and
/// its hosts, AWS's public endpoints and services, the public pool, and
/// every IPv6 address (a VPC's IPv6 blocks are Amazon's, unique).
pub const GLOBAL_SPACE: u32 = 0;

/// The address space of an address of VPC `vpc` (0: none, the global
/// space): a VPC's own for IPv4 (separate VPCs may overlap), the global
/// space for IPv6.
#[inline(always)]
pub const fn addr_space(vpc: u32, v6: bool) -> u32 {
    if v6 {
        GLOBAL_SPACE
    } else {
        vpc
    }
}

/// An address within its address space: the key of `ENDPOINTS` and
/// `PRIVATE_TO_PUBLIC`, the value of `PUBLIC_TO_PRIVATE`.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddrKey {
    /// [`addr_space`].
    pub space: u32,
    pub addr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<AddrKey>() == 20);

impl AddrKey {
    /// `addr` of VPC `vpc` (0: global), in its space.
    #[inline(always)]
    pub const fn of(vpc: u32, addr: [u8; 16]) -> Self {
        AddrKey {
            space: addr_space(vpc, !is_v4_mapped(&addr)),
            addr,
        }
    }
}

/// Whether a 16-byte address is IPv4-mapped (`::ffff:a.b.c.d`).
#[inline(always)]
pub const fn is_v4_mapped(a: &[u8; 16]) -> bool {
    let mut i = 0;
    while i < 10 {
        if a[i] != 0 {
            return false;
        }
        i += 1;
    }
    a[10] == 0xff && a[11] == 0xff
}

/// `ENDPOINTS` value, keyed by address in its space ([`AddrKey`]): where
/// a destination lives.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// Router-side ifindex to redirect to (0 for Hyperplane ENI addresses).
    pub ifindex: u32,
    /// Per generation.
    pub policy: [u32; 2],
    pub vpc: u32,
    /// Subnet index (its ACL: `SUBNET_ACLS`).
    pub subnet: u32,
    pub kind: u8,
    /// `EP_F_*`.
    pub flags: u8,
    pub _pad: [u8; 2],
    /// MAC of the endpoint's own interface (destination MAC on the way out).
    pub mac: [u8; 6],
    /// MAC of the router-side veth (source MAC on the way out).
    pub router_mac: [u8; 6],
}
const _: () = assert!(core::mem::size_of::<Endpoint>() == 36);

/// `PORT_STATS` (per CPU): two counters per router port, forwarded and
/// dropped, at `port_stat_index(ifindex, dropped)`; ports with an ifindex
/// of `MAX_PORTS` or more share slot 0.
#[inline(always)]
pub const fn port_stat_index(ifindex: u32, dropped: bool) -> u32 {
    port_slot(ifindex) * 2 + dropped as u32
}
pub const PORT_STATS_LEN: u32 = MAX_PORTS * 2;

/// `PORT_DROPS` key (per CPU): a router port's drops for one `DropReason`
/// (below 256), beside its total in `PORT_STATS`.
#[inline(always)]
pub const fn port_drop_key(ifindex: u32, reason: u32) -> u32 {
    port_slot(ifindex) << 8 | (reason & 0xff)
}
/// `PORT_DROPS` entries: a hash, not an array of every (port, reason)
/// (`MAX_PORTS` x `STATS_LEN`, each value per CPU): a port drops for a few
/// reasons, not all. LRU: past it the least recently counted pair goes.
pub const PORT_DROPS_MAX: u32 = 16_384;

/// A router port's slot in the per-port arrays (`PORT_STATS`,
/// `PORT_CONNECTIONS`, `LINKLOCAL_BUCKETS`, `ALLOWANCE_STATS`): its
/// ifindex, which a router namespace hands out from 1; from `MAX_PORTS` on,
/// ports share slot 0.
#[inline(always)]
pub const fn port_slot(ifindex: u32) -> u32 {
    if ifindex < MAX_PORTS {
        ifindex
    } else {
        0
    }
}

/// `PORT_SPACES`' value for a port of VPC `vpc` (0: the global space): its
/// IPv4 address space plus one, so that 0 stays "not known here" (a slot
/// never written, or shared by ports from `MAX_PORTS` on), where the
/// datapath asks `PORTS`.
#[inline(always)]
pub const fn port_space_slot(vpc: u32) -> u32 {
    addr_space(vpc, false) + 1
}

/// `ALLOWANCE_STATS` (per CPU): two counters per router port, the drops of
/// its conntrack allowance and of its linklocal allowance.
pub const ALLOWANCE_CONNTRACK: u32 = 0;
pub const ALLOWANCE_LINKLOCAL: u32 = 1;
#[inline(always)]
pub const fn allowance_stat_index(ifindex: u32, which: u32) -> u32 {
    port_slot(ifindex) * 2 + which
}
pub const ALLOWANCE_STATS_LEN: u32 = MAX_PORTS * 2;

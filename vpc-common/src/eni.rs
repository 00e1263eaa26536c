//! Hyperplane ENIs and NAT gateways: their entries, groups and NAT ports.

use crate::conntrack::CtKey;

/// NAT source ports handed out by a Hyperplane ENI (AWS: ephemeral range).
pub const NAT_PORT_MIN: u16 = 1024;
pub const NAT_PORT_MAX: u16 = 65535;
/// Ports of the ephemeral range: the most an ENI can hold per protocol.
pub const NAT_PORT_RANGE: u32 = NAT_PORT_MAX as u32 - NAT_PORT_MIN as u32 + 1;
/// Default connections (source ports) per Hyperplane ENI and protocol:
/// AWS documents 65,000; within the ephemeral range 1024-65535 that AWS
/// tells customers to open in their ACLs there are 64,512 (see the README).
pub const DEFAULT_ENI_CAPACITY: u32 = NAT_PORT_RANGE;
/// NAT port slices: the ephemeral range cut into `NAT_SLICES` slices of
/// `NAT_SLICE_PORTS` ports (`NAT_SLICE_WORDS` bitmap words each), leased
/// per host so that two hosts sharing an ENI never hand out the same
/// tuple. `PORT_SLICES` maps a pool's virtual slice to the physical one.
pub const NAT_SLICES: u32 = 16;
pub const NAT_SLICE_PORTS: u32 = 4032;
pub const NAT_SLICE_WORDS: u32 = NAT_SLICE_PORTS / 64;
const _: () =
    assert!(NAT_SLICES * NAT_SLICE_PORTS == NAT_PORT_RANGE && NAT_SLICE_PORTS.is_multiple_of(64));
/// Random ports tried per ENI of a group (or NAT gateway destination)
/// before the scan of the whole pool (`port_allocation`): at occupancy p
/// the scan runs with probability p^16.
pub const NAT_PORT_TRIES: u32 = 16;
/// Hyperplane ENIs per (subnet, security-group set) group.
pub const MAX_GROUP_ENIS: usize = 8;
/// `NAT_STATS` indexes: allocation failures (every ENI of the group full),
/// then the probe histogram of successful allocations: bucket `b` counts
/// allocations that took 2^(b-1)+1 ..= 2^b probes (1, 2, 3-4, 5-8, ...).
pub const NAT_STAT_FAILED: u32 = 0;
pub const NAT_STAT_HIST: u32 = 1;
/// Packets of TCP connections a NAT gateway forgot (idle past its
/// timeout), answered with a RST: AWS's `IdleTimeoutCount`.
pub const NAT_STAT_IDLE_TIMEOUT: u32 = 9;
pub const NAT_HIST_BUCKETS: u32 = 8;
pub const NAT_STATS_LEN: u32 = 16;

/// Histogram bucket (offset from `NAT_STAT_HIST`) of an allocation that
/// took `probes` probes (>= 1): 1 -> 0, 2 -> 1, 3-4 -> 2, 5-8 -> 3, ...
#[inline(always)]
pub const fn probe_bucket(probes: u32) -> u32 {
    let b = if probes <= 1 {
        0
    } else {
        32 - (probes - 1).leading_zeros()
    };
    if b >= NAT_HIST_BUCKETS {
        NAT_HIST_BUCKETS - 1
    } else {
        b
    }
}

/// `ENIS` value, keyed by ENI id (u32).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct HyperplaneEni {
    pub addr4: [u8; 16],
    pub addr6: [u8; 16],
    /// Per generation.
    pub policy: [u32; 2],
    pub vpc: u32,
    /// The ENI's subnet index.
    pub subnet: u32,
    pub has_v6: u8,
    /// 1: a private NAT gateway (`addr4` is its private address; the
    /// internet gateway drops what it sends there).
    pub nat_private: u8,
    pub _pad: [u8; 2],
    /// The ENI whose NAT ports this entry hands out (`NAT_PORTS`): its own
    /// index, also for the IPv4-only view of a dual-stack ENI.
    pub pool: u32,
}
const _: () = assert!(core::mem::size_of::<HyperplaneEni>() == 56);

/// `ENI_GROUPS` value, keyed by group id: the Hyperplane ENIs of one
/// (subnet, security-group set), tried in order for a new connection.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct EniGroup {
    pub count: u32,
    /// `ENIS` ids, the first `count` valid.
    pub enis: [u32; MAX_GROUP_ENIS],
}
const _: () = assert!(core::mem::size_of::<EniGroup>() == 36);

/// `NAT_PORTS` key: a Hyperplane ENI's NAT source port is unique per (ENI,
/// protocol), so an ENI holds at most its capacity of connections per
/// protocol (`daddr` and `dport` zero). A NAT gateway's is unique per
/// (gateway, destination address, destination port, protocol), AWS's
/// "55,000 connections to each unique destination": one port serves
/// several destinations, the 5-tuple staying unique.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NatPortKey {
    /// The ENI's index (`HyperplaneEni::pool`).
    pub eni: u32,
    /// A NAT gateway connection's destination: the IPv4 address's bytes
    /// (network order) as a native u32. No byte arrays here: zeroing one
    /// becomes a `memset` call, a byte loop in BPF, in every probe.
    pub daddr: u32,
    /// Network order, as in `CtEntry::nat_port`.
    pub port: u16,
    /// A NAT gateway connection's destination port (network order; 0 for
    /// ICMP).
    pub dport: u16,
    pub proto: u8,
    pub _pad0: u8,
    pub _pad1: u16,
}
const _: () = assert!(core::mem::size_of::<NatPortKey>() == 16);

impl NatPortKey {
    /// The claim of a connection through ENI or NAT gateway `pool`, from
    /// its reply key (the remote side as source, the NAT address and port
    /// as destination; ICMP echo: the identifier as `sport`).
    /// `per_destination`: a NAT gateway's claim, which names the remote
    /// side.
    #[inline(always)]
    pub fn of_reply(pool: u32, reply: &CtKey, per_destination: bool) -> Self {
        let icmp = reply.proto == 1;
        let port = if icmp { reply.sport } else { reply.dport };
        let (daddr, dport) = if per_destination {
            let a = &reply.saddr;
            (
                u32::from_ne_bytes([a[12], a[13], a[14], a[15]]),
                if icmp { 0 } else { reply.sport },
            )
        } else {
            (0, 0)
        };
        NatPortKey {
            eni: pool,
            daddr,
            port,
            dport,
            proto: reply.proto,
            _pad0: 0,
            _pad1: 0,
        }
    }
}

/// `NAT_PORT_BITMAP`, the allocation index of Hyperplane ENI pools: one
/// bit per port of the ephemeral range, set while the port is (or may be)
/// claimed in `NAT_PORTS`, which stays the truth. A block of words per
/// (pool slot, protocol): TCP then UDP for each of `MAX_ENIS` slots. Slot
/// `pool` for an ENI index below `MAX_ENIS` (indexes are 1-based), slot 0
/// for Lambda's own VPC (`LAMBDA_OWN_ENI`); other pools (a later ENI
/// index past `MAX_ENIS`, NAT gateways, whose pools are per destination)
/// have none and keep the probing allocator.
pub const NAT_BITMAP_WORDS: u32 = NAT_PORT_RANGE.div_ceil(64);
pub const NAT_BITMAP_LEN: u32 = crate::limits::MAX_ENIS * 2 * NAT_BITMAP_WORDS;
// The ephemeral range is exactly 1,008 words; 15.75 MiB in all.
const _: () = assert!(NAT_BITMAP_WORDS == 1008 && NAT_BITMAP_WORDS * 64 == NAT_PORT_RANGE);
const _: () = assert!(NAT_BITMAP_LEN as u64 * 8 == 16_515_072);

/// The first `NAT_PORT_BITMAP` word of pool `pool`'s ports of protocol
/// `proto` (TCP or UDP), `NAT_BITMAP_LEN` or more for a pool without a
/// bitmap (past `MAX_ENIS`: a later ENI index, a NAT gateway). Arithmetic
/// rather than branches: the datapath computes it for every pool it
/// tries, and a branch there would leave the verifier a state per way.
#[inline(always)]
pub fn nat_bitmap_index(pool: u32, proto: u8) -> u32 {
    let slot = if pool == LAMBDA_OWN_ENI { 0 } else { pool };
    // TCP (6) 0, UDP (17) 1.
    let udp = (proto as u32 >> 4) & 1;
    slot.wrapping_mul(2)
        .wrapping_add(udp)
        .wrapping_mul(NAT_BITMAP_WORDS)
}

/// The first `NAT_PORT_BITMAP` word of the pool of `claim` (its port
/// aside), if it is an ENI pool with a bitmap (not a NAT gateway's claim,
/// which names its destination; TCP or UDP).
#[inline(always)]
pub fn nat_bitmap_of(claim: &NatPortKey) -> Option<u32> {
    let i = nat_bitmap_index(claim.eni, claim.proto);
    let eni = claim.daddr == 0 && claim.dport == 0 && claim.eni != 0;
    (eni && (claim.proto == 6 || claim.proto == 17) && i < NAT_BITMAP_LEN).then_some(i)
}

/// The `NAT_PORT_BITMAP` word and bit of `claim`, if its pool has a bitmap.
#[inline(always)]
pub fn nat_bitmap_bit(claim: &NatPortKey) -> Option<(u32, u64)> {
    let base = nat_bitmap_of(claim)?;
    let offset = u16::from_be(claim.port).checked_sub(NAT_PORT_MIN)? as u32;
    Some((base + offset / 64, 1u64 << (offset % 64)))
}

/// The index of the lowest set bit of `x` (64 for 0): `trailing_zeros`
/// without a table (BPF has no such instruction, and LLVM would expand it
/// into a lookup table in `.rodata`): the set bit isolated, then its
/// index bit by bit, each a mask test without a branch.
#[inline(always)]
pub fn lowest_bit(x: u64) -> u32 {
    let b = x & x.wrapping_neg();
    // 1 if `v` is not zero: `v | -v` has its top bit set.
    let nz = |v: u64| ((v | v.wrapping_neg()) >> 63) as u32;
    (1 - nz(b)) * 64
        + (nz(b & 0xffff_ffff_0000_0000) << 5)
        + (nz(b & 0xffff_0000_ffff_0000) << 4)
        + (nz(b & 0xff00_ff00_ff00_ff00) << 3)
        + (nz(b & 0xf0f0_f0f0_f0f0_f0f0) << 2)
        + (nz(b & 0xcccc_cccc_cccc_cccc) << 1)
        + nz(b & 0xaaaa_aaaa_aaaa_aaaa)
}

/// `ENIS` id (and `ENI_GROUPS` id) of Lambda's own VPC, where a function
/// without `VpcConfig` sends from: Lambda's own NAT address, no VPC (0), no
/// groups, subnet [`LAMBDA_OWN_SUBNET`], whose one route leads to the
/// internet. Below `ENI_V4_ONLY`, above every Hyperplane ENI index
/// (`MAX_ENIS`) and NAT gateway id.
pub const LAMBDA_OWN_ENI: u32 = 0x7fff;
/// The subnet index of Lambda's own VPC: the last one (`MAX_SUBNETS` - 1),
/// never a model subnet's.
pub const LAMBDA_OWN_SUBNET: u32 = crate::limits::MAX_SUBNETS - 1;

/// `ENIS` ids of NAT gateways: this plus the gateway's index, clear of
/// Hyperplane ENI ids (and their `ENI_V4_ONLY` views, bit 15).
pub const NAT_GATEWAY_ID_BASE: u32 = 0x4000;
/// Default source ports per NAT gateway, destination (address, port) and
/// protocol: AWS's 55,000 connections per unique destination.
pub const NAT_GATEWAY_CAPACITY: u32 = 55_000;

/// Datapath ENI id of the IPv4-only view of a dual-stack Hyperplane ENI:
/// the ENI's index with this bit set. A function without
/// `Ipv6AllowedForDualStack` sends through the group of such views, whose
/// `has_v6` is 0, so the router drops its IPv6 (`no_route`) while functions
/// sharing the ENIs with the flag set use their IPv6 addresses. (An ENI is
/// one ENI, as at AWS: a view hands out the same NAT ports, `pool`. Ids
/// stay below 2^16: `CtEntry` keeps them in a u16.)
pub const ENI_V4_ONLY: u32 = 1 << 15;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_bit_is_trailing_zeros() {
        assert_eq!(lowest_bit(0), 64);
        for i in 0..64 {
            let x = 1u64 << i;
            assert_eq!(lowest_bit(x), i);
            assert_eq!(lowest_bit(x | (u64::MAX << i)), i);
            assert_eq!(lowest_bit(x | 1u64.rotate_left(63)), i);
        }
        let mut r = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            assert_eq!(lowest_bit(r), r.trailing_zeros());
        }
    }

    #[test]
    fn bitmap_bits_of_enis_only() {
        let claim = |eni, port: u16, proto, daddr| NatPortKey {
            eni,
            daddr,
            port: port.to_be(),
            proto,
            ..Default::default()
        };
        let w = NAT_BITMAP_WORDS;
        assert_eq!(nat_bitmap_bit(&claim(1, 1024, 6, 0)), Some((2 * w, 1)));
        assert_eq!(
            nat_bitmap_bit(&claim(1, 1024 + 65, 17, 0)),
            Some((3 * w + 1, 2))
        );
        assert_eq!(
            nat_bitmap_bit(&claim(LAMBDA_OWN_ENI, 65535, 6, 0)),
            Some((w - 1, 1 << 63))
        );
        let last = (crate::limits::MAX_ENIS - 1, 65535, 17, 0);
        assert_eq!(
            nat_bitmap_bit(&claim(last.0, last.1, last.2, last.3)),
            Some((NAT_BITMAP_LEN - 1, 1 << 63))
        );
        // No pool: past MAX_ENIS, 0, a NAT gateway's, ICMP, a port below the range.
        assert_eq!(
            nat_bitmap_bit(&claim(crate::limits::MAX_ENIS, 2000, 6, 0)),
            None
        );
        assert_eq!(nat_bitmap_bit(&claim(0, 2000, 6, 0)), None);
        assert_eq!(
            nat_bitmap_bit(&claim(NAT_GATEWAY_ID_BASE, 2000, 6, 0x0a00_0001)),
            None
        );
        assert_eq!(nat_bitmap_bit(&claim(1, 2000, 1, 0)), None);
        assert_eq!(nat_bitmap_bit(&claim(1, 1023, 6, 0)), None);
    }
}

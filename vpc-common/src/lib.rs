//! Types shared between the XDP programs and userspace.
//!
//! Every map key and value is `#[repr(C)]` with explicit padding fields and a
//! const size assertion, so the kernel and userspace agree byte for byte.
//! Byte order: addresses and L4 ports are kept in network order (as on the
//! wire); every other integer is host order.
//! Addresses are always 16 bytes: IPv4 is stored IPv4-mapped (`::ffff:a.b.c.d`)
//! so one key type serves both families.
#![no_std]

/// Maximum entries of the connection-tracking table (full: new connections
/// are dropped with `ct_full`, as at AWS).
pub const CT_MAX_ENTRIES: u32 = 262_144;
/// Ports (router-side veths) and endpoints the router knows about.
pub const MAX_PORTS: u32 = 4096;
pub const MAX_ENDPOINTS: u32 = 8192;
pub const MAX_ENIS: u32 = 1024;
/// Subnets (1-based index; 0 is "no subnet": the Lambda side).
pub const MAX_SUBNETS: u32 = 4096;

/// Policy generations. A change is written into the generation not in use
/// and switched on with one write of `CONFIG[cfg::GENERATION]`, so no packet
/// is judged by a half-written policy. Every policy, ACL and class id carries
/// its generation in a high bit; `SUBNET_ACLS` has one block per generation.
pub const GENERATIONS: u32 = 2;
pub const ID_GEN_SHIFT: u32 = 26;
pub const CLASS_GEN_SHIFT: u32 = 29;

/// A prefix-trie value with this bit set is a verdict, not a class: every
/// protocol and port decides the same (an allow-all group rule, an ACL whose
/// applicable rules are all `-1`), so the port lookup is skipped.
pub const CLASS_DECIDED: u32 = 1 << 31;
/// With `CLASS_DECIDED`: allow (else deny).
pub const CLASS_ALLOW: u32 = 1 << 30;

/// `SUBNET_ACLS` index of `subnet` in generation `gen`.
#[inline(always)]
pub const fn subnet_acl_index(gen: u32, subnet: u32) -> u32 {
    gen * MAX_SUBNETS + subnet
}

/// The value of a per-generation pair for `gen` (a branch, not an index:
/// no bounds check, and a shape the verifier follows).
#[inline(always)]
pub fn for_gen(pair: &[u32; 2], gen: u32) -> u32 {
    if gen == 0 {
        pair[0]
    } else {
        pair[1]
    }
}
pub const MAX_POLICY_PREFIXES: u32 = 65_536;
pub const MAX_POLICY_PORTS: u32 = 262_144;
/// NAT source ports handed out by a Hyperplane ENI (AWS: ephemeral range).
pub const NAT_PORT_MIN: u16 = 1024;
pub const NAT_PORT_MAX: u16 = 65535;
/// Ports of the ephemeral range: the most an ENI can hold per protocol.
pub const NAT_PORT_RANGE: u32 = NAT_PORT_MAX as u32 - NAT_PORT_MIN as u32 + 1;
/// Default connections (source ports) per Hyperplane ENI and protocol:
/// AWS documents 65,000; within the ephemeral range 1024-65535 that AWS
/// tells customers to open in their ACLs there are 64,512 (see the README).
pub const DEFAULT_ENI_CAPACITY: u32 = NAT_PORT_RANGE;
/// Bounded probing for a free NAT port, per ENI of a group: independent
/// random ports, so at occupancy p an ENI refuses with probability p^16.
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
/// `SG_PORTS` protocol value meaning "all protocols" (`IpProtocol: -1`).
/// 255 is IANA-reserved, so no real packet carries it.
pub const PROTO_ANY: u8 = 255;

/// Why a packet was dropped. The discriminant indexes the `STATS` map
/// (index 0 counts forwarded packets).
#[repr(u32)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Truncated or inconsistent headers.
    Malformed = 1,
    /// Not IPv4 or IPv6 (ARP, LLDP, ...): the VPC router only routes IP.
    NotIp = 2,
    /// Arrived on an interface the router has no port entry for.
    UnknownPort = 3,
    /// Source address is not the one assigned to the sending interface.
    Spoofed = 4,
    /// No endpoint in the same VPC owns the destination address.
    NoRoute = 5,
    /// Not allowed by the sender's outbound security-group rules.
    SgEgressDenied = 6,
    /// Not allowed by the receiver's inbound security-group rules.
    SgIngressDenied = 7,
    /// Inbound to a Hyperplane ENI that matches no tracked connection.
    HyperplaneUnsolicited = 8,
    /// A TCP packet that is not a SYN and matches no tracked connection.
    CtInvalid = 9,
    /// No free NAT port on the Hyperplane ENI after bounded probing.
    NatPortExhausted = 10,
    /// IP fragment: ports unknown, policy cannot be decided.
    Fragment = 11,
    /// Neither TCP nor UDP from a Lambda function (Lambda supports only those).
    FunctionProtocol = 12,
    /// The connection-tracking table refused the insert.
    CtFull = 13,
    /// Too many or unsupported IPv6 extension headers.
    Ipv6ExtHeader = 14,
    /// The destination's port entry is missing (topology out of step).
    NoEgressPort = 15,
    /// Denied by the network ACL of the subnet the packet leaves.
    NaclEgressDenied = 16,
    /// Denied by the network ACL of the subnet the packet enters.
    NaclIngressDenied = 17,
    /// An ICMP error (destination unreachable, time exceeded, packet too
    /// big) whose quoted packet belongs to no tracked connection.
    IcmpErrorUntracked = 18,
    /// IPv6 from a function whose `VpcConfig` has no
    /// `Ipv6AllowedForDualStack` (its ENI entry has no IPv6 address).
    Ipv6NotAllowed = 19,
    /// IPv6 with an IPv4-mapped (`::ffff:0:0/96`) or IPv4-compatible
    /// (`::/96`) address: never valid on the wire, and keys and endpoints
    /// hold IPv4 addresses in that form, so it would pass for IPv4.
    Ipv6EmbeddedV4 = 20,
    /// The route that matched is `blackhole`: its target is gone (an
    /// internet gateway detached from the VPC, ...).
    RouteBlackhole = 21,
    /// Routed to an internet gateway, but no internet test host owns the
    /// destination: nothing ever leaves the project's namespaces.
    InternetUnreachable = 22,
    /// Routed to an internet gateway from an address without a public
    /// IPv4 address (AWS drops it silently; a Lambda ENI never has one).
    NoPublicAddress = 23,
    /// Neither TCP, UDP nor ICMP echo to a NAT gateway, or IPv6 (NAT64 is
    /// not supported).
    NatGatewayProtocol = 24,
    /// To the VPC resolver but not DNS (UDP or TCP port 53), or a new
    /// flow from the resolver (it only answers).
    ResolverNotDns = 25,
    /// A new connection from the internet to an address whose subnet
    /// routes the peer to an egress-only internet gateway: it passes
    /// outbound IPv6 and its replies only.
    EgressOnlyInbound = 26,
    /// A new flow from the AWS services side (the simulated regional
    /// services or an interface endpoint's ENI): they only answer.
    AwsServiceUnsolicited = 28,
    /// To a simulated AWS service by a route that is not its gateway
    /// endpoint's (the prefix-list route), or the reverse.
    EndpointServiceMismatch = 29,
    /// Through a private NAT gateway to an internet gateway: AWS documents
    /// that the internet gateway drops it.
    NatGatewayPrivateInternet = 30,
    /// Routed to an instance's or interface's ENI (a middlebox) that is not
    /// the packet's destination while its source/destination check is on:
    /// EC2 drops it.
    SourceDestCheck = 32,
}

impl DropReason {
    pub const ALL: [DropReason; 30] = [
        DropReason::Malformed,
        DropReason::NotIp,
        DropReason::UnknownPort,
        DropReason::Spoofed,
        DropReason::NoRoute,
        DropReason::SgEgressDenied,
        DropReason::SgIngressDenied,
        DropReason::HyperplaneUnsolicited,
        DropReason::CtInvalid,
        DropReason::NatPortExhausted,
        DropReason::Fragment,
        DropReason::FunctionProtocol,
        DropReason::CtFull,
        DropReason::Ipv6ExtHeader,
        DropReason::NoEgressPort,
        DropReason::NaclEgressDenied,
        DropReason::NaclIngressDenied,
        DropReason::IcmpErrorUntracked,
        DropReason::Ipv6NotAllowed,
        DropReason::Ipv6EmbeddedV4,
        DropReason::RouteBlackhole,
        DropReason::InternetUnreachable,
        DropReason::NoPublicAddress,
        DropReason::NatGatewayProtocol,
        DropReason::ResolverNotDns,
        DropReason::EgressOnlyInbound,
        DropReason::AwsServiceUnsolicited,
        DropReason::EndpointServiceMismatch,
        DropReason::NatGatewayPrivateInternet,
        DropReason::SourceDestCheck,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NotIp => "not_ip",
            DropReason::UnknownPort => "unknown_port",
            DropReason::Spoofed => "spoofed_source",
            DropReason::NoRoute => "no_route",
            DropReason::SgEgressDenied => "sg_egress_denied",
            DropReason::SgIngressDenied => "sg_ingress_denied",
            DropReason::HyperplaneUnsolicited => "hyperplane_unsolicited",
            DropReason::CtInvalid => "ct_invalid",
            DropReason::NatPortExhausted => "nat_port_exhausted",
            DropReason::Fragment => "fragment",
            DropReason::FunctionProtocol => "function_protocol",
            DropReason::CtFull => "ct_full",
            DropReason::Ipv6ExtHeader => "ipv6_ext_header",
            DropReason::NoEgressPort => "no_egress_port",
            DropReason::NaclEgressDenied => "nacl_egress_denied",
            DropReason::NaclIngressDenied => "nacl_ingress_denied",
            DropReason::IcmpErrorUntracked => "icmp_error_untracked",
            DropReason::Ipv6NotAllowed => "ipv6_not_allowed",
            DropReason::Ipv6EmbeddedV4 => "ipv6_embedded_ipv4",
            DropReason::RouteBlackhole => "route_blackhole",
            DropReason::InternetUnreachable => "internet_unreachable",
            DropReason::NoPublicAddress => "no_public_address",
            DropReason::NatGatewayProtocol => "nat_gateway_protocol",
            DropReason::ResolverNotDns => "resolver_not_dns",
            DropReason::EgressOnlyInbound => "egress_only_inbound",
            DropReason::AwsServiceUnsolicited => "aws_service_unsolicited",
            DropReason::EndpointServiceMismatch => "endpoint_service_mismatch",
            DropReason::NatGatewayPrivateInternet => "nat_gateway_private_internet",
            DropReason::SourceDestCheck => "source_dest_check",
        }
    }
}

/// `STATS` index of the forwarded-packet counter.
pub const STAT_FORWARDED: u32 = 0;
pub const STATS_LEN: u32 = 48;
const _: () = {
    let mut i = 0;
    while i < DropReason::ALL.len() {
        assert!((DropReason::ALL[i] as u32) < STATS_LEN);
        i += 1;
    }
};

/// What sits behind a router port or owns an address.
pub mod kind {
    /// An EC2 instance or a standalone network interface.
    pub const HOST: u8 = 1;
    /// A Lambda execution environment (Lambda service VPC side).
    pub const EXEC_ENV: u8 = 2;
    /// A Hyperplane ENI address: owned by the router, reached only through NAT.
    pub const HYPERPLANE_ENI: u8 = 3;
    /// A test host on the internet, behind the internet gateways.
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

/// `ENDPOINTS` value, keyed by address: where a destination lives.
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

/// `FRAGS` key: an IPv4 datagram's fragments, by (source, destination,
/// identification, protocol), as reassembly tells them apart (RFC 791).
/// Addresses and identification as on the wire.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub saddr: u32,
    pub daddr: u32,
    pub id: u16,
    pub proto: u8,
    pub _pad: u8,
}
const _: () = assert!(core::mem::size_of::<FragKey>() == 12);
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
    pub _pad: u32,
    pub first: u64,
}
const _: () = assert!(core::mem::size_of::<FragClaim>() == 24);

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

/// Connection-tracking key: the 5-tuple as the packet arrives at the router.
/// ICMP echo uses the identifier as `sport` and 0 as `dport` both ways.
/// Aligned to 4 so copies of its addresses are word copies, not byte loops
/// (the BPF backend does not expand unaligned copies inline).
#[repr(C, align(4))]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct CtKey {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub _pad0: u8,
    pub _pad1: u16,
}
const _: () = assert!(core::mem::size_of::<CtKey>() == 40);

/// Connection states kept in the original-direction entry.
pub mod ct_state {
    pub const NEW: u8 = 0;
    pub const SYN_SENT: u8 = 1;
    pub const ESTABLISHED: u8 = 2;
    pub const CLOSING: u8 = 3;
    pub const CLOSED: u8 = 4;
}

pub const CT_DIR_ORIG: u8 = 0;
pub const CT_DIR_REPLY: u8 = 1;

/// Entry flags.
pub const CT_F_SNAT: u8 = 1;
pub const CT_F_DNAT: u8 = 2;
pub const CT_F_FIN_ORIG: u8 = 4;
pub const CT_F_FIN_REPLY: u8 = 8;

/// Connection-tracking value. Each connection has two entries: the original
/// direction (holds state and timestamps) and the reply direction (points to
/// the original through `twin`). NAT rewrites live in each entry for its own
/// direction.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct CtEntry {
    /// `bpf_ktime_get_coarse_ns` (CLOCK_MONOTONIC, tick resolution) of the
    /// last packet (original entry only).
    pub last_seen: u64,
    pub created: u64,
    /// IP bytes (header included) per direction, original entry only.
    pub bytes_orig: u64,
    pub bytes_reply: u64,
    pub packets_orig: u32,
    pub packets_reply: u32,
    /// Router port this direction's packets arrive on. A packet of the
    /// connection on any other port is not this connection's: it goes
    /// through the full checks (source check first).
    pub in_ifindex: u32,
    /// Where this direction is delivered, resolved when the connection
    /// opened: router port, the receiver's MAC and the router's MAC on that
    /// link. Established packets need no endpoint lookup.
    pub out_ifindex: u32,
    /// Policy generation + 1 under which this direction last passed its
    /// network ACLs (0: not yet). ACLs are stateless, but a connection's
    /// 5-tuple is fixed, so the verdict holds until the policy changes.
    pub acl_gen: u32,
    pub state: u8,
    pub dir: u8,
    pub flags: u8,
    /// The route kind (`route_kind`) this direction took when the
    /// connection opened; re-checked with its ACLs after a policy change.
    pub route: u8,
    pub nat_port: u16,
    /// Hyperplane ENI (its index, `HyperplaneEni::pool`) of NATed
    /// connections (0: none): with `nat_port` and the protocol, the
    /// connection's `NAT_PORTS` claim.
    pub eni: u16,
    /// Subnet indexes this direction leaves and enters (its ACL boundary;
    /// equal when it stays in one subnet).
    pub src_subnet: u16,
    pub dst_subnet: u16,
    /// The Hyperplane ENI's subnet index (NATed connections).
    pub eni_subnet: u16,
    pub _pad1: u16,
    pub mac: [u8; 6],
    pub router_mac: [u8; 6],
    /// Rewrite for this direction: new source (SNAT) or destination (DNAT).
    pub nat_addr: [u8; 16],
    /// The other direction's key.
    pub twin: CtKey,
    /// Flow-log counters of this direction, one slot per window parity
    /// (see [`FlowWindow`]).
    pub fl: [FlowWindow; 2],
}
const _: () = assert!(core::mem::size_of::<CtEntry>() == 216);

/// Flow-log counters of one direction of a connection (in its `CtEntry`),
/// or of one rejected flow (`FL_REJECTS`), in one aggregation window.
/// Entries keep two, by window parity: the datapath writes the slot of the
/// window in force (`CONFIG[cfg::FLOW_WINDOW]`) while the agent reads the
/// other one, which no packet touches any more, so a window is read whole.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowWindow {
    /// IP bytes (header included).
    pub bytes: u64,
    /// `bpf_ktime_get_coarse_ns` of the first and last packet.
    pub first_ns: u64,
    pub last_ns: u64,
    pub packets: u32,
    /// The window these counts belong to (0: none yet).
    pub window: u32,
    /// TCP flags ORed as flow logs report them: FIN 1, SYN 2, RST 4, and
    /// SYN-ACK as 18 (ACK alone is not reported).
    pub tcp_flags: u8,
    pub _pad0: u8,
    pub _pad1: u16,
    pub _pad2: u32,
}
const _: () = assert!(core::mem::size_of::<FlowWindow>() == 40);

/// `FL_REJECTS` key and flow-log ring-buffer event: a rejected flow as seen
/// in the customer VPC (after source NAT, before the reverse NAT), in one
/// window. The first rejected packet of a key in a window inserts it and
/// sends the key as an event; later ones only count. A lost event (ring
/// buffer full) is counted (`FL_STATS[FL_STAT_LOST]`) and becomes SKIPDATA.
#[repr(C, align(4))]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowRejectKey {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    /// Addresses before NAT (the execution environment's for a function's
    /// connection; otherwise equal to `saddr` / `daddr`).
    pub pkt_saddr: [u8; 16],
    pub pkt_daddr: [u8; 16],
    /// Network order.
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    /// `DropReason`: says which side rejected it (sender's outbound rules
    /// or ACL, or the receiver's).
    pub reason: u8,
    pub _pad: u16,
    pub window: u32,
}
const _: () = assert!(core::mem::size_of::<FlowRejectKey>() == 76);

/// `PORT_STATS` (per CPU): two counters per router port, forwarded and
/// dropped, at `port_stat_index(ifindex, dropped)`; ports with an ifindex
/// of `MAX_PORTS` or more share slot 0.
#[inline(always)]
pub const fn port_stat_index(ifindex: u32, dropped: bool) -> u32 {
    let slot = if ifindex < MAX_PORTS { ifindex } else { 0 };
    slot * 2 + dropped as u32
}
pub const PORT_STATS_LEN: u32 = MAX_PORTS * 2;

/// `FL_STATS` (per CPU) indexes.
pub const FL_STAT_LOST: u32 = 0;
pub const FL_STAT_EVENTS: u32 = 1;
pub const FL_STAT_REJECT_MAP_FULL: u32 = 2;
pub const FL_STATS_LEN: u32 = 4;
/// Default flow-log ring buffer size (bytes, a power of two of pages).
pub const FL_RINGBUF_BYTES: u32 = 256 * 1024;
/// Rejected flows aggregated per window (LRU).
pub const FL_MAX_REJECTS: u32 = 65_536;

/// `CONFIG` array indexes: idle timeouts in nanoseconds, then the generation.
pub mod cfg {
    pub const TCP_SYN: u32 = 0;
    pub const TCP_ESTABLISHED: u32 = 1;
    pub const TCP_CLOSING: u32 = 2;
    pub const TCP_CLOSED: u32 = 3;
    pub const UDP: u32 = 4;
    pub const UDP_STREAM: u32 = 5;
    pub const ICMP: u32 = 6;
    pub const OTHER: u32 = 7;
    /// The policy generation in force (0 or 1), not a timeout.
    pub const GENERATION: u32 = 8;
    /// NAT ports per Hyperplane ENI and protocol (1..=`NAT_PORT_RANGE`;
    /// 0 or out of range: `DEFAULT_ENI_CAPACITY`): ports 1024..1024+N.
    pub const ENI_CAPACITY: u32 = 9;
    /// Flow logs: the aggregation window in force (a counter from 1; 0:
    /// no flow log, the datapath counts nothing for them).
    pub const FLOW_WINDOW: u32 = 10;
    /// Idle timeout (ns) of connections through a NAT gateway (AWS: 350 s).
    pub const NAT_GATEWAY_IDLE: u32 = 11;
    /// Source ports per NAT gateway, destination and protocol (as
    /// `ENI_CAPACITY`; 0: `NAT_GATEWAY_CAPACITY`).
    pub const NAT_GATEWAY_CAPACITY: u32 = 12;
    /// Nanoseconds added to the kernel's clock for idle times: what a
    /// test clock (`vpc clock advance`) has been moved by.
    pub const CLOCK_OFFSET: u32 = 13;
    pub const LEN: u32 = 14;
}

/// Public IPv4 addresses (`PUBLIC_IPS` holds two entries per address).
pub const MAX_PUBLIC_IPS: u32 = 1024;

/// Route tables: at most this many `ROUTES` trie entries (local routes,
/// static routes and expanded prefix-list routes of both generations).
pub const MAX_ROUTES: u32 = 16_384;

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

/// `ENIS` ids of NAT gateways: this plus the gateway's index, clear of
/// Hyperplane ENI ids (and their `ENI_V4_ONLY` views, bit 15).
pub const NAT_GATEWAY_ID_BASE: u32 = 0x4000;
/// Default source ports per NAT gateway, destination (address, port) and
/// protocol: AWS's 55,000 connections per unique destination.
pub const NAT_GATEWAY_CAPACITY: u32 = 55_000;

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
};

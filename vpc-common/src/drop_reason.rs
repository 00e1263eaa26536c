//! Why packets are dropped, and the `STATS` counters they index.

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
    /// Every NAT port of every Hyperplane ENI of the group claimed (or,
    /// through a NAT gateway, every port toward that destination).
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
    // 18 was `icmp_error_untracked`: an ICMP error that belongs to no
    // connection is now checked as any untracked ICMP (groups, ACLs).
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
    /// A new connection from an interface that already has its conntrack
    /// allowance of tracked connections (AWS's ENA statistic
    /// `conntrack_allowance_exceeded`).
    ConntrackAllowanceExceeded = 33,
    /// A packet to the VPC resolver past its interface's 1,024 packets per
    /// second (AWS's `linklocal_allowance_exceeded`).
    LinklocalAllowanceExceeded = 34,
    /// A VLAN-tagged frame (802.1Q / 802.1ad), in the frame or taken off it
    /// by the device: VPC interfaces are untagged, so it is not classified.
    VlanTagged = 35,
    /// A new connection's first packets raced on two CPUs and the other
    /// one's entries went in first: the packet then goes as part of that
    /// connection (Linux's conntrack clash resolution); counted only when
    /// that fails too.
    CtClash = 36,
    /// To a node on another host at XDP: only the TC hook can set the
    /// overlay's tunnel metadata.
    OverlayNeedsTc = 37,
    /// To a stand-in port without a `REMOTE_PORTS` entry (or no overlay
    /// device configured): the node's host is unknown.
    OverlayNoHost = 38,
    /// Arrived on the overlay device without tunnel metadata.
    OverlayMalformed = 39,
    /// Arrived through the overlay as part of a flow another host owns, to
    /// an address with no local node behind it.
    OverlayNoDestination = 40,
}

impl DropReason {
    pub const ALL: [DropReason; 37] = [
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
        DropReason::ConntrackAllowanceExceeded,
        DropReason::LinklocalAllowanceExceeded,
        DropReason::VlanTagged,
        DropReason::CtClash,
        DropReason::OverlayNeedsTc,
        DropReason::OverlayNoHost,
        DropReason::OverlayMalformed,
        DropReason::OverlayNoDestination,
    ];

    /// The reason with discriminant `code` (a verdict's detail, a
    /// `FlowRejectKey::reason`).
    pub fn from_code(code: u32) -> Option<DropReason> {
        DropReason::ALL.iter().copied().find(|r| *r as u32 == code)
    }

    /// Why, in a few words (the console's drops).
    pub const fn why(self) -> &'static str {
        match self {
            DropReason::Malformed => "truncated or inconsistent headers",
            DropReason::NotIp => "not IPv4 or IPv6: the VPC router only routes IP",
            DropReason::UnknownPort => "arrived on an interface the router has no port for",
            DropReason::Spoofed => "the source address is not the sending interface's",
            DropReason::NoRoute => "no route in the VPC leads to the destination",
            DropReason::SgEgressDenied => "the sender's security groups allow no such outbound traffic",
            DropReason::SgIngressDenied => "the receiver's security groups allow no such inbound traffic",
            DropReason::HyperplaneUnsolicited => "to a Hyperplane ENI, matching no connection a function opened",
            DropReason::CtInvalid => "a TCP packet that is not a SYN and matches no tracked connection",
            DropReason::NatPortExhausted => "every NAT port of the function's Hyperplane ENIs (or the NAT gateway's, toward that destination) is taken",
            DropReason::Fragment => "an IP fragment whose ports are unknown: no policy can decide it",
            DropReason::FunctionProtocol => "neither TCP nor UDP from a Lambda function",
            DropReason::CtFull => "the connection-tracking table is full",
            DropReason::Ipv6ExtHeader => "too many or unsupported IPv6 extension headers",
            DropReason::NoEgressPort => "the destination's interface is missing (topology out of step)",
            DropReason::NaclEgressDenied => "the network ACL of the subnet it leaves denies it",
            DropReason::NaclIngressDenied => "the network ACL of the subnet it enters denies it",
            DropReason::Ipv6NotAllowed => "IPv6 from a function without Ipv6AllowedForDualStack",
            DropReason::Ipv6EmbeddedV4 => "IPv6 with an IPv4-mapped or IPv4-compatible address",
            DropReason::RouteBlackhole => "the matching route is a blackhole: its target is gone",
            DropReason::InternetUnreachable => "routed to the internet gateway, but nothing on the internet owns the destination",
            DropReason::NoPublicAddress => "to the internet gateway from an address without a public IPv4 address",
            DropReason::NatGatewayProtocol => "a NAT gateway passes only TCP, UDP and ICMP echo over IPv4",
            DropReason::ResolverNotDns => "to the VPC resolver but not DNS, or a new flow from it",
            DropReason::EgressOnlyInbound => "a new connection from the internet through an egress-only internet gateway",
            DropReason::AwsServiceUnsolicited => "a new flow from the AWS services side: they only answer",
            DropReason::EndpointServiceMismatch => "to an AWS service by a route that is not its gateway endpoint's",
            DropReason::NatGatewayPrivateInternet => "through a private NAT gateway to an internet gateway",
            DropReason::SourceDestCheck => "routed through an interface whose source/destination check is on",
            DropReason::ConntrackAllowanceExceeded => "the interface has its conntrack allowance of tracked connections",
            DropReason::LinklocalAllowanceExceeded => "past the interface's 1,024 packets per second to the VPC resolver",
            DropReason::VlanTagged => "a VLAN-tagged frame: VPC interfaces are untagged",
            DropReason::CtClash => "a new connection's first packets raced on two CPUs and the retry failed",
            DropReason::OverlayNeedsTc => "to a node on another host at XDP: only the TC hook can tunnel",
            DropReason::OverlayNoHost => "to a node on another host whose host is unknown",
            DropReason::OverlayMalformed => "arrived on the overlay device without tunnel metadata",
            DropReason::OverlayNoDestination => "arrived through the overlay for an address with no local node",
        }
    }

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
            DropReason::ConntrackAllowanceExceeded => "conntrack_allowance_exceeded",
            DropReason::LinklocalAllowanceExceeded => "linklocal_allowance_exceeded",
            DropReason::VlanTagged => "vlan_tagged",
            DropReason::CtClash => "ct_clash",
            DropReason::OverlayNeedsTc => "overlay_needs_tc",
            DropReason::OverlayNoHost => "overlay_no_host",
            DropReason::OverlayMalformed => "overlay_malformed",
            DropReason::OverlayNoDestination => "overlay_no_destination",
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

//! Names of the eBPF object's maps, as userspace looks them up. aya-ebpf
//! names a map after its static (`vpc-ebpf/src/maps.rs`, `bench.rs`,
//! `tput.rs`); a unit test in vpc-userspace checks `ALL` against the built
//! object.

/// Router-side ifindex -> `PortInfo`.
pub const PORTS: &str = "PORTS";
/// Per router port (`port_slot`): the address space of its packets, as
/// `port_space_slot` writes it; the established path's one read of its
/// port (an array read where `PORTS` is a hash lookup).
pub const PORT_SPACES: &str = "PORT_SPACES";
/// Address -> `Endpoint`: where a destination lives.
pub const ENDPOINTS: &str = "ENDPOINTS";
/// ENI id -> `HyperplaneEni` (NAT gateways included).
pub const ENIS: &str = "ENIS";
/// Group id -> `EniGroup`: the ENIs of one (subnet, security-group set).
pub const ENI_GROUPS: &str = "ENI_GROUPS";
/// `NatPortKey` -> the reply key of the connection holding the NAT port.
pub const NAT_PORTS: &str = "NAT_PORTS";
/// Free-port bitmap of Hyperplane ENI pools (`NAT_BITMAP_*`), the index the
/// datapath allocates from; mappable: the agent clears a released port's
/// bit with an atomic of its own.
pub const NAT_PORT_BITMAP: &str = "NAT_PORT_BITMAP";
/// `FragKey` -> `FragEntry`: datagrams whose first fragment passed a NAT gateway.
pub const FRAGS: &str = "FRAGS";
/// Translated `FragKey` -> `FragClaim`: the datagram holding that identity.
pub const FRAG_IDS: &str = "FRAG_IDS";
/// Per-CPU NAT port allocation counters (`NAT_STAT_*`).
pub const NAT_STATS: &str = "NAT_STATS";
/// Security groups: (policy, direction, peer prefix) -> peer class.
pub const SG_PREFIXES: &str = "SG_PREFIXES";
/// Security groups: (class, protocol, port prefix) -> allowed.
pub const SG_PORTS: &str = "SG_PORTS";
/// Network ACLs: (ACL, direction, peer prefix) -> class.
pub const ACL_PREFIXES: &str = "ACL_PREFIXES";
/// Network ACLs: (class, protocol, port prefix) -> allow or deny.
pub const ACL_PORTS: &str = "ACL_PORTS";
/// Subnet index (per generation) -> its network ACL id.
pub const SUBNET_ACLS: &str = "SUBNET_ACLS";
/// Route tables: `RouteKey` -> `RouteTarget`.
pub const ROUTES: &str = "ROUTES";
/// Subnet index (per generation) -> its route table id.
pub const SUBNET_ROUTE_TABLES: &str = "SUBNET_ROUTE_TABLES";
/// The internet gateway's 1:1 NAT: public -> private address.
pub const PUBLIC_TO_PRIVATE: &str = "PUBLIC_TO_PRIVATE";
/// ... and private -> public.
pub const PRIVATE_TO_PUBLIC: &str = "PRIVATE_TO_PUBLIC";
/// Connection tracking: `CtKey` -> `CtEntry`.
pub const CT: &str = "CT";
/// Per-CPU packet counters: forwarded, then one per `DropReason`.
pub const STATS: &str = "STATS";
/// Idle timeouts and settings, indexed by `cfg`.
pub const CONFIG: &str = "CONFIG";
/// Per-CPU working state of one packet (too big for the stack).
pub const SCRATCH: &str = "SCRATCH";
/// Benchmark harness settings.
pub const BENCH: &str = "BENCH";
/// Benchmark harness: per-CPU working state (the saved frame, the run's
/// connection), apart from the router's `SCRATCH`.
pub const BENCH_SCRATCH: &str = "BENCH_SCRATCH";
/// Per-CPU packets per router port, forwarded and dropped (`port_stat_index`).
pub const PORT_STATS: &str = "PORT_STATS";
/// Per-CPU drops per router port and reason (`port_drop_key`; LRU).
pub const PORT_DROPS: &str = "PORT_DROPS";
/// Per-CPU packets forwarded per Hyperplane ENI.
pub const ENI_STATS: &str = "ENI_STATS";
/// Flow logs: `FlowRejectKey` -> `FlowWindow`, rejected flows per window.
pub const FL_REJECTS: &str = "FL_REJECTS";
/// Flow logs: ring buffer of new rejected flows.
pub const FL_EVENTS: &str = "FL_EVENTS";
/// Flow logs: per-CPU counters (`FL_STAT_*`).
pub const FL_STATS: &str = "FL_STATS";
/// Throughput harness: reflector settings (flows, ports, stop).
pub const TPUT_CFG: &str = "TPUT_CFG";
/// Throughput harness: per-CPU frames reflected and drained.
pub const TPUT_COUNT: &str = "TPUT_COUNT";
/// Throughput harness: limit path, ingress ifindex -> egress and MACs.
pub const TPUT_REDIRECT: &str = "TPUT_REDIRECT";
/// Connections each router port opened that are tracked now (its
/// conntrack allowance's count): the datapath adds one per new connection,
/// and whoever removes an original-direction entry takes it back (the
/// agent through a shared mapping: atomic on both sides).
pub const PORT_CONNECTIONS: &str = "PORT_CONNECTIONS";
/// Per router port: the linklocal allowance's token bucket (GCRA: the
/// theoretical arrival time of its next packet).
pub const LINKLOCAL_BUCKETS: &str = "LINKLOCAL_BUCKETS";
/// Per-CPU drops per router port of each allowance (`allowance_stat_index`).
pub const ALLOWANCE_STATS: &str = "ALLOWANCE_STATS";
/// Across hosts: a stand-in port's pseudo ifindex -> `RemotePort` (the
/// underlay address of its node's host, the VNI).
pub const REMOTE_PORTS: &str = "REMOTE_PORTS";
/// Across hosts: the reply key of a flow another host owns, delivered
/// here -> `Relay` (where its answers go back); LRU.
pub const RELAYS: &str = "RELAYS";
/// NAT port slices this host leases: virtual slice -> 1 + physical slice
/// (0: the same slice).
pub const PORT_SLICES: &str = "PORT_SLICES";
/// `vpc trace`: aya-log's ring buffer of log records (`aya-log-ebpf`
/// names it; `aya-log` finds it from the router's program id).
pub const AYA_LOGS: &str = "AYA_LOGS";

/// Every map of the object.
pub const ALL: &[&str] = &[
    PORTS,
    PORT_SPACES,
    ENDPOINTS,
    ENIS,
    ENI_GROUPS,
    NAT_PORTS,
    NAT_PORT_BITMAP,
    FRAGS,
    FRAG_IDS,
    NAT_STATS,
    SG_PREFIXES,
    SG_PORTS,
    ACL_PREFIXES,
    ACL_PORTS,
    SUBNET_ACLS,
    ROUTES,
    SUBNET_ROUTE_TABLES,
    PUBLIC_TO_PRIVATE,
    PRIVATE_TO_PUBLIC,
    CT,
    STATS,
    CONFIG,
    SCRATCH,
    BENCH,
    BENCH_SCRATCH,
    PORT_STATS,
    PORT_DROPS,
    ENI_STATS,
    FL_REJECTS,
    FL_EVENTS,
    FL_STATS,
    TPUT_CFG,
    TPUT_COUNT,
    TPUT_REDIRECT,
    PORT_CONNECTIONS,
    LINKLOCAL_BUCKETS,
    ALLOWANCE_STATS,
    REMOTE_PORTS,
    RELAYS,
    PORT_SLICES,
    AYA_LOGS,
];

//! Every map the router uses (the harnesses keep theirs: `bench.rs`,
//! `tput.rs`). Userspace fills all but `CT`, `STATS` and `SCRATCH`; names
//! here are the names userspace looks up.
use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_F_NO_PREALLOC},
    macros::map,
    maps::{lpm_trie::LpmTrie, Array, HashMap, LruHashMap, LruPerCpuHashMap, PerCpuArray, RingBuf},
};
use vpc_common::*;

use crate::parse::{Packet, Quote};

// Maps userspace rewrites while packets read them (ports, endpoints, ENIs,
// ENI groups) are not preallocated: a replaced value is freed only after
// the readers of the old one are done (RCU), so a reader sees one whole
// version, never a reused element. Lookups cost the same; only updates
// allocate, and they are rare.

/// Router-side ifindex -> what is behind it.
#[map]
pub static PORTS: HashMap<u32, PortInfo> = HashMap::with_max_entries(MAX_PORTS, BPF_F_NO_PREALLOC);

/// Per router port (`port_slot`): its address space, `port_space_slot`
/// (read through `port::space`).
#[map]
pub static PORT_SPACES: Array<u32> = Array::with_max_entries(MAX_PORTS, 0);

/// (address space, address (16 bytes, IPv4-mapped for v4)) -> where it
/// lives. Separate VPCs may hold the same address, each in its own space.
#[map]
pub static ENDPOINTS: HashMap<AddrKey, Endpoint> =
    HashMap::with_max_entries(MAX_ENDPOINTS, BPF_F_NO_PREALLOC);

/// ENI id -> Hyperplane ENI.
#[map]
pub static ENIS: HashMap<u32, HyperplaneEni> =
    HashMap::with_max_entries(MAX_ENIS, BPF_F_NO_PREALLOC);

/// Group id -> the ENIs of one (subnet, security-group set), in order.
#[map]
pub static ENI_GROUPS: HashMap<u32, EniGroup> =
    HashMap::with_max_entries(MAX_ENIS, BPF_F_NO_PREALLOC);

/// (ENI, protocol, NAT port) -> the reply key of the connection holding
/// it. Claimed with `BPF_NOEXIST` by a new function connection; released by
/// the agent's GC together with the connection. One per connection: half
/// of `CT` (sized at load).
#[map]
pub static NAT_PORTS: HashMap<NatPortKey, CtKey> = HashMap::with_max_entries(CT_MAX_ENTRIES / 2, 0);

/// The allocation index of Hyperplane ENI pools: a bit per port, set
/// while it is claimed (`vpc_common::nat_bitmap_bit`; 15.75 MiB). Set by
/// the allocator before its claim, cleared by whoever removes a claim,
/// after it: a set bit without a claim costs a retry, a claim without its
/// bit is caught by `BPF_NOEXIST`. Mappable: the agent's GC clears with an
/// atomic of its own on the same memory.
#[map]
pub static NAT_PORT_BITMAP: Array<u64> = Array::with_max_entries(NAT_BITMAP_LEN, BPF_F_MMAPABLE);

/// IPv4 datagrams through a NAT gateway whose first fragment passed: the
/// connection direction (its key) their later fragments, which carry no
/// ports, belong to. Written by each first fragment; LRU.
#[map]
pub static FRAGS: LruHashMap<FragKey, FragEntry> = LruHashMap::with_max_entries(MAX_FRAGS, 0);

/// Translated datagram identities in flight -> the datagram holding each
/// (`frag::first`). LRU: a lost claim drops its datagram's later
/// fragments, never mixes two datagrams.
#[map]
pub static FRAG_IDS: LruHashMap<FragKey, FragClaim> = LruHashMap::with_max_entries(MAX_FRAGS, 0);

/// Per-CPU NAT allocation counters: failures, probe histogram
/// (`vpc_common::NAT_STAT_*`).
#[map]
pub static NAT_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(NAT_STATS_LEN, 0);

/// (policy, direction, peer prefix) -> peer class.
#[map]
pub static SG_PREFIXES: LpmTrie<SgPrefixKey, u32> =
    LpmTrie::with_max_entries(MAX_POLICY_PREFIXES, BPF_F_NO_PREALLOC);

/// (peer class, protocol, port prefix) -> allowed (1).
#[map]
pub static SG_PORTS: LpmTrie<SgPortKey, u8> =
    LpmTrie::with_max_entries(MAX_POLICY_PORTS, BPF_F_NO_PREALLOC);

/// Network ACLs, same key shapes: (ACL, direction, peer prefix) -> class.
#[map]
pub static ACL_PREFIXES: LpmTrie<SgPrefixKey, u32> =
    LpmTrie::with_max_entries(MAX_POLICY_PREFIXES, BPF_F_NO_PREALLOC);

/// (class, protocol, port prefix) -> 1 allow / 0 deny, first match already
/// resolved by the compiler.
#[map]
pub static ACL_PORTS: LpmTrie<SgPortKey, u8> =
    LpmTrie::with_max_entries(MAX_POLICY_PORTS, BPF_F_NO_PREALLOC);

/// Subnet index -> its network ACL id (0: the VPC's default, allow all).
/// Re-associating a subnet is one write here.
#[map]
pub static SUBNET_ACLS: Array<u32> = Array::with_max_entries(MAX_SUBNETS * GENERATIONS, 0);

/// Route tables: (table, family, destination prefix) -> target. Longest
/// prefix match per family in one lookup; table ids carry their generation.
#[map]
pub static ROUTES: LpmTrie<RouteKey, RouteTarget> =
    LpmTrie::with_max_entries(MAX_ROUTES, BPF_F_NO_PREALLOC);

/// Subnet index -> its route table id (the VPC's main table unless
/// associated), one block per generation, as `SUBNET_ACLS`.
#[map]
pub static SUBNET_ROUTE_TABLES: Array<u32> = Array::with_max_entries(MAX_SUBNETS * GENERATIONS, 0);

/// The internet gateway's 1:1 NAT, one map per direction: a public
/// address to its host's private one in its VPC's space, and back. Two
/// maps, not one keyed by both: a private address that equals a public one
/// (a VPC overlapping the public pool, refused by the model anyway) can
/// never be read as the other, so no host leaves as another or receives
/// another's traffic.
#[map]
pub static PUBLIC_TO_PRIVATE: HashMap<[u8; 16], AddrKey> =
    HashMap::with_max_entries(MAX_PUBLIC_IPS, BPF_F_NO_PREALLOC);

#[map]
pub static PRIVATE_TO_PUBLIC: HashMap<AddrKey, [u8; 16]> =
    HashMap::with_max_entries(MAX_PUBLIC_IPS, BPF_F_NO_PREALLOC);

/// Connection tracking and NAT state. A plain hash, as at AWS: when the
/// table is full new connections are dropped (`ct_full`); nothing tracked
/// is evicted behind its back. The agent's GC reclaims expired entries.
/// Preallocated: an element replaced or deleted goes back to the free list
/// at once, so a reader on another CPU in that instant may see the next
/// connection's fields; only a tuple reopened or collected at that moment
/// is exposed, and `BPF_F_NO_PREALLOC` (an allocation per new connection)
/// is not worth that window.
#[map]
pub static CT: HashMap<CtKey, CtEntry> = HashMap::with_max_entries(CT_MAX_ENTRIES, 0);

/// Across hosts: a stand-in port (pseudo ifindex, `REMOTE_PORT_FLAG`) ->
/// the host its node is on (`overlay::send`).
#[map]
pub static REMOTE_PORTS: HashMap<u32, RemotePort> =
    HashMap::with_max_entries(MAX_REMOTE_PORTS, BPF_F_NO_PREALLOC);

/// Across hosts: the reply key of a flow another host owns and delivered
/// here -> where its answers go back (`overlay::arrival_deliver`,
/// `overlay::relay`). LRU: a relay is forgotten only when idle the longest,
/// and the owner's conntrack, not this, decides what is allowed.
#[map]
pub static RELAYS: LruHashMap<CtKey, Relay> = LruHashMap::with_max_entries(MAX_RELAYS, 0);

/// The NAT port slices this host leases: entry j = 1 + the physical slice
/// of every pool's virtual slice j, 0 = slice j itself
/// (`port_allocation::phys`).
#[map]
pub static PORT_SLICES: Array<u32> = Array::with_max_entries(NAT_SLICES, 0);

/// Per-CPU packet counters: index 0 forwarded, then one per `DropReason`.
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STATS_LEN, 0);

/// Settings, indexed by `vpc_common::cfg`; read through `config.rs`.
#[map]
pub static CONFIG: Array<u64> = Array::with_max_entries(cfg::LEN, 0);

/// Per-packet working state. It lives in a per-CPU map because the parsed
/// packet, two keys and two entries would not fit the 512-byte stack.
pub struct Scratch {
    pub pkt: Packet,
    /// The packet an ICMP error quotes.
    pub quote: Quote,
    pub key: CtKey,
    pub reply_key: CtKey,
    pub orig: CtEntry,
    pub reply: CtEntry,
    /// A rejected flow for flow logs.
    pub fl_key: FlowRejectKey,
    /// The NAT port claim of a new connection through a Hyperplane ENI or
    /// a NAT gateway.
    pub claim: NatPortKey,
    /// A new flow into a NAT gateway (`nat_gateway::hop`): here, not on
    /// the stack, which three calls deep has no room for it. The internet
    /// gateway keeps the address it translates to or from in its `addr`.
    pub hop: NatHop,
    /// The tunnel a packet from the overlay came through (`ifindex`
    /// unused): where a relay of its flow sends answers back.
    pub tunnel: Relay,
    /// The NAT port slices of an allocation (`port_allocation::load_slices`).
    pub slices: u64,
}

/// A new flow into NAT gateway `id`, and who sends it as the VPC sees it:
/// a host, or a function's Hyperplane ENI (its groups, subnet, address).
pub struct NatHop {
    pub id: u32,
    pub ifindex: u32,
    pub epoch: u32,
    pub subnet: u32,
    pub now: u64,
    pub policy: [u32; 2],
    pub addr: [u8; 16],
    /// A function's: its ENI group (`NO_GROUP` for a host), then the
    /// Hyperplane ENI that gave it a port (`HyperplaneEni::pool`; 0 until
    /// then, and again once the connection's entries hold the claim) and
    /// that claim.
    pub group: u32,
    pub eni: u32,
    pub eni_claim: NatPortKey,
}

/// `NatHop::group` of a host's flow.
pub const NO_GROUP: u32 = u32::MAX;

#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU packets by the router port they arrived on, forwarded and
/// dropped (`vpc_common::port_stat_index`).
#[map]
pub static PORT_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(PORT_STATS_LEN, 0);

/// Per-CPU drops by the router port they arrived on and their reason
/// (`vpc_common::port_drop_key`): beside `PORT_STATS`' total, which they
/// sum to. A hash (a port drops for a few reasons), LRU so it never fills.
#[map]
pub static PORT_DROPS: LruPerCpuHashMap<u32, u64> =
    LruPerCpuHashMap::with_max_entries(PORT_DROPS_MAX, 0);

/// Per router port (`port_slot`): the connections it opened that are
/// tracked now, its conntrack allowance's count (see `allowance.rs`). Read
/// as signed: a release that raced an eviction may take it below zero for
/// a moment, which only makes the allowance more lenient. Mappable: the
/// agent's GC takes back what it removes with an atomic of its own, on the
/// same memory, while packets add.
#[map]
pub static PORT_CONNECTIONS: Array<u64> = Array::with_max_entries(MAX_PORTS, BPF_F_MMAPABLE);

/// Per router port: the linklocal allowance's bucket, as the theoretical
/// arrival time (ns, the conntrack clock) of its next packet (GCRA).
#[map]
pub static LINKLOCAL_BUCKETS: Array<u64> = Array::with_max_entries(MAX_PORTS, 0);

/// Per-CPU drops of each port's allowances (`allowance_stat_index`).
#[map]
pub static ALLOWANCE_STATS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(ALLOWANCE_STATS_LEN, 0);

/// Per-CPU packets forwarded through each Hyperplane ENI (by its index,
/// `HyperplaneEni::pool`), both directions.
#[map]
pub static ENI_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_ENIS, 0);

/// Flow logs: rejected flows aggregated per (flow, reason, window); the
/// agent takes each one out after its window (see `flowlog.rs`).
#[map]
pub static FL_REJECTS: LruHashMap<FlowRejectKey, FlowWindow> =
    LruHashMap::with_max_entries(FL_MAX_REJECTS, 0);

/// Flow logs: one event per new rejected flow and window (sized at load).
#[map]
pub static FL_EVENTS: RingBuf = RingBuf::with_byte_size(FL_RINGBUF_BYTES, 0);

/// Flow logs, per CPU: events lost (ring buffer full), events sent
/// (`vpc_common::FL_STAT_*`).
#[map]
pub static FL_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(FL_STATS_LEN, 0);

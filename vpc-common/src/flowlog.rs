//! Flow logs: per-window counters, rejected flows and their counters.

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
    /// `FL_GW_*`: refused on the way to or through a gateway's interface.
    pub gateway: u8,
    pub _pad: u8,
    pub window: u32,
    /// A NAT gateway connection's port toward the internet (network order;
    /// 0: none claimed yet).
    pub gw_port: u16,
    /// The NAT gateway's `ENIS` id (its port pool; 0: none).
    pub gw_id: u16,
}
const _: () = assert!(core::mem::size_of::<FlowRejectKey>() == 80);

/// `FlowRejectKey::gateway`: a host's or a function's own flow (the sender's
/// or receiver's interface refused it, as `reason` says).
pub const FL_GW_NONE: u8 = 0;
/// A new flow into a NAT gateway, refused by the sender's outbound rules
/// or ACL (the sender's interface logs it) or by the gateway subnet's
/// inbound ACL (the gateway's interface logs it).
pub const FL_GW_NAT_IN: u8 = 1;
/// A new flow through a NAT gateway, refused leaving it toward the internet
/// (its subnet's outbound ACL): REJECT on the gateway's interface.
pub const FL_GW_NAT_OUT: u8 = 2;
/// A reply of a NAT gateway connection refused entering the gateway's
/// subnet from the internet (its inbound ACL): REJECT on its interface.
pub const FL_GW_NAT_REPLY_IN: u8 = 3;
/// A reply refused leaving the gateway toward the sender (the gateway
/// subnet's outbound ACL): REJECT on its interface.
pub const FL_GW_NAT_REPLY_OUT: u8 = 4;
/// A reply refused entering the sender's subnet (its inbound ACL): the
/// gateway passed it, REJECT on the sender's interface.
pub const FL_GW_NAT_REPLY_SENDER: u8 = 5;

/// `FL_STATS` (per CPU) indexes.
pub const FL_STAT_LOST: u32 = 0;
pub const FL_STAT_EVENTS: u32 = 1;
pub const FL_STAT_REJECT_MAP_FULL: u32 = 2;
pub const FL_STATS_LEN: u32 = 4;
/// Default flow-log ring buffer size (bytes, a power of two of pages).
pub const FL_RINGBUF_BYTES: u32 = 256 * 1024;
/// The window rejects are recorded in while no flow log exists and the
/// agent records drops (`cfg::RECORD_DROPS`): flow-log windows count from
/// 1 and never reach it. The agent takes these entries out of
/// `FL_REJECTS` itself.
pub const FL_DROPS_WINDOW: u32 = u32::MAX;
/// Rejected flows aggregated per window (LRU).
pub const FL_MAX_REJECTS: u32 = 65_536;

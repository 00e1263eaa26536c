//! Connection tracking: keys, entries, states and flags.

use crate::flowlog::FlowWindow;

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
    /// The address space of both addresses (`addr_space`): the source's
    /// VPC, or the global space. A NATed connection's directions may be
    /// in different spaces (a Hyperplane ENI's: the original in the
    /// global space, the reply in the ENI's VPC).
    pub space: u16,
}
const _: () = assert!(core::mem::size_of::<CtKey>() == 40);

/// Connection states kept in the original-direction entry.
pub mod ct_state {
    pub const NEW: u8 = 0;
    pub const SYN_SENT: u8 = 1;
    pub const ESTABLISHED: u8 = 2;
    /// One side sent FIN: packets still refresh it (a half-closed
    /// connection may carry data for long).
    pub const CLOSING: u8 = 3;
    /// Both sides sent FIN: the last ACK and retransmissions pass, but no
    /// packet refreshes it any more (TIME_WAIT-like: `tcp-closed` from the
    /// moment it closed).
    pub const CLOSED: u8 = 4;
    /// A RST was seen: nothing after it is forwarded as part of the
    /// connection, and the GC removes it at its next pass.
    pub const RESET: u8 = 5;
}

pub const CT_DIR_ORIG: u8 = 0;
pub const CT_DIR_REPLY: u8 = 1;

/// Entry flags.
pub const CT_F_SNAT: u8 = 1;
pub const CT_F_DNAT: u8 = 2;
pub const CT_F_FIN_ORIG: u8 = 4;
pub const CT_F_FIN_REPLY: u8 = 8;
/// This direction goes to the VPC resolver (the original direction of a
/// DNS flow to it): each of its packets takes a token of the sender's
/// linklocal allowance.
pub const CT_F_LINKLOCAL: u8 = 16;

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
    /// What the original direction's destination is (`kind`): an
    /// interface endpoint's connections have its idle timeout.
    pub peer: u8,
    pub _pad1: u8,
    /// A function's connection through a NAT gateway: the Hyperplane ENI
    /// it leaves from (`HyperplaneEni::pool`) and that ENI's NAT port
    /// (network order), the connection's first claim, as AWS translates it
    /// twice (`eni` and `nat_port` are the gateway's); 0 otherwise.
    pub fn_eni: u16,
    pub fn_eni_port: u16,
    pub mac: [u8; 6],
    pub router_mac: [u8; 6],
    /// Rewrite for this direction: new source (SNAT) or destination (DNAT).
    pub nat_addr: [u8; 16],
    /// The other direction's key.
    pub twin: CtKey,
    pub _pad2: u32,
    /// Flow-log counters of this direction, one slot per window parity
    /// (see [`FlowWindow`]).
    pub fl: [FlowWindow; 2],
}
const _: () = assert!(core::mem::size_of::<CtEntry>() == 224);

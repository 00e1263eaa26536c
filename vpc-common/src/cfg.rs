//! `CONFIG` array indexes: idle timeouts in nanoseconds, then the generation.

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
/// `vpc trace`: 1 logs every verdict of the router through aya-log (its
/// `AYA_LOGS` ring buffer), 0 (the default) logs nothing.
pub const TRACE: u32 = 14;
/// In a trace record's `detail`, beside a drop's reason: the packet was
/// not parsed (its tuple means nothing).
pub const TRACE_NO_TUPLE: u32 = 0x100;
/// Conntrack allowance: connections each interface may have tracked at
/// once (those it opened); a new one past it is dropped as
/// `conntrack_allowance_exceeded`. 0: no allowance (the table's size
/// alone bounds it).
pub const CT_ALLOWANCE: u32 = 15;
/// Linklocal allowance: packets per second each interface may send to the
/// VPC resolver (0: `DEFAULT_LINKLOCAL_PPS`, AWS's 1,024); past it,
/// `linklocal_allowance_exceeded`.
pub const LINKLOCAL_PPS: u32 = 16;
/// Idle timeout (ns) of a connection to an interface endpoint (AWS: 350 s,
/// then a RST, as a NAT gateway's).
pub const ENDPOINT_IDLE: u32 = 17;
/// The ifindex of the overlay device (a VXLAN device in external mode,
/// `vx0`) in the router namespace; 0: no overlay, one host.
pub const OVERLAY_IFINDEX: u32 = 18;
/// 1 while an agent runs (it records every rejected flow, flow log or
/// not): with no flow-log window in force, rejects are recorded under
/// `FL_DROPS_WINDOW`. 0 (the agent stopped cleanly): only a flow log's
/// window records them.
pub const RECORD_DROPS: u32 = 19;
pub const LEN: u32 = 20;

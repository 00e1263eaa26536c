//! Router ports: what the agent says of each (`PORTS`, a hash by ifindex)
//! and, for the established path, its address space alone
//! (`PORT_SPACES`, an array by `port_slot`): a packet's conntrack key holds
//! the space of the port it arrives on, and an array read costs a few
//! instructions where the hash lookup costs a hashed key and a bucket walk.
use vpc_common::{addr_space, port_slot, PortInfo, GLOBAL_SPACE};

use crate::maps::{PORTS, PORT_SPACES};

/// The port `ifindex`, if it is one of ours.
#[inline(always)]
pub fn info(ifindex: u32) -> Option<&'static PortInfo> {
    unsafe { PORTS.get(&ifindex) }
}

/// The address space of a packet (IPv6 `v6`) arriving on port `ifindex`:
/// its VPC's (IPv4), the global one for IPv6 and for a port that is not
/// ours. From `PORT_SPACES`, or `PORTS` for a port it does not know (a slot
/// never written, or shared from `MAX_PORTS` on).
#[inline(always)]
pub fn space(ifindex: u32, v6: bool) -> u32 {
    if v6 {
        return GLOBAL_SPACE;
    }
    let slot = port_slot(ifindex);
    if slot != 0 {
        if let Some(&s) = PORT_SPACES.get(slot) {
            if s != 0 {
                return s - 1;
            }
        }
    }
    match info(ifindex) {
        Some(port) => addr_space(port.vpc, false),
        None => GLOBAL_SPACE,
    }
}

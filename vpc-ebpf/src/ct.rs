//! Connection tracking: state machine and idle timeouts.
use vpc_common::{
    cfg, ct_state, route_kind, CtEntry, CtKey, CT_DIR_ORIG, CT_F_FIN_ORIG, CT_F_FIN_REPLY,
};

use crate::{
    maps::CONFIG,
    parse::{
        Packet, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_FIN, TCP_RST,
        TCP_SYN,
    },
};

/// CLOCK_MONOTONIC at tick resolution: idle timeouts are seconds, and the
/// coarse clock costs a load where the precise one reads the TSC. Plus
/// what a test clock was moved by (`cfg::CLOCK_OFFSET`, 0 on a real one).
#[inline(always)]
pub fn now() -> u64 {
    let t = unsafe { aya_ebpf::helpers::bpf_ktime_get_coarse_ns() };
    t.wrapping_add(config(cfg::CLOCK_OFFSET))
}

#[inline(always)]
fn config(idx: u32) -> u64 {
    match CONFIG.get(idx) {
        Some(v) => *v,
        None => 0,
    }
}

/// Idle timeout of a connection in its current state.
#[inline(always)]
pub fn timeout(proto: u8, e: &CtEntry) -> u64 {
    let idx = match proto {
        IPPROTO_TCP => match e.state {
            ct_state::ESTABLISHED => cfg::TCP_ESTABLISHED,
            ct_state::CLOSING => cfg::TCP_CLOSING,
            ct_state::CLOSED => cfg::TCP_CLOSED,
            _ => cfg::TCP_SYN,
        },
        IPPROTO_UDP => {
            if e.packets_orig >= 2 && e.packets_reply >= 2 {
                cfg::UDP_STREAM
            } else {
                cfg::UDP
            }
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => cfg::ICMP,
        _ => cfg::OTHER,
    };
    let t = config(idx);
    // A NAT gateway forgets a connection idle for its own timeout.
    if e.route == route_kind::NAT_GATEWAY {
        let nat = config(cfg::NAT_GATEWAY_IDLE);
        if nat != 0 && nat < t {
            return nat;
        }
    }
    t
}

#[inline(always)]
pub fn expired(proto: u8, e: &CtEntry, now: u64) -> bool {
    now.saturating_sub(e.last_seen) > timeout(proto, e)
}

/// Key of the reply direction as it will arrive at the router.
#[inline(always)]
pub fn reply_key(k: &CtKey, icmp: bool) -> CtKey {
    CtKey {
        saddr: k.daddr,
        daddr: k.saddr,
        // ICMP echo: same identifier, and the reply's type (0 / 129).
        sport: if icmp { k.sport } else { k.dport },
        dport: if icmp {
            echo_reply_type(k.dport)
        } else {
            k.sport
        },
        proto: k.proto,
        _pad0: 0,
        _pad1: 0,
    }
}

/// The echo reply type for an echo request type held in a key's `dport`.
#[inline(always)]
fn echo_reply_type(request: u16) -> u16 {
    if request == 128 {
        129
    } else {
        0
    }
}

/// Does this packet open a new connection of its protocol?
#[inline(always)]
pub fn opens(p: &Packet) -> bool {
    match p.proto {
        IPPROTO_TCP => p.tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN,
        IPPROTO_ICMP | IPPROTO_ICMPV6 => p.is_echo_request(),
        _ => true,
    }
}

/// Advances the original-direction entry `e` for a packet seen in `dir`.
#[inline(always)]
pub fn update(e: &mut CtEntry, p: &Packet, dir: u8, now: u64) {
    e.last_seen = now;
    if dir == CT_DIR_ORIG {
        e.packets_orig = e.packets_orig.wrapping_add(p.segs);
        e.bytes_orig = e.bytes_orig.wrapping_add(p.ip_len as u64);
    } else {
        e.packets_reply = e.packets_reply.wrapping_add(p.segs);
        e.bytes_reply = e.bytes_reply.wrapping_add(p.ip_len as u64);
    }
    if p.proto != IPPROTO_TCP {
        return;
    }
    let f = p.tcp_flags;
    if f & TCP_RST != 0 {
        e.state = ct_state::CLOSED;
        return;
    }
    if e.state == ct_state::SYN_SENT
        && dir != CT_DIR_ORIG
        && f & (TCP_SYN | TCP_ACK) == (TCP_SYN | TCP_ACK)
    {
        e.state = ct_state::ESTABLISHED;
    }
    if f & TCP_FIN != 0 {
        e.flags |= if dir == CT_DIR_ORIG {
            CT_F_FIN_ORIG
        } else {
            CT_F_FIN_REPLY
        };
        e.state = if e.flags & (CT_F_FIN_ORIG | CT_F_FIN_REPLY) == (CT_F_FIN_ORIG | CT_F_FIN_REPLY)
        {
            ct_state::CLOSED
        } else {
            ct_state::CLOSING
        };
    }
}

/// State of a connection opened by `p`.
#[inline(always)]
pub fn initial_state(p: &Packet) -> u8 {
    if p.proto == IPPROTO_TCP {
        ct_state::SYN_SENT
    } else {
        ct_state::NEW
    }
}

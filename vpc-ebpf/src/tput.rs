//! Throughput harness programs: the reflector that keeps frames circulating
//! through the path under test, and the bare-redirect limit path. Not part
//! of the router.
//!
//! The reflector sits on both endpoints' `eth0`. Every IPv4 UDP frame it
//! receives goes back out of the interface it came in on (MACs, addresses and ports
//! swapped: a reply, so NAT and conntrack treat it as the other direction
//! of the same flow), so a handful of frames injected once circulate
//! through the path until told to stop. Nothing generates frames while a
//! figure is taken: each reflection is one more pass through the path.
use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_redirect,
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
    programs::XdpContext,
};

use network_types::{eth::EtherType, ip::Ipv4Hdr};
use vpc_common::tput;

use crate::{
    csum,
    ctx::{read, write},
    parse::{
        ETH_DST, ETH_HLEN, ETH_TYPE, IPPROTO_UDP, IPV4_CHECK, IPV4_DST, IPV4_PROTO, IPV4_SRC,
        IPV4_TTL, IP_VERSION, L4_SPORT,
    },
};

/// The reflector's settings, by `vpc_common::tput::CFG_*` slot.
#[map]
pub static TPUT_CFG: Array<u32> = Array::with_max_entries(tput::CFG_LEN, 0);

/// Per CPU, by `vpc_common::tput::COUNT_*` slot: frames reflected, frames
/// drained, the flow counter.
#[map]
pub static TPUT_COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(tput::COUNT_LEN, 0);

/// Limit path: ingress ifindex -> (egress ifindex, dst MAC, src MAC) packed
/// as [ifindex, mac(6) + mac(6) in 3 words].
#[map]
pub static TPUT_REDIRECT: HashMap<u32, [u32; 4]> = HashMap::with_max_entries(64, 0);

/// IPv4 without options: TTL/protocol word, header checksum, addresses, ports.
const TTL_OFF: usize = ETH_HLEN + IPV4_TTL;
const IP_CSUM_OFF: usize = ETH_HLEN + IPV4_CHECK;
const SADDR_OFF: usize = ETH_HLEN + IPV4_SRC;
const UDP_SPORT_OFF: usize = ETH_HLEN + Ipv4Hdr::LEN + L4_SPORT;
const _: () = assert!(IPV4_PROTO == IPV4_TTL + 1 && IPV4_DST == IPV4_SRC + 4);
/// Reset on every reflection: kernel forwarding (the nftables path)
/// decrements it, our router does not.
const TTL: u8 = 64;

#[inline(always)]
fn cfg(i: u32) -> u32 {
    TPUT_CFG.get(i).copied().unwrap_or(0)
}

#[inline(always)]
fn count(i: u32) -> u64 {
    match TPUT_COUNT.get_ptr_mut(i) {
        Some(c) => unsafe {
            let n = *c;
            *c = n.wrapping_add(1);
            n
        },
        None => 0,
    }
}

#[inline(always)]
pub fn reflect(ctx: &XdpContext) -> u32 {
    match try_reflect(ctx) {
        Some(action) => action,
        // Not ours (too short, not IPv4 UDP without options): the stack's.
        None => xdp_action::XDP_PASS,
    }
}

#[inline(always)]
fn try_reflect(ctx: &XdpContext) -> Option<u32> {
    let eth_type = read::<u16>(ctx, ETH_TYPE).ok()?;
    let ver_ihl = read::<u8>(ctx, ETH_HLEN + IP_VERSION).ok()?;
    let ttl_proto = read::<[u8; 2]>(ctx, TTL_OFF).ok()?;
    if eth_type != EtherType::Ipv4 as u16 || ver_ihl != 0x45 || ttl_proto[1] != IPPROTO_UDP {
        return None;
    }
    if cfg(tput::CFG_STOP) != 0 {
        count(tput::COUNT_DRAINED);
        return Some(xdp_action::XDP_DROP);
    }
    let macs = read::<[[u8; 6]; 2]>(ctx, ETH_DST).ok()?;
    let addrs = read::<[u32; 2]>(ctx, SADDR_OFF).ok()?;
    let mut ports = read::<[u16; 2]>(ctx, UDP_SPORT_OFF).ok()?;
    ports.swap(0, 1);
    // Sent to the server: the client's side turns the flows over.
    let flows = cfg(tput::CFG_FLOWS);
    if flows > 1 && u16::from_be(ports[1]) as u32 == cfg(tput::CFG_SERVER_PORT) {
        let n = count(tput::COUNT_FLOW);
        ports[0] = ((cfg(tput::CFG_CLIENT_PORT) as u64 + n % flows as u64) as u16).to_be();
    }
    let ip_csum = read::<u16>(ctx, IP_CSUM_OFF).ok()?;
    let old = u16::from_ne_bytes(ttl_proto);
    let new = u16::from_ne_bytes([TTL, ttl_proto[1]]);
    // Swapping addresses or ports changes no checksum (a sum does not
    // depend on order); the UDP checksum is 0 (none), so the port change
    // needs no fix-up either.
    write(ctx, ETH_DST, [macs[1], macs[0]]).ok()?;
    write(ctx, SADDR_OFF, [addrs[1], addrs[0]]).ok()?;
    write(ctx, UDP_SPORT_OFF, ports).ok()?;
    write(ctx, TTL_OFF, [TTL, ttl_proto[1]]).ok()?;
    write(ctx, IP_CSUM_OFF, csum::replace16(ip_csum, old, new)).ok()?;
    count(tput::COUNT_REFLECTED);
    // Out of the interface it came in on, by redirect rather than XDP_TX:
    // a veth kicks its peer's NAPI after XDP_TX only when the peer has an
    // XDP program, so frames sent back to a router port with none (TC,
    // nftables: NAPI from GRO) would wait in its ring for other traffic.
    Some(unsafe { bpf_redirect(ctx.ingress_ifindex() as u32, 0) } as u32)
}

#[inline(always)]
pub fn redirect(ctx: &XdpContext) -> u32 {
    let ifindex = ctx.ingress_ifindex() as u32;
    let Some(e) = (unsafe { TPUT_REDIRECT.get(&ifindex) }) else {
        return xdp_action::XDP_DROP;
    };
    let e = *e;
    let macs: [u8; 12] = unsafe { core::mem::transmute([e[1], e[2], e[3]]) };
    if write(ctx, ETH_DST, macs).is_err() {
        return xdp_action::XDP_DROP;
    }
    unsafe { bpf_redirect(e[0], 0) as u32 }
}

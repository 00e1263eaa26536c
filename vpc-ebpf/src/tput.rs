//! Throughput harness programs: a live-frames generator, a counting sink,
//! and the bare-redirect limit path. Not part of the router.
use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_redirect,
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
    programs::XdpContext,
};

use crate::parse;

/// The generator's frame, written over every frame it sends: the pages of
/// live frames come back rewritten by whatever forwarded them.
#[map]
pub static TPUT_TEMPLATE: Array<[u64; 8]> = Array::with_max_entries(1, 0);

/// [0] number of flows (distinct UDP source ports, from the template's).
#[map]
pub static TPUT_CFG: Array<u32> = Array::with_max_entries(2, 0);

/// Per CPU: [0] frames counted by the sink, [1] the generator's flow counter.
#[map]
pub static TPUT_COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

/// Limit path: ingress ifindex -> (egress ifindex, dst MAC, src MAC) packed
/// as [ifindex, mac(6) + mac(6) in 3 words].
#[map]
pub static TPUT_REDIRECT: HashMap<u32, [u32; 4]> = HashMap::with_max_entries(64, 0);

/// IPv4 UDP without options: source port at 34.
const UDP_SPORT_OFF: usize = 34;

#[inline(always)]
pub fn generate(ctx: &XdpContext) -> u32 {
    let (Some(t), Some(p)) = (TPUT_TEMPLATE.get(0), parse::ptr_at::<[u64; 8]>(ctx, 0)) else {
        return xdp_action::XDP_ABORTED;
    };
    parse::copy_words::<8>(p as *mut u64, t.as_ptr());
    let flows = TPUT_CFG.get(0).copied().unwrap_or(1);
    if flows > 1 {
        if let Some(c) = TPUT_COUNT.get_ptr_mut(1) {
            let n = unsafe { *c };
            unsafe { *c = n.wrapping_add(1) };
            let base = u16::from_be(parse::read::<u16>(ctx, UDP_SPORT_OFF).unwrap_or(0));
            let port = base.wrapping_add((n % flows as u64) as u16);
            // UDP checksum 0 (none): the port change needs no fix-up.
            let _ = parse::write(ctx, UDP_SPORT_OFF, port.to_be());
        }
    }
    xdp_action::XDP_TX
}

#[inline(always)]
pub fn sink() -> u32 {
    if let Some(c) = TPUT_COUNT.get_ptr_mut(0) {
        unsafe { *c += 1 };
    }
    xdp_action::XDP_DROP
}

#[inline(always)]
pub fn redirect(ctx: &XdpContext) -> u32 {
    let ifindex = ctx.ingress_ifindex() as u32;
    let Some(e) = (unsafe { TPUT_REDIRECT.get(&ifindex) }) else {
        return xdp_action::XDP_DROP;
    };
    let e = *e;
    let macs: [u8; 12] = unsafe { core::mem::transmute([e[1], e[2], e[3]]) };
    if parse::write(ctx, 0, macs).is_err() {
        return xdp_action::XDP_DROP;
    }
    unsafe { bpf_redirect(e[0], 0) as u32 }
}

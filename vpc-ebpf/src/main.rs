#![no_std]
#![no_main]
// `atomic_xadd`: core's atomic types have no read-modify-write on BPF.
#![feature(core_intrinsics)]
#![allow(internal_features)]

// Layers, each using only those below it: the entry points here; the
// pipeline (router); the mechanisms (gateways and Hyperplane NAT above
// conntrack, policy, routing, rewriting); maps and configuration; packet
// access (parse, ctx, csum, copy). The harnesses (bench, tput) sit beside
// the entry points.
mod allowance;
mod atomic;
mod bench;
mod config;
mod copy;
mod csum;
mod ct;
mod ctx;
mod flowlog;
mod frag;
mod hyperplane;
mod internet_gateway;
mod maps;
mod nat;
mod nat_gateway;
mod overlay;
mod parse;
mod policy;
mod port;
mod port_allocation;
mod resolver;
mod route;
mod router;
mod stats;
mod tput;
mod trace;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use vpc_common::Endpoint;

use crate::ctx::Ctx;

/// The VPC router: attached to every router-side veth.
#[xdp]
pub fn vpc_router(ctx: XdpContext) -> u32 {
    // The pipeline inlined here: one call level less on every packet.
    router::run(&ctx)
}

/// The VPC router at TC ingress of a router-side veth: the same pipeline on
/// socket buffers, for ports where bulk TCP matters (a GSO superpacket is
/// checked, translated and redirected whole, and the peer keeps TSO).
#[classifier]
pub fn vpc_router_tc(ctx: TcContext) -> i32 {
    // A VLAN tag the kernel took off the frame (a device's offload, or the
    // receive path's untagging before TC) is not in the data: dropped as
    // XDP drops a frame with its tag still in it (`parse`).
    if unsafe { (*ctx.skb.skb).vlan_present } != 0 {
        return early_drop(&ctx, vpc_common::DropReason::VlanTagged);
    }
    // The headers must be in the linear part for direct access: as far as
    // XDP parses (extension headers up to 256 bytes, an ICMP error's quoted
    // IP header and L4 header), so both hooks judge the same packets.
    let want = core::cmp::min(ctx.len(), parse::MAX_PARSED as u32);
    if ctx.data_end() - ctx.data() < want as usize && ctx.pull_data(want).is_err() {
        return early_drop(&ctx, vpc_common::DropReason::Malformed);
    }
    ctx::tc_action(route_packet(&ctx))
}

/// A drop at TC before the pipeline: counted and traced as the pipeline's.
#[inline(always)]
fn early_drop(ctx: &TcContext, reason: vpc_common::DropReason) -> i32 {
    let verdict = stats::drop(reason) | ctx::VERDICT_NO_TUPLE;
    trace::verdict(ctx::Ctx::ingress_ifindex(ctx), verdict);
    ctx::tc_action(verdict)
}

// Not inlined: the harnesses call it too, and one copy per hook keeps
// stacks apart.
#[inline(never)]
fn route_packet<C: Ctx>(ctx: &C) -> u32 {
    router::run(ctx)
}

/// Benchmark harness around the router: restores the frame after each run
/// (BPF_PROG_TEST_RUN repeats on the same buffer, which NAT rewrites), and in
/// new-flow mode gives every run a fresh TCP source port and removes the
/// connection afterwards, so each run is the first packet of a flow.
#[xdp]
pub fn bench_router(ctx: XdpContext) -> u32 {
    // Nothing the harness decides lives across the router call: state in
    // registers there would make the verifier walk the router once per
    // harness path (it did: three times the router's instructions).
    if bench::prepare(&ctx).is_none() {
        return xdp_action::XDP_ABORTED;
    }
    let action = route_packet(&ctx);
    bench::finish(&ctx);
    action
}

/// Baseline: Ethernet rewrite and redirect, inside the same harness.
#[xdp]
pub fn bench_redirect(ctx: XdpContext) -> u32 {
    let Some(s) = bench::snapshot(&ctx) else {
        return xdp_action::XDP_ABORTED;
    };
    let ep = Endpoint {
        ifindex: 1,
        mac: [2, 0, 0, 0, 0, 2],
        router_mac: [2, 0, 0, 0, 0, 1],
        ..Endpoint::default()
    };
    let action = ctx::action(stats::finish(route::deliver_to(&ctx, &ep)));
    bench::restore(&ctx, &s.snapshot);
    action
}

/// `bench_router` at TC ingress, on a socket buffer: the hook a host of a
/// cluster forwards across hosts at (the tunnel key is the socket
/// buffer's).
#[classifier]
pub fn bench_router_tc(ctx: TcContext) -> i32 {
    if bench::prepare(&ctx).is_none() {
        return aya_ebpf::bindings::TC_ACT_SHOT;
    }
    let action = route_packet(&ctx);
    bench::finish(&ctx);
    ctx::tc_action(action)
}

/// `bench_redirect` at TC: the baseline of `bench_router_tc`.
#[classifier]
pub fn bench_redirect_tc(ctx: TcContext) -> i32 {
    let Some(s) = bench::snapshot(&ctx) else {
        return aya_ebpf::bindings::TC_ACT_SHOT;
    };
    let ep = Endpoint {
        ifindex: 1,
        mac: [2, 0, 0, 0, 0, 2],
        router_mac: [2, 0, 0, 0, 0, 1],
        ..Endpoint::default()
    };
    let action = ctx::tc_action(stats::finish(route::deliver_to(&ctx, &ep)));
    bench::restore(&ctx, &s.snapshot);
    action
}

/// The established packet's cost broken down (`bench::stage`): parse;
/// + conntrack lookup; + connection state and counters; + NAT rewrite.
#[xdp]
pub fn bench_stage_parse(ctx: XdpContext) -> u32 {
    bench::stage::<{ bench::STAGE_PARSE }>(&ctx)
}

#[xdp]
pub fn bench_stage_lookup(ctx: XdpContext) -> u32 {
    bench::stage::<{ bench::STAGE_LOOKUP }>(&ctx)
}

/// `bench_stage_lookup` as the established path was before `PORT_SPACES`.
#[xdp]
pub fn bench_stage_lookup_by_ports(ctx: XdpContext) -> u32 {
    bench::stage::<{ bench::STAGE_LOOKUP_BY_PORTS }>(&ctx)
}

#[xdp]
pub fn bench_stage_state(ctx: XdpContext) -> u32 {
    bench::stage::<{ bench::STAGE_STATE }>(&ctx)
}

#[xdp]
pub fn bench_stage_rewrite(ctx: XdpContext) -> u32 {
    bench::stage::<{ bench::STAGE_REWRITE }>(&ctx)
}

/// Throughput: the reflector on both endpoints, the same for every path.
#[xdp]
pub fn tput_reflect(ctx: XdpContext) -> u32 {
    tput::reflect(&ctx)
}

/// Throughput: the limit path, MAC rewrite and redirect, no policy.
#[xdp]
pub fn tput_redirect(ctx: XdpContext) -> u32 {
    tput::redirect(&ctx)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

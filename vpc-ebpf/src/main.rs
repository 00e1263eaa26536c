#![no_std]
#![no_main]

mod csum;
mod ct;
mod ctx;
mod flowlog;
mod frag;
mod gateway;
mod maps;
mod nat;
mod parse;
mod policy;
mod resolver;
mod route;
mod router;
mod stats;
mod tput;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use vpc_common::Endpoint;

use crate::{
    ctx::Ctx,
    maps::{BENCH, SCRATCH},
};

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
    // A VLAN tag taken off by the device is not in the data: not ours to
    // route (XDP never sees one either).
    if unsafe { (*ctx.skb.skb).vlan_present } != 0 {
        return ctx::tc_action(stats::drop(vpc_common::DropReason::NotIp));
    }
    // The headers must be in the linear part for direct access: as far as
    // XDP parses (extension headers up to 256 bytes, an ICMP error's quoted
    // IP header and L4 header), so both hooks judge the same packets.
    let want = core::cmp::min(ctx.len(), 256 + 8 + 60 + 20);
    if ctx.data_end() - ctx.data() < want as usize && ctx.pull_data(want).is_err() {
        return ctx::tc_action(stats::drop(vpc_common::DropReason::Malformed));
    }
    ctx::tc_action(route_packet(&ctx))
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
    if bench_prepare(&ctx).is_none() {
        return xdp_action::XDP_ABORTED;
    }
    let action = route_packet(&ctx);
    bench_finish(&ctx);
    action
}

/// Saves the frame; in new-flow mode gives it a fresh source port and notes
/// its CT key for `bench_finish`.
#[inline(always)]
fn bench_prepare(ctx: &XdpContext) -> Option<()> {
    let s = snapshot(ctx)?;
    s.bench_cleanup = 0;
    if matches!(BENCH.get(0), Some(1)) {
        s.bench_counter = s.bench_counter.wrapping_add(1);
        // IPv4 without options: TCP source port at 34. Ports 1024-31023,
        // clear of the steady flows the bench keeps open.
        let sport = (1024 + (s.bench_counter % 30000) as u16).to_be();
        let _ = parse::write(ctx, 34, sport);
        if bench_key(ctx, &mut s.bench_key).is_some() {
            s.bench_cleanup = 1;
        }
    }
    Some(())
}

/// Removes the run's connection (and its NAT claim) in new-flow mode, then
/// restores the frame.
#[inline(always)]
fn bench_finish(ctx: &XdpContext) {
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let s = unsafe { &mut *s };
    if s.bench_cleanup != 0 {
        bench_cleanup(s);
    }
    restore(ctx, &s.bench_snapshot);
}

/// A BPF function of its own: its locals stay out of the harness's frame,
/// which is on the stack with the router's deepest calls.
#[inline(never)]
fn bench_cleanup(s: &mut maps::Scratch) {
    if let Some(e) = maps::CT.get_ptr(&s.bench_key) {
        let e = unsafe { &*e };
        if e.flags & vpc_common::CT_F_SNAT != 0 {
            let nat_gateway = e.route == vpc_common::route_kind::NAT_GATEWAY;
            s.claim = vpc_common::NatPortKey::of_reply(e.eni as u32, &e.twin, nat_gateway);
            let _ = maps::NAT_PORTS.remove(&s.claim);
        }
        let _ = maps::CT.remove(&e.twin);
    }
    let _ = maps::CT.remove(&s.bench_key);
}

/// Baseline: Ethernet rewrite and redirect, inside the same harness.
#[xdp]
pub fn bench_redirect(ctx: XdpContext) -> u32 {
    let Some(s) = snapshot(&ctx) else {
        return xdp_action::XDP_ABORTED;
    };
    let ep = Endpoint {
        ifindex: 1,
        mac: [2, 0, 0, 0, 0, 2],
        router_mac: [2, 0, 0, 0, 0, 1],
        ..Endpoint::default()
    };
    let action = match route::deliver_to(&ctx, &ep) {
        Ok(a) => a,
        Err(r) => stats::drop(r),
    };
    restore(&ctx, &s.bench_snapshot);
    action
}

#[inline(always)]
/// Saves the first 64 bytes of the frame in the per-CPU scratch.
fn snapshot(ctx: &XdpContext) -> Option<&'static mut maps::Scratch> {
    let s = unsafe { &mut *SCRATCH.get_ptr_mut(0)? };
    let p = parse::ptr_at::<[u64; 8]>(ctx, 0)?;
    parse::copy_words::<8>(s.bench_snapshot.as_mut_ptr(), p as *const u64);
    Some(s)
}

#[inline(always)]
fn restore(ctx: &XdpContext, buf: &[u64; 8]) {
    if let Some(p) = parse::ptr_at::<[u64; 8]>(ctx, 0) {
        parse::copy_words::<8>(p as *mut u64, buf.as_ptr());
    }
}

/// The CT key of the bench frame (IPv4 TCP, no options) as it arrives.
#[inline(always)]
fn bench_key(ctx: &XdpContext, k: &mut vpc_common::CtKey) -> Option<()> {
    parse::set_v4_mapped(&mut k.saddr, parse::read::<u32>(ctx, 26).ok()?);
    parse::set_v4_mapped(&mut k.daddr, parse::read::<u32>(ctx, 30).ok()?);
    let ports = parse::read::<[u16; 2]>(ctx, 34).ok()?;
    k.sport = ports[0];
    k.dport = ports[1];
    k.proto = 6;
    k._pad0 = 0;
    k._pad1 = 0;
    Some(())
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

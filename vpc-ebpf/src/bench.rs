//! The benchmark harness around the router (`bench_router`,
//! `bench_redirect` in main.rs): BPF_PROG_TEST_RUN repeats on one buffer,
//! which the router rewrites, so the harness saves the frame and restores
//! it after each run; in new-flow mode it gives every run a fresh TCP
//! source port and removes the connection afterwards. Not part of the
//! router: its state has a map of its own. The same harness at TC
//! (`bench_router_tc`, `bench_redirect_tc`): the hook a host of a cluster
//! forwards across hosts at (`docs/multi-host.md`).
use aya_ebpf::{
    macros::map,
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};
use network_types::ip::Ipv4Hdr;
use vpc_common::{route_kind, CtKey, NatPortKey, CT_F_SNAT};

use crate::{
    copy::copy_words,
    ct,
    ctx::{ptr_at, write, Ctx},
    maps::{CT, SCRATCH},
    parse::{ETH_HLEN, IPPROTO_TCP, IPV4_DST, IPV4_SRC, L4_SPORT},
    port_allocation,
};

/// Settings: [0] mode (0 steady, 1 new flow each run).
/// The bench frame: IPv4 without options, then TCP.
const IP: usize = ETH_HLEN;
const TCP: usize = IP + Ipv4Hdr::LEN;

#[map]
pub static BENCH: Array<u32> = Array::with_max_entries(4, 0);

/// The harness's working state, per CPU.
pub struct BenchScratch {
    pub snapshot: [u64; 8],
    pub key: CtKey,
    /// The run's NAT port claim, rebuilt from its connection to remove it.
    pub claim: NatPortKey,
    pub counter: u32,
    /// 1 when this run's connection is to be removed after it: kept here,
    /// not in a register across the router call, so the verifier walks the
    /// router once for every harness path (see `bench_router`).
    pub cleanup: u32,
}

#[map]
pub static BENCH_SCRATCH: PerCpuArray<BenchScratch> = PerCpuArray::with_max_entries(1, 0);

/// Saves the frame; in new-flow mode gives it a fresh source port and notes
/// its CT key for `finish`.
#[inline(always)]
pub fn prepare(ctx: &impl Ctx) -> Option<()> {
    let s = snapshot(ctx)?;
    s.cleanup = 0;
    if matches!(BENCH.get(0), Some(1)) {
        s.counter = s.counter.wrapping_add(1);
        // Ports 1024-31023, clear of the steady flows the bench keeps open.
        let sport = (1024 + (s.counter % 30000) as u16).to_be();
        let _ = write(ctx, TCP + L4_SPORT, sport);
        if key(ctx, &mut s.key).is_some() {
            s.cleanup = 1;
        }
    }
    Some(())
}

/// Removes the run's connection (and its NAT claim) in new-flow mode, then
/// restores the frame.
#[inline(always)]
pub fn finish(ctx: &impl Ctx) {
    let Some(s) = BENCH_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let s = unsafe { &mut *s };
    if s.cleanup != 0 {
        cleanup(s);
    }
    restore(ctx, &s.snapshot);
}

/// A BPF function of its own: its locals stay out of the harness's frame,
/// which is on the stack with the router's deepest calls.
#[inline(never)]
fn cleanup(s: &mut BenchScratch) {
    // The frame's address space is its port's, as the router found it.
    if let Some(r) = SCRATCH.get_ptr(0) {
        s.key.space = unsafe { (*r).key.space };
    }
    if let Some(e) = CT.get_ptr(&s.key) {
        let e = unsafe { &*e };
        if e.flags & CT_F_SNAT != 0 {
            let nat_gateway = e.route == route_kind::NAT_GATEWAY;
            s.claim = NatPortKey::of_reply(e.eni as u32, &e.twin, nat_gateway);
            port_allocation::release(&s.claim);
        }
        let _ = CT.remove(&e.twin);
        // Its port's conntrack allowance gets it back.
        ct::evict(&s.key, e.in_ifindex);
    }
}

/// Saves the first 64 bytes of the frame in the per-CPU scratch.
#[inline(always)]
pub fn snapshot(ctx: &impl Ctx) -> Option<&'static mut BenchScratch> {
    let s = unsafe { &mut *BENCH_SCRATCH.get_ptr_mut(0)? };
    let p = ptr_at::<[u64; 8]>(ctx, 0)?;
    copy_words::<8>(s.snapshot.as_mut_ptr(), p as *const u64);
    Some(s)
}

#[inline(always)]
pub fn restore(ctx: &impl Ctx, buf: &[u64; 8]) {
    if let Some(p) = ptr_at::<[u64; 8]>(ctx, 0) {
        copy_words::<8>(p as *mut u64, buf.as_ptr());
    }
}

/// The CT key of the bench frame (IPv4 TCP, no options) as it arrives.
/// Addresses and ports move byte for byte, as on the wire: assembled into
/// words first, they would take registers the harness's frame has no
/// room to spill (its stack is on top of the router's deepest calls).
#[inline(always)]
fn key(ctx: &impl Ctx, k: &mut CtKey) -> Option<()> {
    // Source, destination address, source, destination port.
    const _: () = assert!(IPV4_DST == IPV4_SRC + 4 && TCP == IP + IPV4_SRC + 8 + L4_SPORT);
    let from = ptr_at::<[u8; 12]>(ctx, IP + IPV4_SRC)? as *const u8;
    let mapped = u32::from_ne_bytes([0, 0, 0xff, 0xff]);
    for a in [&mut k.saddr, &mut k.daddr] {
        let w = a.as_mut_ptr() as *mut u32;
        unsafe { *(w as *mut [u32; 3]) = [0, 0, mapped] };
    }
    copy_bytes::<4>(k.saddr[12..].as_mut_ptr(), from);
    copy_bytes::<4>(k.daddr[12..].as_mut_ptr(), unsafe { from.add(4) });
    copy_bytes::<2>(&mut k.sport as *mut u16 as *mut u8, unsafe { from.add(8) });
    copy_bytes::<2>(&mut k.dport as *mut u16 as *mut u8, unsafe { from.add(10) });
    k.proto = IPPROTO_TCP;
    k._pad0 = 0;
    // Its port's, known once the router ran (`cleanup`).
    k.space = 0;
    Some(())
}

/// `N` volatile byte moves: each a load and a store through one register.
#[inline(always)]
fn copy_bytes<const N: usize>(dst: *mut u8, src: *const u8) {
    for i in 0..N {
        unsafe { core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i))) };
    }
}

/// The breakdown of an established packet's cost (`vpc bench`'s
/// `stage_*` cases): the router's own mechanisms, composed a stage at a
/// time inside the same harness, each stage one more than the one before.
/// The differences between stages are what each part costs; the full
/// router (`bench_router`) adds the pipeline's branches between them
/// (fragments, ICMP errors, the trace switch, the verdict's counters).
pub const STAGE_PARSE: u32 = 1;
/// + the port's address space, the conntrack key and lookup.
pub const STAGE_LOOKUP: u32 = 2;
/// + the connection's state: timeouts, policy epoch, counters.
pub const STAGE_STATE: u32 = 3;
/// + the NAT rewrite and its checksum updates.
pub const STAGE_REWRITE: u32 = 4;
/// `STAGE_LOOKUP` with the port's space from `PORTS` (its `PortInfo`, a
/// hash lookup), as the established path found it before `PORT_SPACES`:
/// the two side by side are what the array saves.
pub const STAGE_LOOKUP_BY_PORTS: u32 = 0x12;

/// One stage program: the frame saved, `STAGE`'s mechanisms run, the
/// frame restored (as `bench_router`).
#[inline(always)]
pub fn stage<const STAGE: u32>(ctx: &XdpContext) -> u32 {
    let Some(h) = snapshot(ctx) else {
        return aya_ebpf::bindings::xdp_action::XDP_ABORTED;
    };
    let action = crate::ctx::action(crate::stats::finish(stage_inner::<STAGE>(ctx)));
    restore(ctx, &h.snapshot);
    action
}

#[inline(always)]
fn stage_inner<const STAGE: u32>(ctx: &XdpContext) -> Result<u32, vpc_common::DropReason> {
    use vpc_common::{DropReason, Endpoint, CT_F_SNAT};

    use crate::{config, ctx::Ctx, flowlog, nat, parse, route, stats};

    let s = unsafe { &mut *SCRATCH.get_ptr_mut(0).ok_or(DropReason::CtFull)? };
    parse::parse(ctx, &mut s.pkt)?;
    let ifindex = Ctx::ingress_ifindex(ctx);
    if STAGE == STAGE_PARSE {
        let ep = Endpoint {
            ifindex: 1,
            mac: [2, 0, 0, 0, 0, 2],
            router_mac: [2, 0, 0, 0, 0, 1],
            ..Endpoint::default()
        };
        return route::deliver_to(ctx, &ep);
    }
    let p = &s.pkt;
    let space = if STAGE == STAGE_LOOKUP_BY_PORTS {
        vpc_common::addr_space(crate::port::info(ifindex).map_or(0, |port| port.vpc), p.v6)
    } else {
        crate::port::space(ifindex, p.v6)
    };
    s.key = ct::key(p, space);
    let now = ct::now();
    let (e, orig) = ct::entry(&s.key, ifindex).ok_or(DropReason::CtInvalid)?;
    if (STAGE_STATE..=STAGE_REWRITE).contains(&STAGE) {
        if ct::expired(p.proto, unsafe { &*orig }, now) || !ct::follows(&s.key, p, e, orig) {
            return Err(DropReason::CtInvalid);
        }
        let stamp = config::policy_epoch().wrapping_add(1);
        if unsafe { (*e).acl_gen } != stamp {
            return Err(DropReason::CtInvalid);
        }
        let dir = unsafe { (*e).dir };
        ct::update(unsafe { &mut *orig }, p, dir, now);
        let w = config::flow_log_window();
        if w != 0 {
            flowlog::count(unsafe { &mut (*e).fl }, p, w, now);
        }
        stats::eni_forwarded(unsafe { (*e).eni });
        stats::port(ifindex, crate::ctx::VERDICT_REDIRECT);
    }
    let ent = unsafe { &*e };
    if STAGE == STAGE_REWRITE && ent.flags & CT_F_SNAT != 0 {
        nat::rewrite(ctx, p, true, &ent.nat_addr, ent.nat_port)?;
    }
    route::deliver(ctx, ent.out_ifindex, &ent.mac, &ent.router_mac)
}

//! `vpc trace`: every verdict of the router logged through aya-log (its
//! `AYA_LOGS` ring buffer), while `CONFIG[TRACE]` is set. Called once per
//! packet, where the verdict is counted (`router::run`; TC's drops before
//! the pipeline in main.rs). Off, it costs the slot's read and one branch:
//! the logging is a BPF function of its own, never entered.
//!
//! One record per verdict, one `info!` for all of them (each aya-log
//! statement is some 600 instructions):
//! `verdict=A detail=D in=I proto=P src=[S]:SP dst=[T]:TP icmp=X`, A the action,
//! D the verdict's detail (a drop's reason, plus `0x100` when the packet
//! was not parsed and the tuple means nothing; a redirect's egress
//! ifindex), addresses in IPv6 form (IPv4-mapped for IPv4). `vpc trace`
//! renders it for people (`vpc::trace::render`). The tuple is the packet
//! as it arrived (before NAT); ports are 0 for protocols without them (an
//! ICMP echo's identifier, its type), X an ICMP message's `type << 8 | code`.
use aya_log_ebpf::info;

use crate::{
    config,
    ctx::{action, VERDICT_DETAIL_SHIFT},
    maps::SCRATCH,
};

/// Logs `verdict` (a pipeline verdict, detail included) on a packet that
/// arrived on `ingress`, if the trace is on.
#[inline(always)]
pub fn verdict(ingress: u32, verdict: u32) {
    if config::trace() {
        log(ingress, verdict);
    }
}

#[inline(never)]
fn log(ingress: u32, verdict: u32) {
    // The packet as parsed, in per-CPU scratch (`router::pipeline`).
    let Some(s) = SCRATCH.get(0) else {
        return;
    };
    let p = &s.pkt;
    info!(
        &(),
        "verdict={} detail={} in={} proto={} src=[{:i}]:{} dst=[{:i}]:{} icmp={}",
        action(verdict),
        verdict >> VERDICT_DETAIL_SHIFT,
        ingress,
        p.proto,
        p.saddr,
        u16::from_be(p.sport),
        p.daddr,
        u16::from_be(p.dport),
        (p.icmp_type as u16) << 8 | p.icmp_code as u16
    );
}

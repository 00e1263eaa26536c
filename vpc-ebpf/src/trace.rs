//! `vpc trace`: every verdict of the router logged through aya-log (its
//! `AYA_LOGS` ring buffer), while `CONFIG[TRACE]` is set. Called once per
//! packet, where the verdict is counted (`router::run`; TC's drops before
//! the pipeline in main.rs). Off, it costs the slot's read and one branch:
//! the logging is a BPF function of its own, never entered.
//!
//! A line is `forwarded in=I out=O proto=P SRC -> DST` or `dropped
//! reason=N in=I proto=P SRC -> DST` (N: the `DropReason`, which userspace
//! names; no tuple for drops before the packet was parsed). The tuple is
//! the packet as it arrived (before NAT); ports are 0 for protocols
//! without them, an ICMP echo's identifier for echoes.
use aya_log_ebpf::info;

use crate::{
    config,
    ctx::{action, VERDICT_DETAIL_SHIFT, VERDICT_DROP, VERDICT_NO_TUPLE, VERDICT_REDIRECT},
    maps::SCRATCH,
    parse::Packet,
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
    let detail = verdict >> VERDICT_DETAIL_SHIFT;
    let act = action(verdict);
    let ctx = ();
    // The packet as parsed, in per-CPU scratch (`router::pipeline`).
    let pkt = match SCRATCH.get(0) {
        Some(s) if act != VERDICT_DROP || verdict & VERDICT_NO_TUPLE == 0 => &s.pkt,
        _ => {
            if act == VERDICT_DROP {
                info!(&ctx, "dropped reason={} in={}", detail & 0xff, ingress);
            }
            return;
        }
    };
    let Tuple {
        proto,
        sport,
        dport,
    } = tuple(pkt);
    if act == VERDICT_REDIRECT {
        let out = detail;
        if pkt.v6 {
            info!(
                &ctx,
                "forwarded in={} out={} proto={} [{:i}]:{} -> [{:i}]:{}",
                ingress,
                out,
                proto,
                pkt.saddr,
                sport,
                pkt.daddr,
                dport
            );
        } else {
            info!(
                &ctx,
                "forwarded in={} out={} proto={} {:i}:{} -> {:i}:{}",
                ingress,
                out,
                proto,
                v4(&pkt.saddr),
                sport,
                v4(&pkt.daddr),
                dport
            );
        }
    } else if act == VERDICT_DROP {
        let reason = detail & 0xff;
        if pkt.v6 {
            info!(
                &ctx,
                "dropped reason={} in={} proto={} [{:i}]:{} -> [{:i}]:{}",
                reason,
                ingress,
                proto,
                pkt.saddr,
                sport,
                pkt.daddr,
                dport
            );
        } else {
            info!(
                &ctx,
                "dropped reason={} in={} proto={} {:i}:{} -> {:i}:{}",
                reason,
                ingress,
                proto,
                v4(&pkt.saddr),
                sport,
                v4(&pkt.daddr),
                dport
            );
        }
    }
}

struct Tuple {
    proto: u8,
    sport: u16,
    dport: u16,
}

#[inline(always)]
fn tuple(p: &Packet) -> Tuple {
    Tuple {
        proto: p.proto,
        sport: u16::from_be(p.sport),
        dport: u16::from_be(p.dport),
    }
}

/// The IPv4 address of an IPv4-mapped one.
#[inline(always)]
fn v4(a: &[u8; 16]) -> [u8; 4] {
    [a[12], a[13], a[14], a[15]]
}

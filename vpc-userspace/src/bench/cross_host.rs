//! Across hosts, per packet: the function's connection to the database at
//! TC (the hook a host of a cluster forwards across hosts at) when the
//! database is on this host and when it is on another host of the cluster
//! (a stand-in port: the tunnel key set, the redirect to the overlay
//! device), beside the TC baseline, in one run (docs/multi-host.md).
use anyhow::{bail, Context, Result};
use aya::programs::{TestRun, TestRunOptions};
use vpc_common::{RemotePort, REMOTE_PORT_FLAG};

use super::{bench_datapath, function_frames, median, set_mode, Case, Report, BENCH_TEMPLATE};
use crate::{
    datapath::{Datapath, Maps, BENCH_REDIRECT_TC_PROGRAM, BENCH_ROUTER_TC_PROGRAM},
    model,
};

/// What a redirect returns at TC.
const TC_ACT_REDIRECT: i32 = 7;
/// The made-up overlay device of the cross-host datapath (a test run does
/// not send: the redirect is recorded, not done).
const OVERLAY: u32 = 200;
const LO: u32 = 1;

/// One test run of `repeat` repetitions on a socket buffer arriving on the
/// loopback device: the TC action and the kernel's ns per repetition.
fn run_tc(dp: &mut Datapath, prog: &str, frame: &[u8], repeat: u32) -> Result<(i32, f64)> {
    // `struct __sk_buff` up to `ifindex` (offset 40).
    let mut ctx = [0u8; 44];
    ctx[40..44].copy_from_slice(&LO.to_ne_bytes());
    let mut out = vec![0u8; frame.len() + 256];
    let r = dp
        .load_tc_program(prog)?
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: Some(&ctx),
            repeat,
            ..Default::default()
        })
        .context("BPF_PROG_TEST_RUN (TC)")?;
    Ok((r.return_value as i32, r.duration.as_nanos() as f64))
}

/// The bench's VPC with the database on this host, or on another host of
/// a cluster (`remote`), its function's connection open.
fn datapath(model: &model::Model, remote: bool) -> Result<Datapath> {
    let db = if remote { REMOTE_PORT_FLAG | 1 } else { 100 };
    let (mut dp, _, entries) = bench_datapath(model, &[("Fn", LO), ("Db", db), ("App", 101)])?;
    for p in [BENCH_ROUTER_TC_PROGRAM, BENCH_REDIRECT_TC_PROGRAM] {
        dp.load_tc_program(p)?;
    }
    if remote {
        let vpc = entries
            .ports
            .iter()
            .find(|(i, _)| *i == db)
            .map_or(0, |(_, p)| p.vpc);
        dp.set_overlay(OVERLAY)?;
        dp.sync_remote_ports(&[(
            db,
            RemotePort {
                underlay: [10, 250, 0, 2],
                vni: vpc_common::vni_of_vpc(vpc),
            },
        )])?;
    }
    let (syn, _) = function_frames(model);
    set_mode(&mut dp, 0)?;
    let (v, _) = run_tc(&mut dp, BENCH_ROUTER_TC_PROGRAM, &syn, 1)?;
    if v != TC_ACT_REDIRECT {
        bail!("opening the benchmark connection at TC (remote {remote}): action {v}");
    }
    Ok(dp)
}

/// The cases, each against this run's TC baseline: established and new
/// flows to the database here and on another host.
pub fn cases(repeat: u32, samples: usize) -> Result<Vec<Case>> {
    let model = model::build(BENCH_TEMPLATE, &Default::default(), "bench")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (syn, ack) = function_frames(&model);
    let mut here = datapath(&model, false)?;
    let mut there = datapath(&model, true)?;
    // (name, description, datapath: 0 here 1 there, program, mode, frame)
    type Spec<'a> = (&'a str, &'a str, usize, &'a str, u32, &'a Vec<u8>);
    let specs: [Spec; 5] = [
        ("baseline_redirect_tc", "TC program that only rewrites MACs and redirects", 0, BENCH_REDIRECT_TC_PROGRAM, 0, &ack),
        ("established_tcp_tc", "established_tcp at TC, the database on this host", 0, BENCH_ROUTER_TC_PROGRAM, 0, &ack),
        ("established_tcp_cross_host", "established_tcp at TC, the database on another host: tunnel key, redirect to the overlay", 1, BENCH_ROUTER_TC_PROGRAM, 0, &ack),
        ("new_flow_tcp_tc", "new_flow_tcp at TC, the database on this host", 0, BENCH_ROUTER_TC_PROGRAM, 1, &syn),
        ("new_flow_tcp_cross_host", "new_flow_tcp at TC, the database on another host", 1, BENCH_ROUTER_TC_PROGRAM, 1, &syn),
    ];
    let mut ns = vec![vec![]; specs.len()];
    for _ in 0..samples {
        for (i, (name, _, which, prog, mode, frame)) in specs.iter().enumerate() {
            let dp = if *which == 0 { &mut here } else { &mut there };
            set_mode(dp, *mode)?;
            let (v, t) = run_tc(dp, prog, frame, repeat)?;
            if v != TC_ACT_REDIRECT {
                let c = dp.counters()?;
                let drops: Vec<_> = c.dropped.iter().filter(|(_, n)| *n > 0).collect();
                bail!("{name}: TC action {v} (drops: {drops:?})");
            }
            ns[i].push(t);
        }
    }
    let base = median(&mut ns[0].clone());
    Ok(specs
        .iter()
        .zip(ns)
        .map(|((name, desc, ..), samples)| {
            let m = median(&mut samples.clone());
            Case {
                name: name.to_string(),
                description: desc.to_string(),
                ns_median: m,
                ns_samples: samples,
                ratio_to_baseline: m / base,
                verdict: "TC_ACT_REDIRECT".into(),
            }
        })
        .collect())
}

/// The TC cases: each against the TC baseline, and the database on
/// another host against this host (docs/multi-host.md).
pub(super) fn table(r: &Report) -> String {
    if r.cross_host_cases.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "\nAt TC, the database on this host and on another host of a cluster (same run):\n\n| case | ns/packet | x TC baseline |\n|---|---:|---:|\n",
    );
    for c in &r.cross_host_cases {
        s += &format!(
            "| {} | {:.1} | {:.2} |\n",
            c.name, c.ns_median, c.ratio_to_baseline
        );
    }
    let ns = |n: &str| {
        r.cross_host_cases
            .iter()
            .find(|c| c.name == n)
            .map(|c| c.ns_median)
    };
    for kind in ["established_tcp", "new_flow_tcp"] {
        if let (Some(here), Some(there)) =
            (ns(&format!("{kind}_tc")), ns(&format!("{kind}_cross_host")))
        {
            s += &format!(
                "{kind}: across hosts / one host = {there:.0} / {here:.0} ns = {:.2}\n",
                there / here
            );
        }
    }
    s
}

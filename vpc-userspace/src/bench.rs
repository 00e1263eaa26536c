//! `cargo xtask bench`: nanoseconds per packet through BPF_PROG_TEST_RUN for
//! the router's main paths and a redirect-only baseline, in one run.
//!
//! Both programs run inside the same harness (it restores the frame after
//! each run, since test runs repeat on one buffer that NAT rewrites), so
//! the ratio compares the router's own work with a bare redirect.
use std::{collections::HashMap, net::IpAddr};

use anyhow::{bail, Context, Result};
use aya::{
    maps::{Array, HashMap as BpfHashMap},
    programs::{TestRun, TestRunOptions},
};
use serde::Serialize;
use vpc_common::PortInfo;

use crate::{
    compile::{self, LinkInfo},
    datapath::{Datapath, Maps, Timeouts, BENCH_REDIRECT_PROGRAM, BENCH_ROUTER_PROGRAM},
    model,
    packet::{Frame, L4, TCP_ACK, TCP_SYN},
};

/// The benchmark's VPC: a function, its ENI, a database and an app host.
pub const BENCH_TEMPLATE: &str = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  Subnet: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  FnSg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: fn, VpcId: !Ref Vpc}}
  DbSg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: db
      VpcId: !Ref Vpc
      SecurityGroupIngress: [{IpProtocol: tcp, FromPort: 5432, ToPort: 5432, SourceSecurityGroupId: !Ref FnSg}]
  AppSg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: app, VpcId: !Ref Vpc}}
  Db: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Subnet, PrivateIpAddress: 10.0.1.10, SecurityGroupIds: [!Ref DbSg]}}
  App: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Subnet, PrivateIpAddress: 10.0.1.20, SecurityGroupIds: [!Ref AppSg]}}
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      VpcConfig: {SubnetIds: [!Ref Subnet], SecurityGroupIds: [!Ref FnSg]}
"#;

#[derive(Debug, Clone, Serialize)]
pub struct Case {
    pub name: String,
    pub description: String,
    pub ns_median: f64,
    pub ns_samples: Vec<f64>,
    pub ratio_to_baseline: f64,
    pub verdict: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub repeat: u32,
    pub samples: usize,
    pub kernel: String,
    pub cases: Vec<Case>,
}

fn verdict_name(v: u32) -> String {
    match v {
        0 => "XDP_ABORTED",
        1 => "XDP_DROP",
        2 => "XDP_PASS",
        3 => "XDP_TX",
        4 => "XDP_REDIRECT",
        _ => "?",
    }
    .to_string()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

/// Runs the benchmark. The test runs use the loopback device as ingress,
/// so the caller's network namespace only needs `lo`.
pub fn run(repeat: u32, samples: usize) -> Result<Report> {
    let model = model::build(BENCH_TEMPLATE, &HashMap::new(), "bench")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    const LO: u32 = 1;
    let mut links = HashMap::new();
    links.insert(
        "Fn".to_string(),
        LinkInfo {
            ifindex: LO,
            mac: [2, 0, 0, 0, 0, 1],
            router_mac: [2, 0, 0, 0, 1, 1],
        },
    );
    links.insert(
        "Db".to_string(),
        LinkInfo {
            ifindex: 100,
            mac: [2, 0, 0, 0, 0, 2],
            router_mac: [2, 0, 0, 0, 1, 2],
        },
    );
    links.insert(
        "App".to_string(),
        LinkInfo {
            ifindex: 101,
            mac: [2, 0, 0, 0, 0, 3],
            router_mac: [2, 0, 0, 0, 1, 3],
        },
    );
    let entries = compile::compile(&model, &links, 0).map_err(anyhow::Error::msg)?;
    let mut dp = Datapath::load(&Timeouts::default())?;
    dp.load_program(BENCH_ROUTER_PROGRAM)?;
    dp.load_program(BENCH_REDIRECT_PROGRAM)?;
    dp.install(&entries)?;
    let port_of = |id: &str| -> PortInfo {
        let ifindex = links[id].ifindex;
        entries
            .ports
            .iter()
            .find(|(i, _)| *i == ifindex)
            .map(|(_, p)| *p)
            .expect("port")
    };
    let fn_port = port_of("Fn");
    let mut app_port = port_of("App");
    let ip = |s: &str| -> IpAddr { s.parse().expect("address") };
    let exec = model.functions[0].exec_ip.to_string();
    let syn = Frame::new(
        ip(&exec),
        ip("10.0.1.10"),
        L4::Tcp {
            sport: 40000,
            dport: 5432,
            flags: TCP_SYN,
        },
    )
    .min_len(64)
    .build();
    let ack = Frame::new(
        ip(&exec),
        ip("10.0.1.10"),
        L4::Tcp {
            sport: 40000,
            dport: 5432,
            flags: TCP_ACK,
        },
    )
    .min_len(64)
    .build();
    let denied = Frame::new(
        ip("10.0.1.20"),
        ip("10.0.1.10"),
        L4::Tcp {
            sport: 40001,
            dport: 5432,
            flags: TCP_SYN,
        },
    )
    .min_len(64)
    .build();
    app_port.kind = vpc_common::kind::HOST;

    // (name, description, program, ingress port, bench mode, frame, expected verdict)
    type Spec<'a> = (&'a str, &'a str, &'a str, PortInfo, u32, &'a Vec<u8>, u32);
    let cases: Vec<Spec> = vec![
        ("baseline_redirect", "XDP program that only rewrites MACs and redirects", BENCH_REDIRECT_PROGRAM, fn_port, 0, &ack, 4),
        ("established_tcp", "function -> database, tracked connection: CT hit, SNAT, checksums, redirect", BENCH_ROUTER_PROGRAM, fn_port, 0, &ack, 4),
        ("new_flow_tcp", "first packet of a flow: SG egress+ingress, NAT port allocation, two CT inserts (+ harness teardown)", BENCH_ROUTER_PROGRAM, fn_port, 1, &syn, 4),
        ("dropped_sg", "app -> database:5432 not allowed: SG lookups, drop counted", BENCH_ROUTER_PROGRAM, app_port, 0, &denied, 1),
    ];
    let mut results: Vec<Vec<f64>> = vec![vec![]; cases.len()];
    let mut verdicts = vec![0u32; cases.len()];
    // Open the established connection once.
    set_port(&mut dp, LO, &fn_port)?;
    set_mode(&mut dp, 0)?;
    let v = run_once(&mut dp, BENCH_ROUTER_PROGRAM, &syn, 1)?.0;
    if v != 4 {
        bail!(
            "opening the benchmark connection: verdict {}",
            verdict_name(v)
        );
    }
    for _ in 0..samples {
        for (i, (_, _, prog, port, mode, frame, _)) in cases.iter().enumerate() {
            set_port(&mut dp, LO, port)?;
            set_mode(&mut dp, *mode)?;
            let (v, ns) = run_once(&mut dp, prog, frame, repeat)?;
            verdicts[i] = v;
            results[i].push(ns);
        }
    }
    set_mode(&mut dp, 0)?;
    let mut out = vec![];
    let base = median(&mut results[0].clone());
    for (i, (name, desc, _, _, _, _, want)) in cases.iter().enumerate() {
        if verdicts[i] != *want {
            let c = dp.counters()?;
            let drops: Vec<_> = c.dropped.iter().filter(|(_, n)| *n > 0).collect();
            bail!(
                "{name}: verdict {} instead of {} (drops: {drops:?})",
                verdict_name(verdicts[i]),
                verdict_name(*want)
            );
        }
        let mut s = results[i].clone();
        let m = median(&mut s);
        out.push(Case {
            name: name.to_string(),
            description: desc.to_string(),
            ns_median: m,
            ns_samples: results[i].clone(),
            ratio_to_baseline: m / base,
            verdict: verdict_name(verdicts[i]),
        });
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    Ok(Report {
        repeat,
        samples,
        kernel,
        cases: out,
    })
}

fn set_port(dp: &mut Datapath, ifindex: u32, p: &PortInfo) -> Result<()> {
    let mut m: BpfHashMap<_, u32, PortInfo> = BpfHashMap::try_from(dp.map("PORTS")?)?;
    m.insert(ifindex, p, 0)?;
    Ok(())
}

fn set_mode(dp: &mut Datapath, mode: u32) -> Result<()> {
    let mut a: Array<_, u32> = Array::try_from(dp.map("BENCH")?)?;
    a.set(0, mode, 0)?;
    Ok(())
}

fn run_once(dp: &mut Datapath, prog: &str, frame: &[u8], repeat: u32) -> Result<(u32, f64)> {
    let p = dp.program(prog)?;
    let mut out = vec![0u8; frame.len() + 256];
    let r = p
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            repeat,
            ..Default::default()
        })
        .context("BPF_PROG_TEST_RUN")?;
    Ok((r.return_value, r.duration.as_nanos() as f64))
}

/// The table printed on the terminal (and pasted into the README).
pub fn table(r: &Report) -> String {
    let mut s = format!(
        "BPF_PROG_TEST_RUN, repeat {} x {} samples, kernel {} (median ns/packet)\n\n| case | ns/packet | x baseline | verdict |\n|---|---:|---:|---|\n",
        r.repeat, r.samples, r.kernel
    );
    for c in &r.cases {
        s += &format!(
            "| {} | {:.1} | {:.2} | {} |\n",
            c.name, c.ns_median, c.ratio_to_baseline, c.verdict
        );
    }
    s
}

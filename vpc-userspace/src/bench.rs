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
use vpc_common::{map_names, PortInfo};

use crate::{
    compile::{self, LinkInfo},
    datapath::{
        Datapath, Maps, Timeouts, BENCH_REDIRECT_PROGRAM, BENCH_ROUTER_PROGRAM,
        BENCH_STAGE_LOOKUP_BY_PORTS_PROGRAM, BENCH_STAGE_PROGRAMS,
    },
    model,
    packet::{Frame, L4, TCP_ACK, TCP_SYN},
};

mod cross_host;
pub mod invoke;
mod routed;

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
    pub rules_curve: Vec<CurvePoint>,
    /// NAT at ENI occupancies and conntrack lookups at table sizes, with
    /// ratios to this run's baseline.
    pub scale_cases: Vec<Case>,
    /// A host's routed paths: 1 and 50 routes, local and through the
    /// internet gateway.
    pub routed_cases: Vec<Case>,
    /// At TC: the function's flow to a database on this host and on
    /// another host of a cluster (through the overlay), with the TC
    /// baseline (docs/multi-host.md).
    pub cross_host_cases: Vec<Case>,
    /// Kernel memory of the conntrack and NAT port maps sized for
    /// `conntrack_max` entries.
    pub memory: Option<MapMemory>,
}

/// Memory the kernel charges for the conntrack maps (`memlock` in
/// /proc/self/fdinfo of each map; hash maps are preallocated, so this is
/// their size whatever the fill).
#[derive(Debug, Clone, Serialize)]
pub struct MapMemory {
    pub conntrack_max: u32,
    pub ct_bytes: u64,
    pub nat_ports_bytes: u64,
    /// Connections the maps hold: two CT entries and one NAT claim each.
    pub connections: u64,
    pub bytes_per_connection: f64,
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
pub fn run(repeat: u32, samples: usize, conntrack_max: u32) -> Result<Report> {
    let model = model::build(BENCH_TEMPLATE, &HashMap::new(), "bench")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    const LO: u32 = 1;
    let (mut dp, links, entries) =
        bench_datapath(&model, &[("Fn", LO), ("Db", 100), ("App", 101)])?;
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
    let (syn, ack) = function_frames(&model);
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

    // (name, description, program, ingress port, bench mode, frame,
    // expected verdict, what records flows: `Records`)
    type Spec<'a> = (
        &'a str,
        &'a str,
        &'a str,
        PortInfo,
        u32,
        &'a Vec<u8>,
        u32,
        Records,
    );
    use Records::{FlowLog, Nothing, Recorder};
    let cases: Vec<Spec> = vec![
        ("baseline_redirect", "XDP program that only rewrites MACs and redirects", BENCH_REDIRECT_PROGRAM, fn_port, 0, &ack, 4, Nothing),
        ("established_tcp", "function -> database, tracked connection: CT hit, SNAT, checksums, redirect", BENCH_ROUTER_PROGRAM, fn_port, 0, &ack, 4, Nothing),
        ("new_flow_tcp", "first packet of a flow: SG egress+ingress, NAT port allocation, two CT inserts (+ harness teardown)", BENCH_ROUTER_PROGRAM, fn_port, 1, &syn, 4, Nothing),
        ("dropped_sg", "app -> database:5432 not allowed: SG lookups, drop counted (router, port and reason)", BENCH_ROUTER_PROGRAM, app_port, 0, &denied, 1, Nothing),
        ("dropped_sg_recorded", "dropped_sg while an agent runs: the rejected flow recorded for the console (FL_REJECTS, one event until the agent reads it)", BENCH_ROUTER_PROGRAM, app_port, 0, &denied, 1, Recorder),
        ("established_tcp_flowlogs", "established_tcp with flow logs on: the window's counters in the CT entry", BENCH_ROUTER_PROGRAM, fn_port, 0, &ack, 4, FlowLog),
        ("new_flow_tcp_flowlogs", "new_flow_tcp with flow logs on: slots set up (and carried over) with the entries", BENCH_ROUTER_PROGRAM, fn_port, 1, &syn, 4, FlowLog),
        ("dropped_sg_flowlogs", "dropped_sg with flow logs on: the rejected flow counted in FL_REJECTS (one event per window)", BENCH_ROUTER_PROGRAM, app_port, 0, &denied, 1, FlowLog),
        (STAGES[0].0, STAGES[0].1, BENCH_STAGE_PROGRAMS[0], fn_port, 0, &ack, 4, Nothing),
        (STAGES[1].0, STAGES[1].1, BENCH_STAGE_PROGRAMS[1], fn_port, 0, &ack, 4, Nothing),
        (STAGES[2].0, STAGES[2].1, BENCH_STAGE_PROGRAMS[2], fn_port, 0, &ack, 4, Nothing),
        (STAGES[3].0, STAGES[3].1, BENCH_STAGE_PROGRAMS[3], fn_port, 0, &ack, 4, Nothing),
        ("stage_lookup_by_ports", "stage_lookup with the port's space from PORTS (a hash lookup), as before PORT_SPACES", BENCH_STAGE_LOOKUP_BY_PORTS_PROGRAM, fn_port, 0, &ack, 4, Nothing),
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
        for (i, (_, _, prog, port, mode, frame, _, flows)) in cases.iter().enumerate() {
            set_port(&mut dp, LO, port)?;
            set_mode(&mut dp, *mode)?;
            set_records(&mut dp, *flows)?;
            let (v, ns) = run_once(&mut dp, prog, frame, repeat)?;
            verdicts[i] = v;
            results[i].push(ns);
        }
    }
    set_mode(&mut dp, 0)?;
    set_records(&mut dp, Nothing)?;
    let mut out = vec![];
    let base = median(&mut results[0].clone());
    for (i, (name, desc, _, _, _, _, want, _)) in cases.iter().enumerate() {
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
    let rules_curve = rules_curve(repeat, samples)?;
    let (scale_cases, memory) = scale_cases(repeat, samples, base, conntrack_max)?;
    let routed_cases = routed::routed_cases(repeat, samples, base)?;
    let cross_host_cases = cross_host::cases(repeat, samples)?;
    Ok(Report {
        cross_host_cases,
        repeat,
        samples,
        kernel,
        cases: out,
        rules_curve,
        scale_cases,
        routed_cases,
        memory,
    })
}

/// The function's SYN and an ACK of its connection to the database
/// (10.0.1.10:5432), as the bench's cases send them.
fn function_frames(model: &model::Model) -> (Vec<u8>, Vec<u8>) {
    bench_frames(model, "10.0.1.10")
}

/// The breakdown's cases (`BENCH_STAGE_PROGRAMS`, in order): the
/// established packet of `established_tcp`, a stage at a time; what each
/// adds to the one before is the cost of the part it names.
const STAGES: [(&str, &str, &str); 4] = [
    (
        "stage_parse",
        "parse the frame, then the baseline's redirect",
        "parse",
    ),
    (
        "stage_lookup",
        "+ the port's address space and the conntrack lookup; redirect as the entry says",
        "conntrack lookup",
    ),
    (
        "stage_state",
        "+ timeouts, TCP state, policy epoch, counters (ENI, port, flow-log window)",
        "state and counters",
    ),
    (
        "stage_rewrite",
        "+ the SNAT rewrite with its checksum updates",
        "rewrite and checksums",
    ),
];

/// Where an established packet's time goes: each part's ns (the stage's
/// cost over the one before; the baseline's is the harness, MAC rewrite
/// and redirect; the rest of the pipeline is the router over the last
/// stage), in this run.
pub fn breakdown(r: &Report) -> Vec<(String, f64)> {
    let ns = |n: &str| r.cases.iter().find(|c| c.name == n).map(|c| c.ns_median);
    let (Some(base), Some(full)) = (ns("baseline_redirect"), ns("established_tcp")) else {
        return vec![];
    };
    let mut out = vec![(
        "harness, MAC rewrite and redirect (baseline)".to_string(),
        base,
    )];
    let mut before = base;
    for (name, _, part) in STAGES {
        let Some(t) = ns(name) else { return vec![] };
        out.push((part.to_string(), t - before));
        before = t;
    }
    out.push((
        "the rest of the pipeline (fragment and ICMP-error checks, trace switch, verdict)".into(),
        full - before,
    ));
    out
}

/// A loaded datapath for `model` with fake links (test runs never transmit):
/// `ids` get ifindexes in order (the first one is `lo`, the test-run ingress).
fn bench_datapath(
    model: &model::Model,
    ids: &[(&str, u32)],
) -> Result<(Datapath, HashMap<String, LinkInfo>, compile::Entries)> {
    bench_datapath_with(model, ids, vpc_common::CT_MAX_ENTRIES)
}

fn bench_datapath_with(
    model: &model::Model,
    ids: &[(&str, u32)],
    ct_max: u32,
) -> Result<(Datapath, HashMap<String, LinkInfo>, compile::Entries)> {
    let links: HashMap<String, LinkInfo> = ids
        .iter()
        .enumerate()
        .map(|(i, (id, ifindex))| {
            let n = i as u8 + 1;
            (
                id.to_string(),
                LinkInfo {
                    ifindex: *ifindex,
                    mac: [2, 0, 0, 0, 0, n],
                    router_mac: [2, 0, 0, 0, 1, n],
                },
            )
        })
        .collect();
    let entries = compile::compile(model, &links, 0).map_err(anyhow::Error::msg)?;
    let mut dp = Datapath::load_with(&Timeouts::default(), ct_max)?;
    dp.load_program(BENCH_ROUTER_PROGRAM)?;
    dp.load_program(BENCH_REDIRECT_PROGRAM)?;
    for p in BENCH_STAGE_PROGRAMS {
        dp.load_program(p)?;
    }
    dp.load_program(BENCH_STAGE_LOOKUP_BY_PORTS_PROGRAM)?;
    dp.install(&entries)?;
    Ok((dp, links, entries))
}

fn set_port(dp: &mut Datapath, ifindex: u32, p: &PortInfo) -> Result<()> {
    let mut m: BpfHashMap<_, u32, PortInfo> = BpfHashMap::try_from(dp.map(map_names::PORTS)?)?;
    m.insert(ifindex, p, 0)?;
    dp.set_port_spaces(&[(ifindex, *p)])
}

fn set_mode(dp: &mut Datapath, mode: u32) -> Result<()> {
    let mut a: Array<_, u32> = Array::try_from(dp.map(map_names::BENCH)?)?;
    a.set(0, mode, 0)?;
    Ok(())
}

/// What records flows while a case runs.
#[derive(Clone, Copy)]
enum Records {
    /// Neither a flow log nor an agent: drops are only counted.
    Nothing,
    /// A flow log (window 1): accepted traffic counted, rejects recorded.
    FlowLog,
    /// An agent and no flow log: rejects recorded (`cfg::RECORD_DROPS`).
    Recorder,
}

fn set_records(dp: &mut Datapath, r: Records) -> Result<()> {
    let mut a: Array<_, u64> = Array::try_from(dp.map(map_names::CONFIG)?)?;
    a.set(
        vpc_common::cfg::FLOW_WINDOW,
        matches!(r, Records::FlowLog) as u64,
        0,
    )?;
    a.set(
        vpc_common::cfg::RECORD_DROPS,
        matches!(r, Records::Recorder) as u64,
        0,
    )?;
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

/// Medians of `samples` runs of `frame` in `mode`, as a case against `base`.
#[allow(clippy::too_many_arguments)]
fn case(
    dp: &mut Datapath,
    name: String,
    description: &str,
    mode: u32,
    frame: &[u8],
    repeat: u32,
    samples: usize,
    base: f64,
) -> Result<Case> {
    let mut ns = vec![];
    let mut verdict = 0;
    for _ in 0..samples {
        set_mode(dp, mode)?;
        let (v, t) = run_once(dp, BENCH_ROUTER_PROGRAM, frame, repeat)?;
        verdict = v;
        ns.push(t);
    }
    set_mode(dp, 0)?;
    if verdict != 4 {
        let c = dp.counters()?;
        let drops: Vec<_> = c.dropped.iter().filter(|(_, n)| *n > 0).collect();
        bail!(
            "{name}: verdict {} (drops: {drops:?})",
            verdict_name(verdict)
        );
    }
    let m = median(&mut ns.clone());
    Ok(Case {
        name,
        description: description.to_string(),
        ns_median: m,
        ns_samples: ns,
        ratio_to_baseline: m / base,
        verdict: verdict_name(verdict),
    })
}

/// The first function's SYN and ACK from port 40000 to `db`:5432.
fn bench_frames(model: &model::Model, db: &str) -> (Vec<u8>, Vec<u8>) {
    let exec: IpAddr = model.functions[0].exec_ip.into();
    let db: IpAddr = db.parse().expect("address");
    let frame = |flags| {
        Frame::new(
            exec,
            db,
            L4::Tcp {
                sport: 40000,
                dport: 5432,
                flags,
            },
        )
        .min_len(64)
        .build()
    };
    (frame(TCP_SYN), frame(TCP_ACK))
}

/// Bytes the kernel charges for a map (`memlock` in its fdinfo).
fn map_memlock(dp: &mut Datapath, name: &str) -> Result<u64> {
    use std::os::fd::{AsFd, AsRawFd};
    let fd = match dp.map(name)? {
        aya::maps::Map::HashMap(m) | aya::maps::Map::LruHashMap(m) => m.fd().as_fd().as_raw_fd(),
        _ => bail!("{name} is not a hash map"),
    };
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))?;
    info.lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no memlock in the fdinfo of {name}"))
}

/// Hyperplane ENIs at scale: the NAT path of an established flow and of
/// new flows (allocation included) with the function's first ENI 1%, 50%
/// and 90% full (claims at random ports; a second, empty ENI in the group
/// takes what the first refuses, as the agent arranges from 80%), and the
/// established path with 1,000 and 1,000,000 conntrack entries (the table
/// sized `conntrack_max`, whose memory is measured).
fn scale_cases(
    repeat: u32,
    samples: usize,
    base: f64,
    conntrack_max: u32,
) -> Result<(Vec<Case>, Option<MapMemory>)> {
    use vpc_common::{CtEntry, CtKey, NatPortKey, DEFAULT_ENI_CAPACITY};
    let mut out = vec![];
    let mut model = model::build(BENCH_TEMPLATE, &HashMap::new(), "bench")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut second = model.enis[0].clone();
    second.index = 2;
    second.id = "eni-0second".into();
    second.ip = model.free_ip(&second.subnet).context("a free address")?;
    second.scaled = true;
    model.enis.push(second);
    let (syn, ack) = bench_frames(&model, "10.0.1.10");
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for level in [1u32, 50, 90] {
        let (mut dp, _, _) = bench_datapath(&model, &[("Fn", 1), ("Db", 100), ("App", 101)])?;
        // Claims at `level`% of the first ENI's ports, at random, with
        // their bits set, as the datapath's allocations leave them.
        let cap = DEFAULT_ENI_CAPACITY;
        let mut ports: Vec<u16> = (0..cap).map(|i| 1024 + i as u16).collect();
        let filled = (cap as u64 * level as u64 / 100) as usize;
        {
            let bitmap = crate::datapath::NatPortBitmap::open(&mut dp)?
                .context("the object has no NAT_PORT_BITMAP")?;
            let mut m: BpfHashMap<_, NatPortKey, CtKey> =
                BpfHashMap::try_from(dp.map(map_names::NAT_PORTS)?)?;
            for i in 0..filled {
                let j = i + (next() % (ports.len() - i) as u64) as usize;
                ports.swap(i, j);
                let k = NatPortKey {
                    eni: 1,
                    port: ports[i].to_be(),
                    proto: 6,
                    ..Default::default()
                };
                bitmap.set(&k);
                m.insert(k, CtKey::default(), 0)?;
            }
        }
        set_mode(&mut dp, 0)?;
        if run_once(&mut dp, BENCH_ROUTER_PROGRAM, &syn, 1)?.0 != 4 {
            bail!("ENI at {level}%: the benchmark connection does not open");
        }
        out.push(case(
            &mut dp,
            format!("nat_established_eni_{level}pct"),
            "established function flow (CT hit, SNAT) with the ENI this full",
            0,
            &ack,
            repeat,
            samples,
            base,
        )?);
        out.push(case(
            &mut dp,
            format!("nat_new_flow_eni_{level}pct"),
            "new function flow, NAT port allocation on an ENI this full (overflow to a second, empty ENI)",
            1,
            &syn,
            repeat,
            samples,
            base,
        )?);
    }
    let mut memory = None;
    for entries in [1_000u32, 1_000_000] {
        let ct_max = if entries > 1_000 {
            conntrack_max
        } else {
            vpc_common::CT_MAX_ENTRIES
        };
        if ct_max < entries + 2 {
            bail!("--conntrack-max {ct_max}: the 1,000,000-entry case needs more than {entries}");
        }
        let model = model::build(BENCH_TEMPLATE, &HashMap::new(), "bench")
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let (mut dp, _, _) =
            bench_datapath_with(&model, &[("Fn", 1), ("Db", 100), ("App", 101)], ct_max)?;
        {
            let mut m: BpfHashMap<_, CtKey, CtEntry> =
                BpfHashMap::try_from(dp.map(map_names::CT)?)?;
            let now = crate::datapath::mono_ns();
            for i in 0..entries - 1 {
                let x = next();
                let k = CtKey {
                    saddr: vpc_common::v4_mapped([10, 9, (i >> 8) as u8, i as u8]),
                    daddr: vpc_common::v4_mapped((x as u32).to_be_bytes()),
                    sport: (i >> 16) as u16,
                    dport: (x >> 32) as u16,
                    proto: 6,
                    ..Default::default()
                };
                let e = CtEntry {
                    last_seen: now,
                    created: now,
                    in_ifindex: 999,
                    ..Default::default()
                };
                m.insert(k, e, 0)?;
            }
        }
        let (syn, ack) = bench_frames(&model, "10.0.1.10");
        set_mode(&mut dp, 0)?;
        if run_once(&mut dp, BENCH_ROUTER_PROGRAM, &syn, 1)?.0 != 4 {
            bail!("{entries} CT entries: the benchmark connection does not open");
        }
        out.push(case(
            &mut dp,
            format!("ct_lookup_{entries}_entries"),
            "established function flow with this many conntrack entries",
            0,
            &ack,
            repeat,
            samples,
            base,
        )?);
        if entries > 1_000 {
            let (ct, nat) = (
                map_memlock(&mut dp, map_names::CT)?,
                map_memlock(&mut dp, map_names::NAT_PORTS)?,
            );
            let connections = ct_max as u64 / 2;
            memory = Some(MapMemory {
                conntrack_max: ct_max,
                ct_bytes: ct,
                nat_ports_bytes: nat,
                connections,
                bytes_per_connection: (ct + nat) as f64 / connections as f64,
            });
        }
    }
    Ok((out, memory))
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
    let ns = |n: &str| r.cases.iter().find(|c| c.name == n).map(|c| c.ns_median);
    s += "\nFlow logs on / off (same run):";
    for n in ["established_tcp", "new_flow_tcp", "dropped_sg"] {
        if let (Some(off), Some(on)) = (ns(n), ns(&format!("{n}_flowlogs"))) {
            s += &format!(" {n} {on:.0} / {off:.0} ns = {:.2};", on / off);
        }
    }
    s += "\n";
    s += &cross_host::table(r);
    let parts = breakdown(r);
    if !parts.is_empty() {
        s += "\nWhere an established packet's time goes (stages in the same harness, this run):\n\n| part | ns | share |\n|---|---:|---:|\n";
        let total: f64 = parts.iter().map(|(_, t)| t).sum();
        for (part, t) in &parts {
            s += &format!("| {part} | {t:.1} | {:.0}% |\n", 100.0 * t / total);
        }
        if let (Some(by_ports), Some(lookup)) = (ns("stage_lookup_by_ports"), ns("stage_lookup")) {
            s += &format!(
                "\nThe port's space from PORTS (hash) instead of PORT_SPACES (array): {by_ports:.0} / {lookup:.0} ns = {:.2}; the array saves {:.0} ns a packet\n",
                by_ports / lookup,
                by_ports - lookup
            );
        }
    }
    s += "\nCost as rules grow (function in subnet A -> database in subnet B, both ACLs apply):\n\n| SG rules per side | ACL rules per direction | established ns | x 1 rule | new flow ns | x 1 rule |\n|---:|---:|---:|---:|---:|---:|\n";
    for p in &r.rules_curve {
        s += &format!(
            "| {} | {} | {:.1} | {:.2} | {:.1} | {:.2} |\n",
            p.sg_rules,
            p.acl_rules,
            p.established_ns,
            p.established_ratio,
            p.new_flow_ns,
            p.new_flow_ratio
        );
    }
    s += "\nHyperplane ENIs at scale (same baseline):\n\n| case | ns/packet | x baseline |\n|---|---:|---:|\n";
    for c in &r.scale_cases {
        s += &format!(
            "| {} | {:.1} | {:.2} |\n",
            c.name, c.ns_median, c.ratio_to_baseline
        );
    }
    s += "\nRouted paths (a host; its subnet's table with 1 or 50 routes; same baseline):\n\n| case | ns/packet | x baseline |\n|---|---:|---:|\n";
    for c in &r.routed_cases {
        s += &format!(
            "| {} | {:.1} | {:.2} |\n",
            c.name, c.ns_median, c.ratio_to_baseline
        );
    }
    if let Some(m) = &r.memory {
        s += &format!(
            "\nConntrack memory (memlock) at {} entries: CT {:.1} MiB + NAT_PORTS {:.1} MiB; {} connections (2 CT entries + 1 NAT claim each): {:.0} bytes per connection\n",
            m.conntrack_max,
            m.ct_bytes as f64 / 1048576.0,
            m.nat_ports_bytes as f64 / 1048576.0,
            m.connections,
            m.bytes_per_connection
        );
    }
    s
}

/// One point of the rules curve.
#[derive(Debug, Clone, Serialize)]
pub struct CurvePoint {
    /// Security-group rules on each side (the function's groups outbound,
    /// the database's inbound), spread over 5 groups from 10 rules up.
    pub sg_rules: usize,
    /// Network ACL rules per direction on each subnet.
    pub acl_rules: usize,
    pub established_ns: f64,
    pub new_flow_ns: f64,
    /// Against the 1-rule point.
    pub established_ratio: f64,
    pub new_flow_ratio: f64,
}

/// The function (subnet A) talks to the database (subnet B, so both ACLs
/// apply) through `sg_rules` rules per side and `acl_rules` ACL rules per
/// direction. Filler rules use distinct prefixes and ports; the rules the
/// packet needs are the last ACL rules, the worst place for a scan.
pub fn rules_template(sg_rules: usize, acl_rules: usize) -> String {
    let groups = if sg_rules < 5 { 1 } else { 5 };
    let per = sg_rules / groups;
    let mut t = String::from(
        "Resources:\n  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}\n  A: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}\n  B: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24}}\n",
    );
    for (prefix, field, needed) in [
        (
            "F",
            "SecurityGroupEgress",
            "{IpProtocol: tcp, FromPort: 5432, ToPort: 5432, CidrIp: 10.0.2.0/24}",
        ),
        (
            "D",
            "SecurityGroupIngress",
            "{IpProtocol: tcp, FromPort: 5432, ToPort: 5432, SourceSecurityGroupId: !Ref F0}",
        ),
    ] {
        for g in 0..groups {
            let mut rules: Vec<String> = (0..per - usize::from(g == 0))
                .map(|r| {
                    format!(
                        "{{IpProtocol: tcp, FromPort: {p}, ToPort: {p}, CidrIp: 10.{}.{}.0/24}}",
                        100 + g,
                        r % 256,
                        p = 1000 + r
                    )
                })
                .collect();
            if g == 0 {
                rules.push(needed.to_string());
            }
            t += &format!("  {prefix}{g}: {{Type: AWS::EC2::SecurityGroup, Properties: {{GroupDescription: g, VpcId: !Ref Vpc, {field}: [{}]}}}}\n", rules.join(", "));
        }
    }
    for (acl, subnet) in [("AclA", "A"), ("AclB", "B")] {
        t += &format!("  {acl}: {{Type: AWS::EC2::NetworkAcl, Properties: {{VpcId: !Ref Vpc}}}}\n  {acl}S: {{Type: AWS::EC2::SubnetNetworkAclAssociation, Properties: {{SubnetId: !Ref {subnet}, NetworkAclId: !Ref {acl}}}}}\n");
        for egress in [false, true] {
            for r in 0..acl_rules {
                let last = r + 1 == acl_rules;
                let body = if last {
                    "RuleAction: allow, Protocol: -1, CidrBlock: 10.0.0.0/16".to_string()
                } else {
                    format!("RuleAction: deny, Protocol: 6, CidrBlock: 10.{}.0.0/16, PortRange: {{From: {p}, To: {p}}}", 200 + r % 50, p = 9000 + r)
                };
                t += &format!(
                    "  {acl}{}{r}: {{Type: AWS::EC2::NetworkAclEntry, Properties: {{NetworkAclId: !Ref {acl}, RuleNumber: {}, Egress: {egress}, {body}}}}}\n",
                    if egress { "Out" } else { "In" },
                    r + 1
                );
            }
        }
    }
    let fgroups: Vec<String> = (0..groups).map(|g| format!("!Ref F{g}")).collect();
    let dgroups: Vec<String> = (0..groups).map(|g| format!("!Ref D{g}")).collect();
    t += &format!("  Db: {{Type: AWS::EC2::Instance, Properties: {{SubnetId: !Ref B, PrivateIpAddress: 10.0.2.10, SecurityGroupIds: [{}]}}}}\n", dgroups.join(", "));
    t += &format!("  Fn: {{Type: AWS::Lambda::Function, Properties: {{VpcConfig: {{SubnetIds: [!Ref A], SecurityGroupIds: [{}]}}}}}}\n", fgroups.join(", "));
    t
}

/// Established and new-flow cost as the rule count grows.
pub fn rules_curve(repeat: u32, samples: usize) -> Result<Vec<CurvePoint>> {
    let mut out: Vec<CurvePoint> = vec![];
    for (sg, acl) in [(1usize, 1usize), (10, 10), (100, 40), (1000, 40)] {
        let quotas = model::Quotas {
            rules_per_group: 1000,
            acl_rules: 40,
        };
        let m = model::build_with(&rules_template(sg, acl), &HashMap::new(), "curve", quotas)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let (mut dp, _, _) = bench_datapath(&m, &[("Fn", 1), ("Db", 100)])?;
        let (syn, ack) = bench_frames(&m, "10.0.2.10");
        set_mode(&mut dp, 0)?;
        if run_once(&mut dp, BENCH_ROUTER_PROGRAM, &syn, 1)?.0 != 4 {
            bail!("rules curve ({sg} rules): the connection does not open");
        }
        let (mut est, mut new) = (vec![], vec![]);
        for _ in 0..samples {
            set_mode(&mut dp, 0)?;
            let (v1, e) = run_once(&mut dp, BENCH_ROUTER_PROGRAM, &ack, repeat)?;
            set_mode(&mut dp, 1)?;
            let (v2, n) = run_once(&mut dp, BENCH_ROUTER_PROGRAM, &syn, repeat)?;
            if v1 != 4 || v2 != 4 {
                bail!(
                    "rules curve ({sg} rules): verdicts {} / {}",
                    verdict_name(v1),
                    verdict_name(v2)
                );
            }
            est.push(e);
            new.push(n);
        }
        let (e, n) = (median(&mut est), median(&mut new));
        let (e1, n1) = out
            .first()
            .map(|p| (p.established_ns, p.new_flow_ns))
            .unwrap_or((e, n));
        out.push(CurvePoint {
            sg_rules: sg,
            acl_rules: acl,
            established_ns: e,
            new_flow_ns: n,
            established_ratio: e / e1,
            new_flow_ratio: n / n1,
        });
    }
    Ok(out)
}

/// The curve as a small SVG line chart (no plotting dependency for two lines).
pub fn curve_svg(points: &[CurvePoint], baseline_ns: f64) -> String {
    let (w, h, left, bottom, top, right) = (640.0, 360.0, 70.0, 50.0, 40.0, 170.0);
    let ymax = points
        .iter()
        .map(|p| p.new_flow_ns)
        .fold(baseline_ns, f64::max)
        * 1.15;
    let x = |i: usize| left + (w - left - right) * i as f64 / (points.len() - 1).max(1) as f64;
    let y = |v: f64| h - bottom - (h - bottom - top) * v / ymax;
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    s += &format!("<text x=\"{}\" y=\"22\" font-size=\"15\">ns per packet vs security-group rules (BPF_PROG_TEST_RUN)</text>\n", left);
    s += &format!("<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>\n", h - bottom, w - right, h - bottom, h - bottom);
    for k in 0..=4 {
        let v = ymax * k as f64 / 4.0;
        s += &format!(
            "<text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{v:.0}</text><line x1=\"{left}\" y1=\"{py}\" x2=\"{rx}\" y2=\"{py}\" stroke=\"#ddd\"/>\n",
            lx = left - 6.0,
            ty = y(v) + 4.0,
            py = y(v),
            rx = w - right
        );
    }
    for (i, p) in points.iter().enumerate() {
        s += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{} / {}</text>\n",
            x(i),
            h - bottom + 18.0,
            p.sg_rules,
            p.acl_rules
        );
    }
    s += &format!("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">SG rules per side / ACL rules per direction</text>\n", (left + w - right) / 2.0, h - 10.0);
    let series: [(&str, &str, Vec<f64>); 3] = [
        (
            "new flow",
            "#d62728",
            points.iter().map(|p| p.new_flow_ns).collect(),
        ),
        (
            "established",
            "#1f77b4",
            points.iter().map(|p| p.established_ns).collect(),
        ),
        (
            "redirect baseline",
            "#7f7f7f",
            vec![baseline_ns; points.len()],
        ),
    ];
    for (k, (name, color, vals)) in series.iter().enumerate() {
        let pts: Vec<String> = vals
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        s += &format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n",
            pts.join(" ")
        );
        for (i, v) in vals.iter().enumerate() {
            s += &format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>\n",
                x(i),
                y(*v)
            );
        }
        let ly = top + 20.0 * k as f64;
        s += &format!("<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\"/><text x=\"{}\" y=\"{}\">{name}</text>\n", w - right + 10.0, w - right + 30.0, w - right + 36.0, ly + 4.0);
    }
    s + "</svg>\n"
}

/// The breakdown (`breakdown`) as one stacked bar per packet, the bare
/// redirect beside it, to scale: where an established packet's time goes.
pub fn breakdown_svg(parts: &[(String, f64)]) -> String {
    let (w, h, left, right, top) = (760.0, 250.0, 150.0, 50.0, 40.0);
    let colors = [
        "#7f7f7f", "#2ca02c", "#d62728", "#1f77b4", "#ff7f0e", "#9467bd",
    ];
    let total: f64 = parts.iter().map(|(_, t)| t.max(0.0)).sum::<f64>().max(1.0);
    let scale = (w - left - right) / total;
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    s += "<text x=\"10\" y=\"22\" font-size=\"15\">Where an established packet's time goes (ns, BPF_PROG_TEST_RUN, one run)</text>\n";
    let bar = |s: &mut String, y: f64, label: &str, parts: &[(String, f64)]| {
        *s += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{label}</text>\n",
            left - 8.0,
            y + 18.0
        );
        let mut x = left;
        for (i, (_, t)) in parts.iter().enumerate() {
            let bw = t.max(0.0) * scale;
            *s += &format!(
                "<rect x=\"{x:.1}\" y=\"{y}\" width=\"{bw:.1}\" height=\"28\" fill=\"{}\"/>\n",
                colors[i % colors.len()]
            );
            x += bw;
        }
        let sum: f64 = parts.iter().map(|(_, t)| t.max(0.0)).sum();
        *s += &format!(
            "<text x=\"{:.1}\" y=\"{}\">{sum:.0}</text>\n",
            x + 6.0,
            y + 18.0
        );
    };
    bar(&mut s, top, "bare redirect", &parts[..1.min(parts.len())]);
    bar(&mut s, top + 40.0, "established packet", parts);
    for (i, (name, t)) in parts.iter().enumerate() {
        let y = top + 90.0 + 18.0 * i as f64;
        s += &format!(
            "<rect x=\"{left}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{y}\">{name}: {t:.0} ns</text>\n",
            y - 10.0,
            colors[i % colors.len()],
            left + 18.0
        );
    }
    s + "</svg>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, ns: f64) -> Case {
        Case {
            name: name.into(),
            description: String::new(),
            ns_median: ns,
            ns_samples: vec![ns],
            ratio_to_baseline: 0.0,
            verdict: "XDP_REDIRECT".into(),
        }
    }

    #[test]
    fn the_breakdown_is_each_stage_over_the_one_before_and_adds_up_to_the_packet() {
        let mut r = Report {
            repeat: 1,
            samples: 1,
            kernel: String::new(),
            cases: vec![
                case("baseline_redirect", 40.0),
                case("established_tcp", 150.0),
                case("stage_parse", 50.0),
                case("stage_lookup", 100.0),
                case("stage_state", 120.0),
                case("stage_rewrite", 130.0),
            ],
            rules_curve: vec![],
            scale_cases: vec![],
            routed_cases: vec![],
            cross_host_cases: vec![],
            memory: None,
        };
        let parts = breakdown(&r);
        let ns: Vec<f64> = parts.iter().map(|(_, t)| *t).collect();
        assert_eq!(ns, [40.0, 10.0, 50.0, 20.0, 10.0, 20.0]);
        assert_eq!(ns.iter().sum::<f64>(), 150.0);
        assert_eq!(parts[2].0, "conntrack lookup");
        let svg = breakdown_svg(&parts);
        assert!(svg.contains("conntrack lookup: 50 ns"), "{svg}");
        // A run without the stages has no breakdown rather than a wrong one.
        r.cases.retain(|c| c.name != "stage_state");
        assert!(breakdown(&r).is_empty());
    }
}

//! `cargo xtask bench --throughput`: real frames through real veths.
//!
//! One topology (the default template: an execution environment, the VPC
//! router, a database host), three paths, the same traffic:
//! 1. `vpc`: this project's router (groups, ACLs, conntrack, V2N NAT);
//! 2. `limit`: an XDP program that only rewrites MACs and redirects;
//! 3. `nftables`: kernel forwarding with nftables doing the same job (allowed
//!    port, `ct state established,related accept`, SNAT to the ENI address).
//!
//! A live-frames generator (`tput_gen` through BPF_PROG_TEST_RUN with
//! `xdp_live_frames`) transmits 64-byte UDP frames from the execution
//! environment's `eth0`; the database's `eth0` counts and drops them
//! (`tput_sink`), so the sink costs the same on every path.
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use aya::{
    maps::{Array, HashMap as BpfHashMap, PerCpuArray},
    programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp, XdpMode},
    Ebpf, EbpfLoader,
};
use serde::Serialize;

use crate::{
    datapath::{Hook, PinnedMaps, Timeouts, EBPF_OBJECT},
    deploy::{self, State, UpOptions},
    model,
    packet::{Frame, L4},
    topology::{self, in_netns, Role},
};

#[derive(Debug, Clone, Serialize)]
pub struct PathResult {
    pub path: String,
    pub flows: u32,
    pub mpps_samples: Vec<f64>,
    pub mpps_median: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub frames_per_sample: u32,
    pub samples: usize,
    pub kernel: String,
    pub results: Vec<PathResult>,
    /// ours / nftables and ours / limit, per flow count.
    pub ratios: Vec<(u32, f64, f64)>,
    /// Bulk TCP (iperf3) and short connections, per path.
    pub tcp: Vec<TcpResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TcpResult {
    pub path: String,
    pub gbps_1_stream: f64,
    pub gbps_4_streams: f64,
    pub connections_per_second: f64,
}

/// One deployment of the default template, torn down however the run ends.
struct Bed {
    state: State,
    exec: topology::Node,
    db: topology::Node,
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = deploy::down(&self.state.name);
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

impl Bed {
    fn up(name: &str, hook: Hook) -> Result<Self> {
        let m = model::build(crate::DEFAULT_TEMPLATE, &HashMap::new(), name)
            .map_err(anyhow::Error::msg)?;
        let opts = UpOptions {
            hooks: deploy::Hooks {
                default: Some(hook),
                per_port: HashMap::new(),
            },
            metrics_addr: None,
            name: name.to_string(),
            template_label: "default (throughput)".into(),
            timeouts: Timeouts::default(),
            eni_delay: Duration::ZERO,
            quotas: model::Quotas::default(),
            eni_scaling: Default::default(),
            conntrack_max: vpc_common::CT_MAX_ENTRIES,
            nat_gateway_capacity: vpc_common::NAT_GATEWAY_CAPACITY,
            lifecycle: Default::default(),
            flow_logs: Default::default(),
        };
        let state = deploy::up(m, &opts)?;
        let node = |f: &dyn Fn(&topology::Node) -> bool| state.nodes.iter().find(|n| f(n)).cloned();
        let exec = node(&|n| n.role == Role::ExecutionEnvironment);
        let db = node(&|n| n.id == "DatabaseInstance");
        // A `Bed` before anything else can fail: dropping it tears down.
        let (Some(exec), Some(db)) = (exec, db) else {
            let _ = deploy::down(name);
            bail!("the default template lost its execution environment or DatabaseInstance");
        };
        let bed = Self { exec, db, state };
        // No agent here: the function is attached to its ENI directly.
        let f = bed
            .state
            .model
            .function("orders")
            .context("no function")?
            .clone();
        let mut maps = PinnedMaps::open(&bed.state.pin_dir)?;
        crate::reconcile::rewire(name, &mut maps, |m| {
            crate::lifecycle::attach(m, &f.id, f.vpc_config.clone(), usize::MAX)
        })?
        .map_err(|f| anyhow::anyhow!("{}", f.reason))?;
        Ok(bed)
    }

    /// Small packets (1 and 1,024 flows), then bulk TCP and short connections.
    fn measure(
        &self,
        h: &mut Harness,
        path: &str,
        frames: u32,
        samples: usize,
        tcp_seconds: u64,
    ) -> Result<(Vec<PathResult>, TcpResult)> {
        let (exec, db) = (&self.exec, &self.db);
        // 64-byte UDP from the execution environment to the database's 9000
        // (allowed for the function's group), to the router's MAC.
        let mut frame = Frame::new(
            exec.ip.into(),
            db.ip.into(),
            L4::Udp {
                sport: 40000,
                dport: 9000,
                no_checksum: true,
            },
        )
        .payload(&[0u8; 18])
        .min_len(64)
        .build();
        frame[0..6].copy_from_slice(&exec.link.router_mac);
        frame[6..12].copy_from_slice(&exec.link.mac);
        h.set_template(&frame)?;
        let sink_ifindex = ifindex_in(&db.netns, "eth0")?;
        let gen_ifindex = ifindex_in(&exec.netns, "eth0")?;
        // The sink on the database's eth0 (native) for small packets only.
        let sink: &mut Xdp = h
            .ebpf
            .program_mut("tput_sink")
            .context("tput_sink")?
            .try_into()?;
        let link = in_netns(&db.netns, || {
            Ok(sink.attach_to_if_index(sink_ifindex, XdpMode::Driver)?)
        })?;
        let mut results = vec![];
        for flows in [1u32, 1024] {
            h.set_flows(flows)?;
            let mut s = vec![];
            for _ in 0..samples {
                s.push(h.blast(&exec.netns, gen_ifindex, frames)?);
            }
            if s.iter().all(|x| *x == 0.0) {
                bail!("{path}: nothing reached the sink");
            }
            results.push(PathResult {
                path: path.into(),
                flows,
                mpps_median: median(&s),
                mpps_samples: s,
            });
        }
        let sink: &mut Xdp = h
            .ebpf
            .program_mut("tput_sink")
            .context("tput_sink")?
            .try_into()?;
        sink.detach(link)?;
        // TCP runs are long: the median of up to 3.
        let runs = samples.clamp(1, 3);
        let repeat = |f: &dyn Fn() -> Result<f64>| -> Result<f64> {
            let v = (0..runs).map(|_| f()).collect::<Result<Vec<_>>>()?;
            Ok(median(&v))
        };
        let tcp = TcpResult {
            path: path.into(),
            gbps_1_stream: repeat(&|| iperf(&exec.netns, &db.netns, db.ip, 1, tcp_seconds))?,
            gbps_4_streams: repeat(&|| iperf(&exec.netns, &db.netns, db.ip, 4, tcp_seconds))?,
            connections_per_second: repeat(&|| {
                connection_rate(&exec.netns, &db.netns, db.ip, tcp_seconds)
            })?,
        };
        Ok((results, tcp))
    }
}

/// The paths, in the order the tables show them (`vpc-tc` runs first: its
/// deployment is the only one with TC hooks).
pub const PATHS: [&str; 5] = ["vpc", "vpc-flowlogs", "vpc-tc", "limit", "nftables"];

/// Runs every path; `frames` per sample, `samples` samples per case.
pub fn run(name: &str, frames: u32, samples: usize, tcp_seconds: u64) -> Result<Report> {
    let mut h = Harness::load()?;
    let mut results = vec![];
    let mut tcp = vec![];
    let mut record = |(r, t): (Vec<PathResult>, TcpResult)| {
        results.extend(r);
        tcp.push(t);
    };
    {
        // The router at TC on every port: endpoints keep their offloads.
        let bed = Bed::up(name, Hook::Tc)?;
        record(bed.measure(&mut h, "vpc-tc", frames, samples, tcp_seconds)?);
    }
    let bed = Bed::up(name, Hook::Xdp)?;
    let (exec, db) = (&bed.exec, &bed.db);
    record(bed.measure(&mut h, "vpc", frames, samples, tcp_seconds)?);
    // The same with flow logs counting (the datapath's side of them: a
    // window in force, every packet counted in its connection's slot).
    let set_window = |w: u64| -> Result<()> {
        let mut maps = crate::datapath::PinnedMaps::open(&bed.state.pin_dir)?;
        let mut conf: aya::maps::Array<_, u64> =
            aya::maps::Array::try_from(crate::datapath::Maps::map(&mut maps, "CONFIG")?)?;
        conf.set(vpc_common::cfg::FLOW_WINDOW, w, 0)?;
        Ok(())
    };
    set_window(1)?;
    record(bed.measure(&mut h, "vpc-flowlogs", frames, samples, tcp_seconds)?);
    set_window(0)?;

    // The limit: swap every router link to the bare redirect, atomically.
    let mut table: BpfHashMap<_, u32, [u32; 4]> =
        BpfHashMap::try_from(h.ebpf.map_mut("TPUT_REDIRECT").context("map")?)?;
    let macs = |dst: [u8; 6], src: [u8; 6]| -> [u32; 3] {
        let b = [dst, src].concat();
        [0, 4, 8].map(|i| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]))
    };
    let m = macs(db.link.mac, db.link.router_mac);
    table.insert(exec.link.ifindex, [db.link.ifindex, m[0], m[1], m[2]], 0)?;
    // And back, for TCP's acknowledgements.
    let m = macs(exec.link.mac, exec.link.router_mac);
    table.insert(db.link.ifindex, [exec.link.ifindex, m[0], m[1], m[2]], 0)?;
    let redirect: &mut Xdp = h
        .ebpf
        .program_mut("tput_redirect")
        .context("tput_redirect")?
        .try_into()?;
    for n in &bed.state.nodes {
        let pin = bed.state.pin_dir.join("links").join(&n.router_if);
        let link = aya::programs::links::PinnedLink::from_pin(&pin)?.unpin()?;
        let link: aya::programs::xdp::XdpLink = link.try_into().context("XDP link")?;
        redirect.attach_to_link(link)?;
    }
    record(bed.measure(&mut h, "limit", frames, samples, tcp_seconds)?);

    // nftables: no XDP on the router; kernel forwarding and a ruleset, and
    // the endpoints' offloads back on, as a user's own router would have.
    // Unloading the redirect program detaches it from every router veth.
    let redirect: &mut Xdp = h
        .ebpf
        .program_mut("tput_redirect")
        .context("tput_redirect")?
        .try_into()?;
    redirect.unload()?;
    for n in &bed.state.nodes {
        topology::set_tx_offload(&bed.state.name, n, true)?;
    }
    nft_router(&bed.state, exec, db)?;
    record(bed.measure(&mut h, "nftables", frames, samples, tcp_seconds)?);
    drop(bed);

    let pick = |path: &str, flows: u32| {
        results
            .iter()
            .find(|r| r.path == path && r.flows == flows)
            .map(|r| r.mpps_median)
            .unwrap_or(0.0)
    };
    let ratios = [1u32, 1024]
        .iter()
        .map(|&f| {
            (
                f,
                pick("vpc", f) / pick("nftables", f).max(1e-9),
                pick("vpc", f) / pick("limit", f).max(1e-9),
            )
        })
        .collect();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    Ok(Report {
        frames_per_sample: frames,
        samples,
        kernel,
        results,
        ratios,
        tcp,
    })
}

/// iperf3 from the execution environment to the database's port 5432 (the
/// one its groups allow); Gbit/s received.
fn iperf(
    client_ns: &str,
    server_ns: &str,
    server: std::net::Ipv4Addr,
    streams: u32,
    secs: u64,
) -> Result<f64> {
    let mut srv = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            server_ns,
            "iperf3",
            "-s",
            "-1",
            "-p",
            "5432",
            "-B",
            &server.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("iperf3 (is it installed?)")?;
    std::thread::sleep(Duration::from_millis(300));
    let out = topology::run(
        "ip",
        &[
            "netns",
            "exec",
            client_ns,
            "iperf3",
            "-c",
            &server.to_string(),
            "-p",
            "5432",
            "-t",
            &secs.to_string(),
            "-P",
            &streams.to_string(),
            "-J",
        ],
    );
    let _ = srv.kill();
    let _ = srv.wait();
    let v: serde_json::Value = serde_json::from_str(&out?).context("iperf3 JSON")?;
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3: no sum_received")?;
    Ok(bps / 1e9)
}

/// Short TCP connections (connect, one byte each way, close) for a few
/// seconds; completed connections per second.
fn connection_rate(
    client_ns: &str,
    server_ns: &str,
    server: std::net::Ipv4Addr,
    secs: u64,
) -> Result<f64> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from((server, 5432));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listener = in_netns(server_ns, || Ok(std::net::TcpListener::bind(addr)?))?;
    listener.set_nonblocking(true)?;
    let s2 = stop.clone();
    let srv = std::thread::spawn(move || {
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut c, _)) => {
                    let _ = c.set_nonblocking(false);
                    let mut b = [0u8; 1];
                    if c.read_exact(&mut b).is_ok() {
                        let _ = c.write_all(&b);
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_micros(200)),
            }
        }
    });
    let done = in_netns(client_ns, || {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_secs(secs) {
            let Ok(mut c) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            else {
                continue;
            };
            let mut b = [7u8; 1];
            if c.write_all(&b).is_ok() && c.read_exact(&mut b).is_ok() {
                n += 1;
            }
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = srv.join();
    done
}

fn ifindex_in(ns: &str, dev: &str) -> Result<u32> {
    let dev = dev.to_string();
    in_netns(ns, move || {
        nix::net::if_::if_nametoindex(dev.as_str()).map_err(|e| anyhow::anyhow!("{dev}: {e}"))
    })
}

/// The router namespace as a user would build it by hand: addresses,
/// forwarding, and an nftables ruleset doing the groups' and NAT's job.
fn nft_router(state: &State, exec: &topology::Node, db: &topology::Node) -> Result<()> {
    let r = &state.router_netns;
    let eni = state
        .model
        .enis
        .iter()
        .find(|e| e.subnet == "PrivateSubnetA")
        .context("ENI")?
        .ip;
    let run = |args: &[&str]| topology::run("ip", args);
    run(&[
        "-n",
        r,
        "addr",
        "add",
        &format!("{}/32", exec.gateway),
        "dev",
        &exec.router_if,
    ])?;
    run(&[
        "-n",
        r,
        "addr",
        "add",
        &format!("{}/32", db.gateway),
        "dev",
        &db.router_if,
    ])?;
    run(&[
        "-n",
        r,
        "route",
        "add",
        &format!("{}/32", exec.ip),
        "dev",
        &exec.router_if,
    ])?;
    run(&[
        "-n",
        r,
        "route",
        "add",
        &format!("{}/32", db.ip),
        "dev",
        &db.router_if,
    ])?;
    let mac = |m: [u8; 6]| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    for n in [db, exec] {
        run(&[
            "-n",
            r,
            "neigh",
            "replace",
            &n.ip.to_string(),
            "lladdr",
            &mac(n.link.mac),
            "dev",
            &n.router_if,
            "nud",
            "permanent",
        ])?;
    }
    run(&["netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
    // Without XDP on them, the router veths need NAPI (GRO) to take the
    // generator's XDP_TX frames.
    for n in [exec, db] {
        run(&[
            "netns",
            "exec",
            r,
            "ethtool",
            "-K",
            &n.router_if,
            "gro",
            "on",
        ])?;
    }
    let ruleset = format!(
        "table inet vpc {{
  chain forward {{
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    ip saddr 198.19.0.0/16 ip daddr {db} udp dport {{ 9000 }} accept
    ip saddr 198.19.0.0/16 ip daddr {db} tcp dport {{ 5432 }} accept
  }}
  chain postrouting {{
    type nat hook postrouting priority 100;
    ip saddr 198.19.0.0/16 snat ip to {eni}
  }}
}}
",
        db = db.ip
    );
    let path = std::env::temp_dir().join(format!("{}-nft.conf", state.name));
    std::fs::write(&path, ruleset)?;
    run(&[
        "netns",
        "exec",
        r,
        "nft",
        "-f",
        path.to_str().expect("utf-8"),
    ])?;
    Ok(())
}

/// The generator and sink programs, loaded from the same object.
struct Harness {
    ebpf: Ebpf,
}

impl Harness {
    fn load() -> Result<Self> {
        let mut ebpf = EbpfLoader::new().load(EBPF_OBJECT)?;
        for p in ["tput_gen", "tput_sink", "tput_redirect"] {
            let prog: &mut Xdp = ebpf.program_mut(p).context("program")?.try_into()?;
            prog.load()
                .with_context(|| format!("the kernel rejected {p}"))?;
        }
        Ok(Self { ebpf })
    }

    fn set_template(&mut self, frame: &[u8]) -> Result<()> {
        let mut words = [0u64; 8];
        for (i, w) in words.iter_mut().enumerate() {
            *w = u64::from_ne_bytes(frame[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        }
        let mut a: Array<_, [u64; 8]> =
            Array::try_from(self.ebpf.map_mut("TPUT_TEMPLATE").context("map")?)?;
        a.set(0, words, 0)?;
        Ok(())
    }

    fn set_flows(&mut self, flows: u32) -> Result<()> {
        let mut a: Array<_, u32> = Array::try_from(self.ebpf.map_mut("TPUT_CFG").context("map")?)?;
        a.set(0, flows, 0)?;
        Ok(())
    }

    fn sunk(&mut self) -> Result<u64> {
        let a: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.ebpf.map("TPUT_COUNT").context("map")?)?;
        Ok(a.get(&0, 0)?.iter().sum())
    }

    /// Sends `frames` frames from `ifindex` in `ns`; Mpps that reached the sink.
    fn blast(&mut self, ns: &str, ifindex: u32, frames: u32) -> Result<f64> {
        let before = self.sunk()?;
        let gen: &Xdp = self
            .ebpf
            .program("tput_gen")
            .context("tput_gen")?
            .try_into()?;
        let data = [0u8; 64];
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&64u32.to_ne_bytes());
        ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
        let start = Instant::now();
        in_netns(ns, || {
            gen.test_run(TestRunOptions {
                data_in: Some(&data),
                ctx_in: Some(&ctx),
                repeat: frames,
                attrs: TestRunAttrs::new().xdp_live_frames(64),
                ..Default::default()
            })
            .context("live frames")
        })?;
        // Frames still in flight land within a moment.
        std::thread::sleep(Duration::from_millis(50));
        let secs = start.elapsed().as_secs_f64() - 0.05;
        let n = self.sunk()? - before;
        Ok(n as f64 / secs / 1e6)
    }
}

pub fn table(r: &Report) -> String {
    let mut s = format!(
        "Live frames: {} x 64-byte UDP frames per sample, {} samples, kernel {} (median Mpps at the sink)\n\n| path | 1 flow | 1,024 flows |\n|---|---:|---:|\n",
        r.frames_per_sample, r.samples, r.kernel
    );
    for path in PATHS {
        let v = |f: u32| {
            r.results
                .iter()
                .find(|x| x.path == path && x.flows == f)
                .map(|x| x.mpps_median)
                .unwrap_or(0.0)
        };
        s += &format!("| {path} | {:.2} | {:.2} |\n", v(1), v(1024));
    }
    for (f, nft, lim) in &r.ratios {
        s += &format!("\n{f} flow(s): vpc / nftables = {nft:.2}, vpc / limit = {lim:.2}");
    }
    let mpps = |p: &str, f: u32| {
        r.results
            .iter()
            .find(|x| x.path == p && x.flows == f)
            .map_or(0.0, |x| x.mpps_median)
    };
    for f in [1, 1024] {
        s += &format!(
            "\n{f} flow(s): vpc-flowlogs / vpc = {:.2}",
            mpps("vpc-flowlogs", f) / mpps("vpc", f).max(1e-9)
        );
    }
    s += "\n\n| path | TCP 1 stream (Gbit/s) | TCP 4 streams (Gbit/s) | connections/s |\n|---|---:|---:|---:|\n";
    for path in PATHS {
        if let Some(t) = r.tcp.iter().find(|t| t.path == path) {
            s += &format!(
                "| {} | {:.2} | {:.2} | {:.0} |\n",
                t.path, t.gbps_1_stream, t.gbps_4_streams, t.connections_per_second
            );
        }
    }
    let tcp = |p: &str| r.tcp.iter().find(|t| t.path == p);
    if let (Some(tc), Some(nft)) = (tcp("vpc-tc"), tcp("nftables")) {
        s += &format!(
            "\nTCP: vpc-tc / nftables = {:.2} (1 stream), {:.2} (4 streams)\n",
            tc.gbps_1_stream / nft.gbps_1_stream.max(1e-9),
            tc.gbps_4_streams / nft.gbps_4_streams.max(1e-9)
        );
    }
    s
}

/// One panel of grouped bars: a group per path, a bar per series.
fn bar_panel(
    x0: f64,
    title: &str,
    paths: &[&str],
    series: &[(&str, &str)],
    value: impl Fn(&str, usize) -> f64,
) -> String {
    let (w, h, top, bottom, left) = (430.0, 360.0, 40.0, 60.0, 45.0);
    let ymax = paths
        .iter()
        .flat_map(|p| (0..series.len()).map(|i| value(p, i)))
        .fold(1e-9, f64::max)
        * 1.15;
    let y = |v: f64| h - bottom - (h - bottom - top) * v / ymax;
    let mut s = format!(
        "<text x=\"{}\" y=\"22\" font-size=\"14\">{title}</text>\n",
        x0 + left
    );
    let (ax, right) = (x0 + left, x0 + w - 10.0);
    s += &format!(
        "<line x1=\"{ax}\" y1=\"{}\" x2=\"{right}\" y2=\"{}\" stroke=\"black\"/>\n",
        y(0.0),
        y(0.0)
    );
    for k in 0..=4 {
        let v = ymax * k as f64 / 4.0;
        s += &format!("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{v:.1}</text><line x1=\"{ax}\" y1=\"{py}\" x2=\"{right}\" y2=\"{py}\" stroke=\"#ddd\"/>\n", ax - 5.0, y(v) + 4.0, py = y(v));
    }
    let group_w = (right - ax) / paths.len() as f64;
    let bar_w = group_w * 0.8 / series.len() as f64;
    for (g, p) in paths.iter().enumerate() {
        let gx = ax + group_w * g as f64 + group_w * 0.1;
        for (i, (_, color)) in series.iter().enumerate() {
            let v = value(p, i);
            let bx = gx + bar_w * i as f64;
            s += &format!("<rect x=\"{bx:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{v:.1}</text>\n", y(v), bar_w - 2.0, y(0.0) - y(v), bx + bar_w / 2.0, y(v) - 3.0);
        }
        s += &format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{p}</text>\n",
            gx + group_w * 0.4,
            h - bottom + 16.0
        );
    }
    for (i, (name, color)) in series.iter().enumerate() {
        let lx = ax + 150.0 * i as f64;
        s += &format!("<rect x=\"{lx}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\">{name}</text>\n", h - 22.0, lx + 16.0, h - 12.0);
    }
    s
}

/// The report as an SVG: small packets (Mpps) and bulk TCP (Gbit/s) per path.
pub fn svg(r: &Report) -> String {
    let mpps = |p: &str, i: usize| {
        let flows = [1, 1024][i];
        r.results
            .iter()
            .find(|x| x.path == p && x.flows == flows)
            .map_or(0.0, |x| x.mpps_median)
    };
    let gbps = |p: &str, i: usize| {
        r.tcp
            .iter()
            .find(|t| t.path == p)
            .map_or(0.0, |t| [t.gbps_1_stream, t.gbps_4_streams][i])
    };
    let colors = ("#1f77b4", "#ff7f0e");
    let mut s = String::from("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"860\" height=\"360\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    s += &bar_panel(
        0.0,
        "64-byte UDP, live frames (Mpps)",
        &PATHS,
        &[("1 flow", colors.0), ("1,024 flows", colors.1)],
        mpps,
    );
    s += &bar_panel(
        430.0,
        "Bulk TCP, iperf3 (Gbit/s)",
        &PATHS,
        &[("1 stream", colors.0), ("4 streams", colors.1)],
        gbps,
    );
    s + "</svg>\n"
}

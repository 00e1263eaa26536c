//! `cargo xtask bench --throughput`: real frames through real veths.
//!
//! One topology (the default template: an execution environment, the VPC
//! router, a database host), the same traffic on every path:
//! * `vpc-tc`, `vpc-xdp`: this project's router (groups, ACLs, conntrack,
//!   V2N NAT) at either hook on every port; `vpc-flowlogs`: the default
//!   hook (TC) with a flow-log window counting;
//! * `limit`: an XDP program that only rewrites MACs and redirects;
//! * `nftables`: kernel forwarding with nftables doing the same job (allowed
//!   ports, `ct state established,related accept`, SNAT to the ENI address);
//! * `direct`: no router at all, the two namespaces on one veth pair: the
//!   ceiling of the method itself. A figure within 20 % of it measures the
//!   method, and the report says so instead of giving a ratio.
//!
//! Two methods, both in every run:
//! 1. **Circulating frames.** The kernel refuses live-frame test runs here,
//!    and generators that do run (AF_PACKET, AF_XDP in copy mode: 0.3-0.5
//!    Mpps) are slower than the paths. So nothing generates frames while a
//!    figure is taken: `in_flight` 64-byte UDP frames are injected once,
//!    and an XDP reflector on both endpoints (`tput_reflect`) sends each
//!    frame back as the reply of its flow. The frames circulate through the
//!    path (out through the NAT, back through its reverse) in softirq on one
//!    core, and the reflections per second are passes through the path per
//!    second. Each pass costs the path plus one reflector run (a few
//!    instructions, the same on every path; `direct` shows its ceiling).
//! 2. **Sockets** ([`sockets`]): iperf3 TCP (1 and 4 streams) and 64-byte
//!    UDP, request/response latency and new connections per second, from
//!    the execution environment to the database, as a user measures.
use std::{
    collections::HashMap,
    net::Ipv4Addr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use aya::{
    maps::{Array, HashMap as BpfHashMap, PerCpuArray},
    programs::{xdp::XdpLinkId, Xdp, XdpMode},
    Ebpf, EbpfLoader,
};
use serde::Serialize;
use vpc_common::map_names;

use self::connections::{Counts, Probe};
use crate::{
    datapath::{Hook, PinnedMaps, Timeouts, EBPF_OBJECT},
    deploy::{self, Hooks, State, UpOptions},
    model,
    packet::{Frame, L4},
    topology::{self, in_netns, Role},
};

pub mod cluster;
pub mod connections;
mod report;
pub mod sockets;

pub use connections::ConnectionRate;
pub use report::{comparisons, connection_bound, svg, table, Comparison, RatioKind};
pub use sockets::SocketResult;

/// The paths, in the order the tables show them.
pub const PATHS: [&str; 6] = [
    "vpc-tc",
    "vpc-xdp",
    "vpc-flowlogs",
    "limit",
    "nftables",
    "direct",
];

/// The database port the bench deploys the default template with: TCP and
/// UDP are both allowed to it (iperf3's UDP test needs its TCP control
/// connection on the same port).
const PORT: u16 = 9000;
/// The first client port of the circulating frames.
const CLIENT_PORT: u16 = 40000;

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Frames injected once and kept circulating.
    pub in_flight: u32,
    /// Samples per circulating case (the median is reported).
    pub samples: usize,
    /// Length of one circulating sample.
    pub sample_seconds: f64,
    /// Length of each socket measurement.
    pub socket_seconds: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            in_flight: 128,
            samples: 5,
            sample_seconds: 1.0,
            socket_seconds: 3,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PathResult {
    pub path: String,
    pub flows: u32,
    /// Passes through the path per second (both directions), millions.
    pub mpps_samples: Vec<f64>,
    pub mpps_median: f64,
    /// Injected frames that did not come back to be drained at the end
    /// (dropped on the way: a full ring, a policy drop).
    pub lost: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub in_flight: u32,
    pub samples: usize,
    pub sample_seconds: f64,
    pub socket_seconds: u64,
    pub kernel: String,
    pub cpus: usize,
    pub circulating: Vec<PathResult>,
    pub sockets: Vec<SocketResult>,
    /// Every ratio of the tables, with the figures that are bound by the
    /// method instead of a ratio.
    pub comparisons: Vec<Comparison>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Where frames start and end: the two endpoints' namespaces and the MACs
/// the client's frames carry.
struct Ends {
    client_ns: String,
    server_ns: String,
    client_ip: Ipv4Addr,
    server_ip: Ipv4Addr,
    client_mac: [u8; 6],
    /// The next hop's MAC (the router's port, or the server on `direct`).
    next_hop_mac: [u8; 6],
}

impl Ends {
    fn pair(&self) -> sockets::Pair<'_> {
        sockets::Pair {
            client_ns: &self.client_ns,
            server_ns: &self.server_ns,
            server: self.server_ip,
            port: PORT,
        }
    }

    fn frame(&self) -> Vec<u8> {
        let mut f = Frame::new(
            self.client_ip.into(),
            self.server_ip.into(),
            L4::Udp {
                sport: CLIENT_PORT,
                dport: PORT,
                no_checksum: true,
            },
        )
        .payload(&[0u8; 18])
        .min_len(64)
        .build();
        f[0..6].copy_from_slice(&self.next_hop_mac);
        f[6..12].copy_from_slice(&self.client_mac);
        f
    }
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

impl Bed {
    fn up(name: &str, hook: Hook) -> Result<Self> {
        let params = HashMap::from([("DatabasePort".to_string(), PORT.to_string())]);
        let m = model::build(crate::DEFAULT_TEMPLATE, &params, name).map_err(anyhow::Error::msg)?;
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
            conntrack_allowance: deploy::default_conntrack_allowance(vpc_common::CT_MAX_ENTRIES),
            nat_gateway_capacity: vpc_common::NAT_GATEWAY_CAPACITY,
            lifecycle: Default::default(),
            flow_logs: Default::default(),
            stacks: vec![],
            no_default_vpc: true,
            cluster: None,
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
        crate::reconcile::change(name, &mut maps, |m| {
            crate::lambda::lifecycle::attach(m, &f.id, f.vpc_config.clone(), usize::MAX)
        })?
        .map_err(|f| anyhow::anyhow!("{}", f.reason))?;
        if hook == Hook::Tc {
            // Frames that an XDP program sends (the reflectors) need NAPI
            // on the receiving veth: GRO, where no XDP program is attached.
            for n in [&bed.exec, &bed.db] {
                topology::run(
                    "ip",
                    &[
                        "netns",
                        "exec",
                        &bed.state.router_netns,
                        "ethtool",
                        "-K",
                        &n.router_if,
                        "gro",
                        "on",
                    ],
                )?;
            }
        }
        Ok(bed)
    }

    fn ends(&self) -> Ends {
        Ends {
            client_ns: self.exec.netns.clone(),
            server_ns: self.db.netns.clone(),
            client_ip: self.exec.ip,
            server_ip: self.db.ip,
            client_mac: self.exec.link.mac,
            next_hop_mac: self.exec.link.router_mac,
        }
    }

    /// What the router counted: said when a path fails.
    fn counters(&self) -> String {
        use crate::datapath::Maps;
        let c = PinnedMaps::open(&self.state.pin_dir).and_then(|mut m| m.counters());
        match c {
            Ok(c) => {
                let drops: Vec<String> = c
                    .dropped
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(r, n)| format!("{r} {n}"))
                    .collect();
                format!(
                    "the router forwarded {}, dropped: {}",
                    c.forwarded,
                    drops.join(", ")
                )
            }
            Err(e) => format!("no counters: {e:#}"),
        }
    }

    /// The router's drops by reason and its NAT port allocations: what
    /// bounds new connections through it.
    fn counts(&self) -> Result<Counts> {
        use crate::datapath::Maps;
        let mut m = PinnedMaps::open(&self.state.pin_dir)?;
        let (c, nat) = (m.counters()?, m.nat_stats()?);
        let mut out: Counts = c.dropped.into_iter().collect();
        out.insert(connections::NAT_PORTS_ALLOCATED.into(), nat.allocated());
        Ok(out)
    }

    fn measure(
        &self,
        h: &mut Harness,
        path: &str,
        o: &Options,
    ) -> Result<(Vec<PathResult>, SocketResult)> {
        h.measure(path, &self.ends(), o, &|| self.counts())
            .with_context(|| self.counters())
    }

    /// Turns the flow-log window on (1) or off (0): every packet is then
    /// counted in its connection's slot, as with a flow log in force.
    fn set_flow_window(&self, w: u64) -> Result<()> {
        let mut maps = PinnedMaps::open(&self.state.pin_dir)?;
        let mut conf: Array<_, u64> =
            Array::try_from(crate::datapath::Maps::map(&mut maps, map_names::CONFIG)?)?;
        conf.set(vpc_common::cfg::FLOW_WINDOW, w, 0)?;
        Ok(())
    }
}

/// Ctrl-C or SIGTERM in the middle of a run: whatever is up goes (the
/// deployments share `name`, one at a time), then the process exits.
fn tear_down_on_signal(name: &str) -> Result<()> {
    use signal_hook::{consts::*, iterator::Signals};
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let name = name.to_string();
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            eprintln!("signal {sig}: tearing the bench down");
            let _ = deploy::down(&name);
            topology::teardown(&DirectBed::namespaces(&name));
            std::process::exit(128 + sig);
        }
    });
    Ok(())
}

/// `direct`: two namespaces on one veth pair, no router.
struct DirectBed {
    namespaces: [String; 2],
    ends: Ends,
}

impl Drop for DirectBed {
    fn drop(&mut self) {
        topology::teardown(&self.namespaces);
    }
}

impl DirectBed {
    fn namespaces(name: &str) -> [String; 2] {
        [format!("{name}-direct-c"), format!("{name}-direct-s")]
    }

    fn up(name: &str) -> Result<Self> {
        let namespaces = Self::namespaces(name);
        let (c_ip, s_ip) = (Ipv4Addr::new(10, 0, 1, 20), Ipv4Addr::new(10, 0, 1, 10));
        for ns in &namespaces {
            if std::path::Path::new("/run/netns").join(ns).exists() {
                bail!("network namespace {ns} already exists (a leftover? `ip netns del {ns}`)");
            }
        }
        // Locally administered MACs of our own choosing, and static
        // neighbours, as everywhere in the project: no ARP.
        let (c_mac, s_mac) = ([2, 0, 0, 0, 0xd1, 1], [2, 0, 0, 0, 0xd1, 2]);
        // Dropped on any failure below: nothing is left behind.
        let bed = Self {
            namespaces: namespaces.clone(),
            ends: Ends {
                client_ns: namespaces[0].clone(),
                server_ns: namespaces[1].clone(),
                client_ip: c_ip,
                server_ip: s_ip,
                client_mac: c_mac,
                next_hop_mac: s_mac,
            },
        };
        let ip = |args: &[&str]| topology::run("ip", args);
        for ns in &namespaces {
            ip(&["netns", "add", ns])?;
        }
        ip(&[
            "-n",
            &namespaces[0],
            "link",
            "add",
            "eth0",
            "address",
            &topology::mac_str(&c_mac),
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &namespaces[1],
            "address",
            &topology::mac_str(&s_mac),
        ])?;
        for (ns, addr, peer, peer_mac) in [
            (&namespaces[0], c_ip, s_ip, s_mac),
            (&namespaces[1], s_ip, c_ip, c_mac),
        ] {
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            let peer_mac = topology::mac_str(&peer_mac);
            ip(&[
                "-n",
                ns,
                "neigh",
                "replace",
                &peer.to_string(),
                "lladdr",
                &peer_mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ])?;
        }
        Ok(bed)
    }
}

/// The reflector and the limit path's redirect, loaded from the router's
/// object.
struct Harness {
    ebpf: Ebpf,
}

/// A path with no counters of its own (`direct`; `limit`, whose redirect
/// counts nothing).
const NO_COUNTERS: Probe = &|| Ok(Counts::new());

/// `TPUT_CFG` and `TPUT_COUNT` slots, shared with the reflector.
use vpc_common::tput as slot;

impl Harness {
    fn load() -> Result<Self> {
        let mut ebpf = EbpfLoader::new().load(EBPF_OBJECT)?;
        for p in ["tput_reflect", "tput_redirect"] {
            let prog: &mut Xdp = ebpf.program_mut(p).context("program")?.try_into()?;
            prog.load()
                .with_context(|| format!("the kernel rejected {p}"))?;
        }
        let mut h = Self { ebpf };
        h.set(slot::CFG_CLIENT_PORT, CLIENT_PORT as u32)?;
        h.set(slot::CFG_SERVER_PORT, PORT as u32)?;
        Ok(h)
    }

    fn set(&mut self, slot: u32, v: u32) -> Result<()> {
        let mut a: Array<_, u32> =
            Array::try_from(self.ebpf.map_mut(map_names::TPUT_CFG).context("map")?)?;
        a.set(slot, v, 0)?;
        Ok(())
    }

    fn count(&self, slot: u32) -> Result<u64> {
        let a: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.ebpf.map(map_names::TPUT_COUNT).context("map")?)?;
        Ok(a.get(&slot, 0)?.iter().sum())
    }

    fn reflector(&mut self) -> Result<&mut Xdp> {
        Ok(self
            .ebpf
            .program_mut("tput_reflect")
            .context("tput_reflect")?
            .try_into()?)
    }

    /// The reflector on both ends' `eth0` (native XDP).
    fn attach(&mut self, ends: &Ends) -> Result<Vec<XdpLinkId>> {
        let mut links = vec![];
        for ns in [&ends.client_ns, &ends.server_ns] {
            let ifindex = ifindex_in(ns, "eth0")?;
            let prog = self.reflector()?;
            links.push(in_netns(ns, || {
                Ok(prog.attach_to_if_index(ifindex, XdpMode::Driver)?)
            })?);
        }
        Ok(links)
    }

    fn detach(&mut self, links: Vec<XdpLinkId>) -> Result<()> {
        for l in links {
            self.reflector()?.detach(l)?;
        }
        Ok(())
    }

    /// Reflections (passes through the path) and drained frames so far.
    fn total(&self) -> Result<(u64, u64)> {
        Ok((
            self.count(slot::COUNT_REFLECTED)?,
            self.count(slot::COUNT_DRAINED)?,
        ))
    }

    /// Injects `in_flight` frames, takes `samples` rates, then drains them.
    fn circulate(&mut self, ends: &Ends, flows: u32, o: &Options) -> Result<(Vec<f64>, u32)> {
        self.set(slot::CFG_FLOWS, flows)?;
        self.set(slot::CFG_STOP, 0)?;
        let (_, drained0) = self.total()?;
        inject(&ends.client_ns, &ends.frame(), o.in_flight)?;
        // The first passes set up the flows (conntrack, NAT ports).
        std::thread::sleep(Duration::from_millis(200));
        let mut rates = vec![];
        for _ in 0..o.samples {
            let (r0, _) = self.total()?;
            let t0 = Instant::now();
            std::thread::sleep(Duration::from_secs_f64(o.sample_seconds));
            let (r1, _) = self.total()?;
            rates.push((r1 - r0) as f64 / t0.elapsed().as_secs_f64() / 1e6);
        }
        // Stop: every frame still circulating is dropped (and counted) at
        // the next reflector; settled once nothing moves for 100 ms.
        self.set(slot::CFG_STOP, 1)?;
        let mut last = self.total()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.total()?;
            if now == last || Instant::now() > deadline {
                break;
            }
            last = now;
        }
        let drained = (last.1 - drained0) as u32;
        Ok((rates, o.in_flight.saturating_sub(drained)))
    }

    /// Circulating frames at 1 and 1,024 flows, then the socket tests with
    /// the reflectors gone (`probe`: the path's counters).
    fn measure(
        &mut self,
        path: &str,
        ends: &Ends,
        o: &Options,
        probe: Probe,
    ) -> Result<(Vec<PathResult>, SocketResult)> {
        let links = self.attach(ends)?;
        let mut results = vec![];
        let run = (|| -> Result<()> {
            for flows in [1u32, 1024] {
                let (s, lost) = self.circulate(ends, flows, o)?;
                if s.iter().all(|x| *x == 0.0) {
                    bail!("{path}: no frame came back ({flows} flow(s))");
                }
                results.push(PathResult {
                    path: path.into(),
                    flows,
                    mpps_median: median(&s),
                    mpps_samples: s,
                    lost,
                });
            }
            Ok(())
        })();
        self.detach(links)?;
        run?;
        let sockets = sockets::measure(path, &ends.pair(), o.socket_seconds, probe)?;
        Ok((results, sockets))
    }
}

/// Sends `n` copies of `frame` from `eth0` in `ns` through an AF_PACKET
/// socket (once: the reflectors keep them going).
fn inject(ns: &str, frame: &[u8], n: u32) -> Result<()> {
    let ifindex = ifindex_in(ns, "eth0")?;
    in_netns(ns, || {
        // SAFETY: plain socket calls on a descriptor this function owns.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("AF_PACKET socket");
        }
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        sll.sll_halen = 6;
        for _ in 0..n {
            let sent = unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if sent != frame.len() as isize {
                return Err(std::io::Error::last_os_error()).context("AF_PACKET send");
            }
        }
        Ok(())
    })
}

/// Runs every path: `direct`, both router hooks, flow logs, the limit and
/// nftables, in that order, and compares them.
pub fn run(name: &str, o: &Options) -> Result<Report> {
    if o.in_flight == 0 || o.samples == 0 || o.sample_seconds <= 0.0 || o.socket_seconds == 0 {
        bail!("--in-flight, --samples, --sample-seconds and --socket-seconds must be positive");
    }
    tear_down_on_signal(name)?;
    let mut h = Harness::load()?;
    let mut circulating = vec![];
    let mut sockets = vec![];
    let mut record = |(r, t): (Vec<PathResult>, SocketResult)| {
        circulating.extend(r);
        sockets.push(t);
    };
    {
        let bed = DirectBed::up(name)?;
        record(h.measure("direct", &bed.ends, o, NO_COUNTERS)?);
    }
    // Each router path on a deployment of its own: no NAT port or
    // connection left by one path weighs on the next.
    {
        let bed = Bed::up(name, Hook::Tc)?;
        record(bed.measure(&mut h, "vpc-tc", o)?);
    }
    {
        let bed = Bed::up(name, Hooks::DEFAULT)?;
        bed.set_flow_window(1)?;
        record(bed.measure(&mut h, "vpc-flowlogs", o)?);
    }
    let bed = Bed::up(name, Hook::Xdp)?;
    let (exec, db) = (&bed.exec, &bed.db);
    record(bed.measure(&mut h, "vpc-xdp", o)?);

    // The limit: swap every router link to the bare redirect, atomically.
    let mut table: BpfHashMap<_, u32, [u32; 4]> =
        BpfHashMap::try_from(h.ebpf.map_mut(map_names::TPUT_REDIRECT).context("map")?)?;
    let macs = |dst: [u8; 6], src: [u8; 6]| -> [u32; 3] {
        let b = [dst, src].concat();
        [0, 4, 8].map(|i| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]))
    };
    let m = macs(db.link.mac, db.link.router_mac);
    table.insert(exec.link.ifindex, [db.link.ifindex, m[0], m[1], m[2]], 0)?;
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
    // The limit does no NAT: the server answers the client's own address.
    record(h.measure("limit", &bed.ends(), o, NO_COUNTERS)?);

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
    let router_ns = bed.state.router_netns.clone();
    record(h.measure("nftables", &bed.ends(), o, &|| {
        connections::nf_conntrack_counts(&router_ns)
    })?);
    drop(bed);

    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let mut r = Report {
        in_flight: o.in_flight,
        samples: o.samples,
        sample_seconds: o.sample_seconds,
        socket_seconds: o.socket_seconds,
        kernel,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        circulating,
        sockets,
        comparisons: vec![],
    };
    r.comparisons = comparisons(&r);
    Ok(r)
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
    for n in [exec, db] {
        run(&[
            "-n",
            r,
            "addr",
            "add",
            &format!("{}/32", n.gateway),
            "dev",
            &n.router_if,
        ])?;
        run(&[
            "-n",
            r,
            "route",
            "add",
            &format!("{}/32", n.ip),
            "dev",
            &n.router_if,
        ])?;
        let mac = topology::mac_str(&n.link.mac);
        run(&[
            "-n",
            r,
            "neigh",
            "replace",
            &n.ip.to_string(),
            "lladdr",
            &mac,
            "dev",
            &n.router_if,
            "nud",
            "permanent",
        ])?;
    }
    run(&["netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
    let ruleset = format!(
        "table inet vpc {{
  chain forward {{
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    ip saddr 198.19.0.0/16 ip daddr {db} meta l4proto {{ tcp, udp }} th dport {PORT} accept
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
    let applied = run(&[
        "netns",
        "exec",
        r,
        "nft",
        "-f",
        path.to_str().expect("utf-8"),
    ]);
    let _ = std::fs::remove_file(&path);
    applied?;
    Ok(())
}

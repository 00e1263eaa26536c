//! `vpc cluster simulate`: N agents without datapaths against one etcd, in
//! one process. Each is a member with a lease and a watch on the desired
//! state, counting what it receives; a writer creates the functions in
//! batches through [`Cluster::put_desired`]. The report: what etcd holds,
//! the watch events per agent and in total, the time until every agent has
//! seen the last revision, and each host's map entries from the placement.
use std::{
    fmt::Write as _,
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::{json, Value};

use super::{Cluster, Settings, Usage};

#[derive(Clone, Debug)]
pub struct Options {
    pub etcd: Vec<String>,
    pub hosts: usize,
    pub functions: usize,
    /// Functions per write (one transaction: `--max-txn-ops` above it).
    pub batch: usize,
    /// The VPC's instances and interfaces: a stand-in each on every host.
    pub instances: usize,
    /// Subnets of every function (an execution environment in each).
    pub subnets: usize,
    /// Distinct security-group sets: an ENI per (subnet, group set).
    pub group_sets: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The run's own cluster name (its keys are deleted after).
    pub cluster: String,
    pub hosts: usize,
    pub functions: usize,
    pub batch: usize,
    pub writes: usize,
    /// Seconds the writer took for every batch.
    pub write_seconds: f64,
    /// Seconds from the last write's commit until every agent saw it.
    pub converge_seconds: f64,
    /// Seconds from the first write until every agent saw the last.
    pub total_seconds: f64,
    pub etcd: Usage,
    /// Members still live at the end (each agent renews its lease on its
    /// own thread: a starved one loses it).
    pub members_at_end: usize,
    pub per_agent: Rates,
    pub total: Rates,
    pub maps: MapSizes,
}

/// Watch events (and their key and value bytes) in half-second samples.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Rates {
    pub events: u64,
    pub bytes: u64,
    pub events_per_s_peak: f64,
    pub events_per_s_mean: f64,
    pub bytes_per_s_peak: f64,
}

/// PORTS / ENDPOINTS entries of a host: its own execution environments,
/// a stand-in per remote instance or interface, the ENIs.
#[derive(Clone, Debug, Serialize)]
pub struct MapSizes {
    pub own_environments_max: usize,
    pub remote_stand_ins: usize,
    pub enis: usize,
    pub per_host_max: usize,
    pub per_host_min: usize,
    /// One host holding every function's environments (no placement).
    pub one_host: usize,
    pub max_ports: u32,
    pub max_endpoints: u32,
}

const SAMPLE: Duration = Duration::from_millis(500);

pub fn run(o: &Options) -> Result<Report> {
    if o.hosts == 0 || o.batch == 0 {
        bail!("simulate: --hosts and --batch must be at least 1");
    }
    let cluster = format!(
        "sim-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
    );
    let settings = |host: String, i: usize| Settings {
        endpoints: o.etcd.clone(),
        cluster: cluster.clone(),
        host,
        underlay: Ipv4Addr::from(0x0a00_0000 + i as u32 + 1),
        api_addr: None,
        lease_ttl_s: 30,
    };
    let host = |i: usize| format!("host-{i:04}");
    let mut agents = Vec::with_capacity(o.hosts);
    for i in 0..o.hosts {
        let mut a = Cluster::connect(&settings(host(i), i))?;
        a.join()?;
        agents.push(a);
    }
    let writer = Cluster::connect(&settings("writer".into(), o.hosts))?;
    let result = simulate(o, &agents, &writer, &host);
    let usage = writer.usage();
    let members = writer.members();
    // Everything this run wrote goes: the members with their leases, then
    // the rest of the prefix.
    for mut a in agents {
        let _ = a.leave();
    }
    let _ = writer.delete_cluster();
    let mut r = result?;
    r.etcd = usage?;
    r.cluster = cluster;
    r.members_at_end = members?.len();
    Ok(r)
}

type Hosts<'a> = &'a dyn Fn(usize) -> String;

fn simulate(o: &Options, agents: &[Cluster], writer: &Cluster, host: Hosts) -> Result<Report> {
    let subnets: Vec<String> = (0..o.subnets).map(|s| format!("subnet-{s:04}")).collect();
    let group_set = |g: usize| vec![format!("sg-{:04}", 2 * g), format!("sg-{:04}", 2 * g + 1)];
    let function = |i: usize| {
        json!({"id": format!("fn-{i:07}"), "subnet_ids": subnets,
               "security_group_ids": group_set(i % o.group_sets.max(1)),
               "memory_size": 128, "host": host(i % o.hosts)})
    };
    let mut desired = json!({"model": {
        "stack_name": "simulate",
        "subnets": subnets.iter().map(|s| json!({"id": s})).collect::<Vec<_>>(),
        "groups": (0..2 * o.group_sets).map(|g| json!({"id": format!("sg-{g:04}")})).collect::<Vec<_>>(),
        "instances": (0..o.instances).map(|i| json!({"id": format!("i-{i:05}"), "host": host(i % o.hosts)})).collect::<Vec<_>>(),
        "functions": [],
    }});
    // Agent i's watch, started before its join, sees its own and the later
    // ones: counted before the run, not in it.
    let t = Instant::now();
    while agents
        .iter()
        .enumerate()
        .any(|(i, a)| a.watch_stats().events < (agents.len() - i) as u64)
    {
        if t.elapsed() > Duration::from_secs(30) {
            bail!("simulate: the agents' watches did not see every join");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let (mut rev, mut writes) = (0, 0);
    let base: Vec<u64> = agents.iter().map(|a| a.watch_stats().events).collect();
    let base_bytes: Vec<u64> = agents.iter().map(|a| a.watch_stats().bytes).collect();
    let mut sampler = Sampler::new(agents);
    let t0 = Instant::now();
    let mut done = 0;
    // The first write carries the rest of the model.
    loop {
        let n = o.batch.min(o.functions - done);
        let Value::Array(fs) = &mut desired["model"]["functions"] else {
            unreachable!()
        };
        fs.extend((done..done + n).map(function));
        done += n;
        rev = match writer.put_desired(&desired, rev)? {
            Ok(r) => r,
            Err(other) => bail!("simulate: another writer came first (revision {other})"),
        };
        writes += 1;
        sampler.maybe_sample(agents);
        if done >= o.functions {
            break;
        }
    }
    let written = Instant::now();
    let write_seconds = t0.elapsed().as_secs_f64();
    // Until every agent's watch has seen the last revision.
    let deadline = Duration::from_secs(600);
    while agents.iter().any(|a| a.watch_stats().desired_rev < rev) {
        if written.elapsed() > deadline {
            bail!("simulate: agents still behind the last revision after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
        sampler.maybe_sample(agents);
    }
    let converge_seconds = written.elapsed().as_secs_f64();
    let total_seconds = t0.elapsed().as_secs_f64();
    sampler.sample(agents);
    let events: Vec<u64> = agents
        .iter()
        .zip(&base)
        .map(|(a, b)| a.watch_stats().events - b)
        .collect();
    let bytes: Vec<u64> = agents
        .iter()
        .zip(&base_bytes)
        .map(|(a, b)| a.watch_stats().bytes - b)
        .collect();
    let n = agents.len() as f64;
    let (all_events, all_bytes) = (events.iter().sum::<u64>(), bytes.iter().sum::<u64>());
    let per_agent = Rates {
        events: (all_events as f64 / n) as u64,
        bytes: (all_bytes as f64 / n) as u64,
        events_per_s_peak: sampler
            .agent_peak
            .max(all_events as f64 / n / total_seconds),
        events_per_s_mean: all_events as f64 / n / total_seconds,
        bytes_per_s_peak: sampler.agent_bytes_peak,
    };
    let total = Rates {
        events: all_events,
        bytes: all_bytes,
        events_per_s_peak: sampler.total_peak.max(all_events as f64 / total_seconds),
        events_per_s_mean: all_events as f64 / total_seconds,
        bytes_per_s_peak: sampler.total_bytes_peak,
    };
    Ok(Report {
        cluster: String::new(),
        hosts: o.hosts,
        functions: o.functions,
        batch: o.batch,
        writes,
        write_seconds,
        converge_seconds,
        total_seconds,
        etcd: Usage::default(),
        members_at_end: 0,
        per_agent,
        total,
        maps: map_sizes(o),
    })
}

/// Each host's entries from the placement (function `i` on host `i % n`).
fn map_sizes(o: &Options) -> MapSizes {
    let own =
        |h: usize| (o.functions / o.hosts + usize::from(h < o.functions % o.hosts)) * o.subnets;
    let enis = o.subnets * o.group_sets;
    let fixed = o.instances + enis;
    MapSizes {
        own_environments_max: own(0),
        remote_stand_ins: o.instances,
        enis,
        per_host_max: own(0) + fixed,
        per_host_min: own(o.hosts - 1) + fixed,
        one_host: o.functions * o.subnets + fixed,
        max_ports: vpc_common::limits::MAX_PORTS,
        max_endpoints: vpc_common::limits::MAX_ENDPOINTS,
    }
}

/// Events per second over half-second samples: the largest of any agent
/// and of all together.
struct Sampler {
    last: Instant,
    prev: Vec<(u64, u64)>,
    agent_peak: f64,
    agent_bytes_peak: f64,
    total_peak: f64,
    total_bytes_peak: f64,
}

impl Sampler {
    fn new(agents: &[Cluster]) -> Self {
        Sampler {
            last: Instant::now(),
            prev: Self::now(agents),
            agent_peak: 0.0,
            agent_bytes_peak: 0.0,
            total_peak: 0.0,
            total_bytes_peak: 0.0,
        }
    }

    fn now(agents: &[Cluster]) -> Vec<(u64, u64)> {
        agents
            .iter()
            .map(|a| {
                let s = a.watch_stats();
                (s.events, s.bytes)
            })
            .collect()
    }

    fn maybe_sample(&mut self, agents: &[Cluster]) {
        if self.last.elapsed() >= SAMPLE {
            self.sample(agents);
        }
    }

    fn sample(&mut self, agents: &[Cluster]) {
        let dt = self.last.elapsed().as_secs_f64();
        if dt < 0.05 {
            return;
        }
        let now = Self::now(agents);
        let (mut events, mut bytes) = (0, 0);
        for ((e, b), (pe, pb)) in now.iter().zip(&self.prev) {
            self.agent_peak = self.agent_peak.max((e - pe) as f64 / dt);
            self.agent_bytes_peak = self.agent_bytes_peak.max((b - pb) as f64 / dt);
            events += e - pe;
            bytes += b - pb;
        }
        self.total_peak = self.total_peak.max(events as f64 / dt);
        self.total_bytes_peak = self.total_bytes_peak.max(bytes as f64 / dt);
        self.prev = now;
        self.last = Instant::now();
    }
}

/// The report for people.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let mb = |b: u64| b as f64 / 1e6;
    let _ = writeln!(
        s,
        "{} hosts, {} functions in {} writes of {}",
        r.hosts, r.functions, r.writes, r.batch
    );
    if r.members_at_end != r.hosts {
        let _ = writeln!(
            s,
            "members live at the end: {} of {}",
            r.members_at_end, r.hosts
        );
    }
    let _ = writeln!(
        s,
        "etcd: {} keys, {:.1} MB of keys and values (database {:.1} MB)",
        r.etcd.keys,
        mb(r.etcd.bytes),
        mb(r.etcd.etcd_db_bytes)
    );
    let _ = writeln!(
        s,
        "writes: {:.1} s ({:.0} functions/s); every agent at the last revision {:.2} s after it, {:.1} s after the first",
        r.write_seconds,
        r.functions as f64 / r.write_seconds.max(1e-9),
        r.converge_seconds,
        r.total_seconds
    );
    for (what, x) in [("per agent", &r.per_agent), ("in total", &r.total)] {
        let _ = writeln!(
            s,
            "watch events {what}: {} ({:.1} MB), {:.0}/s peak, {:.0}/s mean, {:.1} MB/s peak",
            x.events,
            mb(x.bytes),
            x.events_per_s_peak,
            x.events_per_s_mean,
            mb(x.bytes_per_s_peak as u64)
        );
    }
    let m = &r.maps;
    let _ = writeln!(
        s,
        "PORTS/ENDPOINTS entries per host: {}-{} ({} own environments at most + {} remote stand-ins + {} ENIs; limits {} / {}); one host with every function: {}",
        m.per_host_min, m.per_host_max, m.own_environments_max, m.remote_stand_ins, m.enis,
        m.max_ports, m.max_endpoints, m.one_host
    );
    s
}

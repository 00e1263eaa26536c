//! A deployment: `up`, `down`, the persisted state, status, and the agent
//! loop that moves functions from Pending to Active and collects expired
//! connections.
use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::{
    compile,
    datapath::{self, Counters, Datapath, Hook, Maps, PinnedMaps, Timeouts},
    model::Model,
    topology::{self, Node},
};

pub const STATE_ROOT: &str = "/run/vpc";

/// Everything `vpc up` built, so other commands (and `down`) can find it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub name: String,
    pub template: String,
    pub model: Model,
    pub namespaces: Vec<String>,
    pub router_netns: String,
    pub nodes: Vec<Node>,
    pub attach_mode: String,
    /// The router's hook on each port (router-side interface name).
    #[serde(default)]
    pub hooks: BTreeMap<String, Hook>,
    pub pin_dir: PathBuf,
    pub timeouts: Timeouts,
    /// How long a new Hyperplane ENI takes to become ready.
    pub eni_delay: Duration,
    pub created_unix_ms: u64,
    /// The quotas the model was validated with (rule edits keep to them).
    #[serde(default)]
    pub quotas: crate::model::Quotas,
    /// Where the agent serves metrics (`None`: not at all).
    #[serde(default)]
    pub metrics_addr: Option<String>,
}

/// Lambda function lifecycle, as `GetFunction` reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FunctionStatus {
    pub state: String,
    pub state_reason_code: String,
    pub last_update_status: String,
}

/// Written by the agent only (and once by `up`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Lifecycle {
    pub functions: BTreeMap<String, FunctionStatus>,
    pub agent_pid: Option<u32>,
    pub gc_removed: u64,
    /// The agent's metrics endpoint, once it listens.
    #[serde(default)]
    pub metrics_url: Option<String>,
}

pub fn state_dir(name: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(name)
}

pub fn pin_dir(name: &str) -> PathBuf {
    Path::new(datapath::BPFFS).join("vpc").join(name)
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    // Write then rename: readers never see a torn file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(v)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&data).with_context(|| format!("parsing {}", path.display()))
}

impl State {
    pub fn load(name: &str) -> Result<Self> {
        let p = state_dir(name).join("state.json");
        if !p.exists() {
            bail!("no deployment named {name:?} is up (no {})", p.display());
        }
        read_json(&p)
    }
    pub fn save(&self) -> Result<()> {
        write_json(&state_dir(&self.name).join("state.json"), self)
    }
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

impl Lifecycle {
    pub fn load(name: &str) -> Result<Self> {
        read_json(&state_dir(name).join("lifecycle.json"))
    }
    pub fn save(&self, name: &str) -> Result<()> {
        write_json(&state_dir(name).join("lifecycle.json"), self)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A name that is safe in namespace and path names, and short enough.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 24
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("deployment name {name:?}: use 1-24 letters, digits, '-' or '_'");
    }
    Ok(())
}

/// Which hook the router uses on each port: a default, and overrides by
/// node id (a host's logical id, or a function's for its execution
/// environments).
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    pub default: Option<Hook>,
    pub per_port: HashMap<String, Hook>,
}

impl Hooks {
    /// XDP unless asked otherwise: the small-packet path is XDP's, and TC is
    /// chosen where bulk TCP matters (see the README's Performance section).
    pub const DEFAULT: Hook = Hook::Xdp;

    pub fn for_port(&self, id: &str) -> Hook {
        self.per_port
            .get(id)
            .copied()
            .unwrap_or(self.default.unwrap_or(Self::DEFAULT))
    }
}

pub struct UpOptions {
    pub hooks: Hooks,
    /// Metrics endpoint address (`None`: none).
    pub metrics_addr: Option<String>,
    pub name: String,
    pub template_label: String,
    pub timeouts: Timeouts,
    pub eni_delay: Duration,
    pub quotas: crate::model::Quotas,
}

/// Builds the topology, loads and attaches the datapath, installs the
/// entries. On any failure everything built so far is removed again.
pub fn up(model: Model, opts: &UpOptions) -> Result<State> {
    check_name(&opts.name)?;
    let sdir = state_dir(&opts.name);
    if sdir.join("state.json").exists() {
        bail!(
            "deployment {:?} is already up: run `vpc --name {} down` first",
            opts.name,
            opts.name
        );
    }
    let namespaces = topology::planned_namespaces(&opts.name, &model);
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = namespaces.iter().find(|ns| !seen.insert(ns.as_str())) {
        bail!("two parts of the deployment map to namespace {dup} (a resource named like the router?): rename the resource");
    }
    for ns in &namespaces {
        if Path::new("/run/netns").join(ns).exists() {
            bail!("network namespace {ns} already exists (a leftover? `ip netns del {ns}`)");
        }
    }
    // Checked before anything is built.
    if let Some(id) = opts.hooks.per_port.keys().find(|id| {
        !model.hosts.iter().any(|h| &h.id == *id) && !model.functions.iter().any(|f| &f.id == *id)
    }) {
        bail!("--hook {id}=...: the template has no host or function {id:?}");
    }
    datapath::ensure_bpffs()?;
    std::fs::create_dir_all(&sdir)?;
    // Written before anything is built: if this process dies half way,
    // `vpc down` still knows which namespaces to remove.
    write_json(&sdir.join("planned.json"), &namespaces)?;
    let pins = pin_dir(&opts.name);
    let result = (|| -> Result<State> {
        // Load first: a verifier rejection leaves nothing behind.
        let mut dp = Datapath::load(&opts.timeouts)?;
        let nodes = topology::build(&opts.name, &model)?;
        let links: HashMap<String, compile::LinkInfo> =
            nodes.iter().map(|n| (n.id.clone(), n.link)).collect();
        let mut entries = compile::compile(&model, &links, 0).map_err(anyhow::Error::msg)?;
        {
            let _bpffs = datapath::bpffs_lock()?;
            std::fs::create_dir_all(pins.join("links"))?;
        }
        dp.pin_maps(&pins)?;
        // Functions without a VPC are Active at once; the others are Pending
        // until their ENI is ready: until then their execution environment
        // has no ENI to send through (the agent sets it).
        for (_, port) in entries
            .ports
            .iter_mut()
            .filter(|(_, p)| p.kind == vpc_common::kind::EXEC_ENV)
        {
            port.eni = 0;
        }
        dp.install(&entries)?;
        let router = topology::router_netns(&opts.name);
        let mut modes = vec![];
        let mut hooks = BTreeMap::new();
        for n in &nodes {
            let pin = pins.join("links").join(&n.router_if);
            let hook = opts.hooks.for_port(&n.id);
            let mode = match hook {
                Hook::Xdp => {
                    let ifindex = n.link.ifindex;
                    topology::in_netns(&router, || dp.attach_router(ifindex, &pin))?
                }
                Hook::Tc => {
                    topology::set_tx_offload(&opts.name, n, true)?;
                    topology::in_netns(&router, || dp.attach_router_tc(&n.router_if, &pin))?
                }
            };
            hooks.insert(n.router_if.clone(), hook);
            modes.push(mode);
        }
        modes.sort();
        modes.dedup();
        let state = State {
            name: opts.name.clone(),
            template: opts.template_label.clone(),
            model: model.clone(),
            namespaces: namespaces.clone(),
            router_netns: router,
            nodes,
            attach_mode: modes.join("+"),
            hooks,
            pin_dir: pins.clone(),
            timeouts: opts.timeouts,
            eni_delay: opts.eni_delay,
            created_unix_ms: now_ms(),
            quotas: opts.quotas,
            metrics_addr: opts.metrics_addr.clone(),
        };
        let mut lc = Lifecycle::default();
        for f in &model.functions {
            let st = if f.vpc_config.is_some() {
                FunctionStatus {
                    state: "Pending".into(),
                    state_reason_code: "Creating".into(),
                    last_update_status: "InProgress".into(),
                }
            } else {
                FunctionStatus {
                    state: "Active".into(),
                    state_reason_code: "Idle".into(),
                    last_update_status: "Successful".into(),
                }
            };
            lc.functions.insert(f.id.clone(), st);
        }
        lc.save(&opts.name)?;
        state.save()?;
        Ok(state)
    })();
    if result.is_err() {
        topology::teardown(&namespaces);
        let _ = std::fs::remove_dir_all(&pins);
        let _ = std::fs::remove_dir_all(&sdir);
    }
    result
}

/// Tears a deployment down: agent, namespaces (and so veths and links), pins, state.
pub fn down(name: &str) -> Result<()> {
    check_name(name)?;
    let state = State::load(name);
    if let Ok(lc) = Lifecycle::load(name) {
        if let Some(pid) = lc.agent_pid {
            // Only our own agent: a recorded pid may have been reused.
            let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c).contains("agent")
                        && String::from_utf8_lossy(&c).contains(name)
                })
                .unwrap_or(false);
            if pid != std::process::id() && ours {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
    }
    let mut errors = vec![];
    match &state {
        Ok(s) => errors.extend(topology::teardown(&s.namespaces)),
        Err(_) if !state_dir(name).exists() && !pin_dir(name).exists() => {
            bail!("no deployment named {name:?} is up")
        }
        Err(_) => {
            if let Ok(planned) = read_json::<Vec<String>>(&state_dir(name).join("planned.json")) {
                errors.extend(topology::teardown(&planned));
            }
        }
    }
    let pins = pin_dir(name);
    if pins.exists() {
        if let Err(e) = std::fs::remove_dir_all(&pins) {
            errors.push(format!("removing {}: {e}", pins.display()));
        }
    }
    let _ = std::fs::remove_dir_all(state_dir(name));
    // The shared `vpc` pin directory goes with the last deployment; the lock
    // keeps a concurrent `up` from losing it between parent and child.
    if let (Some(parent), Ok(_bpffs)) = (pins.parent(), datapath::bpffs_lock()) {
        let _ = std::fs::remove_dir(parent);
    }
    if !errors.is_empty() {
        bail!("teardown incomplete: {}", errors.join("; "));
    }
    Ok(())
}

/// The parts of a model that `apply` may not change: everything but the
/// security-group rules and memberships and the network ACLs.
fn topology_of(m: &Model) -> serde_json::Value {
    let mut v = serde_json::to_value(m).expect("serializable");
    v["groups"] = serde_json::Value::Null;
    v["acls"] = serde_json::Value::Null;
    v["prefix_lists"] = serde_json::Value::Null;
    v["skipped"] = serde_json::Value::Null;
    for h in v["hosts"].as_array_mut().into_iter().flatten() {
        h["groups"] = serde_json::Value::Null;
    }
    for s in v["subnets"].as_array_mut().into_iter().flatten() {
        s["acl"] = serde_json::Value::Null;
    }
    v
}

/// Applies a changed policy (group rules and memberships, ACLs and their
/// associations) to a running deployment atomically: the new generation is
/// written aside, switched on with one write, and the old one removed.
/// Tracked connections continue (security groups are stateful); ACLs apply
/// to the next packet, established or not. Returns the new generation.
pub fn apply(name: &str, model: Model) -> Result<u32> {
    apply_edit(name, |m, _| {
        *m = model;
        Ok(())
    })
}

/// Serializes everything that rewrites a deployment's maps or state (policy
/// changes, the agent's activations): held from reading the state to saving it.
pub fn lock(name: &str) -> Result<nix::fcntl::Flock<std::fs::File>> {
    let f = std::fs::File::create(state_dir(name).join(".lock"))
        .with_context(|| format!("deployment {name:?} is not up"))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("locking deployment {name}: {e}"))
}

/// `apply` with the change made by `edit` on the current model, under the
/// deployment's lock (so concurrent edits neither lose one another nor clear
/// the generation in force).
pub fn apply_edit(name: &str, edit: impl FnOnce(&mut Model, &State) -> Result<()>) -> Result<u32> {
    let _lock = lock(name)?;
    let mut s = State::load(name)?;
    let mut model = s.model.clone();
    edit(&mut model, &s)?;
    if topology_of(&model) != topology_of(&s.model) {
        bail!(
            "this change touches the topology (VPCs, subnets, addresses, hosts, functions or their VpcConfig); \
             `vpc apply` changes security groups and network ACLs only: run `vpc down` and `vpc up`"
        );
    }
    let links: HashMap<String, compile::LinkInfo> =
        s.nodes.iter().map(|n| (n.id.clone(), n.link)).collect();
    let mut maps = PinnedMaps::open(&s.pin_dir)?;
    let next = 1 - maps.generation()?;
    let entries = compile::compile(&model, &links, next).map_err(anyhow::Error::msg)?;
    maps.switch_policy(&entries)?;
    // The new policy is in force: the state says so before anything else can fail.
    s.model = model;
    s.save()?;
    maps.clear_old_generation(next)?;
    Ok(next)
}

/// What `vpc status` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub name: String,
    pub template: String,
    pub attach_mode: String,
    pub functions: Vec<FunctionView>,
    pub enis: Vec<EniView>,
    pub hosts: Vec<HostView>,
    pub counters: Counters,
    pub connections: usize,
    pub skipped: Vec<(String, String)>,
    pub agent_running: bool,
    pub metrics_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionView {
    pub id: String,
    pub function_name: String,
    pub state: String,
    pub state_reason_code: String,
    pub last_update_status: String,
    pub vpc_id: Option<String>,
    pub execution_environment: String,
    pub address: String,
    /// The execution environment's IPv6 address, if it has one.
    pub ipv6_address: Option<String>,
    /// `VpcConfig.Ipv6AllowedForDualStack`.
    pub ipv6_allowed_for_dual_stack: bool,
    pub eni: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EniView {
    pub id: String,
    pub interface_type: String,
    pub subnet: String,
    pub address: String,
    pub ipv6_address: Option<String>,
    pub security_groups: Vec<String>,
    pub functions: Vec<String>,
    pub connections: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostView {
    pub id: String,
    pub kind: String,
    pub netns: String,
    pub subnet: String,
    pub address: String,
    pub ipv6_address: Option<String>,
    pub security_groups: Vec<String>,
}

pub fn status(name: &str) -> Result<Status> {
    let s = State::load(name)?;
    let lc = Lifecycle::load(name).unwrap_or_default();
    let mut maps = PinnedMaps::open(&s.pin_dir)?;
    let counters = maps.counters()?;
    let conns = maps.connections()?;
    let eni_conns = |e: &crate::model::HyperplaneEniSpec| {
        let addr = vpc_common::v4_mapped(e.ip.octets());
        let addr6 = e.ip6.map(|a| a.octets());
        conns
            .iter()
            .filter(|(_, c)| {
                c.flags & vpc_common::CT_F_SNAT != 0
                    && (c.nat_addr == addr || Some(c.nat_addr) == addr6)
            })
            .count()
    };
    let m = &s.model;
    let functions = m
        .functions
        .iter()
        .map(|f| {
            let st = lc.functions.get(&f.id).cloned().unwrap_or(FunctionStatus {
                state: "Pending".into(),
                state_reason_code: "Creating".into(),
                last_update_status: "InProgress".into(),
            });
            FunctionView {
                id: f.id.clone(),
                function_name: f.name.clone(),
                state: st.state,
                state_reason_code: st.state_reason_code,
                last_update_status: st.last_update_status,
                vpc_id: f.vpc_config.as_ref().map(|v| v.vpc.clone()),
                execution_environment: topology::node_netns(&s.name, &format!("fn-{}", f.id)),
                address: f.exec_ip.to_string(),
                ipv6_address: f.exec_ip6.map(|a| a.to_string()),
                ipv6_allowed_for_dual_stack: f.ipv6_allowed(),
                eni: f
                    .eni
                    .and_then(|i| m.enis.iter().find(|e| e.index == i))
                    .map(|e| e.id.clone()),
            }
        })
        .collect();
    let enis = m
        .enis
        .iter()
        .map(|e| EniView {
            id: e.id.clone(),
            interface_type: "lambda".into(),
            subnet: e.subnet.clone(),
            address: e.ip.to_string(),
            ipv6_address: e.ip6.map(|a| a.to_string()),
            security_groups: e.groups.clone(),
            functions: e.functions.clone(),
            connections: eni_conns(e),
        })
        .collect();
    let hosts = m
        .hosts
        .iter()
        .map(|h| HostView {
            id: h.id.clone(),
            kind: format!("{:?}", h.kind),
            netns: topology::node_netns(&s.name, &h.id),
            subnet: h.subnet.clone(),
            address: h.ip.to_string(),
            ipv6_address: h.ip6.map(|a| a.to_string()),
            security_groups: h.groups.clone(),
        })
        .collect();
    let agent_running = lc
        .agent_pid
        .map(|p| Path::new(&format!("/proc/{p}")).exists())
        .unwrap_or(false);
    Ok(Status {
        name: s.name.clone(),
        template: s.template.clone(),
        attach_mode: s.attach_mode.clone(),
        functions,
        enis,
        hosts,
        counters,
        connections: conns.len(),
        skipped: m.skipped.clone(),
        agent_running,
        metrics_url: agent_running.then(|| lc.metrics_url.clone()).flatten(),
    })
}

/// The agent: activates functions once their ENI is ready, collects expired
/// connections. Runs until `stop` is set; `tick` is called about once a second.
pub fn agent(name: &str, stop: &AtomicBool, tick: impl FnMut() -> Result<()>) -> Result<()> {
    let s = State::load(name)?;
    let Some(addr) = s.metrics_addr.clone() else {
        return agent_loop(name, stop, tick);
    };
    std::thread::scope(|sc| {
        let (tx, rx) = std::sync::mpsc::channel();
        let server = sc.spawn(move || {
            crate::metrics::serve(name, &addr, stop, |a| {
                let _ = tx.send(a);
                Ok(())
            })
        });
        match rx.recv() {
            Ok(a) => {
                let _lock = lock(name)?;
                let mut lc = Lifecycle::load(name).unwrap_or_default();
                lc.metrics_url = Some(format!("http://{a}/metrics"));
                lc.save(name)?;
            }
            // The server could not bind: its error says why.
            Err(_) => return server.join().expect("metrics thread"),
        }
        let r = agent_loop(name, stop, tick);
        stop.store(true, Ordering::Relaxed);
        let served = server.join().expect("metrics thread");
        r.and(served)
    })
}

fn agent_loop(name: &str, stop: &AtomicBool, mut tick: impl FnMut() -> Result<()>) -> Result<()> {
    let s = State::load(name)?;
    let mut lc = Lifecycle::load(name).unwrap_or_default();
    lc.agent_pid = Some(std::process::id());
    lc.save(name)?;
    let mut maps = PinnedMaps::open(&s.pin_dir)?;
    let started = std::time::Instant::now();
    let mut last_gc = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if started.elapsed() >= s.eni_delay {
            let mut changed = false;
            for f in &s.model.functions {
                let st = lc
                    .functions
                    .entry(f.id.clone())
                    .or_insert_with(|| FunctionStatus {
                        state: "Pending".into(),
                        state_reason_code: "Creating".into(),
                        last_update_status: "InProgress".into(),
                    });
                if st.state == "Pending" {
                    let eni = compile::function_eni(&s.model, f);
                    if let (Some(eni), Some(node)) = (eni, s.node(&f.id)) {
                        let _lock = lock(name)?;
                        maps.set_port_eni(node.link.ifindex, eni)?;
                    }
                    *st = FunctionStatus {
                        state: "Active".into(),
                        state_reason_code: "Idle".into(),
                        last_update_status: "Successful".into(),
                    };
                    changed = true;
                }
            }
            if changed {
                lc.save(name)?;
            }
        }
        if last_gc.elapsed() >= Duration::from_secs(1) {
            last_gc = std::time::Instant::now();
            let n = maps.ct_gc(&s.timeouts)?;
            if n > 0 {
                lc.gc_removed += n as u64;
                lc.save(name)?;
            }
            tick()?;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

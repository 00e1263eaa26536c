//! A deployment: `up`, `down`, the persisted state, status, and the
//! scaling of Hyperplane ENIs that the agent runs. The agent itself (its
//! runtime and its loop) is [`crate::agent::run`], re-exported here.
use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

pub use crate::{
    agent::run::{agent, agent_running},
    lambda::lifecycle::FunctionStatus,
    paths::{pin_dir, state_dir, STATE_ROOT},
    reconcile::{apply, apply_edit},
    state::{last_apply_seconds, lock, transact, EniScaling, Hooks, Lifecycle, State},
};
use crate::{
    datapath::{self, Counters, Datapath, Maps, PinnedMaps, Timeouts},
    model::Model,
    state::{read_json, write_json},
    store::Store,
    topology,
};

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

/// The conntrack allowance of each interface for a table of `conntrack_max`
/// entries: a quarter of its connections (32,768 of 131,072 by default).
/// AWS sizes it per instance type and publishes no figure (only the ENA
/// counters); a quarter keeps the table for everyone else until at least
/// four interfaces are at their allowance together.
pub fn default_conntrack_allowance(conntrack_max: u32) -> u32 {
    conntrack_max / 8
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
    pub eni_scaling: EniScaling,
    /// Conntrack entries (two per connection).
    pub conntrack_max: u32,
    /// Connections each interface may have tracked at once (0: no
    /// allowance).
    pub conntrack_allowance: u32,
    /// Source ports per NAT gateway and protocol.
    pub nat_gateway_capacity: u32,
    /// The lifecycle's clock and delays.
    pub lifecycle: LifecycleOptions,
    pub flow_logs: crate::flowlogs::FlowLogOptions,
    /// The deployment's stacks (`cloudformation`): the first one's record.
    pub stacks: Vec<crate::cloudformation::Stack>,
    /// No default VPC for the EC2 API (docs/ec2.md).
    pub no_default_vpc: bool,
    /// A host of a cluster (docs/multi-host.md): `model` and `stacks` are
    /// the cluster's.
    pub cluster: Option<crate::reconcile::hosts::ClusterHost>,
}

#[derive(Debug, Clone, Default)]
pub struct LifecycleOptions {
    /// A test clock (moves only when told: `POST /_vpc/clock`).
    pub test_clock: bool,
    pub settings: crate::lambda::lifecycle::Settings,
    /// The Lambda API on loopback TCP too (`None`: the Unix socket only).
    pub api_addr: Option<String>,
}

/// Builds the topology, loads and attaches the datapath, installs the
/// entries. On any failure everything built so far is removed again.
pub fn up(mut model: Model, opts: &UpOptions) -> Result<State> {
    check_name(&opts.name)?;
    // A cluster's model is as the cluster has it (its first host detached
    // them before writing it).
    if opts.cluster.is_none() {
        detach_vpc_functions(&mut model);
    }
    let sdir = state_dir(&opts.name);
    if sdir.join(crate::store::FILE).exists() {
        bail!(
            "deployment {:?} is already up: run `vpc --name {} down` first",
            opts.name,
            opts.name
        );
    }
    let namespaces = topology::planned_namespaces(&opts.name, &model);
    topology::check_namespaces(&namespaces)?;
    if let Some(ns) = namespaces
        .iter()
        .find(|ns| Path::new("/run/netns").join(ns).exists())
    {
        bail!("network namespace {ns} already exists (a leftover? `ip netns del {ns}`)");
    }
    // Checked before anything is built.
    if let Some(id) = opts.hooks.per_port.keys().find(|id| {
        !model.hosts.iter().any(|h| &h.id == *id) && !model.functions.iter().any(|f| &f.id == *id)
    }) {
        bail!("--hook {id}=...: the template has no host or function {id:?}");
    }
    // A model the router's tables cannot hold is refused before anything
    // is built (`compile::check_capacity`).
    let ids = topology::node_specs(&opts.name, &model)
        .into_iter()
        .map(|sp| sp.id);
    crate::compile::dry_run(&model, ids).map_err(anyhow::Error::msg)?;
    datapath::ensure_bpffs()?;
    std::fs::create_dir_all(&sdir)?;
    // Written before anything is built: if this process dies half way,
    // `vpc down` still knows which namespaces to remove.
    write_json(&sdir.join("planned.json"), &namespaces)?;
    let pins = pin_dir(&opts.name);
    let result = (|| -> Result<State> {
        // Load first: a verifier rejection leaves nothing behind.
        let mut dp = Datapath::load_sized(
            &opts.timeouts,
            opts.conntrack_max,
            opts.flow_logs.ringbuf_bytes,
        )?;
        dp.set_eni_capacity(opts.eni_scaling.capacity)?;
        dp.set_nat_gateway_capacity(opts.nat_gateway_capacity)?;
        dp.set_conntrack_allowance(opts.conntrack_allowance)?;
        {
            let _bpffs = datapath::bpffs_lock()?;
            std::fs::create_dir_all(pins.join("links"))?;
        }
        dp.pin_maps(&pins)?;
        dp.pin_programs(&pins)?;
        topology::build_router(&opts.name)?;
        if let Some(c) = &opts.cluster {
            crate::reconcile::hosts::build_overlay(&opts.name, &pins, c, &mut dp)?;
        }
        // Nothing built yet but the router: the reconciler builds the rest
        // from the model, as for any later change.
        let state = State {
            name: opts.name.clone(),
            template: opts.template_label.clone(),
            model: model.clone(),
            namespaces: vec![topology::router_netns(&opts.name)],
            router_netns: topology::router_netns(&opts.name),
            nodes: vec![],
            attach_mode: String::new(),
            hooks: BTreeMap::new(),
            port_modes: BTreeMap::new(),
            hook_overrides: opts.hooks.per_port.clone().into_iter().collect(),
            default_hook: opts.hooks.default.unwrap_or(Hooks::DEFAULT),
            pin_dir: pins.clone(),
            timeouts: opts.timeouts,
            eni_delay: opts.eni_delay,
            created_unix_ms: now_ms(),
            quotas: opts.quotas,
            eni_scaling: opts.eni_scaling,
            metrics_addr: opts.metrics_addr.clone(),
            conntrack_max: opts.conntrack_max,
            flow_logs: opts.flow_logs.clone(),
            pending: true,
            template_functions: model.functions.iter().map(|f| f.id.clone()).collect(),
            no_default_vpc: opts.no_default_vpc,
            cluster: opts.cluster.clone(),
        };
        let clock = crate::lambda::lifecycle::Clock::new(opts.lifecycle.test_clock);
        let now = clock.now_ms();
        let mut lc = Lifecycle {
            clock,
            settings: opts.lifecycle.settings,
            api_addr: opts.lifecycle.api_addr.clone(),
            ..Default::default()
        };
        for f in &model.functions {
            let mut st = if f.vpc_config.is_some() {
                FunctionStatus::pending("Creating", now + opts.eni_delay.as_millis() as u64)
            } else {
                FunctionStatus::active()
            };
            st.life.last_modified_ms = now;
            st.life.last_invoked_ms = now;
            lc.functions.insert(f.id.clone(), st);
        }
        // Function packages in the store before the model that names them.
        crate::lambda::code::store_model(&opts.name, &model)?;
        // State and lifecycle in one transaction.
        Store::open_dir(&sdir)?.transact(|t| {
            t.put("lifecycle", &lc)?;
            t.put(crate::cloudformation::STACKS, &opts.stacks)?;
            t.put("state", &state)
        })?;
        let mut maps = PinnedMaps::open(&pins)?;
        crate::reconcile::converge(&opts.name, &mut maps)?;
        State::load(&opts.name)
    })();
    if result.is_err() {
        topology::teardown(&namespaces);
        let _ = std::fs::remove_dir_all(&pins);
        let _ = std::fs::remove_dir_all(&sdir);
    }
    result
}

/// Functions with a VpcConfig start Pending, attached to no ENI: the
/// agent attaches them when their ENIs are ready.
pub fn detach_vpc_functions(model: &mut Model) {
    for id in model
        .functions
        .iter()
        .filter(|f| f.vpc_config.is_some())
        .map(|f| f.id.clone())
        .collect::<Vec<_>>()
    {
        crate::lambda::lifecycle::detach(model, &id);
    }
}

/// SIGTERM, and the agent's exit awaited (SIGKILL after 10 s): an agent
/// still writing its store while `down` removes the directory would leave
/// files of a deployment that is gone.
fn stop_agent(pid: u32) {
    use nix::sys::signal::{kill, Signal};
    let p = nix::unistd::Pid::from_raw(pid as i32);
    // Gone, or a zombie waiting for a parent that is not us.
    let gone = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |st| {
            st.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
    };
    let _ = kill(p, Signal::SIGTERM);
    for (wait, then) in [(10, Some(Signal::SIGKILL)), (5, None)] {
        let deadline = std::time::Instant::now() + Duration::from_secs(wait);
        while !gone() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        match then {
            Some(sig) if !gone() => {
                let _ = kill(p, sig);
            }
            _ => return,
        }
    }
}

/// Removes a deployment's state directory. Renamed first, so no reader
/// finds the store any more (`store_of` checks for it); a reader that
/// already had it open may still write SQLite's `-wal`/`-shm` beside it,
/// so the removal is retried until the directory is gone.
fn remove_state_dir(name: &str) {
    let dir = state_dir(name);
    let gone = Path::new(STATE_ROOT).join(format!(".down-{name}-{}", std::process::id()));
    let target = if std::fs::rename(&dir, &gone).is_ok() {
        gone
    } else {
        dir
    };
    for _ in 0..20 {
        match std::fs::remove_dir_all(&target) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            _ => return,
        }
    }
}

/// Tears a deployment down: agent, namespaces (and so veths and links), pins, state.
pub fn down(name: &str) -> Result<()> {
    check_name(name)?;
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
                stop_agent(pid);
            }
        }
    }
    // Read once the agent is gone: what it built until then is listed (a
    // host of a cluster builds what another host's departure moves here).
    let state = State::load(name);
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
    // The runtimes' memory cgroups: their processes went with the namespaces.
    errors.extend(crate::lambda::cgroup::remove_all(name));
    // The last host of a cluster on this machine takes the underlay with it.
    let bridged = state.as_ref().ok().and_then(|s| s.cluster.as_ref());
    if let Some(c) = bridged.filter(|c| c.underlay_dev.is_none()) {
        if let Err(e) = topology::remove_underlay_if_unused(&c.underlay_netns) {
            errors.push(format!("{e:#}"));
        }
    }
    let pins = pin_dir(name);
    if pins.exists() {
        if let Err(e) = std::fs::remove_dir_all(&pins) {
            errors.push(format!("removing {}: {e}", pins.display()));
        }
    }
    remove_state_dir(name);
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

/// What a template of deployment `name` is instantiated against: the
/// default region and account, the machine's parameter store
/// (`crate::ssm`), and the exports of every other deployment (the other
/// stacks of the account and region).
pub fn stack_context(name: &str) -> Result<crate::template::Context> {
    let mut ctx = crate::template::Context::new(name);
    ctx.ssm = crate::ssm::load(&crate::ssm::path())?;
    for other in std::fs::read_dir(STATE_ROOT)
        .into_iter()
        .flatten()
        .flatten()
    {
        let other = other.file_name().to_string_lossy().into_owned();
        if other == name || !state_dir(&other).join(crate::store::FILE).exists() {
            continue;
        }
        // One going down meanwhile has no state to read: no exports.
        let Ok(s) = State::load(&other) else { continue };
        // Its stacks (a state from before stacks: one, named after it).
        let legacy = [crate::model::ModelStack {
            name: other.clone(),
            outputs: s.model.outputs.clone(),
            ..Default::default()
        }];
        let stacks = if s.model.stacks.is_empty() {
            &legacy[..]
        } else {
            &s.model.stacks[..]
        };
        for st in stacks {
            for o in &st.outputs {
                if let Some(export) = &o.export_name {
                    ctx.exports.insert(
                        export.clone(),
                        crate::template::Export {
                            name: export.clone(),
                            value: o.value.clone(),
                            stack: st.name.clone(),
                        },
                    );
                }
            }
            ctx.stack_outputs.insert(
                st.name.clone(),
                st.outputs
                    .iter()
                    .map(|o| (o.key.clone(), o.value.clone()))
                    .collect(),
            );
        }
    }
    Ok(ctx)
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
    /// NAT port allocation: failures and the probe histogram.
    pub nat: crate::datapath::NatStats,
    pub connections: usize,
    /// The stack's parameters (`NoEcho` masked), outputs and the resources
    /// it keeps without building (IAM, logs, custom resources, ...).
    #[serde(default)]
    pub parameters: Vec<crate::model::StackParameter>,
    #[serde(default)]
    pub outputs: Vec<crate::model::StackOutput>,
    #[serde(default)]
    pub stack_resources: Vec<StackResourceView>,
    pub agent_running: bool,
    /// The live agent's pid (from its lock, not a recorded one).
    #[serde(default)]
    pub agent_pid: Option<u32>,
    pub metrics_url: Option<String>,
    /// The Lambda API on loopback TCP (`vpc up --api-addr`); it is always
    /// on the deployment's Unix socket, `api.sock`.
    #[serde(default)]
    pub api_url: Option<String>,
    /// Flow logs, where they write, and the datapath's event counters.
    #[serde(default)]
    pub flow_logs: Vec<crate::flowlogs::FlowLogView>,
    #[serde(default)]
    pub flow_log_stats: crate::flowlogs::agent::FlowLogStats,
    /// Occupancy of the maps that fill with traffic.
    #[serde(default)]
    pub maps: Vec<crate::metrics::Occupancy>,
    /// The last policy change's latency (request to switch), seconds.
    #[serde(default)]
    pub apply_latency_s: Option<f64>,
    /// Packets by interface: router ports, then Hyperplane ENIs.
    #[serde(default)]
    pub interfaces: Vec<crate::metrics::InterfaceCounters>,
    /// Connections each interface may have tracked at once (0: none).
    #[serde(default)]
    pub conntrack_allowance: u32,
    /// A change is written but not yet reconciled (the agent finishes it).
    #[serde(default)]
    pub reconcile_pending: bool,
    /// The deployment's stacks, deleted ones left out.
    #[serde(default)]
    pub stacks: Vec<StackView>,
    /// A host of a cluster: its name, the live members, where every
    /// resource runs, its NAT port slices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterView>,
}

/// `vpc status`'s view of a host of a cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterView {
    pub cluster: String,
    pub host: String,
    pub underlay: String,
    /// Live hosts and their underlay addresses, as the agent last read them.
    pub members: BTreeMap<String, std::net::Ipv4Addr>,
    /// Resource (logical id) to host.
    pub placement: BTreeMap<String, String>,
    pub slices: Vec<u32>,
    /// The revision of the cluster's desired state this host runs.
    pub revision: i64,
}

/// A stack: its name, status and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackView {
    pub name: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A resource kept in the stack: its logical id, type and `Ref`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackResourceView {
    pub logical_id: String,
    pub resource_type: String,
    pub physical_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionView {
    pub id: String,
    pub function_name: String,
    pub state: String,
    pub state_reason_code: String,
    pub last_update_status: String,
    /// `StateReason`: why the agent could not scale its ENIs, if so.
    pub state_reason: Option<String>,
    pub vpc_id: Option<String>,
    pub execution_environment: String,
    pub address: String,
    /// The execution environment's IPv6 address, if it has one.
    pub ipv6_address: Option<String>,
    /// `VpcConfig.Ipv6AllowedForDualStack`.
    pub ipv6_allowed_for_dual_stack: bool,
    pub eni: Option<String>,
    /// Every execution environment, one per subnet (the first is the one
    /// above: `execution_environment`, `address`, `eni`).
    pub execution_environments: Vec<ExecEnvView>,
}

/// One execution environment of a function (`vpc invoke F --env N`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecEnvView {
    /// 1-based, as `--env` takes it.
    pub env: usize,
    /// Node id: the function's logical id, `<id>.<n>` for the others.
    pub id: String,
    pub netns: String,
    pub address: String,
    pub ipv6_address: Option<String>,
    pub subnet: Option<String>,
    /// The first ENI of its subnet's group (the group may hold more).
    pub eni: Option<String>,
    pub eni_address: Option<String>,
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
    /// The execution environments sending through its group (`F`, `F.2`).
    #[serde(default)]
    pub execution_environments: Vec<String>,
    /// Live connections (NAT ports claimed, every protocol).
    pub connections: usize,
    /// NAT ports (connections) per protocol.
    pub capacity: u32,
    /// The fuller protocol's share of the capacity, 0-1.
    pub occupancy: f64,
    /// The id of its group's first ENI (its own for the first).
    pub group: String,
    /// Added by the agent when the group filled up.
    pub scaled: bool,
    /// EC2's status: `in-use`, or `available` for one Lambda could not
    /// delete (its function's role was gone first): delete it by hand.
    #[serde(default)]
    pub status: String,
}

/// Every Hyperplane ENI with its connection count and occupancy, grouped
/// (each group's ENIs in order).
pub fn eni_views(s: &State, maps: &mut impl Maps) -> Result<Vec<EniView>> {
    let capacity = maps.eni_capacity()?;
    let claims = maps.nat_claims()?;
    let m = &s.model;
    let mut out = vec![];
    let mut firsts: Vec<u32> = m
        .enis
        .iter()
        .map(|e| m.eni_group(e.index)[0].index)
        .collect();
    firsts.sort();
    firsts.dedup();
    for first in firsts {
        let group = m.eni_group(first);
        for e in &group {
            let of = |proto: u8| claims.get(&(e.index, proto)).copied().unwrap_or(0);
            let connections = claims
                .iter()
                .filter(|((i, _), _)| *i == e.index)
                .map(|(_, n)| n)
                .sum();
            out.push(EniView {
                id: e.id.clone(),
                interface_type: "lambda".into(),
                subnet: e.subnet.clone(),
                address: e.ip.to_string(),
                ipv6_address: e.ip6.map(|a| a.to_string()),
                security_groups: e.groups.clone(),
                functions: e.functions.clone(),
                execution_environments: m
                    .functions
                    .iter()
                    .flat_map(|f| f.envs())
                    .filter(|x| x.eni.is_some_and(|i| m.eni_group(i)[0].index == first))
                    .map(|x| x.id)
                    .collect(),
                connections,
                capacity,
                occupancy: of(6).max(of(17)) as f64 / capacity as f64,
                group: group[0].id.clone(),
                scaled: e.scaled,
                status: if e.available { "available" } else { "in-use" }.into(),
            });
        }
    }
    Ok(out)
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
    /// Its network interface's id (flow-log records name it).
    #[serde(default)]
    pub eni_id: String,
}

pub fn status(name: &str) -> Result<Status> {
    let s = State::load(name)?;
    let lc = Lifecycle::load(name).unwrap_or_default();
    let mut maps = PinnedMaps::open(&s.pin_dir)?;
    let counters = maps.counters()?;
    let conns = maps.connections()?;
    let nat = maps.nat_stats()?;
    let enis = eni_views(&s, &mut maps)?;
    let m = &s.model;
    let functions = m
        .functions
        .iter()
        .map(|f| {
            let st = lc
                .functions
                .get(&f.id)
                .cloned()
                .unwrap_or_else(|| FunctionStatus::pending("Creating", 0));
            FunctionView {
                id: f.id.clone(),
                function_name: f.name.clone(),
                state: st.state,
                state_reason_code: st.state_reason_code,
                last_update_status: st.last_update_status,
                state_reason: st.state_reason,
                vpc_id: f.vpc_config.as_ref().map(|v| v.vpc.clone()),
                execution_environment: topology::node_netns(&s.name, &format!("fn-{}", f.id)),
                address: f.exec_ip.to_string(),
                ipv6_address: f.exec_ip6.map(|a| a.to_string()),
                ipv6_allowed_for_dual_stack: f.ipv6_allowed(),
                eni: f
                    .eni
                    .and_then(|i| m.enis.iter().find(|e| e.index == i))
                    .map(|e| e.id.clone()),
                execution_environments: f
                    .envs()
                    .into_iter()
                    .map(|e| {
                        let eni = e.eni.and_then(|i| m.enis.iter().find(|x| x.index == i));
                        ExecEnvView {
                            env: e.n,
                            netns: topology::exec_env_netns(&s.name, &f.id, e.n),
                            id: e.id,
                            address: e.ip.to_string(),
                            ipv6_address: e.ip6.map(|a| a.to_string()),
                            subnet: e.subnet,
                            eni: eni.map(|x| x.id.clone()),
                            eni_address: eni.map(|x| x.ip.to_string()),
                        }
                    })
                    .collect(),
            }
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
            eni_id: crate::model::flowlog::host_eni_id(&s.model.stack_name, &h.id),
        })
        .collect();
    let agent_pid = agent_running(name)?;
    let agent_running = agent_pid.is_some();
    Ok(Status {
        name: s.name.clone(),
        template: s.template.clone(),
        attach_mode: s.attach_mode.clone(),
        functions,
        enis,
        hosts,
        counters,
        nat,
        connections: conns.len(),
        parameters: m.parameters.clone(),
        outputs: m.outputs.clone(),
        stack_resources: m
            .stack_resources
            .iter()
            .map(|r| StackResourceView {
                logical_id: r.logical_id.clone(),
                resource_type: r.resource_type.clone(),
                physical_id: r.physical_id.clone(),
            })
            .collect(),
        agent_running,
        agent_pid,
        metrics_url: agent_running.then(|| lc.metrics_url.clone()).flatten(),
        api_url: agent_running.then(|| lc.api_url.clone()).flatten(),
        flow_logs: crate::flowlogs::views(&s.name, &s.flow_logs, &s.model),
        flow_log_stats: crate::flowlogs::agent::stats(&mut maps)?,
        maps: crate::metrics::occupancy(&s, &mut maps)?,
        apply_latency_s: last_apply_seconds(name),
        interfaces: crate::metrics::interface_counters(&s, &mut maps)?,
        conntrack_allowance: maps.conntrack_allowance().unwrap_or(0),
        reconcile_pending: s.pending,
        stacks: crate::cloudformation::load(name)?
            .into_iter()
            .filter(|st| !st.deleted())
            .map(|st| StackView {
                name: st.name,
                status: st.status,
                reason: st.status_reason,
            })
            .collect(),
        cluster: s.cluster.as_ref().map(|c| ClusterView {
            cluster: c.cluster.clone(),
            host: c.host.clone(),
            underlay: c.underlay.to_string(),
            members: c.members.clone(),
            placement: s.model.placement.hosts.clone(),
            slices: c.slices.clone(),
            revision: c.revision,
        }),
    })
}

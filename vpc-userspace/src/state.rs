//! A deployment's persisted state: what `vpc up` built ([`State`]), the
//! agent's record ([`Lifecycle`]), both in the store and changed together
//! under the deployment's lock ([`transact`]).
use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::{
    datapath::{Hook, Timeouts},
    lambda::lifecycle::FunctionStatus,
    model::Model,
    paths::state_dir,
    store::Store,
    topology::Node,
};

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
    /// The hook of each port a node gets, unless `hook_overrides` names
    /// the node (`vpc up --hook ID=HOOK`; a function's covers its
    /// execution environments).
    #[serde(default = "default_hook")]
    pub default_hook: Hook,
    #[serde(default)]
    pub hook_overrides: BTreeMap<String, Hook>,
    /// How each port's program is attached (router-side interface name ->
    /// `xdp-native`, `xdp-generic` or `tc`); `attach_mode` sums them up.
    #[serde(default)]
    pub port_modes: BTreeMap<String, String>,
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
    /// Hyperplane ENIs at scale: capacity, scale-out threshold, return delay.
    #[serde(default)]
    pub eni_scaling: EniScaling,
    /// Conntrack table size (entries, two per connection).
    #[serde(default = "default_conntrack_max")]
    pub conntrack_max: u32,
    /// Flow logs: output directory, ring-buffer size.
    #[serde(default)]
    pub flow_logs: crate::flowlogs::FlowLogOptions,
    /// The model changed and is not yet reconciled: the agent finishes it
    /// (`reconcile::converge`) when it starts and on every tick.
    #[serde(default)]
    pub pending: bool,
    /// Functions the template declares (`vpc apply` deletes those its new
    /// template drops; the API's functions are the API's).
    #[serde(default)]
    pub template_functions: Vec<String>,
    /// `vpc up --no-default-vpc`: the EC2 API makes no default VPC
    /// (docs/ec2.md).
    #[serde(default)]
    pub no_default_vpc: bool,
    /// A host of a cluster (`vpc up --cluster`): one VPC over several
    /// hosts ([`crate::reconcile::hosts`], docs/multi-host.md).
    #[serde(default)]
    pub cluster: Option<crate::reconcile::hosts::ClusterHost>,
}

fn default_hook() -> Hook {
    Hooks::DEFAULT
}

fn default_conntrack_max() -> u32 {
    vpc_common::CT_MAX_ENTRIES
}

/// How the agent grows and shrinks a group of Hyperplane ENIs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EniScaling {
    /// NAT ports (connections) per ENI and protocol (`--eni-capacity`).
    pub capacity: u32,
    /// A new ENI is added when the group's last one holds this share of
    /// its capacity (ours: 0.8; AWS documents only the 65,000 limit).
    pub threshold: f64,
    /// A drained ENI that is not its group's first is returned after this.
    pub return_delay: Duration,
}

impl Default for EniScaling {
    fn default() -> Self {
        Self {
            capacity: vpc_common::DEFAULT_ENI_CAPACITY,
            threshold: 0.8,
            return_delay: Duration::from_secs(60),
        }
    }
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
    /// The deployment's clock (real, or a test clock).
    #[serde(default)]
    pub clock: crate::lambda::lifecycle::Clock,
    #[serde(default)]
    pub settings: crate::lambda::lifecycle::Settings,
    /// ENI combinations ("subnet|group,group") nothing uses, since when.
    #[serde(default)]
    pub unused_since_ms: BTreeMap<String, u64>,
    /// The agent's Lambda API on loopback TCP, once it listens.
    #[serde(default)]
    pub api_url: Option<String>,
    /// Where the agent also serves the API on TCP (`--api-addr`).
    #[serde(default)]
    pub api_addr: Option<String>,
}

pub(crate) fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    // Write then rename: readers never see a torn file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(v)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&data).with_context(|| format!("parsing {}", path.display()))
}

/// The store of a deployment that is up.
pub(crate) fn store_of(name: &str) -> Result<Store> {
    let dir = state_dir(name);
    if !dir.join(crate::store::FILE).exists() {
        bail!(
            "no deployment named {name:?} is up (no {})",
            dir.join(crate::store::FILE).display()
        );
    }
    Store::open_dir(&dir)
}

/// Reads the state and the lifecycle, lets `f` change them, and writes both
/// in one transaction (nothing is written if `f` fails), under the
/// deployment's lock (the CLI's policy edits read and write the state
/// under it too: neither loses the other's change).
pub fn transact<R>(
    name: &str,
    f: impl FnOnce(&mut State, &mut Lifecycle) -> Result<R>,
) -> Result<R> {
    let _lock = lock(name)?;
    store_of(name)?.transact(|t| {
        let mut s: State = t
            .get("state")?
            .with_context(|| format!("no deployment named {name:?} is up"))?;
        let mut lc: Lifecycle = t.get("lifecycle")?.unwrap_or_default();
        let r = f(&mut s, &mut lc)?;
        t.put("state", &s)?;
        t.put("lifecycle", &lc)?;
        Ok(r)
    })
}

impl State {
    pub fn load(name: &str) -> Result<Self> {
        store_of(name)?
            .get("state")?
            .with_context(|| format!("no deployment named {name:?} is up (no state in its store)"))
    }
    pub fn save(&self) -> Result<()> {
        store_of(&self.name)?.put("state", self)
    }
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The stack's outputs (DescribeStacks' `Outputs`): those whose
    /// condition held, evaluated when the template was last applied.
    pub fn outputs(&self) -> &[crate::model::StackOutput] {
        &self.model.outputs
    }

    /// The hook a new port of node `id` gets.
    pub fn hook_for(&self, id: &str) -> Hook {
        Hooks {
            default: Some(self.default_hook),
            per_port: self.hook_overrides.clone().into_iter().collect(),
        }
        .for_port(id)
    }
}

impl Lifecycle {
    pub fn load(name: &str) -> Result<Self> {
        store_of(name)?
            .get("lifecycle")?
            .context("no lifecycle in the store")
    }
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
    /// TC unless asked otherwise. Every port the project builds is a veth
    /// whose far end is a namespace fed by sockets, and for socket-fed
    /// traffic TC is the faster hook on every measure (`cargo xtask bench
    /// --throughput`: bulk TCP about 4x, 64-byte UDP 1.5x, more connections
    /// per second, lower latency): XDP on a veth takes TSO and checksum
    /// offload from the sender and turns every buffer into frames. XDP is
    /// faster where frames arrive as frames (from a NIC, or from another XDP
    /// program: the bench's circulating frames, 1.5x): `--hook xdp` there.
    pub const DEFAULT: Hook = Hook::Tc;

    /// The hook of node `id`; an execution environment (`F`, `F.2`)
    /// follows its function's (`F`).
    pub fn for_port(&self, id: &str) -> Hook {
        let function = id.split('.').next().unwrap_or(id);
        self.per_port
            .get(id)
            .or_else(|| self.per_port.get(function))
            .copied()
            .unwrap_or(self.default.unwrap_or(Self::DEFAULT))
    }
}

/// Serializes everything that rewrites a deployment's maps or state (policy
/// changes, the agent's activations): held from reading the state to saving it.
pub fn lock(name: &str) -> Result<nix::fcntl::Flock<std::fs::File>> {
    let f = std::fs::File::create(state_dir(name).join(".lock"))
        .with_context(|| format!("deployment {name:?} is not up"))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("locking deployment {name}: {e}"))
}

pub(crate) const APPLY_LATENCY: &str = "apply_latency_seconds";

/// Seconds the last policy change (`vpc apply`, `vpc sg`) took from the
/// request to the switch in the datapath, lock wait included.
pub fn last_apply_seconds(name: &str) -> Option<f64> {
    store_of(name).ok()?.get(APPLY_LATENCY).ok()?
}

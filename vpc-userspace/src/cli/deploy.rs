//! A deployment's life: `validate`, `up`, `run`, `apply`, `down`, `agent`.
use std::{
    collections::HashMap,
    io::Write as _,
    os::unix::process::CommandExt as _,
    process::{Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use vpc::{
    cloudformation::{
        self,
        operations::{self, StackInput},
    },
    datapath::Timeouts,
    deploy::{self, Lifecycle, State, UpOptions},
    model,
    reconcile::{hosts::ClusterHost, shared},
};

use super::{output::print_json, parse_duration, signal_flag, status::print_status, Output};

#[derive(clap::Args, Clone)]
pub struct TemplateArgs {
    /// CloudFormation template (YAML or JSON); `default` for the embedded one.
    template: String,
    /// Template parameter, NAME=VALUE (repeatable; a list type's VALUE is
    /// comma-separated). Wins over --parameters.
    #[arg(long = "parameter", short = 'p')]
    parameters: Vec<String>,
    /// Template parameters from a JSON file: the AWS CLI's
    /// `[{"ParameterKey": K, "ParameterValue": V}, ...]` or `{"K": "V"}`.
    #[arg(long = "parameters", value_name = "FILE")]
    parameters_file: Option<std::path::PathBuf>,
    /// Rules per security group and direction (AWS: 60, adjustable; groups x
    /// rules per interface stay <= 1,000).
    #[arg(long, default_value_t = model::MAX_RULES_PER_DIRECTION)]
    sg_rules_quota: usize,
    /// Network ACL rules per direction (AWS: 20, up to 40).
    #[arg(long, default_value_t = model::MAX_ACL_RULES_PER_DIRECTION)]
    acl_rules_quota: usize,
    /// The stack the template is (its `AWS::StackName`): `up` names the
    /// deployment's first stack so (default: the deployment's name);
    /// `apply` updates it, or creates it beside the others (default: the
    /// deployment's one stack).
    #[arg(long)]
    stack: Option<String>,
}

impl TemplateArgs {
    /// A template file, or `default`, with no parameters and AWS's quotas.
    pub fn of(template: String) -> Self {
        TemplateArgs {
            template,
            parameters: vec![],
            parameters_file: None,
            sg_rules_quota: model::MAX_RULES_PER_DIRECTION,
            acl_rules_quota: model::MAX_ACL_RULES_PER_DIRECTION,
            stack: None,
        }
    }

    fn quotas(&self) -> model::Quotas {
        model::Quotas {
            rules_per_group: self.sg_rules_quota,
            acl_rules: self.acl_rules_quota,
        }
    }
}

/// The template, its label and directory, and its parameters, as a
/// stack's input (named `stack`).
fn stack_input(t: &TemplateArgs, stack: &str) -> Result<StackInput> {
    let (text, label, dir) = read_template(t)?;
    Ok(StackInput {
        name: stack.to_string(),
        template_body: text,
        template_dir: dir,
        label,
        parameters: parameters(t)?.into_iter().collect(),
        ..Default::default()
    })
}

#[derive(clap::Args, Clone)]
pub struct UpArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Return only when every function is Active.
    #[arg(long)]
    wait: bool,
}

#[derive(clap::Args, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    template: TemplateArgs,
    /// Hyperplane ENI creation time: functions stay Pending this long.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    eni_delay: Duration,
    /// Connection-tracking timeout, NAME=SECONDS (repeatable): tcp-syn,
    /// tcp-established, tcp-closing, tcp-closed, udp, udp-stream, icmp, other.
    #[arg(long = "timeout")]
    timeouts: Vec<String>,
    /// The router's hook on each port: `tc` (socket buffers: senders keep
    /// GSO and TSO; the faster hook for socket-fed ports) or `xdp` (frames:
    /// the faster hook where frames arrive from an XDP program or a NIC);
    /// alone for every port, or ID=HOOK for one host or function
    /// (repeatable). Default: tc (docs/performance.md).
    #[arg(long = "hook", value_name = "[ID=]xdp|tc")]
    hooks: Vec<String>,
    /// Where the agent serves Prometheus metrics (`GET /metrics`). Port 0
    /// picks a free port (`vpc status` shows it); `off` serves none.
    #[arg(long, default_value = "127.0.0.1:0")]
    metrics_addr: String,
    #[command(flatten)]
    eni: EniArgs,
    #[command(flatten)]
    lifecycle: LifecycleArgs,
    /// Flow logs: the directory standing for S3 buckets
    /// (`s3/<bucket>/AWSLogs/...`) and CloudWatch log groups
    /// (`cloudwatch/<group>/<eni>-all`). Default: /var/log/vpc/<name>.
    #[arg(long)]
    flow_logs_dir: Option<std::path::PathBuf>,
    /// No default VPC (172.31.0.0/16) for the EC2 API: by default the
    /// first EC2 call makes one, as every AWS account has (docs/ec2.md).
    #[arg(long)]
    no_default_vpc: bool,
    /// Flow logs: ring-buffer size in bytes (a power of two, at least a
    /// page); a full ring buffer means SKIPDATA records.
    #[arg(long, default_value_t = vpc_common::FL_RINGBUF_BYTES)]
    flow_log_ringbuf: u32,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// One VPC over several hosts (docs/multi-host.md).
#[derive(clap::Args, Clone)]
pub struct ClusterArgs {
    /// Join a cluster whose desired state is in etcd at these client URLs
    /// (comma-separated): this deployment is one host of it.
    #[arg(long, value_delimiter = ',', value_name = "URL")]
    cluster: Vec<String>,
    /// The cluster's name (its keys are under `/vpc/<name>/` in etcd).
    #[arg(long, default_value = "vpc")]
    cluster_name: String,
    /// This host's name in the cluster, as `Metadata: Vpc::Host` names it
    /// (default: the deployment's name).
    #[arg(long)]
    host: Option<String>,
    /// This host's underlay address and prefix: the VXLAN tunnels' endpoint.
    #[arg(long, value_name = "ADDR/PREFIX")]
    underlay: Option<ipnet::Ipv4Net>,
    /// The namespace of the underlay's bridge, made when missing: every
    /// host on this machine joins it.
    #[arg(long, default_value = "vpc-underlay")]
    underlay_netns: String,
    /// Instead of the bridge: the machine's device on the network the hosts
    /// share (a VM's NIC), reached through a macvlan of it in the router
    /// namespace; its MTU must be 1,550 or more (VXLAN's 50 bytes).
    #[arg(long, value_name = "DEV")]
    underlay_dev: Option<String>,
    /// Seconds after which a host whose agent stopped renewing its lease
    /// is gone.
    #[arg(long, default_value_t = 5)]
    lease_ttl: i64,
}

impl ClusterArgs {
    /// The host's part in its cluster, if `--cluster` is given (checked).
    fn host(&self, name: &str, eni: &EniArgs, hooks: &[String]) -> Result<Option<ClusterHost>> {
        if self.cluster.is_empty() {
            return Ok(None);
        }
        let host = self.host.clone().unwrap_or_else(|| name.to_string());
        if !vpc::model::placement::valid_host_name(&host) {
            bail!("--host {host}: 1-32 letters, digits, '-' or '_'");
        }
        let underlay = self
            .underlay
            .context("--underlay ADDR/PREFIX: a host of a cluster needs its underlay address")?;
        if let Some(h) = hooks.iter().find(|h| h.ends_with("xdp")) {
            bail!("--hook {h}: a host of a cluster forwards across hosts at TC (XDP has no tunnel metadata; docs/multi-host.md)");
        }
        if let Some(dev) = &self.underlay_dev {
            vpc::topology::check_underlay_dev(dev)?;
        }
        if self.lease_ttl < 2 {
            bail!("--lease-ttl {}: at least 2 seconds", self.lease_ttl);
        }
        Ok(Some(ClusterHost {
            etcd: self.cluster.clone(),
            cluster: self.cluster_name.clone(),
            host,
            underlay,
            underlay_netns: self.underlay_netns.clone(),
            underlay_dev: self.underlay_dev.clone(),
            lease_ttl_s: self.lease_ttl,
            eni_capacity: eni.eni_capacity,
            nat_gateway_capacity: eni.nat_gateway_capacity,
            members: Default::default(),
            remote: vec![],
            slices: vec![],
            revision: 0,
        }))
    }
}

/// `vpc run`: a deployment in the foreground, and what to show of it.
#[derive(clap::Args, Clone)]
pub struct RunCmd {
    #[command(flatten)]
    run: RunArgs,
    /// A TCP listener on HOST:PORT, HOST an instance or network interface
    /// of the template: it stands for the server HOST would run, accepting
    /// connections and reading what they send (repeatable).
    #[arg(long, value_name = "HOST:PORT")]
    listen: Vec<String>,
    /// Once FUNCTION is Active, invoke it with PAYLOAD (default `{}`) and
    /// show the `vpc invoke` command to repeat with its answer.
    #[arg(long, value_name = "FUNCTION[=PAYLOAD]")]
    invoke: Option<String>,
}

/// The function and ENI lifecycle, and the Lambda API.
#[derive(clap::Args, Clone)]
struct LifecycleArgs {
    /// `real`, or `test`: a clock that stands still until moved (`vpc clock
    /// advance 3d`), for testing delays of days in milliseconds.
    #[arg(long, default_value = "real", value_parser = ["real", "test"])]
    clock: String,
    /// A function not invoked for this long loses its ENI and becomes
    /// Inactive (30 days, the seed's figure; AWS: weeks).
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    idle_reclaim: Duration,
    /// An execution environment no invocation took for this long is reaped
    /// (its runtime stopped; one started for concurrency removed). AWS does
    /// not document it (minutes).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    env_idle: Duration,
    /// An ENI no function or version uses is deleted after this (AWS: up to 20 min).
    #[arg(long, default_value = "20m", value_parser = parse_duration)]
    eni_delete_delay: Duration,
    /// Hyperplane ENIs per VPC (AWS: 250).
    #[arg(long, default_value_t = 250)]
    eni_limit: usize,
    /// Also serve the agent's AWS endpoint on this loopback TCP address
    /// (port 0: a free one; `vpc status --output json` shows it as
    /// `api_url`): the Lambda API, routed by the service a request is
    /// signed for, so one AWS_ENDPOINT_URL serves every client; `off`: the
    /// Unix socket only.
    #[arg(long, default_value = "off")]
    api_addr: String,
}

/// Hyperplane ENIs at scale.
#[derive(clap::Args, Clone)]
struct EniArgs {
    /// NAT ports (connections) per Hyperplane ENI and protocol, 1-64512: ports
    /// 1024..1024+N (AWS: 65,000 per ENI; the ephemeral range holds 64,512).
    #[arg(long, default_value_t = vpc_common::DEFAULT_ENI_CAPACITY)]
    eni_capacity: u32,
    /// A drained ENI added by the agent is returned after this.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    eni_return_delay: Duration,
    /// Connection-tracking entries (two per connection).
    #[arg(long, default_value_t = vpc_common::CT_MAX_ENTRIES)]
    conntrack_max: u32,
    /// Connections each interface (a host's ENI, an execution environment)
    /// may have tracked at once, its conntrack allowance; a new one past it
    /// is dropped (`conntrack_allowance_exceeded`). 0: none. Default: a
    /// quarter of the table's connections (--conntrack-max / 8).
    #[arg(long)]
    conntrack_allowance: Option<u32>,
    /// Source ports (connections) per NAT gateway and protocol, 1-64512
    /// (AWS: 55,000 per destination; see the README).
    #[arg(long, default_value_t = vpc_common::NAT_GATEWAY_CAPACITY)]
    nat_gateway_capacity: u32,
}

/// `--hook` values: one default and per-port overrides.
fn parse_hooks(args: &[String]) -> Result<deploy::Hooks> {
    use clap::ValueEnum;
    let mut h = deploy::Hooks::default();
    for a in args {
        let (id, v) = match a.split_once('=') {
            Some((id, v)) => (Some(id), v),
            None => (None, a.as_str()),
        };
        let hook = vpc::datapath::Hook::from_str(v, true)
            .map_err(|_| anyhow::anyhow!("--hook {a}: the hook is xdp or tc"))?;
        match id {
            Some(id) => {
                if h.per_port.insert(id.to_string(), hook).is_some() {
                    bail!("--hook {a}: {id} has a hook already");
                }
            }
            None if h.default.is_some() => bail!("--hook {a}: a second default hook"),
            None => h.default = Some(hook),
        }
    }
    Ok(h)
}

/// The template's model (the stack `--stack` names, or one named `stack`),
/// and how to name the template in messages.
pub fn load_model(t: &TemplateArgs, stack: &str) -> Result<(model::Model, String)> {
    let (text, label, dir) = read_template(t)?;
    let params = parameters(t)?;
    let mut ctx = deploy::stack_context(stack)?;
    if let Some(s) = &t.stack {
        ctx.stack_name = s.clone();
    }
    let m = model::build_at(&text, &params, &ctx, t.quotas(), None, dir.as_deref())
        .map_err(|e| anyhow::anyhow!("template {label}: {e}"))?;
    Ok((m, label))
}

/// The template's text, how to name it, and its directory (local paths in
/// a function's `Code`, and a CDK app's assets, are relative to it).
fn read_template(t: &TemplateArgs) -> Result<(String, String, Option<std::path::PathBuf>)> {
    Ok(if t.template == "default" {
        (
            vpc::DEFAULT_TEMPLATE.to_string(),
            "default (embedded)".to_string(),
            None,
        )
    } else {
        let text = std::fs::read_to_string(&t.template)
            .with_context(|| format!("reading template {}", t.template))?;
        let dir = std::path::Path::new(&t.template)
            .parent()
            .map(|d| {
                if d.as_os_str().is_empty() {
                    ".".as_ref()
                } else {
                    d
                }
            })
            .and_then(|d| std::fs::canonicalize(d).ok());
        (text, t.template.clone(), dir)
    })
}

/// The parameters given: `--parameters FILE`, then each `-p` over it.
fn parameters(t: &TemplateArgs) -> Result<HashMap<String, String>> {
    let mut params = match &t.parameters_file {
        Some(f) => parameters_file(f)?,
        None => HashMap::new(),
    };
    for p in &t.parameters {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("--parameter {p:?}: expected NAME=VALUE"))?;
        params.insert(k.to_string(), v.to_string());
    }
    Ok(params)
}

/// `--parameters FILE`: the AWS CLI's list of `ParameterKey` /
/// `ParameterValue`, or an object of names to values.
fn parameters_file(f: &std::path::Path) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("--parameters {}: not JSON", f.display()))?;
    let scalar = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(_) | serde_json::Value::Bool(_) => Some(v.to_string()),
        _ => None,
    };
    let mut out = HashMap::new();
    match &v {
        serde_json::Value::Array(a) => {
            for p in a {
                let (Some(k), Some(val)) = (
                    p.get("ParameterKey").and_then(|k| k.as_str()),
                    p.get("ParameterValue").and_then(scalar),
                ) else {
                    bail!(
                        "--parameters {}: each entry needs ParameterKey and ParameterValue",
                        f.display()
                    );
                };
                out.insert(k.to_string(), val);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, val) in o {
                let val = scalar(val).with_context(|| {
                    format!("--parameters {}: {k}: a string or a number", f.display())
                })?;
                out.insert(k.clone(), val);
            }
        }
        _ => bail!(
            "--parameters {}: a list of ParameterKey/ParameterValue or an object",
            f.display()
        ),
    }
    Ok(out)
}

/// `vpc validate`: the counts, or (`--output json`) the model.
pub fn validate(name: &str, t: &TemplateArgs, out: Output) -> Result<()> {
    let (m, label) = load_model(t, name)?;
    if out.is_json() {
        return print_json(&m);
    }
    println!(
        "{label}: OK: {} VPC(s), {} subnet(s), {} security group(s), {} host(s), {} function(s), {} Hyperplane ENI(s), {} other resource(s) kept, {} output(s)",
        m.vpcs.len(),
        m.subnets.len(),
        m.groups.len(),
        m.hosts.len(),
        m.functions.len(),
        m.enis.len(),
        m.stack_resources.len(),
        m.outputs.len()
    );
    for o in &m.outputs {
        println!("  output {} = {}", o.key, o.value);
    }
    Ok(())
}

/// Builds the deployment (no agent): its first stack.
fn build(name: &str, r: &RunArgs) -> Result<State> {
    deploy::check_name(name)?;
    let stack = r.template.stack.clone().unwrap_or_else(|| name.to_string());
    let input = stack_input(&r.template, &stack)?;
    let label = input.label.clone();
    let mut cluster = r.cluster.host(name, &r.eni, &r.hooks)?;
    let cluster_mode = cluster.is_some();
    let first = || -> Result<(model::Model, Vec<vpc::cloudformation::Stack>)> {
        let (mut m, st) = operations::first_stack(name, &input, r.template.quotas())?;
        if cluster_mode {
            deploy::detach_vpc_functions(&mut m);
        }
        Ok((m, vec![st]))
    };
    let (model, stacks) = match cluster.as_mut() {
        None => first()?,
        Some(c) => {
            let (m, st, rev) = shared::for_up(c, r.template.template != "default", first)?;
            c.revision = rev;
            (m, st)
        }
    };
    let mut timeouts = Timeouts::default();
    for t in &r.timeouts {
        timeouts.set(t).with_context(|| format!("--timeout {t}"))?;
    }
    deploy::up(
        model,
        &UpOptions {
            hooks: parse_hooks(&r.hooks)?,
            metrics_addr: (r.metrics_addr != "off").then(|| r.metrics_addr.clone()),
            name: name.to_string(),
            template_label: label,
            timeouts,
            eni_delay: r.eni_delay,
            quotas: model::Quotas {
                rules_per_group: r.template.sg_rules_quota,
                acl_rules: r.template.acl_rules_quota,
            },
            eni_scaling: deploy::EniScaling {
                capacity: r.eni.eni_capacity,
                return_delay: r.eni.eni_return_delay,
                ..Default::default()
            },
            conntrack_max: r.eni.conntrack_max,
            conntrack_allowance: r
                .eni
                .conntrack_allowance
                .unwrap_or(deploy::default_conntrack_allowance(r.eni.conntrack_max)),
            nat_gateway_capacity: r.eni.nat_gateway_capacity,
            lifecycle: deploy::LifecycleOptions {
                test_clock: r.lifecycle.clock == "test",
                settings: vpc::lifecycle::Settings {
                    idle_reclaim: r.lifecycle.idle_reclaim,
                    eni_delete_delay: r.lifecycle.eni_delete_delay,
                    eni_limit: r.lifecycle.eni_limit,
                    env_idle: r.lifecycle.env_idle,
                },
                api_addr: (r.lifecycle.api_addr != "off").then(|| r.lifecycle.api_addr.clone()),
            },
            flow_logs: vpc::flowlogs::FlowLogOptions {
                dir: r.flow_logs_dir.clone(),
                ringbuf_bytes: r.flow_log_ringbuf,
            },
            stacks,
            no_default_vpc: r.no_default_vpc,
            cluster,
        },
    )
}

/// `vpc up`: the deployment and its agent; with `--wait`, until every
/// function is Active.
pub fn up(name: &str, a: &UpArgs) -> Result<()> {
    let state = build(name, &a.run)?;
    let child = match spawn_agent(name) {
        Ok(c) => c,
        Err(e) => {
            let _ = deploy::down(name);
            return Err(e);
        }
    };
    println!(
        "{}: up ({} namespaces, router hooks {}), agent pid {}",
        name,
        state.namespaces.len(),
        state.attach_mode,
        child.id()
    );
    if a.wait {
        let deadline = Instant::now() + state.eni_delay + Duration::from_secs(30);
        loop {
            let lc = Lifecycle::load(name).unwrap_or_default();
            if !state.model.functions.is_empty()
                && lc.functions.values().all(|f| f.state == "Active")
                && lc.functions.len() == state.model.functions.len()
            {
                break;
            }
            if state.model.functions.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "functions did not become Active in time (see {})",
                    deploy::state_dir(name).join("agent.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        println!("{name}: every function is Active");
    }
    Ok(())
}

/// `vpc run`: up, the status live, down on Ctrl-C / SIGTERM; with
/// `--listen`, servers' stand-ins; with `--invoke`, one invocation shown
/// under the status, with the command that repeats it.
pub fn run(name: &str, c: &RunCmd) -> Result<()> {
    let stop = signal_flag()?;
    vpc::agent::init_logging();
    let invoke = c.invoke.as_ref().map(|i| match i.split_once('=') {
        Some((f, p)) => (f.to_string(), p.to_string()),
        None => (i.clone(), "{}".to_string()),
    });
    let listen: Vec<(String, u16)> = c
        .listen
        .iter()
        .map(|l| {
            l.rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)))
                .with_context(|| format!("--listen {l}: HOST:PORT expected"))
        })
        .collect::<Result<_>>()?;
    let state = build(name, &c.run)?;
    let result = (|| {
        let mut listeners = vec![];
        for (host, port) in &listen {
            if !state.model.hosts.iter().any(|h| h.id == *host) {
                bail!("--listen {host}:{port}: the template has no instance or network interface {host:?}");
            }
            listeners.push(Listener::start(
                &vpc::topology::node_netns(name, host),
                *port,
            )?);
        }
        println!("{name}: up; Ctrl-C tears it down");
        // Shown under the status once done (the invocation goes through the
        // agent's API, which this thread serves: it runs on its own).
        let shown = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        if let Some((f, payload)) = invoke.clone() {
            let (name, shown, stop) = (name.to_string(), shown.clone(), stop.clone());
            std::thread::spawn(move || {
                let r = invoke_when_active(&name, &f, &payload, &stop);
                *shown.lock().expect("lock") = Some(r);
            });
        }
        deploy::agent(name, &stop, || {
            let s = deploy::status(name)?;
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                print!("\x1b[2J\x1b[H");
            }
            print_status(&s);
            let f = state
                .model
                .functions
                .first()
                .map(|f| f.name.as_str())
                .unwrap_or("FUNCTION");
            match (&invoke, shown.lock().expect("lock").as_deref()) {
                (Some(_), Some(r)) => println!("\n{r}\n"),
                (Some((f, _)), None) => println!("\ninvoking {f} once it is Active ...\n"),
                (None, _) => println!("\ntry: vpc --name {name} invoke {f} --payload '{{\"order\": 1}}'   (its handler, through its ENI)"),
            }
            println!("try: vpc --name {name} invoke {f} -- sh -c 'nc -zv -w1 $DB_HOST $DB_PORT'   (a shell in its environment)");
            std::io::stdout().flush()?;
            Ok(())
        })
    })();
    let down = deploy::down(name);
    println!("\n{name}: torn down");
    result?;
    down
}

/// Invokes `f` with `payload` once it is Active (or `stop`): what to show,
/// the command that repeats it and what it printed.
fn invoke_when_active(name: &str, f: &str, payload: &str, stop: &AtomicBool) -> String {
    let path = format!("/2015-03-31/functions/{}", super::lambda::enc(f));
    while !stop.load(Ordering::Relaxed) {
        match vpc::api::call(name, "GET", &path, b"").map(|r| r.json()) {
            Ok(v) if v["Configuration"]["State"] == "Active" => break,
            Ok(v) if v["Configuration"]["State"] == "Failed" => {
                return format!("{f} failed: {}", v["Configuration"]["StateReason"]);
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let out = Command::new(std::env::current_exe().unwrap_or_else(|_| "vpc".into()))
        .args(["--name", name, "invoke", f, "--payload", payload])
        .output();
    let shown = match out {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => format!("{e}"),
    };
    format!(
        "invoked {f} (its handler, through its ENI):\n$ vpc --name {name} invoke {f} --payload '{payload}'\n{}",
        shown.trim_end()
    )
}

/// A TCP listener in a namespace that accepts connections and reads them
/// to their end, on threads of its own, until dropped.
struct Listener {
    stop: std::sync::Arc<AtomicBool>,
}

impl Listener {
    fn start(ns: &str, port: u16) -> Result<Self> {
        let l = vpc::topology::in_netns(ns, || {
            let l = std::net::TcpListener::bind(("0.0.0.0", port))
                .with_context(|| format!("listening on port {port} in {ns}"))?;
            l.set_nonblocking(true)?;
            Ok(l)
        })?;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let done = stop.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        std::thread::spawn(move || {
                            let _ = s.set_nonblocking(false);
                            let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
                            let _ = std::io::copy(&mut s, &mut std::io::sink());
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        Ok(Listener { stop })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `vpc apply`: a changed template on the running deployment, its stack's
/// UpdateStack (or, `--stack` naming a new one, its CreateStack).
pub fn apply(name: &str, t: &TemplateArgs) -> Result<()> {
    deploy::State::load(name)?;
    let stacks = cloudformation::load(name)?;
    let live: Vec<&str> = stacks
        .iter()
        .filter(|s| !s.deleted() && !vpc::ec2::stack::is_internal(&s.name))
        .map(|s| s.name.as_str())
        .collect();
    let stack = match (&t.stack, live.as_slice()) {
        (Some(s), _) => s.clone(),
        (None, []) => name.to_string(),
        (None, [one]) => one.to_string(),
        (None, many) => bail!(
            "deployment {name} has stacks {}: name the one to apply with --stack",
            many.join(", ")
        ),
    };
    if vpc::ec2::stack::is_internal(&stack) {
        bail!("stack {stack} holds the EC2 API's resources: it changes through the EC2 API");
    }
    let input = stack_input(t, &stack)?;
    let label = input.label.clone();
    let op = if operations::live(&stacks, &stack).is_some() {
        operations::Operation::Update {
            input,
            require_change: false,
        }
    } else {
        operations::Operation::Create(input)
    };
    let out = operations::run(name, &op, t.quotas())?;
    if let Some(e) = out.error {
        bail!(
            "template {label}: {e}\n(stack {stack}: {}; nothing was applied)",
            out.stack.status
        );
    }
    println!(
        "{name}: applied {label} (stack {stack} {})",
        out.stack.status
    );
    Ok(())
}

/// `vpc delete-stack`: DeleteStack, the deployment keeping its other
/// stacks.
pub fn delete_stack(name: &str, stack: &str) -> Result<()> {
    let out = operations::run(
        name,
        &operations::Operation::Delete(stack.to_string()),
        deploy::State::load(name)?.quotas,
    )?;
    if let Some(e) = out.error {
        bail!("stack {stack}: {e} ({})", out.stack.status);
    }
    println!("{name}: stack {stack} {}", out.stack.status);
    Ok(())
}

pub fn down(name: &str) -> Result<()> {
    deploy::down(name)?;
    println!("{name}: down");
    Ok(())
}

/// `vpc agent`: in the foreground until a signal, or `--detach`ed.
pub fn agent(name: &str, detach: bool) -> Result<()> {
    if detach {
        let child = spawn_agent(name)?;
        println!("{name}: agent pid {}", child.id());
    } else {
        let stop = signal_flag()?;
        vpc::agent::init_logging();
        deploy::agent(name, &stop, || Ok(()))?;
    }
    Ok(())
}

/// Starts `vpc agent` in its own session, output to the deployment's
/// agent.log, and returns once it holds the agent lock (or has failed).
fn spawn_agent(name: &str) -> Result<std::process::Child> {
    deploy::State::load(name)?;
    let log_path = deploy::state_dir(name).join("agent.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--name", name, "agent"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting the agent")?;
    // Generous: a loaded machine may take a while to load and adopt.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let last = log.lines().last().unwrap_or("").to_string();
            bail!("the agent exited ({status}): {last}");
        }
        // Up once it holds the lock, has recorded itself (with its API and
        // metrics addresses: `vpc status` shows them at once) and answers
        // on its API (the next command can use it).
        if deploy::agent_running(name)? == Some(child.id())
            && deploy::Lifecycle::load(name).is_ok_and(|lc| lc.agent_pid == Some(child.id()))
            && vpc::api::call(name, "GET", "/2015-03-31/functions", b"").is_ok()
        {
            return Ok(child);
        }
        if Instant::now() > deadline {
            bail!("the agent did not start (see {})", log_path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

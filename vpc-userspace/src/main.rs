//! `vpc`: bring a CloudFormation VPC up on veth pairs, enforced by XDP.
use std::{
    collections::HashMap,
    io::Write as _,
    os::unix::process::CommandExt as _,
    path::PathBuf,
    process::{Command, ExitCode, Stdio},
    sync::{atomic::AtomicBool, Arc},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use vpc::{
    bench,
    datapath::Timeouts,
    deploy::{self, Lifecycle, State, Status, UpOptions},
    model,
};

#[derive(Parser)]
#[command(
    name = "vpc",
    version,
    about = "AWS Lambda VPC data path on veth pairs, enforced by XDP"
)]
struct Cli {
    /// Deployment name: prefixes its namespaces and pins, so several can run at once.
    #[arg(long, global = true, env = "VPC_NAME", default_value = "vpc")]
    name: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct TemplateArgs {
    /// CloudFormation template (YAML or JSON); `default` for the embedded one.
    template: String,
    /// Template parameter, NAME=VALUE (repeatable).
    #[arg(long = "parameter", short = 'p')]
    parameters: Vec<String>,
    /// Rules per security group and direction (AWS: 60, adjustable; groups x
    /// rules per interface stay <= 1,000).
    #[arg(long, default_value_t = model::MAX_RULES_PER_DIRECTION)]
    sg_rules_quota: usize,
    /// Network ACL rules per direction (AWS: 20, up to 40).
    #[arg(long, default_value_t = model::MAX_ACL_RULES_PER_DIRECTION)]
    acl_rules_quota: usize,
}

#[derive(clap::Args, Clone)]
struct RunArgs {
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
    /// Flow logs: ring-buffer size in bytes (a power of two, at least a
    /// page); a full ring buffer means SKIPDATA records.
    #[arg(long, default_value_t = vpc_common::FL_RINGBUF_BYTES)]
    flow_log_ringbuf: u32,
}

/// The function and ENI lifecycle, and the Lambda API.
#[derive(clap::Args, Clone)]
struct LifecycleArgs {
    /// `real`, or `test`: a clock that stands still until moved (`vpc clock
    /// advance 3d`), for testing delays of days in milliseconds.
    #[arg(long, default_value = "real", value_parser = ["real", "test"])]
    clock: String,
    /// A function not invoked for this long loses its ENI and becomes
    /// Inactive (AWS: weeks).
    #[arg(long, default_value = "14d", value_parser = parse_duration)]
    idle_reclaim: Duration,
    /// An ENI no function or version uses is deleted after this (AWS: up to 20 min).
    #[arg(long, default_value = "20m", value_parser = parse_duration)]
    eni_delete_delay: Duration,
    /// Hyperplane ENIs per VPC (AWS: 250).
    #[arg(long, default_value_t = 250)]
    eni_limit: usize,
    /// Also serve the Lambda API on this loopback TCP address (port 0: a
    /// free one; `vpc status --json` shows it as `api_url`); `off`: the Unix
    /// socket only.
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

#[derive(Subcommand)]
enum Cmd {
    /// Check a template and print what it would build; applies nothing.
    Validate(TemplateArgs),
    /// Apply a template and start the agent in the background.
    Up {
        #[command(flatten)]
        run: RunArgs,
        /// Return only when every function is Active.
        #[arg(long)]
        wait: bool,
    },
    /// Re-apply a changed template to a running deployment: security groups
    /// and network ACLs change atomically; topology changes are refused.
    Apply(TemplateArgs),
    /// Apply a template, show it live, and tear it down on Ctrl-C / SIGTERM.
    Run(RunArgs),
    /// Functions, ENIs, hosts, attach mode and packet counters.
    Status {
        #[arg(long)]
        json: bool,
        /// Refresh every this many seconds (as `vpc top`).
        #[arg(long, value_name = "SECONDS")]
        watch: Option<f64>,
    },
    /// `vpc status`, refreshed live with packet rates (Ctrl-C stops).
    Top {
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
    /// Invoke FUNCTION (logical id or FunctionName) through the Lambda API:
    /// with `-- CMD`, run CMD in its execution environment once the API
    /// allows the invocation; without, Invoke its handler with --payload.
    Invoke {
        function: String,
        /// Which execution environment: N is the Nth subnet of its VpcConfig
        /// (`vpc status` lists them).
        #[arg(long, default_value_t = 1)]
        env: usize,
        /// The payload (Invoke, without CMD).
        #[arg(long, default_value = "{}")]
        payload: String,
        /// A published version (its own execution environments).
        #[arg(long)]
        qualifier: Option<u32>,
        #[arg(last = true)]
        cmd: Vec<String>,
    },
    /// Lambda's GetFunction (JSON as the API returns it).
    GetFunction {
        function: String,
        #[arg(long)]
        qualifier: Option<String>,
    },
    /// Lambda's ListFunctions.
    ListFunctions,
    /// Lambda's UpdateFunctionConfiguration: a new VpcConfig.
    UpdateFunctionConfiguration {
        function: String,
        /// Comma-separated; empty (with no groups) removes the VpcConfig.
        #[arg(long, default_value = "")]
        subnet_ids: String,
        #[arg(long, default_value = "")]
        security_group_ids: String,
        #[arg(long)]
        ipv6_allowed_for_dual_stack: bool,
    },
    /// Lambda's DeleteFunction.
    DeleteFunction { function: String },
    /// Lambda's PublishVersion: the version keeps its VpcConfig and its ENI.
    PublishVersion { function: String },
    /// Shared subnets: `vpc ram disassociate SHARE --subnet-ids A` unshares
    /// (the participants' functions lose the subnet at once), `associate`
    /// shares again.
    Ram {
        #[command(subcommand)]
        op: RamOp,
    },
    /// The test clock (`vpc up --clock test`): `vpc clock advance 3d`.
    Clock {
        #[command(subcommand)]
        op: ClockOp,
    },
    /// Run CMD in the namespace of an instance or network interface.
    Exec {
        resource: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Tear the deployment down: namespaces, links, pins, state.
    Down,
    /// Add or remove one security-group rule on the running deployment (as
    /// EC2's AuthorizeSecurityGroupIngress & co.), applied atomically.
    Sg {
        #[command(subcommand)]
        op: SgOp,
    },
    /// Tracked connections, as `conntrack -L` shows them.
    Conntrack {
        #[command(subcommand)]
        op: ConntrackOp,
    },
    /// Why a new connection would be allowed or dropped, rule by rule (the
    /// reference model of AWS's semantics, which the datapath is tested
    /// against).
    Explain {
        /// Sender: an instance, a network interface, or a function (which
        /// sends from its Hyperplane ENI).
        from: String,
        /// Destination: an address or a resource.
        to: String,
        #[arg(long, default_value = "tcp")]
        protocol: String,
        /// Destination port (ICMP: type).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Explain this template instead of the running deployment.
        #[arg(long)]
        template: Option<String>,
    },
    /// Print the embedded default template.
    DefaultTemplate,
    /// Measure ns/packet through BPF_PROG_TEST_RUN.
    Bench {
        #[arg(long, default_value_t = 1_000_000)]
        repeat: u32,
        #[arg(long, default_value_t = 7)]
        samples: usize,
        /// Write the results as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Real frames through real veths instead: the router against
        /// nftables and against a bare redirect (JSON: throughput.json next
        /// to --json).
        #[arg(long)]
        throughput: bool,
        /// With --throughput: frames injected once and kept circulating.
        #[arg(long, default_value_t = 128)]
        in_flight: u32,
        /// With --throughput: seconds of each circulating sample.
        #[arg(long, default_value_t = 1.0)]
        sample_seconds: f64,
        /// With --throughput: seconds of each socket measurement (iperf3,
        /// request/response, connections).
        #[arg(long, default_value_t = 3)]
        socket_seconds: u64,
        /// Conntrack entries of the large-table case (1,000,000 entries
        /// filled; its memory is measured): 2,000,000 = 1 million connections.
        #[arg(long, default_value_t = 2_000_000)]
        conntrack_max: u32,
    },
    /// Hyperplane ENIs: `vpc eni list [--json]`.
    Eni {
        #[command(subcommand)]
        op: EniOp,
    },
    /// VPC Flow Logs: `vpc flows tail [--eni ID] [--format F]`.
    Flows {
        #[command(subcommand)]
        op: FlowsOp,
    },
    /// The agent (`up` starts it in the background). It adopts the pinned
    /// datapath, which forwards without it: after a crash, `vpc agent
    /// --detach` starts a new one and no connection is lost. Refused while
    /// another agent of the deployment runs.
    Agent {
        /// Start it in the background (log: /run/vpc/NAME/agent.log).
        #[arg(long)]
        detach: bool,
    },
}

#[derive(Subcommand)]
enum RamOp {
    Associate(ShareArgs),
    Disassociate(ShareArgs),
}

#[derive(clap::Args)]
struct ShareArgs {
    /// The share's Name or logical id.
    share: String,
    /// Comma-separated subnet ids.
    #[arg(long, default_value = "")]
    subnet_ids: String,
    /// Comma-separated account ids.
    #[arg(long, default_value = "")]
    principals: String,
}

#[derive(Subcommand)]
enum ClockOp {
    Advance {
        #[arg(value_parser = parse_duration)]
        by: Duration,
    },
}

#[derive(Subcommand)]
enum FlowsOp {
    /// Prints flow-log records as the agent writes them.
    Tail {
        /// Only this interface's records (`eni-...`).
        #[arg(long)]
        eni: Option<String>,
        /// `default` (version 2), or `${field} ...` as in `LogFormat`;
        /// default: each flow log's own format.
        #[arg(long)]
        format: Option<String>,
        /// Also what was written before.
        #[arg(long)]
        from_start: bool,
        /// Stop after this many records.
        #[arg(long)]
        count: Option<usize>,
    },
}

#[derive(Subcommand)]
enum EniOp {
    /// Each Hyperplane ENI: id, addresses, combination, functions,
    /// connections, capacity and occupancy, by group.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConntrackOp {
    /// Original and translated tuples, state, time left, age, packets and
    /// bytes each way, newest first.
    List {
        #[arg(long)]
        json: bool,
    },
}

fn print_enis(enis: &[deploy::EniView]) {
    for e in enis {
        println!(
            "  {}  {:<15}{} subnet {:<16} groups [{}]  functions [{}] (envs [{}])  connections {} / {} per protocol ({:.1}%){}",
            e.id,
            e.address,
            v6_suffix(&e.ipv6_address),
            e.subnet,
            e.security_groups.join(", "),
            e.functions.join(", "),
            e.execution_environments.join(", "),
            e.connections,
            e.capacity,
            e.occupancy * 100.0,
            if e.scaled {
                format!("  added to the group of {}", e.group)
            } else {
                String::new()
            }
        );
    }
}

#[derive(Subcommand)]
enum SgOp {
    AuthorizeIngress(SgRuleArgs),
    RevokeIngress(SgRuleArgs),
    AuthorizeEgress(SgRuleArgs),
    RevokeEgress(SgRuleArgs),
}

#[derive(clap::Args)]
struct SgRuleArgs {
    /// The group (logical id, or `VPC.DefaultSecurityGroup`).
    group: String,
    /// tcp, udp, icmp, icmpv6, a number, or -1.
    #[arg(long)]
    protocol: String,
    /// A port or FROM-TO (ICMP: TYPE or TYPE-CODE); ignored for -1.
    #[arg(long)]
    port: Option<String>,
    #[arg(long, conflicts_with_all = ["group_peer", "prefix_list"])]
    cidr: Option<String>,
    /// The peer group (source for ingress, destination for egress).
    #[arg(long = "peer-group", conflicts_with = "prefix_list")]
    group_peer: Option<String>,
    #[arg(long)]
    prefix_list: Option<String>,
}

/// One rule edit, validated like a template rule, then `vpc apply`'s path.
fn sg_edit(name: &str, op: SgOp) -> Result<()> {
    let (args, ingress, add) = match op {
        SgOp::AuthorizeIngress(a) => (a, true, true),
        SgOp::RevokeIngress(a) => (a, true, false),
        SgOp::AuthorizeEgress(a) => (a, false, true),
        SgOp::RevokeEgress(a) => (a, false, false),
    };
    let gen = deploy::apply_edit(name, |m, state| {
        let quota = state.quotas.rules_per_group;
        let mut rule = serde_json::json!({ "IpProtocol": args.protocol });
        if let Some(p) = &args.port {
            let (from, to) = p.split_once('-').unwrap_or((p, p));
            rule["FromPort"] = from.into();
            rule["ToPort"] = to.into();
        }
        let (group_field, prefix_field) = if ingress {
            ("SourceSecurityGroupId", "SourcePrefixListId")
        } else {
            ("DestinationSecurityGroupId", "DestinationPrefixListId")
        };
        if let Some(c) = &args.cidr {
            rule[if c.contains(':') {
                "CidrIpv6"
            } else {
                "CidrIp"
            }] = c.as_str().into();
        }
        if let Some(g) = &args.group_peer {
            rule[group_field] = g.as_str().into();
        }
        if let Some(p) = &args.prefix_list {
            rule[prefix_field] = p.as_str().into();
        }
        let rule = model::parse_rule(&rule, "rule", ingress)?;
        match &rule.peer {
            model::Peer::Group(g) if m.group(g).is_none() => bail!("InvalidGroup.NotFound: {g:?}"),
            model::Peer::PrefixList(p) if m.prefix_list(p).is_none() => {
                bail!("InvalidPrefixListID.NotFound: {p:?}")
            }
            _ => {}
        }
        let target = m
            .group(&args.group)
            .cloned()
            .with_context(|| format!("InvalidGroup.NotFound: {:?}", args.group))?;
        if let model::Peer::Group(g) = &rule.peer {
            if m.group(g).is_some_and(|p| p.vpc != target.vpc) {
                bail!("security group {g:?} is in another VPC than {}", args.group);
            }
        }
        let mut rules = if ingress {
            target.ingress
        } else {
            target.egress
        };
        match (add, rules.iter().position(|r| *r == rule)) {
            (true, Some(_)) => bail!(
                "InvalidPermission.Duplicate: the rule already exists in {}",
                args.group
            ),
            (true, None) => rules.push(rule),
            (false, Some(i)) => {
                rules.remove(i);
            }
            (false, None) => bail!("InvalidPermission.NotFound: no such rule in {}", args.group),
        }
        // Prefix lists count their MaxEntries, as in templates.
        let (v4, v6) = m.rule_weight(&rules);
        if add && v4.max(v6) > quota {
            bail!("RulesPerSecurityGroupLimitExceeded: the maximum number of rules per security group ({quota}) has been reached");
        }
        let g = m
            .groups
            .iter_mut()
            .find(|g| g.id == args.group)
            .expect("found above");
        if ingress {
            g.ingress = rules;
        } else {
            g.egress = rules;
        }

        Ok(())
    })?;
    println!("{name}: {} updated (policy generation {gen})", args.group);
    Ok(())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected e.g. 500ms, 2s, 3m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => return Err(format!("{s:?}: unit must be ms, s, m, h or d")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn load_model(t: &TemplateArgs, stack: &str) -> Result<(model::Model, String)> {
    let (text, label) = if t.template == "default" {
        (
            vpc::DEFAULT_TEMPLATE.to_string(),
            "default (embedded)".to_string(),
        )
    } else {
        let text = std::fs::read_to_string(&t.template)
            .with_context(|| format!("reading template {}", t.template))?;
        (text, t.template.clone())
    };
    let mut params = HashMap::new();
    for p in &t.parameters {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("--parameter {p:?}: expected NAME=VALUE"))?;
        params.insert(k.to_string(), v.to_string());
    }
    let quotas = model::Quotas {
        rules_per_group: t.sg_rules_quota,
        acl_rules: t.acl_rules_quota,
    };
    let m = model::build_with(&text, &params, stack, quotas)
        .map_err(|e| anyhow::anyhow!("template {label}: {e}"))?;
    for (id, ty) in &m.skipped {
        eprintln!("note: skipping {id} ({ty}): not modelled by this project");
    }
    Ok((m, label))
}

fn up(name: &str, r: &RunArgs) -> Result<State> {
    let (model, label) = load_model(&r.template, name)?;
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
            nat_gateway_capacity: r.eni.nat_gateway_capacity,
            lifecycle: deploy::LifecycleOptions {
                test_clock: r.lifecycle.clock == "test",
                settings: vpc::lifecycle::Settings {
                    idle_reclaim: r.lifecycle.idle_reclaim,
                    eni_delete_delay: r.lifecycle.eni_delete_delay,
                    eni_limit: r.lifecycle.eni_limit,
                },
                api_addr: (r.lifecycle.api_addr != "off").then(|| r.lifecycle.api_addr.clone()),
            },
            flow_logs: vpc::flowlogs::FlowLogOptions {
                dir: r.flow_logs_dir.clone(),
                ringbuf_bytes: r.flow_log_ringbuf,
            },
        },
    )
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
        // Up once it holds the lock and answers on its API (the next
        // command can use it).
        if deploy::agent_running(name)? == Some(child.id())
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

/// Prints an API answer (JSON pretty); an error answer is the command's error.
fn print_api(r: vpc::api::Response) -> Result<ExitCode> {
    let r = r.ok()?;
    if !r.body.is_empty() {
        println!("{}", serde_json::to_string_pretty(&r.json())?);
    }
    Ok(ExitCode::SUCCESS)
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn signal_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}

/// ` + 2001:db8::4` after an IPv4 address, for a dual-stack interface.
fn v6_suffix(a: &Option<String>) -> String {
    a.as_ref().map(|a| format!(" + {a}")).unwrap_or_default()
}

fn print_status(s: &Status) {
    println!(
        "deployment {}  template {}  router hooks: {}",
        s.name, s.template, s.attach_mode
    );
    println!("\nFUNCTIONS");
    for f in &s.functions {
        println!(
            "  {:<20} {:<8} {:<10} exec-env {}{} ({})  vpc {}  eni {}  ipv6 {}",
            f.function_name,
            f.state,
            f.state_reason_code,
            f.address,
            v6_suffix(&f.ipv6_address),
            f.execution_environment,
            f.vpc_id.as_deref().unwrap_or("-"),
            f.eni.as_deref().unwrap_or("-"),
            if f.ipv6_allowed_for_dual_stack {
                "allowed"
            } else {
                "-"
            }
        );
    }
    for f in s
        .functions
        .iter()
        .filter(|f| f.execution_environments.len() > 1)
    {
        for e in &f.execution_environments {
            println!(
                "    env {:<2} {}{} ({})  subnet {}  eni {} ({})",
                e.env,
                e.address,
                v6_suffix(&e.ipv6_address),
                e.netns,
                e.subnet.as_deref().unwrap_or("-"),
                e.eni.as_deref().unwrap_or("-"),
                e.eni_address.as_deref().unwrap_or("-"),
            );
        }
    }
    for f in s.functions.iter().filter(|f| f.state_reason.is_some()) {
        println!(
            "  {}: {}",
            f.function_name,
            f.state_reason.as_deref().unwrap_or("")
        );
    }
    println!("\nHYPERPLANE ENIS (InterfaceType lambda)");
    print_enis(&s.enis);
    println!(
        "  NAT ports: {} allocated, {} failed (every ENI of the group full); probes per allocation: {}",
        s.nat.allocated(),
        s.nat.failed,
        s.nat
            .probe_histogram
            .iter()
            .map(|(b, n)| format!("{b}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("\nHOSTS");
    for h in &s.hosts {
        println!(
            "  {:<20} {:<16} {:<15}{} subnet {:<16} netns {}  groups [{}]  {}",
            h.id,
            h.kind,
            h.address,
            v6_suffix(&h.ipv6_address),
            h.subnet,
            h.netns,
            h.security_groups.join(", "),
            h.eni_id
        );
    }
    println!(
        "\nPACKETS  forwarded {}  dropped {}  tracked connections {}",
        s.counters.forwarded,
        s.counters.total_dropped(),
        s.connections
    );
    for (reason, n) in &s.counters.dropped {
        if *n > 0 {
            println!("  dropped {reason:<24} {n}");
        }
    }
    println!(
        "\nINTERFACES  {}",
        s.interfaces
            .iter()
            .filter(|c| c.forwarded + c.dropped > 0)
            .map(|c| {
                let who = if c.eni.is_empty() { &c.node } else { &c.eni };
                format!("{who} {} fwd {} drop", c.forwarded, c.dropped)
            })
            .collect::<Vec<_>>()
            .join("  ")
    );
    if !s.flow_logs.is_empty() {
        println!(
            "\nFLOW LOGS  events {}  lost {}{}",
            s.flow_log_stats.events,
            s.flow_log_stats.events_lost,
            if s.flow_log_stats.events_lost > 0 {
                " (those windows carry SKIPDATA)"
            } else {
                ""
            }
        );
        for f in &s.flow_logs {
            println!(
                "  {:<20} {}  {} {}  {}s  {} interfaces -> {}",
                f.id,
                f.flow_log_id,
                f.resource,
                f.traffic_type,
                f.interval_s,
                f.interfaces,
                f.destination.display()
            );
        }
    }
    println!(
        "\nMAPS  {}{}",
        s.maps
            .iter()
            .map(|m| format!(
                "{} {}/{} ({:.1}%)",
                m.map,
                m.entries,
                m.max_entries,
                100.0 * m.entries as f64 / m.max_entries.max(1) as f64
            ))
            .collect::<Vec<_>>()
            .join("  "),
        s.apply_latency_s
            .map(|l| format!("  last apply {:.1} ms", l * 1000.0))
            .unwrap_or_default()
    );
    if !s.skipped.is_empty() {
        println!(
            "\nSKIPPED (not modelled): {}",
            s.skipped
                .iter()
                .map(|(i, t)| format!("{i} ({t})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(url) = &s.metrics_url {
        println!("\nMETRICS  {url}");
    }
    if s.agent_running {
        println!(
            "LAMBDA API  {}{}",
            vpc::api::socket_path(&s.name).display(),
            s.api_url
                .as_ref()
                .map(|u| format!("  and {u}"))
                .unwrap_or_default()
        );
    }
    if !s.agent_running {
        println!("\nwarning: the agent is not running");
    }
}

/// `vpc top`: the status, redrawn every `interval` seconds, with packet
/// rates since the last refresh, until Ctrl-C.
fn top(name: &str, interval: f64) -> Result<()> {
    let stop = signal_flag()?;
    let every = Duration::from_secs_f64(interval.max(0.1));
    let mut last: Option<(std::time::Instant, deploy::Status)> = None;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let s = deploy::status(name)?;
        // Clear the screen, cursor home.
        print!("\x1b[2J\x1b[H");
        print_status(&s);
        if let Some((t, prev)) = &last {
            let secs = t.elapsed().as_secs_f64().max(1e-3);
            let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 / secs;
            let mut line = format!(
                "\nRATES  forwarded {:.0}/s  dropped {:.0}/s  flow-log events {:.0}/s",
                rate(s.counters.forwarded, prev.counters.forwarded),
                rate(s.counters.total_dropped(), prev.counters.total_dropped()),
                rate(s.flow_log_stats.events, prev.flow_log_stats.events)
            );
            for ((reason, n), (_, p)) in s.counters.dropped.iter().zip(&prev.counters.dropped) {
                if n > p {
                    line += &format!("  {reason} {:.0}/s", rate(*n, *p));
                }
            }
            println!("{line}");
        }
        println!("\n(every {interval}s; Ctrl-C to stop)");
        last = Some((std::time::Instant::now(), s));
        let until = std::time::Instant::now() + every;
        while std::time::Instant::now() < until && !stop.load(std::sync::atomic::Ordering::Relaxed)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// Runs `cmd` inside namespace `ns`, with `env`, and returns its exit code.
fn run_in(
    ns: &str,
    env: &std::collections::BTreeMap<String, String>,
    cmd: &[String],
) -> Result<ExitCode> {
    let status = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .envs(env)
        .status()
        .context("running ip netns exec")?;
    Ok(ExitCode::from(status.code().unwrap_or(128) as u8))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn real_main(cli: Cli) -> Result<ExitCode> {
    let name = cli.name.clone();
    match cli.cmd {
        Cmd::Validate(t) => {
            let (m, label) = load_model(&t, &name)?;
            println!(
                "{label}: OK: {} VPC(s), {} subnet(s), {} security group(s), {} host(s), {} function(s), {} Hyperplane ENI(s)",
                m.vpcs.len(),
                m.subnets.len(),
                m.groups.len(),
                m.hosts.len(),
                m.functions.len(),
                m.enis.len()
            );
        }
        Cmd::Up { run, wait } => {
            let state = up(&name, &run)?;
            let child = match spawn_agent(&name) {
                Ok(c) => c,
                Err(e) => {
                    let _ = deploy::down(&name);
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
            if wait {
                let deadline = Instant::now() + state.eni_delay + Duration::from_secs(30);
                loop {
                    let lc = Lifecycle::load(&name).unwrap_or_default();
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
                            deploy::state_dir(&name).join("agent.log").display()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                println!("{name}: every function is Active");
            }
        }
        Cmd::Run(run) => {
            let stop = signal_flag()?;
            let state = up(&name, &run)?;
            println!("{name}: up; Ctrl-C tears it down");
            let result = deploy::agent(&name, &stop, || {
                let s = deploy::status(&name)?;
                if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                    print!("\x1b[2J\x1b[H");
                }
                print_status(&s);
                println!(
                    "\ntry: vpc --name {name} invoke {} -- sh -c 'nc -zv -w1 $DB_HOST $DB_PORT'",
                    state
                        .model
                        .functions
                        .first()
                        .map(|f| f.name.as_str())
                        .unwrap_or("FUNCTION")
                );
                std::io::stdout().flush()?;
                Ok(())
            });
            let down = deploy::down(&name);
            println!("\n{name}: torn down");
            result?;
            down?;
        }
        Cmd::Sg { op } => sg_edit(&name, op)?,
        Cmd::Flows {
            op:
                FlowsOp::Tail {
                    eni,
                    format,
                    from_start,
                    count,
                },
        } => {
            vpc::flowlogs::agent::tail(
                &name,
                eni.as_deref(),
                format.as_deref(),
                from_start,
                count,
                &mut std::io::stdout().lock(),
            )?;
        }
        Cmd::Conntrack {
            op: ConntrackOp::List { json },
        } => {
            use vpc::datapath::Maps;
            let state = State::load(&name)?;
            let mut maps = vpc::datapath::PinnedMaps::open(&state.pin_dir)?;
            let conns = maps.connections()?;
            let rows = vpc::conntrack::rows(
                &conns,
                &state.timeouts,
                maps.datapath_now()?,
                &state.model.enis,
            );
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for c in &rows {
                    println!("{}", vpc::conntrack::line(c));
                }
                eprintln!("{name}: {} flow entries have been shown.", rows.len());
            }
        }
        Cmd::Apply(t) => {
            let (m, label) = load_model(&t, &name)?;
            let gen = deploy::apply(&name, m)?;
            println!("{name}: applied {label} (policy generation {gen})");
        }
        Cmd::Status {
            json: false,
            watch: Some(interval),
        }
        | Cmd::Top { interval } => top(&name, interval)?,
        Cmd::Status { json, .. } => {
            let s = deploy::status(&name)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print_status(&s);
            }
        }
        Cmd::Invoke {
            function,
            env: n,
            payload,
            qualifier,
            cmd,
        } => {
            let f = enc(&function);
            let q = qualifier
                .map(|v| format!("Qualifier={v}"))
                .unwrap_or_default();
            if cmd.is_empty() {
                let r = vpc::api::call(
                    &name,
                    "POST",
                    &format!("/2015-03-31/functions/{f}/invocations?{q}"),
                    payload.as_bytes(),
                )?
                .ok()?;
                std::io::stdout().write_all(&r.body)?;
                println!();
                if let Some(e) = r.header("X-Amz-Function-Error") {
                    bail!("the function failed ({e})");
                }
                return Ok(ExitCode::SUCCESS);
            }
            // The API decides whether the invocation may run (and moves an
            // Inactive function to Pending); the command runs here.
            let c = vpc::api::call(
                &name,
                "POST",
                &format!("/_vpc/functions/{f}/claim?env={n}&{q}"),
                b"",
            )?
            .ok()?
            .json();
            let env: std::collections::BTreeMap<String, String> =
                serde_json::from_value(c["Environment"].clone()).unwrap_or_default();
            return run_in(c["Netns"].as_str().unwrap_or_default(), &env, &cmd);
        }
        Cmd::GetFunction {
            function,
            qualifier,
        } => {
            let q = qualifier
                .map(|q| format!("?Qualifier={}", enc(&q)))
                .unwrap_or_default();
            return print_api(vpc::api::call(
                &name,
                "GET",
                &format!("/2015-03-31/functions/{}{q}", enc(&function)),
                b"",
            )?);
        }
        Cmd::ListFunctions => {
            return print_api(vpc::api::call(&name, "GET", "/2015-03-31/functions", b"")?);
        }
        Cmd::UpdateFunctionConfiguration {
            function,
            subnet_ids,
            security_group_ids,
            ipv6_allowed_for_dual_stack,
        } => {
            let list = |s: &str| -> Vec<String> {
                s.split(',')
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            let body = serde_json::json!({"VpcConfig": {
                "SubnetIds": list(&subnet_ids),
                "SecurityGroupIds": list(&security_group_ids),
                "Ipv6AllowedForDualStack": ipv6_allowed_for_dual_stack,
            }});
            return print_api(vpc::api::call(
                &name,
                "PUT",
                &format!("/2015-03-31/functions/{}/configuration", enc(&function)),
                &serde_json::to_vec(&body)?,
            )?);
        }
        Cmd::DeleteFunction { function } => {
            vpc::api::call(
                &name,
                "DELETE",
                &format!("/2015-03-31/functions/{}", enc(&function)),
                b"",
            )?
            .ok()?;
            println!("{name}: deleted {function}");
        }
        Cmd::PublishVersion { function } => {
            return print_api(vpc::api::call(
                &name,
                "POST",
                &format!("/2015-03-31/functions/{}/versions", enc(&function)),
                b"{}",
            )?);
        }
        Cmd::Ram { op } => {
            let (a, path) = match op {
                RamOp::Associate(a) => (a, "/_vpc/ram/associate-resource-share"),
                RamOp::Disassociate(a) => (a, "/_vpc/ram/disassociate-resource-share"),
            };
            let list = |s: &str| -> Vec<String> {
                s.split(',')
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            let body = serde_json::json!({
                "ResourceShare": a.share,
                "SubnetIds": list(&a.subnet_ids),
                "Principals": list(&a.principals),
            });
            return print_api(vpc::api::call(
                &name,
                "POST",
                path,
                &serde_json::to_vec(&body)?,
            )?);
        }
        Cmd::Clock {
            op: ClockOp::Advance { by },
        } => {
            let body = serde_json::json!({"AdvanceMs": by.as_millis() as u64});
            return print_api(vpc::api::call(
                &name,
                "POST",
                "/_vpc/clock",
                &serde_json::to_vec(&body)?,
            )?);
        }
        Cmd::Exec { resource, cmd } => {
            let state = State::load(&name)?;
            let m = &state.model;
            // Instances, interfaces and the internet's test hosts.
            let ids: Vec<&str> = m
                .hosts
                .iter()
                .map(|h| h.id.as_str())
                .chain(m.internet_hosts.iter().map(|h| h.id.as_str()))
                .collect();
            let host = ids.iter().find(|h| **h == resource).with_context(|| {
                format!(
                    "no instance, network interface or internet host {resource:?} (have: {})",
                    ids.join(", ")
                )
            })?;
            return run_in(
                &vpc::topology::node_netns(&name, host),
                &Default::default(),
                &cmd,
            );
        }
        Cmd::Down => {
            deploy::down(&name)?;
            println!("{name}: down");
        }
        Cmd::Explain {
            from,
            to,
            protocol,
            port,
            template,
        } => return explain(&name, &from, &to, &protocol, port, template),
        Cmd::DefaultTemplate => print!("{}", vpc::DEFAULT_TEMPLATE),
        Cmd::Bench {
            throughput: true,
            samples,
            json,
            in_flight,
            sample_seconds,
            socket_seconds,
            ..
        } => {
            let name = format!("tput{}", std::process::id() % 100_000);
            let opts = vpc::throughput::Options {
                in_flight,
                samples,
                sample_seconds,
                socket_seconds,
            };
            let r = vpc::throughput::run(&name, &opts)?;
            print!("{}", vpc::throughput::table(&r));
            if let Some(p) = json {
                let p = p.with_file_name("throughput.json");
                if let Some(d) = p.parent() {
                    std::fs::create_dir_all(d)?;
                }
                std::fs::write(&p, serde_json::to_vec_pretty(&r)?)?;
                let svg = p.with_file_name("throughput.svg");
                std::fs::write(&svg, vpc::throughput::svg(&r))?;
                println!("\nwritten to {} (plot: {})", p.display(), svg.display());
            }
        }
        Cmd::Bench {
            repeat,
            samples,
            json,
            conntrack_max,
            ..
        } => {
            let r = bench::run(repeat, samples, conntrack_max)?;
            print!("{}", bench::table(&r));
            if let Some(p) = json {
                if let Some(d) = p.parent() {
                    std::fs::create_dir_all(d)?;
                }
                std::fs::write(&p, serde_json::to_vec_pretty(&r)?)?;
                let base = r.cases.first().map(|c| c.ns_median).unwrap_or(0.0);
                let svg = p.with_file_name("rules-curve.svg");
                std::fs::write(&svg, bench::curve_svg(&r.rules_curve, base))?;
                println!("plot: {}", svg.display());
                println!("\nwritten to {}", p.display());
            }
        }
        Cmd::Eni {
            op: EniOp::List { json },
        } => {
            let s = deploy::status(&name)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s.enis)?);
            } else {
                print_enis(&s.enis);
            }
        }
        Cmd::Agent { detach: true } => {
            let child = spawn_agent(&name)?;
            println!("{name}: agent pid {}", child.id());
        }
        Cmd::Agent { detach: false } => {
            let stop = signal_flag()?;
            deploy::agent(&name, &stop, || Ok(()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `vpc explain`: exit 0 when allowed, 3 when denied.
fn explain(
    name: &str,
    from: &str,
    to: &str,
    protocol: &str,
    port: u16,
    template: Option<String>,
) -> Result<ExitCode> {
    let m = match template {
        Some(t) => {
            load_model(
                &TemplateArgs {
                    template: t,
                    parameters: vec![],
                    sg_rules_quota: model::MAX_RULES_PER_DIRECTION,
                    acl_rules_quota: model::MAX_ACL_RULES_PER_DIRECTION,
                },
                name,
            )?
            .0
        }
        None => State::load(name)?.model,
    };
    // A resource stands for its IPv6 address when the other side is one.
    let v6 = [from, to]
        .iter()
        .any(|r| r.parse::<std::net::Ipv6Addr>().is_ok());
    let pick = |ip: std::net::Ipv4Addr, ip6: Option<std::net::Ipv6Addr>, r: &str| {
        if !v6 {
            return Ok(ip.into());
        }
        ip6.map(Into::into)
            .ok_or_else(|| anyhow::anyhow!("{r:?} has no IPv6 address"))
    };
    let addr_of = |r: &str| -> Result<std::net::IpAddr> {
        if let Ok(ip) = r.parse() {
            return Ok(ip);
        }
        if let Some(h) = m.hosts.iter().find(|h| h.id == r) {
            return pick(h.ip, h.ip6, r);
        }
        if let Some(h) = m.internet_hosts.iter().find(|h| h.id == r) {
            return pick(h.ip, h.ip6, r);
        }
        // A function sends from its first environment's ENI; `F.N` names
        // environment N's (the Nth subnet's).
        let (f, n) = match r.rsplit_once('.') {
            Some((f, n)) if n.parse::<usize>().is_ok() => (f, n.parse().unwrap_or(1)),
            _ => (r, 1),
        };
        if let Some(e) = m
            .function(f)
            .and_then(|f| f.envs().get(n.max(1) - 1).and_then(|e| e.eni))
            .and_then(|i| m.enis.iter().find(|e| e.index == i))
        {
            return pick(e.ip, e.ip6, r);
        }
        bail!(
            "{r:?} is no address, instance, network interface, VPC function or internet test host"
        )
    };
    let proto = match model::parse_protocol(
        &serde_json::Value::String(protocol.to_string()),
        "--protocol",
    )? {
        model::Protocol::Number(n) => n,
        model::Protocol::All => bail!("--protocol: name one protocol"),
    };
    let icmp = matches!(proto, 1 | 58);
    let p = vpc::reference::Packet {
        src: addr_of(from)?,
        dst: addr_of(to)?,
        proto,
        port: if icmp { port << 8 } else { port },
    };
    let (verdict, steps) = vpc::reference::explain(&m, &p);
    println!(
        "{from} ({}) -> {to} ({}) protocol {proto} {} {port}",
        p.src,
        p.dst,
        if icmp { "type" } else { "port" }
    );
    for s in steps {
        println!("  {s}");
    }
    match verdict {
        vpc::reference::Verdict::Allow => {
            println!("ALLOW");
            Ok(ExitCode::SUCCESS)
        }
        vpc::reference::Verdict::Deny(reason, why) => {
            println!("DENY {reason}: {why}");
            Ok(ExitCode::from(3))
        }
    }
}

//! What a deployment is doing: `status`, `top`, `conntrack`, `eni`, `flows`.
use std::{sync::atomic::Ordering, time::Duration};

use anyhow::{bail, Result};
use vpc::deploy::{self, State, Status};

use super::{output::print_json, signal_flag, Output};

#[derive(clap::Args)]
pub struct StatusArgs {
    /// Deprecated: `--output json`.
    #[arg(long, hide = true)]
    pub json: bool,
    /// Refresh every this many seconds (as `vpc top`).
    #[arg(long, value_name = "SECONDS")]
    watch: Option<f64>,
}

#[derive(clap::Args)]
pub struct TopArgs {
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
}

#[derive(clap::Subcommand)]
pub enum ConntrackOp {
    /// Original and translated tuples, state, time left, age, packets and
    /// bytes each way, newest first.
    List {
        /// Deprecated: `--output json`.
        #[arg(long, hide = true)]
        json: bool,
    },
}

#[derive(clap::Subcommand)]
pub enum EniOp {
    /// Each Hyperplane ENI: id, addresses, combination, functions,
    /// connections, capacity and occupancy, by group.
    List {
        /// Deprecated: `--output json`.
        #[arg(long, hide = true)]
        json: bool,
        /// One of EC2's DescribeNetworkInterfaces filters besides the ENI
        /// finder's own (`subnet-id=subnet-...`, `description=AWS Lambda
        /// VPC ENI-orders`, `status=available`, `group-id=sg-1,sg-2`);
        /// repeated: all hold.
        #[arg(long = "filter", value_name = "NAME=VALUE[,VALUE]")]
        filters: Vec<String>,
    },
    /// Deletes a network interface by hand, as EC2's DeleteNetworkInterface:
    /// one Lambda left `available`; one in use is refused.
    Delete {
        /// Its id (`eni-...`).
        id: String,
    },
}

#[derive(clap::Subcommand)]
pub enum FlowsOp {
    /// Prints flow-log records as the agent writes them (`--output json`:
    /// each record's journal entry, one JSON object a line).
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

/// `vpc status`: once, or (`--watch`, not with JSON) as `vpc top`.
pub fn status(name: &str, a: &StatusArgs, out: Output) -> Result<()> {
    match (out.or_json(a.json), a.watch) {
        (Output::Table, Some(interval)) => top(name, interval, Output::Table),
        (Output::Json, _) => print_json(&deploy::status(name)?),
        (Output::Table, None) => {
            print_status(&deploy::status(name)?);
            Ok(())
        }
    }
}

/// `vpc top`: the status, redrawn every `interval` seconds, with packet
/// rates since the last refresh, until Ctrl-C.
pub fn top(name: &str, interval: f64, out: Output) -> Result<()> {
    if out.is_json() {
        bail!("vpc top draws a screen: `vpc status --output json` prints the status as JSON");
    }
    let stop = signal_flag()?;
    let every = Duration::from_secs_f64(interval.max(0.1));
    let mut last: Option<(std::time::Instant, deploy::Status)> = None;
    while !stop.load(Ordering::Relaxed) {
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
        while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// `vpc conntrack list`.
pub fn conntrack(name: &str, op: ConntrackOp, out: Output) -> Result<()> {
    let ConntrackOp::List { json } = op;
    use vpc::datapath::Maps;
    let state = State::load(name)?;
    let mut maps = vpc::datapath::PinnedMaps::open(&state.pin_dir)?;
    let conns = maps.connections()?;
    let rows = vpc::conntrack::rows(&conns, &state.timeouts, maps.datapath_now()?, &state.model);
    if out.or_json(json).is_json() {
        print_json(&rows)?;
    } else {
        for c in &rows {
            println!("{}", vpc::conntrack::line(c));
        }
        eprintln!("{name}: {} flow entries have been shown.", rows.len());
    }
    Ok(())
}

/// `vpc eni list`.
pub fn eni(name: &str, op: EniOp, out: Output) -> Result<()> {
    let (json, filters) = match op {
        EniOp::List { json, filters } => (json, filters),
        EniOp::Delete { id } => {
            match vpc::reconcile::delete_network_interface(name, &id)? {
                Ok(e) => println!("deleted {} ({}, subnet {})", e.id, e.ip, e.subnet),
                Err(e) => anyhow::bail!("{e}"),
            }
            return Ok(());
        }
    };
    let mut s = deploy::status(name)?;
    // Which interfaces, and their status: EC2's answer.
    let listed = super::eni::described(name, &filters)?;
    s.enis.retain(|e| listed.iter().any(|(id, _)| *id == e.id));
    for e in &mut s.enis {
        if let Some((_, status)) = listed.iter().find(|(id, _)| *id == e.id) {
            e.status = status.clone();
        }
    }
    if out.or_json(json).is_json() {
        print_json(&s.enis)
    } else {
        print_enis(&s.enis);
        Ok(())
    }
}

/// `vpc flows tail`.
pub fn flows(name: &str, op: FlowsOp, out: Output) -> Result<()> {
    let FlowsOp::Tail {
        eni,
        format,
        from_start,
        count,
    } = op;
    vpc::flowlogs::agent::tail(
        name,
        eni.as_deref(),
        format.as_deref(),
        out.is_json(),
        from_start,
        count,
        &mut std::io::stdout().lock(),
    )
}

/// ` + 2001:db8::4` after an IPv4 address, for a dual-stack interface.
fn v6_suffix(a: &Option<String>) -> String {
    a.as_ref().map(|a| format!(" + {a}")).unwrap_or_default()
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
            if e.status == "available" {
                "  available: Lambda could not delete it (its function's role was deleted first); `vpc eni delete` it".to_string()
            } else if e.scaled {
                format!("  added to the group of {}", e.group)
            } else {
                String::new()
            }
        );
    }
}

/// A host of a cluster: the members, where each resource runs, the
/// host's NAT port slices.
fn print_cluster(c: &vpc::deploy::ClusterView) {
    println!(
        "cluster {}  host {} (underlay {})  desired-state revision {}  NAT port slices {:?}",
        c.cluster, c.host, c.underlay, c.revision, c.slices
    );
    let members: Vec<String> = c.members.iter().map(|(h, a)| format!("{h} {a}")).collect();
    println!("  hosts: {}", members.join(", "));
    let mut by_host: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (id, h) in &c.placement {
        by_host.entry(h.as_str()).or_default().push(id);
    }
    for (h, ids) in by_host {
        let live = if c.members.contains_key(h) {
            ""
        } else {
            " (gone)"
        };
        println!("  on {h}{live}: {}", ids.join(", "));
    }
}

pub fn print_status(s: &Status) {
    println!(
        "deployment {}  template {}  router hooks: {}",
        s.name, s.template, s.attach_mode
    );
    if let Some(c) = &s.cluster {
        print_cluster(c);
    }
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
        "\nINTERFACES (conntrack allowance {})  {}",
        match s.conntrack_allowance {
            0 => "none".to_string(),
            n => format!("{n} each"),
        },
        s.interfaces
            .iter()
            .filter(|c| c.forwarded + c.dropped > 0 || c.allowances.connections != 0)
            .map(|c| {
                let who = if c.eni.is_empty() { &c.node } else { &c.eni };
                let a = &c.allowances;
                let mut line = format!("{who} {} fwd {} drop", c.forwarded, c.dropped);
                if a.connections != 0 {
                    line += &format!(" {} conns", a.connections);
                }
                for (n, what) in [
                    (
                        a.conntrack_allowance_exceeded,
                        "conntrack_allowance_exceeded",
                    ),
                    (
                        a.linklocal_allowance_exceeded,
                        "linklocal_allowance_exceeded",
                    ),
                ] {
                    if n > 0 {
                        line += &format!(" {n} {what}");
                    }
                }
                line
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
    if !s.stacks.is_empty() {
        println!("\nSTACKS");
        for st in &s.stacks {
            println!(
                "  {:<28} {}{}",
                st.name,
                st.status,
                st.reason
                    .as_ref()
                    .map(|r| format!("  ({r})"))
                    .unwrap_or_default()
            );
        }
    }
    if !s.outputs.is_empty() {
        println!("\nOUTPUTS");
        for o in &s.outputs {
            println!(
                "  {:<28} {}{}",
                o.key,
                o.value,
                o.export_name
                    .as_ref()
                    .map(|e| format!("  (export {e})"))
                    .unwrap_or_default()
            );
        }
    }
    if !s.stack_resources.is_empty() {
        println!(
            "\nSTACK RESOURCES (kept, no network): {}",
            s.stack_resources
                .iter()
                .map(|r| format!("{} ({})", r.logical_id, r.resource_type))
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
        // The console needs a browser, so TCP (`--api-addr`).
        if let Some(u) = &s.api_url {
            println!("CONSOLE  {u}/console");
        }
    }
    if !s.agent_running {
        println!("\nwarning: the agent is not running");
    }
    if s.reconcile_pending {
        println!("\nwarning: a change is not yet reconciled (the agent finishes it)");
    }
}

//! `vpc bench`: ns per packet through BPF_PROG_TEST_RUN, or real frames
//! through real veths (`--throughput`).
use std::path::PathBuf;

use anyhow::Result;
use vpc::bench;

use super::{
    output::{print_json, write_json},
    Output,
};

#[derive(clap::Args)]
pub struct BenchArgs {
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
    /// Invocations through the Lambda Runtime API instead: cold start,
    /// warm latency and invocations per second per runtime (JSON:
    /// invoke.json next to --json).
    #[arg(long)]
    invoke: bool,
    /// With --invoke: cold starts per runtime.
    #[arg(long, default_value_t = 10)]
    cold: usize,
    /// With --invoke: warm invocations per runtime.
    #[arg(long, default_value_t = 200)]
    warm: usize,
    /// With --invoke: seconds of each invocations-per-second run.
    #[arg(long, default_value_t = 3.0)]
    invoke_seconds: f64,
    /// One VPC over three hosts on this machine, with an etcd of its own:
    /// a function's traffic to a database on its host and on another (the
    /// socket measurements of --throughput, --socket-seconds each), and the
    /// hosts' convergence on --functions more functions (JSON:
    /// cluster.json next to --json).
    #[arg(long)]
    cluster: bool,
    /// With --cluster: functions applied through one host.
    #[arg(long, default_value_t = 1000)]
    functions: usize,
}

/// Writes `v` as `file` in --json's directory, if --json is given.
fn write_beside(
    json: &Option<PathBuf>,
    file: &str,
    v: &impl serde::Serialize,
) -> Result<Option<PathBuf>> {
    let Some(p) = json else {
        return Ok(None);
    };
    let p = p.with_file_name(file);
    write_json(&p, v)?;
    Ok(Some(p))
}

/// The results as a table, or (`--output json`) as the JSON `--json`
/// writes; where files went, on stdout, or on stderr with JSON.
pub fn bench(a: &BenchArgs, out: Output) -> Result<()> {
    let note = |s: String| {
        if out.is_json() {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    };
    if a.invoke {
        let name = format!("inv{}", std::process::id() % 100_000);
        let opts = bench::invoke::Options {
            cold: a.cold,
            warm: a.warm,
            seconds: a.invoke_seconds,
        };
        let r = bench::invoke::run(&name, &opts)?;
        if out.is_json() {
            print_json(&r)?;
        } else {
            print!("{}", bench::invoke::table(&r));
        }
        if let Some(p) = write_beside(&a.json, "invoke.json", &r)? {
            note(format!("\nwritten to {}", p.display()));
        }
        return Ok(());
    }
    if a.cluster {
        let prefix = format!("cb{}", std::process::id() % 100_000);
        let r = vpc::throughput::cluster::run(&prefix, a.socket_seconds, a.functions)?;
        if out.is_json() {
            print_json(&r)?;
        } else {
            print!("{}", vpc::throughput::cluster::table(&r));
        }
        if let Some(p) = write_beside(&a.json, "cluster.json", &r)? {
            note(format!("\nwritten to {}", p.display()));
        }
        return Ok(());
    }
    if a.throughput {
        let name = format!("tput{}", std::process::id() % 100_000);
        let opts = vpc::throughput::Options {
            in_flight: a.in_flight,
            samples: a.samples,
            sample_seconds: a.sample_seconds,
            socket_seconds: a.socket_seconds,
        };
        let r = vpc::throughput::run(&name, &opts)?;
        if out.is_json() {
            print_json(&r)?;
        } else {
            print!("{}", vpc::throughput::table(&r));
        }
        if let Some(p) = write_beside(&a.json, "throughput.json", &r)? {
            let svg = p.with_file_name("throughput.svg");
            std::fs::write(&svg, vpc::throughput::svg(&r))?;
            note(format!(
                "\nwritten to {} (plot: {})",
                p.display(),
                svg.display()
            ));
        }
        return Ok(());
    }
    let r = bench::run(a.repeat, a.samples, a.conntrack_max)?;
    if out.is_json() {
        print_json(&r)?;
    } else {
        print!("{}", bench::table(&r));
    }
    if let Some(p) = &a.json {
        write_json(p, &r)?;
        let base = r.cases.first().map(|c| c.ns_median).unwrap_or(0.0);
        let svg = p.with_file_name("rules-curve.svg");
        std::fs::write(&svg, bench::curve_svg(&r.rules_curve, base))?;
        note(format!("plot: {}", svg.display()));
        let parts = bench::breakdown(&r);
        if !parts.is_empty() {
            let svg = p.with_file_name("breakdown.svg");
            std::fs::write(&svg, bench::breakdown_svg(&parts))?;
            note(format!("plot: {}", svg.display()));
        }
        note(format!("\nwritten to {}", p.display()));
    }
    Ok(())
}

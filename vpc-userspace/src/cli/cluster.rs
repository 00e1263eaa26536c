//! `vpc cluster`: the cluster store on etcd (one VPC across hosts).
use std::path::PathBuf;

use anyhow::Result;
use vpc::cluster::simulate;

use super::{output::print_json, Output};

#[derive(clap::Subcommand)]
pub enum ClusterOp {
    /// N agents without datapaths against one etcd, in this process (each
    /// a member with a lease and a watch), and a writer creating the
    /// functions in batches: keys and bytes in etcd, watch events per agent
    /// and in total, the time until every agent has the last revision, the
    /// map entries per host. The etcd needs `--max-txn-ops` above
    /// `--batch` (e.g. `etcd --max-txn-ops 20000 --max-request-bytes
    /// 33554432`); the run deletes its keys after.
    Simulate(SimulateArgs),
}

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// etcd's client URL (repeat for several).
    #[arg(long, required = true)]
    etcd: Vec<String>,
    #[arg(long, default_value_t = 100)]
    hosts: usize,
    #[arg(long, default_value_t = 100_000)]
    functions: usize,
    /// Functions per write (one transaction each).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// The VPC's instances and interfaces (a stand-in on every host).
    #[arg(long, default_value_t = 100)]
    instances: usize,
    /// Subnets of every function.
    #[arg(long, default_value_t = 2)]
    subnets: usize,
    /// Distinct security-group sets (an ENI per subnet and set).
    #[arg(long, default_value_t = 10)]
    group_sets: usize,
    /// Write the report as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn cluster(op: ClusterOp, out: Output) -> Result<()> {
    match op {
        ClusterOp::Simulate(a) => {
            let r = simulate::run(&simulate::Options {
                etcd: a.etcd,
                hosts: a.hosts,
                functions: a.functions,
                batch: a.batch,
                instances: a.instances,
                subnets: a.subnets,
                group_sets: a.group_sets,
            })?;
            if out.is_json() {
                print_json(&r)?;
            } else {
                print!("{}", simulate::table(&r));
            }
            if let Some(p) = &a.json {
                if let Some(d) = p.parent() {
                    std::fs::create_dir_all(d)?;
                }
                std::fs::write(p, serde_json::to_vec_pretty(&r)?)?;
            }
        }
    }
    Ok(())
}

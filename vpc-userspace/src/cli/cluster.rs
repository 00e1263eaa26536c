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
    /// One VPC over three hosts on this machine (docs/multi-host.md): an
    /// etcd of its own, deployments h1, h2 and h3 of the multi-host
    /// template (vpc-userspace/templates/multi_host.yaml) joined by a VXLAN
    /// overlay; Enter or Ctrl-C tears all of it down.
    Demo,
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

/// `vpc cluster demo`.
fn demo() -> Result<()> {
    use vpc::cluster::local::{LocalEtcd, LocalHosts};
    let stop = super::signal_flag()?;
    let etcd = LocalEtcd::start()?;
    let dir = std::env::temp_dir().join(format!("vpc-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let template = dir.join("multi_host.yaml");
    std::fs::write(&template, vpc::MULTI_HOST_TEMPLATE)?;
    let mut hosts = LocalHosts::new(&etcd, "demo", "");
    let r = (|| -> Result<()> {
        for k in 1..=3 {
            let name = hosts.up(k, (k == 1).then_some(template.as_path()), &[])?;
            println!("{name}: up (etcd {})", etcd.url());
        }
        super::status::print_status(&vpc::deploy::status("h1")?);
        println!(
            "\ntry:\n  vpc --name h2 exec Db -- sh -c 'nc -lk 5432 > /dev/null &'\n  vpc --name h1 invoke FnA -- sh -c 'echo hi | nc -q1 -w2 10.0.2.10 5432'   # h1 to h2, through the ENI\n  vpc --name h3 invoke FnC -- nc -z -w1 10.0.2.10 22   # refused by DbSg, judged on h3\n  vpc --name h2 status\n\nEnter (or Ctrl-C) tears the cluster down"
        );
        // Enter, or a signal (the flag, polled while stdin waits).
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_line(&mut String::new());
            let _ = tx.send(());
        });
        while rx
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_err()
            && !stop.load(std::sync::atomic::Ordering::Relaxed)
        {}
        Ok(())
    })();
    drop(hosts);
    drop(etcd);
    let _ = std::fs::remove_dir_all(&dir);
    println!("the cluster is torn down");
    r
}

pub fn cluster(op: ClusterOp, out: Output) -> Result<()> {
    match op {
        ClusterOp::Demo => demo()?,
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
                super::output::write_json(p, &r)?;
            }
        }
    }
    Ok(())
}

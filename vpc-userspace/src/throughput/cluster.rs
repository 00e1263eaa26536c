//! `vpc bench --cluster`: one VPC over three hosts on this machine, with an
//! etcd of its own (docs/multi-host.md). Measured in one run: a function's
//! traffic to a database on its own host and on another host (iperf3,
//! request/response, new connections: the same socket measurements as
//! `--throughput`), and how long the three hosts take to converge on a
//! template of N more functions applied through one of them.
use std::{
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::sockets::{self, Pair, SocketResult};
use crate::{
    cluster::local::{LocalEtcd, LocalHosts},
    deploy, topology,
};

const HOSTS: [&str; 3] = ["h1", "h2", "h3"];
const PORT: u16 = 5201;

/// The bench's VPC: the function and one database on h1, another on h2.
fn template(functions: usize) -> String {
    let mut t = String::from(
        r#"Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  Subnet: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.0.0/17}}
  FnSg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: fn, VpcId: !Ref Vpc}}
  DbSg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: db
      VpcId: !Ref Vpc
      SecurityGroupIngress:
        - {IpProtocol: tcp, FromPort: 5201, ToPort: 5201, SourceSecurityGroupId: !Ref FnSg}
        - {IpProtocol: udp, FromPort: 5201, ToPort: 5201, SourceSecurityGroupId: !Ref FnSg}
  Here:
    Type: AWS::EC2::Instance
    Metadata: {Vpc::Host: h1}
    Properties: {SubnetId: !Ref Subnet, PrivateIpAddress: 10.0.1.10, SecurityGroupIds: [!Ref DbSg]}
  There:
    Type: AWS::EC2::Instance
    Metadata: {Vpc::Host: h2}
    Properties: {SubnetId: !Ref Subnet, PrivateIpAddress: 10.0.1.11, SecurityGroupIds: [!Ref DbSg]}
  Fn:
    Type: AWS::Lambda::Function
    Metadata: {Vpc::Host: h1}
    Properties:
      VpcConfig: {SubnetIds: [!Ref Subnet], SecurityGroupIds: [!Ref FnSg]}
"#,
    );
    for i in 0..functions {
        t += &format!(
            "  F{i}:\n    Type: AWS::Lambda::Function\n    Properties:\n      VpcConfig: {{SubnetIds: [!Ref Subnet], SecurityGroupIds: [!Ref FnSg]}}\n"
        );
    }
    t
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    pub same_host: SocketResult,
    pub cross_host: SocketResult,
    pub convergence: Convergence,
}

#[derive(Debug, Clone, Serialize)]
pub struct Convergence {
    pub functions: usize,
    pub hosts: usize,
    /// `vpc apply` through h1, until it returned (the desired state written
    /// to etcd, h1's own part built).
    pub apply_seconds: f64,
    /// Until every host ran the new revision with every function Active.
    pub converged_seconds: f64,
    /// Each host's own execution environments and its stand-ins.
    pub per_host: Vec<HostShare>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostShare {
    pub host: String,
    pub own_nodes: usize,
    pub stand_ins: usize,
}

/// The run: two hosts for the sockets, the third joins, then `functions`
/// more functions applied through h1.
pub fn run(prefix: &str, secs: u64, functions: usize) -> Result<ClusterReport> {
    let etcd = LocalEtcd::start()?;
    let dir = std::env::temp_dir().join(format!("{prefix}-bench"));
    std::fs::create_dir_all(&dir)?;
    let first = dir.join("template.yaml");
    std::fs::write(&first, template(0))?;
    let mut hosts = LocalHosts::new(&etcd, prefix, prefix);
    let quiet = ["--eni-delay", "0s", "--metrics-addr", "off"];
    hosts.up(1, Some(&first), &quiet)?;
    hosts.up(2, None, &quiet)?;
    let h1 = hosts.name("h1");
    let client = topology::exec_env_netns(&h1, "Fn", 1);
    let pair = |server_ns: String, ip: &str| (server_ns, ip.parse().expect("address"));
    let (here_ns, here_ip) = pair(topology::node_netns(&h1, "Here"), "10.0.1.10");
    let (there_ns, there_ip) = pair(
        topology::node_netns(&hosts.name("h2"), "There"),
        "10.0.1.11",
    );
    let nothing = || Ok(Default::default());
    let none: super::connections::Probe = &nothing;
    let same_host = Pair {
        client_ns: &client,
        server_ns: &here_ns,
        server: here_ip,
        port: PORT,
    };
    let across = Pair {
        server_ns: &there_ns,
        server: there_ip,
        ..same_host
    };
    let same_host = sockets::measure("same host", &same_host, secs, none)?;
    let cross_host = sockets::measure("across hosts", &across, secs, none)?;
    hosts.up(3, None, &quiet)?;
    // The functions, spread by the cluster, through h1.
    let more = dir.join("more.yaml");
    std::fs::write(&more, template(functions))?;
    let asked = Instant::now();
    let out = Command::new(std::env::current_exe()?)
        .args(["--name", &h1, "apply"])
        .arg(&more)
        .output()?;
    if !out.status.success() {
        bail!("vpc apply: {}", String::from_utf8_lossy(&out.stderr));
    }
    let apply_seconds = asked.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(600);
    let names: Vec<String> = HOSTS.iter().map(|h| hosts.name(h)).collect();
    let converged = loop {
        let statuses: Vec<deploy::Status> = names
            .iter()
            .map(|n| deploy::status(n))
            .collect::<Result<_>>()?;
        let rev = |s: &deploy::Status| s.cluster.as_ref().map_or(0, |c| c.revision);
        let done = statuses.iter().all(|s| {
            rev(s) == rev(&statuses[0])
                && !s.reconcile_pending
                && s.functions.len() == functions + 1
                && s.functions.iter().all(|f| f.state == "Active")
        });
        if done {
            break asked.elapsed().as_secs_f64();
        }
        if Instant::now() > deadline {
            bail!("the hosts did not converge within 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let per_host = names
        .iter()
        .zip(HOSTS)
        .map(|(n, h)| {
            let s = crate::state::State::load(n)?;
            Ok(HostShare {
                host: h.to_string(),
                own_nodes: s.nodes.len(),
                stand_ins: s.cluster.as_ref().map_or(0, |c| c.remote.len()),
            })
        })
        .collect::<Result<_>>()
        .context("the hosts' shares")?;
    let _ = std::fs::remove_dir_all(&dir);
    drop(hosts);
    Ok(ClusterReport {
        same_host,
        cross_host,
        convergence: Convergence {
            functions,
            hosts: HOSTS.len(),
            apply_seconds,
            converged_seconds: converged,
            per_host,
        },
    })
}

/// The report as a table: each measurement on one host and across hosts,
/// their ratio, and the convergence.
pub fn table(r: &ClusterReport) -> String {
    let (a, b) = (&r.same_host, &r.cross_host);
    let row = |what: &str, x: f64, y: f64, unit: &str| {
        format!(
            "| {what} | {x:.1} {unit} | {y:.1} {unit} | {:.2} |\n",
            y / x
        )
    };
    let mut s = String::from(
        "One VPC over three hosts (same run): a function's traffic to a database on its host and on another\n\n| measurement | same host | across hosts | across / same |\n|---|---:|---:|---:|\n",
    );
    s += &row(
        "bulk TCP, 1 stream",
        a.gbps_1_stream,
        b.gbps_1_stream,
        "Gbit/s",
    );
    s += &row(
        "bulk TCP, 4 streams",
        a.gbps_4_streams,
        b.gbps_4_streams,
        "Gbit/s",
    );
    s += &row(
        "64-byte UDP received",
        a.udp64_kpps_received,
        b.udp64_kpps_received,
        "kpps",
    );
    s += &row("request/response p50", a.rr_p50_us, b.rr_p50_us, "us");
    s += &row("request/response p99", a.rr_p99_us, b.rr_p99_us, "us");
    s += &row(
        "new connections",
        a.connections_per_second,
        b.connections_per_second,
        "/s",
    );
    let c = &r.convergence;
    s += &format!(
        "\n{} functions applied through h1 over {} hosts: apply returned in {:.1} s, every host converged (every function Active) in {:.1} s\n",
        c.functions, c.hosts, c.apply_seconds, c.converged_seconds
    );
    for h in &c.per_host {
        s += &format!(
            "  {}: {} own nodes, {} stand-ins\n",
            h.host, h.own_nodes, h.stand_ins
        );
    }
    s
}

//! `vpc bench --invoke`: what an invocation costs through the real Lambda
//! Runtime API, per runtime (python3.11 through awslambdaric, nodejs20.x
//! through aws-lambda-ric), on a deployment of its own with a running
//! agent: the cold start (a configuration change makes the next invocation
//! start a new runtime process: process start, init, first event), the
//! warm invocation's latency (median and p99), and invocations per second
//! with 1 and 8 callers. Every call goes as a client's does, over the
//! agent's API socket. The functions have no `VpcConfig`: the invocation
//! path (API, agent, Runtime API on the environment's loopback) is the same
//! with one, and the datapath has its own bench.
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::{deploy, lambda::api, model};

/// The functions (each returns its event), and a VPC (a deployment has one).
const TEMPLATE: &str = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  Py:
    Type: AWS::Lambda::Function
    Properties:
      FunctionName: py
      Runtime: python3.11
      Handler: index.handler
      Code: {ZipFile: "def handler(event, context):\n    return event\n"}
  Node:
    Type: AWS::Lambda::Function
    Properties:
      FunctionName: node
      Runtime: nodejs20.x
      Handler: index.handler
      Code: {ZipFile: "exports.handler = async (event) => event;\n"}
"#;

/// How much to measure.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Cold starts per runtime.
    pub cold: usize,
    /// Warm invocations per runtime (one caller, one after the other).
    pub warm: usize,
    /// Seconds of each invocations-per-second run.
    pub seconds: f64,
}

/// One runtime's figures.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeResult {
    pub runtime: String,
    pub cold_ms_median: f64,
    pub cold_ms_p99: f64,
    pub warm_ms_median: f64,
    pub warm_ms_p99: f64,
    /// Invocations per second: one caller, then 8 at once (one execution
    /// environment per function here: the 8 take turns).
    pub per_second_1: f64,
    pub per_second_8: f64,
}

/// A deployment with its agent, torn down however the run ends.
struct Bed {
    name: String,
    agent: std::process::Child,
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = self.agent.kill();
        let _ = self.agent.wait();
        let _ = deploy::down(&self.name);
    }
}

impl Bed {
    fn up(name: &str) -> Result<Self> {
        let m = model::build(TEMPLATE, &HashMap::new(), name).map_err(anyhow::Error::msg)?;
        let opts = deploy::UpOptions {
            hooks: Default::default(),
            metrics_addr: None,
            name: name.to_string(),
            template_label: "invoke bench".into(),
            timeouts: Default::default(),
            eni_delay: Duration::ZERO,
            quotas: Default::default(),
            eni_scaling: Default::default(),
            conntrack_max: vpc_common::CT_MAX_ENTRIES,
            conntrack_allowance: deploy::default_conntrack_allowance(vpc_common::CT_MAX_ENTRIES),
            nat_gateway_capacity: vpc_common::NAT_GATEWAY_CAPACITY,
            lifecycle: Default::default(),
            flow_logs: Default::default(),
            stacks: vec![],
            no_default_vpc: true,
            cluster: None,
        };
        deploy::up(m, &opts)?;
        let agent = std::process::Command::new(std::env::current_exe()?)
            .args(["--name", name, "agent"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let agent = match agent {
            Ok(a) => a,
            Err(e) => {
                let _ = deploy::down(name);
                return Err(e).context("starting the agent");
            }
        };
        let bed = Self {
            name: name.to_string(),
            agent,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while api::call(name, "GET", "/2015-03-31/functions", b"").is_err() {
            if Instant::now() > deadline {
                bail!("the bench's agent did not answer");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(bed)
    }

    /// One invocation; its latency.
    fn invoke(&self, function: &str) -> Result<Duration> {
        invoke(&self.name, function)
    }
}

fn invoke(name: &str, function: &str) -> Result<Duration> {
    let t = Instant::now();
    let r = api::call(
        name,
        "POST",
        &format!("/2015-03-31/functions/{function}/invocations"),
        br#"{"bench": true}"#,
    )?;
    let took = t.elapsed();
    if r.status != 200 || r.header("X-Amz-Function-Error").is_some() {
        bail!(
            "{function}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    Ok(took)
}

/// (median, p99) in milliseconds.
fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| {
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    (at(0.5), at(0.99))
}

/// Invocations per second of `callers` threads invoking for `seconds`.
fn rate(name: &str, function: &str, callers: usize, seconds: f64) -> Result<f64> {
    let t = Instant::now();
    let until = t + Duration::from_secs_f64(seconds);
    let counts: Vec<Result<usize>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..callers)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0;
                    while Instant::now() < until {
                        invoke(name, function)?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("a caller panicked")))
            .collect()
    });
    let mut total = 0;
    for c in counts {
        total += c?;
    }
    Ok(total as f64 / t.elapsed().as_secs_f64())
}

/// Runs the bench on a deployment named `name` (its own; torn down after).
pub fn run(name: &str, o: &Options) -> Result<Vec<RuntimeResult>> {
    let bed = Bed::up(name)?;
    let mut out = vec![];
    for (function, runtime) in [("py", "python3.11"), ("node", "nodejs20.x")] {
        let mut cold = vec![];
        for i in 0..o.cold {
            // A new configuration: the next invocation starts cold.
            let body = format!(r#"{{"Environment": {{"Variables": {{"COLD": "{i}"}}}}}}"#);
            let path = format!("/2015-03-31/functions/{function}/configuration");
            let r = api::call(name, "PUT", &path, body.as_bytes())?;
            if r.status != 200 {
                bail!("{function}: updating: {}", String::from_utf8_lossy(&r.body));
            }
            cold.push(bed.invoke(function)?);
        }
        let mut warm = vec![];
        for _ in 0..o.warm {
            warm.push(bed.invoke(function)?);
        }
        let (cold_ms_median, cold_ms_p99) = percentiles(cold);
        let (warm_ms_median, warm_ms_p99) = percentiles(warm);
        out.push(RuntimeResult {
            runtime: runtime.into(),
            cold_ms_median,
            cold_ms_p99,
            warm_ms_median,
            warm_ms_p99,
            per_second_1: rate(name, function, 1, o.seconds)?,
            per_second_8: rate(name, function, 8, o.seconds)?,
        });
    }
    Ok(out)
}

/// The results as a table.
pub fn table(r: &[RuntimeResult]) -> String {
    let mut s = String::from(
        "| runtime | cold start ms (median / p99) | warm invoke ms (median / p99) | invocations/s, 1 caller | 8 callers |\n|---|---:|---:|---:|---:|\n",
    );
    for x in r {
        s += &format!(
            "| {} | {:.1} / {:.1} | {:.2} / {:.2} | {:.0} | {:.0} |\n",
            x.runtime,
            x.cold_ms_median,
            x.cold_ms_p99,
            x.warm_ms_median,
            x.warm_ms_p99,
            x.per_second_1,
            x.per_second_8
        );
    }
    s
}

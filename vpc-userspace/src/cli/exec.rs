//! `vpc exec`: a command in the namespace of an instance, a network
//! interface or an internet test host.
use std::{
    collections::BTreeMap,
    process::{Command, ExitCode},
};

use anyhow::{Context, Result};
use vpc::deploy::State;

#[derive(clap::Args)]
pub struct ExecArgs {
    resource: String,
    #[arg(last = true, required = true)]
    cmd: Vec<String>,
}

pub fn exec(name: &str, a: &ExecArgs) -> Result<ExitCode> {
    let state = State::load(name)?;
    let m = &state.model;
    // Instances, interfaces and the internet's test hosts.
    let ids: Vec<&str> = m
        .hosts
        .iter()
        .map(|h| h.id.as_str())
        .chain(m.internet_hosts.iter().map(|h| h.id.as_str()))
        .collect();
    let host = ids.iter().find(|h| **h == a.resource).with_context(|| {
        format!(
            "no instance, network interface or internet host {:?} (have: {})",
            a.resource,
            ids.join(", ")
        )
    })?;
    run_in(
        &vpc::topology::node_netns(name, host),
        &Default::default(),
        &a.cmd,
    )
}

/// Runs `cmd` inside namespace `ns`, with `env`, and returns its exit code.
pub fn run_in(ns: &str, env: &BTreeMap<String, String>, cmd: &[String]) -> Result<ExitCode> {
    let status = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .envs(env)
        .status()
        .context("running ip netns exec")?;
    Ok(ExitCode::from(status.code().unwrap_or(128) as u8))
}

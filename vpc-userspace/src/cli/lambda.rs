//! The Lambda API's client commands (`invoke`, `get-function`,
//! `list-functions`, `update-function-configuration`, `delete-function`,
//! `publish-version`) and the deployment's own (`clock`, `ram`).
use std::{io::Write as _, process::ExitCode, time::Duration};

use anyhow::{bail, Result};
use serde_json::Value;

use super::{
    exec::run_in,
    output::{print_fields, print_json, scalar},
    parse_duration, Output,
};

#[derive(clap::Args)]
pub struct InvokeArgs {
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
    /// Invoke's InvocationType: RequestResponse (wait for the answer),
    /// Event (asynchronous: accepted at once), DryRun (the checks only).
    #[arg(long, default_value = "RequestResponse")]
    invocation_type: String,
    /// Tail: print the last 4 KB of the invocation's log to stderr.
    #[arg(long, default_value = "None")]
    log_type: String,
    #[arg(last = true)]
    cmd: Vec<String>,
}

#[derive(clap::Args)]
pub struct GetFunctionArgs {
    function: String,
    #[arg(long)]
    qualifier: Option<String>,
}

#[derive(clap::Args)]
pub struct UpdateArgs {
    function: String,
    /// Comma-separated; empty (with no groups) removes the VpcConfig.
    #[arg(long, default_value = "")]
    subnet_ids: String,
    #[arg(long, default_value = "")]
    security_group_ids: String,
    #[arg(long)]
    ipv6_allowed_for_dual_stack: bool,
}

#[derive(clap::Subcommand)]
pub enum RamOp {
    Associate(ShareArgs),
    Disassociate(ShareArgs),
}

#[derive(clap::Args)]
pub struct ShareArgs {
    /// The share's Name or logical id.
    share: String,
    /// Comma-separated subnet ids.
    #[arg(long, default_value = "")]
    subnet_ids: String,
    /// Comma-separated account ids.
    #[arg(long, default_value = "")]
    principals: String,
}

#[derive(clap::Subcommand)]
pub enum ClockOp {
    Advance {
        #[arg(value_parser = parse_duration)]
        by: Duration,
    },
}

/// Percent-encodes a path segment or query value.
pub(super) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A comma-separated list.
fn list(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// Prints an API answer: its JSON (pretty), or `table`'s view of it; an
/// error answer is the command's error.
fn print_api(r: vpc::api::Response, out: Output, table: fn(&Value)) -> Result<ExitCode> {
    let r = r.ok()?;
    if !r.body.is_empty() {
        let v = r.json();
        match out {
            Output::Json => print_json(&v)?,
            Output::Table => table(&v),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// GetFunction's answer: its configuration, and its reserved concurrency
/// when it has one (`--output json` has `Code.Location` too).
fn function_table(v: &Value) {
    let mut c = v.get("Configuration").unwrap_or(v).clone();
    if let (Some(o), Some(n)) = (
        c.as_object_mut(),
        v.pointer("/Concurrency/ReservedConcurrentExecutions"),
    ) {
        o.insert("ReservedConcurrentExecutions".into(), n.clone());
    }
    print_fields(&c);
}

/// ListFunctions' answer: a function a line.
fn functions_table(v: &Value) {
    let fs = v["Functions"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let rows: Vec<[String; 6]> = fs
        .iter()
        .map(|f| {
            let vc = &f["VpcConfig"];
            [
                scalar(&f["FunctionName"]),
                scalar(&f["State"]),
                scalar(&f["StateReasonCode"]),
                scalar(&f["LastUpdateStatus"]),
                scalar(&vc["SubnetIds"]),
                scalar(&vc["SecurityGroupIds"]),
            ]
        })
        .collect();
    let head = [
        "FUNCTION",
        "STATE",
        "REASON",
        "LAST UPDATE",
        "SUBNETS",
        "SECURITY GROUPS",
    ];
    let mut width = head.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(width).enumerate() {
            if i + 1 == cells.len() {
                l += c;
            } else {
                l += &format!("{c:<w$}  ");
            }
        }
        println!("{l}");
    };
    line(head);
    for r in &rows {
        line(r.each_ref().map(String::as_str));
    }
}

/// `vpc invoke`: the handler with a payload, or `-- CMD` in the function's
/// execution environment once the API allows the invocation.
pub fn invoke(name: &str, a: InvokeArgs) -> Result<ExitCode> {
    let f = enc(&a.function);
    let q = a
        .qualifier
        .map(|v| format!("Qualifier={v}"))
        .unwrap_or_default();
    if a.cmd.is_empty() {
        let r = vpc::api::call_with(
            name,
            "POST",
            &format!("/2015-03-31/functions/{f}/invocations?{q}"),
            &[
                ("X-Amz-Invocation-Type", &a.invocation_type),
                ("X-Amz-Log-Type", &a.log_type),
            ],
            a.payload.as_bytes(),
        )?
        .ok()?;
        if let Some(log) = r.header("X-Amz-Log-Result") {
            use base64::Engine as _;
            let log = base64::engine::general_purpose::STANDARD.decode(log)?;
            std::io::stderr().write_all(&log)?;
        }
        if r.status != 200 {
            // Event (202) and DryRun (204): no answer to print.
            eprintln!(
                "{}",
                if r.status == 202 {
                    "accepted (202)"
                } else {
                    "checked (204)"
                }
            );
            return Ok(ExitCode::SUCCESS);
        }
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
        name,
        "POST",
        &format!("/_vpc/functions/{f}/claim?env={}&{q}", a.env),
        b"",
    )?
    .ok()?
    .json();
    let env: std::collections::BTreeMap<String, String> =
        serde_json::from_value(c["Environment"].clone()).unwrap_or_default();
    run_in(c["Netns"].as_str().unwrap_or_default(), &env, &a.cmd)
}

pub fn get_function(name: &str, a: &GetFunctionArgs, out: Output) -> Result<ExitCode> {
    let q = a
        .qualifier
        .as_ref()
        .map(|q| format!("?Qualifier={}", enc(q)))
        .unwrap_or_default();
    print_api(
        vpc::api::call(
            name,
            "GET",
            &format!("/2015-03-31/functions/{}{q}", enc(&a.function)),
            b"",
        )?,
        out,
        function_table,
    )
}

pub fn list_functions(name: &str, out: Output) -> Result<ExitCode> {
    print_api(
        vpc::api::call(name, "GET", "/2015-03-31/functions", b"")?,
        out,
        functions_table,
    )
}

pub fn update(name: &str, a: &UpdateArgs, out: Output) -> Result<ExitCode> {
    let body = serde_json::json!({"VpcConfig": {
        "SubnetIds": list(&a.subnet_ids),
        "SecurityGroupIds": list(&a.security_group_ids),
        "Ipv6AllowedForDualStack": a.ipv6_allowed_for_dual_stack,
    }});
    print_api(
        vpc::api::call(
            name,
            "PUT",
            &format!("/2015-03-31/functions/{}/configuration", enc(&a.function)),
            &serde_json::to_vec(&body)?,
        )?,
        out,
        print_fields,
    )
}

pub fn delete(name: &str, function: &str) -> Result<()> {
    vpc::api::call(
        name,
        "DELETE",
        &format!("/2015-03-31/functions/{}", enc(function)),
        b"",
    )?
    .ok()?;
    println!("{name}: deleted {function}");
    Ok(())
}

pub fn publish(name: &str, function: &str, out: Output) -> Result<ExitCode> {
    print_api(
        vpc::api::call(
            name,
            "POST",
            &format!("/2015-03-31/functions/{}/versions", enc(function)),
            b"{}",
        )?,
        out,
        print_fields,
    )
}

pub fn ram(name: &str, op: RamOp, out: Output) -> Result<ExitCode> {
    let (a, path) = match op {
        RamOp::Associate(a) => (a, "/_vpc/ram/associate-resource-share"),
        RamOp::Disassociate(a) => (a, "/_vpc/ram/disassociate-resource-share"),
    };
    let body = serde_json::json!({
        "ResourceShare": a.share,
        "SubnetIds": list(&a.subnet_ids),
        "Principals": list(&a.principals),
    });
    print_api(
        vpc::api::call(name, "POST", path, &serde_json::to_vec(&body)?)?,
        out,
        print_fields,
    )
}

pub fn clock(name: &str, op: ClockOp, out: Output) -> Result<ExitCode> {
    let ClockOp::Advance { by } = op;
    let body = serde_json::json!({"AdvanceMs": by.as_millis() as u64});
    print_api(
        vpc::api::call(name, "POST", "/_vpc/clock", &serde_json::to_vec(&body)?)?,
        out,
        print_fields,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_and_lists() {
        assert_eq!(enc("arn:aws:lambda:f"), "arn%3Aaws%3Alambda%3Af");
        assert_eq!(enc("a-b_c.d~"), "a-b_c.d~");
        assert_eq!(list("a,,b"), ["a", "b"]);
        assert!(list("").is_empty());
    }
}

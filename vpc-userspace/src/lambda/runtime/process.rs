//! What a runtime's process is: its program and arguments, its
//! environment (Lambda's variables), what makes two claims run the same
//! process, request ids, the errors of a process that ended, its peak
//! memory.
use std::path::{Path, PathBuf};

use anyhow::Result;
use axum::body::Bytes;
use serde_json::{json, Value};

use super::{runtime_dir, Env, RUNTIME_API_ADDR, RUNTIME_DIR_VAR};
use crate::model::Runtime;

/// The program and arguments that run a runtime.
pub(super) fn command(
    family: Runtime,
    dir: &Path,
    claim: &Value,
    task: &Path,
) -> Result<(PathBuf, Vec<String>)> {
    let handler = claim["Handler"]
        .as_str()
        .unwrap_or("index.handler")
        .to_string();
    match family {
        Runtime::Python => {
            let py = dir.join("pyenv/bin/python");
            // The venv may exist (boto3's) without the client in it.
            let ric = std::fs::read_dir(dir.join("pyenv/lib"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|d| d.path().join("site-packages/awslambdaric").is_dir());
            anyhow::ensure!(
                py.exists() && ric,
                "awslambdaric missing in {}: `cargo xtask provision` installs it there (or set {RUNTIME_DIR_VAR})",
                dir.join("pyenv").display()
            );
            Ok((py, vec!["-m".into(), "awslambdaric".into(), handler]))
        }
        Runtime::Node => {
            let ric = dir.join("node/node_modules/aws-lambda-ric/bin/index.mjs");
            anyhow::ensure!(
                ric.exists(),
                "{} missing: `cargo xtask provision` installs aws-lambda-ric there (or set {RUNTIME_DIR_VAR})",
                ric.display()
            );
            Ok(("node".into(), vec![ric.display().to_string(), handler]))
        }
        Runtime::Provided => Ok((task.join("bootstrap"), vec![])),
    }
}

/// The process's environment, as Lambda sets it: the function's
/// variables (with its name, version and region, from the claim), then
/// the runtime's own.
pub(super) fn variables(family: Runtime, claim: &Value, task: &Path) -> Vec<(String, String)> {
    let dir = runtime_dir();
    let mut v: Vec<(String, String)> = claim["Environment"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let s = |x: &str| x.to_string();
    let fname = claim["Environment"]["AWS_LAMBDA_FUNCTION_NAME"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let runtime = claim["Runtime"].as_str().unwrap_or_default();
    let runtime_dir = match family {
        Runtime::Python => dir.join("pyenv"),
        Runtime::Node => dir.join("node"),
        Runtime::Provided => task.to_path_buf(),
    };
    let path = match family {
        Runtime::Python => format!("{}:", dir.join("pyenv/bin").display()),
        _ => String::new(),
    } + "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    let region = claim["Environment"]["AWS_REGION"]
        .as_str()
        .unwrap_or("us-east-1")
        .to_string();
    v.extend([
        (s("AWS_LAMBDA_RUNTIME_API"), s(RUNTIME_API_ADDR)),
        (
            s("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
            claim["MemorySize"].as_u64().unwrap_or(128).to_string(),
        ),
        (s("AWS_DEFAULT_REGION"), region),
        (s("AWS_EXECUTION_ENV"), format!("AWS_Lambda_{runtime}")),
        (
            s("AWS_LAMBDA_LOG_GROUP_NAME"),
            format!("/aws/lambda/{fname}"),
        ),
        (s("AWS_LAMBDA_INITIALIZATION_TYPE"), s("on-demand")),
        (
            s("_HANDLER"),
            claim["Handler"].as_str().unwrap_or("bootstrap").to_string(),
        ),
        (s("LAMBDA_TASK_ROOT"), task.display().to_string()),
        (s("LAMBDA_RUNTIME_DIR"), runtime_dir.display().to_string()),
        (s("TZ"), s(":UTC")),
        (s("LANG"), s("en_US.UTF-8")),
        (s("PATH"), path),
    ]);
    if family == Runtime::Python {
        v.push((s("PYTHONPATH"), task.display().to_string()));
    }
    if family == Runtime::Node {
        v.push((
            s("NODE_PATH"),
            dir.join("node/node_modules").display().to_string(),
        ));
    }
    v
}

/// What makes two claims run the same process.
pub(super) fn fingerprint(claim: &Value) -> String {
    json!([
        claim["Runtime"],
        claim["Handler"],
        claim["Code"],
        claim["CodeSha256"],
        claim["Environment"],
        claim["MemorySize"],
        claim["Timeout"],
    ])
    .to_string()
}

/// A request id shaped as Lambda's (a UUID v4).
pub fn request_id() -> String {
    let mut b = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b = t.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The answer to an invocation whose runtime exited: `Runtime.OutOfMemory`
/// when the kernel killed it over its `MemorySize`.
pub(super) fn exit_error(env: &Env, id: &str, how: &str) -> Value {
    let oom = env.oom.load(std::sync::atomic::Ordering::Relaxed);
    json!({
        "errorType": if oom { "Runtime.OutOfMemory" } else { "Runtime.ExitError" },
        "errorMessage": format!("RequestId: {id} Error: {how}"),
    })
}

/// The answer to an invocation whose runtime failed to initialize: the
/// runtime's error document, or one saying so.
pub(super) fn init_error_body(b: &Bytes) -> Vec<u8> {
    match serde_json::from_slice::<Value>(b) {
        Ok(v) if v.get("errorType").is_some() => serde_json::to_vec(&v).expect("JSON"),
        _ => serde_json::to_vec(&json!({
            "errorType": "Runtime.Unknown",
            "errorMessage": String::from_utf8_lossy(b),
        }))
        .expect("JSON"),
    }
}

/// The peak resident memory (VmHWM) of the environment's processes (its
/// process group), summed, in MB.
pub(super) fn max_memory_mb(env: &Env) -> Option<u64> {
    // The cgroup counts every process of the environment.
    if let Some(peak) = env.memory.lock().ok()?.as_ref().and_then(|m| m.peak()) {
        return Some(peak.div_ceil(1 << 20));
    }
    let pid = (*env.pid.lock().ok()?)?;
    group_peak_kb(pid).map(|kb| kb.div_ceil(1024))
}

/// The sum of VmHWM over the processes of process group `pgid`, in kB.
pub(super) fn group_peak_kb(pgid: i32) -> Option<u64> {
    let mut total = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp ...`: comm may hold anything.
        let pgrp = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(2))
            .and_then(|g| g.parse::<i32>().ok());
        if pgrp != Some(pgid) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        if let Some(kb) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            *total.get_or_insert(0) += kb;
        }
    }
    total
}

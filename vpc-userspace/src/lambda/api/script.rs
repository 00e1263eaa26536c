//! A function without a `Runtime`: its code is a shell script run for each
//! invocation in its execution environment (this project's convention),
//! the payload on stdin and the response from stdout.
use std::io::{Read, Write};

use serde_json::json;

use super::internal;
use crate::lambda::{
    lifecycle::ApiError,
    logs,
    runtime::{self, Invoked, Runtimes},
};
use serde_json::Value;

/// Runs the function's handler in its execution environment: the payload
/// on stdin, the response from stdout; a handler that fails is reported as
/// Lambda reports one (200, `X-Amz-Function-Error: Unhandled`). Its log:
/// `START`, its stderr, `END`, `REPORT`, in the environment's stream.
pub(super) fn run_handler(
    runtimes: &Runtimes,
    claim: &Value,
    payload: &[u8],
) -> Result<Invoked, ApiError> {
    let ns = claim["Netns"].as_str().unwrap_or_default();
    let code = claim["Code"].as_str().unwrap_or("cat");
    let version = claim["Version"].as_str().unwrap_or("$LATEST").to_string();
    let id = claim["RequestId"]
        .as_str()
        .map_or_else(runtime::request_id, str::to_string);
    let mut log = vec![(
        logs::now_ms(),
        format!("START RequestId: {id} Version: {version}"),
    )];
    let began = std::time::Instant::now();
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", ns, "sh", "-c", code])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(vars) = claim["Environment"].as_object() {
        for (k, v) in vars {
            cmd.env(k, v.as_str().unwrap_or_default());
        }
    }
    let mut child = cmd.spawn().map_err(|e| internal(e.into()))?;
    let mut stdin = child.stdin.take().expect("piped");
    let payload = payload.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&payload);
    });
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut b = vec![];
            let _ = r.read_to_end(&mut b);
            b
        })
    };
    let stdout = read(Box::new(child.stdout.take().expect("piped")));
    let stderr = read(Box::new(child.stderr.take().expect("piped")));
    // wait4, for its peak memory (the largest of the process and what
    // it waited for).
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the child is ours, not waited for by anyone else.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    if r < 0 {
        return Err(internal(std::io::Error::last_os_error().into()));
    }
    let status =
        <std::process::ExitStatus as std::os::unix::process::ExitStatusExt>::from_raw(status);
    let _ = writer.join();
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let now = logs::now_ms();
    for l in String::from_utf8_lossy(&stderr).lines() {
        log.push((now, l.to_string()));
    }
    let ms = began.elapsed().as_secs_f64() * 1000.0;
    log.push((now, format!("END RequestId: {id}")));
    log.push((
        now,
        format!(
            "REPORT RequestId: {id}\tDuration: {ms:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB",
            ms.ceil() as u64,
            claim["MemorySize"].as_u64().unwrap_or(128),
            (usage.ru_maxrss.max(0) as u64).div_ceil(1024),
        ),
    ));
    runtimes.script_log(claim, &log);
    let log = log.into_iter().map(|(_, l)| l).collect();
    if status.success() {
        Ok(Invoked {
            body: stdout,
            unhandled: false,
            version,
            log,
        })
    } else {
        let body = json!({
            "errorType": "Runtime.ExitError",
            "errorMessage": format!(
                "exit status {}: {}",
                status.code().unwrap_or(-1),
                String::from_utf8_lossy(&stderr).trim()
            ),
        });
        Ok(Invoked {
            body: serde_json::to_vec(&body).expect("JSON"),
            unhandled: true,
            version,
            log,
        })
    }
}

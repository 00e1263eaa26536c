//! `vpc logs FUNCTION [--follow]`: a function's log group, as CloudWatch
//! Logs holds it (`vpc::lambda::logs`), read from the deployment's log
//! store: every stream's events, oldest first.
use std::{process::ExitCode, sync::atomic::Ordering, time::Duration};

use anyhow::{bail, Result};
use serde_json::json;
use vpc::lambda::logs::{self, StreamEvent};

use super::{output::write_stdout, signal_flag, Output};

#[derive(clap::Args)]
pub struct LogsArgs {
    /// The function (FunctionName or logical id); its log group is
    /// `/aws/lambda/<FunctionName>`.
    function: String,
    /// Keep printing new events until Ctrl-C.
    #[arg(long, short)]
    follow: bool,
}

/// How often `--follow` looks for new events.
const POLL: Duration = Duration::from_millis(200);

/// The function's name (its log group's), from the API; as given when the
/// API does not know it (a deleted function's logs stay, as at AWS).
fn function_name(name: &str, function: &str) -> String {
    let path = format!("/2015-03-31/functions/{}", super::lambda::enc(function));
    vpc::api::call(name, "GET", &path, b"")
        .ok()
        .filter(|r| r.status == 200)
        .and_then(|r| {
            r.json()["Configuration"]["FunctionName"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| function.to_string())
}

fn print(events: &[StreamEvent], out: Output) -> Result<()> {
    let mut text = String::new();
    for e in events {
        match out {
            Output::Json => {
                text.push_str(
                    &json!({
                        "logStreamName": e.stream,
                        "timestamp": e.event.timestamp,
                        "message": e.event.message,
                        "ingestionTime": e.event.ingestion_time,
                    })
                    .to_string(),
                );
            }
            Output::Table => {
                let t = chrono::DateTime::from_timestamp_millis(e.event.timestamp)
                    .unwrap_or_default()
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ");
                text.push_str(&format!("{t} {} {}", e.stream, e.event.message));
            }
        }
        text.push('\n');
    }
    write_stdout(text.as_bytes())
}

pub fn logs(name: &str, a: &LogsArgs, out: Output) -> Result<ExitCode> {
    let group = logs::group_name(&function_name(name, &a.function));
    let mut reader = logs::Reader::new(name, &group);
    if !a.follow {
        if !reader.exists() {
            bail!("ResourceNotFoundException: The specified log group does not exist ({group}: the function has not run yet)");
        }
        print(&reader.poll()?, out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let stop = signal_flag()?;
    while !stop.load(Ordering::Relaxed) {
        print(&reader.poll()?, out)?;
        std::thread::sleep(POLL);
    }
    Ok(ExitCode::SUCCESS)
}

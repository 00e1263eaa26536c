//! `vpc trace`: every verdict of the router, one line each, until Ctrl-C
//! or `--for`.
use std::time::Duration;

use anyhow::Result;

use super::{parse_duration, signal_flag};

#[derive(clap::Args)]
pub struct TraceArgs {
    /// Stop after this long (`500ms`, `5s`, `2m`); without it, at Ctrl-C.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
}

/// Lines on stdout; the ready line (every verdict after it is traced) on
/// stderr.
pub fn trace(name: &str, a: &TraceArgs) -> Result<()> {
    let stop = signal_flag()?;
    vpc::trace::run(name, a.duration, &stop, Box::new(std::io::stdout()), || {
        let until = match a.duration {
            Some(d) => format!("for {d:?}"),
            None => "until Ctrl-C".to_string(),
        };
        eprintln!("tracing the router of deployment {name} {until}");
    })
}

//! The agent: its process ([`run`]: one tokio runtime and the lifecycle's
//! loop), its HTTP endpoint ([`http`]) and its log lines ([`init_logging`]).
pub mod http;
pub mod request;
pub mod run;

use tracing_subscriber::filter::LevelFilter;

/// The agent's log lines, with `tracing`: on stderr (the deployment's
/// `agent.log` when the agent runs detached), each with its UTC timestamp,
/// level and module. `VPC_LOG` sets the level: `error`, `warn`, `info`
/// (the default), `debug` (every API request too) or `trace`. The CLI's
/// own output stays plain text on stdout and stderr.
pub fn init_logging() {
    let level = std::env::var("VPC_LOG")
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    // A second call (tests, `vpc run` after another agent) keeps the first.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .try_init();
}

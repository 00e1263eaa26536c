//! `vpc trace`: the router's verdicts, one line each, while it runs.
//!
//! The datapath logs through aya-log (`vpc-ebpf/src/trace.rs`) into the
//! object's `AYA_LOGS` ring buffer, only while `CONFIG[TRACE]` is set.
//! aya-log finds that map from a loaded program's id
//! (`EbpfLogger::init_from_id_with_logger`), so the pinned router of a
//! deployment is enough: nothing else is pinned for it. Both hooks (XDP and
//! TC) come from one object and log into the same ring buffer.
//!
//! One tracer per deployment at a time (a ring buffer has one reader): a
//! lock in the state directory says so. The slot is cleared when the
//! tracer stops (Ctrl-C, SIGTERM, SIGHUP, the duration, an error); a tracer
//! killed with SIGKILL leaves it set, and the next `vpc trace` clears it.
use std::{
    io::Write,
    os::fd::AsRawFd,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{anyhow, Context, Result};
use aya_log::EbpfLogger;
use vpc_common::DropReason;

use crate::{
    datapath::{self, Maps, PinnedMaps},
    paths,
    state::State,
};

/// Prints each record as a line: a timestamp (when it was read, within
/// a poll of the verdict), then the message with its drop reason named.
struct Printer {
    out: Mutex<Box<dyn Write + Send>>,
    /// Records left over from an earlier tracer: read and thrown away.
    discard: Arc<AtomicBool>,
}

impl log::Log for Printer {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.discard.load(Ordering::Relaxed) {
            return;
        }
        let line = format!(
            "{} {}",
            chrono::Local::now().format("%H:%M:%S%.6f"),
            name_reason(&record.args().to_string())
        );
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A closed stdout (`vpc trace | head`) is not an error worth a panic.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    fn flush(&self) {
        let _ = self.out.lock().unwrap_or_else(|e| e.into_inner()).flush();
    }
}

/// `reason=7` -> `reason=sg_ingress_denied(7)`: the datapath logs the
/// number, the name is userspace's (`DropReason::name`).
pub fn name_reason(msg: &str) -> String {
    const KEY: &str = "reason=";
    let Some(at) = msg.find(KEY) else {
        return msg.to_string();
    };
    let start = at + KEY.len();
    let digits = msg[start..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(msg.len(), |n| start + n);
    let Ok(n) = msg[start..digits].parse::<u32>() else {
        return msg.to_string();
    };
    let name = DropReason::ALL
        .iter()
        .find(|r| **r as u32 == n)
        .map_or("unknown", |r| r.name());
    format!("{}{name}({n}){}", &msg[..start], &msg[digits..])
}

/// `CONFIG[TRACE]` set while this lives.
struct Switch {
    maps: PinnedMaps,
}

impl Switch {
    fn on(mut maps: PinnedMaps) -> Result<Self> {
        maps.set_trace(true)?;
        Ok(Self { maps })
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        if let Err(e) = self.maps.set_trace(false) {
            eprintln!("warning: clearing the trace switch failed: {e:#}");
        }
    }
}

/// Traces deployment `name` into `out` until `stop` is set or `duration`
/// has passed; `ready` is called once the tracer reads the ring buffer and
/// the datapath logs (every verdict after it is printed).
pub fn run(
    name: &str,
    duration: Option<Duration>,
    stop: &AtomicBool,
    out: Box<dyn Write + Send>,
    ready: impl FnOnce(),
) -> Result<()> {
    let state = State::load(name)?;
    let _lock = lock(name)?;
    let prog = datapath::pinned_router(&state.pin_dir)?;
    let id = prog
        .info()
        .context("reading the pinned router's program info")?
        .id();
    let discard = Arc::new(AtomicBool::new(true));
    let printer = Printer {
        out: Mutex::new(out),
        discard: discard.clone(),
    };
    let mut logger = EbpfLogger::init_from_id_with_logger(id, printer).map_err(|e| {
        anyhow!(
            "opening the router's log buffer (AYA_LOGS) from program {id}: {e} \
             (a deployment brought up by a vpc without `vpc trace` has none: bring it up again)"
        )
    })?;
    logger.flush();
    discard.store(false, Ordering::Relaxed);
    let switch = Switch::on(PinnedMaps::open(&state.pin_dir)?)?;
    ready();
    let until = duration.map(|d| Instant::now() + d);
    let fd = logger.as_raw_fd();
    while !stop.load(Ordering::Relaxed) {
        let mut wait = Duration::from_millis(100);
        if let Some(u) = until {
            let left = u.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            wait = wait.min(left);
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; the fd lives as long as `logger`. An
        // interrupted poll (a signal) is a wake-up like any other.
        unsafe { libc::poll(&mut pfd, 1, wait.as_millis() as i32) };
        logger.flush();
    }
    // Off first, then what was logged until then.
    drop(switch);
    logger.flush();
    Ok(())
}

/// One tracer per deployment: its lock in the state directory.
fn lock(name: &str) -> Result<nix::fcntl::Flock<std::fs::File>> {
    let dir = paths::state_dir(name);
    let f = std::fs::File::create(dir.join("trace.lock"))
        .with_context(|| format!("creating the trace lock in {}", dir.display()))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| anyhow!("another `vpc trace` of deployment {name:?} is running"))
}

#[cfg(test)]
mod tests {
    use super::name_reason;

    #[test]
    fn drop_reasons_are_named() {
        assert_eq!(
            name_reason("dropped reason=7 in=4 proto=6 10.0.1.20:40000 -> 10.0.1.10:22"),
            "dropped reason=sg_ingress_denied(7) in=4 proto=6 10.0.1.20:40000 -> 10.0.1.10:22"
        );
        assert_eq!(name_reason("dropped reason=2 in=9"), "dropped reason=not_ip(2) in=9");
        assert_eq!(name_reason("dropped reason=99 in=9"), "dropped reason=unknown(99) in=9");
        let fwd = "forwarded in=4 out=5 proto=17 10.0.1.20:1 -> 10.0.1.10:2";
        assert_eq!(name_reason(fwd), fwd);
    }
}

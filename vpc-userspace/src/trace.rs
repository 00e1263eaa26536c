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
    net::{IpAddr, Ipv6Addr, SocketAddr},
    os::fd::AsRawFd,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{anyhow, Context, Result};
use aya_log::EbpfLogger;
use vpc_common::{cfg, DropReason};

use crate::{
    datapath::{self, Maps, PinnedMaps},
    paths,
    state::State,
};

/// Prints each record as a line: a timestamp (when it was read, within
/// a poll of the verdict), then the record rendered (`render`).
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
        let msg = record.args().to_string();
        let line = format!(
            "{} {}",
            chrono::Local::now().format("%H:%M:%S%.6f"),
            render(&msg).unwrap_or(msg)
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

/// The pipeline's verdicts, as XDP's actions (`vpc-ebpf/src/ctx.rs`).
const XDP_DROP: u32 = 1;
const XDP_REDIRECT: u32 = 4;

/// A record of the datapath (`verdict=A detail=D in=I proto=P src=[S]:SP
/// dst=[T]:TP icmp=X`, see `vpc-ebpf/src/trace.rs`) for people:
///
/// * `forwarded in=I out=O proto=P SRC -> DST`
/// * `dropped reason=NAME(N) in=I proto=P SRC -> DST` (`dropped
///   reason=NAME(N) in=I` when the packet was not parsed)
///
/// IPv4 addresses as `a.b.c.d:port`, IPv6 as `[addr]:port`; ICMP as
/// `SRC -> DST type=T code=C` (and `id=N` for echoes). `None`: not such a
/// record.
pub fn render(msg: &str) -> Option<String> {
    let mut fields = msg.split(' ').map(|f| f.split_once('='));
    let mut next = |key: &str| match fields.next() {
        Some(Some((k, v))) if k == key => Some(v),
        _ => None,
    };
    let verdict: u32 = next("verdict")?.parse().ok()?;
    let detail: u32 = next("detail")?.parse().ok()?;
    let ingress = next("in")?;
    let proto: u8 = next("proto")?.parse().ok()?;
    let (src, sport) = endpoint(next("src")?)?;
    let (dst, dport) = endpoint(next("dst")?)?;
    let icmp: u16 = next("icmp")?.parse().ok()?;
    let tuple = if proto == 1 || proto == 58 {
        let (ty, code) = (icmp >> 8, icmp & 0xff);
        let echo = matches!((proto, ty), (1, 0 | 8) | (58, 128 | 129));
        let id = if echo {
            format!(" id={sport}")
        } else {
            String::new()
        };
        format!("{src} -> {dst} type={ty} code={code}{id}")
    } else {
        format!("{} -> {}", src.with_port(sport), dst.with_port(dport))
    };
    match verdict {
        XDP_REDIRECT => Some(format!(
            "forwarded in={ingress} out={detail} proto={proto} {tuple}"
        )),
        XDP_DROP => {
            let n = detail & !cfg::TRACE_NO_TUPLE;
            let name = DropReason::from_code(n).map_or("unknown", |r| r.name());
            let head = format!("dropped reason={name}({n}) in={ingress}");
            Some(if detail & cfg::TRACE_NO_TUPLE != 0 {
                head
            } else {
                format!("{head} proto={proto} {tuple}")
            })
        }
        _ => None,
    }
}

/// `[::ffff:10.0.1.10]:22` -> the address as people write it (IPv4
/// unmapped) and the port.
fn endpoint(s: &str) -> Option<(Addr, u16)> {
    let (addr, port) = s.strip_prefix('[')?.split_once("]:")?;
    let addr: Ipv6Addr = addr.parse().ok()?;
    Some((Addr(addr.to_canonical()), port.parse().ok()?))
}

/// An address as rendered: alone (`.0`) or with a port (`.1`).
struct Addr(IpAddr);

impl Addr {
    fn with_port(&self, port: u16) -> String {
        SocketAddr::new(self.0, port).to_string()
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
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
    use super::render;

    #[test]
    fn records_are_rendered_for_people() {
        let r = |m: &str| render(m).unwrap();
        assert_eq!(
            r("verdict=1 detail=7 in=4 proto=6 src=[::ffff:10.0.1.20]:40000 dst=[::ffff:10.0.1.10]:22 icmp=0"),
            "dropped reason=sg_ingress_denied(7) in=4 proto=6 10.0.1.20:40000 -> 10.0.1.10:22"
        );
        assert_eq!(
            r("verdict=4 detail=12 in=4 proto=17 src=[2600:1f18::5]:53 dst=[fd00::1]:40000 icmp=0"),
            "forwarded in=4 out=12 proto=17 [2600:1f18::5]:53 -> [fd00::1]:40000"
        );
        // Not parsed: no tuple.
        assert_eq!(
            r("verdict=1 detail=258 in=9 proto=0 src=[::]:0 dst=[::]:0 icmp=0"),
            "dropped reason=not_ip(2) in=9"
        );
        assert_eq!(
            r("verdict=1 detail=99 in=9 proto=17 src=[::ffff:1.2.3.4]:1 dst=[::ffff:1.2.3.5]:2 icmp=0"),
            "dropped reason=unknown(99) in=9 proto=17 1.2.3.4:1 -> 1.2.3.5:2"
        );
        // ICMP: type and code, an echo's identifier.
        assert_eq!(
            r("verdict=1 detail=7 in=2 proto=1 src=[::ffff:10.0.2.4]:7247 dst=[::ffff:10.0.1.10]:2048 icmp=2048"),
            "dropped reason=sg_ingress_denied(7) in=2 proto=1 10.0.2.4 -> 10.0.1.10 type=8 code=0 id=7247"
        );
        assert_eq!(
            r("verdict=4 detail=3 in=2 proto=58 src=[fd00::1]:0 dst=[fd00::2]:65535 icmp=259"),
            "forwarded in=2 out=3 proto=58 fd00::1 -> fd00::2 type=1 code=3"
        );
        assert_eq!(render("something else"), None);
        assert_eq!(
            render("verdict=2 detail=0 in=1 proto=0 src=[::]:0 dst=[::]:0 icmp=0"),
            None
        );
    }
}

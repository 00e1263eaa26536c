//! New connections per second with a client that is not the bottleneck:
//! one tokio runtime whose workers all live in the client's namespace (a
//! socket stays in the namespace it was created in), `IN_FLIGHT_PER_WORKER`
//! connections in flight per worker, and a `SO_REUSEPORT` listener per
//! worker created in the server's namespace. Each connection: connect, one
//! byte each way, the client closes (so the TIME_WAIT is the client's, as
//! for a function calling a database), the server closes on its FIN.
use std::{
    collections::BTreeMap,
    io::ErrorKind,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::sockets::Pair;
use crate::topology::{self, in_netns};

/// Connections in flight per worker thread.
pub const IN_FLIGHT_PER_WORKER: usize = 128;
/// A connection not done within this is counted as timed out: a lost SYN
/// waits a second for its retransmission.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
/// The client namespace's ephemeral ports: the whole unprivileged range
/// (Linux's default, 32768-60999, is 28,232 ports), and `tcp_tw_reuse=1`
/// (Linux's default, 2, reuses a TIME_WAIT port only on loopback): a port
/// in TIME_WAIT for more than `tcp_tw_reuse_delay` (1 s) may connect again.
pub const CLIENT_SYSCTLS: [&str; 2] = [
    "net.ipv4.ip_local_port_range=1024 65535",
    "net.ipv4.tcp_tw_reuse=1",
];
/// Completions are counted in slots of this length, for the best second.
const SLOT: Duration = Duration::from_millis(100);

/// The router's counter of NAT ports taken (one per new connection).
pub const NAT_PORTS_ALLOCATED: &str = "nat ports allocated";
/// Named counters of what forwards (the router's drop reasons and NAT port
/// allocations, nftables' conntrack statistics), read before and after.
pub type Counts = BTreeMap<String, u64>;
/// Reads the path's counters (none for a path without any).
pub type Probe<'a> = &'a (dyn Fn() -> Result<Counts> + Sync);

/// Why a connection did not complete.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Failures {
    /// A RST to the SYN (`ECONNREFUSED`).
    pub refused: u64,
    /// No answer within 1 s: a SYN (or the byte) lost.
    pub timed_out: u64,
    /// Reset or closed by the peer before its byte came back.
    pub reset: u64,
    /// The client ran out of ephemeral ports (`EADDRNOTAVAIL`).
    pub no_local_port: u64,
    pub other: u64,
}

impl Failures {
    pub fn total(&self) -> u64 {
        self.refused + self.timed_out + self.reset + self.no_local_port + self.other
    }
}

/// `Failures`' slot for an error.
fn failure_slot(kind: ErrorKind) -> usize {
    match kind {
        ErrorKind::ConnectionRefused => 0,
        ErrorKind::TimedOut => 1,
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::UnexpectedEof => 2,
        ErrorKind::AddrNotAvailable => 3,
        _ => 4,
    }
}

/// The new connections of one path.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConnectionRate {
    /// Completed over the window, per second.
    pub per_second: f64,
    /// The best second of the window (100 ms steps): the rate before a pool
    /// (ports, an allowance) ran dry, if one did.
    pub peak_per_second: f64,
    pub completed: u64,
    pub failed: Failures,
    /// Connections in flight at once (workers x per worker).
    pub in_flight: usize,
    /// Share of all CPUs busy over the window (the whole machine: both
    /// sockets' stacks, the path's softirq, anything else running), and
    /// softirq's part of it.
    pub cpu_busy: f64,
    pub cpu_softirq: f64,
    /// The bench's own CPU time per completed connection, µs: client and
    /// server, both sockets' stacks and the path's softirq, which runs in
    /// the sending thread (a veth delivers on the CPU that sends).
    pub cpu_us_per_connection: f64,
    /// The kernel's part of it (system time: the TCP stacks, veths, the
    /// path); the rest is the client's and server's own code.
    pub cpu_system_share: f64,
    /// The rate the CPUs allow at that cost, all of them on it:
    /// `cpus x 1 s / cpu_us_per_connection`.
    pub cpu_ceiling_per_second: f64,
    /// What the path's counters moved by over the window (nonzero only).
    pub counters: Counts,
}

/// Short connections from `p.client_ns` to `p.server_ns` for `secs`
/// seconds, `probe` read around the window.
pub fn measure(p: &Pair, secs: u64, probe: Probe) -> Result<ConnectionRate> {
    for s in CLIENT_SYSCTLS {
        topology::run("ip", &["netns", "exec", p.client_ns, "sysctl", "-qw", s])?;
    }
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let ns = std::fs::File::open(std::path::Path::new("/run/netns").join(p.client_ns))
        .with_context(|| format!("namespace {}", p.client_ns))?;
    let entered = Arc::new(AtomicBool::new(true));
    let ok = entered.clone();
    // Every thread of the runtime in the client's namespace: the sockets
    // its tasks create are the client's.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .on_thread_start(move || {
            if nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
                ok.store(false, Ordering::Relaxed);
            }
        })
        .build()?;
    let addr = SocketAddr::from((p.server, p.port));
    let listeners = (0..workers)
        .map(|_| {
            let h = rt.handle().clone();
            in_netns(p.server_ns, move || {
                let _rt = h.enter();
                listen(addr)
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let before = probe()?;
    let r = rt.block_on(run(listeners, addr, workers, secs));
    let after = probe()?;
    // Every socket of the runtime closed before the next test binds.
    rt.shutdown_timeout(Duration::from_secs(2));
    if !entered.load(Ordering::Relaxed) {
        bail!("a worker could not enter {}", p.client_ns);
    }
    let mut r = r?;
    r.counters = after
        .iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(*before.get(k).unwrap_or(&0))))
        .filter(|(_, v)| *v > 0)
        .collect();
    Ok(r)
}

fn listen(addr: SocketAddr) -> Result<TcpListener> {
    let s = TcpSocket::new_v4()?;
    s.set_reuseaddr(true)?;
    s.set_reuseport(true)?;
    s.bind(addr)?;
    Ok(s.listen(4096)?)
}

/// The server: per connection, its byte back, then closed on the client's
/// FIN.
async fn serve(l: TcpListener) {
    loop {
        let Ok((c, _)) = l.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut b = [0u8; 1];
            if read_byte(&c, &mut b).await.is_ok() && write_byte(&c, &b).await.is_ok() {
                let _ = read_byte(&c, &mut b).await;
            }
        });
    }
}

async fn connect_once(addr: SocketAddr) -> std::io::Result<()> {
    let s = TcpSocket::new_v4()?;
    let c = s.connect(addr).await?;
    let mut b = [7u8; 1];
    write_byte(&c, &b).await?;
    read_byte(&c, &mut b).await
}

/// One byte in (`UnexpectedEof` at the peer's FIN), with tokio's readiness
/// calls (the crate is built without its `io-util` helpers).
async fn read_byte(c: &TcpStream, b: &mut [u8; 1]) -> std::io::Result<()> {
    loop {
        c.readable().await?;
        match c.try_read(b) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

async fn write_byte(c: &TcpStream, b: &[u8; 1]) -> std::io::Result<()> {
    loop {
        c.writable().await?;
        match c.try_write(b) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// What the client tasks count.
struct Tally {
    start: Instant,
    deadline: Instant,
    /// Completions per `SLOT` of the window.
    slots: Vec<AtomicU64>,
    /// `Failures`' fields, in order.
    failed: [AtomicU64; 5],
}

async fn client(addr: SocketAddr, t: Arc<Tally>) {
    while Instant::now() < t.deadline {
        let r = tokio::time::timeout(ATTEMPT_TIMEOUT, connect_once(addr)).await;
        let now = Instant::now();
        if now >= t.deadline {
            break;
        }
        match r {
            Ok(Ok(())) => {
                let i = ((now - t.start).as_nanos() / SLOT.as_nanos()) as usize;
                t.slots[i.min(t.slots.len() - 1)].fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                t.failed[failure_slot(e.kind())].fetch_add(1, Ordering::Relaxed);
                // Out of ports or refused: do not spin on it.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(_) => {
                t.failed[failure_slot(ErrorKind::TimedOut)].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The best `window` consecutive slots' sum.
fn best(slots: &[u64], window: usize) -> u64 {
    slots
        .windows(window.min(slots.len()).max(1))
        .map(|w| w.iter().sum())
        .max()
        .unwrap_or(0)
}

async fn run(
    listeners: Vec<TcpListener>,
    addr: SocketAddr,
    workers: usize,
    secs: u64,
) -> Result<ConnectionRate> {
    let servers: Vec<_> = listeners
        .into_iter()
        .map(|l| tokio::spawn(serve(l)))
        .collect();
    let window = Duration::from_secs(secs);
    let start = Instant::now();
    let t = Arc::new(Tally {
        start,
        deadline: start + window,
        slots: (0..window.as_millis().div_ceil(SLOT.as_millis()))
            .map(|_| AtomicU64::new(0))
            .collect(),
        failed: Default::default(),
    });
    let (cpu0, own0) = (cpu_times()?, own_cpu());
    let in_flight = workers * IN_FLIGHT_PER_WORKER;
    let clients: Vec<_> = (0..in_flight)
        .map(|_| tokio::spawn(client(addr, t.clone())))
        .collect();
    tokio::time::sleep_until((start + window).into()).await;
    let (cpu1, own1) = (cpu_times()?, own_cpu());
    // What is still in flight is not counted; every task is gone (its
    // sockets closed, the listeners with them) before the next test binds
    // the port.
    for h in clients.iter().chain(&servers) {
        h.abort();
    }
    for h in clients.into_iter().chain(servers) {
        let _ = h.await;
    }
    let slots: Vec<u64> = t.slots.iter().map(|s| s.load(Ordering::Relaxed)).collect();
    let f = |i: usize| t.failed[i].load(Ordering::Relaxed);
    let completed: u64 = slots.iter().sum();
    let per_slot = Duration::from_secs(1).as_millis() / SLOT.as_millis();
    let busy = |i: usize| (cpu1[i] - cpu0[i]) as f64;
    let total: f64 = (0..cpu0.len()).map(busy).sum::<f64>().max(1.0);
    let own = (own1.0 + own1.1)
        .saturating_sub(own0.0 + own0.1)
        .as_secs_f64();
    let us_per = own * 1e6 / completed.max(1) as f64;
    Ok(ConnectionRate {
        per_second: completed as f64 / window.as_secs_f64(),
        peak_per_second: best(&slots, per_slot as usize) as f64 * 1000.0
            / (per_slot.min(slots.len() as u128) * SLOT.as_millis()) as f64,
        completed,
        failed: Failures {
            refused: f(0),
            timed_out: f(1),
            reset: f(2),
            no_local_port: f(3),
            other: f(4),
        },
        in_flight,
        // /proc/stat: user nice system idle iowait irq softirq steal.
        cpu_busy: 1.0 - (busy(3) + busy(4)) / total,
        cpu_softirq: busy(6) / total,
        cpu_us_per_connection: us_per,
        cpu_system_share: own1.1.saturating_sub(own0.1).as_secs_f64() / own.max(1e-9),
        cpu_ceiling_per_second: workers as f64 * 1e6 / us_per.max(1e-9),
        counters: Counts::new(),
    })
}

/// This process's CPU time so far, every thread: (user, system).
fn own_cpu() -> (Duration, Duration) {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| Duration::new(v.tv_sec as u64, v.tv_usec as u32 * 1000);
    (t(u.ru_utime), t(u.ru_stime))
}

/// The machine's CPU time so far (`/proc/stat`'s first line, in ticks).
fn cpu_times() -> Result<Vec<u64>> {
    let s = std::fs::read_to_string("/proc/stat")?;
    parse_cpu_line(s.lines().next().unwrap_or_default())
}

fn parse_cpu_line(line: &str) -> Result<Vec<u64>> {
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|x| x.parse())
        .collect::<Result<_, _>>()
        .context("/proc/stat")?;
    if v.len() < 8 {
        bail!("/proc/stat: {line}");
    }
    Ok(v)
}

/// nftables' path: the conntrack statistics of the router's namespace
/// (`/proc/net/stat/nf_conntrack`, a hex line per CPU), summed.
pub fn nf_conntrack_counts(ns: &str) -> Result<Counts> {
    let s = topology::run(
        "ip",
        &["netns", "exec", ns, "cat", "/proc/net/stat/nf_conntrack"],
    )?;
    parse_nf_conntrack(&s)
}

fn parse_nf_conntrack(s: &str) -> Result<Counts> {
    let mut lines = s.lines();
    let names: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let mut out = Counts::new();
    for l in lines {
        for (n, v) in names.iter().zip(l.split_whitespace()) {
            // `entries` is a level, not a count of events.
            if *n == "entries" {
                continue;
            }
            let v = u64::from_str_radix(v, 16).with_context(|| format!("nf_conntrack {n}"))?;
            *out.entry(format!("nf_conntrack {n}")).or_default() += v;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_second_is_the_best_run_of_slots() {
        // A pool running dry after 1.5 s: the best second is before it.
        let slots = [
            10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 0, 0, 0,
        ];
        assert_eq!(best(&slots, 10), 100);
        assert_eq!(best(&[5, 7], 10), 12);
        assert_eq!(best(&[], 10), 0);
    }

    #[test]
    fn failures_are_sorted_by_errno() {
        let io = |e: i32| std::io::Error::from_raw_os_error(e).kind();
        assert_eq!(failure_slot(io(libc::ECONNREFUSED)), 0);
        assert_eq!(failure_slot(io(libc::ETIMEDOUT)), 1);
        assert_eq!(failure_slot(io(libc::ECONNRESET)), 2);
        assert_eq!(failure_slot(ErrorKind::UnexpectedEof), 2);
        assert_eq!(failure_slot(io(libc::EADDRNOTAVAIL)), 3);
        assert_eq!(failure_slot(io(libc::EMFILE)), 4);
    }

    #[test]
    fn proc_stat_and_nf_conntrack_parse() {
        let v = parse_cpu_line("cpu  10 1 20 300 4 0 5 0 0 0").unwrap();
        assert_eq!(v, [10, 1, 20, 300, 4, 0, 5, 0]);
        assert!(parse_cpu_line("cpu 1 2").is_err());
        let c = parse_nf_conntrack(
            "entries  clashres found new invalid ignore delete delete_list insert insert_failed drop\n\
             0000000a 00000000 00000000 00000000 00000001 00000000 00000000 00000000 00000000 00000002 00000000\n\
             0000000a 00000000 00000000 00000000 00000010 00000000 00000000 00000000 00000000 00000000 00000003\n",
        )
        .unwrap();
        assert_eq!(c["nf_conntrack invalid"], 17);
        assert_eq!(c["nf_conntrack insert_failed"], 2);
        assert_eq!(c["nf_conntrack drop"], 3);
        assert!(!c.contains_key("nf_conntrack entries"));
    }
}

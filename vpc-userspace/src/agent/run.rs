//! The agent's process: one tokio runtime serving the Lambda API, the VPC
//! resolvers, the simulated AWS services and the metrics, beside one
//! thread running the lifecycle ([`agent_loop`]).
//!
//! Threads:
//! * the caller's thread (`vpc agent`, `vpc run`) runs [`agent_loop`]: it
//!   owns the pinned maps, applies the API's changes one at a time, runs
//!   the lifecycle's timers, collects expired connections, scales ENIs,
//!   records rejected flows (`crate::flowlogs::recent`, which the
//!   console's handlers read) and writes flow logs. All of it blocks (bpf
//!   map syscalls, `ip` commands, SQLite, files), so it never runs on a
//!   runtime worker. It is the
//!   caller's own thread, not a `spawn_blocking` one, because `tick` is
//!   neither `Send` nor `'static` (`vpc run`'s status screen borrows).
//! * the runtime's two workers ([`WORKERS`]) run the tasks: the API's
//!   endpoint ([`crate::agent::http`]), each VPC's resolver
//!   ([`crate::resolver`]), each simulated service ([`crate::services`])
//!   and the metrics ([`crate::metrics`]). A multi-thread runtime rather
//!   than a current-thread one: the loop keeps the caller's thread, so the
//!   runtime needs threads of its own to drive its I/O and timers; two
//!   (the machine's cores) so that one task stuck in something slow (a
//!   blocking call that should have gone to the blocking pool) does not
//!   hold up the others.
//! * tokio's blocking pool runs what blocks on behalf of a task: the API's
//!   reads of the store, its waits for the loop, invocations (`ip netns
//!   exec`); a scrape's map reads; the resolvers' zone reloads; binding
//!   sockets inside namespaces (on a short-lived thread that entered the
//!   namespace: a socket keeps the namespace it was created in, and a
//!   worker must never enter one).
//!
//! Channels: the API sends each change ([`crate::lambda::operations::Request`]) over
//! an unbounded tokio channel ([`crate::lambda::operations::Ops`]) and waits for its
//! answer on the request's oneshot; the loop takes them one at a time.
//!
//! Shutdown: `stop` (set by the CLI's signal handler) is polled by the
//! loop, every 50 ms (after the change it is applying, if any). When the
//! loop ends, for any reason, the agent turns a
//! `watch` channel to true: every task's server stops accepting and ends,
//! the API's after giving requests in flight [`crate::agent::http::GRACE`];
//! requests still waiting for the loop are answered 503 (the loop's
//! channel is gone). The agent waits for the tasks (bounded), then shuts
//! the runtime down without waiting for blocking work still running (an
//! invocation).
//!
//! Failures: the API's endpoint or the metrics endpoint failing to bind is
//! an error returned at once. A resolver or the services failing (binding
//! or later) is logged and the rest of the agent goes on; the error is
//! returned when the agent stops.
use std::{
    collections::HashMap,
    future::Future,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use crate::{
    agent::http,
    datapath::{self, Maps, PinnedMaps},
    lambda::eni_scaling::scale_enis,
    lambda::operations::{Ops, Request},
    paths::state_dir,
    state::{transact, Lifecycle, State},
};

/// The runtime's worker threads: the machine's two cores.
pub const WORKERS: usize = 2;

/// The pid of the deployment's running agent, if one runs: it holds an
/// exclusive lock on `agent.lock` for its whole life (the kernel drops it
/// when the agent dies, also on SIGKILL) and writes its pid there.
pub fn agent_running(name: &str) -> Result<Option<u32>> {
    let path = state_dir(name).join("agent.lock");
    let Ok(f) = std::fs::File::open(&path) else {
        return Ok(None);
    };
    match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockSharedNonblock) {
        Ok(_free) => Ok(None),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            Ok(std::fs::read_to_string(&path)?.trim().parse().ok())
        }
        Err((_, e)) => bail!("checking {}: {e}", path.display()),
    }
}

/// Takes the agent lock, or says which agent has it.
fn agent_lock(name: &str) -> Result<nix::fcntl::Flock<std::fs::File>> {
    use std::io::{Seek as _, Write as _};
    let path = state_dir(name).join("agent.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("deployment {name:?} is not up"))?;
    // `agent_running` holds a shared lock for a moment to look: a lock
    // held with no live process's pid written is such a look (or an agent
    // that has not written its pid yet; the file may still name a dead
    // predecessor), so it is tried again for a while.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut f = f;
    let mut lock = loop {
        match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(l) => break l,
            Err((back, nix::errno::Errno::EWOULDBLOCK)) => {
                let pid = std::fs::read_to_string(&path).unwrap_or_default();
                let live = pid.trim().parse::<u32>().is_ok_and(|p| {
                    std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|st| {
                        st.rsplit(')')
                            .next()
                            .is_some_and(|r| !r.trim_start().starts_with('Z'))
                    })
                });
                if live || std::time::Instant::now() > deadline {
                    bail!(
                        "an agent (pid {}) already runs for deployment {name}",
                        pid.trim()
                    )
                }
                f = back;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((_, e)) => bail!("locking {}: {e}", path.display()),
        }
    };
    lock.set_len(0)?;
    lock.rewind()?;
    write!(lock, "{}", std::process::id())?;
    Ok(lock)
}

/// The agent: serves the Lambda API and the metrics, runs the lifecycle
/// (activations, updates, idle reclaim, ENI deletion), collects expired
/// connections and scales ENIs. Runs until `stop` is set; `tick` is called
/// about once a second, on the caller's thread. It builds nothing:
/// everything it needs is in the store and the pins, so a restarted agent
/// carries on where one left off.
///
/// It adopts what `up` pinned (programs, links, maps under bpffs) and never
/// recreates it: the datapath forwards while no agent runs, so a new agent
/// after a crash finds every connection and every setting where it was.
pub fn agent(name: &str, stop: &AtomicBool, tick: impl FnMut() -> Result<()>) -> Result<()> {
    let _agent = agent_lock(name)?;
    let s = State::load(name)?;
    datapath::ensure_bpffs()?;
    if !s.pin_dir.join("maps").exists() {
        bail!(
            "deployment {name}: nothing pinned at {} (was the machine rebooted? `vpc down` then `vpc up`)",
            s.pin_dir.display()
        );
    }
    let lc = Lifecycle::load(name).unwrap_or_default();
    tracing::info!("agent of {name} started (pid {})", std::process::id());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .thread_name("vpc-agent")
        .enable_all()
        .build()
        .context("the agent's runtime")?;
    let r = run(name, &s, &lc, &rt, stop, tick);
    // Blocking work still running (an invocation) is not waited for.
    rt.shutdown_timeout(Duration::from_millis(100));
    match &r {
        Ok(()) => tracing::info!("agent of {name} stopped"),
        Err(e) => tracing::error!("agent of {name} stopped: {e:#}"),
    }
    r
}

/// The agent's tasks, each with what it serves.
type Tasks = Vec<(&'static str, JoinHandle<Result<()>>)>;

/// Starts the tasks, records the agent, runs the loop here, then stops the
/// tasks. Whichever way it returns, `shutdown`'s sender goes and with it
/// every task.
fn run(
    name: &str,
    s: &State,
    lc: &Lifecycle,
    rt: &tokio::runtime::Runtime,
    stop: &AtomicBool,
    tick: impl FnMut() -> Result<()>,
) -> Result<()> {
    let (shutdown_tx, shutdown) = watch::channel(false);
    let (ops_tx, ops_rx) = mpsc::unbounded_channel();
    let (tasks, api_url, metrics_url) = rt.block_on(start(
        name,
        lc.api_addr.as_deref(),
        s.metrics_addr.as_deref(),
        ops_tx,
        shutdown,
    ))?;
    transact(name, |_, lc| {
        lc.agent_pid = Some(std::process::id());
        lc.metrics_url = metrics_url;
        lc.api_url = api_url;
        Ok(())
    })?;
    let r = agent_loop(name, stop, tick, ops_rx, rt.handle());
    let _ = shutdown_tx.send(true);
    r.and(rt.block_on(join(tasks)))
}

/// Binds the API's and the metrics' listeners (an error if either cannot
/// be bound) and spawns every task. Returns them with the API's TCP URL
/// and the metrics' URL.
async fn start(
    name: &str,
    api_addr: Option<&str>,
    metrics_addr: Option<&str>,
    ops: Ops,
    shutdown: watch::Receiver<bool>,
) -> Result<(Tasks, Option<String>, Option<String>)> {
    let listeners = http::Listeners::bind(name, api_addr).await?;
    let api_url = listeners.tcp_addr()?.map(|a| format!("http://{a}"));
    // One Lambda API: its execution environments and concurrency are the
    // same through the endpoint and through a Lambda VPC endpoint.
    let routers = crate::lambda::api::routers(name, ops);
    let lambda = routers.api;
    let app = http::endpoint(
        lambda.clone(),
        crate::cloudformation::api::router(name),
        crate::iam::api::router(name),
        crate::iam::sts::router(name),
        crate::ec2::router(name),
        crate::console::router(name),
    );
    // Lambda's public endpoint on the internet: the same endpoint (the API
    // by signature), and function URLs by `Host`.
    let public = crate::lambda::function_url::public(app.clone(), routers.urls);
    let mut tasks: Tasks = vec![];
    let what = "the AWS APIs' endpoint";
    let api = http::serve(listeners, app, shutdown.clone());
    tasks.push((what, tokio::spawn(logged(what, api))));
    // Each VPC's resolver (base + 2). Said at once if it stops: the rest
    // of the agent goes on without it.
    let (n, sd) = (name.to_string(), shutdown.clone());
    let what = "the VPC resolver";
    let resolver = async move { crate::resolver::serve(&n, sd).await };
    tasks.push((what, tokio::spawn(logged(what, resolver))));
    // The simulated AWS services behind VPC endpoints.
    let (n, sd) = (name.to_string(), shutdown.clone());
    let what = "the simulated AWS services";
    let services = async move { crate::services::serve(&n, sd, lambda, public).await };
    tasks.push((what, tokio::spawn(logged(what, services))));
    let mut metrics_url = None;
    if let Some(addr) = metrics_addr {
        // The endpoint could not bind: its error says why.
        let l = crate::metrics::bind(addr).await?;
        metrics_url = Some(format!("http://{}/metrics", l.local_addr()?));
        let (n, sd) = (name.to_string(), shutdown);
        let what = "the metrics endpoint";
        let metrics = async move { crate::metrics::serve(&n, l, sd).await };
        tasks.push((what, tokio::spawn(logged(what, metrics))));
    }
    Ok((tasks, api_url, metrics_url))
}

/// `f`'s result, logged at once if it is an error.
async fn logged(what: &'static str, f: impl Future<Output = Result<()>>) -> Result<()> {
    let r = f.await;
    if let Err(e) = &r {
        tracing::error!("{what} stopped: {e:#}");
    }
    r
}

/// Waits for the tasks, once told to stop: the API's grace and a second
/// more; what still runs then goes with the runtime. The first error.
async fn join(tasks: Tasks) -> Result<()> {
    let deadline = tokio::time::Instant::now() + http::GRACE + Duration::from_secs(1);
    let mut out = Ok(());
    for (what, t) in tasks {
        match tokio::time::timeout_at(deadline, t).await {
            Ok(r) => out = out.and(r.with_context(|| format!("{what}'s task")).and_then(|r| r)),
            Err(_) => tracing::warn!("{what} did not stop in time"),
        }
    }
    out
}

/// The lifecycle's loop, on the caller's thread until `stop`: the API's
/// changes one at a time (each applied here, on this thread only), the
/// lifecycle's timers every 200 ms, conntrack GC, ENI scaling and `tick`
/// every second. Every step blocks (bpf map syscalls, `ip` commands, the
/// store), which is why this is not a task.
///
/// Flow logs are written here too, also files (gzip, fsync, rename): the
/// records come from the maps this loop owns (a window's counters read at
/// each poll, a removed connection's taken during GC), one file per flow
/// log and window, so the I/O is small and rare, and doing it here keeps
/// the maps to one thread and its timing off the runtime's workers.
fn agent_loop(
    name: &str,
    stop: &AtomicBool,
    mut tick: impl FnMut() -> Result<()>,
    mut ops: mpsc::UnboundedReceiver<Request>,
    rt: &tokio::runtime::Handle,
) -> Result<()> {
    let s = State::load(name)?;
    let mut maps = PinnedMaps::open(&s.pin_dir)?;
    let mut last_gc = std::time::Instant::now();
    let mut last_step = std::time::Instant::now();
    let mut drained = HashMap::new();
    // Claims a predecessor killed in the middle of a GC left behind,
    // released on the first GC tick (a second on: never a fresh claim).
    let mut orphans = Some(maps.nat_orphans()?);
    // Every rejected flow is recorded while the agent runs, flow log or
    // not; the recorder reads the ring buffer for the flow logs too.
    let mut drops = crate::flowlogs::recent::Recorder::start(name, &mut maps)?;
    let mut flows = crate::flowlogs::agent::FlowLogAgent::start(name, &s, &mut maps)?;
    let mut logged = s.model.flow_logs.clone();
    // A reconcile cut short (by a crash, or a kill of whoever ran it)
    // finishes first.
    finish_reconcile(name, &mut maps);
    // A host of a cluster: its membership, the cluster's changes.
    let mut member = crate::reconcile::shared::Member::start(name)?;
    while !stop.load(Ordering::Relaxed) {
        match flows.as_mut() {
            Some(f) => {
                if let Err(e) = f.poll(&mut maps, &mut drops) {
                    tracing::warn!("flow logs: {e:#}");
                }
            }
            None => {
                drops.drain();
            }
        }
        if let Err(e) = drops.poll(&mut maps) {
            tracing::warn!("recording drops: {e:#}");
        }
        // The API's changes, one at a time, on this thread only.
        // (Waiting here drives nothing: the runtime's workers do.)
        let next = async { tokio::time::timeout(Duration::from_millis(50), ops.recv()).await };
        match rt.block_on(next) {
            Ok(Some(req)) => {
                let r = crate::lambda::operations::handle(name, &mut maps, req.op);
                let _ = req.reply.send(r);
                continue;
            }
            Err(_timeout) => {}
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
        }
        if let Some(m) = member.as_mut() {
            if let Err(e) = m.poll(name, &mut maps) {
                tracing::warn!("cluster: {e:#}");
            }
        }
        // The lifecycle's timers (each API change runs them too).
        if last_step.elapsed() >= Duration::from_millis(200) {
            last_step = std::time::Instant::now();
            if let Err(e) = crate::lambda::operations::step(name, &mut maps) {
                tracing::warn!("lifecycle: {e:#}");
            }
        }
        if last_gc.elapsed() >= Duration::from_secs(1) {
            last_gc = std::time::Instant::now();
            if let Some(o) = orphans.take() {
                let n = maps.release_nat_orphans(&o)?;
                if n > 0 {
                    tracing::info!("released {n} NAT port claim(s) without a connection");
                }
            }
            // Flow logs take what a removed connection counted since
            // its window was last read.
            let n = maps.ct_gc_with(&s.timeouts, &mut |k, e| {
                if let Some(f) = flows.as_mut() {
                    f.removed(k, e)
                }
            })?;
            finish_reconcile(name, &mut maps);
            // Flow logs added, changed or removed (`vpc apply`).
            if let Ok(now) = State::load(name) {
                if now.model.flow_logs != logged {
                    use crate::flowlogs::agent::FlowLogAgent;
                    flows =
                        FlowLogAgent::reconfigure(flows.take(), name, &now, &mut maps, &mut drops)?;
                    logged = now.model.flow_logs.clone();
                    tracing::info!("flow logs: now {}", logged.len());
                }
            }
            let lc = Lifecycle::load(name)?;
            let reasons = scale_enis(name, &mut maps, &lc, &mut drained).unwrap_or_else(|e| {
                tracing::warn!("scaling Hyperplane ENIs: {e:#}");
                vec![]
            });
            // Read, changed and written under the lock: a whole lifecycle
            // saved from an earlier read would undo what an apply or a
            // Lambda call wrote in between.
            if n > 0 || !reasons.is_empty() {
                crate::state::transact(name, |_, lc| {
                    lc.gc_removed += n as u64;
                    reasons.into_iter().for_each(|r| r.write(lc));
                    Ok(())
                })?;
            }
            tick()?;
        }
    }
    if let Some(f) = flows.as_mut() {
        f.finish(&mut maps, &mut drops)?;
    }
    drops.finish(&mut maps)?;
    // Gone at once for the others (a killed agent's lease expires).
    if let Some(m) = member.as_mut() {
        m.leave();
    }
    Ok(())
}

/// Reconciles the deployment if its desired model is not yet in force.
fn finish_reconcile(name: &str, maps: &mut PinnedMaps) {
    if !State::load(name).is_ok_and(|s| s.pending) {
        return;
    }
    match crate::reconcile::converge(name, maps) {
        Ok(c) => tracing::info!(
            "finished a reconcile: removed [{}], built [{}], policy generation {}",
            c.removed.join(", "),
            c.built.join(", "),
            c.generation
        ),
        Err(e) => tracing::warn!("reconcile: {e:#}"),
    }
}

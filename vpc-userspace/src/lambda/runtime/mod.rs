//! Real handlers through the Lambda Runtime API (version 2018-06-01).
//!
//! A function with a `python3.*` or `nodejs*` `Runtime` (or a `provided.*`
//! one whose code is a bootstrap: it mentions `AWS_LAMBDA_RUNTIME_API`)
//! runs as at AWS: on its first invocation (the cold start) the agent
//! opens the Runtime API at `127.0.0.1:9001` inside the execution
//! environment's namespace, lays its code out under a task root (its
//! package's files, or `Code.ZipFile` as `index.py`, `index.js` or
//! `bootstrap`, as CloudFormation names it: [`super::code`]) and
//! starts the runtime's process there: the official runtime interface
//! client (`python -m awslambdaric <Handler>`, aws-lambda-ric's
//! `index.mjs <Handler>`) or the code's own `bootstrap`. The process stays
//! warm: the next invocations go to its next `GET .../invocation/next`.
//!
//! Sockets and namespaces, as for the resolvers and the services: the
//! listener is made on a short-lived thread that entered the namespace
//! ([`crate::topology::in_netns`]) and handed to tokio; loopback never
//! leaves the namespace, so none of this crosses the router. The process
//! is started with `ip netns exec` (the namespace's `resolv.conf` too).
//!
//! One invocation at a time per execution environment, as at AWS: an
//! invocation takes an idle environment of its function ([`Runtimes::lease`]:
//! a warm one first, else one whose runtime is not started), and when every
//! one is busy the API asks the agent's loop for another (`Op::AddEnv`: a
//! replica in the desired model, built by the reconciler like every node,
//! sending through the same Hyperplane ENI as its subnet's first) and
//! cold-starts it. Environments idle for `Settings::env_idle` on the
//! lifecycle's clock are reaped ([`Runtimes::reap`]): their runtime is
//! stopped, and a replica leaves the model (its namespace goes).
//! `Timeout` runs from the moment the runtime takes the event; a runtime
//! that does not ask for its first event within [`INIT_TIMEOUT`] fails
//! the invocation as AWS's init phase does. On a timeout, an exit or an
//! init error the process group is killed and the environment forgotten:
//! the next invocation starts cold. A function whose code, handler,
//! runtime, variables, memory or timeout changed starts cold too.
//! Processes die with their namespace (`topology::teardown` kills what runs
//! in a namespace before deleting it: `DeleteFunction`, `vpc down`).
//!
//! Logs: the runtime's stdout and stderr go to the environment's console,
//! `/run/vpc/<name>/lambda/<env>/output.log`, with Lambda's `START` / `END`
//! / `REPORT` lines around each invocation; the agent turns each of its
//! lines into an event of the environment's log stream in the function's
//! log group ([`crate::lambda::logs`]): written by the agent, never through
//! the environment's network.
use std::{
    collections::HashMap,
    io::Write as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use axum::{
    body::Bytes,
    extract::{Path as UrlPath, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use crate::{
    lambda::{lifecycle::ApiError, logs},
    model::Runtime,
};

mod process;
mod server;
pub use process::request_id;
use process::{command, exit_error, fingerprint, init_error_body, max_memory_mb, variables};
use server::router;

/// Where the Runtime API listens in every execution environment.
pub const RUNTIME_API_ADDR: &str = "127.0.0.1:9001";

/// How long a runtime may take to ask for its first event (AWS's init
/// phase is limited to 10 s).
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often an environment's console is moved into its log stream (an
/// invocation's start and end move it at once).
const COLLECT_EVERY: Duration = Duration::from_millis(200);

/// The environment variable naming the directory of the runtimes'
/// interpreters and clients (`pyenv/`: a venv with awslambdaric; `node/`:
/// `node_modules/aws-lambda-ric`). Default: the workspace's `target/`,
/// where `cargo xtask` installs them.
pub const RUNTIME_DIR_VAR: &str = "VPC_RUNTIME_DIR";

/// The runtimes' directory: `$VPC_RUNTIME_DIR`, else this build's
/// workspace `target/` (where `cargo xtask provision` installs them).
pub fn runtime_dir() -> PathBuf {
    match std::env::var_os(RUNTIME_DIR_VAR) {
        Some(d) if !d.is_empty() => d.into(),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("/"))
            .join("target"),
    }
}

/// The answer to an Invoke: the body and whether the function failed
/// (`X-Amz-Function-Error: Unhandled`).
pub struct Invoked {
    pub body: Vec<u8>,
    pub unhandled: bool,
    /// The version that ran (`X-Amz-Executed-Version`).
    pub version: String,
    /// The invocation's log lines, `START` to `REPORT` (`LogType=Tail`).
    pub log: Vec<String>,
}

/// The execution environments with a running runtime, by namespace.
pub struct Runtimes {
    name: String,
    envs: Mutex<HashMap<String, Arc<Env>>>,
    /// Every execution environment an invocation has used, by namespace:
    /// whether one runs there now, and since when it is idle.
    slots: Mutex<HashMap<String, Slot>>,
    /// The log streams of the shell-script functions' environments (no
    /// process stays: a stream per environment while the agent runs, a new
    /// one when the function changes).
    scripts: Mutex<HashMap<String, (String, logs::Stream)>>,
}

/// One execution environment's turn: an invocation holds it while it
/// runs (one at a time, as at AWS).
struct Slot {
    turn: Arc<tokio::sync::Mutex<()>>,
    /// The function's id (a version's own) and the environment's number.
    function: String,
    n: usize,
    replica: bool,
    /// When an invocation last took it, on the lifecycle's clock.
    last_used_ms: u64,
    /// Being reaped: taken by no invocation any more.
    retired: bool,
}

/// An execution environment held for one invocation ([`Runtimes::lease`]).
pub struct Lease {
    netns: String,
    env_id: String,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

/// A replica the reaper took out of service, held until the model no
/// longer has it ([`Runtimes::reaped`]).
pub struct Reaped {
    pub function: String,
    pub n: usize,
    netns: String,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

/// The claim's environments (`Envs`), as (namespace, env id, number, replica).
fn claim_envs(claim: &Value) -> Vec<(String, String, usize, bool)> {
    claim["Envs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["Netns"].as_str().unwrap_or_default().to_string(),
                e["EnvId"].as_str().unwrap_or_default().to_string(),
                e["N"].as_u64().unwrap_or(1) as usize,
                e["Replica"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// What the runtime did with an invocation.
enum Event {
    /// It took the event (`GET .../next`).
    Started,
    /// `POST .../{id}/response`.
    Response(Bytes),
    /// `POST .../{id}/error`.
    Error(Bytes),
}

/// One event waiting for the runtime's next `GET .../next`.
struct Invocation {
    id: String,
    payload: Bytes,
    arn: String,
    timeout: Duration,
    events: mpsc::UnboundedSender<Event>,
}

/// How the environment is doing.
#[derive(Clone, Debug)]
enum Health {
    Running,
    /// `POST /runtime/init/error`: its body.
    InitError(Bytes),
    /// The process ended: how.
    Exited(String),
}

/// One execution environment's runtime: its Runtime API server, its
/// process, its queue.
struct Env {
    key: String,
    fingerprint: String,
    queue: mpsc::UnboundedSender<Invocation>,
    next: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    in_flight: Mutex<HashMap<String, mpsc::UnboundedSender<Event>>>,
    health: watch::Sender<Health>,
    pid: Mutex<Option<i32>>,
    server: Mutex<Option<tokio::task::AbortHandle>>,
    /// The console: the process's stdout and stderr, and the agent's
    /// `START` / `END` / `REPORT` lines.
    log: PathBuf,
    /// The console's lines, turned into the log stream's events.
    logs: Mutex<Collector>,
    memory_size: u64,
    fresh: std::sync::atomic::AtomicBool,
    /// Its `MemorySize` as a memory cgroup (`None`: none could be made).
    memory: Mutex<Option<super::cgroup::MemoryLimit>>,
    /// The kernel's OOM killer ended its process (over `MemorySize`).
    oom: std::sync::atomic::AtomicBool,
    /// When the cold start began (`Init Duration`).
    created: Instant,
}

/// Moves the console's new lines into the environment's log stream.
struct Collector {
    stream: logs::Stream,
    /// How far the console has been read.
    offset: u64,
    /// A line not ended yet.
    partial: Vec<u8>,
    /// The lines of the invocation in progress (`LogType=Tail`).
    capture: Option<Vec<String>>,
}

impl Collector {
    /// The console's lines since the last call, as events (a line the
    /// process has not ended yet waits, unless `all`).
    fn collect(&mut self, console: &Path, all: bool) {
        use std::io::{Read as _, Seek as _};
        let Ok(mut f) = std::fs::File::open(console) else {
            return;
        };
        if f.seek(std::io::SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut new = vec![];
        if f.read_to_end(&mut new).is_err() {
            return;
        }
        self.offset += new.len() as u64;
        self.partial.extend_from_slice(&new);
        let now = logs::now_ms();
        let mut lines = vec![];
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            lines.push(String::from_utf8_lossy(&line[..i]).into_owned());
        }
        if all && !self.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned());
        }
        for l in lines {
            if let Err(e) = self.stream.put(now, &l) {
                tracing::warn!("log stream {}: {e:#}", self.stream.name);
            }
            if let Some(c) = &mut self.capture {
                c.push(l);
            }
        }
    }
}

impl Env {
    /// Kills the process group and stops the server. Whoever waits for
    /// its turn sees at once that it is stopped (before the process's exit
    /// is noticed).
    fn kill(&self) {
        self.health.send_modify(|h| {
            if matches!(h, Health::Running) {
                *h = Health::Exited("the execution environment was stopped".into());
            }
        });
        if let Some(pid) = self.pid.lock().expect("lock").take() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let Some(h) = self.server.lock().expect("lock").take() {
            h.abort();
        }
        // What it wrote before it died.
        self.collect(true);
    }

    /// One line of the agent's on the console, and into the stream.
    fn log(&self, line: &str) {
        // Whatever the process wrote before comes first.
        self.collect(false);
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
        {
            let _ = writeln!(f, "{line}");
        }
        self.collect(false);
    }

    fn collect(&self, all: bool) {
        self.logs.lock().expect("lock").collect(&self.log, all);
    }

    /// From now on, the lines are the invocation's too.
    fn begin_capture(&self) {
        self.logs.lock().expect("lock").capture = Some(vec![]);
    }

    fn end_capture(&self) -> Vec<String> {
        self.logs
            .lock()
            .expect("lock")
            .capture
            .take()
            .unwrap_or_default()
    }
}

impl Runtimes {
    pub fn new(name: &str) -> Self {
        Runtimes {
            name: name.to_string(),
            envs: Mutex::new(HashMap::new()),
            slots: Mutex::new(HashMap::new()),
            scripts: Mutex::new(HashMap::new()),
        }
    }

    /// An idle execution environment among the claim's (`Envs`): a warm
    /// one (its runtime running this code) first, else the first not
    /// started. `None`: every one is busy (the caller asks for another).
    pub fn lease(&self, claim: &Value) -> Option<Lease> {
        let now = claim["Now"].as_u64().unwrap_or(0);
        let fp = fingerprint(claim);
        let warm: std::collections::HashSet<String> = self
            .envs
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, e)| e.fingerprint == fp && matches!(*e.health.borrow(), Health::Running))
            .map(|(k, _)| k.clone())
            .collect();
        let mut envs = claim_envs(claim);
        // Warm first, each group in the environments' order.
        envs.sort_by_key(|e| !warm.contains(&e.0));
        let mut slots = self.slots.lock().expect("lock");
        for (netns, env_id, n, replica) in envs {
            let slot = slots.entry(netns.clone()).or_insert_with(|| Slot {
                turn: Default::default(),
                function: claim["FunctionId"].as_str().unwrap_or_default().to_string(),
                n,
                replica,
                last_used_ms: now,
                retired: false,
            });
            if slot.retired {
                continue;
            }
            if let Ok(turn) = slot.turn.clone().try_lock_owned() {
                slot.last_used_ms = slot.last_used_ms.max(now);
                return Some(Lease {
                    netns,
                    env_id,
                    _turn: turn,
                });
            }
        }
        None
    }

    /// The claim's own environment (`Netns`), waiting for its turn (`vpc
    /// invoke --env N`, and when no other environment can be started).
    pub async fn lease_wait(&self, claim: &Value) -> Lease {
        let netns = claim["Netns"].as_str().unwrap_or_default().to_string();
        let env_id = claim["EnvId"].as_str().unwrap_or(&netns).to_string();
        let turn = {
            let mut slots = self.slots.lock().expect("lock");
            let slot = slots.entry(netns.clone()).or_insert_with(|| Slot {
                turn: Default::default(),
                function: claim["FunctionId"].as_str().unwrap_or_default().to_string(),
                n: claim["N"].as_u64().unwrap_or(1) as usize,
                replica: false,
                last_used_ms: 0,
                retired: false,
            });
            slot.last_used_ms = slot.last_used_ms.max(claim["Now"].as_u64().unwrap_or(0));
            slot.turn.clone()
        };
        Lease {
            netns,
            env_id,
            _turn: turn.lock_owned().await,
        }
    }

    /// Environments idle for `idle_ms` at `now_ms` (the lifecycle's
    /// clock): their runtimes stopped; the replicas among them returned,
    /// out of service, for the caller to take out of the model.
    pub fn reap(&self, now_ms: u64, idle_ms: u64) -> Vec<Reaped> {
        let mut out = vec![];
        let mut stop = vec![];
        {
            let mut slots = self.slots.lock().expect("lock");
            for (netns, slot) in slots.iter_mut() {
                if slot.retired || now_ms.saturating_sub(slot.last_used_ms) < idle_ms {
                    continue;
                }
                let Ok(turn) = slot.turn.clone().try_lock_owned() else {
                    continue;
                };
                stop.push(netns.clone());
                if slot.replica {
                    slot.retired = true;
                    out.push(Reaped {
                        function: slot.function.clone(),
                        n: slot.n,
                        netns: netns.clone(),
                        _turn: turn,
                    });
                }
            }
            // An environment whose runtime was stopped starts cold when
            // next taken; it is idle from then on.
            slots.retain(|k, s| s.retired || !stop.contains(k));
        }
        for netns in stop {
            let env = self.envs.lock().expect("lock").get(&netns).cloned();
            if let Some(env) = env {
                tracing::info!("{netns}: idle for {idle_ms} ms, its runtime stopped");
                self.forget(&env);
            }
        }
        out
    }

    /// The reaped replicas are out of the model (or failed to be taken
    /// out: then they serve again).
    pub fn reaped(&self, done: Vec<Reaped>, removed: bool) {
        let mut slots = self.slots.lock().expect("lock");
        for r in done {
            if removed {
                slots.remove(&r.netns);
            } else if let Some(s) = slots.get_mut(&r.netns) {
                s.retired = false;
            }
        }
    }

    /// A shell-script function's invocation log, into its environment's
    /// stream.
    pub fn script_log(&self, claim: &Value, lines: &[(i64, String)]) {
        let key = claim["Netns"].as_str().unwrap_or_default().to_string();
        let fp = fingerprint(claim);
        let mut scripts = self.scripts.lock().expect("lock");
        if scripts.get(&key).is_none_or(|(f, _)| *f != fp) {
            let function_name = claim["Environment"]["AWS_LAMBDA_FUNCTION_NAME"]
                .as_str()
                .unwrap_or_default();
            match logs::Stream::create(
                &self.name,
                &logs::group_name(function_name),
                &logs::stream_name(
                    claim["Version"].as_str().unwrap_or("$LATEST"),
                    chrono::Utc::now(),
                ),
            ) {
                Ok(s) => {
                    scripts.insert(key.clone(), (fp, s));
                }
                Err(e) => {
                    tracing::warn!("a log stream for {key}: {e:#}");
                    return;
                }
            }
        }
        let (_, stream) = scripts.get_mut(&key).expect("made");
        for (t, l) in lines {
            if let Err(e) = stream.put(*t, l) {
                tracing::warn!("log stream {}: {e:#}", stream.name);
            }
        }
    }

    /// Forgets (and kills) an environment, if it is still `env`.
    fn forget(&self, env: &Arc<Env>) {
        let mut envs = self.envs.lock().expect("lock");
        if envs.get(&env.key).is_some_and(|e| Arc::ptr_eq(e, env)) {
            envs.remove(&env.key);
        }
        drop(envs);
        env.kill();
    }

    /// Kills every runtime (the agent stops).
    pub fn kill_all(&self) {
        let envs: Vec<_> = self.envs.lock().expect("lock").drain().collect();
        for (_, e) in envs {
            e.kill();
        }
    }

    /// Invokes the function `claim` describes (Invoke's claim, from
    /// `operations::claim`) with `payload`: cold starts its runtime if it
    /// has none, hands the event to the runtime's next `GET`, waits for
    /// its answer within `Timeout`.
    pub async fn invoke(
        self: &Arc<Self>,
        claim: &Value,
        lease: Lease,
        payload: Bytes,
    ) -> Result<Invoked, ApiError> {
        let mut claim = claim.clone();
        claim["Netns"] = json!(lease.netns);
        claim["EnvId"] = json!(lease.env_id);
        let claim = &claim;
        // An environment that stopped before it took the event (a runtime
        // that died between invocations): a new one.
        let mut attempts = 0;
        let (env, mut health) = loop {
            let env = self.env_for(claim).await?;
            // Subscribed before the check: a later change is seen.
            let health = env.health.subscribe();
            if matches!(*health.borrow(), Health::Running) {
                break (env, health);
            }
            self.forget(&env);
            attempts += 1;
            if attempts == 3 {
                return Err(ApiError::new(
                    502,
                    "ServiceException",
                    "the execution environment keeps stopping",
                ));
            }
        };
        let cold = env.fresh.swap(false, std::sync::atomic::Ordering::Relaxed);
        let timeout = Duration::from_secs(claim["Timeout"].as_u64().unwrap_or(3));
        // A function URL's request names its invocation's id itself.
        let id = claim["RequestId"]
            .as_str()
            .map_or_else(request_id, str::to_string);
        let (tx, mut events) = mpsc::unbounded_channel();
        let version = claim["Version"].as_str().unwrap_or("$LATEST");
        env.begin_capture();
        env.log(&format!("START RequestId: {id} Version: {version}"));
        let invocation = Invocation {
            id: id.clone(),
            payload,
            arn: claim["FunctionArn"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            timeout,
            events: tx,
        };
        if env.queue.send(invocation).is_err() {
            self.forget(&env);
            return Err(ApiError::new(
                502,
                "ServiceException",
                "the runtime is gone",
            ));
        }
        let init_started = Instant::now();
        // The init phase: until the runtime takes the event.
        let failed = |body: Value| Invoked {
            body: serde_json::to_vec(&body).expect("JSON"),
            unhandled: true,
            version: String::new(),
            log: vec![],
        };
        let answered = |body: Bytes, unhandled: bool| Invoked {
            body: body.to_vec(),
            unhandled,
            version: String::new(),
            log: vec![],
        };
        let outcome = loop {
            tokio::select! {
                e = events.recv() => match e {
                    Some(Event::Started) => break None,
                    Some(Event::Response(b)) => break Some(answered(b, false)),
                    Some(Event::Error(b)) => break Some(answered(b, true)),
                    None => break Some(failed(exit_error(&env, &id, "the runtime went away"))),
                },
                r = health.changed() => {
                    let h = if r.is_ok() { health.borrow_and_update().clone() } else { Health::Exited("gone".into()) };
                    match h {
                        Health::Running => continue,
                        Health::InitError(b) => {
                            self.forget(&env);
                            break Some(Invoked { body: init_error_body(&b), unhandled: true, version: String::new(), log: vec![] });
                        }
                        Health::Exited(how) => {
                            self.forget(&env);
                            break Some(failed(exit_error(&env, &id, &how)));
                        }
                    }
                }
                () = tokio::time::sleep(INIT_TIMEOUT) => {
                    self.forget(&env);
                    break Some(failed(json!({
                        "errorType": "Runtime.Unknown",
                        "errorMessage": format!(
                            "RequestId: {id} Error: the runtime did not ask for an event within {} s (init phase)",
                            INIT_TIMEOUT.as_secs()
                        ),
                    })));
                }
            }
        };
        // A cold start's init: from the process's start to its first
        // event.
        let init = if cold {
            env.created.elapsed()
        } else {
            init_started.elapsed()
        };
        let began = Instant::now();
        let mut peak = None;
        let outcome = match outcome {
            Some(o) => o,
            None => {
                let run = async {
                    loop {
                        tokio::select! {
                            e = events.recv() => match e {
                                Some(Event::Started) => continue,
                                Some(Event::Response(b)) => return answered(b, false),
                                Some(Event::Error(b)) => return answered(b, true),
                                None => return failed(exit_error(&env, &id, "the runtime went away")),
                            },
                            r = health.changed() => {
                                let h = if r.is_ok() { health.borrow_and_update().clone() } else { Health::Exited("gone".into()) };
                                match h {
                                    Health::Running | Health::InitError(_) => continue,
                                    Health::Exited(how) => {
                                        self.forget(&env);
                                        return failed(exit_error(&env, &id, &how));
                                    }
                                }
                            }
                        }
                    }
                };
                match tokio::time::timeout(timeout, run).await {
                    Ok(o) => o,
                    Err(_) => {
                        // As Lambda: the environment is stopped.
                        peak = max_memory_mb(&env);
                        self.forget(&env);
                        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
                        let msg = format!(
                            "{now} {id} Task timed out after {:.2} seconds",
                            timeout.as_secs_f64()
                        );
                        env.log(&msg);
                        failed(json!({ "errorMessage": msg }))
                    }
                }
            }
        };
        env.in_flight.lock().expect("lock").remove(&id);
        let ms = began.elapsed().as_secs_f64() * 1000.0;
        env.log(&format!("END RequestId: {id}"));
        let init = if cold {
            format!("\tInit Duration: {:.2} ms", init.as_secs_f64() * 1000.0)
        } else {
            String::new()
        };
        env.log(&format!(
            "REPORT RequestId: {id}\tDuration: {ms:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB{init}",
            ms.ceil() as u64,
            env.memory_size,
            peak.or_else(|| max_memory_mb(&env)).unwrap_or(0),
        ));
        drop(lease);
        Ok(Invoked {
            version: version.to_string(),
            log: env.end_capture(),
            ..outcome
        })
    }

    /// The running environment for the claim, or a new one (cold start).
    async fn env_for(self: &Arc<Self>, claim: &Value) -> Result<Arc<Env>, ApiError> {
        let key = claim["Netns"].as_str().unwrap_or_default().to_string();
        let fingerprint = fingerprint(claim);
        {
            let mut envs = self.envs.lock().expect("lock");
            if let Some(e) = envs.get(&key) {
                if e.fingerprint == fingerprint && matches!(*e.health.borrow(), Health::Running) {
                    return Ok(e.clone());
                }
                let old = envs.remove(&key).expect("present");
                old.kill();
            }
        }
        let env = self
            .start(claim, key.clone(), fingerprint)
            .await
            .map_err(|e| {
                ApiError::new(
                    502,
                    "ServiceException",
                    format!("starting the runtime: {e:#}"),
                )
            })?;
        let mut envs = self.envs.lock().expect("lock");
        if let Some(other) = envs.insert(key, env.clone()) {
            other.kill();
        }
        Ok(env)
    }

    /// Cold start: the Runtime API in the namespace, the task root, the
    /// process.
    async fn start(
        self: &Arc<Self>,
        claim: &Value,
        key: String,
        fingerprint: String,
    ) -> Result<Arc<Env>> {
        let runtime_name = claim["Runtime"].as_str().unwrap_or_default().to_string();
        let family = Runtime::parse(&runtime_name).map_err(anyhow::Error::msg)?;
        let env_id = claim["EnvId"].as_str().unwrap_or(&key).to_string();
        let dir = crate::paths::state_dir(&self.name)
            .join("lambda")
            .join(&env_id);
        let task = dir.join("task");
        let code = claim["Code"].as_str().unwrap_or_default().to_string();
        let package = claim["Package"].as_str().map(PathBuf::from);
        // What runs, checked before anything listens: a runtime that is
        // not installed leaves no Runtime API bound behind it.
        let (program, args) = command(family, &runtime_dir(), claim, &task)?;
        let ns = key.clone();
        // Blocking: files, and the listener made inside the namespace.
        let (listener, task) = tokio::task::spawn_blocking(move || -> Result<_> {
            let _ = std::fs::remove_dir_all(&task);
            std::fs::create_dir_all(&task)
                .with_context(|| format!("creating {}", task.display()))?;
            super::code::lay_out(&task, family, &code, package.as_deref())?;
            let l = crate::topology::in_netns(&ns, || {
                // A restarted environment's predecessor was aborted just
                // now: its listener goes when its task is next polled.
                let deadline = Instant::now() + Duration::from_secs(2);
                let l = loop {
                    match std::net::TcpListener::bind(RUNTIME_API_ADDR) {
                        Err(e)
                            if e.kind() == std::io::ErrorKind::AddrInUse
                                && Instant::now() < deadline =>
                        {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        r => break r,
                    }
                }
                .with_context(|| format!("the Runtime API on {RUNTIME_API_ADDR} in {ns}"))?;
                l.set_nonblocking(true)?;
                Ok(l)
            })?;
            Ok((l, task))
        })
        .await??;
        // Its log stream, from the console's end: what an earlier
        // environment wrote there is in that one's stream.
        let console = dir.join("output.log");
        let offset = std::fs::metadata(&console).map(|m| m.len()).unwrap_or(0);
        let function_name = claim["Environment"]["AWS_LAMBDA_FUNCTION_NAME"]
            .as_str()
            .unwrap_or_default();
        let stream = logs::Stream::create(
            &self.name,
            &logs::group_name(function_name),
            &logs::stream_name(
                claim["Version"].as_str().unwrap_or("$LATEST"),
                chrono::Utc::now(),
            ),
        )?;
        let (queue, next) = mpsc::unbounded_channel();
        let (health, _) = watch::channel(Health::Running);
        let env = Arc::new(Env {
            key: key.clone(),
            fingerprint,
            queue,
            next: tokio::sync::Mutex::new(next),
            in_flight: Mutex::new(HashMap::new()),
            health,
            pid: Mutex::new(None),
            server: Mutex::new(None),
            log: console,
            logs: Mutex::new(Collector {
                stream,
                offset,
                partial: vec![],
                capture: None,
            }),
            memory_size: claim["MemorySize"].as_u64().unwrap_or(128),
            fresh: std::sync::atomic::AtomicBool::new(true),
            memory: Mutex::new(None),
            oom: std::sync::atomic::AtomicBool::new(false),
            created: Instant::now(),
        });
        // The console's lines reach the stream within a moment, also
        // between invocations and during a long one.
        let weak = Arc::downgrade(&env);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(COLLECT_EVERY).await;
                match weak.upgrade() {
                    Some(e) => e.collect(false),
                    None => return,
                }
            }
        });
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let app = router(env.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!("a Runtime API server stopped: {e}");
            }
        });
        *env.server.lock().expect("lock") = Some(server.abort_handle());
        // The process (whatever fails from here stops the server).
        let log = match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&env.log)
            .and_then(|l| Ok((l.try_clone()?, l)))
        {
            Ok(l) => l,
            Err(e) => {
                env.kill();
                return Err(e).with_context(|| format!("opening {}", env.log.display()));
            }
        };
        let mut cmd = tokio::process::Command::new("ip");
        cmd.args(["netns", "exec", &key])
            .arg(&program)
            .args(&args)
            .current_dir(&task)
            .env_clear()
            .envs(variables(family, claim, &task))
            .stdin(std::process::Stdio::null())
            .stdout(log.0)
            .stderr(log.1)
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                env.kill();
                return Err(e).with_context(|| format!("starting {}", program.display()));
            }
        };
        *env.pid.lock().expect("lock") = child.id().map(|p| p as i32);
        // `MemorySize` as a limit, the process in it before it has read
        // its handler (what it starts afterwards follows it).
        match super::cgroup::MemoryLimit::create(&self.name, &env_id, env.memory_size << 20) {
            Ok(m) => {
                if let Some(pid) = child.id() {
                    if let Err(e) = m.add(pid) {
                        tracing::warn!("{key}: no memory limit: {e:#}");
                    }
                }
                *env.memory.lock().expect("lock") = Some(m);
            }
            Err(e) => tracing::warn!("{key}: no memory limit: {e:#}"),
        }
        tracing::info!(
            "{}: cold start of {runtime_name} in {key} (pid {:?})",
            claim["FunctionArn"].as_str().unwrap_or_default(),
            child.id()
        );
        // The process's end: said to whoever waits, and the environment
        // forgotten.
        let (me, e) = (self.clone(), env.clone());
        tokio::spawn(async move {
            let status = child.wait().await;
            let oom = e
                .memory
                .lock()
                .expect("lock")
                .take()
                .is_some_and(|m| m.oom_killed());
            e.oom.store(oom, std::sync::atomic::Ordering::Relaxed);
            let how = match status {
                // As Lambda (Go's wording) says it.
                Ok(st) if std::os::unix::process::ExitStatusExt::signal(&st) == Some(9) => {
                    "Runtime exited with error: signal: killed".to_string()
                }
                Ok(st) => format!("Runtime exited with error: {st}"),
                Err(err) => format!("Runtime exited: {err}"),
            };
            let how = how.replace("exit status: ", "exit status ");
            e.pid.lock().expect("lock").take();
            e.health.send_modify(|h| {
                if matches!(h, Health::Running) {
                    *h = Health::Exited(how.clone());
                }
            });
            me.forget(&e);
        });
        Ok(env)
    }
}

impl Drop for Runtimes {
    fn drop(&mut self) {
        self.kill_all();
    }
}

#[cfg(test)]
mod tests;

//! Helpers for the integration tests (tests/integration/), written once:
//! deployments that always clean up, threads inside namespaces, servers
//! and clients in them, the templates under tests/fixtures/, and a
//! BPF_PROG_TEST_RUN harness; the fuzzers' independent parser (`wire`) and
//! oracle (`oracle`); a real etcd for the cluster store (`etcd`).
//!
//! Every deployment gets a unique name (process id + counter), so tests run
//! in parallel, and is torn down on drop, also when the test panics.
use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Write as _},
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Command, Output},
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        mpsc, Arc,
    },
    time::{Duration, Instant},
};

pub mod etcd;
pub mod frames;
pub mod oracle;
pub mod wire;

use aya::programs::{TestRun, TestRunOptions};
use vpc::{
    compile::{self, Entries, LinkInfo},
    datapath::{Counters, Datapath, Maps, Timeouts},
    model::{self, Model},
};

/// The `vpc` binary (`cargo xtask test` builds it first).
pub fn vpc_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VPC_BIN") {
        return p.into();
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/vpc");
    assert!(
        p.exists(),
        "{} missing: run `cargo xtask test` (it builds the binary first)",
        p.display()
    );
    p
}

/// The venv `target/pyenv` (boto3, the AWS CLI, flowlogs-reader and
/// awslambdaric, installed by `cargo xtask test`), or `$VPC_RUNTIME_DIR/pyenv`
/// when set (the runtimes' directory, as the agent finds it).
pub fn pyenv() -> PathBuf {
    match std::env::var_os("VPC_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("pyenv"),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv"),
    }
}

/// aws-cdk-lib and constructs (`node_modules`), installed by `cargo xtask
/// provision` into `target/cdk`, or `$VPC_RUNTIME_DIR/cdk` when set.
pub fn cdk_node_modules() -> PathBuf {
    let dir = match std::env::var_os("VPC_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("cdk"),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/cdk"),
    }
    .join("node_modules");
    assert!(
        dir.join("aws-cdk-lib").exists(),
        "{} has no aws-cdk-lib: `cargo xtask provision` installs it",
        dir.display()
    );
    dir
}

/// The AWS CLI of [`pyenv`] against `url` (`--output json`), with
/// credentials of nobody's and no configuration of the machine's.
pub fn aws_cli(url: &str, args: &[&str]) -> Output {
    let aws = pyenv().join("bin/aws");
    assert!(
        aws.exists(),
        "{} missing: `cargo xtask provision` installs the AWS CLI",
        aws.display()
    );
    let home = std::env::temp_dir().join("vpc-tests-aws-cli");
    Command::new(aws)
        .args(["--endpoint-url", url, "--output", "json"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        .env(
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("running the AWS CLI")
}

/// The Python of [`pyenv`].
pub fn pyenv_python() -> PathBuf {
    let p = pyenv().join("bin/python");
    assert!(
        p.exists(),
        "{} missing: `cargo xtask test` (or `cargo xtask provision`) installs boto3 and flowlogs-reader there",
        p.display()
    );
    p
}

/// `vpc up` flags for a deployment whose functions are `Active` when `up`
/// returns: a short ENI delay, waited for.
pub const FAST: &[&str] = &["--eni-delay", "100ms", "--wait"];

/// A file under tests/fixtures/ as text, read at compile time: the
/// templates, one per topology, named after what they model.
#[macro_export]
macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/", $name))
    };
}

/// The path of a file under tests/fixtures/ (the Python scripts the tests run).
pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A deployment name no concurrent test uses.
pub fn unique_name(tag: &str) -> String {
    format!(
        "{tag}{}x{}",
        std::process::id() % 100_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn vpc(name: &str, args: &[&str]) -> Output {
    vpc_env(name, args, &[])
}

/// `vpc` with environment variables of its own (`VPC_PARAMETER_STORE`, ...).
pub fn vpc_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(vpc_bin())
        .arg("--name")
        .arg(name)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("running vpc")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A deployment brought up with `vpc up`, torn down with `vpc down` on drop.
pub struct Deployment {
    pub name: String,
}

impl Deployment {
    /// `template`: "default" or YAML text.
    pub fn up(tag: &str, template: &str, extra: &[&str]) -> Self {
        Self::up_env(tag, template, extra, &[])
    }

    /// `up` with environment variables for `vpc up` (and its agent).
    pub fn up_env(tag: &str, template: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let name = unique_name(tag);
        let path;
        let t = if template == "default" {
            "default".to_string()
        } else {
            path = std::env::temp_dir().join(format!("{name}.yaml"));
            std::fs::File::create(&path)
                .unwrap()
                .write_all(template.as_bytes())
                .unwrap();
            path.display().to_string()
        };
        let mut args = vec!["up", &t];
        args.extend_from_slice(extra);
        let d = Deployment { name };
        let out = vpc_env(&d.name, &args, env);
        // Read once, by `up`: nothing to leave in /tmp.
        if template != "default" {
            let _ = std::fs::remove_file(&t);
        }
        assert!(out.status.success(), "vpc up failed:\n{}", text(&out));
        d
    }

    /// `vpc up` of a template file as it is (its directory is where its
    /// `Code` paths, `CodeUri` and CDK assets are found), run from another
    /// working directory. Torn down on drop also when `up` failed half way.
    pub fn up_file(tag: &str, template: &std::path::Path, extra: &[&str]) -> Self {
        let name = unique_name(tag);
        let out = Command::new(vpc_bin())
            .args(["--name", &name, "up"])
            .arg(template)
            .args(extra)
            .current_dir("/")
            .output()
            .expect("running vpc");
        let d = Deployment { name };
        assert!(out.status.success(), "vpc up failed:\n{}", text(&out));
        d
    }

    pub fn vpc(&self, args: &[&str]) -> Output {
        vpc(&self.name, args)
    }

    pub fn status(&self) -> serde_json::Value {
        let out = self.vpc(&["status", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    pub fn dropped(&self, reason: &str) -> u64 {
        let s = self.status();
        s["counters"]["dropped"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r[0] == reason)
            .and_then(|r| r[1].as_u64())
            .unwrap_or(0)
    }

    pub fn netns(&self, id: &str) -> String {
        vpc::topology::node_netns(&self.name, id)
    }

    pub fn exec_env_netns(&self, function_id: &str) -> String {
        vpc::topology::node_netns(&self.name, &format!("fn-{function_id}"))
    }

    /// Namespace of execution environment `n` (1-based) of a function.
    pub fn exec_env_netns_n(&self, function_id: &str, n: usize) -> String {
        vpc::topology::exec_env_netns(&self.name, function_id, n)
    }

    /// Address of the Hyperplane ENI in `subnet`.
    pub fn eni_address(&self, subnet: &str) -> String {
        let s = self.status();
        s["enis"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["subnet"] == subnet)
            .expect("ENI")["address"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// `vpc apply` of a template's text (written to a file that `apply`
    /// reads once, then removed): its output.
    pub fn try_apply(&self, template: &str) -> Output {
        self.try_apply_with(template, &[], &[])
    }

    /// `vpc apply` of a template's text with more arguments (`-p K=V`) and
    /// environment variables: its output.
    pub fn try_apply_with(&self, template: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let path = std::env::temp_dir().join(format!("{}-apply.yaml", self.name));
        std::fs::write(&path, template).unwrap();
        let mut all = vec!["apply", path.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = vpc_env(&self.name, &all, env);
        let _ = std::fs::remove_file(&path);
        out
    }

    /// `vpc apply` of a template's text, which must succeed.
    pub fn apply(&self, template: &str) {
        let out = self.try_apply(template);
        assert!(out.status.success(), "{}", text(&out));
    }

    /// Kills the deployment's agent with SIGKILL and waits until it is
    /// gone (dying takes a while on a loaded machine, and a successor
    /// needs its lock).
    pub fn kill_agent(&self) {
        let pid = vpc::deploy::Lifecycle::load(&self.name)
            .unwrap()
            .agent_pid
            .expect("an agent");
        // SAFETY: a signal to the deployment's own agent.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
        while vpc::deploy::agent_running(&self.name).unwrap().is_some() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The Hyperplane ENIs as `vpc eni list --json` shows them.
    pub fn eni_list(&self) -> Vec<serde_json::Value> {
        let out = self.vpc(&["eni", "list", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let out = vpc(&self.name, &["down"]);
        if !out.status.success() && !std::thread::panicking() {
            panic!("vpc down failed: {}", text(&out));
        }
    }
}

/// Namespaces whose name starts with `prefix-`.
pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("{prefix}-")))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `f` on a new thread inside namespace `ns`; join the handle for its result.
pub fn spawn_in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("namespace exists");
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
}

/// Runs `f` on a thread in a fresh, private network namespace: whatever it
/// creates there disappears with the thread, pass or fail.
pub fn in_private_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("unshare(CLONE_NEWNET)");
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// Sends one SYN to `to` from the current namespace and gives up at once:
/// a socket closed in SYN-SENT sends nothing more, so a connection that is
/// refused counts one packet exactly, where a connect with a timeout would
/// retransmit if the machine is too loaded to give up in time.
pub fn one_syn(to: std::net::SocketAddr) {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, SockaddrStorage};
    use std::os::fd::AsRawFd;
    let family = match to {
        std::net::SocketAddr::V4(_) => AddressFamily::Inet,
        std::net::SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let s = socket(family, SockType::Stream, SockFlag::SOCK_NONBLOCK, None).expect("socket");
    let r = connect(s.as_raw_fd(), &SockaddrStorage::from(to));
    assert_eq!(r, Err(nix::errno::Errno::EINPROGRESS), "the SYN is sent");
}

/// Polls `f` every 200 ms until it holds; fails the test after `secs`.
pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `nc -z` from a function (`invoke`) or a host (`exec`): does a TCP
/// connection to `host:port` open within `wait` seconds? Expected to open:
/// 5 s, room for a lost SYN and a loaded machine; expected to fail: 1 s,
/// as a refused SYN never connects however long nc waits.
pub fn connects(d: &Deployment, verb: &str, who: &str, host: &str, port: u16, wait: u32) -> bool {
    // The outer bound only for an nc that hangs, past its own wait.
    let (port, bound) = (port.to_string(), (wait + 30).to_string());
    let wait = format!("-w{wait}");
    d.vpc(&[
        verb, who, "--", "timeout", &bound, "nc", "-z", &wait, host, &port,
    ])
    .status
    .success()
}

/// A thread in a namespace that runs until the test stops it, not for a
/// fixed time (a loaded machine runs tests slowly). Dropped, also when a
/// test fails, it is stopped and joined: nothing it holds outlives the test.
pub struct Running<T> {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<T>>,
}

impl<T: Send + 'static> Running<T> {
    /// Runs `f` in `ns`; returns once `f` says it is ready (bound). `f`
    /// polls the flag and ends when it is set.
    pub fn start(
        ns: &str,
        f: impl FnOnce(mpsc::Sender<()>, &AtomicBool) -> T + Send + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let flag = stop.clone();
        let thread = spawn_in_netns(ns, move || f(tx, &flag));
        let mut r = Running {
            stop,
            thread: Some(thread),
        };
        if rx.recv().is_err() {
            // It ended before it was ready: its panic says why.
            r.join();
            panic!("ended before it was ready");
        }
        r
    }

    /// Stops it now; what it returns.
    pub fn stop(mut self) -> T {
        self.stop.store(true, Ordering::Relaxed);
        self.join()
    }

    /// Waits up to `secs` for it to end by itself (a server that had its
    /// connection), then stops it; what it returns.
    pub fn finish(self, secs: u64) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.thread.as_ref().unwrap().is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop()
    }

    fn join(&mut self) -> T {
        self.thread
            .take()
            .unwrap()
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

impl<T> Drop for Running<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accepts one connection and answers "pong" to its first line; `finish`
/// gives the peer, `stop` (nothing expected) `None`.
pub fn tcp_server(ns: &str, addr: &str) -> Running<Option<SocketAddr>> {
    let addr: SocketAddr = addr.parse().unwrap();
    Running::start(ns, move |ready, stop| {
        let l = TcpListener::bind(addr).expect("bind");
        l.set_nonblocking(true).unwrap();
        ready.send(()).unwrap();
        loop {
            match l.accept() {
                Ok((mut s, peer)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                    let mut line = String::new();
                    let _ = BufReader::new(s.try_clone().unwrap()).read_line(&mut line);
                    let _ = s.write_all(b"pong\n");
                    return Some(peer);
                }
                Err(_) if stop.load(Ordering::Relaxed) => return None,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    })
}

/// Answers every connection, until the test stops it, with the peer it
/// sees (`ip:port` and a newline) once the client has sent a line: what a
/// function's handler reports back to show which address its connection
/// came from. Returns how many connections it answered.
pub fn peer_server(ns: &str, addr: &str) -> Running<usize> {
    let addr: SocketAddr = addr.parse().unwrap();
    Running::start(ns, move |ready, stop| {
        let l = TcpListener::bind(addr).expect("bind");
        l.set_nonblocking(true).unwrap();
        ready.send(()).unwrap();
        let mut answered = 0;
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((mut s, peer)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let mut line = String::new();
                    let _ = BufReader::new(s.try_clone().unwrap()).read_line(&mut line);
                    if s.write_all(format!("{peer}\n").as_bytes()).is_ok() {
                        answered += 1;
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        answered
    })
}

/// Echoes lines on one connection until it closes or the test stops it,
/// however long it stays idle in between.
pub fn line_echo_server(ns: &str, addr: &str) -> Running<()> {
    let addr: SocketAddr = addr.parse().unwrap();
    Running::start(ns, move |ready, stop| {
        let l = TcpListener::bind(addr).unwrap();
        l.set_nonblocking(true).unwrap();
        ready.send(()).unwrap();
        let s = loop {
            match l.accept() {
                Ok((s, _)) => break s,
                Err(_) if stop.load(Ordering::Relaxed) => return,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        s.set_nonblocking(false).unwrap();
        // Short waits, to see the stop flag.
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        while !stop.load(Ordering::Relaxed) {
            match r.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {
                    if w.write_all(line.as_bytes()).is_err() {
                        break;
                    }
                    line.clear();
                }
                // A timeout leaves what it read of the line in `line`.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
    })
}

/// A long-lived TCP connection from namespace `ns` to `to`, driven step
/// by step: [`LineClient::echoes`] sends a line and says whether its echo
/// came back within the time given (long where it must come, short where
/// it must not).
pub struct LineClient {
    go: Option<mpsc::Sender<(String, u64)>>,
    res: mpsc::Receiver<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LineClient {
    pub fn connect(ns: &str, to: &str) -> Self {
        let to: SocketAddr = to.parse().unwrap();
        let (go, go_rx) = mpsc::channel::<(String, u64)>();
        let (res_tx, res) = mpsc::channel::<bool>();
        let thread = spawn_in_netns(ns, move || {
            let s = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(30)).unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            for (msg, secs) in go_rx {
                w.set_read_timeout(Some(Duration::from_secs(secs))).unwrap();
                let mut line = String::new();
                let ok = w.write_all(format!("{msg}\n").as_bytes()).is_ok()
                    && r.read_line(&mut line).is_ok()
                    && line.trim() == msg;
                res_tx.send(ok).unwrap();
            }
        });
        Self {
            go: Some(go),
            res,
            thread: Some(thread),
        }
    }

    pub fn echoes(&self, msg: &str, secs: u64) -> bool {
        self.go
            .as_ref()
            .unwrap()
            .send((msg.to_string(), secs))
            .unwrap();
        self.res.recv().unwrap()
    }
}

impl Drop for LineClient {
    fn drop(&mut self) {
        self.go.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The value of the OpenMetrics sample `name` (with its labels, if any).
pub fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// A deterministic generator (xorshift64*): a failing seed replays.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// A loaded datapath fed from a template, with one veth device per host and
/// execution environment as its ingress ports (inside a private netns).
pub struct Harness {
    pub dp: Datapath,
    pub model: Model,
    pub entries: Entries,
    pub links: HashMap<String, LinkInfo>,
}

impl Harness {
    /// Call inside [`in_private_netns`].
    pub fn new(template: &str) -> Self {
        Self::with_conntrack(template, vpc_common::CT_MAX_ENTRIES)
    }

    /// As `new`, with a conntrack table of `ct_max` entries.
    pub fn with_conntrack(template: &str, ct_max: u32) -> Self {
        let model = model::build(template, &HashMap::new(), "test").expect("template");
        Self::with_model(model, ct_max)
    }

    /// As `with_conntrack`, from a model (one a test changed as the agent
    /// would, e.g. an ENI added).
    pub fn with_model(model: Model, ct_max: u32) -> Self {
        let mut links = HashMap::new();
        let ids: Vec<String> = model
            .hosts
            .iter()
            .map(|h| h.id.clone())
            .chain(model.internet_hosts.iter().map(|h| h.id.clone()))
            .chain(
                model
                    .functions
                    .iter()
                    .flat_map(|f| f.envs().into_iter().map(|e| e.id)),
            )
            .chain(model.vpcs.iter().filter_map(|v| v.resolver_id()))
            .chain(
                model
                    .has_aws_services()
                    .then(|| model::endpoint::AWS_SERVICES_ID.to_string()),
            )
            .chain(
                model
                    .has_internet()
                    .then(|| model::internet::AWS_PUBLIC_ID.to_string()),
            )
            .collect();
        for (i, id) in ids.iter().enumerate() {
            let dev = format!("d{i}");
            // A veth end as a stand-in ingress device (this kernel has no dummy).
            let peer = format!("{dev}p");
            let st = Command::new("ip")
                .args(["link", "add", &dev, "type", "veth", "peer", "name", &peer])
                .status()
                .unwrap();
            assert!(st.success());
            let ifindex = nix::net::if_::if_nametoindex(dev.as_str()).expect("ifindex");
            links.insert(
                id.clone(),
                LinkInfo {
                    ifindex,
                    mac: [2, 0, 0, 0, 0, i as u8 + 1],
                    router_mac: [2, 0, 0, 0, 1, i as u8 + 1],
                },
            );
        }
        let entries = compile::compile(&model, &links, 0).expect("compile");
        let mut dp = Datapath::load_with(&Timeouts::default(), ct_max).expect("load datapath");
        dp.install(&entries).expect("install");
        Harness {
            dp,
            model,
            entries,
            links,
        }
    }

    pub fn ifindex(&self, id: &str) -> u32 {
        self.links[id].ifindex
    }

    /// Runs the router once on `frame` arriving on `ingress`: (verdict, frame out).
    pub fn run(&mut self, ingress: u32, frame: &[u8]) -> (u32, Vec<u8>) {
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
        ctx[12..16].copy_from_slice(&ingress.to_ne_bytes());
        let mut out = vec![0u8; frame.len() + 512];
        let prog = self.dp.program(vpc::datapath::ROUTER_PROGRAM).unwrap();
        let r = prog
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ctx_in: Some(&ctx),
                ..Default::default()
            })
            .expect("BPF_PROG_TEST_RUN");
        out.truncate(r.data_size_out as usize);
        (r.return_value, out)
    }

    /// Runs the TC program once on `frame` arriving on `ingress` (the
    /// `__sk_buff`'s ifindex; BPF_PROG_TEST_RUN builds the socket buffer
    /// from the bytes, a VLAN tag included, as no device took it off):
    /// (TC action, frame out).
    pub fn run_tc(&mut self, ingress: u32, frame: &[u8]) -> (i32, Vec<u8>) {
        use aya::programs::SchedClassifier;
        // `struct __sk_buff` up to `ifindex` (offset 40): the kernel honours
        // only a few fields (mark, priority, ifindex, cb, ...), not the VLAN ones.
        let mut ctx = [0u8; 44];
        ctx[40..44].copy_from_slice(&ingress.to_ne_bytes());
        let mut out = vec![0u8; frame.len() + 512];
        let prog: &mut SchedClassifier = self
            .dp
            .ebpf
            .program_mut(vpc::datapath::ROUTER_TC_PROGRAM)
            .unwrap()
            .try_into()
            .unwrap();
        let r = prog
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ctx_in: Some(&ctx),
                ..Default::default()
            })
            .expect("BPF_PROG_TEST_RUN (TC)");
        out.truncate(r.data_size_out as usize);
        (r.return_value as i32, out)
    }

    /// Switches the datapath to `template`'s policy (groups, ACLs, routes)
    /// in the other generation, as `vpc apply` does.
    pub fn switch_to(&mut self, template: &str) {
        use vpc::datapath::Maps;
        let m = model::build(template, &HashMap::new(), "test").expect("template");
        let gen = self.dp.generation().unwrap() ^ 1;
        let e = compile::compile(&m, &self.links, gen).expect("compile");
        self.dp.switch_policy(&e).unwrap();
    }

    pub fn counters(&mut self) -> Counters {
        self.dp.counters().unwrap()
    }

    /// Activates every execution environment (as the agent does once its
    /// function's ENI is ready).
    pub fn activate(&mut self) {
        for f in self.model.functions.clone() {
            for (env, group) in compile::env_enis(&self.model, &f) {
                let ifindex = self.ifindex(&env);
                self.dp.set_port_eni(ifindex, group).unwrap();
            }
        }
    }
}

pub const XDP_DROP: u32 = 1;
/// TC actions: `TC_ACT_SHOT`, `TC_ACT_REDIRECT`.
pub const TC_ACT_SHOT: i32 = 2;
pub const TC_ACT_REDIRECT: i32 = 7;
pub const XDP_PASS: u32 = 2;
pub const XDP_REDIRECT: u32 = 4;

/// `GET url` over HTTP/1.0 (the agent's metrics endpoint): the body.
pub fn http_get(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut c = std::net::TcpStream::connect(host).unwrap();
    write!(c, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut r = String::new();
    std::io::Read::read_to_string(&mut c, &mut r).unwrap();
    let (head, body) = r.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{head}"
    );
    body.to_string()
}

/// The NAT-instance layout, for the datapath and the end-to-end tests: a
/// private subnet whose table sends 0.0.0.0/0 to an instance in the public
/// subnet (`InstanceId`), which has a public address and `SourceDestCheck:
/// CHECK`.
pub const NAT_INSTANCE: &str = fixture!("nat_instance.yaml");

/// `STATS` summed over CPUs in one `BPF_MAP_LOOKUP_BATCH` (a lookup per
/// index costs a syscall each: too slow to read after every frame of a
/// million).
pub struct StatsReader {
    fd: std::os::fd::RawFd,
    cpus: usize,
    buf: Vec<u64>,
}

impl StatsReader {
    /// For `h`'s datapath; valid while `h` lives.
    pub fn new(h: &mut Harness) -> Self {
        use std::os::fd::{AsFd, AsRawFd};
        use vpc::datapath::Maps;
        let fd = match h.dp.map(vpc_common::map_names::STATS).unwrap() {
            aya::maps::Map::PerCpuArray(d) => d.fd().as_fd().as_raw_fd(),
            _ => panic!("STATS is a per-CPU array"),
        };
        let cpus = aya::util::nr_cpus().unwrap();
        StatsReader {
            fd,
            cpus,
            buf: vec![0; cpus * vpc_common::STATS_LEN as usize],
        }
    }

    /// Index 0 forwarded, then one per `DropReason`.
    pub fn read(&mut self) -> Vec<u64> {
        const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
        #[repr(C)]
        struct Batch {
            in_batch: u64,
            out_batch: u64,
            keys: u64,
            values: u64,
            count: u32,
            map_fd: u32,
            elem_flags: u64,
            flags: u64,
        }
        let n = vpc_common::STATS_LEN as usize;
        let mut keys = vec![0u32; n];
        let mut next = 0u32;
        let mut attr = Batch {
            in_batch: 0,
            out_batch: &mut next as *mut u32 as u64,
            keys: keys.as_mut_ptr() as u64,
            values: self.buf.as_mut_ptr() as u64,
            count: n as u32,
            map_fd: self.fd as u32,
            elem_flags: 0,
            flags: 0,
        };
        // SAFETY: the buffers hold `count` keys and values of all CPUs.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &mut attr as *mut Batch,
                std::mem::size_of::<Batch>(),
            )
        };
        let err = std::io::Error::last_os_error();
        assert!(
            r == 0 || err.raw_os_error() == Some(libc::ENOENT),
            "BPF_MAP_LOOKUP_BATCH: {err}"
        );
        assert_eq!(attr.count as usize, n, "every index read");
        (0..n)
            .map(|i| self.buf[i * self.cpus..(i + 1) * self.cpus].iter().sum())
            .collect()
    }
}

//! Real handlers through the Lambda Runtime API (2018-06-01): a Python
//! function (awslambdaric) and a Node.js one (aws-lambda-ric), defined
//! inline in tests/fixtures/runtimes.yaml, each connecting to a database
//! instance through its Hyperplane ENI and returning the payload with the
//! address the database saw; an unhandled exception; a handler outliving
//! its `Timeout`; CreateFunction with a `Runtime`. `cargo xtask test`
//! installs both clients (target/pyenv, target/node).
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vpc_tests::{fixture, peer_server, text, Deployment, FAST};

const TEMPLATE: &str = fixture!("runtimes.yaml");
const DB: &str = "10.0.1.10:5432";

/// `vpc invoke F --payload P`: its output as JSON, and whether it succeeded.
fn invoke(d: &Deployment, f: &str, payload: &Value) -> (Value, bool) {
    let out = d.vpc(&["invoke", f, "--payload", &payload.to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{f}: not JSON ({e}):\n{}", text(&out)));
    (v, out.status.success())
}

fn api(d: &Deployment, method: &str, path: &str, body: &[u8]) -> vpc::api::Response {
    vpc::api::call(&d.name, method, path, body).unwrap()
}

/// Is a process still alive (not a zombie)?
fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.split_whitespace().nth(2) != Some("Z"))
}

/// A Python handler defined inline connects to the database through its
/// ENI: the payload comes back with the ENI's address as the database saw
/// it, the context and variables are Lambda's, the process stays warm, and
/// it goes with the deployment.
#[test]
fn a_python_handler_reaches_the_database_through_its_eni() {
    let d = Deployment::up("rtpy", TEMPLATE, FAST);
    let db = peer_server(&d.netns("Db"), DB);
    let eni = d.eni_address("Subnet");
    let (r, ok) = invoke(&d, "py", &json!({"order": 42, "items": ["a", "b"]}));
    assert!(ok, "{r}");
    assert_eq!(r["event"], json!({"order": 42, "items": ["a", "b"]}));
    let seen = r["seen_by_db"].as_str().unwrap();
    assert_eq!(
        seen.rsplit_once(':').unwrap().0,
        eni,
        "the database sees the function's Hyperplane ENI: {r}"
    );
    assert_eq!(r["function"], "py");
    assert_eq!(r["memory"], "256");
    assert_eq!(
        r["arn"],
        "arn:aws:lambda:us-east-1:123456789012:function:py"
    );
    assert_eq!(r["tz"], ":UTC");
    let remaining = r["remaining_ms"].as_u64().unwrap();
    assert!((1..=3000).contains(&remaining), "Timeout 3 s: {remaining}");
    assert!(r["task_root"].as_str().unwrap().ends_with("/task"), "{r}");
    // Warm: the same process takes the next event, with a new request id.
    let (r2, ok) = invoke(&d, "py", &json!({"order": 43}));
    assert!(ok, "{r2}");
    assert_eq!(r2["event"]["order"], 43);
    assert_eq!(r2["pid"], r["pid"], "kept warm");
    assert_ne!(r2["request_id"], r["request_id"]);
    assert_eq!(db.stop(), 2);
    // GetFunctionConfiguration says how it runs.
    let c = api(&d, "GET", "/2015-03-31/functions/py/configuration", b"").json();
    assert_eq!(
        (
            &c["Runtime"],
            &c["Handler"],
            &c["Timeout"],
            &c["MemorySize"]
        ),
        (
            &json!("python3.11"),
            &json!("index.handler"),
            &json!(3),
            &json!(256)
        ),
        "{c}"
    );
    // Lambda's log lines around each invocation.
    let log =
        std::fs::read_to_string(vpc::paths::state_dir(&d.name).join("lambda/PyFn/output.log"))
            .unwrap();
    let id = r["request_id"].as_str().unwrap();
    for l in [
        format!("START RequestId: {id} Version: $LATEST"),
        format!("END RequestId: {id}"),
        format!("REPORT RequestId: {id}\tDuration: "),
    ] {
        assert!(log.contains(&l), "{l:?} in\n{log}");
    }
    assert!(log.contains("Memory Size: 256 MB"), "{log}");
    assert!(log.contains("Init Duration: "), "the cold start: {log}");
    // `vpc down` takes the runtime's process with the namespace.
    let pid = r["pid"].as_u64().unwrap();
    assert!(alive(pid));
    drop(d);
    vpc_tests::wait_for("the runtime's process ends", 10, || !alive(pid));
}

/// The same through Node.js and aws-lambda-ric.
#[test]
fn a_nodejs_handler_reaches_the_database_through_its_eni() {
    let d = Deployment::up("rtjs", TEMPLATE, FAST);
    let db = peer_server(&d.netns("Db"), DB);
    let eni = d.eni_address("Subnet");
    let (r, ok) = invoke(&d, "node", &json!({"n": 1}));
    assert!(ok, "{r}");
    assert_eq!(r["event"], json!({"n": 1}));
    assert_eq!(
        r["seen_by_db"]
            .as_str()
            .unwrap()
            .rsplit_once(':')
            .unwrap()
            .0,
        eni,
        "{r}"
    );
    assert_eq!(r["function"], "node");
    let (r2, ok) = invoke(&d, "node", &json!({"n": 2}));
    assert!(ok, "{r2}");
    assert_eq!(r2["event"], json!({"n": 2}));
    assert_eq!(r2["pid"], r["pid"], "kept warm");
    assert_eq!(db.stop(), 2);
    let c = api(&d, "GET", "/2015-03-31/functions/node/configuration", b"").json();
    assert_eq!(c["Runtime"], "nodejs20.x");
}

/// An unhandled exception is Lambda's error document with
/// `X-Amz-Function-Error: Unhandled`; a handler that cannot be found fails
/// the runtime's init (`Runtime.HandlerNotFound`); a handler that sleeps past
/// `Timeout: 1` is killed and answered "Task timed out after 1.00
/// seconds"; the next invocation starts a new process.
#[test]
fn errors_and_timeouts_are_answered_as_lambda_does() {
    let d = Deployment::up("rterr", TEMPLATE, FAST);
    let r = api(
        &d,
        "POST",
        "/2015-03-31/functions/failing/invocations",
        br#"{"id": 7}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Amz-Function-Error"), Some("Unhandled"));
    let e = r.json();
    assert_eq!(e["errorType"], "OrderNotFound", "{e}");
    assert_eq!(e["errorMessage"], "no order 7", "{e}");
    assert!(
        e["stackTrace"][0].as_str().unwrap().contains("index.py"),
        "{e}"
    );
    // The CLI says the function failed.
    let (cli, ok) = invoke(&d, "failing", &json!({"id": 8}));
    assert!(!ok);
    assert_eq!(cli["errorMessage"], "no order 8");
    // awslambdaric posts /runtime/init/error and exits.
    let r = api(
        &d,
        "POST",
        "/2015-03-31/functions/broken/invocations",
        b"{}",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Amz-Function-Error"), Some("Unhandled"));
    assert_eq!(
        r.json()["errorType"],
        "Runtime.HandlerNotFound",
        "{:?}",
        r.json()
    );

    let started = Instant::now();
    let r = api(
        &d,
        "POST",
        "/2015-03-31/functions/sleepy/invocations",
        b"{}",
    );
    let took = started.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Amz-Function-Error"), Some("Unhandled"));
    let e = r.json();
    let msg = e["errorMessage"].as_str().unwrap();
    // "2026-12-05T19:40:48.476Z 447df197-... Task timed out after 1.00 seconds"
    let (date, rest) = msg.split_once(' ').unwrap();
    assert!(date.ends_with('Z') && date.len() == 24, "{msg}");
    let (id, tail) = rest.split_once(' ').unwrap();
    assert_eq!(id.len(), 36, "{msg}");
    assert_eq!(tail, "Task timed out after 1.00 seconds");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // Its process is gone; the next invocations start another (and time
    // out the same way).
    let ns = d.exec_env_netns("Sleepy");
    vpc_tests::wait_for("the timed-out process is killed", 10, || {
        std::process::Command::new("ip")
            .args(["netns", "pids", &ns])
            .output()
            .is_ok_and(|o| o.stdout.is_empty())
    });
    // Two at once: one environment takes one invocation at a time, and the
    // second, waiting its turn, gets a new process when the first is killed.
    let name = d.name.clone();
    let other = std::thread::spawn(move || {
        vpc::api::call(
            &name,
            "POST",
            "/2015-03-31/functions/sleepy/invocations",
            b"{}",
        )
        .unwrap()
    });
    let r = api(
        &d,
        "POST",
        "/2015-03-31/functions/sleepy/invocations",
        b"{}",
    );
    for r in [r, other.join().unwrap()] {
        assert!(
            r.json()["errorMessage"]
                .as_str()
                .unwrap()
                .ends_with("Task timed out after 1.00 seconds"),
            "{:?}",
            r.json()
        );
    }
}

/// CreateFunction with `Runtime`, `Handler`, `Timeout` and `MemorySize`:
/// they are in its configuration, its code (`index.py`) runs through the
/// Runtime API; a runtime or bounds AWS would refuse are refused here. A
/// `provided.al2023` function whose code is a bootstrap runs it.
#[test]
fn create_function_with_python_and_custom_runtimes() {
    use base64::Engine as _;
    let d = Deployment::up("rtmk", TEMPLATE, FAST);
    let code = "import os\ndef double(event, context):\n    return {'twice': event['x'] * 2, 'mem': os.environ['AWS_LAMBDA_FUNCTION_MEMORY_SIZE'], 'handler': os.environ['_HANDLER']}\n";
    let body = |runtime: &str, timeout: u32| {
        serde_json::to_vec(&json!({
            "FunctionName": "doubler",
            "Runtime": runtime,
            "Role": "arn:aws:iam::123456789012:role/x",
            "Handler": "index.double",
            "Timeout": timeout,
            "MemorySize": 512,
            "Code": {"ZipFile": base64::engine::general_purpose::STANDARD.encode(code)},
        }))
        .unwrap()
    };
    let r = api(&d, "POST", "/2015-03-31/functions", &body("ruby3.3", 5));
    assert_eq!(r.status, 400, "{:?}", r.json());
    assert!(r.json()["message"].as_str().unwrap().contains("Runtime"));
    let r = api(&d, "POST", "/2015-03-31/functions", &body("python3.11", 0));
    assert_eq!(r.status, 400, "{:?}", r.json());
    let r = api(&d, "POST", "/2015-03-31/functions", &body("python3.11", 5));
    assert_eq!(r.status, 201, "{:?}", r.json());
    let c = r.json();
    assert_eq!(
        (
            &c["Runtime"],
            &c["Handler"],
            &c["Timeout"],
            &c["MemorySize"]
        ),
        (
            &json!("python3.11"),
            &json!("index.double"),
            &json!(5),
            &json!(512)
        ),
        "{c}"
    );
    let (r, ok) = invoke(&d, "doubler", &json!({"x": 21}));
    assert!(ok, "{r}");
    assert_eq!(
        r,
        json!({"twice": 42, "mem": "512", "handler": "index.double"})
    );
    // A custom runtime: the code is the bootstrap (it talks to the Runtime
    // API itself: here with curl).
    let bootstrap = r#"#!/bin/sh
set -eu
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
while true; do
  headers=$(mktemp)
  event=$(curl -sS -D "$headers" "$api/invocation/next")
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | cut -d: -f2 | tr -d '[:space:]')
  rm -f "$headers"
  curl -sS -o /dev/null -X POST "$api/invocation/$id/response" -d "{\"custom\": $event, \"handler\": \"$_HANDLER\"}"
done
"#;
    let custom = json!({
        "FunctionName": "custom",
        "Runtime": "provided.al2023",
        "Role": "arn:aws:iam::123456789012:role/x",
        "Handler": "my.handler",
        "Code": {"ZipFile": base64::engine::general_purpose::STANDARD.encode(bootstrap)},
    });
    let r = api(
        &d,
        "POST",
        "/2015-03-31/functions",
        &serde_json::to_vec(&custom).unwrap(),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    for n in [1, 2] {
        let (r, ok) = invoke(&d, "custom", &json!({"n": n}));
        assert!(ok, "{r}");
        assert_eq!(r, json!({"custom": {"n": n}, "handler": "my.handler"}));
    }
    // DeleteFunction takes its process with its namespace.
    let out = d.vpc(&["delete-function", "doubler"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// The developer guide's IPv6 example, as written (with its `import
/// socket`): in a dual-stack subnet with `Ipv6AllowedForDualStack` its
/// message reaches the server over IPv6 from the Hyperplane ENI's IPv6
/// address; the same code without the flag fails with Python's socket
/// error, as at AWS (the execution environment has no IPv6 route).
#[test]
fn the_guides_ipv6_example_runs_as_written() {
    let d = Deployment::up("rtv6", vpc_tests::fixture!("ipv6_example.yaml"), FAST);
    let s = vpc::deploy::State::load(&d.name).unwrap();
    let db6 = s.node("Db").unwrap().ip6.expect("Db has an IPv6 address");
    let eni6 = s
        .model
        .enis
        .iter()
        .find(|e| e.subnet == "A")
        .and_then(|e| e.ip6)
        .expect("the ENI has an IPv6 address");
    let server = vpc_tests::tcp_server(&d.netns("Db"), &format!("[{db6}]:5432"));
    let event = json!({"host": db6.to_string(), "port": 5432, "message": "hello over IPv6\n"});
    let (r, ok) = invoke(&d, "dual", &event);
    assert!(ok, "{r}");
    assert_eq!(r, Value::Null, "the example returns nothing");
    let peer = server.finish(30).expect("the server got the message");
    assert_eq!(
        peer.ip().to_string(),
        eni6.to_string(),
        "from the ENI's IPv6 address"
    );
    let (r, ok) = invoke(&d, "v4only", &event);
    assert!(!ok);
    assert_eq!(r["errorType"], "OSError", "{r}");
    assert_eq!(
        r["errorMessage"], "[Errno 101] Network is unreachable",
        "{r}"
    );
}

/// The embedded default template's function is a Python handler: Invoke
/// reaches the database through its ENI (the database gets the payload).
#[test]
fn the_default_templates_function_reaches_the_database_through_its_handler() {
    let d = Deployment::up("rtdef", "default", FAST);
    let db = vpc_tests::tcp_server(&d.netns("DatabaseInstance"), "10.0.1.10:5432");
    let (r, ok) = invoke(&d, "orders", &json!({"order": 1}));
    assert!(ok, "{r}");
    assert_eq!(r["connected"], true, "{r}");
    assert_eq!(r["sent"], json!({"order": 1}));
    let peer = db.finish(30).expect("the database saw the connection");
    assert_eq!(peer.ip().to_string(), d.eni_address("PrivateSubnetA"));
}

/// `MemorySize` is the process's memory limit (a memory cgroup): 64 MB of
/// a 128 MB function's memory is fine and reported; 400 MB ends its
/// runtime as at AWS (`Runtime exited with error: signal: killed`,
/// `Runtime.OutOfMemory`), and the next invocation starts a new one.
#[test]
fn memory_size_is_the_runtimes_memory_limit() {
    let d = Deployment::up("rtmem", TEMPLATE, FAST);
    let (r, ok) = invoke(&d, "hungry", &json!({"mb": 64}));
    assert!(ok, "{r}");
    assert_eq!(r, json!(64));
    let (r, ok) = invoke(&d, "hungry", &json!({"mb": 400}));
    assert!(!ok, "{r}");
    assert_eq!(r["errorType"], "Runtime.OutOfMemory", "{r}");
    assert!(
        r["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Error: Runtime exited with error: signal: killed"),
        "{r}"
    );
    let (r, ok) = invoke(&d, "hungry", &json!({"mb": 1}));
    assert!(ok, "a new runtime after the kill: {r}");
    // Its cgroup goes with the deployment.
    let name = d.name.clone();
    drop(d);
    for root in ["/sys/fs/cgroup/memory", "/sys/fs/cgroup"] {
        let dir = std::path::Path::new(root).join("vpc").join(&name);
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

/// Invoke through an interface VPC endpoint for Lambda (PrivateLink): a
/// host of a private subnet with no route out invokes the function by
/// Lambda's regional name (the endpoint's private DNS) and gets its
/// answer; a host the endpoint's group does not admit does not get
/// through.
#[test]
fn a_private_host_invokes_through_the_lambda_interface_endpoint() {
    let d = Deployment::up("rtpl", vpc_tests::fixture!("lambda_endpoint.yaml"), FAST);
    let url = "http://lambda.us-east-1.amazonaws.com/2015-03-31/functions/echo/invocations";
    let post = |who: &str| {
        d.vpc(&[
            "exec",
            who,
            "--",
            "curl",
            "-sS",
            "--max-time",
            "10",
            "-X",
            "POST",
            "-d",
            r#"{"order": 7}"#,
            url,
        ])
    };
    // Warm through the agent's own endpoint first: the endpoint's
    // invocations go to the same execution environment (one Lambda API).
    let (r, ok) = invoke(&d, "echo", &json!({"warm": true}));
    assert!(ok, "{r}");
    // The service follows the state within seconds of `up`.
    let mut out = post("App");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !out.status.success() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        out = post("App");
    }
    assert!(out.status.success(), "{}", text(&out));
    let r: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(r, json!({"echo": {"order": 7}, "function": "echo"}));
    let out = d.vpc(&[
        "exec",
        "Stranger",
        "--",
        "curl",
        "-sS",
        "--max-time",
        "2",
        "-X",
        "POST",
        "-d",
        "{}",
        url,
    ]);
    assert!(
        !out.status.success(),
        "the endpoint's group admits App only: {}",
        text(&out)
    );
}

/// `ReservedConcurrentExecutions: 2`: with one invocation held by the
/// database and four more sent at once, one more is admitted and three
/// are throttled at once (429 `TooManyRequestsException`, "Rate
/// Exceeded."); let go, both admitted ones answer.
#[test]
fn reserved_concurrency_throttles_what_goes_over() {
    use std::sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    };
    let d = Deployment::up("rtcc", TEMPLATE, FAST);
    let (release, held) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (r, h) = (release.clone(), held.clone());
    let _db = vpc_tests::Running::start(&d.netns("Db"), move |ready, stop| {
        let l = std::net::TcpListener::bind(DB).unwrap();
        l.set_nonblocking(true).unwrap();
        ready.send(()).unwrap();
        let mut conns = vec![];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((s, _)) = l.accept() {
                conns.push(s);
                h.fetch_add(1, Ordering::Relaxed);
            }
            if r.load(Ordering::Relaxed) {
                for mut s in conns.drain(..) {
                    let _ = std::io::Write::write_all(&mut s, b"released\n");
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let name = d.name.clone();
    let call = move || {
        vpc::api::call(
            &name,
            "POST",
            "/2015-03-31/functions/throttled/invocations",
            b"{}",
        )
        .unwrap()
    };
    let first = std::thread::spawn(call.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    while held.load(Ordering::Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "the first invocation reached the database"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let more: Vec<_> = (0..4).map(|_| std::thread::spawn(call.clone())).collect();
    // Three answer at once, throttled; one waits its turn.
    let deadline = Instant::now() + Duration::from_secs(60);
    while more.iter().filter(|t| t.is_finished()).count() < 3 {
        assert!(Instant::now() < deadline, "three throttled answers");
        std::thread::sleep(Duration::from_millis(20));
    }
    release.store(true, Ordering::Relaxed);
    let answers: Vec<_> = more.into_iter().map(|t| t.join().unwrap()).collect();
    let throttled = answers.iter().find(|a| a.status == 429).unwrap();
    assert_eq!(throttled.json()["Type"], "User");
    assert_eq!(throttled.json()["message"], "Rate Exceeded.");
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    let first = first.join().unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(String::from_utf8_lossy(&first.body), "\"released\"");
    statuses.sort();
    assert_eq!(statuses, [200, 429, 429, 429]);
    // The two admitted ones ran side by side: two environments, no more.
    assert_eq!(envs_of(&d, "Throttled").len(), 2);
    let r = call();
    assert_eq!(r.status, 200, "the slots are free again");
}

/// A database that holds every connection until `release`, counting them
/// and the peers they came from; then answers each "released".
struct HoldingDb {
    release: std::sync::Arc<std::sync::atomic::AtomicBool>,
    peers: std::sync::Arc<std::sync::Mutex<Vec<std::net::SocketAddr>>>,
    _server: vpc_tests::Running<()>,
}

impl HoldingDb {
    fn start(d: &Deployment) -> Self {
        use std::sync::{atomic::Ordering, Arc, Mutex};
        let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let peers = Arc::new(Mutex::new(vec![]));
        let (r, p) = (release.clone(), peers.clone());
        let server = vpc_tests::Running::start(&d.netns("Db"), move |ready, stop| {
            let l = std::net::TcpListener::bind(DB).unwrap();
            l.set_nonblocking(true).unwrap();
            ready.send(()).unwrap();
            let mut conns = vec![];
            while !stop.load(Ordering::Relaxed) {
                while let Ok((s, peer)) = l.accept() {
                    conns.push(s);
                    p.lock().unwrap().push(peer);
                }
                if r.load(Ordering::Relaxed) {
                    for mut s in conns.drain(..) {
                        let _ = std::io::Write::write_all(&mut s, b"released\n");
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        HoldingDb {
            release,
            peers,
            _server: server,
        }
    }

    fn held(&self) -> usize {
        self.peers.lock().unwrap().len()
    }
}

/// The execution environments `vpc status` lists for function `id`.
fn envs_of(d: &Deployment, id: &str) -> Vec<Value> {
    let s = d.status();
    s["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("{id} in {s}"))["execution_environments"]
        .as_array()
        .unwrap()
        .clone()
}

/// Twenty invocations at once run in twenty execution environments of the
/// function (Lambda starts one for each concurrent invocation), and all of
/// them leave through the function's one Hyperplane ENI: the database sees
/// its address on every connection, conntrack shows twenty connections
/// from twenty environments translated to it. Idle for `--env-idle` on
/// the test clock, the environments started for concurrency are reaped
/// (namespaces gone) and the next invocation starts cold in the first.
#[test]
fn concurrent_invocations_run_in_several_environments_behind_one_eni() {
    const N: usize = 20;
    let d = Deployment::up(
        "rtfan",
        TEMPLATE,
        &["--clock", "test", "--eni-delay", "0s", "--wait"],
    );
    let db = HoldingDb::start(&d);
    let eni = d.eni_address("Subnet");
    let name = d.name.clone();
    let call = move || {
        vpc::api::call(
            &name,
            "POST",
            "/2015-03-31/functions/fanout/invocations",
            b"{}",
        )
        .unwrap()
    };
    let calls: Vec<_> = (0..N).map(|_| std::thread::spawn(call.clone())).collect();
    let deadline = Instant::now() + Duration::from_secs(240);
    while db.held() < N {
        assert!(
            Instant::now() < deadline,
            "{N} invocations at once reach the database (held: {})",
            db.held()
        );
        assert!(
            !calls.iter().any(|c| c.is_finished()),
            "an invocation ended before it was let go"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Held: one environment per invocation, every connection tracked
    // from its own environment and translated to the one ENI.
    let envs = envs_of(&d, "Fanout");
    assert_eq!(envs.len(), N, "{envs:?}");
    assert!(
        envs.iter().all(|e| e["eni_address"] == eni.as_str()),
        "{envs:?}"
    );
    let out = d.vpc(&["conntrack", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let to_db: Vec<&Value> = rows
        .iter()
        .filter(|c| c["original"]["dst"] == "10.0.1.10" && c["original"]["dport"] == 5432)
        .collect();
    assert_eq!(to_db.len(), N, "{rows:?}");
    assert!(
        to_db.iter().all(|c| c["reply"]["dst"] == eni.as_str()),
        "{to_db:?}"
    );
    let sources: std::collections::BTreeSet<&str> = to_db
        .iter()
        .map(|c| c["original"]["src"].as_str().unwrap())
        .collect();
    assert_eq!(sources.len(), N, "one source per environment: {sources:?}");
    let eni_ip: std::net::IpAddr = eni.parse().unwrap();
    assert!(db.peers.lock().unwrap().iter().all(|p| p.ip() == eni_ip));
    db.release.store(true, std::sync::atomic::Ordering::Relaxed);
    let answers: Vec<Value> = calls
        .into_iter()
        .map(|c| {
            let r = c.join().unwrap();
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            r.json()
        })
        .collect();
    let locals: std::collections::BTreeSet<&str> = answers
        .iter()
        .map(|a| a["local"].as_str().unwrap())
        .collect();
    assert_eq!(locals, sources, "{answers:?}");
    assert!(answers.iter().all(|a| a["released"] == "released"));
    // Idle: reaped on the test clock (nothing happens before it moves).
    let replicas: Vec<String> = envs
        .iter()
        .filter(|e| e["env"].as_u64() > Some(1))
        .map(|e| e["netns"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(replicas.len(), N - 1);
    let out = d.vpc(&["clock", "advance", "10m"]);
    assert!(out.status.success(), "{}", text(&out));
    vpc_tests::wait_for("the idle environments and their namespaces go", 60, || {
        let left = vpc_tests::namespaces_with_prefix(&d.name);
        envs_of(&d, "Fanout").len() == 1 && replicas.iter().all(|r| !left.contains(r))
    });
    // The next invocation: cold, in the first environment.
    db.release.store(true, std::sync::atomic::Ordering::Relaxed);
    let r = call();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(envs_of(&d, "Fanout").len(), 1);
    assert_ne!(r.json()["pid"], answers[0]["pid"], "a new runtime");
}

/// A runtime that is not installed: every invocation says what is missing
/// and how to install it, the second as the first (nothing of the first
/// attempt, such as its Runtime API's listener, stays behind).
#[test]
fn a_missing_runtime_is_said_every_time() {
    let empty = std::env::temp_dir().join(format!("rtmiss-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let d = Deployment::up_env(
        "rtmiss",
        TEMPLATE,
        FAST,
        &[(
            vpc::lambda::runtime::RUNTIME_DIR_VAR,
            empty.to_str().unwrap(),
        )],
    );
    for attempt in 1..=2 {
        let r = api(
            &d,
            "POST",
            "/2015-03-31/functions/failing/invocations",
            b"{}",
        );
        assert_eq!(r.status, 502, "attempt {attempt}");
        let m = r.json()["message"].as_str().unwrap_or_default().to_string();
        assert!(
            m.contains("awslambdaric missing") && m.contains("cargo xtask provision"),
            "attempt {attempt}: {m}"
        );
    }
    drop(d);
    let _ = std::fs::remove_dir_all(&empty);
}

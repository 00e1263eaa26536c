//! Function logs, CloudWatch-Logs-shaped (tests/fixtures/python_logs.yaml):
//! a Python handler in a VPC whose security group allows no egress at all
//! logs all the same (the agent writes the logs, outside the VPC); `vpc
//! logs` (and `--follow`) shows Lambda's `START` / `END` / `REPORT` lines in
//! AWS's formats around the handler's prints, `Init Duration` on the cold
//! start only, in one stream named as Lambda names them; Invoke's
//! `LogType=Tail`, `InvocationType` `Event` (202, then the log) and `DryRun`
//! (204), and unknown values; a shell-script function's log (its stderr);
//! the AWS CLI (`aws lambda invoke`, installed
//! into target/pyenv by `cargo xtask test`) against the agent's TCP API.
use std::{
    io::BufRead as _,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use base64::Engine as _;
use regex::Regex;
use serde_json::Value;
use vpc_tests::{fixture, peer_server, text, Deployment, FAST};

const TEMPLATE: &str = fixture!("python_logs.yaml");
const INVOKE: &str = "/2015-03-31/functions/logged/invocations";

/// `REPORT`, as Lambda writes it (`Init Duration` on a cold start only).
const REPORT: &str = r"^REPORT RequestId: ([0-9a-f-]{36})\tDuration: \d+\.\d{2} ms\tBilled Duration: \d+ ms\tMemory Size: 128 MB\tMax Memory Used: [1-9]\d* MB(\tInit Duration: \d+\.\d{2} ms)?$";

/// The deployment, with the API on loopback TCP too (the AWS CLI's).
fn up(tag: &str) -> Deployment {
    let mut args = FAST.to_vec();
    args.extend(["--api-addr", "127.0.0.1:0"]);
    Deployment::up(tag, TEMPLATE, &args)
}

/// One event as `vpc logs` prints it.
#[derive(Debug)]
struct Line {
    stream: String,
    message: String,
}

fn parse(line: &str) -> Line {
    let re = Regex::new(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z) (\S+) (.*)$").unwrap();
    let c = re
        .captures(line)
        .unwrap_or_else(|| panic!("not `TIME STREAM MESSAGE`: {line:?}"));
    Line {
        stream: c[2].to_string(),
        message: c[3].to_string(),
    }
}

/// `vpc logs logged`: its events.
fn logs(d: &Deployment) -> Vec<Line> {
    let out = d.vpc(&["logs", "logged"]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(parse)
        .collect()
}

fn messages(lines: &[Line]) -> Vec<&str> {
    lines.iter().map(|l| l.message.as_str()).collect()
}

/// Where `line` is among `messages`, after `from`.
fn position(messages: &[&str], from: usize, line: &str) -> usize {
    from + messages[from..]
        .iter()
        .position(|m| *m == line)
        .unwrap_or_else(|| panic!("{line:?} after line {from} in\n{}", messages.join("\n")))
}

/// An invocation's lines, `START` to `REPORT`, are Lambda's; `Init Duration`
/// on the cold start only. Returns where its `REPORT` is.
fn check_invocation(
    messages: &[&str],
    from: usize,
    id: &str,
    prints: &[&str],
    cold: bool,
) -> usize {
    let start = position(
        messages,
        from,
        &format!("START RequestId: {id} Version: $LATEST"),
    );
    let mut at = start;
    for p in prints {
        at = at
            + messages[at..]
                .iter()
                .position(|m| m.starts_with(p))
                .unwrap_or_else(|| panic!("{p:?}... after line {at} in\n{}", messages.join("\n")));
    }
    let end = position(messages, at, &format!("END RequestId: {id}"));
    let report = messages[end + 1];
    let c = Regex::new(REPORT)
        .unwrap()
        .captures(report)
        .unwrap_or_else(|| panic!("not Lambda's REPORT: {report:?}"));
    assert_eq!(&c[1], id);
    assert_eq!(
        c.get(2).is_some(),
        cold,
        "Init Duration on a cold start only: {report:?}"
    );
    end + 1
}

fn call(d: &Deployment, headers: &[(&str, &str)], payload: &str) -> vpc::api::Response {
    vpc::api::call_with(&d.name, "POST", INVOKE, headers, payload.as_bytes()).unwrap()
}

fn decode(b64: &str) -> String {
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

/// A function whose security group allows no egress cannot reach the
/// database (which would accept it), and logs all the same: `vpc logs`
/// shows both invocations with AWS's lines, in one stream named as Lambda
/// names them; `LogType=Tail` returns the invocation's lines, base64.
#[test]
fn a_function_without_egress_logs_outside_the_vpc() {
    let d = up("logs");
    let db = peer_server(&d.netns("Db"), "10.0.1.10:5432");
    let out = d.vpc(&["invoke", "logged", "--payload", r#"{"probe": "10.0.1.10"}"#]);
    assert!(out.status.success(), "{}", text(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        r["egress"].as_str().unwrap().starts_with("blocked"),
        "no egress rule: {r}"
    );
    assert_eq!(db.stop(), 0, "nothing reached the database");
    let first = r["request_id"].as_str().unwrap().to_string();

    // Warm, with the log's tail.
    let resp = call(&d, &[("X-Amz-Log-Type", "Tail")], r#"{"n": 2}"#);
    assert_eq!(resp.status, 200, "{resp:?}");
    let second = resp.json()["request_id"].as_str().unwrap().to_string();
    let tail = decode(resp.header("X-Amz-Log-Result").expect("LogResult"));
    let tail: Vec<&str> = tail.lines().collect();
    let report = check_invocation(&tail, 0, &second, &[r#"handling {"n": 2}"#], false);
    assert_eq!(report, tail.len() - 1, "REPORT last: {tail:?}");
    assert_eq!(
        tail[0],
        format!("START RequestId: {second} Version: $LATEST")
    );

    let lines = logs(&d);
    let m = messages(&lines);
    let r1 = check_invocation(
        &m,
        0,
        &first,
        &[r#"handling {"probe": "10.0.1.10"}"#, "egress blocked: "],
        true,
    );
    let r2 = check_invocation(&m, r1, &second, &[r#"handling {"n": 2}"#], false);
    // The tail is the log's lines of that invocation.
    let start2 = position(
        &m,
        r1,
        &format!("START RequestId: {second} Version: $LATEST"),
    );
    assert_eq!(&m[start2..=r2], &tail[..]);
    // One execution environment: one stream, named as Lambda names it.
    let streams: std::collections::BTreeSet<_> = lines.iter().map(|l| &l.stream).collect();
    assert_eq!(streams.len(), 1, "{streams:?}");
    let stream = streams.into_iter().next().unwrap();
    assert!(
        Regex::new(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$")
            .unwrap()
            .is_match(stream),
        "{stream}"
    );
    // The store: a directory per group and per stream.
    let events = vpc::paths::state_dir(&d.name)
        .join("logs/%2Faws%2Flambda%2Flogged")
        .join(stream.replace('/', "%2F"))
        .join("events.jsonl");
    assert!(events.exists(), "{}", events.display());
    // `--output json`: CloudWatch's fields.
    let out = d.vpc(&["logs", "logged", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let first_event: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first_event["logStreamName"], stream.as_str());
    assert!(first_event["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
    // A shell-script function (no Runtime) logs too: its stderr.
    let resp = vpc::api::call_with(
        &d.name,
        "POST",
        "/2015-03-31/functions/script/invocations",
        &[("X-Amz-Log-Type", "Tail")],
        b"hi",
    )
    .unwrap();
    assert_eq!((resp.status, resp.body.as_slice()), (200, &b"done\n"[..]));
    let tail = decode(resp.header("X-Amz-Log-Result").expect("LogResult"));
    let tail: Vec<&str> = tail.lines().collect();
    let id = tail[0]
        .strip_prefix("START RequestId: ")
        .and_then(|s| s.strip_suffix(" Version: $LATEST"))
        .unwrap_or_else(|| panic!("{tail:?}"));
    check_invocation(&tail, 0, id, &["script saw hi"], false);
    let out = d.vpc(&["logs", "script"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("END RequestId: {id}")),
        "{}",
        text(&out)
    );
    // A function with no log group yet: CloudWatch's error.
    let out = d.vpc(&["logs", "nobody"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("ResourceNotFoundException"),
        "{}",
        text(&out)
    );
}

/// `vpc logs --follow`, stopped (and waited for) when dropped.
struct Follow {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follow {
    fn start(d: &Deployment) -> Follow {
        let mut child = Command::new(vpc_tests::vpc_bin())
            .args(["--name", &d.name, "logs", "logged", "--follow"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines() {
                let Ok(l) = l else { return };
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Follow { child, lines }
    }

    /// Waits (up to `secs`) for a line whose message is `message`.
    fn until(&self, message: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if parse(&l).message == message => return,
                Ok(_) => {}
                Err(_) => panic!("vpc logs --follow: no {message:?} within {secs} s"),
            }
        }
    }

    /// Ctrl-C: it ends, successfully.
    fn interrupt(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
        let st = self.child.wait().unwrap();
        assert!(st.success(), "{st}");
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `InvocationType=Event` answers 202 at once and runs in the background:
/// its lines appear in the log (and to `vpc logs --follow`) soon after;
/// `DryRun` answers 204 and runs nothing; values Lambda does not take are
/// its `InvalidParameterValueException`.
#[test]
fn event_and_dry_run_invocations() {
    let d = up("logsev");
    let follow = Follow::start(&d);
    let resp = call(&d, &[("X-Amz-Invocation-Type", "Event")], r#"{"async": 1}"#);
    assert_eq!(resp.status, 202, "{resp:?}");
    assert!(resp.body.is_empty());
    follow.until(r#"handling {"async": 1}"#, 60);
    vpc_tests::wait_for("the Event invocation's REPORT", 60, || {
        logs(&d).iter().any(|l| l.message.starts_with("REPORT "))
    });
    let lines = logs(&d);
    let m = messages(&lines);
    let id = m
        .iter()
        .find_map(|l| l.strip_prefix("START RequestId: "))
        .and_then(|s| s.strip_suffix(" Version: $LATEST"))
        .unwrap_or_else(|| panic!("a START: {m:?}"));
    check_invocation(&m, 0, id, &[r#"handling {"async": 1}"#], true);
    follow.until(&format!("END RequestId: {id}"), 30);

    // DryRun: the checks, then 204; nothing runs (the next invocation is
    // the only new one in the log).
    let resp = call(&d, &[("X-Amz-Invocation-Type", "DryRun")], r#"{"dry": 1}"#);
    assert_eq!(resp.status, 204, "{resp:?}");
    assert!(resp.body.is_empty());
    let resp = call(
        &d,
        &[("X-Amz-Invocation-Type", "RequestResponse")],
        r#"{"sync": 1}"#,
    );
    assert_eq!(resp.status, 200, "{resp:?}");
    let starts = |m: &[&str]| m.iter().filter(|l| l.starts_with("START ")).count();
    let lines = logs(&d);
    let m = messages(&lines);
    assert_eq!(starts(&m), 2, "{m:?}");
    assert!(!m.iter().any(|l| l.contains("dry")), "{m:?}");
    follow.until(r#"handling {"sync": 1}"#, 30);
    follow.interrupt();

    // What Lambda does not take.
    for (k, v) in [
        ("X-Amz-Invocation-Type", "Sometimes"),
        ("X-Amz-Log-Type", "Head"),
    ] {
        let resp = call(&d, &[(k, v)], "{}");
        assert_eq!(resp.status, 400, "{k}: {v}: {resp:?}");
        assert_eq!(
            resp.header("x-amzn-ErrorType"),
            Some("InvalidParameterValueException")
        );
    }
    // DryRun checks: a function that does not exist.
    let resp = vpc::api::call_with(
        &d.name,
        "POST",
        "/2015-03-31/functions/nobody/invocations",
        &[("X-Amz-Invocation-Type", "DryRun")],
        b"{}",
    )
    .unwrap();
    assert_eq!(resp.status, 404, "{resp:?}");
}

/// A temporary directory, removed when dropped.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The AWS CLI (`aws lambda invoke`) against the agent's TCP API with fake
/// credentials: the response in out.json, `StatusCode`, `ExecutedVersion`
/// and, with `--log-type Tail`, `LogResult`; `--invocation-type Event` and
/// `DryRun`.
#[test]
fn the_aws_cli_invokes_with_its_log_tail() {
    let aws = vpc_tests::pyenv().join("bin/aws");
    assert!(
        aws.exists(),
        "{} missing: `cargo xtask provision` installs the AWS CLI (awscli)",
        aws.display()
    );
    let d = up("logscli");
    let url = d.status()["api_url"].as_str().unwrap().to_string();
    let out = d.vpc(&["get-function", "logged", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let f: Value = serde_json::from_slice(&out.stdout).unwrap();
    let arn = f["Configuration"]["FunctionArn"]
        .as_str()
        .unwrap()
        .to_string();
    let region = arn.split(':').nth(3).unwrap().to_string();
    let tmp = TempDir(std::env::temp_dir().join(format!("{}-cli", d.name)));
    std::fs::create_dir_all(&tmp.0).unwrap();
    let outfile = tmp.0.join("out.json");
    let cli = |args: &[&str]| -> Value {
        let out = Command::new(&aws)
            .args([
                "lambda",
                "invoke",
                "--endpoint-url",
                &url,
                "--function-name",
                "logged",
            ])
            .args(args)
            .arg(&outfile)
            .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
            .env(
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            )
            .env("AWS_DEFAULT_REGION", &region)
            .env("AWS_CONFIG_FILE", tmp.0.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", tmp.0.join("credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_PROFILE")
            .output()
            .unwrap();
        assert!(out.status.success(), "aws {args:?}:\n{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
    };
    let answer = || -> Value { serde_json::from_slice(&std::fs::read(&outfile).unwrap()).unwrap() };

    let r = cli(&["--payload", r#"{"cli": 1}"#, "--log-type", "Tail"]);
    assert_eq!(r["StatusCode"], 200, "{r}");
    assert_eq!(r["ExecutedVersion"], "$LATEST", "{r}");
    assert!(r.get("FunctionError").is_none(), "{r}");
    let a = answer();
    assert_eq!(a["event"]["cli"], 1, "{a}");
    let id = a["request_id"].as_str().unwrap();
    let tail = decode(r["LogResult"].as_str().expect("LogResult"));
    let tail: Vec<&str> = tail.lines().collect();
    check_invocation(&tail, 0, id, &[r#"handling {"cli": 1}"#], true);

    let r = cli(&["--payload", r#"{"cli": 2}"#]);
    assert_eq!(r["StatusCode"], 200, "{r}");
    assert!(r.get("LogResult").is_none(), "no Tail, no LogResult: {r}");
    assert_eq!(answer()["event"]["cli"], 2);

    let r = cli(&["--payload", r#"{"cli": 3}"#, "--invocation-type", "DryRun"]);
    assert_eq!(r["StatusCode"], 204, "{r}");
    let r = cli(&["--payload", r#"{"cli": 4}"#, "--invocation-type", "Event"]);
    assert_eq!(r["StatusCode"], 202, "{r}");
    vpc_tests::wait_for("the Event invocation in the log", 60, || {
        logs(&d)
            .iter()
            .any(|l| l.message == r#"handling {"cli": 4}"#)
    });
    assert!(
        !logs(&d).iter().any(|l| l.message.contains(r#""cli": 3"#)),
        "DryRun ran nothing"
    );
}

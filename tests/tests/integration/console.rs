//! The console in a real browser: Debian's Chromium, headless, driven by
//! Selenium through chromedriver (tests/fixtures/console.py), against a
//! deployment on the test clock. It watches a function go Pending to
//! Active, invokes it, moves it to another subnet and group through the
//! Edit VPC form (AWS's validation message first), sees it on its new
//! Hyperplane ENI, finds the connection the database's group refuses in
//! the flows view with its reason and `explain`, and the topology with
//! live counters. Screenshots of every page are kept in
//! target/test-artifacts/console/ (`cargo xtask test` installs Chromium,
//! chromedriver and Selenium).
use std::{
    os::unix::process::CommandExt as _,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use vpc_tests::{fixture, peer_server, Deployment};

const TEMPLATE: &str = fixture!("console.yaml");

/// Where the screenshots are kept.
fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts/console")
}

/// A process group (the script, chromedriver, Chromium) killed whole when
/// dropped, also when the test fails.
struct Group(std::process::Child);

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = self.0.id() as i32;
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// Runs the browser script against `url`: what it saw, or its output
/// when it failed.
fn drive(url: &str) -> Value {
    let dir = artifacts();
    let _ = std::fs::remove_dir_all(&dir);
    let mut g = Group(
        Command::new(vpc_tests::pyenv_python())
            .arg(vpc_tests::fixture_path("console.py"))
            .args([url, dir.to_str().unwrap()])
            // Selenium Manager stays out of it: the drivers are given.
            .env("SE_OFFLINE", "true")
            .env("SE_AVOID_STATS", "true")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("running console.py"),
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    while g.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "console.py ran 300 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read as _;
    g.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    g.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = g.0.wait().unwrap();
    assert!(
        status.success(),
        "console.py failed (screenshots in {}):\n{err}\n{out}",
        dir.display()
    );
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn the_console_moves_a_function_to_a_new_eni_invokes_it_and_finds_the_drop() {
    let d = Deployment::up(
        "console",
        TEMPLATE,
        &[
            "--clock",
            "test",
            "--eni-delay",
            "5m",
            "--api-addr",
            "127.0.0.1:0",
        ],
    );
    let url = d.status()["api_url"]
        .as_str()
        .expect("the API listens on TCP")
        .to_string();
    let _db = peer_server(&d.netns("Db"), "10.0.1.10:5432");
    let seen = drive(&url);
    let state = &seen["state"];
    let eni = |subnet: &str, group: &str| -> Value {
        state["enis"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["subnet"] == subnet && e["groups"] == serde_json::json!([group]))
            .unwrap_or_else(|| panic!("no ENI of ({subnet}, {group}): {state}"))
            .clone()
    };
    // Pending, then Active on the ENI of (PrivateA, FnSg).
    let first = eni("PrivateA", "FnSg");
    assert_eq!(seen["first_eni"], first["id"], "{seen}");
    assert_eq!(seen["list_status"], "Successful", "{seen}");
    // The invoke reached the database from that ENI's address.
    assert_eq!(seen["invoke1_status"], "Succeeded", "{seen}");
    let by_db = seen["invoke1"]["seen_by_db"].as_str().unwrap();
    assert_eq!(
        by_db.rsplit_once(':').unwrap().0,
        first["ip"].as_str().unwrap(),
        "{seen}"
    );
    assert!(
        seen["invoke1_log"]
            .as_str()
            .unwrap()
            .contains("connecting to 10.0.1.10"),
        "the log tail: {seen}"
    );
    // AWS's validation message, verbatim from the API.
    assert_eq!(
        seen["form_error"], "Subnets and SecurityGroups must coexist or be both empty list.",
        "{seen}"
    );
    // InProgress held by the test clock, then Successful, on the ENI of
    // (PrivateB, OtherSg), which now serves the function alone.
    assert_eq!(seen["held"], "InProgress", "{seen}");
    let history: Vec<&str> = seen["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    let update = history
        .iter()
        .position(|h| h.contains("InProgress"))
        .unwrap_or_else(|| panic!("{history:?}"));
    assert!(
        history[update..].iter().any(|h| h.contains("Successful")),
        "{history:?}"
    );
    let second = eni("PrivateB", "OtherSg");
    assert_eq!(seen["second_eni"], second["id"], "{seen}");
    assert_ne!(second["id"], first["id"]);
    assert_eq!(second["functions"], serde_json::json!(["orders"]));
    let f = &state["functions"][0];
    assert_eq!(f["environments"][0]["eni"], second["id"], "{f}");
    assert!(seen["vpc_config"].as_str().unwrap().contains("PrivateB"));
    // The database's group refuses the new group: the drop, its reason,
    // and explain's rule-by-rule answer.
    assert!(
        seen["invoke2"]["error"].is_string(),
        "the database should be unreachable: {seen}"
    );
    let row = seen["drop_row"].as_str().unwrap();
    assert!(row.contains("sg_ingress_denied"), "{row}");
    assert!(row.contains(second["ip"].as_str().unwrap()), "{row}");
    assert!(row.contains("10.0.1.10"), "{row}");
    let verdict = seen["explain_verdict"].as_str().unwrap();
    assert!(
        verdict.contains("DENY") && verdict.contains("sg_ingress_denied"),
        "{verdict}"
    );
    // Rule by rule: the route, the sender's group, the ACLs, then the
    // database's group that has no rule for it.
    let steps = seen["explain_steps"].as_array().unwrap();
    assert!(steps.len() >= 3, "{steps:?}");
    assert!(steps[1].as_str().unwrap().contains("OtherSg"), "{steps:?}");
    let explain = seen["explain"].as_str().unwrap();
    assert!(explain.contains("no inbound rule of [DbSg]"), "{explain}");
    // The topology draws what the state says, with the database's drops.
    let drawn = seen["drawn"].to_string();
    for (kind, id) in [
        ("vpc", "Vpc"),
        ("subnet", "PrivateB"),
        ("igw", "Igw"),
        ("nat", "Nat"),
        ("endpoint", "S3Endpoint"),
        ("instance", "Db"),
        ("function", "orders"),
        ("eni", second["id"].as_str().unwrap()),
    ] {
        assert!(
            drawn.contains(&format!("[\"{kind}\",\"{id}\"]")),
            "{kind} {id} not drawn: {drawn}"
        );
    }
    assert!(
        seen["env_counter"]
            .as_str()
            .unwrap()
            .contains("sg_ingress_denied"),
        "{seen}"
    );
    assert!(
        seen["db_counter"].as_str().unwrap().contains("fwd"),
        "{seen}"
    );
    // Everything the page asked the network for came from the agent
    // (`chrome://` is the browser's own start page).
    let requested = seen["requested"].as_array().unwrap();
    assert!(requested
        .iter()
        .any(|u| u == &format!("{url}/console/console.js")));
    for u in requested {
        let u = u.as_str().unwrap();
        assert!(
            !u.contains("://") || u.starts_with(&url) || u.starts_with("chrome://"),
            "fetched from elsewhere: {u}"
        );
    }
    // No error but the one the test provoked: the refused configuration.
    let refused = format!("{url}/2015-03-31/functions/orders/configuration - Failed to load resource: the server responded with a status of 400");
    for e in seen["console_errors"].as_array().unwrap() {
        assert!(e.as_str().unwrap().starts_with(&refused), "{e}");
    }
    for page in ["functions", "function", "edit-vpc", "flows", "topology"] {
        assert!(artifacts().join(format!("{page}.png")).exists(), "{page}");
    }
}

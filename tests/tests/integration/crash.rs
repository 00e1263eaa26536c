//! Crash tests: the agent and `vpc apply` killed with SIGKILL at random
//! moments of their work, each time followed by a successor; the store and
//! the datapath converge to the desired state (`vpc verify` finds nothing),
//! no NAT claim or map entry leaks, and a connection of an unchanged
//! resource is never lost. `VPC_CRASH_SEED=N` replays a run,
//! `VPC_CRASH_KILLS=N` changes its length (default 100).
use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::json;
use vpc_tests::{line_echo_server, text, Deployment, LineClient, Rng, FAST};

use crate::reconcile::{BASE, SUBNET_B};

/// `vpc verify`'s differences (empty: what is built is what is desired).
fn drift(d: &Deployment) -> Vec<String> {
    let out = d.vpc(&["verify", "--output", "json"]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("vpc verify: {e}: {}", text(&out)))
}

/// The running agent's pid, if one runs.
fn agent_pid(d: &Deployment) -> Option<u32> {
    vpc::deploy::agent_running(&d.name).unwrap()
}

/// SIGKILL to the agent, and until its lock is free (dying takes a while
/// on a loaded machine; its successor needs the lock).
fn kill_agent(d: &Deployment, pid: u32) {
    // SAFETY: a signal to the deployment's own agent.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    while agent_pid(d) == Some(pid) {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Which processes have the deployment's state files open, and where the
/// agent's threads wait (for a failure's message).
fn who_holds(d: &Deployment) -> String {
    let dir = vpc::paths::state_dir(&d.name);
    let mut out = String::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(t) = std::fs::read_link(fd.path()) {
                if t.starts_with(&dir) {
                    let cmd = std::fs::read_to_string(p.path().join("cmdline"))
                        .unwrap_or_default()
                        .replace('\0', " ");
                    out += &format!("{:?} holds {}: {cmd}\n", p.file_name(), t.display());
                }
            }
        }
    }
    if let Some(pid) = agent_pid(d) {
        for t in std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let wchan = std::fs::read_to_string(t.path().join("wchan")).unwrap_or_default();
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            out += &format!(
                "agent {pid} thread {:?} {} waits in {wchan}\n",
                t.file_name(),
                comm.trim()
            );
        }
    }
    out
}

/// Starts an agent unless one runs (a successor after a kill).
fn ensure_agent(d: &Deployment) {
    if agent_pid(d).is_none() {
        let out = d.vpc(&["agent", "--detach"]);
        assert!(out.status.success(), "{}", text(&out));
    }
}

/// A Lambda API call in the background (its answer does not matter: the
/// agent may die under it).
fn api_in_background(d: &Deployment, method: &'static str, path: String, body: serde_json::Value) {
    let name = d.name.clone();
    std::thread::spawn(move || {
        let _ = vpc::api::call(&name, method, &path, &serde_json::to_vec(&body).unwrap());
    });
}

fn spawn_apply(d: &Deployment, template: &str, path: &std::path::Path) -> Child {
    std::fs::write(path, template).unwrap();
    Command::new(vpc_tests::vpc_bin())
        .args(["--name", &d.name, "apply", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `vpc verify` reports what differs from the desired state, and the next
/// reconcile repairs it.
#[test]
fn verify_finds_drift_and_a_reconcile_repairs_it() {
    use aya::maps::HashMap;
    use vpc::datapath::{Maps, PinnedMaps};
    let d = Deployment::up("crv", BASE, FAST);
    assert_eq!(drift(&d), Vec::<String>::new());
    let s = vpc::deploy::State::load(&d.name).unwrap();
    let app = s.node("App").unwrap().ip;
    let mut maps = PinnedMaps::open(&s.pin_dir).unwrap();
    let mut m: HashMap<_, vpc_common::AddrKey, vpc_common::Endpoint> =
        HashMap::try_from(maps.map(vpc_common::map_names::ENDPOINTS).unwrap()).unwrap();
    let app = vpc_common::v4_mapped(app.octets());
    let k = m
        .keys()
        .filter_map(Result::ok)
        .find(|k| k.addr == app)
        .unwrap();
    m.remove(&k).unwrap();
    drop(maps);
    let found = drift(&d);
    assert!(
        found.len() == 1 && found[0].starts_with("ENDPOINTS:") && found[0].ends_with("missing"),
        "{found:?}"
    );
    let out = d.vpc(&["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    d.apply(BASE);
    assert_eq!(drift(&d), Vec::<String>::new());
}

/// A hundred kills at random moments: `vpc apply` adding or removing a
/// subnet with an instance and a function; the agent under CreateFunction,
/// DeleteFunction, UpdateFunctionConfiguration (a new ENI) and its own
/// ticks (GC, timers) with connections opening and closing. After each, a
/// successor (`vpc apply` again, `vpc agent --detach`) and the deployment
/// converges: `vpc verify` finds nothing, and the connection the app host
/// holds to the database through all of it still echoes.
#[test]
fn kills_at_random_moments_always_converge() {
    let seed = std::env::var("VPC_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let kills: usize = std::env::var("VPC_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    eprintln!("crash test: VPC_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let d = Deployment::up("crk", BASE, FAST);
    let _db = line_echo_server(&d.netns("Db"), "10.0.1.10:5432");
    let held = LineClient::connect(&d.netns("App"), "10.0.1.10:5432");
    assert!(held.echoes("before", 30));
    let path = std::env::temp_dir().join(format!("{}-crash.yaml", d.name));
    let with_b = format!("{BASE}{SUBNET_B}");
    let mut created = 0;
    let mut killed = 0;
    while killed < kills {
        let what = rng.below(6);
        let delay = Duration::from_millis(rng.below(400) as u64);
        match what {
            // `vpc apply`, killed mid-way; then applied again to the end.
            0 | 1 => {
                let t = if what == 0 { &with_b } else { BASE };
                let mut child = spawn_apply(&d, t, &path);
                std::thread::sleep(delay);
                let _ = child.kill();
                let _ = child.wait();
                d.apply(t);
            }
            // The agent under a Lambda API change.
            _ => {
                ensure_agent(&d);
                match what {
                    2 => {
                        created += 1;
                        api_in_background(
                            &d,
                            "POST",
                            "/2015-03-31/functions".into(),
                            json!({
                                "FunctionName": format!("c{created}"),
                                "Role": "arn:aws:iam::123456789012:role/x",
                                "Code": {"ZipFile": "Y2F0"},
                                "VpcConfig": {"SubnetIds": ["A"], "SecurityGroupIds": [if created % 2 == 0 { "FnSg" } else { "AppSg" }]},
                            }),
                        );
                    }
                    3 if created > 0 => {
                        let f = format!("c{}", 1 + rng.below(created));
                        api_in_background(
                            &d,
                            "DELETE",
                            format!("/2015-03-31/functions/{f}"),
                            json!(null),
                        );
                    }
                    4 => {
                        let g = *rng.pick(&["FnSg", "AppSg", "DbSg"]);
                        api_in_background(
                            &d,
                            "PUT",
                            "/2015-03-31/functions/Fn/configuration".into(),
                            json!({"VpcConfig": {"SubnetIds": ["A"], "SecurityGroupIds": [g]}}),
                        );
                    }
                    // Its ticks, with connections coming and going.
                    _ => {
                        let _ = vpc_tests::connects(&d, "exec", "App", "10.0.1.10", 5432, 1);
                        // Through the function's ENI: a NAT claim.
                        let _ = vpc_tests::connects(&d, "invoke", "Fn", "10.0.1.10", 5432, 1);
                    }
                }
                std::thread::sleep(delay);
                if let Some(pid) = agent_pid(&d) {
                    kill_agent(&d, pid);
                }
            }
        }
        killed += 1;
        ensure_agent(&d);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let found = drift(&d);
            if found.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(vpc::paths::state_dir(&d.name).join("agent.log"))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                panic!(
                    "kill {killed} (seed {seed}, op {what}, {} ms): still differs after 60 s: {found:#?}\nthe agent's log, last lines first:\n{}\n{}",
                    delay.as_millis(),
                    tail.join("\n"),
                    who_holds(&d)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            held.echoes(&format!("after kill {killed}"), 30),
            "kill {killed} (seed {seed}, op {what}): the held connection is lost"
        );
    }
    let _ = std::fs::remove_file(&path);
    eprintln!("crash test: {killed} kills survived (seed {seed})");
}

//! The agent: the metrics it serves, its idle-connection sweep, a restart adopting the datapath.
use vpc_tests::{http_get, metric, spawn_in_netns, text, wait_for, Deployment, FAST};

use super::{router_links, udp_echo_server, udp_request, Child, TempPath};

#[test]
fn the_agent_serves_metrics_that_match_the_datapath() {
    let mut flags = FAST.to_vec();
    flags.extend(["--conntrack-max", "1000"]);
    let d = Deployment::up("e2em2", "default", &flags);
    // One refused SYN, never retransmitted: status and metrics, read one
    // after the other, count the same drops.
    spawn_in_netns(&d.exec_env_netns("OrdersFunction"), || {
        vpc_tests::one_syn("10.0.1.10:22".parse().unwrap())
    })
    .join()
    .unwrap();
    wait_for("the SYN refused", 30, || {
        d.dropped("sg_ingress_denied") >= 1
    });
    let s = d.status();
    let url = s["metrics_url"]
        .as_str()
        .expect("a metrics URL")
        .to_string();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "loopback by default: {url}"
    );
    let body = http_get(&url);
    // OpenMetrics text: every sample line is `name{labels} value`, and it ends with EOF.
    assert!(body.ends_with("# EOF\n"), "{body}");
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect(line);
        assert!(value.parse::<f64>().is_ok(), "{line}");
        let name = series.split('{').next().unwrap();
        assert!(
            name.starts_with("vpc_") && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
    }
    let sample = |series: &str| -> u64 {
        metric(&body, series).unwrap_or_else(|| panic!("{series} missing: {body}")) as u64
    };
    // The refused connection is counted the same by status and by metrics.
    let denied = sample(r#"vpc_packets_dropped_total{reason="sg_ingress_denied"}"#);
    assert!(denied >= 1);
    assert_eq!(denied, d.dropped("sg_ingress_denied"));
    assert_eq!(
        sample("vpc_packets_forwarded_total"),
        s["counters"]["forwarded"].as_u64().unwrap()
    );
    assert_eq!(
        sample(r#"vpc_function_state{function="OrdersFunction",state="Active"}"#),
        1
    );
    assert!(body.contains("vpc_eni_connections{eni=\"eni-"), "{body}");
    assert_eq!(sample("vpc_conntrack_capacity_connections"), 500);
}

#[test]
fn the_agent_collects_connections_after_their_idle_timeout() {
    // The idle time passes on the test clock, not while a loaded machine
    // gets to the first check.
    let d = Deployment::up(
        "e2ei",
        "default",
        &[
            "--clock",
            "test",
            "--eni-delay",
            "0s",
            "--wait",
            "--timeout",
            "udp=30",
        ],
    );
    let server = udp_echo_server(&d.netns("DatabaseInstance"), "10.0.1.10:9000");
    assert!(udp_request(
        &d.exec_env_netns("OrdersFunction"),
        "10.0.1.10:9000",
        b"x",
        30
    )
    .is_some());
    assert!(server.finish(30).is_some());
    assert_eq!(d.status()["connections"], 1);
    let out = d.vpc(&["clock", "advance", "31s"]);
    assert!(out.status.success(), "{}", text(&out));
    // The agent sweeps every second.
    wait_for("the expired connection collected", 30, || {
        d.status()["connections"] == 0
    });
}

/// Each ENI's id, address and groups.
fn eni_ids(d: &Deployment) -> Vec<String> {
    d.eni_list()
        .iter()
        .map(|e| format!("{} {} {}", e["id"], e["address"], e["security_groups"]))
        .collect()
}

#[test]
fn a_killed_agent_drops_no_connection_and_its_successor_adopts_the_pinned_datapath() {
    let d = Deployment::up("e2ekill", "default", FAST);
    let db = "10.0.1.10";
    let progs = router_links(&d);
    assert!(!progs.is_empty());
    let first = d.status()["agent_pid"].as_u64().expect("a running agent");
    let enis = eni_ids(&d);

    let listen = format!("timeout --foreground 300 nc -4 -l {db} 5432 | sha256sum");
    let server = Child::spawn(&d, &["exec", "DatabaseInstance", "--", "sh", "-c", &listen]);
    wait_for("the server to listen", 30, || {
        let ss = d.vpc(&[
            "exec",
            "DatabaseInstance",
            "--",
            "ss",
            "-Hltn",
            "sport = :5432",
        ]);
        !String::from_utf8_lossy(&ss.stdout).trim().is_empty()
    });
    // One connection sending 64 KiB every 50 ms until the test says stop:
    // the agent dies and a new one starts in the middle of it, however
    // long that takes.
    let sent = TempPath::new(&format!("{}-stream", d.name));
    let stop = TempPath::new(&format!("{}-stream-stop", d.name));
    let cmd = format!(
        "set -e; while [ ! -e {s} ]; do head -c 65536 /dev/urandom; sleep 0.05; done \
         | tee {f} | timeout --foreground 300 nc -4 -N {db} 5432; wc -c < {f}; sha256sum < {f}",
        f = sent.0.display(),
        s = stop.0.display()
    );
    let client = Child::spawn(&d, &["invoke", "orders", "--", "sh", "-c", &cmd]);
    wait_for("the stream to be tracked", 30, || {
        d.vpc(&["conntrack", "list"])
            .stdout
            .windows(4)
            .any(|w| w == b"5432")
    });

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the agent to be gone", 30, || {
        d.status()["agent_running"] == false
    });
    // No agent: the pinned programs forward on their own.
    let forwarded = || d.status()["counters"]["forwarded"].as_u64().unwrap();
    let before = forwarded();
    wait_for("packets forwarded with no agent", 30, || {
        forwarded() > before
    });

    let out = d.vpc(&["agent", "--detach"]);
    assert!(out.status.success(), "{}", text(&out));
    let second = d.status()["agent_pid"].as_u64().expect("the new agent");
    assert_ne!(second, first);
    // Only one agent at a time.
    let again = d.vpc(&["agent", "--detach"]);
    assert!(!again.status.success());
    assert!(
        text(&again).contains(&format!("an agent (pid {second}) already runs")),
        "{}",
        text(&again)
    );

    // The stream goes on under the new agent (a few more chunks), then ends.
    let size = || std::fs::metadata(&sent.0).map(|m| m.len()).unwrap_or(0);
    let at_restart = size();
    wait_for("the stream to go on", 30, || {
        size() >= at_restart + 4 * 65536
    });
    std::fs::write(&stop.0, b"").unwrap();
    let client = client.wait();
    assert!(client.status.success(), "{}", text(&client));
    let received = server.wait();
    let client_out = String::from_utf8_lossy(&client.stdout).into_owned();
    let mut lines = client_out.lines();
    let len: u64 = lines.next().unwrap_or_default().parse().unwrap_or(0);
    assert!(
        len >= at_restart + 4 * 65536 && len.is_multiple_of(65536),
        "whole chunks sent across the restart: {client_out}"
    );
    let want = lines.next().unwrap().split_whitespace().next().unwrap();
    let got = String::from_utf8_lossy(&received.stdout);
    assert_eq!(
        got.split_whitespace().next(),
        Some(want),
        "the bytes that arrived differ from those sent"
    );

    // Adopted, not recreated: the same programs on the same ports, the
    // function still Active, and the new agent does the agent's work.
    assert_eq!(router_links(&d), progs);
    let s = d.status();
    assert_eq!(s["functions"][0]["state"], "Active", "{s}");
    assert_eq!(eni_ids(&d), enis);
    let url = s["metrics_url"]
        .as_str()
        .expect("the new agent serves metrics")
        .to_string();
    assert!(http_get(&url).contains("packets_forwarded"));
}

/// An agent that starts while someone looks at its lock (`vpc status`
/// takes it shared for a moment; the file still names the dead
/// predecessor) waits for the look to end instead of taking it for a
/// running agent.
#[test]
fn an_agent_starting_during_a_look_at_its_lock_starts() {
    let d = Deployment::up("e2elk", vpc_tests::fixture!("one_subnet.yaml"), FAST);
    d.kill_agent();
    let path = vpc::deploy::state_dir(&d.name).join("agent.lock");
    let look = nix::fcntl::Flock::lock(
        std::fs::File::open(&path).unwrap(),
        nix::fcntl::FlockArg::LockSharedNonblock,
    )
    .unwrap_or_else(|_| panic!("looking at {}", path.display()));
    let mut agent = std::process::Command::new(vpc_tests::vpc_bin())
        .args(["--name", &d.name, "agent"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let early = agent.try_wait().unwrap();
    drop(look);
    assert!(
        early.is_none(),
        "the agent gave up during the look: {early:?}"
    );
    wait_for("the agent to answer", 30, || {
        vpc::api::call(&d.name, "GET", "/2015-03-31/functions", b"").is_ok()
    });
    assert_eq!(
        vpc::deploy::agent_running(&d.name).unwrap(),
        Some(agent.id())
    );
    drop(d); // `vpc down` stops it
    let _ = agent.wait();
}

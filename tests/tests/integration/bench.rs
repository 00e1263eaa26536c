//! The benches in short runs, no timing checked: the throughput bench
//! (`vpc bench --throughput`: every path carries every kind of traffic and
//! keeps every circulating frame) and the invoke bench (`vpc bench
//! --invoke`).
use vpc_tests::text;

/// Runs `vpc bench ARGS --json ...` to the end and returns the JSON file
/// it writes (`file`, next to --json); checks that the deployment it names
/// `<prefix><pid>` left no namespace behind.
fn run_bench(prefix: &str, args: &[&str], file: &str) -> serde_json::Value {
    let json = std::env::temp_dir().join(format!("{prefix}-{}/results.json", std::process::id()));
    let child = std::process::Command::new(vpc_tests::vpc_bin())
        .arg("bench")
        .args(args)
        .arg("--json")
        .arg(&json)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The bench names its deployment after its pid.
    let name = format!("{prefix}{}", child.id() % 100_000);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let r = serde_json::from_slice(&std::fs::read(json.with_file_name(file)).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(json.parent().unwrap());
    assert!(
        vpc_tests::namespaces_with_prefix(&name).is_empty(),
        "the bench left namespaces behind"
    );
    r
}

#[test]
fn the_throughput_bench_forwards_on_every_path() {
    // A short run: that every path carries every kind of traffic and keeps
    // every circulating frame, never a timing.
    let r = run_bench(
        "tput",
        &[
            "--throughput",
            "--samples",
            "1",
            "--sample-seconds",
            "0.5",
            "--socket-seconds",
            "1",
        ],
        "throughput.json",
    );
    for path in vpc::throughput::PATHS {
        for flows in [1, 1024] {
            let c = r["circulating"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["path"] == path && p["flows"] == flows)
                .unwrap_or_else(|| panic!("{path}, {flows} flow(s): {r}"));
            assert!(c["mpps_median"].as_f64().unwrap() > 0.0, "{path}: {c}");
            // Every injected frame came back to be drained: the path
            // forwards both directions of the flow, at either hook.
            assert_eq!(c["lost"], 0, "{path}, {flows} flow(s): {c}");
        }
        let t = r["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["path"] == path)
            .unwrap_or_else(|| panic!("{path}: {r}"));
        for k in [
            "gbps_1_stream",
            "gbps_4_streams",
            "udp64_kpps_received",
            "rr_p50_us",
            "rr_p99_us",
            "connections_per_second",
        ] {
            assert!(t[k].as_f64().unwrap() > 0.0, "{path} {k}: {t}");
        }
        // New connections from the multi-threaded client: counted, their
        // failures reported by kind, the CPU they cost measured, and on the
        // router every one took a port of the function's Hyperplane ENI.
        let c = &t["connections"];
        let completed = c["completed"].as_u64().unwrap();
        assert!(completed > 0, "{path}: {c}");
        for k in ["refused", "timed_out", "reset", "no_local_port", "other"] {
            assert!(c["failed"][k].is_u64(), "{path} {k}: {c}");
        }
        assert!(
            c["cpu_us_per_connection"].as_f64().unwrap() > 0.0,
            "{path}: {c}"
        );
        if path.starts_with("vpc-") {
            let ports = c["counters"]["nat ports allocated"].as_u64();
            assert!(ports.unwrap_or(0) >= completed, "{path}: {c}");
        }
    }
    // Every comparison has a ratio, and says which figures are the
    // method's: exactly those within 20 % of `direct`.
    let cmp = r["comparisons"].as_array().unwrap();
    assert_eq!(cmp.len(), 8 * 3 * 2, "{r}");
    for c in cmp {
        assert!(c["ratio"].as_f64().unwrap() > 0.0, "{c}");
        let bound = c["bound_by_method"].as_array().unwrap();
        let kind = match (bound.contains(&c["path"]), bound.contains(&c["against"])) {
            (false, false) => "measured",
            (true, false) => "at_least",
            (false, true) => "at_most",
            (true, true) => "meaningless",
        };
        assert_eq!(c["kind"], kind, "{c}");
    }
}

/// The invoke bench (`vpc bench --invoke`) in a short run: each runtime
/// starts cold after every configuration change (its Runtime API bound
/// again at once), answers warm, and the deployment goes with the run.
#[test]
fn the_invoke_bench_measures_every_runtime_and_leaves_nothing() {
    let r = run_bench(
        "inv",
        &[
            "--invoke",
            "--cold",
            "3",
            "--warm",
            "10",
            "--invoke-seconds",
            "0.5",
        ],
        "invoke.json",
    );
    for runtime in ["python3.11", "nodejs20.x"] {
        let x = r
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["runtime"] == runtime)
            .unwrap_or_else(|| panic!("{runtime}: {r}"));
        for k in [
            "cold_ms_median",
            "warm_ms_median",
            "per_second_1",
            "per_second_8",
        ] {
            assert!(x[k].as_f64().unwrap() > 0.0, "{runtime} {k}: {x}");
        }
    }
}

#[test]
fn the_cluster_bench_crosses_hosts_and_converges() {
    // A short run: both paths carry every kind of traffic, and three hosts
    // converge on a few functions; never a timing.
    let r = run_bench(
        "cb",
        &["--cluster", "--functions", "12", "--socket-seconds", "1"],
        "cluster.json",
    );
    for path in ["same_host", "cross_host"] {
        let p = &r[path];
        for k in [
            "gbps_1_stream",
            "udp64_kpps_received",
            "rr_p50_us",
            "connections_per_second",
        ] {
            assert!(p[k].as_f64().unwrap() > 0.0, "{path} {k}: {r}");
        }
    }
    let c = &r["convergence"];
    assert_eq!(c["functions"], 12);
    assert!(c["converged_seconds"].as_f64().unwrap() > 0.0);
    // Each host built its own share and stands in for the others'.
    let shares = c["per_host"].as_array().unwrap();
    assert_eq!(shares.len(), 3);
    for h in shares {
        assert!(h["own_nodes"].as_u64().unwrap() > 0, "{h}");
        assert!(h["stand_ins"].as_u64().unwrap() > 0, "{h}");
    }
    let left: Vec<String> = std::fs::read_dir("/run/netns")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.starts_with("cb") && n.contains("h1-") | n.contains("h2-") | n.contains("h3-")
        })
        .collect();
    assert!(left.is_empty(), "the bench left {left:?}");
}

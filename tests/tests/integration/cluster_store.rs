//! The cluster store against a real etcd: membership and lease expiry, the
//! desired state's optimistic writes and its watch, the write lock, NAT
//! port slices; `vpc cluster simulate` at a small size.
use std::{
    collections::BTreeSet,
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use serde_json::json;
use vpc::cluster::{Cluster, Settings};
use vpc_tests::{etcd::Etcd, text, unique_name, vpc_bin};

fn settings(etcd: &Etcd, cluster: &str, host: &str) -> Settings {
    Settings {
        endpoints: vec![etcd.url()],
        cluster: cluster.into(),
        host: host.into(),
        underlay: Ipv4Addr::new(10, 0, 0, host.len() as u8),
        api_addr: Some(format!("{host}:8080")),
        // etcd's smallest lease (with its default election timeout).
        lease_ttl_s: 2,
    }
}

fn joined(etcd: &Etcd, cluster: &str, host: &str) -> Cluster {
    let mut c = Cluster::connect(&settings(etcd, cluster, host)).unwrap();
    c.join().unwrap();
    c
}

/// Polls `f` until it returns `Some`, up to `secs`.
fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "{what} within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn hosts(c: &Cluster) -> Vec<String> {
    c.members().unwrap().into_iter().map(|m| m.host).collect()
}

#[test]
fn an_unreachable_etcd_is_a_clear_error_within_seconds() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = Settings {
        endpoints: vec![format!("http://127.0.0.1:{port}")],
        cluster: "c".into(),
        host: "a".into(),
        underlay: Ipv4Addr::LOCALHOST,
        api_addr: None,
        lease_ttl_s: 5,
    };
    let t0 = Instant::now();
    let e = Cluster::connect(&s).err().expect("no etcd there");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let e = format!("{e:#}");
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(e.contains("cannot reach etcd"), "{e}");
}

#[test]
fn members_join_leave_and_expire_with_their_lease() {
    let etcd = Etcd::start();
    let cl = unique_name("c");
    let mut b = joined(&etcd, &cl, "b");
    let a = joined(&etcd, &cl, "a");
    let cli = Cluster::connect(&settings(&etcd, &cl, "cli")).unwrap();
    // Sorted by host; a CLI process connected without joining is no member.
    assert_eq!(hosts(&cli), ["a", "b"]);
    let m = &cli.members().unwrap()[0];
    assert_eq!(
        (m.underlay, m.api_addr.as_deref()),
        (Ipv4Addr::new(10, 0, 0, 1), Some("a:8080"))
    );
    assert!(a.is_leader().unwrap() && !b.is_leader().unwrap() && !cli.is_leader().unwrap());
    // A second agent as "a" is refused while a's lease lives.
    let mut a2 = Cluster::connect(&settings(&etcd, &cl, "a")).unwrap();
    let e = format!("{:#}", a2.join().expect_err("refused"));
    assert!(e.contains("already a member"), "{e}");
    // Leave: gone at once; the watch says so.
    cli.wait_change(i64::MAX, Duration::ZERO).unwrap();
    b.leave().unwrap();
    assert_eq!(hosts(&cli), ["a"]);
    assert!(
        cli.wait_change(i64::MAX, Duration::from_secs(5))
            .unwrap()
            .members
    );
    // A dropped handle stops renewing: gone when its lease runs out, as after
    // a crash; then its name may join again.
    drop(a);
    eventually(10, "a's lease expires", || {
        hosts(&cli).is_empty().then_some(())
    });
    a2.join().unwrap();
    assert!(a2.is_leader().unwrap());
}

#[test]
fn the_desired_state_is_written_optimistically_and_watched_by_change() {
    let etcd = Etcd::start();
    let cl = unique_name("c");
    let w1 = Cluster::connect(&settings(&etcd, &cl, "w1")).unwrap();
    let w2 = Cluster::connect(&settings(&etcd, &cl, "w2")).unwrap();
    let watcher = Cluster::connect(&settings(&etcd, &cl, "agent")).unwrap();
    assert_eq!(w1.desired().unwrap(), None);
    let fns = |n: usize| -> Vec<serde_json::Value> {
        (0..n)
            .map(|i| json!({"id": format!("fn-{i}"), "subnets": ["s1", "s2"], "host": "a"}))
            .collect()
    };
    let v1 = json!({"model": {"stack_name": "s", "functions": fns(300), "subnets": [{"id": "s1"}]},
                    "stacks": ["s"]});
    let r1 = w1.put_desired(&v1, 0).unwrap().expect("first write");
    // The second writer read nothing: its write at 0 conflicts.
    assert_eq!(w2.put_desired(&v1, 0).unwrap(), Err(r1));
    let change = watcher.wait_change(0, Duration::from_secs(5)).unwrap();
    assert!(change.desired && change.desired_rev == r1, "{change:?}");
    assert_eq!(w2.desired().unwrap(), Some((v1.clone(), r1)));
    // One more function and one changed: three keys with the revision,
    // whatever the size of the rest.
    let before = watcher.watch_stats();
    let mut v2 = v1.clone();
    let f = v2["model"]["functions"].as_array_mut().unwrap();
    f.insert(100, json!({"id": "fn-new", "subnets": ["s1"], "host": "b"}));
    f[5]["host"] = json!("b");
    let r2 = w2.put_desired(&v2, r1).unwrap().expect("w2 is up to date");
    assert_eq!(w1.put_desired(&v2, r1).unwrap(), Err(r2));
    assert!(
        watcher
            .wait_change(r1, Duration::from_secs(5))
            .unwrap()
            .desired
    );
    let after = eventually(5, "the watch sees r2", || {
        let s = watcher.watch_stats();
        (s.desired_rev == r2).then_some(s)
    });
    assert_eq!(after.events - before.events, 3, "{before:?} {after:?}");
    assert_eq!(w1.desired().unwrap(), Some((v2.clone(), r2)));
    // Nothing new: wait_change times out empty.
    let quiet = watcher.wait_change(r2, Duration::from_millis(200)).unwrap();
    assert!(!quiet.desired && !quiet.members, "{quiet:?}");
    // A large state reads back in pages (more than a 4 MiB gRPC message).
    let big = json!({"model": {"functions": fns(5000).into_iter().map(|mut f| {
        f["code"] = json!("x".repeat(1000)); f }).collect::<Vec<_>>()}});
    let r3 = w1.put_desired(&big, r2).unwrap().unwrap();
    assert_eq!(w2.desired().unwrap(), Some((big, r3)));
}

#[test]
fn the_write_lock_is_exclusive_and_names_its_holder() {
    let etcd = Etcd::start();
    let cl = unique_name("c");
    let a = joined(&etcd, &cl, "host-a");
    let b = Cluster::connect(&settings(&etcd, &cl, "cli-b")).unwrap();
    let guard = a.lock().unwrap();
    let t0 = Instant::now();
    let e = format!(
        "{:#}",
        b.lock_for(Duration::from_secs(1)).err().expect("held")
    );
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    assert!(e.contains("held by host host-a (pid"), "{e}");
    drop(guard);
    let g = b.lock_for(Duration::from_secs(5)).unwrap();
    drop(g);
    // A holder killed while holding it releases it with its lease.
    let mut child = KillOnDrop(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "cluster_store::lock_holder", "--nocapture"])
            .env("VPC_TEST_LOCK_HOLDER", format!("{} {cl}", etcd.url()))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = std::io::BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("LOCKED") {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0,
            "the holder died"
        );
    }
    assert!(b.lock_for(Duration::from_millis(500)).is_err());
    drop(child);
    let t0 = Instant::now();
    let _g = a.lock_for(Duration::from_secs(20)).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
}

/// A child process, killed (SIGKILL) and reaped on drop, also on failure.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lock holder `the_write_lock_is_exclusive_and_names_its_holder`
/// kills: takes the lock and waits (a no-op in a normal run).
#[test]
fn lock_holder() {
    let Ok(arg) = std::env::var("VPC_TEST_LOCK_HOLDER") else {
        return;
    };
    let (url, cl) = arg.split_once(' ').unwrap();
    let s = Settings {
        endpoints: vec![url.into()],
        cluster: cl.into(),
        host: "doomed".into(),
        underlay: Ipv4Addr::LOCALHOST,
        api_addr: None,
        lease_ttl_s: 2,
    };
    let c = Cluster::connect(&s).unwrap();
    let _g = c.lock().unwrap();
    println!("LOCKED");
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn slices_rebalance_drain_and_cool() {
    let etcd = Etcd::start();
    let cl = unique_name("c");
    let mut a = joined(&etcd, &cl, "a");
    let all: Vec<u32> = (0..16).collect();
    assert_eq!(a.slices(&|_| false).unwrap(), all);
    // b joins: a's share is 8; it stops using 8..16 at once, keeps the
    // keys of the ones with connections (12, 13) until they end.
    let mut b = joined(&etcd, &cl, "b");
    let busy = |s: u32| s == 12 || s == 13;
    assert_eq!(a.slices(&busy).unwrap(), (0..8).collect::<Vec<_>>());
    let got_b = b.slices(&|_| false).unwrap();
    assert_eq!(got_b, [8, 9, 10, 11, 14, 15]);
    // The connections end: b gets the rest.
    a.slices(&|_| false).unwrap();
    assert_eq!(b.slices(&|_| false).unwrap(), (8..16).collect::<Vec<_>>());
    // c joins (6/5/5): each gives up what is above its share.
    let mut c = joined(&etcd, &cl, "c");
    for h in [&mut a, &mut b] {
        h.slices(&|_| false).unwrap();
    }
    let (sa, sb, sc) = (
        a.slices(&|_| false).unwrap(),
        b.slices(&|_| false).unwrap(),
        c.slices(&|_| false).unwrap(),
    );
    assert_eq!(
        (sa.len(), sb.len(), sc.len()),
        (6, 5, 5),
        "{sa:?} {sb:?} {sc:?}"
    );
    let union: BTreeSet<u32> = sa.iter().chain(&sb).chain(&sc).copied().collect();
    assert_eq!(union.len(), 16);
    // c dies: its slices stay taken until the leader cools them, and stay
    // cooling (nobody claims them) for the cooling time.
    drop(c);
    eventually(10, "c's lease expires", || {
        (hosts(&a).len() == 2).then_some(())
    });
    assert!(a.is_leader().unwrap() && !b.is_leader().unwrap());
    let sa = a.slices(&|_| false).unwrap();
    let sb = b.slices(&|_| false).unwrap();
    assert_eq!(
        sa.len() + sb.len(),
        11,
        "c's slices are not free: {sa:?} {sb:?}"
    );
    a.cool_slices_of_gone_members(2).unwrap();
    let sa = a.slices(&|_| false).unwrap();
    let sb = b.slices(&|_| false).unwrap();
    assert!(
        sc.iter().all(|s| !sa.contains(s) && !sb.contains(s)),
        "{sa:?} {sb:?} {sc:?}"
    );
    let (sa, sb) = eventually(10, "the cooling ends", || {
        let sa = a.slices(&|_| false).unwrap();
        let sb = b.slices(&|_| false).unwrap();
        (sa.len() + sb.len() == 16).then_some((sa, sb))
    });
    assert_eq!((sa.len(), sb.len()), (8, 8));
    // A host that is no member has no slices.
    b.leave().unwrap();
    assert!(b.slices(&|_| false).is_err());
}

#[test]
fn simulate_at_a_small_size() {
    let etcd = Etcd::start();
    let out = std::process::Command::new(vpc_bin())
        .args([
            "--output",
            "json",
            "cluster",
            "simulate",
            "--etcd",
            &etcd.url(),
        ])
        .args(["--hosts", "3", "--functions", "100", "--batch", "30"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (r["hosts"].as_u64(), r["writes"].as_u64()),
        (Some(3), Some(4)),
        "{r}"
    );
    assert_eq!(r["members_at_end"], 3, "{r}");
    // Every agent saw every key once, and the four revisions: 100
    // functions + 2 subnets + 20 groups + 100 instances + 5 fields of
    // `model` + `model` + 4 x `rev`.
    assert_eq!(r["per_agent"]["events"], 232, "{r}");
    assert_eq!(r["total"]["events"], 3 * 232, "{r}");
    // Those keys (one `rev`) and the 3 members.
    assert_eq!(r["etcd"]["keys"], 229 + 3, "{r}");
    // 34 functions in 2 subnets on the first host; 100 stand-ins, 20 ENIs.
    assert_eq!(r["maps"]["per_host_max"], 34 * 2 + 120, "{r}");
    assert_eq!(r["maps"]["per_host_min"], 33 * 2 + 120, "{r}");
    assert!(r["converge_seconds"].as_f64().unwrap() < 10.0, "{r}");
    // The run leaves nothing in etcd.
    let c = Cluster::connect(&settings(&etcd, r["cluster"].as_str().unwrap(), "check")).unwrap();
    assert_eq!(c.usage().unwrap().keys, 0);
}

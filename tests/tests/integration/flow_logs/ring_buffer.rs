//! The flow-log ring buffer: a full one counted and written as SKIPDATA, a bad size refused.
use std::{
    collections::BTreeSet,
    net::{SocketAddr, UdpSocket},
};

use vpc_tests::{metric, spawn_in_netns, text, wait_for, Deployment};

use super::{host, s3_records, snapshot_when, unix_now, vpc_reject_log, Fields, TempDir};

/// A ring buffer too small for a burst of rejected flows: lost events are
/// counted and the window says SKIPDATA; every flow is either in a record
/// or counted lost.
#[test]
fn a_full_ring_buffer_is_counted_and_written_as_skipdata() {
    let dir = TempDir::new("skip");
    let t = format!("{}{}", vpc::DEFAULT_TEMPLATE, vpc_reject_log("skip-bucket"));
    let d = Deployment::up(
        "flskip",
        &t,
        &[
            "--eni-delay",
            "100ms",
            "--wait",
            "--flow-logs-dir",
            &dir.arg(),
            "--flow-log-ringbuf",
            "4096",
        ],
    );
    let app = d.netns("AppServer");
    let app_ip = host(&d.status(), "AppServer")["address"]
        .as_str()
        .unwrap()
        .to_string();
    const FLOWS: u16 = 2000;
    // 2,000 distinct refused flows (the database admits only the function's
    // group) in a few milliseconds: far more events than 4 KiB hold.
    let from: SocketAddr = format!("{app_ip}:7000").parse().unwrap();
    spawn_in_netns(&app, move || {
        let s = UdpSocket::bind(from).unwrap();
        for port in 0..FLOWS {
            s.send_to(b"x", ("10.0.1.10", 20000 + port)).unwrap();
        }
    })
    .join()
    .unwrap();
    // Once a window after the burst's is written.
    let t1 = unix_now();
    let snap = snapshot_when(&dir, |snap| {
        s3_records(snap, "skip-bucket", "")
            .iter()
            .any(|r| r["start"].parse::<u64>().unwrap() > t1)
    });
    let metrics = vpc_tests::http_get(d.status()["metrics_url"].as_str().unwrap());
    let lost = metric(&metrics, "vpc_flow_log_events_lost_total").expect("metric") as u64;
    let events = metric(&metrics, "vpc_flow_log_events_total").expect("metric") as u64;
    assert!(lost > 0, "{metrics}");
    assert_eq!(
        events + lost,
        FLOWS as u64,
        "one event per flow, sent or lost"
    );
    let s3 = s3_records(&snap, "skip-bucket", "");
    let db_eni = host(&d.status(), "DatabaseInstance")["eni_id"]
        .as_str()
        .unwrap()
        .to_string();
    let rejected: BTreeSet<&str> = s3
        .iter()
        .filter(|r| r["interface-id"] == db_eni && r["log-status"] == "OK")
        .map(|r| {
            assert_eq!(
                (
                    r["action"].as_str(),
                    r["packets"].as_str(),
                    r["bytes"].as_str()
                ),
                ("REJECT", "1", "29")
            );
            r["dstport"].as_str()
        })
        .collect();
    assert_eq!(
        rejected.len() as u64 + lost,
        FLOWS as u64,
        "every flow is a record or counted lost"
    );
    // The window(s) that lost records say so, for every interface covered.
    let skip: Vec<&Fields> = s3
        .iter()
        .filter(|r| r["log-status"] == "SKIPDATA")
        .collect();
    let enis: BTreeSet<&str> = skip.iter().map(|r| r["interface-id"].as_str()).collect();
    assert_eq!(
        enis.len(),
        4,
        "SKIPDATA for the 2 hosts and 2 Hyperplane ENIs: {skip:?}"
    );
    for r in skip {
        assert_eq!(&r["srcaddr"], "-");
        assert_eq!(&r["action"], "-");
    }
    // An agent killed in the middle of a window: its successor cannot know
    // what the lost one held, and its first window says so.
    let pid = d.status()["agent_pid"].as_u64().expect("agent pid") as i32;
    // SAFETY: a signal to the deployment's own agent.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    wait_for("the agent to be gone", 30, || {
        d.status()["agent_running"] != true
    });
    let restart = unix_now();
    let out = d.vpc(&["agent", "--detach"]);
    assert!(out.status.success(), "{}", text(&out));
    let skipped_after = |s3: &[Fields]| -> BTreeSet<String> {
        s3.iter()
            .filter(|r| {
                r["log-status"] == "SKIPDATA" && r["start"].parse::<u64>().unwrap() + 2 >= restart
            })
            .map(|r| r["interface-id"].clone())
            .collect()
    };
    // Its first windows, however late a loaded machine writes them.
    let snap = snapshot_when(&dir, |snap| {
        skipped_after(&s3_records(snap, "skip-bucket", "")).len() == 4
    });
    let s3 = s3_records(&snap, "skip-bucket", "");
    let after = skipped_after(&s3);
    assert_eq!(
        after.len(),
        4,
        "SKIPDATA after the restart for every interface: {s3:?}"
    );
}

/// A ring buffer the kernel cannot have is refused before anything is built.
#[test]
fn a_ring_buffer_size_that_is_not_a_power_of_two_is_refused_and_nothing_is_built() {
    let name = vpc_tests::unique_name("flrb");
    let out = vpc_tests::vpc(&name, &["up", "default", "--flow-log-ringbuf", "5000"]);
    let msg = text(&out);
    // Whatever happened, leave nothing behind.
    let _ = vpc_tests::vpc(&name, &["down"]);
    assert!(!out.status.success(), "{msg}");
    assert!(
        msg.contains("flow-log ring buffer of 5000 bytes: a power of two"),
        "{msg}"
    );
    assert!(vpc_tests::namespaces_with_prefix(&name).is_empty());
    assert!(!vpc::deploy::pin_dir(&name).exists());
}

//! Flow logs added and removed by `vpc apply` at runtime.
use std::net::{SocketAddr, UdpSocket};

use vpc_tests::{spawn_in_netns, Deployment};

use super::{host, s3_records, snapshot_when, vpc_reject_log, TempDir};

/// A flow log added by `vpc apply` to a running deployment that had none
/// logs from the next window on (no restart); removed, the deployment has
/// none again.
#[test]
fn a_flow_log_added_at_runtime_logs_and_removed_stops() {
    let dir = TempDir::new("apply");
    let log = vpc_reject_log("apply-bucket");
    let d = Deployment::up(
        "flapply",
        vpc::DEFAULT_TEMPLATE,
        &[
            "--eni-delay",
            "100ms",
            "--wait",
            "--flow-logs-dir",
            &dir.arg(),
        ],
    );
    d.apply(&format!("{}{log}", vpc::DEFAULT_TEMPLATE));
    let app = d.netns("AppServer");
    let app_ip = host(&d.status(), "AppServer")["address"]
        .as_str()
        .unwrap()
        .to_string();
    // Refused flows (the database admits only the function's group), sent
    // until one is written: the agent takes the new flow log within a second.
    let from: SocketAddr = format!("{app_ip}:7001").parse().unwrap();
    let mut port = 30000u16;
    let snap = snapshot_when(&dir, |snap| {
        port += 1;
        let p = port;
        spawn_in_netns(&app, move || {
            let s = UdpSocket::bind(from).unwrap();
            s.send_to(b"x", ("10.0.1.10", p)).unwrap();
        })
        .join()
        .unwrap();
        s3_records(snap, "apply-bucket", "")
            .iter()
            .any(|r| r["action"] == "REJECT" && r["srcaddr"] == app_ip)
    });
    assert!(
        s3_records(&snap, "apply-bucket", "")
            .iter()
            .any(|r| r["action"] == "REJECT" && r["srcaddr"] == app_ip),
        "records of the flow log added at runtime"
    );
    assert_eq!(d.status()["flow_logs"].as_array().unwrap().len(), 1);
    d.apply(vpc::DEFAULT_TEMPLATE);
    assert!(d.status()["flow_logs"].as_array().unwrap().is_empty());
}

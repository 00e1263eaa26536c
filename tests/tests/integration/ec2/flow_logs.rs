//! Flow logs of the EC2 API (the AWS CLI): one created on the template's
//! VPC, to S3, records a connection from the database to an API instance
//! as accepted; described, then deleted; unknown ids in `Unsuccessful`.
use std::{
    io::Read,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use vpc_tests::{connects, peer_server};

use super::{allow, aws, group, network, ok, run_instance, s, up_from, Instance, Network, NETWORK};

/// Every line of every object under `dir`.
fn lines_under(dir: &Path) -> Vec<String> {
    let mut out = vec![];
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(lines_under(&p));
        } else if p.extension().is_some_and(|x| x == "gz")
            && !p.file_name().unwrap().to_string_lossy().starts_with('.')
        {
            let mut text = String::new();
            if flate2::read::GzDecoder::new(std::fs::File::open(&p).unwrap())
                .read_to_string(&mut text)
                .is_ok()
            {
                out.extend(text.lines().map(str::to_string));
            }
        }
    }
    out
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn an_api_flow_log_records_an_accepted_connection_to_s3() {
    let dir = Dir(std::env::temp_dir().join(vpc_tests::unique_name("vpc-ec2-flows")));
    std::fs::create_dir_all(&dir.0).unwrap();
    let dir_arg = dir.0.display().to_string();
    let (d, url) = up_from("ec2fl", NETWORK, &["--flow-logs-dir", &dir_arg]);
    let Network { vpc, subnet, db_sg } = network(&d);

    let made = ok(
        &url,
        &[
            "create-flow-logs",
            "--resource-type",
            "VPC",
            "--resource-ids",
            &vpc,
            "vpc-0000000000000000a",
            "--traffic-type",
            "ALL",
            "--log-destination-type",
            "s3",
            "--log-destination",
            "arn:aws:s3:::flows",
            // Ours, for tests: a window of a second (AWS: 60 or 600).
            "--max-aggregation-interval",
            "1",
        ],
    );
    let fl = s(&made["FlowLogIds"][0]);
    assert!(fl.starts_with("fl-") && fl.len() == 20, "{made}");
    assert_eq!(
        made["Unsuccessful"][0]["ResourceId"], "vpc-0000000000000000a",
        "{made}"
    );
    assert_eq!(
        made["Unsuccessful"][0]["Error"]["Code"], "InvalidVpcID.NotFound",
        "{made}"
    );
    let found = ok(
        &url,
        &[
            "describe-flow-logs",
            "--filter",
            &format!("Name=resource-id,Values={vpc}"),
        ],
    );
    let f = &found["FlowLogs"][0];
    assert_eq!(f["FlowLogId"], fl.as_str(), "{found}");
    assert_eq!(f["LogDestination"], "arn:aws:s3:::flows", "{found}");
    assert_eq!(f["TrafficType"], "ALL", "{found}");
    assert!(
        s(&f["LogFormat"]).starts_with("${version} ${account-id} ${interface-id}"),
        "{found}"
    );

    // An instance the database connects to: an accepted record of it.
    let web = group(&url, &vpc, "web");
    allow(&url, &web, "7300", &db_sg);
    let Instance { ip, ns, .. } = run_instance(&d, &url, &subnet, &web, None);
    let _server = peer_server(&ns, &format!("{ip}:7300"));
    assert!(connects(&d, "exec", "Db", &ip, 7300, 5));
    let want = |l: &String| {
        let f: Vec<&str> = l.split(' ').collect();
        f.len() == 14 && f[3] == "10.42.1.10" && f[4] == ip && f[6] == "7300" && f[12] == "ACCEPT"
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let root = dir.0.join("s3").join("flows");
    while !lines_under(&root).iter().any(want) {
        assert!(
            Instant::now() < deadline,
            "no accepted record of the connection: {:?}",
            lines_under(&root)
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let e = aws(
        &url,
        &[
            "delete-flow-logs",
            "--flow-log-ids",
            &fl,
            "fl-0000000000000000a",
        ],
    )
    .unwrap_err();
    assert!(
        e.contains("(InvalidFlowLogId.NotFound)") && e.contains("fl-0000000000000000a"),
        "{e}"
    );
    let del = ok(&url, &["delete-flow-logs", "--flow-log-ids", &fl]);
    assert!(del["Unsuccessful"].as_array().unwrap().is_empty(), "{del}");
    let left = ok(&url, &["describe-flow-logs"]);
    assert!(left["FlowLogs"].as_array().unwrap().is_empty(), "{left}");
}

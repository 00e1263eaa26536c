//! VPC Flow Logs end to end: real namespaces, real sockets, records read
//! back from the files the agent writes, by us and by `flowlogs-reader`.
//! This module holds the temporary directory, the snapshots of what the
//! agent wrote and the S3 reader the concepts' modules share.
mod apply;
mod gateways;
mod records;
mod ring_buffer;
mod traffic;

use std::{
    collections::BTreeMap,
    io::Read,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// A directory removed on drop, pass or fail.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(vpc_tests::unique_name(&format!("vpc-flows-{tag}")));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    pub(crate) fn arg(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_dir_all(self.0.with_extension("snap"));
    }
}

/// A copy of what the agent has written: it keeps writing windows, each
/// to a temporary name renamed into place, so a copy taken in the middle
/// of a write (a temporary file in it, or one gone under `cp`) is taken
/// again.
fn snapshot(dir: &TempDir) -> PathBuf {
    let snap = dir.0.with_extension("snap");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = std::fs::remove_dir_all(&snap);
        let ok = Command::new("cp")
            .arg("-a")
            .arg(&dir.0)
            .arg(&snap)
            .status()
            .unwrap();
        let mut files = vec![];
        files_under(&snap, &mut files);
        let writing = files
            .iter()
            .any(|f| f.file_name().unwrap().to_string_lossy().starts_with('.'));
        if ok.success() && !writing || Instant::now() > deadline {
            assert!(ok.success());
            return snap;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A snapshot once `written` holds for it: the agent writes each window
/// when it ends, late on a loaded machine (a minute at most).
fn snapshot_when(dir: &TempDir, mut written: impl FnMut(&Path) -> bool) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let snap = snapshot(dir);
        if written(&snap) || Instant::now() > deadline {
            return snap;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

type Fields = BTreeMap<String, String>;

/// Every record of every S3 object under the bucket: the header line names
/// the fields. Also checks the objects' layout and names.
fn s3_records(root: &Path, bucket: &str, prefix: &str) -> Vec<Fields> {
    let mut files = vec![];
    files_under(&root.join("s3").join(bucket), &mut files);
    let mut out = vec![];
    for f in files {
        let rel = f
            .strip_prefix(root.join("s3").join(bucket))
            .unwrap()
            .display()
            .to_string();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        assert!(!name.starts_with('.'), "temporary file left: {rel}");
        // [prefix/]AWSLogs/<account>/vpcflowlogs/<region>/yyyy/mm/dd/<name>
        let rel = match prefix {
            "" => rel.as_str(),
            p => rel
                .strip_prefix(&format!("{p}/"))
                .expect("under the prefix"),
        };
        let parts: Vec<&str> = rel.split('/').collect();
        assert_eq!(parts.len(), 8, "{rel}");
        assert_eq!(
            &parts[..4],
            &["AWSLogs", "123456789012", "vpcflowlogs", "us-east-1"],
            "{rel}"
        );
        let n: Vec<&str> = name.split('_').collect();
        assert_eq!(
            &n[..3],
            &["123456789012", "vpcflowlogs", "us-east-1"],
            "{name}"
        );
        assert!(n[3].starts_with("fl-0") && n[3].len() == 20, "{name}");
        assert_eq!(n[4].len(), 14, "{name}");
        assert_eq!(
            &n[4][..8],
            format!("{}{}{}", parts[4], parts[5], parts[6]),
            "{name}"
        );
        assert!(n[5].ends_with(".log.gz") && n[5].len() == 8 + 7, "{name}");
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&f).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let mut lines = text.lines();
        let header: Vec<String> = lines.next().unwrap().split(' ').map(String::from).collect();
        assert_eq!(
            header.join(" "),
            "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"
        );
        for l in lines {
            let v: Vec<&str> = l.split(' ').collect();
            assert_eq!(v.len(), header.len(), "{l}");
            out.push(
                header
                    .iter()
                    .cloned()
                    .zip(v.iter().map(|s| s.to_string()))
                    .collect(),
            );
        }
    }
    out
}

fn host<'a>(s: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    s["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == id)
        .unwrap()
}

/// A flow log of the default template's VPC, rejected traffic only, a
/// 2-second window, to S3 `bucket` (a template fragment).
fn vpc_reject_log(bucket: &str) -> String {
    format!(
        "
  VpcLog:
    Type: AWS::EC2::FlowLog
    Properties:
      ResourceId: !Ref Vpc
      ResourceType: VPC
      TrafficType: REJECT
      MaxAggregationInterval: 2
      LogDestinationType: s3
      LogDestination: arn:aws:s3:::{bucket}
"
    )
}

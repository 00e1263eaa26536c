//! Delivery to a local directory standing for the S3 bucket or the
//! CloudWatch Logs log group:
//!
//! * `s3`: `<root>/s3/<bucket>/[<prefix>/]AWSLogs/<account>/vpcflowlogs/<region>/<yyyy>/<mm>/<dd>/`
//!   `<account>_vpcflowlogs_<region>_<flow-log-id>_<YYYYMMDDTHHmmZ>_<hash>.log.gz`,
//!   gzip, a header line naming the fields, then one record per line, as
//!   AWS writes them (one object per flow log and window here).
//! * `cloud-watch-logs`: `<root>/cloudwatch/<log-group>/<eni-id>-<all|accept|reject>`,
//!   one stream file per ENI as AWS names the streams, one record per line.
//!
//! Every file is written whole to a temporary name in the same directory
//! and renamed into place: a reader sees it complete or not at all (a
//! stream file is rewritten with the new lines appended, then renamed).
use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use crate::model::{fnv1a, FlowLog};

/// Writes `bytes` to `path` atomically (tmp + fsync + rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("a file has a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().context("a file name")?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

fn utc(secs: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs as i64, 0).unwrap_or_default()
}

/// The S3 object key (under the bucket) for a window ending at `end`.
pub fn s3_key(
    fl: &FlowLog,
    prefix: &str,
    account: &str,
    region: &str,
    end: u64,
    body: &[u8],
) -> String {
    let t = utc(end);
    let hash = fnv1a(&format!(
        "{}/{end}/{}",
        fl.flow_log_id,
        String::from_utf8_lossy(body)
    )) as u32;
    let dir = format!(
        "AWSLogs/{account}/vpcflowlogs/{region}/{}",
        t.format("%Y/%m/%d")
    );
    let name = format!(
        "{account}_vpcflowlogs_{region}_{}_{}_{hash:08x}.log.gz",
        fl.flow_log_id,
        t.format("%Y%m%dT%H%MZ")
    );
    if prefix.is_empty() {
        format!("{dir}/{name}")
    } else {
        format!("{prefix}/{dir}/{name}")
    }
}

/// An S3 object: the header line, the records, gzip.
pub fn s3_object(fields: &[String], lines: &[String]) -> Result<Vec<u8>> {
    let mut text = fields.join(" ");
    text.push('\n');
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes())?;
    Ok(gz.finish()?)
}

/// Writes one window of an S3 flow log to its bucket directory; returns
/// the path.
pub fn write_s3(
    root: &Path,
    fl: &FlowLog,
    account: &str,
    region: &str,
    end: u64,
    lines: &[String],
) -> Result<PathBuf> {
    let crate::model::flowlog::FlowLogDestination::S3 { bucket, prefix } = &fl.destination else {
        anyhow::bail!("flow log {} does not deliver to S3", fl.id);
    };
    let body = s3_object(&fl.fields, lines)?;
    let key = s3_key(fl, prefix, account, region, end, &body);
    let path = root.join("s3").join(bucket).join(key);
    write_atomic(&path, &body)?;
    Ok(path)
}

/// The stream file of an ENI in a log group directory.
pub fn cwl_stream(root: &Path, group: &str, stream: &str) -> PathBuf {
    root.join("cloudwatch")
        .join(group.trim_start_matches('/'))
        .join(stream)
}

/// Appends records to a stream (rewritten whole, then renamed).
pub fn append_cwl(path: &Path, lines: &[String]) -> Result<()> {
    let mut text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    for l in lines {
        text.extend_from_slice(l.as_bytes());
        text.push(b'\n');
    }
    write_atomic(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::flowlog::{FlowLogDestination, FlowLogResource, TrafficType, DEFAULT_FIELDS};

    fn fl() -> FlowLog {
        FlowLog {
            id: "Logs".into(),
            flow_log_id: "fl-01234567890abcdef".into(),
            resource_type: FlowLogResource::Vpc,
            resource_id: "Vpc".into(),
            traffic_type: TrafficType::All,
            interval_s: 60,
            fields: DEFAULT_FIELDS.iter().map(|s| s.to_string()).collect(),
            destination: FlowLogDestination::S3 {
                bucket: "b".into(),
                prefix: "".into(),
            },
        }
    }

    #[test]
    fn s3_key_has_aws_layout_and_name() {
        // 2018-06-20 16:20:00 UTC
        let k = s3_key(&fl(), "", "123456789012", "us-east-1", 1529511600, b"x");
        let (dir, name) = k.rsplit_once('/').unwrap();
        assert_eq!(dir, "AWSLogs/123456789012/vpcflowlogs/us-east-1/2018/06/20");
        assert!(
            name.starts_with(
                "123456789012_vpcflowlogs_us-east-1_fl-01234567890abcdef_20180620T1620Z_"
            ),
            "{name}"
        );
        assert!(
            name.ends_with(".log.gz")
                && name.len()
                    == "123456789012_vpcflowlogs_us-east-1_fl-01234567890abcdef_20180620T1620Z_"
                        .len()
                        + 8
                        + 7
        );
        let k = s3_key(&fl(), "team/flows", "1", "r", 1529511600, b"x");
        assert!(k.starts_with("team/flows/AWSLogs/1/vpcflowlogs/r/2018/06/20/"));
    }

    #[test]
    fn s3_object_is_gzip_with_header_line() {
        use std::io::Read;
        let body = s3_object(&fl().fields, &["a b".into(), "c d".into()]).unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(
            text,
            "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\na b\nc d\n"
        );
    }

    #[test]
    fn streams_append_whole_lines() {
        let dir = std::env::temp_dir().join(format!("vpc-cwl-test-{}", std::process::id()));
        let p = cwl_stream(&dir, "/vpc/flows", "eni-1-all");
        append_cwl(&p, &["one".into()]).unwrap();
        append_cwl(&p, &["two".into(), "three".into()]).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "one\ntwo\nthree\n");
        assert!(p.starts_with(dir.join("cloudwatch/vpc/flows")));
        // No temporary file left behind.
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

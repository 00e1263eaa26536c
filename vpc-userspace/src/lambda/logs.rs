//! Function logs, shaped as CloudWatch Logs: a log group per function
//! (`/aws/lambda/<FunctionName>`), a log stream per execution environment
//! (`YYYY/MM/DD/[$LATEST]<32 hex>`, `[N]` for version N), events with a
//! timestamp (ms since the epoch) and a message.
//!
//! The agent writes them itself, to files: nothing goes through an
//! execution environment's network, so a function whose security groups
//! allow no egress at all still logs, as at AWS ("when you attach a
//! function to a VPC, the CloudWatch log messages do not use the VPC
//! routes").
//!
//! The store, under the deployment's state directory:
//!
//! ```text
//! /run/vpc/<name>/logs/<group>/<stream>/events.jsonl
//! ```
//!
//! `<group>` and `<stream>` are the names with `%` and `/` percent-encoded
//! (`%2Faws%2Flambda%2Fpy/2025%2F01%2F31%2F[$LATEST]0f3c...`); each line
//! of `events.jsonl` is one event as CloudWatch's `GetLogEvents` returns
//! it: `{"timestamp", "message", "ingestionTime"}`, in the order written.
use std::{
    collections::HashMap,
    io::{BufRead as _, Seek as _, Write as _},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The events file of a stream's directory.
const EVENTS: &str = "events.jsonl";

/// The deployment's log store.
pub fn logs_dir(deployment: &str) -> PathBuf {
    crate::paths::state_dir(deployment).join("logs")
}

/// A function's log group, as Lambda names it.
pub fn group_name(function_name: &str) -> String {
    format!("/aws/lambda/{function_name}")
}

/// A new execution environment's log stream name, as Lambda names it:
/// the UTC date, the version in brackets, 32 hex digits.
pub fn stream_name(version: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let mut b = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        b = (now.timestamp_nanos_opt().unwrap_or_default() as u128).to_le_bytes();
    }
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}/[{version}]{hex}", now.format("%Y/%m/%d"))
}

/// A name as a file name: `%` and `/` percent-encoded.
fn encode(name: &str) -> String {
    name.replace('%', "%25").replace('/', "%2F")
}

fn decode(file: &str) -> String {
    file.replace("%2F", "/")
        .replace("%2f", "/")
        .replace("%25", "%")
}

/// One log event, as CloudWatch's `GetLogEvents` returns it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// When it happened, ms since the epoch.
    pub timestamp: i64,
    pub message: String,
    /// When the store took it, ms since the epoch.
    pub ingestion_time: i64,
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A log stream being written.
pub struct Stream {
    pub group: String,
    pub name: String,
    file: std::fs::File,
}

impl Stream {
    /// Creates the stream (and its group).
    pub fn create(deployment: &str, group: &str, name: &str) -> Result<Stream> {
        let dir = logs_dir(deployment).join(encode(group)).join(encode(name));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(EVENTS);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Stream {
            group: group.to_string(),
            name: name.to_string(),
            file,
        })
    }

    /// Appends one event (one line, one write: a reader never sees half
    /// of one).
    pub fn put(&mut self, timestamp: i64, message: &str) -> Result<()> {
        let e = Event {
            timestamp,
            message: message.to_string(),
            ingestion_time: now_ms(),
        };
        let mut line = serde_json::to_vec(&e)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        Ok(())
    }
}

/// An event and the stream it is in.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamEvent {
    pub stream: String,
    pub event: Event,
}

/// Reads the group's streams, remembering how far: each [`Reader::poll`]
/// returns the events written since the last one, oldest first (by
/// timestamp, then stream, then position: a stream's own order is kept).
pub struct Reader {
    dir: PathBuf,
    offsets: HashMap<PathBuf, u64>,
}

impl Reader {
    pub fn new(deployment: &str, group: &str) -> Reader {
        Reader {
            dir: logs_dir(deployment).join(encode(group)),
            offsets: HashMap::new(),
        }
    }

    /// Does the group exist (has anything ever logged to it)?
    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    /// The events that are new since the last call.
    pub fn poll(&mut self) -> Result<Vec<StreamEvent>> {
        let mut out = vec![];
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(out);
        };
        for entry in entries {
            let entry = entry?;
            let stream = decode(&entry.file_name().to_string_lossy());
            let path = entry.path().join(EVENTS);
            let offset = self.offsets.get(&path).copied().unwrap_or(0);
            let (events, end) = read_from(&path, offset)?;
            self.offsets.insert(path, end);
            out.extend(events.into_iter().map(|event| StreamEvent {
                stream: stream.clone(),
                event,
            }));
        }
        // Stable: a stream's events keep their order.
        out.sort_by(|a, b| (a.event.timestamp, &a.stream).cmp(&(b.event.timestamp, &b.stream)));
        Ok(out)
    }
}

/// The complete lines of `path` from `offset`: their events and where the
/// next read starts (a line being written is left for it).
fn read_from(path: &Path, offset: u64) -> Result<(Vec<Event>, u64)> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((vec![], offset)),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    f.seek(std::io::SeekFrom::Start(offset))?;
    let mut r = std::io::BufReader::new(f);
    let mut events = vec![];
    let mut end = offset;
    let mut line = String::new();
    loop {
        line.clear();
        let n = r.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        end += n as u64;
        if let Ok(e) = serde_json::from_str(&line) {
            events.push(e);
        }
    }
    Ok((events, end))
}

/// Every event of a group, oldest first.
pub fn read_group(deployment: &str, group: &str) -> Result<Vec<StreamEvent>> {
    Reader::new(deployment, group).poll()
}

/// Lambda's `LogResult` (`X-Amz-Log-Result`): the last 4 KB of an
/// invocation's log lines, base64.
pub fn tail(lines: &[String]) -> String {
    use base64::Engine as _;
    let mut text = String::new();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    let b = text.as_bytes();
    let b = &b[b.len().saturating_sub(4096)..];
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_are_lambdas() {
        let t = chrono::DateTime::parse_from_rfc3339("2025-01-31T23:59:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let s = stream_name("$LATEST", t);
        assert!(s.starts_with("2025/01/31/[$LATEST]"), "{s}");
        let hex = s.rsplit(']').next().unwrap();
        assert_eq!(hex.len(), 32);
        assert!(hex.bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(stream_name("3", t).starts_with("2025/01/31/[3]"));
        assert_ne!(s, stream_name("$LATEST", t));
    }

    #[test]
    fn names_round_trip_as_file_names() {
        for n in ["/aws/lambda/f", "2025/01/31/[$LATEST]ab", "a%2Fb"] {
            assert!(!encode(n).contains('/'));
            assert_eq!(decode(&encode(n)), n);
        }
    }

    #[test]
    fn the_tail_is_the_last_4_kb() {
        use base64::Engine as _;
        let lines: Vec<String> = (0..1000).map(|i| format!("line {i}")).collect();
        let t = base64::engine::general_purpose::STANDARD
            .decode(tail(&lines))
            .unwrap();
        assert_eq!(t.len(), 4096);
        assert!(String::from_utf8_lossy(&t).ends_with("line 999\n"));
        let short = base64::engine::general_purpose::STANDARD
            .decode(tail(&["START".into(), "END".into()]))
            .unwrap();
        assert_eq!(short, b"START\nEND\n");
    }

    #[test]
    fn a_reader_sees_what_is_new_oldest_first() {
        let deployment = format!("logs-unit-{}", std::process::id());
        let root = crate::paths::state_dir(&deployment);
        if std::fs::create_dir_all(&root).is_err() {
            return; // not root: /run/vpc is not ours
        }
        let mut a = Stream::create(&deployment, "/aws/lambda/f", "2025/01/01/[$LATEST]a").unwrap();
        let mut b = Stream::create(&deployment, "/aws/lambda/f", "2025/01/01/[$LATEST]b").unwrap();
        a.put(10, "a1").unwrap();
        b.put(5, "b1").unwrap();
        a.put(20, "a2").unwrap();
        let mut r = Reader::new(&deployment, "/aws/lambda/f");
        let got: Vec<_> = r
            .poll()
            .unwrap()
            .into_iter()
            .map(|e| e.event.message)
            .collect();
        assert_eq!(got, ["b1", "a1", "a2"]);
        assert!(r.poll().unwrap().is_empty());
        b.put(30, "b2").unwrap();
        let got = r.poll().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].stream, "2025/01/01/[$LATEST]b");
        let _ = std::fs::remove_dir_all(&root);
    }
}

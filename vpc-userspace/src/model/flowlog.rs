//! `AWS::EC2::FlowLog`: VPC Flow Logs on a network interface, a subnet or
//! a VPC, validated as EC2 does; every error names the resource and field.
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{fnv1a, int_field, required_str, res_path, str_field, Builder, HostKind};
use crate::template::{ModelError, Result};

pub const FLOW_LOG: &str = "AWS::EC2::FlowLog";

/// The default format (version 2), in order.
pub const DEFAULT_FIELDS: [&str; 14] = [
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
];

/// Every field a custom `LogFormat` may name, with the format version that
/// introduced it (AWS: a record's `version` is the highest among its fields).
pub const FIELDS: [(&str, u8); 29] = [
    ("version", 2),
    ("account-id", 2),
    ("interface-id", 2),
    ("srcaddr", 2),
    ("dstaddr", 2),
    ("srcport", 2),
    ("dstport", 2),
    ("protocol", 2),
    ("packets", 2),
    ("bytes", 2),
    ("start", 2),
    ("end", 2),
    ("action", 2),
    ("log-status", 2),
    ("vpc-id", 3),
    ("subnet-id", 3),
    ("instance-id", 3),
    ("tcp-flags", 3),
    ("type", 3),
    ("pkt-srcaddr", 3),
    ("pkt-dstaddr", 3),
    ("region", 4),
    ("az-id", 4),
    ("sublocation-type", 4),
    ("sublocation-id", 4),
    ("pkt-src-aws-service", 5),
    ("pkt-dst-aws-service", 5),
    ("flow-direction", 5),
    ("traffic-path", 5),
];

/// Aggregation intervals below 60 s are ours, for tests (AWS accepts only
/// 60 and 600): windows of 1-10 s.
pub const MIN_TEST_INTERVAL_S: u32 = 1;
pub const MAX_TEST_INTERVAL_S: u32 = 10;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum FlowLogResource {
    NetworkInterface,
    Subnet,
    Vpc,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum TrafficType {
    Accept,
    Reject,
    All,
}

impl TrafficType {
    pub fn logs(self, accepted: bool) -> bool {
        match self {
            TrafficType::All => true,
            TrafficType::Accept => accepted,
            TrafficType::Reject => !accepted,
        }
    }
    /// Suffix of CloudWatch Logs stream names (`eni-...-all`), as AWS names them.
    pub fn stream_suffix(self) -> &'static str {
        match self {
            TrafficType::All => "all",
            TrafficType::Accept => "accept",
            TrafficType::Reject => "reject",
        }
    }
}

/// Where records go. A local directory stands for the bucket or the log
/// group (see `flowlogs::writer`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum FlowLogDestination {
    /// `arn:aws:s3:::bucket[/prefix]`.
    S3 { bucket: String, prefix: String },
    /// A log group, by `LogGroupName` or `arn:aws:logs:...:log-group:NAME`.
    CloudWatchLogs { log_group: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FlowLog {
    /// Logical id.
    pub id: String,
    /// Its EC2 id (`fl-0...`), in S3 object names.
    pub flow_log_id: String,
    pub resource_type: FlowLogResource,
    /// A VPC, subnet or network interface (logical id), or an ENI id
    /// (`eni-...`: a Hyperplane ENI, or an instance's interface).
    pub resource_id: String,
    pub traffic_type: TrafficType,
    pub interval_s: u32,
    /// The record's fields, in order (the default format unless `LogFormat`).
    pub fields: Vec<String>,
    pub destination: FlowLogDestination,
}

impl FlowLog {
    /// The record `version`: 2 for the default format, else the highest
    /// version among the fields.
    pub fn version(&self) -> u8 {
        self.fields
            .iter()
            .filter_map(|f| FIELDS.iter().find(|(n, _)| n == f).map(|(_, v)| *v))
            .max()
            .unwrap_or(2)
    }
}

/// `${a} ${b} ...` -> the field names, each known.
pub fn parse_log_format(s: &str, path: &str) -> Result<Vec<String>> {
    let mut out = vec![];
    for tok in s.split_whitespace() {
        let name = tok
            .strip_prefix("${")
            .and_then(|t| t.strip_suffix('}'))
            .ok_or_else(|| {
                ModelError::new(
                    path,
                    format!("{tok:?}: fields are written ${{field}}, separated by spaces"),
                )
            })?;
        if !FIELDS.iter().any(|(n, _)| *n == name) {
            let known: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
            return Err(ModelError::new(
                path,
                format!("unknown field {name:?} (supported: {})", known.join(" ")),
            ));
        }
        if out.iter().any(|f| f == name) {
            return Err(ModelError::new(path, format!("field {name:?} given twice")));
        }
        out.push(name.to_string());
    }
    if out.is_empty() {
        return Err(ModelError::new(path, "names no field"));
    }
    Ok(out)
}

/// An S3 bucket name as S3 allows it (3-63 of a-z 0-9 . -).
fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && !b.starts_with(['.', '-'])
}

/// A log group name as CloudWatch Logs allows it.
fn valid_log_group(g: &str) -> bool {
    (1..=512).contains(&g.len())
        && g.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_-/.#".contains(&c))
        && !g.split('/').any(|part| part == "..")
}

fn destination(p: &Value, id: &str) -> Result<FlowLogDestination> {
    let path = res_path(id);
    let kind = str_field(p, id, "LogDestinationType")?.unwrap_or("cloud-watch-logs");
    let dest = str_field(p, id, "LogDestination")?;
    match kind {
        "s3" => {
            let arn = dest.ok_or_else(|| {
                ModelError::new(
                    format!("{path}.LogDestination"),
                    "is required with LogDestinationType s3 (arn:aws:s3:::bucket[/prefix])",
                )
            })?;
            let rest = arn.strip_prefix("arn:aws:s3:::").ok_or_else(|| {
                ModelError::new(
                    format!("{path}.LogDestination"),
                    format!("{arn:?}: an S3 bucket ARN, arn:aws:s3:::bucket[/prefix]"),
                )
            })?;
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let prefix = prefix.trim_end_matches('/');
            if !valid_bucket(bucket) {
                return Err(ModelError::new(
                    format!("{path}.LogDestination"),
                    format!("{bucket:?} is not a valid S3 bucket name"),
                ));
            }
            if prefix.starts_with('/')
                || prefix.split('/').any(|s| s == ".." || s == ".")
                || prefix.contains("AWSLogs")
            {
                return Err(ModelError::new(
                    format!("{path}.LogDestination"),
                    format!("{prefix:?}: the prefix may not be empty between slashes, use . or .., or contain AWSLogs"),
                ));
            }
            Ok(FlowLogDestination::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            })
        }
        "cloud-watch-logs" => {
            let group = match (dest, str_field(p, id, "LogGroupName")?) {
                (Some(_), Some(_)) => {
                    return Err(ModelError::new(
                        format!("{path}.LogGroupName"),
                        "give LogDestination or LogGroupName, not both",
                    ))
                }
                (Some(arn), None) => {
                    let g = arn
                        .strip_prefix("arn:aws:logs:")
                        .and_then(|r| r.split_once(":log-group:"))
                        .map(|(_, g)| g.trim_end_matches(":*"))
                        .ok_or_else(|| {
                            ModelError::new(
                                format!("{path}.LogDestination"),
                                format!("{arn:?}: a log group ARN, arn:aws:logs:REGION:ACCOUNT:log-group:NAME"),
                            )
                        })?;
                    (g.to_string(), "LogDestination")
                }
                (None, Some(g)) => (g.to_string(), "LogGroupName"),
                (None, None) => {
                    return Err(ModelError::new(
                        format!("{path}.LogDestination"),
                        "is required (or LogGroupName) with LogDestinationType cloud-watch-logs",
                    ))
                }
            };
            if !valid_log_group(&group.0) {
                return Err(ModelError::new(
                    format!("{path}.{}", group.1),
                    format!("{:?} is not a valid log group name", group.0),
                ));
            }
            Ok(FlowLogDestination::CloudWatchLogs { log_group: group.0 })
        }
        "kinesis-data-firehose" => Err(ModelError::new(
            format!("{path}.LogDestinationType"),
            "kinesis-data-firehose is not supported here (s3 or cloud-watch-logs)",
        )),
        other => Err(ModelError::new(
            format!("{path}.LogDestinationType"),
            format!("{other:?}: s3 or cloud-watch-logs"),
        )),
    }
}

/// The ENI id of a host's interface (instances and network interfaces
/// have one each), stable per stack: `eni-0` and 16 hex digits, as AWS's.
pub fn host_eni_id(stack: &str, host: &str) -> String {
    format!("eni-0{:016x}", fnv1a(&format!("{stack}/interface/{host}")))
}

/// EC2-shaped ids for resources the model names by logical id.
pub fn ec2_id(prefix: &str, stack: &str, logical: &str) -> String {
    format!(
        "{prefix}-0{:016x}",
        fnv1a(&format!("{stack}/{prefix}/{logical}"))
    )
}

impl Builder<'_> {
    pub(super) fn flow_logs(&mut self) -> Result<()> {
        let mut res = self.of_type(FLOW_LOG);
        res.sort_by(|a, b| a.logical_id.cmp(&b.logical_id));
        for r in res {
            let id = r.logical_id.clone();
            let p = self.props(r)?;
            let path = res_path(&id);
            let field = |f: &str| format!("{path}.{f}");
            let resource_type = match required_str(&p, &id, "ResourceType")? {
                "NetworkInterface" => FlowLogResource::NetworkInterface,
                "Subnet" => FlowLogResource::Subnet,
                "VPC" => FlowLogResource::Vpc,
                other => {
                    return Err(ModelError::new(
                        field("ResourceType"),
                        format!("{other:?}: NetworkInterface, Subnet or VPC (transit gateways are not modelled)"),
                    ))
                }
            };
            let rid = required_str(&p, &id, "ResourceId")?.to_string();
            let known = match resource_type {
                FlowLogResource::Vpc => self.m.vpc(&rid).is_some(),
                FlowLogResource::Subnet => self.m.subnet(&rid).is_some(),
                FlowLogResource::NetworkInterface => {
                    self.m
                        .hosts
                        .iter()
                        .any(|h| h.kind == HostKind::NetworkInterface && h.id == rid)
                        || self
                            .m
                            .hosts
                            .iter()
                            .any(|h| host_eni_id(&self.m.stack_name, &h.id) == rid)
                        || self.m.enis.iter().any(|e| e.id == rid)
                }
            };
            if !known {
                let what = match resource_type {
                    FlowLogResource::Vpc => "no VPC",
                    FlowLogResource::Subnet => "no subnet",
                    FlowLogResource::NetworkInterface => {
                        "no network interface (a NetworkInterface resource, or an ENI id of an instance or Hyperplane ENI)"
                    }
                };
                return Err(ModelError::new(
                    field("ResourceId"),
                    format!("{what} {rid:?} in this template"),
                ));
            }
            let traffic_type = match required_str(&p, &id, "TrafficType")? {
                "ACCEPT" => TrafficType::Accept,
                "REJECT" => TrafficType::Reject,
                "ALL" => TrafficType::All,
                other => {
                    return Err(ModelError::new(
                        field("TrafficType"),
                        format!("{other:?}: ACCEPT, REJECT or ALL"),
                    ))
                }
            };
            let interval_s = match int_field(
                p.get("MaxAggregationInterval").unwrap_or(&Value::Null),
                &field("MaxAggregationInterval"),
            )? {
                None => 600,
                Some(v @ (60 | 600)) => v as u32,
                Some(v)
                    if (MIN_TEST_INTERVAL_S as i64..=MAX_TEST_INTERVAL_S as i64).contains(&v) =>
                {
                    v as u32
                }
                Some(v) => {
                    return Err(ModelError::new(
                        field("MaxAggregationInterval"),
                        format!("{v}: 60 or 600 seconds (or 1-10, ours, for tests)"),
                    ))
                }
            };
            let fields = match str_field(&p, &id, "LogFormat")? {
                None => DEFAULT_FIELDS.iter().map(|s| s.to_string()).collect(),
                Some(f) => parse_log_format(f, &field("LogFormat"))?,
            };
            let destination = destination(&p, &id)?;
            if let Some(opts) = p.get("DestinationOptions").filter(|v| !v.is_null()) {
                let o = |k: &str| opts.get(k).filter(|v| !v.is_null());
                let bad = match (
                    o("FileFormat"),
                    o("HiveCompatiblePartitions"),
                    o("PerHourPartition"),
                ) {
                    (Some(v), _, _) if v.as_str() != Some("plain-text") => Some("FileFormat"),
                    (_, Some(v), _)
                        if v.as_bool() != Some(false) && v.as_str() != Some("false") =>
                    {
                        Some("HiveCompatiblePartitions")
                    }
                    (_, _, Some(v))
                        if v.as_bool() != Some(false) && v.as_str() != Some("false") =>
                    {
                        Some("PerHourPartition")
                    }
                    _ => None,
                };
                if let Some(k) = bad {
                    return Err(ModelError::new(
                        field(&format!("DestinationOptions.{k}")),
                        "only plain-text files in the default daily layout are written here",
                    ));
                }
            }
            let flow_log_id = format!("fl-0{:016x}", fnv1a(&format!("{}/{id}", self.m.stack_name)));
            self.m.flow_logs.push(FlowLog {
                id,
                flow_log_id,
                resource_type,
                resource_id: rid,
                traffic_type,
                interval_s,
                fields,
                destination,
            });
        }
        Ok(())
    }
}

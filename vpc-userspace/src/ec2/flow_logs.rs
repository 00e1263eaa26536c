//! VPC Flow Logs: CreateFlowLogs (a VPC, subnet or network interface
//! each; to S3 or CloudWatch Logs, which the agent writes under its flow
//! logs directory), DescribeFlowLogs, DeleteFlowLogs. A flow log is an
//! `AWS::EC2::FlowLog` of the API's stack, so it records exactly what a
//! template's records (docs/flow-logs.md); its `fl-` id is the model's.
use serde_json::{json, Value};

use super::{filters, ids, stack, tags, xml, Ctx, Ec2Error, Ec2Result, Params, View};
use crate::{
    cloudformation::xml::Xml,
    model::{
        flowlog::{FlowLogDestination, FlowLogResource, TrafficType},
        FlowLog,
    },
};

pub const FLOW_LOG: &str = "AWS::EC2::FlowLog";

fn not_found(id: &str) -> Ec2Error {
    Ec2Error::new(
        "InvalidFlowLogId.NotFound",
        format!("These flow log ids in the input list are not found: [TotalCount: 1] {id}"),
    )
}

const KIND: filters::Kind = filters::Kind {
    ids: "FlowLogId",
    min_page: 1,
    not_found,
};

fn traffic(t: TrafficType) -> &'static str {
    match t {
        TrafficType::All => "ALL",
        TrafficType::Accept => "ACCEPT",
        TrafficType::Reject => "REJECT",
    }
}

/// EC2's id of what the flow log watches.
fn resource_id(v: &View, f: &FlowLog) -> String {
    match f.resource_type {
        FlowLogResource::NetworkInterface if f.resource_id.starts_with("eni-") => {
            f.resource_id.clone()
        }
        FlowLogResource::NetworkInterface => {
            crate::model::flowlog::host_eni_id(&v.model.stack_name, &f.resource_id)
        }
        _ => v.id(&f.resource_id),
    }
}

fn destination(f: &FlowLog) -> (&'static str, String, Option<String>) {
    match &f.destination {
        FlowLogDestination::S3 { bucket, prefix } => {
            let arn = if prefix.is_empty() {
                format!("arn:aws:s3:::{bucket}")
            } else {
                format!("arn:aws:s3:::{bucket}/{prefix}")
            };
            ("s3", arn, None)
        }
        FlowLogDestination::CloudWatchLogs { log_group } => (
            "cloud-watch-logs",
            format!("arn:aws:logs:*:*:log-group:{log_group}"),
            Some(log_group.clone()),
        ),
    }
}

fn format_of(f: &FlowLog) -> String {
    f.fields
        .iter()
        .map(|x| format!("${{{x}}}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn item(x: &mut Xml, v: &View, f: &FlowLog) {
    let (kind, dest, group) = destination(f);
    x.leaf(
        "creationTime",
        &crate::cloudformation::xml::iso8601(v.created_ms(&f.id)),
    )
    .leaf("deliverLogsStatus", "SUCCESS")
    .leaf("flowLogId", &f.flow_log_id)
    .leaf("flowLogStatus", "ACTIVE")
    .opt("logGroupName", group.as_deref())
    .leaf("resourceId", &resource_id(v, f))
    .leaf("trafficType", traffic(f.traffic_type))
    .leaf("logDestinationType", kind)
    .leaf("logDestination", &dest)
    .leaf("logFormat", &format_of(f))
    .leaf("maxAggregationInterval", &f.interval_s.to_string())
    .opt(
        "deliverLogsPermissionArn",
        v.prop(&f.id, "DeliverLogsPermissionArn"),
    );
    tags::tag_set(x, &v.tags(&f.id));
}

/// The model's id of what a flow log watches (`ResourceType`, EC2 id).
fn watched(v: &View, kind: &str, id: &str) -> Ec2Result<String> {
    match kind {
        "VPC" => Ok(v.vpc(id)?.id.clone()),
        "Subnet" => Ok(v.subnet(id)?.id.clone()),
        "NetworkInterface" => {
            let m = &v.model;
            let known = m.enis.iter().any(|e| e.id == id)
                || m.hosts
                    .iter()
                    .any(|h| crate::model::flowlog::host_eni_id(&m.stack_name, &h.id) == id);
            if known {
                Ok(id.to_string())
            } else {
                Err(Ec2Error::new(
                    "InvalidNetworkInterfaceID.NotFound",
                    format!("The networkInterface ID '{id}' does not exist"),
                ))
            }
        }
        other => Err(Ec2Error::invalid(format!(
            "Value ({other}) for parameter ResourceType is invalid: VPC, Subnet or NetworkInterface (transit gateways are not modelled)"
        ))),
    }
}

pub fn create(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let resources = p.list("ResourceId");
    if resources.is_empty() {
        return Err(Ec2Error::missing("ResourceId"));
    }
    let kind = p.required("ResourceType")?.to_string();
    let mut base = json!({"ResourceType": kind});
    for (param, prop) in [
        ("TrafficType", "TrafficType"),
        ("LogDestinationType", "LogDestinationType"),
        ("LogDestination", "LogDestination"),
        ("LogGroupName", "LogGroupName"),
        ("LogFormat", "LogFormat"),
        ("DeliverLogsPermissionArn", "DeliverLogsPermissionArn"),
        (
            "DestinationOptions.FileFormat",
            "DestinationOptions.FileFormat",
        ),
        (
            "DestinationOptions.HiveCompatiblePartitions",
            "DestinationOptions.HiveCompatiblePartitions",
        ),
        (
            "DestinationOptions.PerHourPartition",
            "DestinationOptions.PerHourPartition",
        ),
    ] {
        if let Some(val) = p.get(param) {
            match prop.split_once('.') {
                Some((a, b)) => base[a][b] = val.into(),
                None => base[prop] = val.into(),
            }
        }
    }
    if base.get("TrafficType").is_none() && p.get("LogFormat").is_none() {
        // EC2 asks for it unless a format is given (then: ALL).
        return Err(Ec2Error::missing("TrafficType"));
    }
    if base.get("TrafficType").is_none() {
        base["TrafficType"] = "ALL".into();
    }
    if let Some(n) = p.int("MaxAggregationInterval")? {
        base["MaxAggregationInterval"] = n.into();
    }
    let tag_list = p.tag_specs("vpc-flow-log");
    if let Some(tv) = tags::initial(&tag_list) {
        base["Tags"] = tv;
    }
    let made: Vec<String> = resources
        .iter()
        .map(|_| format!("fl{}", ids::random_hex(ids::HEX)))
        .collect();
    let failed = stack::change(ctx, |t, v| {
        let mut failed = vec![];
        for (rid, logical) in resources.iter().zip(&made) {
            match watched(v, &kind, rid) {
                Ok(l) => {
                    let mut props = base.clone();
                    props["ResourceId"] = Value::String(l);
                    t.put(logical, FLOW_LOG, props);
                }
                Err(e) => failed.push((rid.clone(), e)),
            }
        }
        Ok(failed)
    })?;
    let v = View::load(&ctx.name)?;
    let ids: Vec<String> = made
        .iter()
        .filter_map(|l| v.model.flow_logs.iter().find(|f| &f.id == l))
        .map(|f| f.flow_log_id.clone())
        .collect();
    let mut x = xml();
    x.leaf("clientToken", p.get("ClientToken").unwrap_or_default())
        .items("flowLogIdSet", &ids, |x, id| {
            x.0.push_str(id);
        });
    super::unsuccessful(&mut x, &failed);
    Ok(x.0)
}

pub fn describe(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let mut list: Vec<&FlowLog> = v.model.flow_logs.iter().collect();
    list.sort_by_key(|f| v.api.created(&f.id));
    let (out, token) = filters::select(
        p,
        &KIND,
        list,
        |f| f.flow_log_id.clone(),
        |f| v.tags(&f.id),
        |f, n| match n {
            "flow-log-id" => filters::one(f.flow_log_id.clone()),
            "resource-id" => filters::one(resource_id(&v, f)),
            "traffic-type" => filters::one(traffic(f.traffic_type)),
            "log-destination-type" => filters::one(destination(f).0),
            "log-group-name" => Some(destination(f).2.into_iter().collect()),
            "deliver-log-status" => filters::one("SUCCESS"),
            _ => None,
        },
    )?;
    let mut x = xml();
    x.items("flowLogSet", out, |x, f| item(x, &v, f));
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}

/// DeleteFlowLogs: ids not there are EC2's error, naming them all;
/// another stack's come back in `unsuccessful`; the rest go together.
pub fn delete(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let wanted = p.list("FlowLogId");
    if wanted.is_empty() {
        return Err(Ec2Error::missing("FlowLogId"));
    }
    let failed = stack::change(ctx, |t, v| {
        let missing: Vec<&String> = wanted
            .iter()
            .filter(|id| !v.model.flow_logs.iter().any(|f| &f.flow_log_id == *id))
            .collect();
        if !missing.is_empty() {
            return Err(Ec2Error::new(
                "InvalidFlowLogId.NotFound",
                format!(
                    "These flow log ids in the input list are not found: [TotalCount: {}] {}",
                    missing.len(),
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let mut failed = vec![];
        for id in &wanted {
            let Some(f) = v.model.flow_logs.iter().find(|f| &f.flow_log_id == id) else {
                continue;
            };
            if let Err(e) = v.owned(&f.id, id) {
                failed.push((id.clone(), e));
                continue;
            }
            t.remove(&f.id);
        }
        Ok(failed)
    })?;
    let mut x = xml();
    super::unsuccessful(&mut x, &failed);
    Ok(x.0)
}

//! The read side of the CloudFormation API: DescribeStacks, the stack's
//! resources and events, ListStacks, DescribeChangeSet, ListChangeSets,
//! in AWS's XML shapes. A stack's outputs, parameters and resources are
//! what the model in force holds for it; its status and events are its
//! record's.
use super::{
    api::{find_stack, Answer},
    change_sets, load,
    operations::{physical_id, refused_error},
    xml::{self, Xml},
    Stack,
};
use crate::model::{Model, ModelStack};

fn model(name: &str) -> Model {
    crate::state::State::load(name)
        .map(|s| s.model)
        .unwrap_or_default()
}

/// The model's record of an applied stack.
fn in_model<'a>(m: &'a Model, s: &Stack) -> Option<&'a ModelStack> {
    if s.applied() {
        m.stack(&s.name)
    } else {
        None
    }
}

fn drift(x: &mut Xml, tag: &str, field: &str) {
    x.open(tag).leaf(field, "NOT_CHECKED").close(tag);
}

fn stack(x: &mut Xml, m: &Model, s: &Stack) {
    let ms = in_model(m, s);
    x.leaf("StackId", &s.stack_id)
        .leaf("StackName", &s.name)
        .opt("ChangeSetId", s.change_set_id.as_deref())
        .opt("Description", s.description.as_deref());
    match ms {
        Some(ms) => {
            x.members("Parameters", &ms.parameters, |x, p| {
                x.leaf("ParameterKey", &p.key)
                    .leaf("ParameterValue", &p.value)
                    .opt("ResolvedValue", p.resolved_value.as_deref());
            });
        }
        None => {
            let given: Vec<(&String, &String)> = s.parameters.iter().collect();
            x.members("Parameters", &given, |x, (k, v)| {
                x.leaf("ParameterKey", k).leaf("ParameterValue", v);
            });
        }
    }
    x.time("CreationTime", s.created_ms);
    if let Some(t) = s.updated_ms {
        x.time("LastUpdatedTime", t);
    }
    if let Some(t) = s.deleted_ms {
        x.time("DeletionTime", t);
    }
    x.open("RollbackConfiguration")
        .close("RollbackConfiguration")
        .leaf("StackStatus", &s.status)
        .opt("StackStatusReason", s.status_reason.as_deref())
        .leaf("DisableRollback", "false")
        .open("NotificationARNs")
        .close("NotificationARNs")
        .members("Capabilities", &s.capabilities, |x, c| {
            x.0.push_str(&xml::escape(c));
        });
    if let Some(ms) = ms {
        x.members("Outputs", &ms.outputs, |x, o| {
            x.leaf("OutputKey", &o.key)
                .leaf("OutputValue", &o.value)
                .opt("Description", o.description.as_deref())
                .opt("ExportName", o.export_name.as_deref());
        });
    }
    x.members("Tags", &s.tags, |x, (k, v)| {
        x.leaf("Key", k).leaf("Value", v);
    })
    .leaf("EnableTerminationProtection", "false");
    drift(x, "DriftInformation", "StackDriftStatus");
}

/// DescribeStacks: one stack (by name, or by id also once deleted), or
/// every stack that is not deleted.
pub fn describe_stacks(name: &str, which: Option<&str>) -> Answer {
    let stacks = load(name)?;
    let m = model(name);
    let chosen: Vec<Stack> = match which {
        Some(n) => vec![find_stack(&stacks, n)?],
        None => stacks
            .into_iter()
            .filter(|s| !s.deleted() && !crate::ec2::stack::is_internal(&s.name))
            .collect(),
    };
    let mut x = Xml::default();
    x.members("Stacks", &chosen, |x, s| stack(x, &m, s));
    Ok(Some(x.0))
}

/// A resource's status and time: its last event's.
fn last_event<'a>(s: &'a Stack, id: &str) -> (&'a str, u64) {
    s.events
        .iter()
        .rev()
        .find(|e| e.logical_id == id && e.resource_type != "AWS::CloudFormation::Stack")
        .map(|e| (e.status.as_str(), e.timestamp_ms))
        .unwrap_or(("CREATE_COMPLETE", s.created_ms))
}

/// DescribeStackResources, DescribeStackResource and ListStackResources.
pub fn stack_resources(
    name: &str,
    stack_name: &str,
    logical: Option<&str>,
    action: &str,
) -> Answer {
    let stacks = load(name)?;
    let s = find_stack(&stacks, stack_name)?;
    let m = model(name);
    let resources: Vec<(String, String)> = in_model(&m, &s)
        .map(|ms| ms.resources.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|(id, _)| logical.is_none_or(|l| l == id))
        .collect();
    if let (Some(l), true) = (logical, resources.is_empty()) {
        return Err(refused_error(
            "ValidationError",
            format!("Resource {l} does not exist for stack {}", s.name),
        )
        .into());
    }
    let one = |x: &mut Xml, (id, kind): &(String, String), detail: bool| {
        let (status, at) = last_event(&s, id);
        if detail || action == "DescribeStackResources" {
            x.leaf("StackName", &s.name).leaf("StackId", &s.stack_id);
        }
        x.leaf("LogicalResourceId", id)
            .leaf("PhysicalResourceId", &physical_id(&m, id))
            .leaf("ResourceType", kind)
            .time(
                if action == "DescribeStackResources" {
                    "Timestamp"
                } else {
                    "LastUpdatedTimestamp"
                },
                at,
            )
            .leaf("ResourceStatus", status);
        drift(x, "DriftInformation", "StackResourceDriftStatus");
    };
    let mut x = Xml::default();
    match action {
        "DescribeStackResource" => {
            x.open("StackResourceDetail");
            one(&mut x, &resources[0], true);
            x.close("StackResourceDetail");
        }
        "ListStackResources" => {
            x.members("StackResourceSummaries", &resources, |x, r| {
                one(x, r, false)
            });
        }
        _ => {
            x.members("StackResources", &resources, |x, r| one(x, r, false));
        }
    }
    Ok(Some(x.0))
}

/// DescribeStackEvents: newest first.
pub fn stack_events(name: &str, stack_name: &str) -> Answer {
    let stacks = load(name)?;
    let s = find_stack(&stacks, stack_name)?;
    let events: Vec<&super::StackEvent> = s.events.iter().rev().collect();
    let mut x = Xml::default();
    x.members("StackEvents", &events, |x, e| {
        x.leaf("StackId", &s.stack_id)
            .leaf("EventId", &e.event_id)
            .leaf("StackName", &s.name)
            .leaf("LogicalResourceId", &e.logical_id)
            .leaf("PhysicalResourceId", &e.physical_id)
            .leaf("ResourceType", &e.resource_type)
            .time("Timestamp", e.timestamp_ms)
            .leaf("ResourceStatus", &e.status)
            .opt("ResourceStatusReason", e.reason.as_deref());
    });
    Ok(Some(x.0))
}

/// ListStacks: every stack, deleted ones too, filtered by status.
pub fn list_stacks(name: &str, statuses: &[String]) -> Answer {
    let stacks: Vec<Stack> = load(name)?
        .into_iter()
        .filter(|s| !crate::ec2::stack::is_internal(&s.name))
        .filter(|s| statuses.is_empty() || statuses.contains(&s.status))
        .collect();
    let mut x = Xml::default();
    x.members("StackSummaries", &stacks, |x, s| {
        x.leaf("StackId", &s.stack_id)
            .leaf("StackName", &s.name)
            .opt("TemplateDescription", s.description.as_deref())
            .time("CreationTime", s.created_ms);
        if let Some(t) = s.updated_ms {
            x.time("LastUpdatedTime", t);
        }
        if let Some(t) = s.deleted_ms {
            x.time("DeletionTime", t);
        }
        x.leaf("StackStatus", &s.status)
            .opt("StackStatusReason", s.status_reason.as_deref());
        drift(x, "DriftInformation", "StackDriftStatus");
    });
    Ok(Some(x.0))
}

/// DescribeChangeSet.
pub fn change_set(name: &str, change_set: &str, stack_name: Option<&str>) -> Answer {
    let stacks = load(name)?;
    let (s, i) = change_sets::find(&stacks, change_set, stack_name).ok_or_else(|| {
        refused_error(
            "ChangeSetNotFound",
            format!("ChangeSet [{change_set}] does not exist"),
        )
    })?;
    let cs = &s.change_sets[i];
    let params: Vec<(&String, &String)> = cs.parameters.iter().collect();
    let mut x = Xml::default();
    x.leaf("ChangeSetName", &cs.name)
        .leaf("ChangeSetId", &cs.id)
        .leaf("StackId", &s.stack_id)
        .leaf("StackName", &s.name)
        .opt("Description", cs.description.as_deref())
        .members("Parameters", &params, |x, (k, v)| {
            x.leaf("ParameterKey", k).leaf("ParameterValue", v);
        })
        .time("CreationTime", cs.created_ms)
        .leaf("ExecutionStatus", &cs.execution_status)
        .leaf("Status", &cs.status)
        .opt("StatusReason", cs.status_reason.as_deref())
        .open("NotificationARNs")
        .close("NotificationARNs")
        .open("RollbackConfiguration")
        .close("RollbackConfiguration")
        .members("Capabilities", &cs.capabilities, |x, c| {
            x.0.push_str(&xml::escape(c));
        })
        .members("Tags", &cs.tags, |x, (k, v)| {
            x.leaf("Key", k).leaf("Value", v);
        })
        .members("Changes", &cs.changes, |x, c| {
            x.leaf("Type", "Resource")
                .open("ResourceChange")
                .leaf("Action", &c.action)
                .leaf("LogicalResourceId", &c.logical_id)
                .opt("PhysicalResourceId", c.physical_id.as_deref())
                .leaf("ResourceType", &c.resource_type)
                .opt("Replacement", c.replacement.as_deref())
                .open("Scope")
                .close("Scope")
                .open("Details")
                .close("Details")
                .close("ResourceChange");
        })
        .leaf("IncludeNestedStacks", "false");
    Ok(Some(x.0))
}

/// ListChangeSets.
pub fn list_change_sets(name: &str, stack_name: &str) -> Answer {
    let stacks = load(name)?;
    let s = find_stack(&stacks, stack_name)?;
    let mut x = Xml::default();
    x.members("Summaries", &s.change_sets, |x, cs| {
        x.leaf("StackId", &s.stack_id)
            .leaf("StackName", &s.name)
            .leaf("ChangeSetId", &cs.id)
            .leaf("ChangeSetName", &cs.name)
            .leaf("ExecutionStatus", &cs.execution_status)
            .leaf("Status", &cs.status)
            .opt("StatusReason", cs.status_reason.as_deref())
            .time("CreationTime", cs.created_ms)
            .opt("Description", cs.description.as_deref());
    });
    Ok(Some(x.0))
}

//! Change sets, what `aws cloudformation deploy` uses: CreateChangeSet
//! checks the template as CreateStack would and lists what would change
//! (the resources added, modified and removed, after SAM's transform); a
//! change set of type `CREATE` makes its stack `REVIEW_IN_PROGRESS`;
//! ExecuteChangeSet runs it as CreateStack or UpdateStack
//! ([`super::operations::run`]). A change set that would change nothing
//! is `FAILED` with CloudFormation's reason, which the CLI reads as "No
//! changes to deploy".
use std::collections::{BTreeMap, HashMap};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    load, now_ms,
    operations::{self, live, refused_error, Operation, Outcome, StackInput},
    save, Stack,
};
use crate::{model::Quotas, template};

/// CloudFormation's reason for a change set without changes.
pub const NO_CHANGES: &str =
    "The submitted information didn't contain changes. Submit different information to create a change set.";

/// One change set of a stack.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeSet {
    pub name: String,
    /// `arn:aws:cloudformation:<region>:<account>:changeSet/<name>/<uuid>`.
    pub id: String,
    /// `CREATE` or `UPDATE`.
    pub change_set_type: String,
    pub template_body: String,
    pub parameters: BTreeMap<String, String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `CREATE_COMPLETE`, `FAILED` or `DELETE_COMPLETE`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// `AVAILABLE`, `UNAVAILABLE`, `EXECUTE_IN_PROGRESS`,
    /// `EXECUTE_COMPLETE`, `EXECUTE_FAILED` or `OBSOLETE`.
    pub execution_status: String,
    pub created_ms: u64,
    pub changes: Vec<ResourceChange>,
}

/// One resource a change set would change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceChange {
    /// `Add`, `Modify` or `Remove`.
    pub action: String,
    pub logical_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_id: Option<String>,
    pub resource_type: String,
    /// For `Modify`: `Conditional` (whether AWS would replace it depends on
    /// the properties; this project replaces nothing in place that AWS
    /// would not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
}

/// What CreateChangeSet asks.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub stack_name: String,
    pub change_set_name: String,
    pub change_set_type: String,
    /// `None`: UsePreviousTemplate.
    pub template_body: Option<String>,
    /// Values given, and the keys whose previous value is kept.
    pub parameters: BTreeMap<String, String>,
    pub use_previous: Vec<String>,
    pub capabilities: Vec<String>,
    pub tags: Vec<(String, String)>,
    pub description: Option<String>,
}

/// The resources of a template as CloudFormation reads them (after SAM's
/// transform; empty for one that does not read).
fn resources(deployment: &str, input: &StackInput) -> BTreeMap<String, Value> {
    operations::validate(deployment, input)
        .map(|c| {
            c.template
                .resources
                .into_iter()
                .map(|(id, r)| {
                    let v = serde_json::json!({"Type": r.kind, "Properties": r.properties, "DependsOn": r.depends_on, "Condition": r.condition});
                    (id, v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The change set's id.
fn change_set_id(stack: &Stack, name: &str, now: u64) -> String {
    let (region_account, _) = stack
        .stack_id
        .strip_prefix("arn:aws:cloudformation:")
        .and_then(|r| r.split_once(":stack/"))
        .unwrap_or(("us-east-1:123456789012", ""));
    let h = template::fnv1a(&format!("{}/{name}/{now}", stack.stack_id));
    format!(
        "arn:aws:cloudformation:{region_account}:changeSet/{name}/{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xffff,
        (now >> 32) & 0xffff,
        now & 0xffff_ffff_ffff
    )
}

/// CreateChangeSet: `(change set id, stack id)`.
pub fn create(deployment: &str, r: &Request) -> Result<(String, String)> {
    let _serial = super::api::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let now = now_ms();
    let mut stacks = load(deployment)?;
    let existing = live(&stacks, &r.stack_name).cloned();
    match (r.change_set_type.as_str(), &existing) {
        ("CREATE", Some(s)) if !s.in_review() => {
            return Err(refused_error(
                "ValidationError",
                format!(
                "Stack [{}] already exists and cannot be created again with the changeSet [{}].",
                r.stack_name, r.change_set_name
            ),
            ))
        }
        ("UPDATE", None) => {
            return Err(refused_error(
                "ValidationError",
                format!("Stack [{}] does not exist", r.stack_name),
            ))
        }
        ("UPDATE", Some(s)) if !s.applied() => {
            return Err(refused_error(
                "ValidationError",
                format!(
                    "Stack:{} is in {} state and can not be updated.",
                    s.stack_id, s.status
                ),
            ))
        }
        ("CREATE" | "UPDATE", _) => {}
        (other, _) => {
            return Err(refused_error(
                "ValidationError",
                format!("ChangeSetType {other} is not supported here: CREATE or UPDATE"),
            ))
        }
    }
    if existing
        .as_ref()
        .is_some_and(|s| s.change_sets.iter().any(|c| c.name == r.change_set_name))
    {
        return Err(refused_error(
            "AlreadyExistsException",
            format!("ChangeSet {} already exists", r.change_set_name),
        ));
    }
    let previous = existing.as_ref().filter(|s| s.applied());
    let mut parameters = r.parameters.clone();
    for k in &r.use_previous {
        if let Some(v) = previous.and_then(|s| s.parameters.get(k)) {
            parameters.insert(k.clone(), v.clone());
        }
    }
    let template_body = match (&r.template_body, previous) {
        (Some(t), _) => t.clone(),
        (None, Some(s)) => s.template_body.clone(),
        (None, None) => {
            return Err(refused_error(
                "ValidationError",
                "Either Template URL or Template Body must be specified.",
            ))
        }
    };
    let input = StackInput {
        name: r.stack_name.clone(),
        template_body,
        template_dir: previous.and_then(|s| s.template_dir.clone()),
        label: format!("change set {}", r.change_set_name),
        parameters,
        capabilities: r.capabilities.clone(),
        tags: r.tags.clone(),
    };
    let checked = operations::validate(deployment, &input)
        .map_err(|e| refused_error("ValidationError", e.to_string()))?;
    super::api::check_capabilities(&checked, &r.capabilities, false)?;
    // What would change, resource by resource.
    let old = previous
        .map(|s| {
            resources(
                deployment,
                &StackInput {
                    name: s.name.clone(),
                    template_body: s.template_body.clone(),
                    template_dir: s.template_dir.clone(),
                    parameters: s.parameters.clone(),
                    ..Default::default()
                },
            )
        })
        .unwrap_or_default();
    let new = resources(deployment, &input);
    let model = crate::state::State::load(deployment).map(|s| s.model).ok();
    let physical = |id: &str| model.as_ref().map(|m| operations::physical_id(m, id));
    let kind = |v: &Value| v["Type"].as_str().unwrap_or_default().to_string();
    let mut changes = vec![];
    for (id, v) in &new {
        match old.get(id) {
            None => changes.push(ResourceChange {
                action: "Add".into(),
                logical_id: id.clone(),
                physical_id: None,
                resource_type: kind(v),
                replacement: None,
            }),
            Some(o) if o != v => changes.push(ResourceChange {
                action: "Modify".into(),
                logical_id: id.clone(),
                physical_id: physical(id),
                resource_type: kind(v),
                replacement: Some("Conditional".into()),
            }),
            Some(_) => {}
        }
    }
    for (id, v) in old.iter().filter(|(id, _)| !new.contains_key(*id)) {
        changes.push(ResourceChange {
            action: "Remove".into(),
            logical_id: id.clone(),
            physical_id: physical(id),
            resource_type: kind(v),
            replacement: None,
        });
    }
    let unchanged = previous.is_some_and(|s| {
        s.template_body == input.template_body && s.parameters == input.parameters
    });
    let stack = match stacks
        .iter_mut()
        .find(|s| s.name == r.stack_name && !s.deleted())
    {
        Some(s) => s,
        None => {
            // A change set that creates its stack: the stack waits for it.
            let mut s = operations::new_stack(deployment, &input, now)?;
            s.events.clear();
            s.set_status("REVIEW_IN_PROGRESS", Some("User Initiated".into()), now);
            s.template_body.clear();
            stacks.push(s);
            stacks.last_mut().expect("pushed")
        }
    };
    let id = change_set_id(stack, &r.change_set_name, now);
    let (status, reason, execution) = if unchanged {
        ("FAILED", Some(NO_CHANGES.to_string()), "UNAVAILABLE")
    } else {
        ("CREATE_COMPLETE", None, "AVAILABLE")
    };
    stack.change_sets.push(ChangeSet {
        name: r.change_set_name.clone(),
        id: id.clone(),
        change_set_type: r.change_set_type.clone(),
        template_body: input.template_body,
        parameters: input.parameters,
        capabilities: r.capabilities.clone(),
        tags: r.tags.clone(),
        description: r.description.clone(),
        status: status.into(),
        status_reason: reason,
        execution_status: execution.into(),
        created_ms: now,
        changes,
    });
    let stack_id = stack.stack_id.clone();
    save(deployment, &stacks)?;
    Ok((id, stack_id))
}

/// A change set by name (with its stack's name) or id: (stack, index).
pub fn find<'a>(
    stacks: &'a [Stack],
    change_set: &str,
    stack_name: Option<&str>,
) -> Option<(&'a Stack, usize)> {
    stacks
        .iter()
        .filter(|s| !s.deleted())
        .filter(|s| {
            change_set.starts_with("arn:") || stack_name.is_some_and(|n| super::api::names(s, n))
        })
        .find_map(|s| {
            s.change_sets
                .iter()
                .position(|c| c.id == change_set || c.name == change_set)
                .map(|i| (s, i))
        })
}

fn not_found(change_set: &str) -> anyhow::Error {
    refused_error(
        "ChangeSetNotFound",
        format!("ChangeSet [{change_set}] does not exist"),
    )
}

/// ExecuteChangeSet: its operation, run to its end.
pub fn execute(
    deployment: &str,
    change_set: &str,
    stack_name: Option<&str>,
    quotas: Quotas,
) -> Result<Outcome> {
    let _serial = super::api::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let stacks = load(deployment)?;
    let (stack, i) = find(&stacks, change_set, stack_name).ok_or_else(|| not_found(change_set))?;
    let cs = stack.change_sets[i].clone();
    if cs.execution_status != "AVAILABLE" {
        return Err(refused_error(
            "InvalidChangeSetStatus",
            format!(
                "ChangeSet [{}] cannot be executed in its current status of [{}]",
                cs.id, cs.execution_status
            ),
        ));
    }
    let input = StackInput {
        name: stack.name.clone(),
        template_body: cs.template_body.clone(),
        template_dir: stack.template_dir.clone(),
        label: format!("change set {}", cs.name),
        parameters: cs.parameters.clone(),
        capabilities: cs.capabilities.clone(),
        tags: cs.tags.clone(),
    };
    let op = if cs.change_set_type == "CREATE" {
        Operation::Create(input)
    } else {
        Operation::Update {
            input,
            require_change: false,
        }
    };
    let out = operations::run(deployment, &op, quotas)?;
    // Executed: this one's status; the stack's other change sets are
    // obsolete.
    let mut stacks = load(deployment)?;
    if let Some(s) = stacks
        .iter_mut()
        .find(|s| s.stack_id == out.stack.stack_id && !s.deleted())
    {
        for c in &mut s.change_sets {
            c.execution_status = if c.id == cs.id {
                if out.error.is_none() {
                    "EXECUTE_COMPLETE"
                } else {
                    "EXECUTE_FAILED"
                }
            } else {
                "OBSOLETE"
            }
            .into();
        }
        s.change_set_id = Some(cs.id.clone());
    }
    save(deployment, &stacks)?;
    Ok(out)
}

/// DeleteChangeSet.
pub fn delete(deployment: &str, change_set: &str, stack_name: Option<&str>) -> Result<()> {
    let _serial = super::api::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut stacks = load(deployment)?;
    let (stack, i) = find(&stacks, change_set, stack_name).ok_or_else(|| not_found(change_set))?;
    let id = stack.stack_id.clone();
    let s = stacks
        .iter_mut()
        .find(|s| s.stack_id == id && !s.deleted())
        .expect("found");
    s.change_sets.remove(i);
    save(deployment, &stacks)
}

/// The parameters of a request, with the previous values of those it
/// keeps.
pub fn parameters_of(given: &[HashMap<String, String>]) -> (BTreeMap<String, String>, Vec<String>) {
    let mut values = BTreeMap::new();
    let mut previous = vec![];
    for p in given {
        let Some(k) = p.get("ParameterKey") else {
            continue;
        };
        if p.get("UsePreviousValue").is_some_and(|v| v == "true") {
            previous.push(k.clone());
        } else if let Some(v) = p.get("ParameterValue") {
            values.insert(k.clone(), v.clone());
        }
    }
    (values, previous)
}

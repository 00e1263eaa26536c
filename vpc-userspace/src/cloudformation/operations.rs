//! Creating, updating and deleting a deployment's stacks as CloudFormation
//! does: the model of every applied stack (this one created, changed or
//! gone) is built over the model in force and applied by the reconciler,
//! which refuses atomically (nothing is half-applied); the stack's status
//! and events say what happened: `CREATE_IN_PROGRESS` → `CREATE_COMPLETE`,
//! `UPDATE_*`, `DELETE_*`, and when the build or the reconcile fails,
//! `ROLLBACK_COMPLETE` / `UPDATE_ROLLBACK_COMPLETE` with the failed
//! resource's reason, the deployment as it was.
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::PathBuf,
};

use anyhow::{bail, Result};
use serde_json::Value;

use super::{load, now_ms, save, Stack};
use crate::{
    model::{build_stacks, Model, Quotas, StackSource},
    template::{self, ModelError},
};

/// A stack's template and parameters, as a create or an update gives them.
#[derive(Debug, Clone, Default)]
pub struct StackInput {
    pub name: String,
    pub template_body: String,
    pub template_dir: Option<PathBuf>,
    /// How messages name the template.
    pub label: String,
    pub parameters: BTreeMap<String, String>,
    /// `Capabilities` acknowledged (the API's).
    pub capabilities: Vec<String>,
    pub tags: Vec<(String, String)>,
}

/// What an operation does to a deployment's stacks.
#[derive(Debug, Clone)]
pub enum Operation {
    Create(StackInput),
    /// `require_change`: an update that changes nothing is refused
    /// (`No updates are to be performed.`), as UpdateStack refuses it;
    /// `vpc apply` applies anyway (a local code directory may have
    /// changed under the same template).
    Update {
        input: StackInput,
        require_change: bool,
    },
    Delete(String),
}

impl Operation {
    pub fn stack_name(&self) -> &str {
        match self {
            Operation::Create(i) | Operation::Update { input: i, .. } => &i.name,
            Operation::Delete(n) => n,
        }
    }
}

/// An operation refused before it started (CloudFormation's
/// `ValidationError`, `AlreadyExistsException`): no stack changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refused {
    pub code: &'static str,
    pub message: String,
}

pub fn refused_error(code: &'static str, message: impl Into<String>) -> anyhow::Error {
    Refused {
        code,
        message: message.into(),
    }
    .into()
}

/// The stack of `stacks` named `name` that is not deleted.
pub fn live<'a>(stacks: &'a [Stack], name: &str) -> Option<&'a Stack> {
    stacks.iter().find(|s| s.name == name && !s.deleted())
}

/// The model of `stacks` (those `include` keeps), side by side, over
/// `prior`, for deployment `deployment`.
pub fn build(
    deployment: &str,
    stacks: &[&Stack],
    quotas: Quotas,
    prior: Option<&Model>,
) -> std::result::Result<Model, ModelError> {
    let ctx = crate::deploy::stack_context(deployment)
        .map_err(|e| ModelError::new("stacks", format!("{e:#}")))?;
    if stacks.is_empty() {
        // Every stack deleted: nothing of the templates remains.
        return Ok(Model {
            stack_name: ctx.stack_name.clone(),
            region: ctx.region.clone(),
            account: ctx.account.clone(),
            stack_id: template::stack_id(&ctx.region, &ctx.account, &ctx.stack_name),
            ..Default::default()
        });
    }
    let params: Vec<HashMap<String, String>> = stacks
        .iter()
        .map(|s| s.parameters.clone().into_iter().collect())
        .collect();
    let sources: Vec<StackSource> = stacks
        .iter()
        .zip(&params)
        .map(|(s, p)| StackSource {
            name: &s.name,
            text: &s.template_body,
            params: p,
            dir: s.template_dir.as_deref(),
        })
        .collect();
    build_stacks(&sources, &ctx, quotas, prior)
}

/// A new stack's record, `CREATE_IN_PROGRESS`.
pub fn new_stack(deployment: &str, input: &StackInput, now: u64) -> Result<Stack> {
    let ctx = crate::deploy::stack_context(deployment)?;
    let mut s = Stack {
        name: input.name.clone(),
        stack_id: template::stack_id(&ctx.region, &ctx.account, &input.name),
        template_body: input.template_body.clone(),
        template_dir: input.template_dir.clone(),
        label: input.label.clone(),
        parameters: input.parameters.clone(),
        capabilities: input.capabilities.clone(),
        tags: input.tags.clone(),
        created_ms: now,
        ..Default::default()
    };
    s.set_status("CREATE_IN_PROGRESS", Some("User Initiated".into()), now);
    Ok(s)
}

/// The logical id an error names (`Resources.X...`, also after a stack's
/// prefix), if any.
fn failed_resource(e: &str) -> Option<String> {
    let at = e.find("Resources.")?;
    let id: String = e[at + "Resources.".len()..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    (!id.is_empty()).then_some(id)
}

/// What `Ref` gives for a resource of the model: a function's name, a
/// kept resource's physical id, a network resource's id.
pub fn physical_id(m: &Model, id: &str) -> String {
    if let Some(f) = m.function(id) {
        return f.name.clone();
    }
    m.stack_resources
        .iter()
        .find(|r| r.logical_id == id)
        .map(|r| r.physical_id.clone())
        .unwrap_or_else(|| id.to_string())
}

/// The resources of each template as written (`Resources.<id>`), to tell
/// which an update changes.
fn written(body: &str) -> BTreeMap<String, Value> {
    template::document(body)
        .ok()
        .and_then(|d| d.get("Resources").and_then(Value::as_object).cloned())
        .map(|m| m.into_iter().collect())
        .unwrap_or_default()
}

/// Whether a resource's definition refers to one of `params` (`Ref`, or
/// `${...}` in a `Fn::Sub`).
fn mentions(v: &Value, params: &BTreeSet<&String>) -> bool {
    match v {
        Value::Object(o) => o.iter().any(|(k, x)| {
            (k == "Ref"
                && x.as_str()
                    .is_some_and(|r| params.iter().any(|p| p.as_str() == r)))
                || (k == "Fn::Sub"
                    && [x, &x[0]]
                        .iter()
                        .filter_map(|s| s.as_str())
                        .any(|s| params.iter().any(|p| s.contains(&format!("${{{p}}}")))))
                || mentions(x, params)
        }),
        Value::Array(a) => a.iter().any(|x| mentions(x, params)),
        _ => false,
    }
}

/// The events of an operation that succeeded: each resource it created,
/// updated (its definition changed, or a parameter it refers to) or
/// deleted, as CloudFormation reports them.
fn resource_events(
    stack: &mut Stack,
    (before, after): (&Model, &Model),
    (old_body, old_params): (Option<&str>, &BTreeMap<String, String>),
    verb: &str,
    now: u64,
) {
    let resources = |m: &Model| -> BTreeMap<String, String> {
        m.stack(&stack.name)
            .map(|s| s.resources.iter().cloned().collect())
            .unwrap_or_default()
    };
    let (old, new) = (resources(before), resources(after));
    let (old_w, new_w) = (
        old_body.map(written).unwrap_or_default(),
        written(&stack.template_body),
    );
    let now_params = stack.parameters.clone();
    let params: BTreeSet<&String> = now_params
        .iter()
        .filter(|(k, v)| old_params.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .chain(old_params.keys().filter(|k| !now_params.contains_key(*k)))
        .collect();
    for (id, kind) in &new {
        let status = match old.get(id) {
            None => "CREATE",
            Some(_)
                if old_w.get(id) != new_w.get(id)
                    || new_w.get(id).is_some_and(|d| mentions(d, &params)) =>
            {
                "UPDATE"
            }
            Some(_) => continue,
        };
        let physical = physical_id(after, id);
        stack.event((id, "", kind), &format!("{status}_IN_PROGRESS"), None, now);
        stack.event(
            (id, &physical, kind),
            &format!("{status}_COMPLETE"),
            None,
            now,
        );
    }
    if verb == "UPDATE" && old.keys().any(|id| !new.contains_key(id)) {
        stack.stack_event("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", None, now);
    }
    for (id, kind) in old.iter().filter(|(id, _)| !new.contains_key(*id)) {
        let physical = physical_id(before, id);
        stack.event((id, &physical, kind), "DELETE_IN_PROGRESS", None, now);
        stack.event((id, &physical, kind), "DELETE_COMPLETE", None, now);
    }
}

/// Records a failed operation: the failed resource's event with the
/// error, the rollback, the stack as it was (a creation's: no resources).
fn record_failure(deployment: &str, op: &Operation, error: &str) -> Result<Stack> {
    let now = now_ms();
    let mut stacks = load(deployment)?;
    let name = op.stack_name();
    let Some(s) = stacks
        .iter_mut()
        .rev()
        .find(|s| s.name == name && !s.deleted())
    else {
        bail!("{error}");
    };
    let (verb, rollback) = match op {
        Operation::Create(_) => ("CREATE", "ROLLBACK"),
        Operation::Update { .. } => ("UPDATE", "UPDATE_ROLLBACK"),
        Operation::Delete(_) => ("DELETE", ""),
    };
    let resource = failed_resource(error);
    if let Some(id) = &resource {
        let kind = written(&s.template_body)
            .get(id)
            .and_then(|r| r["Type"].as_str().map(str::to_string))
            .unwrap_or_default();
        s.event(
            (id, "", &kind),
            &format!("{verb}_FAILED"),
            Some(error.to_string()),
            now,
        );
    }
    let reason = match &resource {
        Some(id) => format!(
            "The following resource(s) failed to {}: [{id}]. ",
            verb.to_lowercase()
        ),
        None => error.to_string(),
    };
    if let Operation::Delete(_) = op {
        s.set_status("DELETE_FAILED", Some(reason), now);
    } else {
        s.set_status(
            &format!("{rollback}_IN_PROGRESS"),
            Some(reason.clone()),
            now,
        );
        if let Operation::Update { .. } = op {
            s.stack_event("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", None, now);
        }
        // The stack keeps saying why it rolled back.
        s.set_status(&format!("{rollback}_COMPLETE"), None, now);
        s.status_reason = Some(reason);
    }
    let out = s.clone();
    save(deployment, &stacks)?;
    Ok(out)
}

/// Checks what an operation asks before anything is recorded: the stack
/// exists (or not, for a creation), its template is a template, its
/// parameters and rules hold; a refusal changes nothing.
pub fn check(deployment: &str, op: &Operation) -> Result<()> {
    let stacks = load(deployment)?;
    let name = op.stack_name();
    let existing = live(&stacks, name);
    match (
        op,
        existing.filter(|s| !s.in_review() || !matches!(op, Operation::Create(_))),
    ) {
        (Operation::Create(_), Some(_)) => {
            return Err(refused_error(
                "AlreadyExistsException",
                format!("Stack [{name}] already exists"),
            ))
        }
        (Operation::Update { .. } | Operation::Delete(_), None) => {
            return Err(refused_error(
                "ValidationError",
                format!("Stack [{name}] does not exist"),
            ))
        }
        (Operation::Update { .. }, Some(s)) if !s.applied() => {
            return Err(refused_error(
                "ValidationError",
                format!(
                    "Stack:{} is in {} state and can not be updated.",
                    s.stack_id, s.status
                ),
            ));
        }
        (
            Operation::Update {
                input,
                require_change: true,
            },
            Some(s),
        ) if s.template_body == input.template_body && s.parameters == input.parameters => {
            return Err(refused_error(
                "ValidationError",
                "No updates are to be performed.",
            ));
        }
        _ => {}
    }
    if let Operation::Create(i) | Operation::Update { input: i, .. } = op {
        validate(deployment, i).map_err(|e| refused_error("ValidationError", e.to_string()))?;
    }
    Ok(())
}

/// A template as CloudFormation reads it before creating anything.
pub struct Checked {
    /// The transforms it declares, as written.
    pub transforms: Vec<String>,
    /// After its transforms: its resources and parameters, as written.
    pub template: template::Template,
}

/// A stack's template checked alone, as ValidateTemplate and CreateStack
/// check it before creating anything: its format, SAM's transform, its
/// parameters (values given), rules, conditions and references.
pub fn validate(deployment: &str, i: &StackInput) -> std::result::Result<Checked, ModelError> {
    let mut ctx = crate::deploy::stack_context(deployment)
        .map_err(|e| ModelError::new("stacks", format!("{e:#}")))?;
    ctx.stack_name = i.name.clone();
    let params: HashMap<String, String> = i.parameters.clone().into_iter().collect();
    let doc = template::document(&i.template_body)?;
    let transforms = match doc.get("Transform") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    };
    let doc = template::sam::expand(doc, &params, &ctx, i.template_dir.as_deref())?;
    let t = template::parse_document(doc)?;
    template::instantiate(t.clone(), &params, ctx)?;
    Ok(Checked {
        transforms,
        template: t,
    })
}

/// What an operation left: the stack's record, and the error when it
/// failed (the stack rolled back, or its deletion failed).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub stack: Stack,
    pub error: Option<String>,
}

/// Runs `op` on the running deployment `deployment` (checked with
/// [`check`] first): records it in progress, builds and applies the model
/// of its stacks, and records the outcome, also when it failed (its
/// status says it rolled back, `status_reason` and the failed resource's
/// event say why). `Err`: refused before anything was recorded
/// ([`Refused`]), or the store failed.
pub fn run(deployment: &str, op: &Operation, quotas: Quotas) -> Result<Outcome> {
    check(deployment, op)?;
    let now = now_ms();
    let name = op.stack_name().to_string();
    // In progress, visible to DescribeStacks while the model is built.
    {
        let mut stacks = load(deployment)?;
        match op {
            Operation::Create(i) => {
                stacks.retain(|s| !(s.name == name && s.deleted()));
                match stacks.iter_mut().find(|s| s.name == name && s.in_review()) {
                    // Created by its change set: the record it has.
                    Some(s) => {
                        s.capabilities = i.capabilities.clone();
                        s.tags = i.tags.clone();
                        s.set_status("CREATE_IN_PROGRESS", Some("User Initiated".into()), now);
                    }
                    None => stacks.push(new_stack(deployment, i, now)?),
                }
            }
            Operation::Update { .. } => {
                if let Some(s) = stacks.iter_mut().find(|s| s.name == name && !s.deleted()) {
                    s.set_status("UPDATE_IN_PROGRESS", Some("User Initiated".into()), now);
                }
            }
            Operation::Delete(_) => {
                if let Some(s) = stacks.iter_mut().find(|s| s.name == name && !s.deleted()) {
                    s.set_status("DELETE_IN_PROGRESS", Some("User Initiated".into()), now);
                }
            }
        }
        save(deployment, &stacks)?;
    }
    let applied = crate::reconcile::apply_stacks(deployment, |prior, mut stacks| {
        let now = now_ms();
        let k = stacks
            .iter()
            .position(|s| s.name == name && !s.deleted())
            .ok_or_else(|| anyhow::anyhow!("Stack [{name}] does not exist"))?;
        let old_body = stacks[k].template_body.clone();
        let old_params = stacks[k].parameters.clone();
        match op {
            Operation::Create(i) | Operation::Update { input: i, .. } => {
                let s = &mut stacks[k];
                s.template_body = i.template_body.clone();
                s.template_dir = i.template_dir.clone();
                s.label = i.label.clone();
                s.parameters = i.parameters.clone();
                if !i.capabilities.is_empty() {
                    s.capabilities = i.capabilities.clone();
                }
            }
            Operation::Delete(_) => {}
        }
        let included: Vec<&Stack> = stacks
            .iter()
            .enumerate()
            .filter(|(j, s)| {
                if *j == k {
                    !matches!(op, Operation::Delete(_))
                } else {
                    s.applied()
                }
            })
            .map(|(_, s)| s)
            .collect();
        let model = build(deployment, &included, quotas, Some(prior))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let s = &mut stacks[k];
        match op {
            Operation::Create(_) => {
                resource_events(s, (prior, &model), (None, &old_params), "CREATE", now);
                s.description = model.stack(&name).and_then(|m| m.description.clone());
                s.set_status("CREATE_COMPLETE", None, now);
            }
            Operation::Update { .. } => {
                resource_events(
                    s,
                    (prior, &model),
                    (Some(&old_body), &old_params),
                    "UPDATE",
                    now,
                );
                s.description = model.stack(&name).and_then(|m| m.description.clone());
                s.updated_ms = Some(now);
                s.set_status("UPDATE_COMPLETE", None, now);
            }
            Operation::Delete(_) => {
                resource_events(
                    s,
                    (prior, &model),
                    (Some(&old_body), &old_params),
                    "DELETE",
                    now,
                );
                s.deleted_ms = Some(now);
                s.set_status("DELETE_COMPLETE", None, now);
            }
        }
        Ok((model, stacks))
    });
    match applied {
        Ok(_) => Ok(Outcome {
            stack: load(deployment)?
                .into_iter()
                .rev()
                .find(|s| s.name == name)
                .ok_or_else(|| anyhow::anyhow!("stack {name} vanished"))?,
            error: None,
        }),
        Err(e) => {
            let error = format!("{e:#}");
            Ok(Outcome {
                stack: record_failure(deployment, op, &error)?,
                error: Some(error),
            })
        }
    }
}

/// The first stack of a deployment (`vpc up`): its model, and its record,
/// `CREATE_COMPLETE` with an event per resource.
pub fn first_stack(deployment: &str, input: &StackInput, quotas: Quotas) -> Result<(Model, Stack)> {
    let now = now_ms();
    let mut stack = new_stack(deployment, input, now)?;
    let model = build(deployment, &[&stack], quotas, None)
        .map_err(|e| anyhow::anyhow!("template {}: {e}", input.label))?;
    let none = BTreeMap::new();
    resource_events(
        &mut stack,
        (&Model::default(), &model),
        (None, &none),
        "CREATE",
        now,
    );
    stack.description = model.stack(&input.name).and_then(|m| m.description.clone());
    stack.set_status("CREATE_COMPLETE", None, now);
    Ok((model, stack))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failed_resource_is_the_one_an_error_names() {
        assert_eq!(
            failed_resource("stack App: Resources.Orders.Properties.VpcConfig: x").as_deref(),
            Some("Orders")
        );
        assert_eq!(failed_resource("Resources.Db[0]: y").as_deref(), Some("Db"));
        assert_eq!(failed_resource("Parameters.X: no"), None);
    }

    /// An update's resources: those whose definition refers to a
    /// parameter whose value changed are updated too.
    #[test]
    fn a_changed_parameter_updates_the_resources_that_refer_to_it() {
        let env: BTreeSet<&String> = BTreeSet::new();
        let greeting = "Greeting".to_string();
        let changed: BTreeSet<&String> = [&greeting].into();
        let by_ref = serde_json::json!({"Properties": {"Environment": {"Variables": {"G": {"Ref": "Greeting"}}}}});
        let by_sub =
            serde_json::json!({"Properties": {"Name": {"Fn::Sub": ["${Greeting}-x", {}]}}});
        let other = serde_json::json!({"Properties": {"Name": {"Ref": "Other"}}});
        assert!(mentions(&by_ref, &changed) && mentions(&by_sub, &changed));
        assert!(!mentions(&other, &changed) && !mentions(&by_ref, &env));
    }
}

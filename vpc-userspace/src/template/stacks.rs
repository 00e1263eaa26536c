//! Several stacks side by side in one deployment, built as one network:
//! each stack's template instantiated in its own scope (its parameters,
//! rules, conditions, mappings, outputs and pseudo parameters, with its own
//! stack name), then their resources put together in one template that the
//! model builds, each resource resolving in its own stack's scope
//! ([`super::Resolver::add_stacks`]). Logical ids name namespaces and
//! nodes here, so one id used by two stacks is refused, naming both.
//! Stacks refer to one another as CloudFormation's stacks do: by exports
//! (`Fn::ImportValue`) and outputs (`Fn::GetStackOutput`).
use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{instantiate, Context, Env, ModelError, Result, Template};

/// The key of the internet's test hosts in the top-level `Metadata`.
const INTERNET: &str = "Vpc::Internet";

/// A parsed stack to instantiate: its name, template and parameter values.
pub struct StackTemplate {
    pub name: String,
    pub template: Template,
    pub params: HashMap<String, String>,
}

/// The stacks instantiated, and what builds them as one model.
pub struct Stacks {
    /// Each stack's instantiated template and its `Env`, in order.
    pub stacks: Vec<(Template, Env)>,
    /// The first stack's template holding every stack's resources (and
    /// internet test hosts): what the model builds.
    pub merged: Template,
    /// Resource id (and `Metadata:<host>`) -> the index of its stack.
    pub owner: HashMap<String, usize>,
}

/// An error of stack `stack`, when there are several: its path says so.
pub fn in_stack(e: ModelError, stack: &str) -> ModelError {
    ModelError::new(format!("stack {stack}: {}", e.path), e.message)
}

/// Instantiates each stack in its own scope (`ctx` with its name) and
/// merges them.
pub fn instantiate_stacks(stacks: Vec<StackTemplate>, ctx: &Context) -> Result<Stacks> {
    let several = stacks.len() > 1;
    let mut out: Vec<(Template, Env)> = vec![];
    let mut owner: HashMap<String, usize> = HashMap::new();
    let mut names: Vec<String> = vec![];
    for (k, s) in stacks.into_iter().enumerate() {
        if names.contains(&s.name) {
            return Err(ModelError::new(
                "Stacks",
                format!("Stack [{}] already exists", s.name),
            ));
        }
        let mut c = ctx.clone();
        c.stack_name = s.name.clone();
        let (t, env) = instantiate(s.template, &s.params, c).map_err(|e| {
            if several {
                in_stack(e, &s.name)
            } else {
                e
            }
        })?;
        for id in t.resources.keys() {
            if let Some(other) = owner.insert(id.clone(), k) {
                return Err(in_stack(
                    ModelError::new(
                        format!("Resources.{id}"),
                        format!(
                            "logical id {id} is used by stacks {} and {}: logical ids name this project's resources (namespaces, nodes), so they are unique across a deployment's stacks; rename one",
                            names[other], s.name
                        ),
                    ),
                    &s.name,
                ));
            }
        }
        for host in hosts(&t).keys() {
            if let Some(other) = owner.insert(format!("Metadata:{host}"), k) {
                return Err(in_stack(
                    ModelError::new(
                        format!("Metadata.{INTERNET}.Hosts.{host}"),
                        format!(
                            "internet test host {host} is declared by stacks {} and {}",
                            names[other], s.name
                        ),
                    ),
                    &s.name,
                ));
            }
        }
        names.push(s.name);
        out.push((t, env));
    }
    let mut merged = out
        .first()
        .map(|(t, _)| t.clone())
        .ok_or_else(|| ModelError::new("Stacks", "a deployment needs a stack"))?;
    let mut all_hosts = hosts(&merged);
    for (t, _) in out.iter().skip(1) {
        merged
            .resources
            .extend(t.resources.iter().map(|(k, v)| (k.clone(), v.clone())));
        all_hosts.extend(hosts(t));
    }
    if several && !all_hosts.is_empty() {
        let internet = merged
            .metadata
            .entry(INTERNET.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(o) = internet {
            o.insert("Hosts".into(), Value::Object(all_hosts));
        }
    }
    Ok(Stacks {
        stacks: out,
        merged,
        owner,
    })
}

/// The internet's test hosts a template declares (unresolved).
fn hosts(t: &Template) -> Map<String, Value> {
    t.metadata
        .get(INTERNET)
        .and_then(|i| i.get("Hosts"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

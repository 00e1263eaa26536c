//! The template's unit tests, a module per concern.
use std::collections::HashMap;

use serde_json::Value;

use super::*;

mod conditions;
mod dependencies;
mod intrinsics;
mod outputs;
mod parameters;
mod rules;

/// `text` instantiated in a stack named `stack` with `params`.
pub(super) fn inst_in(
    text: &str,
    params: &[(&str, &str)],
    ctx: Context,
) -> Result<(Template, Env)> {
    let params: HashMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    instantiate(parse(text)?, &params, ctx)
}

pub(super) fn inst(text: &str, params: &[(&str, &str)]) -> Result<(Template, Env)> {
    inst_in(text, params, Context::new("stack"))
}

/// The resolved properties of resource `id`.
pub(super) fn props_of(text: &str, params: &[(&str, &str)], id: &str) -> Result<Value> {
    let (t, env) = inst(text, params)?;
    let r = Resolver::new(&t, env);
    r.resolve(
        &Value::Object(t.resources[id].properties.clone()),
        &format!("Resources.{id}.Properties"),
    )
}

/// A template with `head` (Parameters, Conditions, ...), a resource `V`
/// whose properties are `props` (YAML lines indented by 6), and a resource
/// `W` for them to refer to.
pub(super) fn one(head: &str, props: &str) -> String {
    format!("{head}Resources:\n  W: {{Type: AWS::EC2::VPC}}\n  V:\n    Type: AWS::EC2::VPC\n    Properties:\n{props}")
}

/// The error of resolving `V`'s properties.
pub(super) fn err_of(text: &str, params: &[(&str, &str)]) -> ModelError {
    props_of(text, params, "V").expect_err("should be refused")
}

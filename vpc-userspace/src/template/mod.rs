//! CloudFormation templates: YAML (with the short `!Ref`-style tags) or
//! JSON, parsed ([`parse`]) and instantiated for one stack
//! ([`instantiate`]): `Parameters` given their values and checked,
//! `Rules` asserted, `Conditions` evaluated (resources and outputs whose
//! condition is false removed, `Fn::If` branches chosen, `AWS::NoValue`
//! removed), references and `DependsOn` checked; then every intrinsic
//! function is resolved on demand by a [`Resolver`] as the model is built,
//! and `Outputs` last. Pure Rust, no kernel. A module per concern:
//! `parameters`, `rules`, `conditions`, `dependencies`, `intrinsics`,
//! `outputs`.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value};

mod conditions;
mod dependencies;
mod intrinsics;
mod outputs;
mod parameters;
mod rules;
pub mod sam;
pub mod stacks;
#[cfg(test)]
mod tests;

pub use intrinsics::{scalar_string, Resolver, Scope};
pub use outputs::{Export, StackOutput};
pub use parameters::StackParameter;

/// An error that names where in the template it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ModelError {
    /// Dotted path, e.g. `Resources.Db.Properties.SubnetId`.
    pub path: String,
    pub message: String,
}

impl ModelError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, ModelError>;

pub const DEFAULT_REGION: &str = "us-east-1";
pub const DEFAULT_ACCOUNT: &str = "123456789012";

/// The transform that enables `Fn::Length`, `Fn::ToJsonString` and
/// `Fn::FindInMap`'s `DefaultValue`.
pub const LANGUAGE_EXTENSIONS: &str = "AWS::LanguageExtensions";

/// A parsed template, before instantiation.
#[derive(Debug, Clone, Default)]
pub struct Template {
    /// Parameter declarations, as written.
    pub parameters: BTreeMap<String, Value>,
    pub mappings: Map<String, Value>,
    pub conditions: Map<String, Value>,
    pub rules: Map<String, Value>,
    pub resources: BTreeMap<String, Resource>,
    /// Output declarations, as written (after [`instantiate`]: those whose
    /// condition holds, with `Fn::If` resolved).
    pub outputs: BTreeMap<String, Value>,
    /// `Transform`, as a list.
    pub transforms: Vec<String>,
    /// The top-level `Metadata` (unresolved): CloudFormation ignores what
    /// it does not know there, so extensions live in it (`Vpc::Internet`).
    pub metadata: Map<String, Value>,
    /// `Description`.
    pub description: Option<String>,
}

impl Template {
    pub fn language_extensions(&self) -> bool {
        self.transforms.iter().any(|t| t == LANGUAGE_EXTENSIONS)
    }
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub logical_id: String,
    pub kind: String,
    /// Unresolved `Properties` (an object; empty when absent).
    pub properties: Map<String, Value>,
    /// `Metadata` (an object; empty when absent).
    pub metadata: Map<String, Value>,
    /// `Condition`: the condition that decides whether it exists.
    pub condition: Option<String>,
    /// `DependsOn`, as a list.
    pub depends_on: Vec<String>,
}

/// Where a stack is created: what pseudo parameters, `Fn::GetAZs`,
/// SSM parameter types and `Fn::ImportValue` resolve against.
#[derive(Debug, Clone)]
pub struct Context {
    pub region: String,
    pub account: String,
    pub stack_name: String,
    /// The account's SSM parameters (name -> value), before the documented
    /// fallbacks (`crate::ssm::fallback`).
    pub ssm: BTreeMap<String, crate::ssm::Parameter>,
    /// Exports of the other stacks (deployments) of the account and region.
    pub exports: BTreeMap<String, Export>,
    /// Outputs of the other stacks (deployments) of the account and
    /// region, by stack and key (`Fn::GetStackOutput`).
    pub stack_outputs: BTreeMap<String, BTreeMap<String, String>>,
}

impl Context {
    /// A stack in the default region and account, an empty parameter store
    /// (the fallbacks only) and no other stacks.
    pub fn new(stack_name: &str) -> Self {
        Context {
            region: DEFAULT_REGION.into(),
            account: DEFAULT_ACCOUNT.into(),
            stack_name: stack_name.into(),
            ssm: BTreeMap::new(),
            exports: BTreeMap::new(),
            stack_outputs: BTreeMap::new(),
        }
    }

    /// The region's Availability Zones, as `Fn::GetAZs` lists them.
    pub fn availability_zones(region: &str) -> Vec<String> {
        ["a", "b", "c"]
            .iter()
            .map(|z| format!("{region}{z}"))
            .collect()
    }
}

/// What instantiation decided, for the resolver and the model: parameter
/// values, conditions, the resources a false condition removed.
#[derive(Debug, Clone)]
pub struct Env {
    pub ctx: Context,
    /// Parameter values as `Ref` gives them (strings, or lists of strings).
    pub params: HashMap<String, Value>,
    /// Parameters as the stack shows them (`NoEcho` masked).
    pub parameters: Vec<StackParameter>,
    pub conditions: BTreeMap<String, bool>,
    /// Resources (and outputs) whose condition is false: they do not exist.
    pub removed: BTreeSet<String>,
    pub language_extensions: bool,
}

const TOP_LEVEL: &[&str] = &[
    "AWSTemplateFormatVersion",
    "Description",
    "Metadata",
    "Parameters",
    "Rules",
    "Mappings",
    "Conditions",
    "Transform",
    "Resources",
    "Outputs",
    "Hooks",
];

const RESOURCE_KEYS: &[&str] = &[
    "Type",
    "Properties",
    "DependsOn",
    "Condition",
    "Metadata",
    "DeletionPolicy",
    "UpdateReplacePolicy",
    "UpdatePolicy",
    "CreationPolicy",
];

/// Logical ids (resources, parameters, conditions, outputs, mappings) are
/// alphanumeric, as CloudFormation requires.
fn check_logical_id(id: &str, what: &str, path: &str) -> Result<()> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) || id.len() > 255 {
        return Err(ModelError::new(
            path,
            format!("Template format error: {what} name {id} is non alphanumeric."),
        ));
    }
    Ok(())
}

fn mapping<'v>(top: &'v Map<String, Value>, key: &str) -> Result<Option<&'v Map<String, Value>>> {
    match top.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(ModelError::new(
            key,
            format!("Template format error: {key} must be a mapping"),
        )),
    }
}

/// Parses YAML or JSON text into a template.
pub fn parse(text: &str) -> Result<Template> {
    parse_document(document(text)?)
}

/// YAML or JSON text as a JSON document, the short-form tags in their long
/// forms (what transforms take).
pub fn document(text: &str) -> Result<Value> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text)
            .map_err(|e| ModelError::new("template", format!("invalid JSON: {e}")))
    } else {
        let y: yaml_serde::Value = yaml_serde::from_str(text)
            .map_err(|e| ModelError::new("template", format!("invalid YAML: {e}")))?;
        yaml_to_json(y, "template")
    }
}

/// A document (after [`sam::expand`]) as a template.
pub fn parse_document(doc: Value) -> Result<Template> {
    let Value::Object(top) = doc else {
        return Err(ModelError::new(
            "template",
            "the template must be a mapping",
        ));
    };
    let unknown: Vec<&str> = top
        .keys()
        .map(String::as_str)
        .filter(|k| !TOP_LEVEL.contains(k))
        .collect();
    if !unknown.is_empty() {
        return Err(ModelError::new(
            "template",
            format!(
                "Template format error: Invalid template property or properties [{}]",
                unknown.join(", ")
            ),
        ));
    }
    let transforms = match top.get("Transform") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| t.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ModelError::new("Transform", "a transform is named by a string"))?,
        Some(_) => {
            return Err(ModelError::new(
                "Transform",
                "a transform name or a list of them",
            ))
        }
    };
    for t in &transforms {
        if t == sam::SAM_TRANSFORM {
            // `model::build_at` expands it first; a parser's caller must too.
            return Err(ModelError::new(
                "Transform",
                format!("{t}: expand the document with template::sam::expand before parsing it"),
            ));
        }
        if t != LANGUAGE_EXTENSIONS {
            return Err(ModelError::new(
                "Transform",
                format!("transform {t} is not supported by this project; {LANGUAGE_EXTENSIONS} and {} are", sam::SAM_TRANSFORM),
            ));
        }
    }
    let mut parameters = BTreeMap::new();
    for (name, decl) in mapping(&top, "Parameters")?.into_iter().flatten() {
        let path = format!("Parameters.{name}");
        check_logical_id(name, "Parameter", &path)?;
        if !decl.is_object() {
            return Err(ModelError::new(path, "a parameter must be a mapping"));
        }
        parameters.insert(name.clone(), decl.clone());
    }
    let mappings = mapping(&top, "Mappings")?.cloned().unwrap_or_default();
    for (name, m) in &mappings {
        check_logical_id(name, "Mapping", &format!("Mappings.{name}"))?;
        if !m.is_object() {
            return Err(ModelError::new(
                format!("Mappings.{name}"),
                "Template format error: Every Mappings member must be a map",
            ));
        }
    }
    let conditions = mapping(&top, "Conditions")?.cloned().unwrap_or_default();
    for name in conditions.keys() {
        check_logical_id(name, "Condition", &format!("Conditions.{name}"))?;
    }
    let rules = mapping(&top, "Rules")?.cloned().unwrap_or_default();
    let res = match top.get("Resources") {
        Some(Value::Object(m)) if !m.is_empty() => m,
        _ => {
            return Err(ModelError::new(
                "Resources",
                "the template needs a non-empty Resources mapping",
            ))
        }
    };
    let mut resources = BTreeMap::new();
    for (id, r) in res {
        let path = format!("Resources.{id}");
        if id.starts_with("Fn::ForEach") {
            return Err(ModelError::new(
                path,
                "Fn::ForEach is not supported by this project",
            ));
        }
        check_logical_id(id, "Resource", &path)?;
        resources.insert(id.clone(), resource(id, r, &path)?);
    }
    let mut outputs = BTreeMap::new();
    for (name, o) in mapping(&top, "Outputs")?.into_iter().flatten() {
        let path = format!("Outputs.{name}");
        check_logical_id(name, "Output", &path)?;
        outputs.insert(name.clone(), o.clone());
    }
    let metadata = match top.get("Metadata") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(ModelError::new("Metadata", "must be a mapping")),
    };
    let description = match top.get("Description") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => Some(d.clone()),
        Some(_) => {
            return Err(ModelError::new(
                "Description",
                "Template format error: Description must be a string",
            ))
        }
    };
    Ok(Template {
        parameters,
        mappings,
        conditions,
        rules,
        resources,
        outputs,
        transforms,
        metadata,
        description,
    })
}

fn resource(id: &str, r: &Value, path: &str) -> Result<Resource> {
    let Value::Object(r) = r else {
        return Err(ModelError::new(path, "a resource must be a mapping"));
    };
    if let Some(k) = r.keys().find(|k| !RESOURCE_KEYS.contains(&k.as_str())) {
        return Err(ModelError::new(
            format!("{path}.{k}"),
            format!("Template format error: Invalid template resource property '{k}'"),
        ));
    }
    let kind = match r.get("Type") {
        Some(Value::String(t)) => t.clone(),
        _ => {
            return Err(ModelError::new(
                format!("{path}.Type"),
                "missing or not a string",
            ))
        }
    };
    let properties = match r.get("Properties") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(_) => {
            return Err(ModelError::new(
                format!("{path}.Properties"),
                "must be a mapping",
            ))
        }
    };
    let condition = match r.get("Condition") {
        None => None,
        Some(Value::String(c)) => Some(c.clone()),
        Some(_) => {
            return Err(ModelError::new(
                format!("{path}.Condition"),
                "Template format error: Every Condition member must be a string.",
            ))
        }
    };
    let depends_on = match r.get("DependsOn") {
        None => vec![],
        Some(Value::String(d)) => vec![d.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|d| d.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                ModelError::new(
                    format!("{path}.DependsOn"),
                    "Template format error: DependsOn must be a string or a list of strings",
                )
            })?,
        Some(_) => {
            return Err(ModelError::new(
                format!("{path}.DependsOn"),
                "Template format error: DependsOn must be a string or a list of strings",
            ))
        }
    };
    Ok(Resource {
        logical_id: id.to_string(),
        kind,
        properties,
        metadata: match r.get("Metadata") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        },
        condition,
        depends_on,
    })
}

/// Instantiates `t` for one stack: parameter values (from `overrides`,
/// else `Default`; SSM types from the parameter store), `Rules`,
/// `Conditions` (resources and outputs whose condition is false removed,
/// `Fn::If` branches chosen, `AWS::NoValue` removed), then references and
/// `DependsOn` checked (unresolved names, cycles).
pub fn instantiate(
    mut t: Template,
    overrides: &HashMap<String, String>,
    ctx: Context,
) -> Result<(Template, Env)> {
    let (params, parameters) = parameters::evaluate(&t, overrides, &ctx)?;
    let mut env = Env {
        ctx,
        params,
        parameters,
        conditions: BTreeMap::new(),
        removed: BTreeSet::new(),
        language_extensions: t.language_extensions(),
    };
    env.conditions = {
        let r = Resolver::new(&t, env.clone()).in_section(intrinsics::Section::Conditions);
        rules::check(&t, &r)?;
        conditions::evaluate(&t, &r)?
    };
    conditions::apply(&mut t, &mut env)?;
    dependencies::check(&t, &env)?;
    Ok((t, env))
}

/// YAML to JSON, turning the short-form tags into their long forms.
fn yaml_to_json(v: yaml_serde::Value, path: &str) -> Result<Value> {
    use yaml_serde::Value as Y;
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(s) => Value::Array(
            s.into_iter()
                .map(|x| yaml_to_json(x, path))
                .collect::<Result<_>>()?,
        ),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    _ => return Err(ModelError::new(path, "mapping keys must be scalars")),
                };
                let sub = format!("{path}.{key}");
                out.insert(key, yaml_to_json(v, &sub)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => {
            let tag = t.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = yaml_to_json(t.value, path)?;
            let long = match name {
                "Ref" => "Ref".to_string(),
                // `!Condition X` is the condition function `Condition`.
                "Condition" => "Condition".to_string(),
                "GetAtt" => {
                    // `!GetAtt A.B` is a string; the long form is a list.
                    let inner = match inner {
                        Value::String(s) => match s.split_once('.') {
                            Some((a, b)) => Value::Array(vec![a.into(), b.into()]),
                            None => {
                                return Err(ModelError::new(
                                    path,
                                    format!("!GetAtt {s}: expected Resource.Attribute"),
                                ))
                            }
                        },
                        other => other,
                    };
                    let mut m = Map::new();
                    m.insert("Fn::GetAtt".into(), inner);
                    return Ok(Value::Object(m));
                }
                other => format!("Fn::{other}"),
            };
            let mut m = Map::new();
            m.insert(long, inner);
            Value::Object(m)
        }
    })
}

/// Stable 64-bit hash for generated names and ids (FNV-1a).
pub fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x1000_0000_01b3)
    })
}

/// The stack's id, as CloudFormation forms it: an ARN ending in a UUID
/// (derived from the stack's name here, so it is stable).
pub fn stack_id(region: &str, account: &str, stack_name: &str) -> String {
    let a = fnv1a(stack_name);
    let b = fnv1a(&format!("{stack_name}/stack"));
    format!(
        "arn:aws:cloudformation:{region}:{account}:stack/{stack_name}/{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

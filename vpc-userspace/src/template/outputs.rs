//! `Outputs`: evaluated once every resource's attributes are known (those
//! whose condition is false were removed at instantiation); an `Export`
//! name is unique among the stacks (deployments) of the account and
//! region, and is what `Fn::ImportValue` of another stack reads.
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{intrinsics::Resolver, scalar_string, ModelError, Result};

/// One output, as DescribeStacks shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackOutput {
    pub key: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_name: Option<String>,
}

/// An exported output of another stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    pub name: String,
    pub value: String,
    /// The stack (deployment) that exports it.
    pub stack: String,
}

const KEYS: &[&str] = &["Value", "Description", "Export", "Condition"];

impl Resolver<'_> {
    /// Every output of the template, in name order.
    pub fn outputs(&self) -> Result<Vec<StackOutput>> {
        self.outputs_in(0)
    }

    /// Every output of the stack of scope `k`, in name order.
    pub fn outputs_in(&self, k: usize) -> Result<Vec<StackOutput>> {
        let mut out = vec![];
        let mut exports = BTreeSet::new();
        for (key, o) in &self.scope_template(k).outputs {
            let path = format!("Outputs.{key}");
            let Value::Object(o) = o else {
                return Err(ModelError::new(
                    path,
                    "Template format error: Every Outputs member must contain a Value object",
                ));
            };
            if let Some(k) = o.keys().find(|k| !KEYS.contains(&k.as_str())) {
                return Err(ModelError::new(
                    format!("{path}.{k}"),
                    format!("Template format error: Invalid outputs property '{k}'"),
                ));
            }
            let Some(v) = o.get("Value") else {
                return Err(ModelError::new(
                    path,
                    "Template format error: Every Outputs member must contain a Value object",
                ));
            };
            let value = match self.resolve_in(k, v, &format!("{path}.Value"))? {
                v @ (Value::String(_) | Value::Number(_) | Value::Bool(_)) => scalar_string(&v),
                _ => {
                    return Err(ModelError::new(
                        format!("{path}.Value"),
                        "Template error: an output's Value must be a string (join a list with Fn::Join)",
                    ))
                }
            };
            let description = match o.get("Description") {
                None => None,
                Some(d) => Some(scalar_string(&self.resolve_in(
                    k,
                    d,
                    &format!("{path}.Description"),
                )?)),
            };
            let export_name = match o.get("Export") {
                None => None,
                Some(e) => {
                    let epath = format!("{path}.Export.Name");
                    let name = match e
                        .get("Name")
                        .map(|n| self.resolve_in(k, n, &epath))
                        .transpose()?
                    {
                        Some(Value::String(n)) if !n.is_empty() => n,
                        _ => {
                            return Err(ModelError::new(
                                epath,
                                "Template format error: an Export needs a Name (a string)",
                            ))
                        }
                    };
                    if !exports.insert(name.clone()) {
                        return Err(ModelError::new(
                            epath,
                            format!("Template format error: duplicate Export name {name}"),
                        ));
                    }
                    if let Some(other) = self.env.ctx.exports.get(&name) {
                        return Err(ModelError::new(
                            epath,
                            format!(
                                "Export with name {name} is already exported by stack {}",
                                other.stack
                            ),
                        ));
                    }
                    Some(name)
                }
            };
            out.push(StackOutput {
                key: key.clone(),
                value,
                description,
                export_name,
            });
        }
        Ok(out)
    }
}

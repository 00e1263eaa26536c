//! A deployment's stacks built as one model: [`build_stacks`] (one stack
//! is the common case, `build_at`), and what the model keeps of each stack
//! ([`ModelStack`]: its resources, outputs, parameters, conditions), for
//! `vpc status` and the CloudFormation API.
use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use serde::{Deserialize, Serialize};

use super::{keep_indices, Builder, Model, Quotas};
use crate::template::{
    self,
    stacks::{in_stack, instantiate_stacks, StackTemplate},
    Context, ModelError, Result, Scope, StackOutput, StackParameter,
};

/// One stack of a deployment, as the model is built from it.
#[derive(Debug, Clone, Copy)]
pub struct StackSource<'s> {
    pub name: &'s str,
    /// Its template, YAML or JSON (SAM's transform is expanded here).
    pub text: &'s str,
    pub params: &'s HashMap<String, String>,
    /// Its template's directory (local code paths are relative to it).
    pub dir: Option<&'s Path>,
}

/// What the model keeps of each of its stacks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelStack {
    pub name: String,
    /// `AWS::StackId`.
    pub stack_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its resources (those whose condition holds): logical id and type.
    pub resources: Vec<(String, String)>,
    pub outputs: Vec<StackOutput>,
    pub parameters: Vec<StackParameter>,
    pub conditions: BTreeMap<String, bool>,
}

impl Model {
    /// The stack named `name`.
    pub fn stack(&self, name: &str) -> Option<&ModelStack> {
        self.stacks.iter().find(|s| s.name == name)
    }

    /// The stack a resource of the model belongs to (the first stack for
    /// what no template declared: the Lambda API's functions).
    pub fn stack_of(&self, logical_id: &str) -> Option<&ModelStack> {
        self.stacks
            .iter()
            .find(|s| s.resources.iter().any(|(id, _)| id == logical_id))
    }
}

/// Builds the model of a deployment's stacks, side by side, for the
/// deployment `ctx` describes (its name, region, account, parameter store,
/// the other deployments' exports and outputs), as a replacement of
/// `prior` (see `build_over`). Each stack is instantiated in its own scope
/// (its name is its `AWS::StackName`); their resources are built together,
/// so a function of one stack may sit in a subnet of another, reached
/// through exports and outputs. With several stacks, an error's path names
/// its stack (`stack App: Resources.Orders.Properties...`).
pub fn build_stacks(
    stacks: &[StackSource],
    ctx: &Context,
    quotas: Quotas,
    prior: Option<&Model>,
) -> Result<Model> {
    quotas.check().map_err(|e| ModelError::new("quotas", e))?;
    let several = stacks.len() > 1;
    let wrap = |e: ModelError, stack: &str| if several { in_stack(e, stack) } else { e };
    let mut parsed = Vec::with_capacity(stacks.len());
    for s in stacks {
        let mut c = ctx.clone();
        c.stack_name = s.name.to_string();
        // SAM's transform first, as CloudFormation runs transforms before
        // it reads anything else of the template.
        let t = template::document(s.text)
            .and_then(|doc| template::sam::expand(doc, s.params, &c, s.dir))
            .and_then(template::parse_document)
            .map_err(|e| wrap(e, s.name))?;
        parsed.push(StackTemplate {
            name: s.name.to_string(),
            template: t,
            params: s.params.clone(),
        });
    }
    let st = instantiate_stacks(parsed, ctx)?;
    let names: Vec<String> = st
        .stacks
        .iter()
        .map(|(_, e)| e.ctx.stack_name.clone())
        .collect();
    let scopes: Vec<Scope> = st.stacks[1..]
        .iter()
        .map(|(t, env)| Scope {
            template: t,
            env: env.clone(),
        })
        .collect();
    let mut b = Builder::new(&st.merged, st.stacks[0].1.clone());
    b.m.stack_name = ctx.stack_name.clone();
    b.r.add_stacks(scopes, st.owner.clone());
    b.quotas = quotas;
    b.code_dirs = stacks
        .iter()
        .map(|s| s.dir.map(Path::to_path_buf))
        .collect();
    if let Some(p) = prior {
        b.keep(p);
    }
    let mut m = b.run().map_err(|e| {
        if !several {
            return e;
        }
        let owner = e
            .path
            .strip_prefix("Resources.")
            .map(str::to_string)
            .or_else(|| {
                e.path
                    .strip_prefix("Metadata.Vpc::Internet.Hosts.")
                    .map(|h| format!("Metadata:{h}"))
            })
            .and_then(|rest| {
                let key = rest.split(['.', '[']).next().unwrap_or_default();
                st.owner.get(key)
            });
        match owner {
            Some(k) => in_stack(e, &names[*k]),
            None => e,
        }
    })?;
    if let Some(p) = prior {
        keep_indices(&mut m, p);
    }
    Ok(m)
}

impl Builder<'_> {
    /// Each stack's outputs, parameters and conditions, once everything is
    /// built; the model's own (`outputs`, ...) are all of them. An export
    /// name is one stack's only.
    pub(super) fn finish_stacks(&mut self) -> Result<()> {
        let n = self.r.scopes();
        let mut stacks = Vec::with_capacity(n);
        let mut exported: HashMap<String, String> = HashMap::new();
        for k in 0..n {
            let name = self.r.scope_name(k).to_string();
            let wrap = |e: ModelError| if n > 1 { in_stack(e, &name) } else { e };
            let outputs = self.r.outputs_in(k).map_err(wrap)?;
            for o in &outputs {
                let Some(export) = &o.export_name else {
                    continue;
                };
                if let Some(other) = exported.insert(export.clone(), name.clone()) {
                    return Err(wrap(ModelError::new(
                        format!("Outputs.{}.Export.Name", o.key),
                        format!("Export with name {export} is already exported by stack {other}"),
                    )));
                }
            }
            let env = self.r.scope_env(k);
            let mut resources: Vec<(String, String)> = self
                .t
                .resources
                .values()
                .filter(|r| self.r.scope_of(&r.logical_id) == k)
                .map(|r| (r.logical_id.clone(), r.kind.clone()))
                .collect();
            resources.sort();
            stacks.push(ModelStack {
                stack_id: template::stack_id(&self.m.region, &self.m.account, &name),
                description: self.r.scope_template(k).description.clone(),
                name,
                resources,
                outputs,
                parameters: env.parameters.clone(),
                conditions: env.conditions.clone(),
            });
        }
        self.m.outputs = stacks.iter().flat_map(|s| s.outputs.clone()).collect();
        self.m.parameters = stacks.iter().flat_map(|s| s.parameters.clone()).collect();
        self.m.conditions = stacks.iter().flat_map(|s| s.conditions.clone()).collect();
        self.m.stacks = stacks;
        Ok(())
    }
}

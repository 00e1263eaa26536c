//! Where the EC2 API's resources live: one internal stack of the
//! deployment, [`EC2_STACK`], whose template (JSON) holds them as
//! CloudFormation resources named by their ids ([`super::ids`]). Each
//! mutating call edits that template ([`change`]) and applies it with
//! every stack of the deployment through the reconciler, as a stack
//! update would: built and checked whole, nothing half-applied, and the
//! stack's template and the desired model written in one transaction.
//!
//! The stack is hidden from CloudFormation's API (DescribeStacks,
//! ListStacks, UpdateStack, DeleteStack: "does not exist") and from `vpc
//! apply`'s choice of stack; `vpc status` lists it as `ec2-api`.
use anyhow::anyhow;
use serde_json::{json, Map, Value};

use super::{Ctx, Ec2Error, Ec2Result, View};
use crate::cloudformation::{self, operations, Stack};

/// The stack of the EC2 API's resources.
pub const EC2_STACK: &str = "ec2-api";

/// Whether stack `name` is the EC2 API's (hidden from CloudFormation's API).
pub fn is_internal(name: &str) -> bool {
    name == EC2_STACK
}

/// The key of the template's `Metadata` where the API keeps what is not a
/// resource: tags of resources other stacks declare, and whether the
/// default VPC was made (or deleted).
pub const META: &str = crate::model::API_METADATA;

/// The API's template, as JSON: `Resources` and our `Metadata`.
#[derive(Debug, Clone, Default)]
pub struct Template {
    pub resources: Map<String, Value>,
    pub meta: Map<String, Value>,
}

impl Template {
    /// The API's template among `stacks` (empty when it has none yet).
    pub fn of(stacks: &[Stack]) -> Self {
        let Some(s) = stacks.iter().find(|s| s.name == EC2_STACK) else {
            return Self::default();
        };
        let doc: Value = serde_json::from_str(&s.template_body).unwrap_or_default();
        Self {
            resources: doc["Resources"].as_object().cloned().unwrap_or_default(),
            meta: doc["Metadata"][META]
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }
    }

    pub fn body(&self) -> String {
        serde_json::to_string_pretty(&json!({
            "AWSTemplateFormatVersion": "2010-09-09",
            "Description": "The EC2 API's resources (docs/ec2.md)",
            "Metadata": {META: self.meta},
            "Resources": self.resources,
        }))
        .unwrap_or_default()
    }

    /// Adds or replaces resource `id` (a replaced one keeps its
    /// `Metadata`); a new one records when it was made (`Created`, ns), the
    /// order Describe* lists what the API made in.
    pub fn put(&mut self, id: &str, kind: &str, props: Value) {
        let meta = self
            .resources
            .get(id)
            .and_then(|r| r.get("Metadata").cloned())
            .unwrap_or_else(|| json!({META: {"Created": created_now()}}));
        self.resources.insert(
            id.into(),
            json!({"Type": kind, "Properties": props, "Metadata": meta}),
        );
    }

    /// Sets our metadata `key` on the API's resource `id`.
    pub fn set_meta(&mut self, id: &str, key: &str, value: Value) {
        if let Some(r) = self.resources.get_mut(id) {
            r["Metadata"][META][key] = value;
        }
    }

    /// When the API made resource `id` (ns since the epoch), if it did.
    pub fn created(&self, id: &str) -> Option<u64> {
        self.resources.get(id)?["Metadata"][META]["Created"].as_u64()
    }

    pub fn remove(&mut self, id: &str) -> Option<Value> {
        self.resources.remove(id)
    }

    pub fn has(&self, id: &str) -> bool {
        self.resources.contains_key(id)
    }

    pub fn kind(&self, id: &str) -> Option<&str> {
        self.resources.get(id)?["Type"].as_str()
    }

    pub fn props(&self, id: &str) -> Option<&Value> {
        self.resources.get(id).map(|r| &r["Properties"])
    }

    pub fn props_mut(&mut self, id: &str) -> Option<&mut Map<String, Value>> {
        self.resources
            .get_mut(id)?
            .get_mut("Properties")?
            .as_object_mut()
    }

    /// Resources of type `kind`: (logical id, properties).
    pub fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> {
        self.resources
            .iter()
            .filter(move |(_, r)| r["Type"] == kind)
            .map(|(id, r)| (id, &r["Properties"]))
    }

    /// Ids of the resources of type `kind` whose property `field` is `value`.
    pub fn referring(&self, kind: &str, field: &str, value: &str) -> Vec<String> {
        self.of_type(kind)
            .filter(|(_, p)| p[field] == value)
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub fn flag(&self, k: &str) -> bool {
        self.meta.get(k) == Some(&Value::Bool(true))
    }

    pub fn set_flag(&mut self, k: &str, v: bool) {
        self.meta.insert(k.into(), Value::Bool(v));
    }

    /// Tags the API gave a resource another stack declares, by its id.
    pub fn overlay_tags(&self, physical: &str) -> Vec<(String, String)> {
        tags_of(&self.meta.get("Tags").cloned().unwrap_or_default()[physical])
    }

    pub fn set_overlay_tags(&mut self, physical: &str, tags: &[(String, String)]) {
        let all = self
            .meta
            .entry("Tags")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(o) = all.as_object_mut() {
            if tags.is_empty() {
                o.remove(physical);
            } else {
                o.insert(physical.into(), tags_value(tags));
            }
        }
    }
}

/// Now, in ns since the epoch, never the same twice in a process.
fn created_now() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let prev = LAST.fetch_max(now, Ordering::Relaxed);
    if prev >= now {
        LAST.fetch_add(1, Ordering::Relaxed) + 1
    } else {
        now
    }
}

/// CloudFormation's `Tags` (`[{Key, Value}]`) as pairs (literal ones).
pub fn tags_of(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some((
                        t["Key"].as_str()?.to_string(),
                        t["Value"].as_str().unwrap_or_default().to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn tags_value(tags: &[(String, String)]) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
    )
}

/// Removes the API's resource `id`, a resource of the kind `is_kind`
/// tells (`not_found` when it is none), refused as `View::owned` refuses a
/// template's: the delete operations without checks of their own.
pub fn delete(
    ctx: &Ctx,
    id: &str,
    is_kind: impl Fn(&View, &str) -> bool,
    not_found: impl Fn() -> Ec2Error,
) -> Ec2Result<()> {
    change(ctx, |t, v| {
        let l = v
            .logical(id)
            .filter(|l| is_kind(v, l))
            .ok_or_else(not_found)?
            .to_string();
        v.owned(&l, id)?;
        t.remove(&l);
        Ok(())
    })
}

/// Runs `f` on the API's template and applies the result with every stack
/// of the deployment, under the lock of stack operations; `f`'s answer
/// when the whole applied. An error of `f` or of the build changes
/// nothing.
pub fn change<T>(ctx: &Ctx, f: impl FnOnce(&mut Template, &View) -> Ec2Result<T>) -> Ec2Result<T> {
    let name = &ctx.name;
    let _serial = cloudformation::api::SERIAL
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let quotas = crate::state::State::load(name)?.quotas;
    let mut out = None;
    crate::reconcile::apply_stacks(name, |prior, mut stacks| {
        let view = View::new(name, prior, &stacks);
        let mut t = Template::of(&stacks);
        out = Some(f(&mut t, &view)?);
        store(name, &t, &mut stacks)?;
        let included: Vec<&Stack> = stacks.iter().filter(|s| s.applied()).collect();
        let model =
            operations::build(name, &included, quotas, Some(prior)).map_err(|e| anyhow!("{e}"))?;
        Ok((model, stacks))
    })?;
    out.ok_or_else(|| Ec2Error::new("InternalError", "the change did not run"))
}

/// Writes the API's template into `stacks`: a stack with no resources is
/// not applied (its `Metadata` stays).
fn store(name: &str, t: &Template, stacks: &mut Vec<Stack>) -> anyhow::Result<()> {
    let now = cloudformation::now_ms();
    let k = match stacks.iter().position(|s| s.name == EC2_STACK) {
        Some(k) => k,
        None => {
            let input = operations::StackInput {
                name: EC2_STACK.into(),
                template_body: String::new(),
                label: "the EC2 API".into(),
                ..Default::default()
            };
            let mut s = operations::new_stack(name, &input, now)?;
            // Its events would say nothing the API does not.
            s.events.clear();
            stacks.push(s);
            stacks.len() - 1
        }
    };
    let s = &mut stacks[k];
    s.template_body = t.body();
    s.status = if t.resources.is_empty() {
        "DELETE_COMPLETE"
    } else {
        "UPDATE_COMPLETE"
    }
    .into();
    s.status_reason = None;
    s.updated_ms = Some(now);
    s.deleted_ms = t.resources.is_empty().then_some(now);
    Ok(())
}

/// moto's `POST /moto-api/reset`: every resource of the API goes (the
/// default VPC comes back on the next call).
pub fn reset(name: &str) -> anyhow::Result<()> {
    let _serial = cloudformation::api::SERIAL
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let quotas = crate::state::State::load(name)?.quotas;
    crate::reconcile::apply_stacks(name, |prior, mut stacks| {
        stacks.retain(|s| s.name != EC2_STACK);
        let included: Vec<&Stack> = stacks.iter().filter(|s| s.applied()).collect();
        let model =
            operations::build(name, &included, quotas, Some(prior)).map_err(|e| anyhow!("{e}"))?;
        Ok((model, stacks))
    })?;
    Ok(())
}

/// A build's or the reconciler's refusal as EC2 says it: the code the
/// message starts a clause with (`InvalidRouteTableID.NotFound: ...`,
/// `DependencyViolation: ...`), else `InvalidParameterValue`.
pub fn model_error(message: &str) -> Ec2Error {
    // The API's resources by their EC2 ids, not their logical ids.
    static IDS: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let ids = IDS.get_or_init(|| {
        regex::Regex::new(&format!(
            r"\b({})([0-9a-f]{{{}}})\b",
            super::ids::PREFIXES.join("|"),
            super::ids::HEX
        ))
        .expect("constant")
    });
    let message = message
        .strip_prefix(&format!("stack {EC2_STACK}: "))
        .unwrap_or(message);
    let message = ids.replace_all(message, "$1-$2");
    let message = message.as_ref();
    static CODE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = CODE.get_or_init(|| {
        regex::Regex::new(r"(?:^|: )([A-Z][A-Za-z0-9]+(?:\.[A-Z][A-Za-z0-9]+)?): (.*)$")
            .expect("constant")
    });
    match re.captures(message) {
        Some(c) if &c[1] != "Resources" => Ec2Error::new(&c[1], c[2].to_string()),
        _ => Ec2Error::invalid(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_errors_take_the_code_they_name() {
        let e = model_error("stack ec2-api: Resources.rtb0123.Properties.RouteTableId: InvalidRouteTableID.NotFound: \"x\"");
        assert_eq!(e.code, "InvalidRouteTableID.NotFound");
        assert_eq!(e.message, "\"x\"");
        let e = model_error("DependencyViolation: The subnet 's' has dependencies and cannot be deleted (function f is in it)");
        assert_eq!(e.code, "DependencyViolation");
        let e = model_error(
            "Resources.X.Properties.CidrBlock: 10.0.0.0/8: a subnet's block is between /16 and /28",
        );
        assert_eq!(e.code, "InvalidParameterValue");
        let e = model_error(
            r#"stack ec2-api: Resources.subnet0123456789abcdef0.Properties.VpcId: "vpc0123456789abcdef0" is not an AWS::EC2::VPC of this template"#,
        );
        assert_eq!(
            e.message,
            r#"Resources.subnet-0123456789abcdef0.Properties.VpcId: "vpc-0123456789abcdef0" is not an AWS::EC2::VPC of this template"#
        );
    }

    #[test]
    fn the_template_round_trips_and_keeps_tags_of_others() {
        let mut t = Template::default();
        t.put(
            "vpc0123456789abcdef01",
            "AWS::EC2::VPC",
            json!({"CidrBlock": "10.0.0.0/16"}),
        );
        t.set_overlay_tags("vpc-1", &[("k".into(), "v".into())]);
        let s = Stack {
            name: EC2_STACK.into(),
            template_body: t.body(),
            ..Default::default()
        };
        let back = Template::of(&[s]);
        assert_eq!(back.kind("vpc0123456789abcdef01"), Some("AWS::EC2::VPC"));
        assert_eq!(
            back.overlay_tags("vpc-1"),
            [("k".to_string(), "v".to_string())]
        );
        assert_eq!(
            back.referring("AWS::EC2::VPC", "CidrBlock", "10.0.0.0/16"),
            ["vpc0123456789abcdef01"]
        );
    }
}

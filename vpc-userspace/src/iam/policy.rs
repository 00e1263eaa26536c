//! IAM policy documents: parsed and checked as IAM checks them
//! (`MalformedPolicyDocument` in IAM's words), and evaluated with AWS's
//! logic for identity-based policies: an explicit `Deny` wins over any
//! `Allow`, an `Allow` over the implicit deny
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html>).
//!
//! A statement applies when its `Action` (or `NotAction`), its `Resource`
//! (or `NotResource`) and every operator of its `Condition`
//! ([`super::condition`]) match the request. Actions match case-insensitively
//! with `*` and `?`; resources match ARN by ARN, each of the six
//! colon-separated fields on its own with `*` and `?` (as `ArnLike`; a
//! trailing `*` of a shorter pattern spans the remaining fields).
use std::collections::BTreeMap;

use serde_json::Value;

use super::condition::{self, Condition};

/// A request as policies see it: the action (`lambda:CreateFunction`), the
/// resource's ARN and the request context's keys.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub action: String,
    pub resource: String,
    pub context: Context,
}

/// The request context: each key (lower case: condition keys are
/// case-insensitive) with its values. A single-valued key has one value; a
/// key that is absent is not in the map.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context(BTreeMap<String, Vec<String>>);

impl Context {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `values` (a multivalued key may have none: present
    /// and empty, as an empty list in the request).
    pub fn set(&mut self, key: &str, values: Vec<String>) -> &mut Self {
        self.0.insert(key.to_ascii_lowercase(), values);
        self
    }

    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.0.get(&key.to_ascii_lowercase()).map(Vec::as_slice)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// A list of patterns that matches, or (`Not...`) matches what none of
/// them does.
#[derive(Debug, Clone, PartialEq)]
struct Patterns {
    values: Vec<String>,
    not: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    actions: Patterns,
    /// `None` in a trust policy (its subject is the role itself).
    resources: Option<Patterns>,
    conditions: Vec<Condition>,
    /// A trust policy's `Principal` (or `NotPrincipal`).
    principal: Option<Value>,
    /// `NotPrincipal`: the statement is about every principal but those.
    not_principal: bool,
}

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub statements: Vec<Statement>,
}

/// What evaluation decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// A `Deny` statement matched.
    ExplicitDeny,
    /// No statement allowed it.
    ImplicitDeny,
}

/// Which kind of document: an identity policy (inline or managed: no
/// `Principal`, `Resource` required) or a role's trust policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Identity,
    Trust,
}

/// IAM's `MalformedPolicyDocument` messages.
pub const SYNTAX: &str = "Syntax errors in policy.";

impl Policy {
    /// Parses a document given as JSON text (the IAM API's form).
    pub fn parse_text(text: &str, kind: Kind) -> Result<Self, String> {
        let v: Value = serde_json::from_str(text).map_err(|_| SYNTAX.to_string())?;
        Self::parse(&v, kind)
    }

    /// Parses a document given as a JSON value (a template's form; a
    /// string is JSON text, as CloudFormation also takes it).
    pub fn parse(doc: &Value, kind: Kind) -> Result<Self, String> {
        if let Value::String(s) = doc {
            return Self::parse_text(s, kind);
        }
        let Value::Object(o) = doc else {
            return Err(SYNTAX.into());
        };
        if let Some(k) = o
            .keys()
            .find(|k| !["Version", "Id", "Statement"].contains(&k.as_str()))
        {
            return Err(format!("Unknown field {k}"));
        }
        if let Some(v) = o.get("Version") {
            if !matches!(v.as_str(), Some("2012-10-17" | "2008-10-17")) {
                return Err("The policy failed legacy parsing".into());
            }
        }
        let statements = match o.get("Statement") {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(s @ Value::Object(_)) => vec![s],
            _ => return Err(SYNTAX.into()),
        };
        let statements = statements
            .into_iter()
            .map(|s| statement(s, kind))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { statements })
    }

    /// Does this trust policy let `service` (`lambda.amazonaws.com`)
    /// assume the role: an `Allow` of `sts:AssumeRole` whose `Principal`
    /// names the service (or is `*`), and no `Deny` of it for the service?
    /// (Conditions are not evaluated: the service's request context is not
    /// modelled.)
    pub fn trusts_service(&self, service: &str) -> bool {
        let names = |s: &Statement| {
            let named = match &s.principal {
                Some(Value::String(x)) => x == "*",
                Some(Value::Object(o)) => {
                    let has = |k: &str, x: &str| {
                        o.get(k)
                            .and_then(strings)
                            .is_some_and(|v| v.iter().any(|y| y == x))
                    };
                    has("AWS", "*") || has("Service", service)
                }
                _ => false,
            };
            named != s.not_principal
        };
        let assume = |s: &Statement| {
            let hit = s
                .actions
                .values
                .iter()
                .any(|p| glob(p, "sts:AssumeRole", true));
            hit != s.actions.not
        };
        let allowed = self
            .statements
            .iter()
            .any(|s| s.effect == Effect::Allow && assume(s) && names(s));
        let denied = self
            .statements
            .iter()
            .any(|s| s.effect == Effect::Deny && assume(s) && names(s));
        allowed && !denied
    }

    /// What this policy alone decides about `r`.
    pub fn decide(&self, r: &Request) -> Decision {
        evaluate([self], r)
    }
}

fn strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_string)).collect(),
        _ => None,
    }
}

/// `Action` or `NotAction` (`Resource` or `NotResource`): exactly one.
fn patterns(
    o: &serde_json::Map<String, Value>,
    key: &str,
    missing: &str,
) -> Result<Option<Patterns>, String> {
    let not = format!("Not{key}");
    match (o.get(key), o.get(&not)) {
        (Some(_), Some(_)) => Err(format!("Statement can not contain both {key} and {not}.")),
        (None, None) => {
            if missing.is_empty() {
                Ok(None)
            } else {
                Err(missing.into())
            }
        }
        (Some(v), None) => Ok(Some(Patterns {
            values: strings(v).ok_or(SYNTAX)?,
            not: false,
        })),
        (None, Some(v)) => Ok(Some(Patterns {
            values: strings(v).ok_or(SYNTAX)?,
            not: true,
        })),
    }
}

fn statement(s: &Value, kind: Kind) -> Result<Statement, String> {
    let Value::Object(o) = s else {
        return Err(SYNTAX.into());
    };
    const FIELDS: &[&str] = &[
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    ];
    if let Some(k) = o.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!("Unknown field {k}"));
    }
    let effect = match o.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        Some(e) => return Err(format!("Invalid effect: {e}")),
        None => return Err("Missing required field Effect".into()),
    };
    if o.contains_key("Principal") && o.contains_key("NotPrincipal") {
        return Err("Statement can not contain both Principal and NotPrincipal.".into());
    }
    let has_principal = o.contains_key("Principal") || o.contains_key("NotPrincipal");
    match kind {
        Kind::Identity if has_principal => {
            return Err("Policy document should not specify a principal.".into())
        }
        Kind::Trust if !has_principal => {
            return Err("AssumeRolepolicy contained an invalid principal: missing Principal".into())
        }
        _ => {}
    }
    let actions =
        patterns(o, "Action", "Policy statement must contain actions.")?.expect("required");
    for a in &actions.values {
        if a != "*" && !a.contains(':') {
            return Err(
                "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.".into(),
            );
        }
    }
    let resources = match kind {
        Kind::Identity => patterns(o, "Resource", "Policy statement must contain resources.")?,
        Kind::Trust => patterns(o, "Resource", "")?,
    };
    let conditions = match o.get("Condition") {
        None => vec![],
        Some(c) => condition::parse(c)?,
    };
    Ok(Statement {
        sid: o.get("Sid").and_then(Value::as_str).map(str::to_string),
        effect,
        actions,
        resources,
        conditions,
        principal: o.get("Principal").or(o.get("NotPrincipal")).cloned(),
        not_principal: o.contains_key("NotPrincipal"),
    })
}

/// `*` any run of characters, `?` one; `fold`: case-insensitive.
pub fn glob(pattern: &str, value: &str, fold: bool) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = if fold {
        (
            pattern.to_lowercase().chars().collect(),
            value.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), value.chars().collect())
    };
    // Iterative matching with backtracking to the last `*`.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < v.len() {
        if i < p.len() && (p[i] == '?' || p[i] == v[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    while i < p.len() && p[i] == '*' {
        i += 1;
    }
    i == p.len()
}

/// An ARN against an ARN pattern, as `Resource` and `ArnLike` match them:
/// `*` alone matches any ARN; otherwise each of the six colon-separated
/// fields on its own (the last keeps its colons: `function:f:1`), with `*`
/// and `?`; a pattern of fewer fields ending in `*` matches the ARN's
/// remaining fields with its last.
pub fn arn_like(pattern: &str, arn: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    // "If the * wildcard is the last character of a resource ARN segment,
    // it can expand to match beyond colon boundaries": a pattern of fewer
    // fields whose last ends in `*` (`arn:aws:lambda:*`) matches the rest
    // of the ARN with its last field.
    let n = if p.len() < 6 && p.last().is_some_and(|l| l.ends_with('*')) {
        p.len()
    } else {
        6
    };
    let a: Vec<&str> = arn.splitn(n, ':').collect();
    if p.len() != n || a.len() != n {
        return pattern == arn;
    }
    p.iter().zip(&a).all(|(p, a)| glob(p, a, false))
}

impl Statement {
    fn applies(&self, r: &Request) -> bool {
        let action = self.actions.values.iter().any(|p| glob(p, &r.action, true));
        if action == self.actions.not {
            return false;
        }
        if let Some(res) = &self.resources {
            let hit = res.values.iter().any(|p| arn_like(p, &r.resource));
            if hit == res.not {
                return false;
            }
        }
        self.conditions.iter().all(|c| c.holds(&r.context))
    }
}

/// AWS's evaluation over the policies that apply to a principal (its
/// inline and managed policies, its groups'): any matching `Deny` is an
/// explicit deny; else any matching `Allow` allows; else implicit deny.
pub fn evaluate<'a>(policies: impl IntoIterator<Item = &'a Policy>, r: &Request) -> Decision {
    let mut allowed = false;
    for p in policies {
        for s in &p.statements {
            if s.applies(r) {
                match s.effect {
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow => allowed = true,
                }
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

#[cfg(test)]
mod tests;

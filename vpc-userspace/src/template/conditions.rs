//! `Conditions`: each evaluated once from parameters and pseudo
//! parameters (`Fn::Equals`, `Fn::And`, `Fn::Or`, `Fn::Not`, `Condition`
//! naming another), then applied to the template: a resource or output
//! whose `Condition` is false does not exist, every `Fn::If` becomes the
//! branch its condition chooses, and `Ref: AWS::NoValue` removes the
//! property or list element it stands for.
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{intrinsics::Resolver, Env, ModelError, Result, Template};

/// Every condition's value.
pub(super) fn evaluate(t: &Template, r: &Resolver) -> Result<BTreeMap<String, bool>> {
    let mut e = Evaluator {
        t,
        r,
        done: BTreeMap::new(),
        visiting: vec![],
    };
    for name in t.conditions.keys() {
        e.named(name, &format!("Conditions.{name}"))?;
    }
    Ok(e.done)
}

struct Evaluator<'t, 'r> {
    t: &'t Template,
    r: &'r Resolver<'t>,
    done: BTreeMap<String, bool>,
    /// The conditions being evaluated, outermost first (a cycle's path).
    visiting: Vec<String>,
}

impl Evaluator<'_, '_> {
    fn named(&mut self, name: &str, path: &str) -> Result<bool> {
        if let Some(v) = self.done.get(name) {
            return Ok(*v);
        }
        let Some(expr) = self.t.conditions.get(name) else {
            return Err(ModelError::new(
                path,
                format!("Template format error: Unresolved condition dependency {name}: no such condition in Conditions"),
            ));
        };
        if let Some(i) = self.visiting.iter().position(|n| n == name) {
            let mut cycle = self.visiting[i..].to_vec();
            cycle.sort();
            return Err(ModelError::new(
                "Conditions",
                format!(
                    "Template format error: Circular dependency between conditions: [{}]",
                    cycle.join(", ")
                ),
            ));
        }
        self.visiting.push(name.to_string());
        let v = self.expr(expr, &format!("Conditions.{name}"))?;
        self.visiting.pop();
        self.done.insert(name.to_string(), v);
        Ok(v)
    }

    fn list<'v>(
        &self,
        arg: &'v Value,
        f: &str,
        min: usize,
        max: usize,
        path: &str,
    ) -> Result<&'v [Value]> {
        match arg {
            Value::Array(a) if (min..=max).contains(&a.len()) => Ok(a),
            _ => Err(ModelError::new(
                path,
                if min == max {
                    format!("Template error: {f} requires a list of {min} element(s)")
                } else {
                    format!("Template error: {f} requires a list of {min} to {max} conditions")
                },
            )),
        }
    }

    fn expr(&mut self, v: &Value, path: &str) -> Result<bool> {
        let err = || {
            ModelError::new(
                path,
                "Template format error: a condition is Fn::Equals, Fn::And, Fn::Or, Fn::Not or Condition",
            )
        };
        let Value::Object(m) = v else {
            return Err(err());
        };
        if m.len() != 1 {
            return Err(err());
        }
        let (f, arg) = m.iter().next().expect("one entry");
        let path = format!("{path}.{f}");
        match f.as_str() {
            "Fn::Equals" => {
                let a = self.list(arg, f, 2, 2, &path)?;
                let x = self.r.resolve_inner(&a[0], &format!("{path}[0]"))?;
                let y = self.r.resolve_inner(&a[1], &format!("{path}[1]"))?;
                Ok(comparable(&x) == comparable(&y))
            }
            "Fn::And" | "Fn::Or" => {
                let a = self.list(arg, f, 2, 10, &path)?;
                let mut vals = Vec::with_capacity(a.len());
                for (i, c) in a.iter().enumerate() {
                    vals.push(self.expr(c, &format!("{path}[{i}]"))?);
                }
                Ok(if f == "Fn::And" {
                    vals.iter().all(|v| *v)
                } else {
                    vals.iter().any(|v| *v)
                })
            }
            "Fn::Not" => {
                let a = self.list(arg, f, 1, 1, &path)?;
                Ok(!self.expr(&a[0], &format!("{path}[0]"))?)
            }
            "Condition" => match arg {
                Value::String(name) => self.named(name, &path),
                _ => Err(ModelError::new(
                    path,
                    "Template format error: Every Condition member must be a string.",
                )),
            },
            _ => Err(err()),
        }
    }
}

/// A value as `Fn::Equals` compares it: scalars as strings (`3` equals
/// `"3"`: parameters are strings), lists element by element.
pub(super) fn comparable(v: &Value) -> Value {
    match v {
        Value::Number(_) | Value::Bool(_) => Value::String(v.to_string()),
        Value::Array(a) => Value::Array(a.iter().map(comparable).collect()),
        v => v.clone(),
    }
}

/// Removes what a false condition excludes and chooses every `Fn::If`'s
/// branch; records the removed resources in `env.removed`.
pub(super) fn apply(t: &mut Template, env: &mut Env) -> Result<()> {
    let conds = env.conditions.clone();
    let holds = |c: &Option<String>, path: &str| -> Result<bool> {
        match c {
            None => Ok(true),
            Some(c) => conds.get(c).copied().ok_or_else(|| {
                ModelError::new(
                    path,
                    format!("Template format error: Unresolved condition dependency {c}: no such condition in Conditions"),
                )
            }),
        }
    };
    let mut kept = BTreeMap::new();
    for (id, mut r) in std::mem::take(&mut t.resources) {
        let path = format!("Resources.{id}");
        if !holds(&r.condition, &format!("{path}.Condition"))? {
            env.removed.insert(id);
            continue;
        }
        r.properties = match select(
            &Value::Object(std::mem::take(&mut r.properties)),
            &conds,
            &format!("{path}.Properties"),
        )? {
            Some(Value::Object(p)) => p,
            None => Map::new(),
            Some(_) => {
                return Err(ModelError::new(
                    format!("{path}.Properties"),
                    "must be a mapping",
                ))
            }
        };
        r.metadata = match select(
            &Value::Object(std::mem::take(&mut r.metadata)),
            &conds,
            &format!("{path}.Metadata"),
        )? {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        kept.insert(id, r);
    }
    t.resources = kept;
    let mut outputs = BTreeMap::new();
    for (name, o) in std::mem::take(&mut t.outputs) {
        let path = format!("Outputs.{name}");
        let condition = match o.get("Condition") {
            None => None,
            Some(Value::String(c)) => Some(c.clone()),
            Some(_) => {
                return Err(ModelError::new(
                    format!("{path}.Condition"),
                    "Template format error: Every Condition member must be a string.",
                ))
            }
        };
        if !holds(&condition, &format!("{path}.Condition"))? {
            continue;
        }
        if let Some(o) = select(&o, &conds, &path)? {
            outputs.insert(name, o);
        }
    }
    t.outputs = outputs;
    t.metadata = match select(
        &Value::Object(std::mem::take(&mut t.metadata)),
        &conds,
        "Metadata",
    )? {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    Ok(())
}

/// `v` with every `Fn::If` replaced by its chosen branch; `None` for
/// `AWS::NoValue` (the caller drops the key or element).
fn select(v: &Value, conds: &BTreeMap<String, bool>, path: &str) -> Result<Option<Value>> {
    Ok(match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("Fn::If") => {
            let usage = "Template error: Fn::If requires a list argument with three elements";
            let Value::Array(a) = &m["Fn::If"] else {
                return Err(ModelError::new(path, usage));
            };
            let [c, yes, no] = a.as_slice() else {
                return Err(ModelError::new(path, usage));
            };
            let Value::String(c) = c else {
                return Err(ModelError::new(
                    path,
                    "Template error: Fn::If's first element names a condition",
                ));
            };
            match conds.get(c) {
                Some(true) => select(yes, conds, path)?,
                Some(false) => select(no, conds, path)?,
                None => {
                    return Err(ModelError::new(
                        path,
                        format!(
                            "Template format error: Unresolved condition dependency {c} in Fn::If"
                        ),
                    ))
                }
            }
        }
        Value::Object(m)
            if m.len() == 1 && m.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue") =>
        {
            None
        }
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                if let Some(x) = select(x, conds, &format!("{path}.{k}"))? {
                    out.insert(k.clone(), x);
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(a) => {
            let mut out = vec![];
            for (i, x) in a.iter().enumerate() {
                if let Some(x) = select(x, conds, &format!("{path}[{i}]"))? {
                    out.push(x);
                }
            }
            Some(Value::Array(out))
        }
        v => Some(v.clone()),
    })
}

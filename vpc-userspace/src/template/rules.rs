//! `Rules`: each rule whose `RuleCondition` holds (or that has none) has
//! its `Assertions` checked against the parameter values before anything
//! is built; one that fails refuses the stack with its
//! `AssertDescription`. Rule functions: `Fn::And`, `Fn::Or`, `Fn::Not`,
//! `Fn::Equals`, `Fn::Contains`, `Fn::EachMemberEquals`,
//! `Fn::EachMemberIn`, `Fn::RefAll`; `Fn::ValueOf` and `Fn::ValueOfAll`
//! read attributes of account resources this project does not have, and
//! are refused naming them.
use serde_json::Value;

use super::{
    conditions::comparable, intrinsics::Resolver, scalar_string, ModelError, Result, Template,
};

/// Checks every rule; the first failing assertion is the error.
pub(super) fn check(t: &Template, r: &Resolver) -> Result<()> {
    for (name, rule) in &t.rules {
        let path = format!("Rules.{name}");
        let Value::Object(rule) = rule else {
            return Err(ModelError::new(path, "a rule must be a mapping"));
        };
        if let Some(k) = rule
            .keys()
            .find(|k| *k != "RuleCondition" && *k != "Assertions")
        {
            return Err(ModelError::new(
                format!("{path}.{k}"),
                format!("Template format error: Invalid rule property '{k}' (RuleCondition and Assertions)"),
            ));
        }
        if let Some(c) = rule.get("RuleCondition") {
            if !truth(t, r, c, &format!("{path}.RuleCondition"))? {
                continue;
            }
        }
        let Some(Value::Array(asserts)) = rule.get("Assertions") else {
            return Err(ModelError::new(
                format!("{path}.Assertions"),
                "Template format error: every rule needs a list of Assertions",
            ));
        };
        for (i, a) in asserts.iter().enumerate() {
            let apath = format!("{path}.Assertions[{i}]");
            let Some(expr) = a.get("Assert") else {
                return Err(ModelError::new(
                    apath,
                    "Template format error: every assertion needs an Assert",
                ));
            };
            if !truth(t, r, expr, &format!("{apath}.Assert"))? {
                let what = match a.get("AssertDescription").and_then(Value::as_str) {
                    Some(d) => d.to_string(),
                    None => format!("Template validation error: rule {name} failed"),
                };
                return Err(ModelError::new(apath, what));
            }
        }
    }
    Ok(())
}

fn list<'v>(
    arg: &'v Value,
    f: &str,
    n: std::ops::RangeInclusive<usize>,
    path: &str,
) -> Result<&'v [Value]> {
    match arg {
        Value::Array(a) if n.contains(&a.len()) => Ok(a),
        _ => Err(ModelError::new(
            path,
            format!(
                "Template error: {f} takes a list of {} to {} elements",
                n.start(),
                n.end()
            ),
        )),
    }
}

/// A rule function's truth.
fn truth(t: &Template, r: &Resolver, v: &Value, path: &str) -> Result<bool> {
    let err = || {
        ModelError::new(
            path,
            "Template error: a rule condition or assertion is a rule function (Fn::And, Fn::Contains, Fn::EachMemberEquals, Fn::EachMemberIn, Fn::Equals, Fn::Not, Fn::Or)",
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
        "Fn::And" | "Fn::Or" => {
            let a = list(arg, f, 2..=10, &path)?;
            let vals = a
                .iter()
                .enumerate()
                .map(|(i, x)| truth(t, r, x, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>>>()?;
            Ok(if f == "Fn::And" {
                vals.iter().all(|v| *v)
            } else {
                vals.iter().any(|v| *v)
            })
        }
        "Fn::Not" => Ok(!truth(
            t,
            r,
            &list(arg, f, 1..=1, &path)?[0],
            &format!("{path}[0]"),
        )?),
        "Fn::Equals" => {
            let a = list(arg, f, 2..=2, &path)?;
            Ok(comparable(&value(t, r, &a[0], &path)?) == comparable(&value(t, r, &a[1], &path)?))
        }
        "Fn::Contains" => {
            let a = list(arg, f, 2..=2, &path)?;
            let hay = strings(&value(t, r, &a[0], &path)?, f, &path)?;
            let needle = scalar_string(&value(t, r, &a[1], &path)?);
            Ok(hay.contains(&needle))
        }
        "Fn::EachMemberEquals" => {
            let a = list(arg, f, 2..=2, &path)?;
            let xs = strings(&value(t, r, &a[0], &path)?, f, &path)?;
            let want = scalar_string(&value(t, r, &a[1], &path)?);
            Ok(xs.iter().all(|x| *x == want))
        }
        "Fn::EachMemberIn" => {
            let a = list(arg, f, 2..=2, &path)?;
            let xs = strings(&value(t, r, &a[0], &path)?, f, &path)?;
            let allowed = strings(&value(t, r, &a[1], &path)?, f, &path)?;
            Ok(xs.iter().all(|x| allowed.contains(x)))
        }
        _ => Err(err()),
    }
}

fn strings(v: &Value, f: &str, path: &str) -> Result<Vec<String>> {
    match v {
        Value::Array(a) => Ok(a.iter().map(scalar_string).collect()),
        Value::String(s) => Ok(vec![s.clone()]),
        _ => Err(ModelError::new(
            path,
            format!("Template error: {f} takes lists of strings"),
        )),
    }
}

/// A value in a rule: `Fn::RefAll`, or what the resolver makes of it
/// (`Ref` to parameters and pseudo parameters, `Fn::Join`, ...).
fn value(t: &Template, r: &Resolver, v: &Value, path: &str) -> Result<Value> {
    if let Value::Object(m) = v {
        if m.len() == 1 {
            let (f, arg) = m.iter().next().expect("one entry");
            match f.as_str() {
                "Fn::RefAll" => {
                    let Value::String(ty) = arg else {
                        return Err(ModelError::new(path, "Template error: Fn::RefAll takes a parameter type"));
                    };
                    let mut out = vec![];
                    for (name, decl) in &t.parameters {
                        if decl.get("Type").and_then(Value::as_str) == Some(ty) {
                            match r.params.get(name) {
                                Some(Value::Array(a)) => out.extend(a.iter().cloned()),
                                Some(v) => out.push(v.clone()),
                                None => {}
                            }
                        }
                    }
                    return Ok(Value::Array(out));
                }
                "Fn::ValueOf" | "Fn::ValueOfAll" => {
                    return Err(ModelError::new(
                        path,
                        format!("{f} reads attributes of resources that exist in the account before the stack; this project has none outside the stack, so it is not supported"),
                    ))
                }
                _ => {}
            }
        }
    }
    r.resolve_inner(v, path)
}

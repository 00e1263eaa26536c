//! What each resource depends on — `Ref`, `Fn::GetAtt` and `Fn::Sub`
//! references to other resources, and `DependsOn` — checked as
//! CloudFormation checks it before creating anything: every name is a
//! resource that exists (not one a false condition removed), and there is
//! no cycle.
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{
    intrinsics::{sub_parts, unresolved, SubPart},
    Env, ModelError, Result, Template,
};

/// Checks references and `DependsOn` of resources and outputs; refuses
/// cycles.
pub(super) fn check(t: &Template, env: &Env) -> Result<()> {
    let mut graph: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (id, r) in &t.resources {
        let mut names = vec![];
        walk(
            &Value::Object(r.properties.clone()),
            env,
            &format!("Resources.{id}.Properties"),
            &mut names,
        );
        for (i, d) in r.depends_on.iter().enumerate() {
            names.push((d.clone(), format!("Resources.{id}.DependsOn[{i}]")));
        }
        let deps = graph.entry(id.as_str()).or_default();
        for (name, path) in names {
            if !t.resources.contains_key(&name) {
                return Err(ModelError::new(path, unresolved(&name, "Resources")));
            }
            deps.insert(name);
        }
    }
    for (name, o) in &t.outputs {
        let mut names = vec![];
        walk(o, env, &format!("Outputs.{name}"), &mut names);
        if let Some((n, path)) = names
            .into_iter()
            .find(|(n, _)| !t.resources.contains_key(n))
        {
            return Err(ModelError::new(path, unresolved(&n, "Outputs")));
        }
    }
    if let Some(cycle) = find_cycle(&graph) {
        return Err(ModelError::new(
            "Resources",
            format!(
                "Circular dependency between resources: [{}]",
                cycle.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Names a value refers to that are not parameters or pseudo parameters
/// (resources, or nothing at all), with where.
fn walk(v: &Value, env: &Env, path: &str, out: &mut Vec<(String, String)>) {
    let not_param = |n: &str| !env.params.contains_key(n) && !n.starts_with("AWS::");
    match v {
        Value::Object(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next().expect("one entry");
            let sub = format!("{path}.{k}");
            match (k.as_str(), arg) {
                ("Ref", Value::String(n)) => {
                    if not_param(n) {
                        out.push((n.clone(), path.to_string()));
                    }
                }
                ("Fn::GetAtt", Value::Array(a)) => {
                    if let Some(n) = a.first().and_then(Value::as_str) {
                        out.push((n.to_string(), path.to_string()));
                    }
                    if let Some(attr) = a.get(1) {
                        walk(attr, env, &sub, out);
                    }
                }
                ("Fn::GetAtt", Value::String(s)) => {
                    let n = s.split_once('.').map_or(s.as_str(), |(n, _)| n);
                    out.push((n.to_string(), path.to_string()));
                }
                ("Fn::Sub", arg) => {
                    let (text, vars) = match arg {
                        Value::String(s) => (Some(s.as_str()), None),
                        Value::Array(a) => (a.first().and_then(Value::as_str), a.get(1)),
                        _ => (None, None),
                    };
                    if let Some(vars) = vars {
                        walk(vars, env, &sub, out);
                    }
                    let declared = |n: &str| vars.and_then(|v| v.get(n)).is_some();
                    for part in text.map(sub_parts).unwrap_or_default() {
                        if let SubPart::Var(n) = part {
                            if declared(n) {
                                continue;
                            }
                            let res = match n.split_once('.') {
                                Some((r, _)) if !n.starts_with("AWS::") => r,
                                _ => n,
                            };
                            if not_param(res) {
                                out.push((res.to_string(), path.to_string()));
                            }
                        }
                    }
                }
                _ => walk(arg, env, &sub, out),
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                walk(x, env, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                walk(x, env, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The members of a cycle of `graph`, sorted, if there is one.
fn find_cycle(graph: &BTreeMap<&str, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit<'g>(
        n: &'g str,
        graph: &'g BTreeMap<&str, BTreeSet<String>>,
        marks: &mut BTreeMap<&'g str, Mark>,
        stack: &mut Vec<&'g str>,
    ) -> Option<Vec<String>> {
        match marks.get(n) {
            Some(Mark::Done) => return None,
            Some(Mark::Visiting) => {
                let i = stack.iter().position(|s| *s == n).expect("on the stack");
                let mut c: Vec<String> = stack[i..].iter().map(|s| s.to_string()).collect();
                c.sort();
                return Some(c);
            }
            None => {}
        }
        marks.insert(n, Mark::Visiting);
        stack.push(n);
        for d in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(d.as_str(), graph, marks, stack) {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(n, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut marks, &mut vec![]) {
            return Some(c);
        }
    }
    None
}

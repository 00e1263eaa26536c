//! SAM: `Transform: AWS::Serverless-2016-10-31`, expanded as CloudFormation
//! expands it, by the reference implementation itself: aws-sam-translator
//! (PyPI), run offline in the provisioned venv (`sam.py`, given the
//! template, the parameter values and the pseudo parameters on stdin). The
//! expanded template replaces the written one before anything else reads
//! it, so SAM's resources become the CloudFormation this project knows
//! (`AWS::Lambda::Function`, `AWS::IAM::Role`, `AWS::Lambda::Url`, ...).
//! A function's local `CodeUri` stays a local path (`Code: ./src`).
use std::{
    collections::HashMap,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde_json::{json, Map, Value};

use super::{Context, ModelError, Result};

/// SAM's transform.
pub const SAM_TRANSFORM: &str = "AWS::Serverless-2016-10-31";

/// The translator's entry point (run with `python -c`).
const TRANSLATE: &str = include_str!("sam.py");

/// The transforms a template document names (`Transform`: a name or a
/// list), leaving anything else for the parser to refuse.
fn transforms(doc: &Value) -> Vec<&str> {
    match doc.get("Transform") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// Whether the document asks for SAM's transform.
pub fn is_sam(doc: &Value) -> bool {
    transforms(doc).contains(&SAM_TRANSFORM)
}

/// The Python that runs the translator: the provisioned venv's.
pub fn python() -> PathBuf {
    crate::lambda::runtime::runtime_dir().join("pyenv/bin/python")
}

/// The document with SAM's transform applied, when it asks for it (else
/// as it is). `params` are the stack's parameter values (as `vpc up -p`
/// gives them), `ctx` its pseudo parameters, `dir` the template's
/// directory (local `CodeUri`s are relative to it; `None`: the current
/// directory). The translator removes
/// `Transform`; `AWS::LanguageExtensions`, when listed too, is kept for
/// the parser.
pub fn expand(
    doc: Value,
    params: &HashMap<String, String>,
    ctx: &Context,
    dir: Option<&Path>,
) -> Result<Value> {
    if !is_sam(&doc) {
        return Ok(doc);
    }
    let others: Vec<String> = transforms(&doc)
        .into_iter()
        .filter(|t| *t != SAM_TRANSFORM)
        .map(str::to_string)
        .collect();
    let mut values: Map<String, Value> = params
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    for (k, v) in [
        ("AWS::Region", ctx.region.clone()),
        ("AWS::AccountId", ctx.account.clone()),
        ("AWS::StackName", ctx.stack_name.clone()),
        (
            "AWS::StackId",
            super::stack_id(&ctx.region, &ctx.account, &ctx.stack_name),
        ),
        ("AWS::Partition", "aws".into()),
        ("AWS::URLSuffix", "amazonaws.com".into()),
    ] {
        values.insert(k.into(), Value::String(v));
    }
    let dir = dir.unwrap_or(Path::new("."));
    let request =
        json!({"template": doc, "parameter_values": values, "region": ctx.region, "dir": dir});
    let answer = run(&request)?;
    let mut out = from_answer(answer)?;
    if !others.is_empty() {
        if let Value::Object(o) = &mut out {
            let keep: Vec<Value> = others.into_iter().map(Value::String).collect();
            o.insert("Transform".into(), Value::Array(keep));
        }
    }
    Ok(out)
}

fn unavailable(why: &str) -> ModelError {
    ModelError::new(
        "Transform",
        format!(
            "{SAM_TRANSFORM} is expanded by aws-sam-translator (PyPI), run with {}: {why}; `cargo xtask provision` installs it (or set VPC_RUNTIME_DIR to a directory whose pyenv has it)",
            python().display()
        ),
    )
}

/// Runs the translator on `request`: its JSON answer.
fn run(request: &Value) -> Result<Value> {
    let py = python();
    if !py.exists() {
        return Err(unavailable("no such interpreter"));
    }
    let mut child = Command::new(&py)
        .args(["-c", TRANSLATE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| unavailable(&e.to_string()))?;
    let body = serde_json::to_vec(request).expect("JSON");
    let mut stdin = child.stdin.take().expect("piped");
    // Written beside the read: a large template must not fill the pipe
    // while the child's output waits.
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let out = child
        .wait_with_output()
        .map_err(|e| unavailable(&e.to_string()))?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(ModelError::new(
            "Transform",
            format!(
                "{SAM_TRANSFORM}: the translator failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        ModelError::new(
            "Transform",
            format!("{SAM_TRANSFORM}: the translator's answer is not JSON: {e}"),
        )
    })
}

/// The expanded template, or the translator's errors as CloudFormation
/// reports them (`Transform AWS::Serverless-2016-10-31 failed with:
/// Invalid Serverless Application Specification document. Number of errors
/// found: 1. Resource with id [Fn] is invalid. ...`), naming the first
/// resource at fault.
fn from_answer(mut answer: Value) -> Result<Value> {
    if let Some(why) = answer.get("unavailable").and_then(Value::as_str) {
        return Err(unavailable(why));
    }
    if let Some(t) = answer.get_mut("template") {
        return Ok(t.take());
    }
    let errors = answer["errors"].as_array().cloned().unwrap_or_default();
    let mut message = format!(
        "Transform {SAM_TRANSFORM} failed with: {}",
        answer["message"].as_str().unwrap_or("no answer")
    );
    for e in &errors {
        if let Some(m) = e["message"].as_str() {
            message.push(' ');
            message.push_str(m);
        }
    }
    let path = errors
        .iter()
        .find_map(|e| e["logical_id"].as_str())
        .map(|id| format!("Resources.{id}"))
        .unwrap_or_else(|| "Transform".into());
    Err(ModelError::new(path, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::LANGUAGE_EXTENSIONS;

    #[test]
    fn the_transform_is_found_as_a_name_or_in_a_list() {
        assert!(is_sam(&json!({"Transform": SAM_TRANSFORM})));
        assert!(is_sam(
            &json!({"Transform": [LANGUAGE_EXTENSIONS, SAM_TRANSFORM]})
        ));
        assert!(!is_sam(&json!({"Transform": LANGUAGE_EXTENSIONS})));
        assert!(!is_sam(&json!({"Resources": {}})));
        // Not SAM: given back untouched, no translator run.
        let doc = json!({"Resources": {"A": {"Type": "AWS::EC2::VPC"}}});
        assert_eq!(
            expand(doc.clone(), &HashMap::new(), &Context::new("s"), None).unwrap(),
            doc
        );
    }

    #[test]
    fn the_translators_errors_name_the_resource_in_sams_words() {
        let e = from_answer(json!({
            "message": "Invalid Serverless Application Specification document. Number of errors found: 2.",
            "errors": [
                {"logical_id": "Fn", "message": "Resource with id [Fn] is invalid. 'CodeUri' is not a valid S3 Uri of the form 's3://bucket/key' with optional versionId query parameter."},
                {"logical_id": null, "message": "Structure of the SAM template is invalid. x"}
            ]
        }))
        .unwrap_err();
        assert_eq!(e.path, "Resources.Fn");
        assert_eq!(
            e.message,
            "Transform AWS::Serverless-2016-10-31 failed with: Invalid Serverless Application Specification document. Number of errors found: 2. Resource with id [Fn] is invalid. 'CodeUri' is not a valid S3 Uri of the form 's3://bucket/key' with optional versionId query parameter. Structure of the SAM template is invalid. x"
        );
        let e = from_answer(json!({"message": "m", "errors": []})).unwrap_err();
        assert_eq!(e.path, "Transform");
        let e = from_answer(json!({"unavailable": "No module named 'samtranslator'"})).unwrap_err();
        assert!(e.message.contains("cargo xtask provision"), "{e}");
        assert_eq!(
            from_answer(json!({"template": {"Resources": {}}})).unwrap(),
            json!({"Resources": {}})
        );
    }
}

//! SSM Parameter Store's API on the agent's endpoint (requests signed for
//! `ssm`, AWS's JSON protocol 1.1, `X-Amz-Target: AmazonSSM.<Operation>`),
//! over the machine's one store ([`super::path`]), the one `vpc ssm` and
//! templates' `AWS::SSM::Parameter::Value<...>` parameters read: what one
//! client puts, the next `vpc up` resolves. GetParameter (with a `:version`
//! selector), GetParameters, GetParametersByPath, PutParameter,
//! DeleteParameter, DeleteParameters, DescribeParameters. The public
//! parameters (`/aws/service/...`, such as the AMI ids SDK code looks up
//! before RunInstances) answer from [`super::fallback`]. Any other
//! operation is `UnknownOperationException`. No KMS: a SecureString is
//! kept and shown as given.
use std::collections::BTreeMap;

use axum::{
    extract::Request,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Router,
};
use serde_json::{json, Value};

use super::Parameter;
use crate::agent::request::Caller;
use crate::template::{DEFAULT_ACCOUNT, DEFAULT_REGION};

/// The router of SSM's API.
pub fn router() -> Router {
    Router::new().fallback(handle)
}

/// An SSM error: its code (`__type`) and message.
#[derive(Debug, PartialEq, Eq)]
pub struct Error {
    pub code: String,
    pub message: String,
}

fn error(code: &str, message: impl Into<String>) -> Error {
    Error {
        code: code.into(),
        message: message.into(),
    }
}

/// The store's errors say `Code: message`; anything else is the service's
/// own failure.
impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        let s = format!("{e:#}");
        match s.split_once(": ") {
            Some((code, m)) if code.chars().all(|c| c.is_ascii_alphanumeric()) => error(code, m),
            _ => error("InternalServerError", s),
        }
    }
}

async fn handle(req: Request) -> Response {
    let caller = req
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or_default();
    let operation = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("AmazonSSM."))
        .unwrap_or_default()
        .to_string();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let region = caller
        .region
        .clone()
        .unwrap_or_else(|| DEFAULT_REGION.into());
    let account = caller.account().unwrap_or_else(|| DEFAULT_ACCOUNT.into());
    let answer = tokio::task::spawn_blocking(move || {
        let input: Value = if body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&body)
                .map_err(|e| error("SerializationException", e.to_string()))?
        };
        call(&super::path(), &operation, &input, &region, &account)
    })
    .await
    .unwrap_or_else(|e| Err(error("InternalServerError", e.to_string())));
    let (status, body) = match answer {
        Ok(v) => (StatusCode::OK, v),
        Err(e) => {
            tracing::info!(code = e.code, message = e.message, "ssm error");
            let status = if e.code == "InternalServerError" {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::BAD_REQUEST
            };
            (status, json!({"__type": e.code, "message": e.message}))
        }
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
        body.to_string(),
    )
        .into_response()
}

fn str_field<'a>(input: &'a Value, field: &str) -> Result<&'a str, Error> {
    input.get(field).and_then(Value::as_str).ok_or_else(|| {
        error(
            "ValidationException",
            format!("1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null", lower_first(field)),
        )
    })
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

fn names(input: &Value) -> Result<Vec<String>, Error> {
    let names: Vec<String> = input
        .get("Names")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() || names.len() > 10 {
        return Err(error(
            "ValidationException",
            format!("1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length less than or equal to 10 and greater than or equal to 1 (got {})", names.len()),
        ));
    }
    Ok(names)
}

/// One operation on the store at `path`.
pub fn call(
    path: &std::path::Path,
    operation: &str,
    input: &Value,
    region: &str,
    account: &str,
) -> Result<Value, Error> {
    let view = |n: &str, p: &Parameter| super::view(n, p, region, account);
    match operation {
        "GetParameter" => {
            let stored = super::load(path)?;
            let (name, p) = lookup(&stored, str_field(input, "Name")?)?;
            Ok(json!({"Parameter": view(&name, &p)}))
        }
        "GetParameters" => {
            let stored = super::load(path)?;
            let (mut found, mut invalid) = (vec![], vec![]);
            for n in names(input)? {
                match lookup(&stored, &n) {
                    Ok((name, p)) => found.push(view(&name, &p)),
                    Err(_) => invalid.push(n),
                }
            }
            Ok(json!({"Parameters": found, "InvalidParameters": invalid}))
        }
        "GetParametersByPath" => {
            let dir = str_field(input, "Path")?;
            if !dir.starts_with('/') {
                return Err(error(
                    "ValidationException",
                    "The parameter doesn't meet the parameter name requirements. The parameter name must begin with a forward slash \"/\".",
                ));
            }
            let recursive = input.get("Recursive").and_then(Value::as_bool).unwrap_or(false);
            let prefix = if dir.ends_with('/') {
                dir.to_string()
            } else {
                format!("{dir}/")
            };
            let stored = super::load(path)?;
            let all: Vec<Value> = stored
                .iter()
                .filter(|(n, _)| {
                    n.strip_prefix(&prefix)
                        .is_some_and(|rest| recursive || !rest.contains('/'))
                })
                .map(|(n, p)| view(n, p))
                .collect();
            page(input, all, "Parameters")
        }
        "DescribeParameters" => {
            let stored = super::load(path)?;
            let all = stored
                .iter()
                .map(|(n, p)| {
                    let mut v = view(n, p);
                    if let Some(o) = v.as_object_mut() {
                        o.remove("Value");
                        o.insert("Tier".into(), json!("Standard"));
                    }
                    v
                })
                .collect();
            page(input, all, "Parameters")
        }
        "PutParameter" => {
            let name = str_field(input, "Name")?;
            let value = str_field(input, "Value")?;
            let overwrite = input.get("Overwrite").and_then(Value::as_bool).unwrap_or(false);
            let kind = match input.get("Type").and_then(Value::as_str) {
                Some(k) => k.to_string(),
                // Overwriting keeps the type; a new parameter names one.
                None => match super::load(path)?.get(name) {
                    Some(p) => p.kind.clone(),
                    None => {
                        return Err(error(
                            "ValidationException",
                            "A parameter type is required when you create a parameter.",
                        ))
                    }
                },
            };
            let version = super::put(path, name, value, &kind, overwrite)?;
            Ok(json!({"Version": version, "Tier": "Standard"}))
        }
        "DeleteParameter" => {
            super::delete(path, str_field(input, "Name")?)?;
            Ok(json!({}))
        }
        "DeleteParameters" => {
            let (mut deleted, mut invalid) = (vec![], vec![]);
            for n in names(input)? {
                match super::delete(path, &n) {
                    Ok(()) => deleted.push(n),
                    Err(_) => invalid.push(n),
                }
            }
            Ok(json!({"DeletedParameters": deleted, "InvalidParameters": invalid}))
        }
        _ => Err(error(
            "UnknownOperationException",
            format!("service ssm: {operation:?} is not served by this endpoint (docs/templates.md: the Parameter Store)"),
        )),
    }
}

/// A name, with an optional `:version` selector: the parameter and its
/// name without the selector.
fn lookup(stored: &BTreeMap<String, Parameter>, name: &str) -> Result<(String, Parameter), Error> {
    let (base, version) = match name.rsplit_once(':') {
        Some((b, v)) if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) => {
            (b, v.parse::<u64>().ok())
        }
        _ => (name, None),
    };
    let p = super::get(stored, base)
        .ok_or_else(|| error("ParameterNotFound", format!("Parameter {base} not found.")))?;
    match version {
        Some(v) if v != p.version.max(1) => Err(error(
            "ParameterVersionNotFound",
            format!("Systems Manager could not find version {v} of {base}. Verify the version and try again."),
        )),
        _ => Ok((base.to_string(), p)),
    }
}

/// `MaxResults` (at most 50, 10 by default as AWS) and `NextToken` (the
/// index of the next one) over `all`.
fn page(input: &Value, all: Vec<Value>, key: &str) -> Result<Value, Error> {
    let max = input
        .get("MaxResults")
        .and_then(Value::as_u64)
        .unwrap_or(10);
    if !(1..=50).contains(&max) {
        return Err(error(
            "ValidationException",
            format!("1 validation error detected: Value '{max}' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 50"),
        ));
    }
    let start = match input.get("NextToken").and_then(Value::as_str) {
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| error("InvalidNextToken", "The specified token isn't valid."))?,
        None => 0,
    };
    let end = (start + max as usize).min(all.len());
    let mut out = json!({ key: all.get(start..end).unwrap_or_default() });
    if end < all.len() {
        out["NextToken"] = json!(end.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store of its own, removed at the end.
    struct Store(std::path::PathBuf);
    impl Drop for Store {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn store() -> (Store, std::path::PathBuf) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("vpc-ssm-api-{}-{n}", std::process::id()));
        let p = d.join("store.json");
        (Store(d), p)
    }

    fn op(path: &std::path::Path, operation: &str, input: Value) -> Result<Value, Error> {
        call(path, operation, &input, "eu-west-1", "111122223333")
    }

    #[test]
    fn put_get_versions_and_errors() {
        let (_d, p) = store();
        let e = op(&p, "PutParameter", json!({"Name": "/app/db", "Value": "x"})).unwrap_err();
        assert_eq!(
            e.message,
            "A parameter type is required when you create a parameter."
        );
        let v = op(
            &p,
            "PutParameter",
            json!({"Name": "/app/db", "Value": "a", "Type": "String"}),
        )
        .unwrap();
        assert_eq!(v["Version"], 1);
        let e = op(&p, "PutParameter", json!({"Name": "/app/db", "Value": "b"})).unwrap_err();
        assert_eq!(e.code, "ParameterAlreadyExists");
        // Overwriting keeps the type.
        let v = op(
            &p,
            "PutParameter",
            json!({"Name": "/app/db", "Value": "b", "Overwrite": true}),
        )
        .unwrap();
        assert_eq!(v["Version"], 2);
        let g = op(&p, "GetParameter", json!({"Name": "/app/db"})).unwrap();
        assert_eq!(g["Parameter"]["Value"], "b");
        assert_eq!(g["Parameter"]["Type"], "String");
        assert_eq!(
            g["Parameter"]["ARN"],
            "arn:aws:ssm:eu-west-1:111122223333:parameter/app/db"
        );
        assert_eq!(
            op(&p, "GetParameter", json!({"Name": "/app/db:2"})).unwrap()["Parameter"]["Name"],
            "/app/db"
        );
        assert_eq!(
            op(&p, "GetParameter", json!({"Name": "/app/db:1"}))
                .unwrap_err()
                .code,
            "ParameterVersionNotFound"
        );
        assert_eq!(
            op(&p, "GetParameter", json!({"Name": "/app/nope"}))
                .unwrap_err()
                .code,
            "ParameterNotFound"
        );
        assert_eq!(
            op(&p, "GetParameter", json!({})).unwrap_err().code,
            "ValidationException"
        );
        assert_eq!(
            op(
                &p,
                "PutParameter",
                json!({"Name": "/aws/x", "Value": "v", "Type": "String"})
            )
            .unwrap_err()
            .code,
            "ValidationException"
        );
        assert_eq!(
            op(&p, "ListThings", json!({})).unwrap_err().code,
            "UnknownOperationException"
        );
    }

    #[test]
    fn public_parameters_answer_from_the_fallback() {
        let (_d, p) = store();
        let g = op(
            &p,
            "GetParameter",
            json!({"Name": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-x86_64"}),
        )
        .unwrap();
        let v = &g["Parameter"];
        assert!(v["Value"].as_str().unwrap().starts_with("ami-"), "{v}");
        assert_eq!(v["ARN"], "arn:aws:ssm:eu-west-1::parameter/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-x86_64");
    }

    #[test]
    fn many_at_once_by_path_and_paged() {
        let (_d, p) = store();
        for n in ["/a/1", "/a/2", "/a/b/3", "/c"] {
            op(
                &p,
                "PutParameter",
                json!({"Name": n, "Value": "v", "Type": "String"}),
            )
            .unwrap();
        }
        let g = op(&p, "GetParameters", json!({"Names": ["/a/1", "/nope"]})).unwrap();
        assert_eq!(g["Parameters"].as_array().unwrap().len(), 1);
        assert_eq!(g["InvalidParameters"], json!(["/nope"]));
        let names = |v: &Value| -> Vec<String> {
            v["Parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["Name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            names(&op(&p, "GetParametersByPath", json!({"Path": "/a"})).unwrap()),
            ["/a/1", "/a/2"]
        );
        assert_eq!(
            names(
                &op(
                    &p,
                    "GetParametersByPath",
                    json!({"Path": "/a/", "Recursive": true})
                )
                .unwrap()
            ),
            ["/a/1", "/a/2", "/a/b/3"]
        );
        let first = op(&p, "DescribeParameters", json!({"MaxResults": 3})).unwrap();
        assert_eq!(names(&first).len(), 3);
        assert!(first["Parameters"][0].get("Value").is_none());
        let rest = op(
            &p,
            "DescribeParameters",
            json!({"MaxResults": 3, "NextToken": first["NextToken"]}),
        )
        .unwrap();
        assert_eq!(names(&rest), ["/c"]);
        assert!(rest.get("NextToken").is_none());
        let d = op(&p, "DeleteParameters", json!({"Names": ["/a/1", "/zz"]})).unwrap();
        assert_eq!(d["DeletedParameters"], json!(["/a/1"]));
        assert_eq!(d["InvalidParameters"], json!(["/zz"]));
        op(&p, "DeleteParameter", json!({"Name": "/c"})).unwrap();
        assert_eq!(
            op(&p, "DeleteParameter", json!({"Name": "/c"}))
                .unwrap_err()
                .code,
            "ParameterNotFound"
        );
    }
}

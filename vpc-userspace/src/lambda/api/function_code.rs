//! The Lambda API's routes for a function's code and concurrency:
//! UpdateFunctionCode, the code's zip (GetFunction's `Code.Location`),
//! Put/Get/DeleteFunctionConcurrency; and the code of CreateFunction's
//! request, read off the agent's loop.
use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
};
use serde_json::{json, Value};

use super::{
    ask, fname, get_configuration, internal, json_body, json_reply, load, q, qualifier, Lambda,
    Reply,
};
use crate::lambda::{
    code,
    lifecycle::{self, ApiError},
    operations::Op,
};

/// Ours: the zip of a function's code (GetFunction's `Code.Location`).
pub(super) async fn function_zip(
    State(l): State<Lambda>,
    Path(f): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Reply, ApiError> {
    let qualifier = qualifier(q(&query, "Qualifier"))?;
    l.blocking(move |name, _| {
        let (s, _) = load(name)?;
        let func = s
            .model
            .function(&fname(&f))
            .ok_or_else(|| ApiError::not_found(&f))?;
        let id = match qualifier {
            Some(n) => lifecycle::version_id(&func.id, n),
            None => func.id.clone(),
        };
        let func = s
            .model
            .function(&id)
            .ok_or_else(|| ApiError::not_found(&f))?;
        let zip = code::zip_of(name, func).map_err(internal)?;
        Ok(Reply(
            200,
            vec![("content-type", "application/zip".into())],
            zip,
        ))
    })
    .await
}

/// The code of a CreateFunction or UpdateFunctionCode request (`req`:
/// where `ZipFile` is), read and checked on the blocking pool.
pub(super) async fn request_code(
    l: &Lambda,
    req: Value,
    operation: &'static str,
    size: usize,
) -> Result<Option<code::Source>, ApiError> {
    if size > code::MAX_REQUEST_BYTES {
        return Err(code::request_too_large(operation));
    }
    l.blocking(move |_, _| code::from_request(&req)).await
}

/// UpdateFunctionCode: `ZipFile` (a zip, or this project's inline text),
/// `Publish`; `DryRun` checks the code and changes nothing.
pub(super) async fn update_function_code(
    State(l): State<Lambda>,
    Path(f): Path<String>,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let size = body.len();
    let mut body = json_body(&body)?;
    if !body.is_object() {
        return Err(ApiError::invalid("the request body is not a JSON object"));
    }
    let publish = body["Publish"].as_bool() == Some(true);
    let dry_run = body["DryRun"].as_bool() == Some(true);
    let req = std::mem::take(&mut body);
    let source = request_code(&l, req, "UpdateFunctionCode", size)
        .await?
        .ok_or_else(|| ApiError::invalid("ZipFile: the function's code is required"))?;
    l.blocking(move |name, ops| {
        if dry_run {
            return Ok(json_reply(200, &get_configuration(name, &fname(&f), None)?));
        }
        let c = ask(
            ops,
            Op::UpdateCode {
                function: fname(&f),
                code: source,
                publish,
            },
        )?;
        Ok(json_reply(200, &c))
    })
    .await
}

/// PutFunctionConcurrency.
pub(super) async fn put_function_concurrency(
    State(l): State<Lambda>,
    Path(f): Path<String>,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let b = json_body(&body)?;
    let invalid = |v: &str, c: &str| {
        ApiError::invalid(format!(
            "1 validation error detected: Value {v} at 'reservedConcurrentExecutions' failed to satisfy constraint: Member must {c}"
        ))
    };
    let n = match &b["ReservedConcurrentExecutions"] {
        Value::Null => return Err(invalid("null", "not be null")),
        v => match v.as_i64() {
            Some(n) if n < 0 => {
                return Err(invalid(
                    &n.to_string(),
                    "have value greater than or equal to 0",
                ))
            }
            Some(n) => u32::try_from(n).unwrap_or(u32::MAX),
            None => return Err(invalid(&v.to_string(), "be an integer")),
        },
    };
    l.blocking(move |_, ops| {
        let c = ask(
            ops,
            Op::Concurrency {
                function: fname(&f),
                reserved: Some(n),
            },
        )?;
        Ok(json_reply(200, &c))
    })
    .await
}

/// GetFunctionConcurrency: `{}` when the function reserves none.
pub(super) async fn get_function_concurrency(
    State(l): State<Lambda>,
    Path(f): Path<String>,
) -> Result<Reply, ApiError> {
    l.blocking(move |name, _| {
        let (s, _) = load(name)?;
        let func = s
            .model
            .function(&fname(&f))
            .ok_or_else(|| ApiError::not_found(&f))?;
        Ok(json_reply(
            200,
            &match func.runtime.reserved_concurrency {
                Some(n) => json!({ "ReservedConcurrentExecutions": n }),
                None => json!({}),
            },
        ))
    })
    .await
}

/// DeleteFunctionConcurrency.
pub(super) async fn delete_function_concurrency(
    State(l): State<Lambda>,
    Path(f): Path<String>,
) -> Result<Reply, ApiError> {
    l.blocking(move |_, ops| {
        ask(
            ops,
            Op::Concurrency {
                function: fname(&f),
                reserved: None,
            },
        )?;
        Ok(Reply(204, vec![], vec![]))
    })
    .await
}

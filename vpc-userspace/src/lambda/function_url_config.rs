//! The Lambda API's function URL operations, with AWS's paths, shapes and
//! errors:
//!
//! | action | request | answer |
//! |---|---|---|
//! | CreateFunctionUrlConfig | `POST /2021-10-31/functions/{name}/url` `{AuthType, Cors, InvokeMode}` | 201 `{FunctionUrl, FunctionArn, AuthType, Cors, CreationTime, InvokeMode}` |
//! | GetFunctionUrlConfig | `GET /2021-10-31/functions/{name}/url` | 200, the same and `LastModifiedTime` |
//! | UpdateFunctionUrlConfig | `PUT /2021-10-31/functions/{name}/url` | 200, as Get |
//! | DeleteFunctionUrlConfig | `DELETE /2021-10-31/functions/{name}/url` | 204 |
//! | ListFunctionUrlConfigs | `GET /2021-10-31/functions/{name}/urls[?MaxItems=N&Marker=M]` | 200 `{FunctionUrlConfigs: [...], NextMarker}` |
//!
//! Errors: 404 `ResourceNotFoundException` (no such function, or no URL),
//! 409 `ResourceConflictException` (the function has one already), 400
//! `InvalidParameterValueException` (a bad `AuthType`, `InvokeMode`,
//! `Cors` or `Qualifier`). `Qualifier` names an alias at AWS, and this
//! project has none yet: a valid one is answered 404. Reads come from the
//! store; changes go to the agent's loop ([`Op::FunctionUrl`]), one at a
//! time, and change only the desired model's `function_urls` (nothing of
//! the datapath: the resolvers and the public endpoint follow the state).
use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    routing::get,
    Router,
};
use serde_json::{json, Value};

use super::{
    api::{self, ask, fname, json_body, json_reply, q, Lambda, Reply},
    lifecycle::{iso8601, ApiError},
    operations::Op,
};
use crate::{
    model::{
        function_url::{self, check_cors, check_invoke_mode, check_qualifier},
        AuthType, Function, FunctionUrl, Model,
    },
    state::{transact, State as DeploymentState},
};

/// The routes, merged into the Lambda API's router.
pub(super) fn routes() -> Router<Lambda> {
    Router::new()
        .route(
            "/2021-10-31/functions/{f}/url",
            get(get_config).post(create).put(update).delete(delete),
        )
        .route("/2021-10-31/functions/{f}/urls", get(list))
}

/// A change of a function's URL, made on the agent's loop.
pub enum Change {
    Create { body: Value },
    Update { body: Value },
    Delete,
}

/// The function and qualifier a change or read names.
pub struct Which {
    pub function: String,
    pub qualifier: Option<String>,
}

/// The unqualified function `which` names (its id), or Lambda's 404; a
/// qualifier is an alias, and there are none.
fn find<'m>(m: &'m Model, which: &Which) -> Result<&'m Function, ApiError> {
    let f = m
        .function(&which.function)
        .filter(|f| f.version_of.is_none())
        .ok_or_else(|| ApiError::not_found(&which.function))?;
    if let Some(q) = &which.qualifier {
        check_qualifier(q).map_err(ApiError::invalid)?;
        return Err(ApiError::not_found(&format!(
            "{}:{q} (aliases are not supported here)",
            m.function_arn(f)
        )));
    }
    Ok(f)
}

/// `FunctionUrlConfig` as Lambda answers it. `created_ms` 0: a template's,
/// created with the deployment.
fn config(s: &DeploymentState, u: &FunctionUrl, modified: bool) -> Value {
    let m = &s.model;
    let arn = m
        .function(&u.function)
        .map(|f| m.function_arn(f))
        .unwrap_or_default();
    let at = |ms: u64| iso8601(if ms == 0 { s.created_unix_ms } else { ms });
    let mut c = json!({
        "FunctionUrl": function_url::function_url(&u.url_id, &m.region),
        "FunctionArn": arn,
        "AuthType": u.auth_type.as_str(),
        "CreationTime": at(u.created_ms),
        "InvokeMode": "BUFFERED",
    });
    let o = c.as_object_mut().expect("object");
    if let Some(cors) = &u.cors {
        o.insert("Cors".into(), cors.clone());
    }
    if modified {
        o.insert("LastModifiedTime".into(), at(u.modified_ms).into());
    }
    c
}

/// `AuthType`, `Cors` and `InvokeMode` of a request's body, checked.
/// (AuthType, Cors): `None` where the body leaves them out.
#[allow(clippy::type_complexity)]
fn settings(body: &Value) -> Result<(Option<AuthType>, Option<Value>), ApiError> {
    let auth = match body.get("AuthType") {
        None => None,
        Some(v) => Some(AuthType::parse(v).map_err(ApiError::invalid)?),
    };
    if let Some(m) = body.get("InvokeMode") {
        check_invoke_mode(m).map_err(ApiError::invalid)?;
    }
    let cors = body.get("Cors").cloned();
    if let Some(c) = &cors {
        check_cors(c).map_err(|(f, e)| ApiError::invalid(format!("{f}: {e}")))?;
    }
    Ok((auth, cors))
}

/// Applies one change (on the agent's loop).
pub fn change(name: &str, which: Which, change: Change) -> anyhow::Result<Result<Value, ApiError>> {
    transact(name, |s, lc| {
        let now = lc.clock.now_ms();
        let f = match find(&s.model, &which) {
            Ok(f) => f.clone(),
            Err(e) => return Ok(Err(e)),
        };
        let arn = s.model.function_arn(&f);
        let existing = s.model.function_url(&f.id, None).cloned();
        let r = match (change, existing) {
            (Change::Create { .. }, Some(_)) => Err(ApiError::new(
                409,
                "ResourceConflictException",
                format!(
                    "Failed to create function url config for [functionArn = {arn}]. Error message:  FunctionUrlConfig exists for this Lambda function"
                ),
            )),
            (Change::Create { body }, None) => settings(&body).and_then(|(auth, cors)| {
                let auth_type = auth.ok_or_else(|| {
                    ApiError::invalid(
                        "1 validation error detected: Value null at 'authType' failed to satisfy constraint: Member must not be null",
                    )
                })?;
                let account = f.account.as_deref().unwrap_or(&s.model.account);
                let u = FunctionUrl {
                    function: f.id.clone(),
                    qualifier: None,
                    auth_type,
                    cors,
                    url_id: function_url::url_id(account, &s.model.region, &f.name, None),
                    created_ms: now,
                    modified_ms: now,
                };
                s.model.function_urls.push(u.clone());
                s.model
                    .function_urls
                    .sort_by(|a, b| a.function.cmp(&b.function));
                Ok((201, config(s, &u, false)))
            }),
            (_, None) => Err(ApiError::new(
                404,
                "ResourceNotFoundException",
                "The resource you requested does not exist.",
            )),
            (Change::Update { body }, Some(_)) => settings(&body).map(|(auth, cors)| {
                let u = s
                    .model
                    .function_urls
                    .iter_mut()
                    .find(|u| u.function == f.id && u.qualifier.is_none())
                    .expect("found");
                if let Some(a) = auth {
                    u.auth_type = a;
                }
                if cors.is_some() {
                    u.cors = cors;
                }
                u.modified_ms = now;
                let u = u.clone();
                (200, config(s, &u, true))
            }),
            (Change::Delete, Some(_)) => {
                s.model
                    .function_urls
                    .retain(|u| !(u.function == f.id && u.qualifier.is_none()));
                Ok((204, Value::Null))
            }
        };
        Ok(r.map(|(status, body)| json!({"Status": status, "Body": body})))
    })
}

/// A change through the loop, answered with its status.
async fn changed(l: Lambda, which: Which, change: Change) -> Result<Reply, ApiError> {
    l.blocking(move |_, ops| {
        let r = ask(ops, Op::FunctionUrl { which, change })?;
        let status = r["Status"].as_u64().unwrap_or(200) as u16;
        Ok(if status == 204 {
            Reply(204, vec![], vec![])
        } else {
            json_reply(status, &r["Body"])
        })
    })
    .await
}

fn which(f: &str, query: &Option<String>) -> Which {
    Which {
        function: fname(f),
        qualifier: q(query, "Qualifier"),
    }
}

/// CreateFunctionUrlConfig.
async fn create(
    State(l): State<Lambda>,
    Path(f): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let body = json_body(&body)?;
    changed(l, which(&f, &query), Change::Create { body }).await
}

/// UpdateFunctionUrlConfig.
async fn update(
    State(l): State<Lambda>,
    Path(f): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let body = json_body(&body)?;
    changed(l, which(&f, &query), Change::Update { body }).await
}

/// DeleteFunctionUrlConfig.
async fn delete(
    State(l): State<Lambda>,
    Path(f): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Reply, ApiError> {
    changed(l, which(&f, &query), Change::Delete).await
}

/// GetFunctionUrlConfig, from the store.
async fn get_config(
    State(l): State<Lambda>,
    Path(f): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Reply, ApiError> {
    let w = which(&f, &query);
    l.blocking(move |name, _| {
        let s = DeploymentState::load(name).map_err(api::internal)?;
        let f = find(&s.model, &w)?;
        let u = s.model.function_url(&f.id, None).ok_or_else(|| {
            ApiError::new(
                404,
                "ResourceNotFoundException",
                "The resource you requested does not exist.",
            )
        })?;
        Ok(json_reply(200, &config(&s, u, true)))
    })
    .await
}

/// ListFunctionUrlConfigs, from the store: `MaxItems` (1-50) a page,
/// `Marker` where the last one ended.
async fn list(
    State(l): State<Lambda>,
    Path(f): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Reply, ApiError> {
    let w = Which {
        function: fname(&f),
        qualifier: None,
    };
    let max = match q(&query, "MaxItems") {
        None => 50,
        Some(m) => match m.parse::<usize>() {
            Ok(n) if (1..=50).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid(format!(
                    "1 validation error detected: Value '{m}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 50"
                )))
            }
        },
    };
    let from: usize = q(&query, "Marker")
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    l.blocking(move |name, _| {
        let s = DeploymentState::load(name).map_err(api::internal)?;
        let f = find(&s.model, &w)?;
        let all: Vec<Value> = s
            .model
            .function_urls
            .iter()
            .filter(|u| u.function == f.id)
            .map(|u| config(&s, u, true))
            .collect();
        let page: Vec<Value> = all.iter().skip(from).take(max).cloned().collect();
        let mut r = json!({ "FunctionUrlConfigs": page });
        if from + max < all.len() {
            r["NextMarker"] = (from + max).to_string().into();
        }
        Ok(json_reply(200, &r))
    })
    .await
}

//! The agent's Lambda-shaped HTTP API, on the agent's endpoint
//! ([`crate::agent::http`]: the Unix socket `/run/vpc/<name>/api.sock`,
//! always, and loopback TCP when asked, `vpc up --api-addr 127.0.0.1:PORT`,
//! so an AWS SDK can be pointed at it with `endpoint_url`), for requests
//! signed for `lambda` and unsigned ones. Paths, JSON shapes and errors
//! (`x-amzn-ErrorType`, a body with `Type` and `message`) are the Lambda
//! REST API's:
//!
//! | action | request |
//! |---|---|
//! | ListFunctions | `GET /2015-03-31/functions` |
//! | GetFunction | `GET /2015-03-31/functions/{name}[?Qualifier=N]` |
//! | GetFunctionConfiguration | `GET /2015-03-31/functions/{name}/configuration` |
//! | UpdateFunctionConfiguration | `PUT /2015-03-31/functions/{name}/configuration` |
//! | DeleteFunction | `DELETE /2015-03-31/functions/{name}` |
//! | PublishVersion | `POST /2015-03-31/functions/{name}/versions` |
//! | Invoke | `POST /2015-03-31/functions/{name}/invocations` |
//! | CreateFunction | `POST /2015-03-31/functions` |
//! | UpdateFunctionCode | `PUT /2015-03-31/functions/{name}/code` |
//! | PutFunctionConcurrency | `PUT /2017-10-31/functions/{name}/concurrency` |
//! | GetFunctionConcurrency | `GET /2019-09-30/functions/{name}/concurrency` |
//! | DeleteFunctionConcurrency | `DELETE /2017-10-31/functions/{name}/concurrency` |
//! | the function URL operations | `/2021-10-31/functions/{name}/url[s]` ([`super::function_url_config`]) |
//!
//! Ours (not AWS's), under `/_vpc`: `POST /_vpc/clock` `{"AdvanceMs": N}`
//! moves a test clock; `POST /_vpc/ram/(dis)associate-resource-share`
//! `{"ResourceShare", "SubnetIds", "Principals"}` changes a share (RAM's
//! API is another service's); `POST /_vpc/functions/{name}/claim?env=N` is what
//! `vpc invoke F -- CMD` asks before running CMD itself (the lifecycle
//! checks of Invoke, and where to run); `GET /_vpc/functions/{name}/code`
//! is the function's zip (GetFunction's `Code.Location`).
//!
//! Reads are answered from the store on the endpoint's blocking pool;
//! changes go to the agent's loop (`lambda::operations::Request`), one at a time.
//! [`call`] is the CLI's client, over the Unix socket.
use std::{
    collections::HashMap,
    io::{Read, Write},
    os::unix::net::UnixStream,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use anyhow::{bail, Context, Result};
use axum::{
    body::{Body, Bytes},
    extract::{Path, RawQuery, Request as HttpRequest, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response as HttpResponse},
    routing::{get, post},
    Extension, Router,
};
use serde_json::{json, Value};

use crate::{
    agent::request::{query_value, Caller, RequestPath},
    lambda::{
        lifecycle::{self, ApiError},
        logs,
        operations::{Op, Ops, Request},
        runtime::{self, Invoked, Runtimes},
    },
    state::{Lifecycle, State as DeploymentState},
};

mod function_code;
mod script;
use function_code::{
    delete_function_concurrency, function_zip, get_function_concurrency, put_function_concurrency,
    request_code, update_function_code,
};
use script::run_handler;

pub fn socket_path(name: &str) -> PathBuf {
    crate::paths::state_dir(name).join("api.sock")
}

/// What the Lambda routes share (the API's and the function URLs'): the
/// deployment, and the way to its agent's loop.
#[derive(Clone)]
pub(super) struct Lambda {
    name: Arc<str>,
    ops: Ops,
    /// The execution environments' runtimes (functions with a `Runtime`).
    runtimes: Arc<Runtimes>,
    /// Invocations running, per function with a reserved concurrency.
    running: Arc<Mutex<HashMap<String, u32>>>,
}

impl Lambda {
    /// Runs `f` on tokio's blocking pool: reads of the store, waiting for
    /// the agent's loop and invocations all block.
    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&str, &Ops) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me.name, &me.ops))
            .await
            .map_err(|e| internal(anyhow::anyhow!("the request's task: {e}")))?
    }
}

/// The Lambda API's router ([`routers`]'s `api`).
pub fn router(name: &str, ops: Ops) -> Router {
    routers(name, ops).api
}

/// The Lambda API and the function URLs, sharing one deployment's
/// execution environments and concurrency.
pub struct Routers {
    /// The Lambda API: the agent's endpoint, a Lambda interface VPC
    /// endpoint, and Lambda's public endpoint on the internet serve it.
    pub api: Router,
    /// Function URLs ([`super::function_url`]): AWS's public endpoints on
    /// the internet only.
    pub urls: Router,
}

/// The Lambda API's routes (paths without a trailing slash: the endpoint
/// takes it off; anything else, another method included, is answered
/// 404 `UnknownOperationException`) and the function URLs' router.
pub fn routers(name: &str, ops: Ops) -> Routers {
    let runtimes = Arc::new(Runtimes::new(name));
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::spawn(reap_idle(
            name.into(),
            ops.clone(),
            Arc::downgrade(&runtimes),
        ));
    }
    let state = Lambda {
        name: name.into(),
        ops,
        runtimes,
        running: Default::default(),
    };
    let api = Router::new()
        .route(
            "/2015-03-31/functions",
            get(list_functions).post(create_function),
        )
        .route(
            "/2015-03-31/functions/{f}",
            get(get_function).delete(delete_function),
        )
        .route(
            "/2015-03-31/functions/{f}/configuration",
            get(get_function_configuration).put(update_function_configuration),
        )
        .route("/2015-03-31/functions/{f}/versions", post(publish_version))
        .route(
            "/2015-03-31/functions/{f}/code",
            axum::routing::put(update_function_code),
        )
        .route(
            "/2017-10-31/functions/{f}/concurrency",
            axum::routing::put(put_function_concurrency).delete(delete_function_concurrency),
        )
        .route(
            "/2019-09-30/functions/{f}/concurrency",
            get(get_function_concurrency),
        )
        .route("/_vpc/functions/{f}/code", get(function_zip))
        .route("/2015-03-31/functions/{f}/invocations", post(invoke))
        .route("/_vpc/functions/{f}/claim", post(claim))
        .route("/_vpc/clock", post(advance_clock))
        .route("/_vpc/ram/{op}", post(share))
        .merge(super::function_url_config::routes())
        .fallback(unknown_operation)
        .method_not_allowed_fallback(unknown_operation)
        .with_state(state.clone());
    Routers {
        api,
        urls: super::function_url::router(state),
    }
}

/// How often idle execution environments are looked for.
const REAP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Reaps the execution environments idle for `Settings::env_idle` on the
/// lifecycle's clock (a test clock moves only when told): their runtimes
/// stop, and the replicas among them leave the desired model. Ends with
/// the routes (the agent stops).
async fn reap_idle(name: Arc<str>, ops: Ops, runtimes: std::sync::Weak<Runtimes>) {
    loop {
        tokio::time::sleep(REAP_EVERY).await;
        let Some(rt) = runtimes.upgrade() else {
            return;
        };
        let n = name.clone();
        let Ok(Ok(lc)) = tokio::task::spawn_blocking(move || Lifecycle::load(&n)).await else {
            continue;
        };
        let reaped = rt.reap(lc.clock.now_ms(), lc.settings.env_idle.as_millis() as u64);
        let mut by_function: HashMap<String, Vec<runtime::Reaped>> = HashMap::new();
        for r in reaped {
            by_function.entry(r.function.clone()).or_default().push(r);
        }
        for (function, reaped) in by_function {
            let envs = reaped.iter().map(|r| r.n).collect();
            let ops = ops.clone();
            let r =
                tokio::task::spawn_blocking(move || ask(&ops, Op::RemoveEnvs { function, envs }))
                    .await;
            let removed = matches!(r, Ok(Ok(_)));
            if !removed {
                tracing::warn!("reaping idle execution environments: {r:?}");
            }
            rt.reaped(reaped, removed);
        }
    }
}

/// One invocation counted against its function's reserved concurrency,
/// until dropped.
pub(super) struct Slot {
    running: Arc<Mutex<HashMap<String, u32>>>,
    key: String,
}

impl Slot {
    /// A slot of function `key` (its versions share it), or Lambda's 429
    /// when `limit` invocations already run.
    fn take(
        running: &Arc<Mutex<HashMap<String, u32>>>,
        key: &str,
        limit: u32,
    ) -> Result<Self, ApiError> {
        let mut m = running.lock().expect("lock");
        let n = m.entry(key.to_string()).or_default();
        if *n >= limit {
            return Err(ApiError::new(
                429,
                "TooManyRequestsException",
                "Rate Exceeded.",
            ));
        }
        *n += 1;
        Ok(Slot {
            running: running.clone(),
            key: key.to_string(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.running.lock().expect("lock");
        if let Some(n) = m.get_mut(&self.key) {
            *n = n.saturating_sub(1);
        }
    }
}

/// An answer: status, headers, body.
pub(super) struct Reply(
    pub(super) u16,
    pub(super) Vec<(&'static str, String)>,
    pub(super) Vec<u8>,
);

impl IntoResponse for Reply {
    fn into_response(self) -> HttpResponse {
        let Reply(status, headers, body) = self;
        // The body as it is, with no Content-Type but the one given (an
        // invocation's answer has none).
        let mut r = HttpResponse::new(Body::from(body));
        *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        for (k, v) in headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                r.headers_mut().insert(HeaderName::from_static(k), v);
            }
        }
        r
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> HttpResponse {
        error_reply(&self).into_response()
    }
}

pub(super) fn json_reply(status: u16, v: &Value) -> Reply {
    Reply(
        status,
        vec![("content-type", "application/json".into())],
        serde_json::to_vec(v).expect("JSON"),
    )
}

fn error_reply(e: &ApiError) -> Reply {
    let Reply(s, mut h, b) = json_reply(
        e.status,
        &json!({"Type": "User", "message": e.message, "Message": e.message}),
    );
    h.push(("x-amzn-errortype", e.kind.into()));
    Reply(s, h, b)
}

/// Asks the agent's loop to make a change and waits for its answer (on
/// the blocking pool: `blocking_recv` may not run on a runtime worker). A
/// loop that has stopped drops its channel and what was still in it: the
/// request is answered 503.
pub(super) fn ask(ops: &Ops, op: Op) -> Result<Value, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    ops.send(Request { op, reply: tx })
        .map_err(|_| ApiError::new(503, "ServiceException", "the agent is stopping"))?;
    rx.blocking_recv()
        .map_err(|_| ApiError::new(503, "ServiceException", "the agent is stopping"))?
}

pub(super) fn internal(e: anyhow::Error) -> ApiError {
    ApiError::new(500, "ServiceException", format!("{e:#}"))
}

/// A query parameter, the first of its name, percent-decoded.
pub(super) fn q(query: &Option<String>, k: &str) -> Option<String> {
    query_value(query.as_deref().unwrap_or(""), k)
}

pub(super) fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("the request body is not JSON: {e}")))
}

/// A function name may be an ARN.
pub(super) fn fname(s: &str) -> String {
    match s.strip_prefix("arn:aws:lambda:") {
        Some(rest) => rest.split(':').nth(3).unwrap_or(s).to_string(),
        None => s.to_string(),
    }
}

/// Any path or method not above.
async fn unknown_operation(method: Method, req: HttpRequest) -> ApiError {
    let path = req
        .extensions()
        .get::<RequestPath>()
        .map(|p| p.0.clone())
        .unwrap_or_else(|| req.uri().path().to_string());
    unknown(&method, &path)
}

fn unknown(method: &Method, path: &str) -> ApiError {
    ApiError::new(
        404,
        "UnknownOperationException",
        format!("{method} {path}: no such operation"),
    )
}

/// ListFunctions.
async fn list_functions(State(l): State<Lambda>) -> Result<Reply, ApiError> {
    l.blocking(|name, _| {
        let (s, lc) = load(name)?;
        let fs: Vec<Value> = s
            .model
            .functions
            .iter()
            .filter(|f| f.version_of.is_none())
            .map(|f| {
                let st = lc.functions.get(&f.id).cloned().unwrap_or_default();
                lifecycle::configuration(&s.model, f, &st, None)
            })
            .collect();
        Ok(json_reply(200, &json!({ "Functions": fs })))
    })
    .await
}

/// GetFunction: the configuration, where to download the code (`Code`:
/// the agent serves the zip at the endpoint asked, as S3 would at a
/// presigned URL), and `Concurrency` when the function reserves some.
async fn get_function(
    State(l): State<Lambda>,
    Path(f): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Reply, ApiError> {
    let host = header(&headers, "host").unwrap_or("localhost").to_string();
    l.blocking(move |name, _| {
        let qualifier = q(&query, "Qualifier");
        let c = get_configuration(name, &fname(&f), qualifier.clone())?;
        let (s, _) = load(name)?;
        let func = s
            .model
            .function(&fname(&f))
            .ok_or_else(|| ApiError::not_found(&f))?;
        let location = format!(
            "http://{host}/_vpc/functions/{}/code{}",
            func.name,
            qualifier
                .map(|v| format!("?Qualifier={v}"))
                .unwrap_or_default()
        );
        let mut r = json!({
            "Configuration": c,
            "Code": {"RepositoryType": "S3", "Location": location},
        });
        if let Some(n) = func.runtime.reserved_concurrency {
            r["Concurrency"] = json!({ "ReservedConcurrentExecutions": n });
        }
        Ok(json_reply(200, &r))
    })
    .await
}

/// GetFunctionConfiguration.
async fn get_function_configuration(
    State(l): State<Lambda>,
    Path(f): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Reply, ApiError> {
    l.blocking(move |name, _| {
        Ok(json_reply(
            200,
            &get_configuration(name, &fname(&f), q(&query, "Qualifier"))?,
        ))
    })
    .await
}

/// UpdateFunctionConfiguration.
async fn update_function_configuration(
    State(l): State<Lambda>,
    Path(f): Path<String>,
    caller: Option<Extension<Caller>>,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let body = json_body(&body)?;
    let access_key = caller.and_then(|Extension(c)| c.access_key);
    l.blocking(move |_, ops| {
        let c = ask(
            ops,
            Op::Update {
                function: fname(&f),
                body,
                access_key,
            },
        )?;
        Ok(json_reply(200, &c))
    })
    .await
}

/// DeleteFunction (of the function and its versions).
async fn delete_function(
    State(l): State<Lambda>,
    Path(f): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Reply, ApiError> {
    if q(&query, "Qualifier").is_some() {
        return Err(ApiError::invalid(
            "deleting one version is not supported here: delete the function",
        ));
    }
    l.blocking(move |_, ops| {
        ask(
            ops,
            Op::Delete {
                function: fname(&f),
            },
        )?;
        Ok(Reply(204, vec![], vec![]))
    })
    .await
}

/// PublishVersion (`CodeSha256`: only if `$LATEST`'s code has it).
async fn publish_version(
    State(l): State<Lambda>,
    Path(f): Path<String>,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let b = json_body(&body)?;
    let code_sha256 = b["CodeSha256"].as_str().map(str::to_string);
    l.blocking(move |_, ops| {
        let c = ask(
            ops,
            Op::Publish {
                function: fname(&f),
                code_sha256,
            },
        )?;
        Ok(json_reply(201, &c))
    })
    .await
}

/// Invoke's `X-Amz-Invocation-Type`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum InvocationType {
    /// Synchronous (the default): 200 and the function's answer.
    RequestResponse,
    /// Asynchronous: 202 at once, the function runs in the background.
    Event,
    /// The checks only: 204.
    DryRun,
}

/// A header's value, if any (as text).
fn header<'a>(headers: &'a HeaderMap, k: &str) -> Option<&'a str> {
    headers.get(k).and_then(|v| v.to_str().ok())
}

/// Invoke's `X-Amz-Invocation-Type` and `X-Amz-Log-Type` (`Tail`?), or
/// Lambda's error for a value it does not take.
fn invoke_options(headers: &HeaderMap) -> Result<(InvocationType, bool), ApiError> {
    let kind = match header(headers, "x-amz-invocation-type") {
        None | Some("RequestResponse") => InvocationType::RequestResponse,
        Some("Event") => InvocationType::Event,
        Some("DryRun") => InvocationType::DryRun,
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "1 validation error detected: Value '{v}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
            )))
        }
    };
    let tail = match header(headers, "x-amz-log-type") {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "1 validation error detected: Value '{v}' at 'logType' failed to satisfy constraint: Member must satisfy enum value set: [None, Tail]"
            )))
        }
    };
    Ok((kind, tail))
}

/// Invoke: the lifecycle's checks on the agent's loop (waited for on the
/// blocking pool), then the function's runtime through the Runtime API
/// ([`crate::lambda::runtime`]), or, for a function without `Runtime`, its
/// shell script's process (on the blocking pool). `X-Amz-Invocation-Type`:
/// `RequestResponse` (the default) waits for the answer, `Event` answers
/// 202 once the checks pass and runs it in the background, `DryRun`
/// answers 204 after the checks; `X-Amz-Log-Type: Tail` (synchronous
/// only, as at AWS) adds the last 4 KB of the invocation's log lines,
/// base64, in `X-Amz-Log-Result`.
async fn invoke(
    State(l): State<Lambda>,
    Path(f): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let qualifier = qualifier(q(&query, "Qualifier"))?;
    let (kind, tail) = invoke_options(&headers)?;
    let dry_run = kind == InvocationType::DryRun;
    let f = fname(&f);
    // Any of its environments (`Envs`): `start` takes an idle one.
    let c = l
        .blocking(move |_, ops| {
            ask(
                ops,
                Op::Claim {
                    function: f,
                    env: 0,
                    qualifier,
                    dry_run,
                },
            )
        })
        .await?;
    if dry_run {
        return Ok(Reply(204, vec![], vec![]));
    }
    let (slot, task) = start(&l, c, body).await?;
    if kind == InvocationType::Event {
        tokio::spawn(async move {
            let _slot = slot;
            match task.await {
                Ok(Ok(r)) if r.unhandled => tracing::info!(
                    "an asynchronous invocation failed: {}",
                    String::from_utf8_lossy(&r.body)
                ),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!("an asynchronous invocation: {}", e.message),
                Err(e) => tracing::warn!("an asynchronous invocation's task: {e}"),
            }
        });
        return Ok(Reply(202, vec![], vec![]));
    }
    let r = task
        .await
        .map_err(|e| internal(anyhow::anyhow!("the invocation's task: {e}")))??;
    drop(slot);
    let mut headers = vec![("x-amz-executed-version", r.version)];
    if r.unhandled {
        headers.push(("x-amz-function-error", "Unhandled".into()));
    }
    if tail {
        headers.push(("x-amz-log-result", logs::tail(&r.log)));
    }
    Ok(Reply(200, headers, r.body))
}

/// An invocation started: its concurrency slot (given back when dropped)
/// and its task.
pub(super) type Started = (
    Option<Slot>,
    tokio::task::JoinHandle<Result<Invoked, ApiError>>,
);

/// What Invoke and a function URL do once the claim (`c`) is made: take
/// a slot of the function's reserved concurrency (429 when none is left),
/// then run it with `body` on a task of its own (the timeout is enforced,
/// the process killed, also when the caller goes away, and an `Event`
/// runs after the answer): its runtime through the Runtime API, or its
/// shell script.
pub(super) async fn start(l: &Lambda, mut c: Value, body: Bytes) -> Result<Started, ApiError> {
    let slot = match c["ReservedConcurrentExecutions"].as_u64() {
        Some(limit) => {
            let key = c["ConcurrencyKey"].as_str().unwrap_or_default();
            Some(Slot::take(&l.running, key, limit as u32)?)
        }
        None => None,
    };
    let task = if c["RuntimeApi"].as_bool() == Some(true) {
        let lease = loop {
            if let Some(lease) = l.runtimes.lease(&c) {
                break lease;
            }
            // Every environment is busy: one more, as Lambda starts one
            // for a concurrent invocation (or, at the function's
            // concurrency, the first one's turn).
            let function = c["FunctionId"].as_str().unwrap_or_default().to_string();
            let f = function.clone();
            let added = l
                .blocking(move |_, ops| ask(ops, Op::AddEnv { function: f }))
                .await;
            match added {
                Ok(a) => {
                    let n = a["N"].as_u64().unwrap_or(1) as usize;
                    if let Some(envs) = c["Envs"].as_array_mut() {
                        envs.push(json!({
                            "N": n,
                            "Netns": crate::topology::exec_env_netns(&l.name, &function, n),
                            "EnvId": crate::model::exec_env_id(&function, n),
                            "Replica": true,
                        }));
                    }
                }
                Err(e) if e.status == 429 => {
                    tracing::debug!("no environment added: {}", e.message);
                    break l.runtimes.lease_wait(&c).await;
                }
                Err(e) => return Err(e),
            }
        };
        let runtimes = l.runtimes.clone();
        tokio::spawn(async move { runtimes.invoke(&c, lease, body).await })
    } else {
        let runtimes = l.runtimes.clone();
        tokio::task::spawn_blocking(move || run_handler(&runtimes, &c, &body))
    };
    Ok((slot, task))
}

/// Ours: what `vpc invoke F -- CMD` asks before running CMD itself.
async fn claim(
    State(l): State<Lambda>,
    Path(f): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Reply, ApiError> {
    let env = q(&query, "env").and_then(|e| e.parse().ok()).unwrap_or(1);
    let qualifier = qualifier(q(&query, "Qualifier"))?;
    l.blocking(move |_, ops| {
        let c = ask(
            ops,
            Op::Claim {
                function: fname(&f),
                env,
                qualifier,
                dry_run: false,
            },
        )?;
        Ok(json_reply(200, &c))
    })
    .await
}

/// Ours: `{"AdvanceMs": N}` moves a test clock.
async fn advance_clock(State(l): State<Lambda>, body: Bytes) -> Result<Reply, ApiError> {
    let b = json_body(&body)?;
    let ms = b
        .get("AdvanceMs")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| ApiError::invalid("AdvanceMs: milliseconds expected"))?;
    l.blocking(move |_, ops| Ok(json_reply(200, &ask(ops, Op::AdvanceClock { ms })?)))
        .await
}

/// Ours: `POST /_vpc/ram/(dis)associate-resource-share`.
async fn share(
    State(l): State<Lambda>,
    Path(op): Path<String>,
    method: Method,
    Extension(RequestPath(path)): Extension<RequestPath>,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let associate = match op.as_str() {
        "associate-resource-share" => true,
        "disassociate-resource-share" => false,
        _ => return Err(unknown(&method, &path)),
    };
    let b = json_body(&body)?;
    let list = |k: &str| -> Vec<String> {
        b.get(k)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let share = b
        .get("ResourceShare")
        .and_then(|v| v.as_str())
        .ok_or_else(|| ApiError::invalid("ResourceShare: its Name or logical id"))?
        .to_string();
    let op = Op::Share {
        share,
        subnets: list("SubnetIds"),
        principals: list("Principals"),
        associate,
    };
    l.blocking(move |_, ops| Ok(json_reply(200, &ask(ops, op)?)))
        .await
}

/// CreateFunction, in the caller's account.
async fn create_function(
    State(l): State<Lambda>,
    caller: Option<Extension<Caller>>,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let size = body.len();
    let mut body = json_body(&body)?;
    if !body.is_object() {
        return Err(ApiError::invalid("the request body is not a JSON object"));
    }
    let (account, access_key) = match caller {
        Some(Extension(c)) => (c.account(), c.access_key),
        None => (None, None),
    };
    // The code is read here (a zip of up to 50 MB), not on the agent's loop.
    let req = std::mem::take(&mut body["Code"]);
    let code = request_code(&l, req, "CreateFunction", size).await?;
    l.blocking(move |_, ops| {
        let c = ask(
            ops,
            Op::Create {
                body,
                account,
                code,
                access_key,
            },
        )?;
        Ok(json_reply(201, &c))
    })
    .await
}

/// A version qualifier: `None` for `$LATEST`.
fn qualifier(q: Option<String>) -> Result<Option<u32>, ApiError> {
    match q.as_deref() {
        None | Some("$LATEST") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::invalid(format!(
                "Qualifier {v:?}: a version number or $LATEST (aliases are not supported here)"
            ))
        }),
    }
}

fn load(name: &str) -> Result<(DeploymentState, Lifecycle), ApiError> {
    Ok((
        DeploymentState::load(name).map_err(internal)?,
        Lifecycle::load(name).map_err(internal)?,
    ))
}

fn get_configuration(name: &str, f: &str, qualifier: Option<String>) -> Result<Value, ApiError> {
    let (s, lc) = load(name)?;
    let func = s.model.function(f).ok_or_else(|| ApiError::not_found(f))?;
    let st = lc.functions.get(&func.id).cloned().unwrap_or_default();
    let version = match qualifier.as_deref() {
        None | Some("$LATEST") => None,
        Some(q) => Some(
            q.parse::<u32>()
                .ok()
                .and_then(|n| st.life.versions.iter().find(|v| v.version == n))
                .ok_or_else(|| ApiError::not_found(&format!("{}:{q}", func.name)))?,
        ),
    };
    // A version reports its own execution environments' state.
    let vst = version.and_then(|v| {
        lc.functions
            .get(&lifecycle::version_id(&func.id, v.version))
    });
    Ok(lifecycle::configuration(
        &s.model,
        func,
        vst.unwrap_or(&st),
        version,
    ))
}

/// An HTTP response from the agent.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    /// `Err` with Lambda's error type and message for an error response.
    pub fn ok(self) -> Result<Self> {
        if self.status < 300 {
            return Ok(self);
        }
        let kind = self
            .header("x-amzn-ErrorType")
            .unwrap_or("Error")
            .to_string();
        let v = self.json();
        let msg = v["message"].as_str().unwrap_or_default();
        bail!("{kind}: {msg} (HTTP {})", self.status)
    }
}

/// One request to the agent's API over its Unix socket (the CLI's client).
pub fn call(name: &str, method: &str, path: &str, body: &[u8]) -> Result<Response> {
    call_with(name, method, path, &[], body)
}

/// [`call`] with headers of the caller's (`X-Amz-Log-Type: Tail`, ...).
pub fn call_with(
    name: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response> {
    let sock = socket_path(name);
    let mut s = UnixStream::connect(&sock).with_context(|| {
        format!(
            "the agent of {name:?} does not answer on {} (is the deployment up and its agent running?)",
            sock.display()
        )
    })?;
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut raw = vec![];
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("API: malformed response")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .context("API: no status")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    let mut i = 0;
    while let Some(eol) = b[i..].windows(2).position(|w| w == b"\r\n") {
        let n =
            usize::from_str_radix(String::from_utf8_lossy(&b[i..i + eol]).trim(), 16).unwrap_or(0);
        i += eol + 2;
        if n == 0 || i + n > b.len() {
            break;
        }
        out.extend_from_slice(&b[i..i + n]);
        i += n + 2;
    }
    out
}

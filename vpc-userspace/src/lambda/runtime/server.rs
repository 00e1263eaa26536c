//! The Runtime API (2018-06-01) of one execution environment: what its
//! runtime process asks for (`GET .../invocation/next`) and posts back
//! (`.../response`, `.../error`, `/runtime/init/error`).
use super::*;

/// The Runtime API's routes for one environment.
pub(super) fn router(env: Arc<Env>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(env)
}

fn runtime_error(status: StatusCode, kind: &str, msg: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({"errorType": kind, "errorMessage": msg}).to_string(),
    )
        .into_response()
}

/// `GET /runtime/invocation/next`: waits (as long as it takes) for the
/// next event.
async fn next(State(env): State<Arc<Env>>) -> Response {
    let inv = {
        let mut q = env.next.lock().await;
        q.recv().await
    };
    let Some(inv) = inv else {
        return runtime_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Runtime.Unknown",
            "stopping",
        );
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let deadline = (now + inv.timeout).as_millis();
    let trace = format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        now.as_secs(),
        &inv.id.replace('-', "")[..24],
        &inv.id.replace('-', "")[16..32]
    );
    env.in_flight
        .lock()
        .expect("lock")
        .insert(inv.id.clone(), inv.events.clone());
    let _ = inv.events.send(Event::Started);
    (
        StatusCode::OK,
        [
            ("content-type", "application/json".to_string()),
            ("lambda-runtime-aws-request-id", inv.id.clone()),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            ("lambda-runtime-invoked-function-arn", inv.arn.clone()),
            ("lambda-runtime-trace-id", trace),
        ],
        inv.payload,
    )
        .into_response()
}

/// The invocation `id` is answered: its sender, taken out.
fn take(env: &Env, id: &str) -> Option<mpsc::UnboundedSender<Event>> {
    env.in_flight.lock().expect("lock").remove(id)
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [("content-type", "application/json")],
        r#"{"status":"OK"}"#,
    )
        .into_response()
}

fn unknown_id(id: &str) -> Response {
    runtime_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        &format!("no invocation {id} is in progress"),
    )
}

/// `POST /runtime/invocation/{id}/response`.
async fn response(
    State(env): State<Arc<Env>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    match take(&env, &id) {
        Some(tx) => {
            let _ = tx.send(Event::Response(body));
            accepted()
        }
        None => unknown_id(&id),
    }
}

/// `POST /runtime/invocation/{id}/error`: the body is the error document
/// (`errorMessage`, `errorType`, `stackTrace`); one that is not gets
/// wrapped, with `Lambda-Runtime-Function-Error-Type` as its type.
async fn error(
    State(env): State<Arc<Env>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(tx) = take(&env, &id) else {
        return unknown_id(&id);
    };
    let body = match serde_json::from_slice::<Value>(&body) {
        Ok(v) if v.is_object() => body,
        _ => {
            let kind = headers
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("Unhandled");
            Bytes::from(
                json!({"errorType": kind, "errorMessage": String::from_utf8_lossy(&body)})
                    .to_string(),
            )
        }
    };
    let _ = tx.send(Event::Error(body));
    accepted()
}

/// `POST /runtime/init/error`: the environment failed to start.
async fn init_error(State(env): State<Arc<Env>>, body: Bytes) -> Response {
    env.health.send_replace(Health::InitError(body));
    accepted()
}

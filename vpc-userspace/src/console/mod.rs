//! The console (`/console` on the agent's endpoint): the deployment's
//! functions, their VPC access, the topology with live counters, and the
//! flows, in a browser. Like AWS's console, the page is a client of the
//! real APIs: functions are listed, edited and invoked through the Lambda
//! API on the same endpoint; what the Lambda API does not show (the
//! topology drawn from the desired state, the datapath's counters,
//! connections and drops, `explain`) comes from `/console/api/...`.
//!
//! Every asset is embedded in the binary (`include_str!`): the page
//! fetches nothing but the agent, so it works on a machine with no
//! internet. No framework and no build step: one HTML page, one script,
//! one stylesheet, the topology drawn as SVG by the script.
pub mod explain;
pub mod flows;
pub mod state;

pub use crate::ec2::ids::shown;

use std::sync::Arc;

use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};

/// Is `path` the console's (`/console`, `/console/...`)?
pub fn serves(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// May a request naming `host` (its `Host` header) see the console? Only
/// under a loopback name or address: a page elsewhere that rebinds its
/// own name to 127.0.0.1 (DNS rebinding) must not read the deployment.
/// The Unix socket's clients name whatever they like, and `None` (no
/// header) is theirs too.
pub fn host_allowed(host: Option<&str>) -> bool {
    let Some(h) = host else { return true };
    let name = match h.strip_prefix('[') {
        // `[::1]:port`
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => h.rsplit_once(':').map_or(h, |(n, _)| n),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

/// The console of deployment `name`.
pub fn router(name: &str) -> Router {
    Router::new()
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/console.js", get(script))
        .route("/console/console.css", get(stylesheet))
        .route("/console/api/state", get(state::handle))
        .route("/console/api/counters", get(flows::counters))
        .route("/console/api/flows", get(flows::flows))
        .route("/console/api/explain", get(explain::handle))
        .fallback(not_found)
        .with_state(Arc::new(name.to_string()))
}

/// The deployment a handler serves.
pub type Deployment = State<Arc<String>>;

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The agent's binary is the version: no stale page after an upgrade.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset(
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    )
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    )
}

async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    )
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such page of the console")
}

/// An error as the console's script shows it: `{"message": ...}`.
pub fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "message": message }))).into_response()
}

/// Runs `f` (which reads the store or the maps: it blocks) on the blocking
/// pool and answers its value as JSON, or its error as a 500.
pub async fn blocking_json<T: serde::Serialize + Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_see_the_console() {
        for ok in [
            None,
            Some("127.0.0.1:4566"),
            Some("localhost:80"),
            Some("[::1]:9"),
            Some("127.0.0.1"),
        ] {
            assert!(host_allowed(ok), "{ok:?}");
        }
        for no in [
            Some("evil.example:4566"),
            Some("10.0.1.4:80"),
            Some("[2001:db8::1]:1"),
            Some(""),
        ] {
            assert!(!host_allowed(no), "{no:?}");
        }
        assert!(serves("/console") && serves("/console/api/state") && !serves("/consoles"));
    }
}

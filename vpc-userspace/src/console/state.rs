//! `/console/api/state`: the desired state as the topology draws it.
use axum::response::Response;

use super::{blocking_json, Deployment};

pub async fn handle(axum::extract::State(name): Deployment) -> Response {
    let _ = name;
    blocking_json(|| Ok(serde_json::json!({}))).await
}

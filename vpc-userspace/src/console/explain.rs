//! `/console/api/explain`: `vpc explain` for a row of the flows view.
use axum::response::Response;

use super::{blocking_json, Deployment};

pub async fn handle(axum::extract::State(name): Deployment) -> Response {
    let _ = name;
    blocking_json(|| Ok(serde_json::json!({}))).await
}

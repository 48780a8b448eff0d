//! `/healthz` (the process is alive), `/readyz` (PostgreSQL and RabbitMQ are reachable) and
//! `/metrics` (Prometheus).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use diesel_async::RunQueryDsl;
use passgate_core::db;
use serde_json::json;

use crate::state::AppState;

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when a database query and the broker connection both work.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200), (status = 503)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let database = tokio::time::timeout(Duration::from_secs(2), async {
        let mut conn = db::conn(&state.db).await.ok()?;
        diesel::sql_query("SELECT 1").execute(&mut conn).await.ok()
    })
    .await
    .ok()
    .flatten()
    .is_some();
    let broker = state
        .broker
        .borrow()
        .as_ref()
        .is_some_and(|b| b.conn.status().connected() && b.channel.status().connected());
    let status = if database && broker {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if status == StatusCode::OK { "ready" } else { "unavailable" },
        "database": if database { "up" } else { "down" },
        "broker": if broker { "up" } else { "down" },
    });
    (status, Json(body)).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => handle.render().into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled").into_response(),
    }
}

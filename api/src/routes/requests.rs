//! `GET /v1/requests/{request_id}`: the state and, once final, the answer of a command.

use axum::Json;
use axum::extract::{Path, State};
use passgate_core::db;
use passgate_schema::ids::RequestId;
use passgate_schema::models::auth_requests::AuthRequest;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::commands::open_body;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Poll a request.
///
/// `result` (success) or `error` (failure) is exactly the body the waiting call would have
/// returned. Unknown ids and other apps' ids are `404 not_found`.
#[utoipa::path(
    get, path = "/v1/requests/{request_id}", tag = "requests",
    params(("request_id" = String, Path)),
    responses(
        (status = 200, description = "`{request_id, type, status, created_at, completed_at, http_status, result | error}`"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`not_found`"),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: RequestId = id.parse().map_err(|_| ApiError::NotFound)?;
    let mut conn = db::conn(&state.db).await?;
    let row = AuthRequest::find(&mut conn, caller.app_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    drop(conn);
    let mut out = json!({
        "request_id": row.id,
        "type": row.kind,
        "status": row.status,
        "created_at": row.created_at,
        "completed_at": row.completed_at,
        "http_status": row.http_status,
    });
    if row.is_final() {
        let body = open_body(
            &state,
            row.id,
            row.response.clone(),
            row.response_sealed.as_deref(),
        )?;
        let key = if row.http_status.unwrap_or(500) < 400 {
            "result"
        } else {
            "error"
        };
        out[key] = body;
    }
    Ok(Json(out))
}

//! Sessions: refresh-token rotation, fresh tokens for a live session, logout.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use passgate_schema::ids::SessionId;
use passgate_schema::messages::{MessageKind, SessionCommand, TokenRefresh};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::commands::{Submission, submit};
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::routes::otp::TokensResponse;
use crate::state::AppState;

pub const REFRESH_SEAL_PURPOSE: &str = "refresh-token";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

impl std::fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshRequest { refresh_token: <redacted> }")
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    #[schema(value_type = String)]
    pub session_id: SessionId,
}

/// Rotate a refresh token: new tokens; the presented token stops working. Presenting a rotated
/// token again revokes the whole session.
#[utoipa::path(
    post, path = "/v1/auth/token/refresh", tag = "sessions",
    request_body = RefreshRequest,
    responses(
        (status = 200, body = TokensResponse),
        (status = 401, body = ErrorBody, description = "`auth_invalid_credentials` (unknown, expired, rotated or revoked), `unauthorized`"),
        (status = 403, body = ErrorBody, description = "`user_not_active`"),
    ),
    security(("bearer" = []))
)]
pub async fn refresh(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonBody<RefreshRequest>,
) -> Result<Response, ApiError> {
    let token = body.value.refresh_token.trim();
    if token.is_empty() || token.len() > 256 {
        return Err(ApiError::invalid(
            "refresh_token",
            "must be 1 to 256 characters",
        ));
    }
    let submission = Submission::from_headers(MessageKind::TokenRefresh, &headers, &body.raw)?;
    let context = format!("{REFRESH_SEAL_PURPOSE}:{}", submission.id);
    let refresh_token_sealed = state
        .transport
        .seal_b64(context.as_bytes(), token.as_bytes())
        .map_err(ApiError::internal)?;
    submit(
        &state,
        &caller,
        submission,
        TokenRefresh {
            refresh_token_sealed,
        },
    )
    .await
}

/// Fresh tokens for a live session.
#[utoipa::path(
    post, path = "/v1/auth/session/authenticate", tag = "sessions",
    request_body = SessionRequest,
    responses(
        (status = 200, body = TokensResponse),
        (status = 404, body = ErrorBody, description = "`session_not_found`"),
        (status = 403, body = ErrorBody, description = "`user_not_active`"),
    ),
    security(("bearer" = []))
)]
pub async fn authenticate(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonBody<SessionRequest>,
) -> Result<Response, ApiError> {
    let submission =
        Submission::from_headers(MessageKind::SessionAuthenticate, &headers, &body.raw)?;
    submit(
        &state,
        &caller,
        submission,
        SessionCommand {
            session_id: body.value.session_id,
        },
    )
    .await
}

/// End a session: its refresh tokens stop working.
#[utoipa::path(
    post, path = "/v1/auth/session/logout", tag = "sessions",
    request_body = SessionRequest,
    responses(
        (status = 204, description = "logged out"),
        (status = 404, body = ErrorBody, description = "`session_not_found`"),
    ),
    security(("bearer" = []))
)]
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonBody<SessionRequest>,
) -> Result<Response, ApiError> {
    let submission = Submission::from_headers(MessageKind::SessionLogout, &headers, &body.raw)?;
    submit(
        &state,
        &caller,
        submission,
        SessionCommand {
            session_id: body.value.session_id,
        },
    )
    .await
}

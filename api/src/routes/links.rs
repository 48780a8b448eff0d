//! Email magic links: `POST /v1/auth/link/email/send` and `POST /v1/auth/link/email/authenticate`.
//!
//! The email points at the caller's `redirect_uri` (exactly as allow-listed for the app) with
//! `code` and `state`; the caller's backend then authenticates the code. A mail scanner
//! fetching the link consumes nothing.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use passgate_schema::ids::SessionId;
use passgate_schema::messages::{IdentifierType, LinkAuthenticate, LinkSend, MessageKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::commands::{Submission, submit};
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::routes::otp::{AcceptedResponse, TokensResponse};
use crate::state::AppState;
use crate::validate;

pub const CODE_SEAL_PURPOSE: &str = "link-code";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkSendRequest {
    /// The address to send to (or use `identifier_type` + `identifier`).
    pub email: Option<String>,
    #[schema(value_type = Option<String>, example = "email")]
    pub identifier_type: Option<IdentifierType>,
    pub identifier: Option<String>,
    /// Must be on the app's allow-list, exactly.
    #[schema(example = "https://app.example.com/auth/callback")]
    pub redirect_uri: String,
    /// Returned untouched in the link.
    pub state: Option<String>,
    /// Link lifetime in minutes, 1–60 (default 15).
    pub email_expiration: Option<u32>,
    #[serde(default)]
    pub create_new_user: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkSendResponse {
    pub message: String,
    pub expires_at: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkAuthenticateRequest {
    /// The `code` parameter the link brought to your `redirect_uri`.
    pub code: String,
    #[schema(value_type = Option<String>)]
    pub session_id: Option<SessionId>,
}

impl std::fmt::Debug for LinkAuthenticateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkAuthenticateRequest")
            .field("code", &"<redacted>")
            .field("session_id", &self.session_id)
            .finish()
    }
}

/// Checks a redirect URI's form (the allow-list check is the worker's, against the app).
fn redirect_uri(raw: &str) -> Result<String, ApiError> {
    let field = "redirect_uri";
    if raw.len() > 2048 {
        return Err(ApiError::invalid(field, "longer than 2048 characters"));
    }
    let url = url::Url::parse(raw)
        .map_err(|e| ApiError::invalid(field, format!("not an absolute URL: {e}")))?;
    if url.cannot_be_a_base() || url.fragment().is_some() {
        return Err(ApiError::invalid(
            field,
            "must be an absolute URL without a fragment",
        ));
    }
    Ok(raw.to_owned())
}

/// Send a magic link by email.
#[utoipa::path(
    post, path = "/v1/auth/link/email/send", tag = "links",
    request_body = LinkSendRequest,
    params(
        ("Prefer" = Option<String>, Header, description = "`respond-async` for 202 + polling"),
        ("Idempotency-Key" = Option<String>, Header),
        ("Passgate-Client-IP" = Option<String>, Header, description = "the end user's IP address (IPv4, or IPv6 counted per /64), for the per-IP send limit"),
    ),
    responses(
        (status = 200, body = LinkSendResponse),
        (status = 202, body = AcceptedResponse),
        (status = 400, body = ErrorBody, description = "`system_invalid_input`, `redirect_uri_not_allowed`"),
        (status = 401, body = ErrorBody, description = "`unauthorized`"),
        (status = 429, body = ErrorBody, description = "`too_many_requests`, with Retry-After"),
        (status = 503, body = ErrorBody, description = "`service_unavailable`"),
    ),
    security(("bearer" = []))
)]
pub async fn send(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonBody<LinkSendRequest>,
) -> Result<Response, ApiError> {
    let req = body.value;
    let (identifier_type, identifier) = match (req.email, req.identifier_type, req.identifier) {
        (Some(email), None, None) => (IdentifierType::Email, validate::email("email", &email)?),
        (None, Some(kind), Some(identifier)) => (kind, validate::identifier(kind, &identifier)?),
        _ => {
            return Err(ApiError::invalid(
                "email",
                "give either email, or identifier_type and identifier",
            ));
        }
    };
    if req.create_new_user && identifier_type != IdentifierType::Email {
        return Err(ApiError::invalid(
            "create_new_user",
            "a new user needs an email identifier",
        ));
    }
    if let Some(minutes) = req.email_expiration
        && !(1..=60).contains(&minutes)
    {
        return Err(ApiError::invalid(
            "email_expiration",
            "must be between 1 and 60 minutes",
        ));
    }
    if req.state.as_ref().is_some_and(|s| s.len() > 1024) {
        return Err(ApiError::invalid("state", "longer than 1024 characters"));
    }
    let payload = LinkSend {
        identifier_type,
        identifier,
        redirect_uri: redirect_uri(&req.redirect_uri)?,
        state: req.state,
        expires_in: req.email_expiration,
        create_new_user: req.create_new_user,
        client_ip: validate::client_ip(&headers)?,
    };
    let submission = Submission::from_headers(MessageKind::LinkSend, &headers, &body.raw)?;
    submit(&state, &caller, submission, payload).await
}

/// Authenticate with a magic-link code (single use).
#[utoipa::path(
    post, path = "/v1/auth/link/email/authenticate", tag = "links",
    request_body = LinkAuthenticateRequest,
    responses(
        (status = 200, body = TokensResponse),
        (status = 202, body = AcceptedResponse),
        (status = 400, body = ErrorBody, description = "`invalid_magic_link_code`, `system_invalid_input`"),
        (status = 401, body = ErrorBody, description = "`unauthorized`"),
        (status = 403, body = ErrorBody, description = "`user_not_active`"),
        (status = 404, body = ErrorBody, description = "`session_not_found`"),
    ),
    security(("bearer" = []))
)]
pub async fn authenticate(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonBody<LinkAuthenticateRequest>,
) -> Result<Response, ApiError> {
    let req = body.value;
    let code = req.code.trim();
    if code.is_empty() || code.len() > 128 {
        return Err(ApiError::invalid("code", "must be 1 to 128 characters"));
    }
    let submission = Submission::from_headers(MessageKind::LinkAuthenticate, &headers, &body.raw)?;
    let context = format!("{CODE_SEAL_PURPOSE}:{}", submission.id);
    let code_sealed = state
        .transport
        .seal_b64(context.as_bytes(), code.as_bytes())
        .map_err(ApiError::internal)?;
    let payload = LinkAuthenticate {
        code_sealed,
        session_id: req.session_id,
    };
    submit(&state, &caller, submission, payload).await
}

//! One-time codes: `POST /v1/auth/otp/send` and `POST /v1/auth/otp/authenticate`.
//!
//! The API validates and normalises; the codegen worker creates the code (stored as a keyed
//! hash), the delivery worker sends it, the verify worker checks it. The passcode a caller
//! submits is sealed before it enters the broker.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use passgate_schema::ids::SessionId;
use passgate_schema::messages::{Channel, IdentifierType, MessageKind, OtpAuthenticate, OtpSend};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::commands::{Submission, submit};
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::state::AppState;
use crate::validate;

pub const PASSCODE_SEAL_PURPOSE: &str = "otp-passcode";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpSendRequest {
    /// `email` or `sms`.
    #[schema(value_type = String, example = "email")]
    pub channel: Channel,
    #[schema(value_type = String, example = "email")]
    pub identifier_type: IdentifierType,
    #[schema(example = "alice@example.com")]
    pub identifier: String,
    /// Code lifetime in minutes, 1–10 (default 5).
    pub expires_in: Option<u32>,
    /// Create the user on successful authentication when unknown (default false).
    #[serde(default)]
    pub create_new_user: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OtpSendResponse {
    pub message: String,
    pub code_length: u32,
    pub expires_at: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpAuthenticateRequest {
    #[schema(value_type = String, example = "email")]
    pub identifier_type: IdentifierType,
    pub identifier: String,
    #[schema(example = "123456")]
    pub passcode: String,
    /// Adds this factor to an existing session.
    #[schema(value_type = Option<String>)]
    pub session_id: Option<SessionId>,
}

impl std::fmt::Debug for OtpAuthenticateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtpAuthenticateRequest")
            .field("identifier_type", &self.identifier_type)
            .field("passcode", &"<redacted>")
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

/// The token answer of every successful authentication.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokensResponse {
    pub access_token: String,
    pub id_token: String,
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    pub expires_in: u64,
    pub session_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedResponse {
    pub request_id: String,
    #[schema(example = "pending")]
    pub status: String,
}

/// Send a one-time code.
///
/// Sending again replaces the earlier code (the failure count of the identifier is kept).
/// An unknown user gets the same answer as a known one, and nothing is sent.
#[utoipa::path(
    post, path = "/v1/auth/otp/send", tag = "otp",
    request_body = OtpSendRequest,
    params(
        ("Prefer" = Option<String>, Header, description = "`respond-async` for 202 + polling"),
        ("Idempotency-Key" = Option<String>, Header, description = "same key + same body within 24 h = same request"),
        ("Passgate-Client-IP" = Option<String>, Header, description = "the end user's IP address (IPv4, or IPv6 counted per /64), for the per-IP send limit"),
    ),
    responses(
        (status = 200, body = OtpSendResponse),
        (status = 202, body = AcceptedResponse, headers(("Location" = String))),
        (status = 400, body = ErrorBody, description = "`system_invalid_input`"),
        (status = 401, body = ErrorBody, description = "`unauthorized`"),
        (status = 413, body = ErrorBody, description = "`payload_too_large`"),
        (status = 422, body = ErrorBody, description = "`idempotency_key_reused`"),
        (status = 429, body = ErrorBody, description = "`too_many_requests`, with Retry-After"),
        (status = 503, body = ErrorBody, description = "`service_unavailable`, with Retry-After"),
    ),
    security(("bearer" = []))
)]
pub async fn send(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonBody<OtpSendRequest>,
) -> Result<Response, ApiError> {
    let req = body.value;
    let identifier = validate::identifier(req.identifier_type, &req.identifier)?;
    let matching = matches!(
        (req.channel, req.identifier_type),
        (Channel::Email, IdentifierType::Email) | (Channel::Sms, IdentifierType::PhoneNumber)
    );
    if req.create_new_user && !matching {
        return Err(ApiError::invalid(
            "create_new_user",
            "a new user needs the identifier the code goes to (email for email, phone_number for sms)",
        ));
    }
    if let Some(minutes) = req.expires_in
        && !(1..=10).contains(&minutes)
    {
        return Err(ApiError::invalid(
            "expires_in",
            "must be between 1 and 10 minutes",
        ));
    }
    let payload = OtpSend {
        channel: req.channel,
        identifier_type: req.identifier_type,
        identifier,
        expires_in: req.expires_in,
        create_new_user: req.create_new_user,
        client_ip: validate::client_ip(&headers)?,
    };
    let submission = Submission::from_headers(MessageKind::OtpSend, &headers, &body.raw)?;
    submit(&state, &caller, submission, payload).await
}

/// Authenticate with a one-time code.
#[utoipa::path(
    post, path = "/v1/auth/otp/authenticate", tag = "otp",
    request_body = OtpAuthenticateRequest,
    params(
        ("Prefer" = Option<String>, Header, description = "`respond-async` for 202 + polling"),
        ("Idempotency-Key" = Option<String>, Header),
    ),
    responses(
        (status = 200, body = TokensResponse),
        (status = 202, body = AcceptedResponse),
        (status = 400, body = ErrorBody, description = "`auth_invalid_credentials`, `auth_otp_passcode_expired`, `system_invalid_input`"),
        (status = 401, body = ErrorBody, description = "`unauthorized`"),
        (status = 403, body = ErrorBody, description = "`auth_locked`, `user_not_active`"),
        (status = 503, body = ErrorBody, description = "`service_unavailable`"),
    ),
    security(("bearer" = []))
)]
pub async fn authenticate(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonBody<OtpAuthenticateRequest>,
) -> Result<Response, ApiError> {
    let req = body.value;
    let identifier = validate::identifier(req.identifier_type, &req.identifier)?;
    let passcode = req.passcode.trim();
    if passcode.is_empty() || passcode.len() > 32 {
        return Err(ApiError::invalid("passcode", "must be 1 to 32 characters"));
    }
    let submission = Submission::from_headers(MessageKind::OtpAuthenticate, &headers, &body.raw)?;
    let context = format!("{PASSCODE_SEAL_PURPOSE}:{}", submission.id);
    let passcode_sealed = state
        .transport
        .seal_b64(context.as_bytes(), passcode.as_bytes())
        .map_err(ApiError::internal)?;
    let payload = OtpAuthenticate {
        identifier_type: req.identifier_type,
        identifier,
        passcode_sealed,
        session_id: req.session_id,
    };
    submit(&state, &caller, submission, payload).await
}

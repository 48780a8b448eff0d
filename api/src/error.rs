//! The one HTTP error type. Every variant has a stable `error_code`; bodies never carry
//! internal details (those go to the log).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The error body of every failed call.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable, snake_case.
    #[schema(example = "system_invalid_input")]
    pub error_code: String,
    /// Human-readable; may change.
    pub message: String,
    pub status: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{field}: {message}")]
    InvalidInput { field: String, message: String },
    #[error("missing, expired or invalid access token")]
    Unauthorized,
    #[error("unknown client or wrong client secret")]
    InvalidClient,
    #[error("only the client_credentials grant is supported")]
    UnsupportedGrantType,
    #[error("not found")]
    NotFound,
    #[error("no such user")]
    UserNotFound,
    #[error("this app is disabled")]
    AppDisabled,
    #[error("a user with one of these identifiers exists")]
    UserAlreadyExists,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    #[error("request body too large (limit {0} bytes)")]
    PayloadTooLarge(usize),
    #[error("a dependency is unavailable; retry later")]
    ServiceUnavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidInput { .. } | Self::UnsupportedGrantType => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::InvalidClient => StatusCode::UNAUTHORIZED,
            Self::AppDisabled => StatusCode::FORBIDDEN,
            Self::NotFound | Self::UserNotFound => StatusCode::NOT_FOUND,
            Self::UserAlreadyExists => StatusCode::CONFLICT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } => "system_invalid_input",
            Self::Unauthorized => "unauthorized",
            Self::InvalidClient => "invalid_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::NotFound => "not_found",
            Self::UserNotFound => "user_not_found",
            Self::AppDisabled => "app_disabled",
            Self::UserAlreadyExists => "user_already_exists",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::ServiceUnavailable => "service_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }
}

impl From<passgate_core::db::DbError> for ApiError {
    fn from(e: passgate_core::db::DbError) -> Self {
        if e.is_transient() {
            tracing::warn!(error = %e, "database unavailable");
            Self::ServiceUnavailable
        } else {
            Self::internal(e)
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        passgate_core::db::DbError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Internal(e) = &self {
            tracing::error!(error = ?e, "internal error");
        }
        let body = ErrorBody {
            error_code: self.code().to_owned(),
            message: self.to_string(),
            status: status.as_u16(),
        };
        let mut response = (status, axum::Json(body)).into_response();
        match self {
            Self::ServiceUnavailable => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            }
            Self::Unauthorized | Self::InvalidClient => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

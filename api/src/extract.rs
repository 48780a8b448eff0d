//! Request extractors whose failures are documented `ApiError`s (never axum's plain-text
//! rejections): a JSON body whose errors name the offending field, and the body size limit.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body, plus its raw bytes (for the idempotency fingerprint).
pub struct JsonBody<T> {
    pub value: T,
    pub raw: Bytes,
}

impl<T> FromRequest<AppState> for JsonBody<T>
where
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let raw = Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(state.config.max_body_bytes)
                } else {
                    ApiError::invalid("body", e.body_text())
                }
            })?;
        let value = parse(&raw)?;
        Ok(Self { value, raw })
    }
}

/// Parses JSON and reports the path of the first bad field.
pub fn parse<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if path == "." || path.is_empty() {
            missing_field(&inner.to_string()).unwrap_or_else(|| "body".to_owned())
        } else {
            path
        };
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("malformed JSON: {inner}")
        } else {
            inner.to_string()
        };
        ApiError::invalid(field, message)
    })
}

fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next().map(str::to_owned)
}

//! `/oidc/token` (client credentials), the JWKS and the OpenID discovery document.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine as _;
use passgate_core::db;
use passgate_core::keys;
use passgate_schema::models::apps::App;
use passgate_schema::models::signing_keys::SigningKey;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::auth::{client_secret_matches, hash_client_secret};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// Must be `client_credentials`.
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds.
    pub expires_in: u64,
}

/// Client credentials from the form, or from HTTP Basic (`client_secret_basic`).
fn credentials(headers: &HeaderMap, form: &TokenRequest) -> Option<(String, String)> {
    if let (Some(id), Some(secret)) = (&form.client_id, &form.client_secret) {
        return Some((id.clone(), secret.clone()));
    }
    let basic = headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    let decode = |v: &str| {
        url::form_urlencoded::parse(format!("v={v}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((decode(id)?, decode(secret)?))
}

/// Exchange client credentials for a caller access token.
#[utoipa::path(
    post, path = "/oidc/token", tag = "oidc",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, body = ErrorBody, description = "`unsupported_grant_type` or `system_invalid_input`"),
        (status = 401, body = ErrorBody, description = "`invalid_client`"),
    )
)]
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<TokenResponse>, ApiError> {
    let body = body.map_err(|_| ApiError::PayloadTooLarge(state.config.max_body_bytes))?;
    let form = parse_form(&body)?;
    match form.grant_type.as_deref() {
        Some("client_credentials") => {}
        Some(_) => return Err(ApiError::UnsupportedGrantType),
        None => return Err(ApiError::invalid("grant_type", "is required")),
    }
    let (client_id, secret) = credentials(&headers, &form).ok_or(ApiError::InvalidClient)?;
    let mut conn = db::conn(&state.db).await?;
    let app = App::find_by_client_id(&mut conn, &client_id).await?;
    drop(conn);
    let key = &state.config.client_key;
    let app = match app {
        Some(app)
            if app.is_active() && client_secret_matches(key, &secret, &app.client_secret_hash) =>
        {
            app
        }
        other => {
            if other.is_none() {
                // Same work for unknown clients as for known ones.
                let _ = hash_client_secret(key, &secret);
            }
            metrics::counter!("passgate_api_client_auth_failures_total").increment(1);
            return Err(ApiError::InvalidClient);
        }
    };
    let ttl = state.config.client_token_ttl.as_secs();
    let access_token = state.client_tokens.issue(
        app.id,
        &app.client_id,
        state.clock.now(),
        i64::try_from(ttl).unwrap_or(3600),
    )?;
    Ok(Json(TokenResponse {
        access_token,
        token_type: "Bearer".to_owned(),
        expires_in: ttl,
    }))
}

fn parse_form(body: &[u8]) -> Result<TokenRequest, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| ApiError::invalid("body", format!("not a form body: {e}")))?;
    let mut form = TokenRequest {
        grant_type: None,
        client_id: None,
        client_secret: None,
    };
    for (k, v) in pairs {
        match k.as_str() {
            "grant_type" => form.grant_type = Some(v),
            "client_id" => form.client_id = Some(v),
            "client_secret" => form.client_secret = Some(v),
            _ => {}
        }
    }
    Ok(form)
}

/// The public keys that verify user tokens (JWKS).
#[utoipa::path(get, path = "/oidc/jwks", tag = "oidc", responses((status = 200, description = "JWK Set")))]
pub async fn jwks(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let mut conn = db::conn(&state.db).await?;
    let published = SigningKey::published(&mut conn, state.clock.now()).await?;
    Ok(Json(keys::jwks(&published)))
}

/// OpenID Provider metadata.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "oidc", responses((status = 200, description = "discovery document")))]
pub async fn openid_configuration(State(state): State<AppState>) -> Json<serde_json::Value> {
    let issuer = &state.config.common.issuer;
    Json(json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oidc/token"),
        "jwks_uri": format!("{issuer}/oidc/jwks"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "id_token_signing_alg_values_supported": [keys::ALGORITHM],
        "subject_types_supported": ["public"],
        "response_types_supported": ["token"],
        "claims_supported": ["iss", "sub", "aud", "iat", "exp", "sid", "amr", "email", "email_verified", "phone_number", "phone_number_verified"],
    }))
}

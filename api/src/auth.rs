//! Caller authentication. An app exchanges its client credentials at `/oidc/token` for a
//! short-lived access token (a JWT, HS256 under a key derived from `PASSGATE_CLIENT_KEY`, so
//! any number of API instances verify it without a database round trip); every `/v1` route
//! requires it as `Authorization: Bearer`.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
pub use passgate_core::crypto::hash_client_secret;
use passgate_core::crypto::{SecretKey, ct_eq};
use passgate_schema::ids::AppId;
use passgate_schema::models::apps::App;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

use crate::error::ApiError;
use crate::state::AppState;

const TOKEN_USE: &str = "client";

/// Checks a presented secret against the stored hash in constant time.
pub fn client_secret_matches(client_key: &SecretKey, secret: &str, stored: &[u8]) -> bool {
    ct_eq(&hash_client_secret(client_key, secret), stored)
}

#[derive(Debug, Serialize, Deserialize)]
struct ClientClaims {
    iss: String,
    sub: String,
    aud: String,
    iat: i64,
    exp: i64,
    app_id: AppId,
    token_use: String,
}

/// Signs and checks caller tokens.
#[derive(Clone)]
pub struct ClientTokens {
    issuer: String,
    audience: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for ClientTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTokens")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl ClientTokens {
    pub fn new(client_key: &SecretKey, issuer: &str) -> Result<Self, jsonwebtoken::errors::Error> {
        let key = client_key.derive("client-token-hs256");
        let audience = format!("{issuer}/v1");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Ok(Self {
            issuer: issuer.to_owned(),
            audience,
            encoding: EncodingKey::from_secret(key.as_bytes())?,
            decoding: DecodingKey::from_secret(key.as_bytes())?,
            validation,
        })
    }

    pub fn issue(
        &self,
        app: AppId,
        client_id: &str,
        now: DateTime<Utc>,
        ttl_secs: i64,
    ) -> Result<String, ApiError> {
        let claims = ClientClaims {
            iss: self.issuer.clone(),
            sub: client_id.to_owned(),
            aud: self.audience.clone(),
            iat: now.timestamp(),
            exp: now.timestamp() + ttl_secs,
            app_id: app,
            token_use: TOKEN_USE.to_owned(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)
    }

    /// The app a token speaks for; `None` for anything missing, expired, forged or foreign.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Option<Caller> {
        let data =
            jsonwebtoken::decode::<ClientClaims>(token, &self.decoding, &self.validation).ok()?;
        let claims = data.claims;
        // `exp` is checked by the library against the system clock; check it against ours too.
        if claims.token_use != TOKEN_USE || claims.exp <= now.timestamp() {
            return None;
        }
        Some(Caller {
            app_id: claims.app_id,
            client_id: claims.sub,
        })
    }
}

/// The authenticated calling app.
#[derive(Debug, Clone)]
pub struct Caller {
    pub app_id: AppId,
    pub client_id: String,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(ApiError::Unauthorized)?;
        let caller = state
            .client_tokens
            .verify(token.trim(), state.clock.now())
            .ok_or(ApiError::Unauthorized)?;
        // Tokens cannot be revoked, but a disabled app's old ones stop working: every route
        // checks the app (read at most once per `PASSGATE_APP_CACHE_MS` per process).
        let app = match state.apps.get(&caller.app_id, Instant::now()) {
            Some(app) => app,
            None => {
                let mut conn = passgate_core::db::conn(&state.db).await?;
                let app = App::find(&mut conn, caller.app_id)
                    .await?
                    .ok_or(ApiError::Unauthorized)?;
                let app = Arc::new(app);
                state.apps.put(app.id, app.clone(), Instant::now());
                app
            }
        };
        if !app.is_active() {
            return Err(ApiError::AppDisabled);
        }
        Ok(caller)
    }
}

//! Token signing keys (EdDSA / Ed25519) and the JWKS.
//!
//! Workers sign user tokens with the newest unretired key; its private half is stored sealed
//! under the workers' data key. The API only ever reads public keys, to publish them at
//! `/oidc/jwks`. A rotated-out key stays published until every token it signed has expired.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, RunQueryDsl};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::EncodingKey;
use passgate_schema::DbConn;
use passgate_schema::models::signing_keys::{NewSigningKey, SigningKey};
use sha2::{Digest, Sha256};

use crate::crypto::Sealer;

pub const ALGORITHM: &str = "EdDSA";

fn seal_context(kid: &str) -> Vec<u8> {
    format!("signing-key:{kid}").into_bytes()
}

/// The key workers sign with.
#[derive(Clone)]
pub struct ActiveKey {
    pub kid: String,
    pub encoding: EncodingKey,
}

impl std::fmt::Debug for ActiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("signing key {0} cannot be opened with this PASSGATE_DATA_KEY")]
    Open(String),
    #[error("signing key {0} is malformed")]
    Malformed(String),
}

/// Creates and stores a new key; returns its id.
pub async fn create(
    conn: &mut DbConn,
    sealer: &Sealer,
    now: DateTime<Utc>,
) -> Result<String, KeyError> {
    let seed: [u8; 32] = rand::random();
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    let public = signing.verifying_key().to_bytes();
    let digest = Sha256::digest(public);
    let kid = URL_SAFE_NO_PAD.encode(&digest[..12]);
    let sealed = sealer
        .seal(&seal_context(&kid), &seed)
        .map_err(|_| KeyError::Malformed(kid.clone()))?;
    NewSigningKey {
        kid: &kid,
        algorithm: ALGORITHM,
        public_key: &public,
        private_key_sealed: &sealed,
        created_at: now,
    }
    .insert(conn)
    .await?;
    Ok(kid)
}

/// The active key, created if there is none yet (one creator at a time: advisory lock).
pub async fn active(
    conn: &mut DbConn,
    sealer: &Sealer,
    now: DateTime<Utc>,
) -> Result<ActiveKey, KeyError> {
    if let Some(key) = SigningKey::active(conn).await? {
        return open(&key, sealer);
    }
    let creator = sealer.clone();
    let key = conn
        .transaction::<_, KeyError, _>(async move |conn| {
            diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                .bind::<BigInt, _>(0x7061_7373_6b65_7973_i64)
                .execute(&mut *conn)
                .await?;
            if SigningKey::active(conn).await?.is_none() {
                create(conn, &creator, now).await?;
            }
            Ok(SigningKey::active(conn).await?)
        })
        .await?;
    let key = key.ok_or_else(|| KeyError::Malformed("none".to_owned()))?;
    open(&key, sealer)
}

/// Opens a stored key for signing.
pub fn open(key: &SigningKey, sealer: &Sealer) -> Result<ActiveKey, KeyError> {
    let seed = sealer
        .open(&seal_context(&key.kid), &key.private_key_sealed)
        .map_err(|_| KeyError::Open(key.kid.clone()))?;
    let seed: [u8; 32] = seed
        .try_into()
        .map_err(|_| KeyError::Malformed(key.kid.clone()))?;
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    let der = signing
        .to_pkcs8_der()
        .map_err(|_| KeyError::Malformed(key.kid.clone()))?;
    Ok(ActiveKey {
        kid: key.kid.clone(),
        encoding: EncodingKey::from_ed_der(der.as_bytes()),
    })
}

/// The JWKS document for the given keys.
pub fn jwks(keys: &[SigningKey]) -> serde_json::Value {
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .map(|k| {
            serde_json::json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "use": "sig",
                "alg": k.algorithm,
                "kid": k.kid,
                "x": URL_SAFE_NO_PAD.encode(&k.public_key),
            })
        })
        .collect();
    serde_json::json!({ "keys": keys })
}

/// Rotation: a new key signs from now on; the others stop signing and stay published until
/// every token they signed has expired (`token_lifetime` from now).
pub async fn rotate(
    conn: &mut DbConn,
    sealer: &Sealer,
    now: DateTime<Utc>,
    token_lifetime: chrono::TimeDelta,
) -> Result<String, KeyError> {
    let sealer = sealer.clone();
    conn.transaction::<_, KeyError, _>(async move |conn| {
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<BigInt, _>(0x7061_7373_6b65_7973_i64)
            .execute(&mut *conn)
            .await?;
        let kid = create(conn, &sealer, now).await?;
        SigningKey::retire_others(conn, &kid, now, now + token_lifetime).await?;
        Ok(kid)
    })
    .await
}

/// The sealer for signing keys, derived from the workers' data key.
pub fn sealer(data_key: &crate::crypto::SecretKey) -> Sealer {
    Sealer::new(&data_key.derive("signing-keys"))
}

//! Reading configuration from the environment. Each process builds one `Config` value with
//! these helpers at start-up and passes it down; nothing reads the environment later.

use std::str::FromStr;

use crate::crypto::SecretKey;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is required (see .env.example)")]
    Missing(&'static str),
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// A required variable.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    optional(name).ok_or(ConfigError::Missing(name))
}

/// An optional variable; empty counts as unset.
pub fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A parsed variable with a default.
pub fn parse_or<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match optional(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: e.to_string(),
            }),
    }
}

/// A required 32-byte key, base64 (standard or URL-safe, padded or not) or 64 hex digits.
pub fn key(name: &'static str) -> Result<SecretKey, ConfigError> {
    let raw = required(name)?;
    SecretKey::parse(&raw).map_err(|reason| ConfigError::Invalid { name, reason })
}

/// Settings every process shares.
#[derive(Debug, Clone)]
pub struct Common {
    pub database_url: String,
    pub database_pool_size: usize,
    pub amqp_url: String,
    /// Public base URL of the API; the `iss` of every token.
    pub issuer: String,
}

impl Common {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            database_url: required("PASSGATE_DATABASE_URL")?,
            database_pool_size: parse_or("PASSGATE_DATABASE_POOL_SIZE", 8)?,
            amqp_url: required("PASSGATE_AMQP_URL")?,
            issuer: optional("PASSGATE_ISSUER")
                .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned())
                .trim_end_matches('/')
                .to_owned(),
        })
    }
}

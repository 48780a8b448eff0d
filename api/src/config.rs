//! API configuration, read once from the environment (see `.env.example`).

use std::net::SocketAddr;
use std::time::Duration;

use passgate_core::config::{self, Common, ConfigError};
use passgate_core::crypto::SecretKey;

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub common: Common,
    pub bind: SocketAddr,
    /// Hashes client secrets and signs caller tokens (`PASSGATE_CLIENT_KEY`).
    pub client_key: SecretKey,
    /// Seals secrets that travel through the broker (`PASSGATE_TRANSPORT_KEY`).
    pub transport_key: SecretKey,
    /// How long a call waits for the worker before answering `202`.
    pub wait_timeout: Duration,
    /// Lifetime of caller access tokens from `/oidc/token`.
    pub client_token_ttl: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How long a publish may wait for the broker's confirm.
    pub publish_timeout: Duration,
    /// How long an app's row is reused before it is read again (`PASSGATE_APP_CACHE_MS`):
    /// disabling an app reaches the API within this time.
    pub app_cache_ttl: Duration,
}

impl ApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let bind: String =
            config::optional("PASSGATE_API_BIND").unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        Ok(Self {
            common: Common::from_env()?,
            bind: bind
                .parse()
                .map_err(|e: std::net::AddrParseError| ConfigError::Invalid {
                    name: "PASSGATE_API_BIND",
                    reason: e.to_string(),
                })?,
            client_key: config::key("PASSGATE_CLIENT_KEY")?,
            transport_key: config::key("PASSGATE_TRANSPORT_KEY")?,
            wait_timeout: Duration::from_millis(config::parse_or(
                "PASSGATE_WAIT_TIMEOUT_MS",
                10_000,
            )?),
            client_token_ttl: Duration::from_secs(config::parse_or(
                "PASSGATE_CLIENT_TOKEN_TTL_SECS",
                3600,
            )?),
            max_body_bytes: config::parse_or("PASSGATE_MAX_BODY_BYTES", 65_536)?,
            publish_timeout: Duration::from_millis(config::parse_or(
                "PASSGATE_PUBLISH_TIMEOUT_MS",
                5_000,
            )?),
            app_cache_ttl: Duration::from_millis(config::parse_or("PASSGATE_APP_CACHE_MS", 2_000)?),
        })
    }
}

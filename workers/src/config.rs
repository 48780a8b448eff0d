//! Worker configuration, read once from the environment (see `.env.example`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::TimeDelta;
use passgate_core::config::{self, Common, ConfigError};
use passgate_core::crypto::SecretKey;

use crate::domain::otp::Policy;
use crate::domain::retry::Schedule;
use crate::roles::Role;

#[derive(Debug, Clone)]
pub enum EmailTransport {
    /// `smtp://host:port`, `smtps://…` or `smtp://…?tls=required` (lettre URL syntax).
    Smtp(String),
    /// Development: each message is written as a `.eml` file in this directory.
    Mailbox(PathBuf),
}

/// A configured secret: `Debug` never shows it.
#[derive(Clone)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone)]
pub enum SmsTransport {
    Twilio(crate::providers::sms::TwilioConfig),
    /// A generic HTTP provider: JSON `{to, body, idempotency_key}`, signed with HMAC-SHA-256.
    Webhook {
        url: String,
        secret: Redacted,
    },
    /// Development: each text message is written as a file in this directory.
    Outbox(PathBuf),
}

/// Abuse limits shared across processes (counted in PostgreSQL).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Sends (codes and links) per app per hour; an app's `settings.sends_per_hour` overrides.
    pub sends_per_app_per_hour: i32,
    /// Text messages per app and number prefix (`+` and 5 digits) per hour.
    pub sms_per_prefix_per_hour: i32,
    /// Sends per app and end-user IP address (IPv6: per /64) per hour, when the caller names
    /// the IP (`Passgate-Client-IP`).
    pub sends_per_ip_per_hour: i32,
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub common: Common,
    pub bind: SocketAddr,
    pub roles: Vec<Role>,
    /// Seals secrets that travel through the broker (`PASSGATE_TRANSPORT_KEY`).
    pub transport_key: SecretKey,
    /// Keyed hashes of codes and tokens; sealing of signing keys (`PASSGATE_DATA_KEY`).
    pub data_key: SecretKey,
    /// Email providers in priority order (failover).
    pub email: Vec<EmailTransport>,
    /// Most SMTP connections one process keeps open to each relay (`PASSGATE_SMTP_POOL_SIZE`).
    pub smtp_pool_size: u32,
    pub email_from: String,
    /// SMS providers in priority order (failover).
    pub sms: Vec<SmsTransport>,
    /// Delivery retries: delays and the number of attempts.
    pub retry: Schedule,
    /// Consecutive transient failures that open a provider's circuit, and how long it stays open.
    pub breaker_threshold: u32,
    pub breaker_cooldown: TimeDelta,
    pub otp: Policy,
    pub limits: Limits,
    pub access_token_ttl: TimeDelta,
    pub refresh_token_ttl: TimeDelta,
    pub publish_timeout: Duration,
    /// How long a worker signs with the key it loaded before checking for a rotation.
    pub signing_key_refresh: Duration,
    /// How long a worker uses an app (settings, disabled or not) it read before reading it again.
    pub app_cache_ttl: Duration,
    /// How often housekeeping runs: ended rate-limit windows deleted, expired secrets of failed
    /// deliveries erased.
    pub housekeeping_interval: Duration,
    /// How long SIGTERM waits for in-flight jobs.
    pub shutdown_grace: Duration,
}

fn secs(name: &'static str, default: i64) -> Result<TimeDelta, ConfigError> {
    Ok(TimeDelta::seconds(config::parse_or(name, default)?))
}

impl WorkerConfig {
    pub fn from_env(roles: Vec<Role>) -> Result<Self, ConfigError> {
        let bind: String = config::optional("PASSGATE_WORKERS_BIND")
            .unwrap_or_else(|| "127.0.0.1:9090".to_owned());
        // Email providers in priority order: PASSGATE_SMTP_URL, then PASSGATE_SMTP_FALLBACK_URLS.
        let mut email: Vec<EmailTransport> = config::optional("PASSGATE_SMTP_URL")
            .into_iter()
            .chain(
                config::optional("PASSGATE_SMTP_FALLBACK_URLS")
                    .map(|v| {
                        v.split(',')
                            .map(|u| u.trim().to_owned())
                            .filter(|u| !u.is_empty())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default(),
            )
            .map(EmailTransport::Smtp)
            .collect();
        if email.is_empty() {
            email.push(EmailTransport::Mailbox(PathBuf::from(
                config::optional("PASSGATE_MAILBOX_DIR").unwrap_or_else(|| "./mailbox".to_owned()),
            )));
        }
        // SMS providers in priority order: Twilio, then a generic HTTP webhook.
        let mut sms = Vec::new();
        if let Some(account_sid) = config::optional("PASSGATE_TWILIO_ACCOUNT_SID") {
            use crate::providers::sms::{TwilioConfig, TwilioSender};
            let sender = match (
                config::optional("PASSGATE_TWILIO_FROM"),
                config::optional("PASSGATE_TWILIO_MESSAGING_SERVICE_SID"),
            ) {
                (_, Some(service)) => TwilioSender::MessagingService(service),
                (Some(from), None) => TwilioSender::From(from),
                (None, None) => return Err(ConfigError::Missing("PASSGATE_TWILIO_FROM")),
            };
            sms.push(SmsTransport::Twilio(TwilioConfig {
                base_url: config::optional("PASSGATE_TWILIO_BASE_URL")
                    .unwrap_or_else(|| "https://api.twilio.com".to_owned()),
                account_sid,
                auth_token: config::required("PASSGATE_TWILIO_AUTH_TOKEN")?,
                sender,
            }));
        }
        if let Some(url) = config::optional("PASSGATE_SMS_WEBHOOK_URL") {
            sms.push(SmsTransport::Webhook {
                url,
                secret: Redacted(config::required("PASSGATE_SMS_WEBHOOK_SECRET")?),
            });
        }
        if sms.is_empty() {
            sms.push(SmsTransport::Outbox(PathBuf::from(
                config::optional("PASSGATE_SMS_OUTBOX_DIR")
                    .unwrap_or_else(|| "./sms-outbox".to_owned()),
            )));
        }
        let retry = Schedule {
            delays: match config::optional("PASSGATE_DELIVERY_RETRY_DELAYS") {
                Some(raw) => {
                    Schedule::parse_delays(&raw).map_err(|reason| ConfigError::Invalid {
                        name: "PASSGATE_DELIVERY_RETRY_DELAYS",
                        reason,
                    })?
                }
                None => Schedule::default().delays,
            },
            jitter: 0.2,
            max_attempts: config::parse_or("PASSGATE_DELIVERY_MAX_ATTEMPTS", 6)?,
        };
        let otp = Policy {
            code_length: config::parse_or("PASSGATE_OTP_LENGTH", 6)?,
            default_ttl: secs("PASSGATE_OTP_TTL_SECS", 300)?,
            max_failed_attempts: config::parse_or("PASSGATE_OTP_MAX_ATTEMPTS", 5)?,
            lockout: secs("PASSGATE_OTP_LOCKOUT_SECS", 900)?,
            resend_cooldown: secs("PASSGATE_OTP_RESEND_COOLDOWN_SECS", 30)?,
            sends_per_hour: config::parse_or("PASSGATE_OTP_SENDS_PER_HOUR", 10)?,
        };
        otp.validate().map_err(|reason| ConfigError::Invalid {
            name: "PASSGATE_OTP_*",
            reason,
        })?;
        Ok(Self {
            common: Common::from_env()?,
            bind: bind
                .parse()
                .map_err(|e: std::net::AddrParseError| ConfigError::Invalid {
                    name: "PASSGATE_WORKERS_BIND",
                    reason: e.to_string(),
                })?,
            roles,
            transport_key: config::key("PASSGATE_TRANSPORT_KEY")?,
            data_key: config::key("PASSGATE_DATA_KEY")?,
            email,
            sms,
            retry,
            breaker_threshold: config::parse_or("PASSGATE_BREAKER_THRESHOLD", 5)?,
            breaker_cooldown: secs("PASSGATE_BREAKER_COOLDOWN_SECS", 30)?,
            smtp_pool_size: config::parse_or("PASSGATE_SMTP_POOL_SIZE", 32)?,
            email_from: config::optional("PASSGATE_EMAIL_FROM")
                .unwrap_or_else(|| "Passgate <no-reply@passgate.local>".to_owned()),
            otp,
            limits: Limits {
                sends_per_app_per_hour: config::parse_or(
                    "PASSGATE_SENDS_PER_APP_PER_HOUR",
                    10_000,
                )?,
                sms_per_prefix_per_hour: config::parse_or("PASSGATE_SMS_PER_PREFIX_PER_HOUR", 50)?,
                sends_per_ip_per_hour: config::parse_or("PASSGATE_SENDS_PER_IP_PER_HOUR", 30)?,
            },
            access_token_ttl: secs("PASSGATE_ACCESS_TOKEN_TTL_SECS", 900)?,
            refresh_token_ttl: secs("PASSGATE_REFRESH_TOKEN_TTL_SECS", 30 * 24 * 3600)?,
            publish_timeout: Duration::from_millis(config::parse_or(
                "PASSGATE_PUBLISH_TIMEOUT_MS",
                5_000,
            )?),
            signing_key_refresh: Duration::from_secs(config::parse_or(
                "PASSGATE_SIGNING_KEY_REFRESH_SECS",
                30,
            )?),
            app_cache_ttl: Duration::from_millis(config::parse_or("PASSGATE_APP_CACHE_MS", 2_000)?),
            housekeeping_interval: Duration::from_secs(
                config::parse_or("PASSGATE_HOUSEKEEPING_SECS", 600u64)?.max(1),
            ),
            shutdown_grace: Duration::from_secs(config::parse_or(
                "PASSGATE_SHUTDOWN_GRACE_SECS",
                20,
            )?),
        })
    }
}

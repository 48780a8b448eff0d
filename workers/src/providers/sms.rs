//! SMS: the [`SmsSender`] trait, a client for Twilio's Messages API, and a development outbox.
//!
//! Why our own Twilio client: the crate named `twilio-rs` cannot send a message (its
//! message-create call has no To/From/Body), and the `twilio` crate hard-codes Twilio's address
//! (so tests cannot point it at a local server) and needs OpenSSL. The Messages API is one
//! form-encoded `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with Basic auth; this
//! client is that call on reqwest, with a configurable base URL, and sends Twilio's
//! `I-Twilio-Idempotency-Token` header (the delivery id) so a retried request is not sent twice.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use serde::Deserialize;

use super::SendError;

pub type SendFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<String>, SendError>> + Send + 'a>>;

/// Something that sends a text message and returns the provider's message id.
pub trait SmsSender: Send + Sync {
    fn provider(&self) -> &'static str;
    /// `idempotency_key` is stable across retries of one delivery.
    fn send<'a>(&'a self, to: &'a str, body: &'a str, idempotency_key: &'a str) -> SendFuture<'a>;
}

/// Twilio settings (`PASSGATE_TWILIO_*`).
#[derive(Clone)]
pub struct TwilioConfig {
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: String,
    /// `From` number, or a Messaging Service SID (`MG…`).
    pub sender: TwilioSender,
}

#[derive(Clone, Debug)]
pub enum TwilioSender {
    From(String),
    MessagingService(String),
}

impl std::fmt::Debug for TwilioConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioConfig")
            .field("base_url", &self.base_url)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("sender", &self.sender)
            .finish()
    }
}

pub struct Twilio {
    config: TwilioConfig,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct TwilioMessage {
    sid: Option<String>,
}

#[derive(Deserialize)]
struct TwilioError {
    code: Option<i64>,
    message: Option<String>,
}

impl Twilio {
    pub fn new(config: TwilioConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self { config, http })
    }

    async fn post(
        &self,
        to: &str,
        body: &str,
        idempotency_key: &str,
    ) -> Result<Option<String>, SendError> {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.config.base_url.trim_end_matches('/'),
            self.config.account_sid
        );
        let sender = match &self.config.sender {
            TwilioSender::From(from) => ("From", from.as_str()),
            TwilioSender::MessagingService(sid) => ("MessagingServiceSid", sid.as_str()),
        };
        let response = self
            .http
            .post(url)
            .basic_auth(&self.config.account_sid, Some(&self.config.auth_token))
            .header("I-Twilio-Idempotency-Token", idempotency_key)
            .form(&[("To", to), sender, ("Body", body)])
            .send()
            .await
            .map_err(|e| SendError::Transient(format!("twilio unreachable: {e}")))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            let message: TwilioMessage =
                serde_json::from_str(&text).unwrap_or(TwilioMessage { sid: None });
            return Ok(message.sid);
        }
        let error: TwilioError = serde_json::from_str(&text).unwrap_or(TwilioError {
            code: None,
            message: None,
        });
        let detail = format!(
            "twilio {}: code {} {}",
            status.as_u16(),
            error
                .code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".to_owned()),
            error.message.unwrap_or_default()
        );
        Err(refused(status, detail))
    }
}

impl SmsSender for Twilio {
    fn provider(&self) -> &'static str {
        "twilio"
    }

    fn send<'a>(&'a self, to: &'a str, body: &'a str, idempotency_key: &'a str) -> SendFuture<'a> {
        Box::pin(self.post(to, body, idempotency_key))
    }
}

/// A generic HTTP SMS provider (e.g. a gateway of the operator's): `POST url` with JSON
/// `{"to", "body", "idempotency_key"}` and header `Passgate-Signature: sha256=<hex HMAC-SHA-256
/// of the body under the shared secret>`; 2xx = sent (`id` or `message_id` in a JSON answer is
/// kept), 429 and 5xx = transient, other statuses = permanent.
pub struct Webhook {
    url: String,
    secret: String,
    http: reqwest::Client,
}

impl Webhook {
    pub fn new(url: String, secret: String) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self { url, secret, http })
    }

    async fn post(
        &self,
        to: &str,
        body: &str,
        idempotency_key: &str,
    ) -> Result<Option<String>, SendError> {
        use hmac::{Hmac, KeyInit, Mac};
        let payload =
            serde_json::json!({ "to": to, "body": body, "idempotency_key": idempotency_key })
                .to_string();
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(self.secret.as_bytes())
            .map_err(|e| SendError::Permanent(e.to_string()))?;
        mac.update(payload.as_bytes());
        let signature: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let response = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("Passgate-Signature", format!("sha256={signature}"))
            .header("Idempotency-Key", idempotency_key)
            .body(payload)
            .send()
            .await
            .map_err(|e| SendError::Transient(format!("sms webhook unreachable: {e}")))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            return Ok(v["id"]
                .as_str()
                .or(v["message_id"].as_str())
                .map(str::to_owned));
        }
        let detail = format!(
            "sms webhook {}: {}",
            status.as_u16(),
            text.chars().take(200).collect::<String>()
        );
        Err(refused(status, detail))
    }
}

impl SmsSender for Webhook {
    fn provider(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(&'a self, to: &'a str, body: &'a str, idempotency_key: &'a str) -> SendFuture<'a> {
        Box::pin(self.post(to, body, idempotency_key))
    }
}

/// Development: each text message is written as a file in a directory.
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    pub fn new(dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }
}

impl SmsSender for Outbox {
    fn provider(&self) -> &'static str {
        "outbox"
    }

    fn send<'a>(&'a self, to: &'a str, body: &'a str, idempotency_key: &'a str) -> SendFuture<'a> {
        Box::pin(async move {
            let path = self.dir.join(format!("{idempotency_key}.txt"));
            tokio::fs::write(&path, format!("To: {to}\n\n{body}\n"))
                .await
                .map_err(|e| SendError::Transient(e.to_string()))?;
            Ok(Some(idempotency_key.to_owned()))
        })
    }
}

/// An HTTP provider's refusal: `429` and `5xx` are worth retrying, and so are `401` and `403`
/// (the provider refuses our credentials or account: its fault, not the message's, so the
/// next provider is tried and the circuit counts it); any other status is final.
fn refused(status: reqwest::StatusCode, detail: String) -> SendError {
    if matches!(status.as_u16(), 401 | 403 | 429) || status.is_server_error() {
        SendError::Transient(detail)
    } else {
        SendError::Permanent(detail)
    }
}

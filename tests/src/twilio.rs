//! A local HTTP server that speaks Twilio's Messages API (`POST
//! /2010-04-01/Accounts/{AccountSid}/Messages.json`): it checks the account SID in the path,
//! HTTP Basic auth and the form fields `To`, `From`/`MessagingServiceSid` and `Body`, and
//! answers like Twilio, including its error JSON. Tests can make it fail on purpose.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use serde_json::json;
use tokio::sync::Notify;

pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
pub const AUTH_TOKEN: &str = "test-auth-token";
pub const FROM: &str = "+15005550006";

#[derive(Debug, Clone)]
pub struct Sms {
    pub to: String,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub body: String,
    pub idempotency_token: Option<String>,
}

impl Sms {
    /// The first run of digits in the body.
    pub fn code(&self) -> Option<String> {
        let start = self.body.find(|c: char| c.is_ascii_digit())?;
        Some(
            self.body[start..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect(),
        )
    }
}

#[derive(Clone, Default)]
pub struct FakeTwilio {
    messages: Arc<Mutex<Vec<Sms>>>,
    /// Statuses to answer with before accepting (e.g. `[500, 429]`), consumed in order.
    failures: Arc<Mutex<Vec<u16>>>,
    arrived: Arc<Notify>,
    pub port: u16,
}

fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16(),
        })),
    )
        .into_response()
}

async fn create(
    State(fake): State<FakeTwilio>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if sid != ACCOUNT_SID {
        return twilio_error(
            StatusCode::NOT_FOUND,
            20404,
            "The requested resource was not found",
        );
    }
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let form: HashMap<String, String> = serde_urlencoded_pairs(&body);
    let failure = fake
        .failures
        .lock()
        .ok()
        .and_then(|mut f| (!f.is_empty()).then(|| f.remove(0)));
    if let Some(status) = failure {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status == StatusCode::UNAUTHORIZED {
            return twilio_error(status, 20003, "Authenticate");
        }
        if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
            // Like Twilio's answer for a number it refuses: the message names the number.
            let to = form.get("To").cloned().unwrap_or_default();
            return twilio_error(
                status,
                21211,
                &format!("The 'To' number {to} is not a valid phone number."),
            );
        }
        let code = if status == StatusCode::TOO_MANY_REQUESTS {
            20429
        } else {
            20500
        };
        return twilio_error(status, code, "Injected failure");
    }
    let Some(to) = form.get("To") else {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21604,
            "A 'To' phone number is required.",
        );
    };
    if !to.starts_with('+') || to.len() < 9 {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21211,
            &format!("The 'To' number {to} is not a valid phone number."),
        );
    }
    let (from, service) = (
        form.get("From").cloned(),
        form.get("MessagingServiceSid").cloned(),
    );
    if from.is_none() && service.is_none() {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21603,
            "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
        );
    }
    let Some(text) = form.get("Body").filter(|b| !b.is_empty()) else {
        return twilio_error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    };
    let sms = Sms {
        to: to.clone(),
        from: from.clone(),
        messaging_service_sid: service,
        body: text.clone(),
        idempotency_token: headers
            .get("i-twilio-idempotency-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let sid = format!("SM{}", uuid::Uuid::new_v4().simple());
    if let Ok(mut m) = fake.messages.lock() {
        // Like a provider that honours idempotency keys: a repeated key sends nothing new.
        let repeated = sms.idempotency_token.is_some()
            && m.iter()
                .any(|old| old.idempotency_token == sms.idempotency_token);
        if !repeated {
            m.push(sms);
        }
    }
    fake.arrived.notify_waiters();
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "sid": sid, "account_sid": ACCOUNT_SID, "to": to, "from": from, "body": text,
            "status": "queued", "num_segments": "1", "direction": "outbound-api",
            "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"),
        })),
    )
        .into_response()
}

fn serde_urlencoded_pairs(body: &str) -> HashMap<String, String> {
    url_decode_pairs(body).into_iter().collect()
}

fn url_decode_pairs(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((
                crate::smtp::decode_component(k),
                crate::smtp::decode_component(v),
            ))
        })
        .collect()
}

pub const WEBHOOK_SECRET: &str = "test-webhook-secret";

/// A generic SMS webhook provider (`POST /sms-webhook`, JSON, HMAC-signed): checks the
/// signature and records the message like Twilio does.
async fn webhook(State(fake): State<FakeTwilio>, headers: HeaderMap, body: String) -> Response {
    use hmac::{Hmac, KeyInit, Mac};
    let Ok(mut mac) = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(WEBHOOK_SECRET.as_bytes())
    else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    mac.update(body.as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let given = headers
        .get("passgate-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if given != format!("sha256={expected}") {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let sms = Sms {
        to: v["to"].as_str().unwrap_or_default().to_owned(),
        from: None,
        messaging_service_sid: Some("webhook".to_owned()),
        body: v["body"].as_str().unwrap_or_default().to_owned(),
        idempotency_token: v["idempotency_key"].as_str().map(str::to_owned),
    };
    if let Ok(mut m) = fake.messages.lock() {
        m.push(sms);
    }
    fake.arrived.notify_waiters();
    (
        StatusCode::OK,
        axum::Json(json!({"id": uuid::Uuid::new_v4()})),
    )
        .into_response()
}

impl FakeTwilio {
    pub fn webhook_url(&self) -> String {
        format!("http://127.0.0.1:{}/sms-webhook", self.port)
    }

    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let fake = Self {
            port: listener.local_addr()?.port(),
            ..Default::default()
        };
        let app = Router::new()
            .route("/2010-04-01/Accounts/{sid}/Messages.json", post(create))
            .route("/sms-webhook", post(webhook))
            .with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(fake)
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Answer the next requests with these statuses.
    pub fn fail_next(&self, statuses: &[u16]) {
        if let Ok(mut f) = self.failures.lock() {
            f.extend_from_slice(statuses);
        }
    }

    /// Messages sent under one idempotency key (a delivery id).
    pub fn messages_with_key(&self, key: &str) -> usize {
        self.messages
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|s| s.idempotency_token.as_deref() == Some(key))
                    .count()
            })
            .unwrap_or(0)
    }

    pub fn messages_to(&self, to: &str) -> Vec<Sms> {
        self.messages
            .lock()
            .map(|m| m.iter().filter(|s| s.to == to).cloned().collect())
            .unwrap_or_default()
    }

    pub async fn wait_for(
        &self,
        to: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Sms>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            let messages = self.messages_to(to);
            if messages.len() >= count {
                return Ok(messages);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                anyhow::bail!(
                    "{} of {count} text messages for {to} arrived within {timeout:?}",
                    messages.len()
                );
            }
        }
    }

    pub async fn code_for(&self, to: &str, nth: usize) -> anyhow::Result<String> {
        let messages = self.wait_for(to, nth, Duration::from_secs(15)).await?;
        messages
            .get(nth - 1)
            .and_then(Sms::code)
            .ok_or_else(|| anyhow::anyhow!("no code in text {nth} for {to}"))
    }
}

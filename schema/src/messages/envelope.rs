use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::AppId;

/// Every message type Passgate knows. The string form is the envelope `type`, the AMQP `type`
/// property and the routing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageKind {
    #[serde(rename = "otp.send")]
    OtpSend,
    #[serde(rename = "otp.authenticate")]
    OtpAuthenticate,
    #[serde(rename = "link.send")]
    LinkSend,
    #[serde(rename = "link.authenticate")]
    LinkAuthenticate,
    #[serde(rename = "token.refresh")]
    TokenRefresh,
    #[serde(rename = "session.authenticate")]
    SessionAuthenticate,
    #[serde(rename = "session.logout")]
    SessionLogout,
    #[serde(rename = "delivery.email")]
    DeliverEmail,
    #[serde(rename = "delivery.sms")]
    DeliverSms,
}

impl MessageKind {
    pub const ALL: [MessageKind; 9] = [
        Self::OtpSend,
        Self::OtpAuthenticate,
        Self::LinkSend,
        Self::LinkAuthenticate,
        Self::TokenRefresh,
        Self::SessionAuthenticate,
        Self::SessionLogout,
        Self::DeliverEmail,
        Self::DeliverSms,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OtpSend => "otp.send",
            Self::OtpAuthenticate => "otp.authenticate",
            Self::LinkSend => "link.send",
            Self::LinkAuthenticate => "link.authenticate",
            Self::TokenRefresh => "token.refresh",
            Self::SessionAuthenticate => "session.authenticate",
            Self::SessionLogout => "session.logout",
            Self::DeliverEmail => "delivery.email",
            Self::DeliverSms => "delivery.sms",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Commands carry a request (an `auth_requests` row and a reply); tasks are internal work.
    pub fn is_command(self) -> bool {
        !matches!(self, Self::DeliverEmail | Self::DeliverSms)
    }

    /// The payload version this build produces and understands.
    pub fn version(self) -> u16 {
        1
    }
}

impl std::fmt::Display for MessageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON envelope of every message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<P> {
    /// uuid v7; also the AMQP `message_id`, the request id of a command and its idempotency key.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: MessageKind,
    pub version: u16,
    pub app_id: AppId,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
    /// W3C trace context of the request that caused the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The caller's `Idempotency-Key`, for commands that came with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<Idempotency>,
    pub payload: P,
}

/// The caller's `Idempotency-Key`, carried with the command. A worker that has to create the
/// request row (a producer published straight to the broker, or the API removed its row after
/// a publish whose confirm never came, though the message got through) gives the row the key:
/// a retry with the same key then finds this command instead of running a second one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Idempotency {
    pub key: String,
    /// The API's keyed hash of the request (base64url, no padding): a retry with the same key
    /// and another body is refused. Producers publishing directly leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_hash: Option<String>,
}

impl<P> Envelope<P> {
    pub fn new(
        id: Uuid,
        kind: MessageKind,
        app_id: AppId,
        created_at: DateTime<Utc>,
        payload: P,
    ) -> Self {
        Self {
            id,
            kind,
            version: kind.version(),
            app_id,
            created_at,
            deadline: None,
            traceparent: None,
            idempotency: None,
            payload,
        }
    }
}

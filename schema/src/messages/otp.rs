use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{DeliveryId, SessionId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierType {
    Email,
    PhoneNumber,
    UserId,
    Username,
}

impl IdentifierType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::PhoneNumber => "phone_number",
            Self::UserId => "user_id",
            Self::Username => "username",
        }
    }
}

/// `otp.send`: generate a code for a subject and send it. The identifier is already validated
/// and normalised by the producer (lower-case email, E.164 phone number).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OtpSend {
    pub channel: Channel,
    pub identifier_type: IdentifierType,
    pub identifier: String,
    /// Lifetime in minutes (1–10); the app's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u32>,
    #[serde(default)]
    pub create_new_user: bool,
    /// The end user's IP address, when the caller names it (per-IP send limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
}

/// `otp.authenticate`: check a code. The passcode travels sealed (AEAD under the transport key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OtpAuthenticate {
    pub identifier_type: IdentifierType,
    pub identifier: String,
    pub passcode_sealed: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
}

/// `delivery.email` and `delivery.sms`: send one message. The secret (a code or a link) is
/// sealed under the transport key, bound to the delivery id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deliver {
    pub delivery_id: DeliveryId,
    pub template: String,
    pub secret_sealed: String,
    pub expires_at: DateTime<Utc>,
}

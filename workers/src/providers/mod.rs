//! Delivery providers: email (lettre: SMTP or a development mailbox) and SMS (Twilio's
//! Messages API, or a development outbox). Errors are classified so the delivery job retries
//! transient failures only.

pub mod email;
pub mod sms;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth another attempt: SMTP 4xx, Twilio 429/5xx, connection refused or reset, timeout.
    #[error("transient: {0}")]
    Transient(String),
    /// Another attempt would fail the same way: SMTP 5xx, Twilio 4xx (e.g. an invalid number).
    #[error("permanent: {0}")]
    Permanent(String),
}

impl SendError {
    pub fn class(&self) -> &'static str {
        match self {
            Self::Transient(_) => "transient",
            Self::Permanent(_) => "permanent",
        }
    }
}

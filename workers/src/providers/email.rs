//! Email through lettre: a pooled async SMTP transport, or (development) a directory of `.eml`
//! files. Errors are classified so the consumer retries transient failures only.

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::{AsyncSmtpTransport, PoolConfig};
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};

use super::SendError;
use crate::config::EmailTransport;

#[derive(Clone)]
pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
}

pub struct Email<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub text: String,
    pub html: String,
}

impl Mailer {
    /// `pool_size`: most connections kept open to the relay (deliveries run concurrently up to
    /// the delivery prefetch; more of them than connections wait for one).
    pub fn from_config(transport: &EmailTransport, pool_size: u32) -> anyhow::Result<Self> {
        Ok(match transport {
            EmailTransport::Smtp(url) => Self::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?
                    .timeout(Some(std::time::Duration::from_secs(10)))
                    .pool_config(PoolConfig::new().max_size(pool_size.max(1)))
                    .build(),
            ),
            EmailTransport::Mailbox(dir) => {
                std::fs::create_dir_all(dir)?;
                Self::File(AsyncFileTransport::<Tokio1Executor>::new(dir))
            }
        })
    }

    pub fn provider(&self) -> &'static str {
        match self {
            Self::Smtp(_) => "smtp",
            Self::File(_) => "mailbox",
        }
    }

    /// Sends; returns the provider's message id when it gives one.
    pub async fn send(&self, email: Email<'_>) -> Result<Option<String>, SendError> {
        let from: Mailbox = email
            .from
            .parse()
            .map_err(|e| SendError::Permanent(format!("bad sender: {e}")))?;
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|e| SendError::Permanent(format!("bad recipient: {e}")))?;
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(email.subject)
            .multipart(MultiPart::alternative_plain_html(email.text, email.html))
            .map_err(|e| SendError::Permanent(e.to_string()))?;
        match self {
            Self::Smtp(transport) => match transport.send(message).await {
                Ok(response) => Ok(response.message().next().map(str::to_owned)),
                Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
                Err(e) => Err(SendError::Transient(e.to_string())),
            },
            Self::File(transport) => transport
                .send(message)
                .await
                .map(Some)
                .map_err(|e| SendError::Transient(e.to_string())),
        }
    }
}

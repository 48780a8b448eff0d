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

/// Providers of one channel in priority order, each behind a circuit breaker. A message goes
/// to the first provider whose circuit admits it; a transient failure counts against that
/// provider and the message fails over to the next one at once. Permanent failures are about
/// the message (a rejected recipient), so they neither count nor fail over.
pub struct Chain<P> {
    entries: Vec<Entry<P>>,
}

struct Entry<P> {
    name: String,
    provider: P,
    breaker: std::sync::Mutex<crate::domain::breaker::Breaker>,
}

/// What a chain did with one message.
pub struct ChainResult {
    /// The provider that gave the final answer (`None`: every circuit was open).
    pub provider: Option<String>,
    pub result: Result<Option<String>, SendError>,
}

impl ChainResult {
    /// The same result with each `(text, shown)` pair's text replaced in the error message:
    /// providers' messages can quote the destination or the message (with its code), and
    /// errors are logged and stored.
    pub fn redacted(mut self, hide: &[(&str, &str)]) -> Self {
        if let Err(e) = &mut self.result {
            let message = match e {
                SendError::Transient(m) | SendError::Permanent(m) => m,
            };
            for (text, shown) in hide {
                if !text.is_empty() && message.contains(text) {
                    *message = message.replace(text, shown);
                }
            }
        }
        self
    }
}

impl<P> Chain<P> {
    pub fn new(providers: Vec<(String, P)>, threshold: u32, cooldown: chrono::TimeDelta) -> Self {
        let entries = providers
            .into_iter()
            .map(|(name, provider)| Entry {
                name,
                provider,
                breaker: std::sync::Mutex::new(crate::domain::breaker::Breaker::new(
                    threshold, cooldown,
                )),
            })
            .collect();
        Self { entries }
    }

    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }

    fn admit(&self, entry: &Entry<P>, now: chrono::DateTime<chrono::Utc>) -> bool {
        entry
            .breaker
            .lock()
            .map(|mut b| b.allow(now))
            .unwrap_or(true)
    }

    fn record(
        &self,
        entry: &Entry<P>,
        result: &Result<Option<String>, SendError>,
        now: chrono::DateTime<chrono::Utc>,
    ) {
        if let Ok(mut breaker) = entry.breaker.lock() {
            match result {
                Err(SendError::Transient(_)) => breaker.failure(now),
                _ => breaker.success(),
            }
            let open = if breaker.is_open() { 1.0 } else { 0.0 };
            metrics::gauge!("passgate_provider_circuit_open", "provider" => entry.name.clone())
                .set(open);
        }
    }

    /// Sends through the first admitting provider, failing over on transient errors.
    pub async fn send<'a, F, Fut>(
        &'a self,
        now: chrono::DateTime<chrono::Utc>,
        send: F,
    ) -> ChainResult
    where
        F: Fn(&'a P) -> Fut,
        Fut: std::future::Future<Output = Result<Option<String>, SendError>>,
    {
        let mut last = ChainResult {
            provider: None,
            result: Err(SendError::Transient(
                "every provider's circuit is open".to_owned(),
            )),
        };
        for entry in &self.entries {
            if !self.admit(entry, now) {
                continue;
            }
            let result = send(&entry.provider).await;
            self.record(entry, &result, now);
            metrics::counter!(
                "passgate_provider_calls_total",
                "provider" => entry.name.clone(),
                "result" => match &result { Ok(_) => "ok", Err(e) => e.class() }
            )
            .increment(1);
            let transient = matches!(result, Err(SendError::Transient(_)));
            last = ChainResult {
                provider: Some(entry.name.clone()),
                result,
            };
            if !transient {
                break;
            }
        }
        last
    }
}

pub type EmailChain = Chain<email::Mailer>;
pub type SmsChain = Chain<std::sync::Arc<dyn sms::SmsSender>>;

/// Builds the provider chains from the configuration (delivery role only).
pub fn build(config: &crate::config::WorkerConfig) -> anyhow::Result<(EmailChain, SmsChain)> {
    use crate::config::{EmailTransport, SmsTransport};
    let mut emails = Vec::new();
    for (i, transport) in config.email.iter().enumerate() {
        let name = match transport {
            EmailTransport::Smtp(_) if i == 0 => "smtp".to_owned(),
            EmailTransport::Smtp(_) => format!("smtp-{}", i + 1),
            EmailTransport::Mailbox(dir) => {
                tracing::info!(mailbox = %dir.display(), "no PASSGATE_SMTP_URL: emails are written to this directory");
                "mailbox".to_owned()
            }
        };
        emails.push((
            name,
            email::Mailer::from_config(transport, config.smtp_pool_size)?,
        ));
    }
    let mut texts: Vec<(String, std::sync::Arc<dyn sms::SmsSender>)> = Vec::new();
    for transport in &config.sms {
        match transport {
            SmsTransport::Twilio(twilio) => texts.push((
                "twilio".to_owned(),
                std::sync::Arc::new(sms::Twilio::new(twilio.clone())?),
            )),
            SmsTransport::Webhook { url, secret } => texts.push((
                "sms-webhook".to_owned(),
                std::sync::Arc::new(sms::Webhook::new(url.clone(), secret.0.clone())?),
            )),
            SmsTransport::Outbox(dir) => {
                tracing::info!(outbox = %dir.display(), "no SMS provider configured: text messages are written to this directory");
                texts.push((
                    "outbox".to_owned(),
                    std::sync::Arc::new(sms::Outbox::new(dir.clone())?),
                ));
            }
        }
    }
    Ok((
        Chain::new(emails, config.breaker_threshold, config.breaker_cooldown),
        Chain::new(texts, config.breaker_threshold, config.breaker_cooldown),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::<chrono::Utc>::UNIX_EPOCH + chrono::TimeDelta::days(20_000)
    }

    #[test]
    fn errors_are_redacted_and_successes_untouched() {
        let failed = ChainResult {
            provider: Some("twilio".to_owned()),
            result: Err(SendError::Permanent(
                "number +14155550100 (14155550100) refused: code 123456".to_owned(),
            )),
        };
        let hide = [
            ("123456", "[secret]"),
            ("+14155550100", "+1415***00"),
            ("14155550100", "+1415***00"),
            ("", "never inserted"),
        ];
        assert!(matches!(
            failed.redacted(&hide).result,
            Err(SendError::Permanent(m)) if m == "number +1415***00 (+1415***00) refused: code [secret]"
        ));
        let sent = ChainResult {
            provider: None,
            result: Ok(Some("123456".to_owned())),
        };
        assert_eq!(
            sent.redacted(&hide).result.ok(),
            Some(Some("123456".to_owned()))
        );
    }

    #[tokio::test]
    async fn fails_over_then_skips_an_open_circuit_and_comes_back() {
        // Provider "a" fails transiently, "b" works.
        let chain = Chain::new(
            vec![("a".to_owned(), true), ("b".to_owned(), false)],
            2,
            chrono::TimeDelta::seconds(30),
        );
        let send = |failing: &bool| {
            let failing = *failing;
            async move {
                if failing {
                    Err(SendError::Transient("down".into()))
                } else {
                    Ok(Some("id".into()))
                }
            }
        };
        let r = chain.send(now(), send).await;
        assert_eq!(
            r.provider.as_deref(),
            Some("b"),
            "failed over within the attempt"
        );
        assert!(r.result.is_ok());
        let _ = chain.send(now(), send).await;
        // Circuit of "a" is open now: calls go straight to "b" (a is not called).
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let counting = |failing: &bool| {
            if *failing {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            send(failing)
        };
        let r = chain.send(now(), counting).await;
        assert_eq!(r.provider.as_deref(), Some("b"));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);
        // After the cooldown "a" gets a trial; when it works again, traffic returns to it.
        let healthy = |_: &bool| async { Ok(Some("id".to_owned())) };
        let later = now() + chrono::TimeDelta::seconds(31);
        assert_eq!(
            chain.send(later, healthy).await.provider.as_deref(),
            Some("a")
        );
        assert_eq!(
            chain.send(later, healthy).await.provider.as_deref(),
            Some("a")
        );
    }

    #[tokio::test]
    async fn permanent_failures_do_not_fail_over() {
        let chain = Chain::new(
            vec![("a".to_owned(), ()), ("b".to_owned(), ())],
            1,
            chrono::TimeDelta::seconds(30),
        );
        let r = chain
            .send(now(), |_| async {
                Err(SendError::Permanent("550 no such user".into()))
            })
            .await;
        assert_eq!(r.provider.as_deref(), Some("a"));
        assert!(matches!(r.result, Err(SendError::Permanent(_))));
    }
}

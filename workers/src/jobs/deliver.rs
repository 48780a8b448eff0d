//! `delivery.email` and `delivery.sms` (delivery role): send one message, exactly once as far
//! as we can make it so.
//!
//! - The delivery row is claimed first (`queued` → `sending`, attempt counted, 60 s lease), and
//!   the attempt is recorded in `delivery_attempts` before any provider is called: a delivery
//!   already sent is never sent again on redelivery, and two copies of a task cannot send in
//!   parallel. Twilio and the SMS webhook also get the delivery id as idempotency key.
//! - A secret that expired before it could be sent is not sent at all.
//! - Providers are tried in priority order behind circuit breakers ([`crate::providers::Chain`]).
//! - A transient failure schedules the next attempt through the delay queues with backoff and
//!   jitter ([`crate::domain::retry`]); permanent failures end at once; a delivery out of
//!   attempts is recorded `failed` (its sealed secret kept for an operator's requeue until it
//!   expires) and its message is parked in `passgate.dead`.

use chrono::TimeDelta;
use diesel_async::AsyncConnection as _;
use passgate_core::db;
use passgate_core::telemetry::{mask_email, mask_phone};
use passgate_schema::DbConn;
use passgate_schema::messages::{Channel, Deliver, Envelope, MessageKind};
use passgate_schema::models::deliveries::{self, Claimed, Delivery};
use passgate_schema::models::delivery_attempts::{self, AttemptEnd, NewDeliveryAttempt};

use crate::context::JobContext;
use crate::job::{Job, JobError, Outcome};
use crate::jobs::otp_send::delivery_seal_context;
use crate::providers::email::Email;
use crate::providers::{ChainResult, SendError};
use crate::templates;

/// How long a claimed delivery belongs to the worker sending it; after that (the worker died)
/// a redelivered task may claim it again. Longer than the providers' timeouts, shorter than
/// the lease-wait queue's [`LEASE_WAIT`](passgate_core::amqp::LEASE_WAIT).
const SEND_LEASE: TimeDelta = TimeDelta::seconds(60);
const _: () = assert!(SEND_LEASE.num_seconds() < passgate_core::amqp::LEASE_WAIT.as_secs() as i64);

/// How long a worker keeps trying to record a provider's answer while the database is away.
/// Shorter than the lease, so no other copy can claim the delivery meanwhile.
const RECORD_PATIENCE: std::time::Duration = std::time::Duration::from_secs(50);

pub struct DeliverEmailJob;

impl Job for DeliverEmailJob {
    const KIND: MessageKind = MessageKind::DeliverEmail;
    type Payload = Deliver;

    async fn run(ctx: &JobContext, msg: &Envelope<Deliver>) -> Result<Outcome, JobError> {
        deliver(ctx, msg, Channel::Email).await
    }
}

pub struct DeliverSmsJob;

impl Job for DeliverSmsJob {
    const KIND: MessageKind = MessageKind::DeliverSms;
    type Payload = Deliver;

    async fn run(ctx: &JobContext, msg: &Envelope<Deliver>) -> Result<Outcome, JobError> {
        deliver(ctx, msg, Channel::Sms).await
    }
}

fn masked(channel: Channel, destination: &str) -> String {
    match channel {
        Channel::Email => mask_email(destination),
        Channel::Sms => mask_phone(destination),
    }
}

/// A delivery this worker can never make: recorded as failed (secret erased), then parked.
async fn give_up(ctx: &JobContext, delivery: &Delivery, why: &str) -> Result<Outcome, JobError> {
    let mut conn = db::conn(&ctx.db).await?;
    let now = ctx.clock.now();
    let end = AttemptEnd {
        provider: None,
        outcome: "permanent",
        error: Some(why),
        provider_message_id: None,
    };
    delivery_attempts::finish(&mut conn, delivery.id, delivery.attempts, end, now).await?;
    Delivery::mark_final_failure(
        &mut conn,
        delivery.id,
        deliveries::STATUS_FAILED,
        None,
        "permanent",
        why,
        now,
    )
    .await?;
    Ok(Outcome::Park {
        reason: format!("delivery {}: {why}", delivery.id),
    })
}

async fn deliver(
    ctx: &JobContext,
    msg: &Envelope<Deliver>,
    channel: Channel,
) -> Result<Outcome, JobError> {
    let task = &msg.payload;
    let label = channel.as_str();
    let now = ctx.clock.now();
    let mut conn = db::conn(&ctx.db).await?;
    // The app (usually cached) is looked up before the claim: once a first attempt's row is
    // written, nothing that can fail may come before the provider call, or the next attempt
    // would find an unfinished attempt and (for email) record the outcome as unknown.
    let app = ctx.app(&mut conn, msg.app_id).await?;
    let Some(Claimed {
        delivery,
        attempt_started,
    }) = Delivery::claim_and_start(&mut conn, task.delivery_id, now, SEND_LEASE).await?
    else {
        // Sent, failed or expired already: nothing to do. Being sent right now (another copy
        // of this task holds the lease): come back when the lease ends, so the delivery is
        // finished by someone even if that worker dies.
        let current = Delivery::find(&mut conn, task.delivery_id).await?;
        metrics::counter!("passgate_delivery_duplicates_total", "channel" => label).increment(1);
        return Ok(match current {
            Some(d) if d.status == deliveries::STATUS_SENDING => Outcome::WaitLease,
            // Exhausted, but its parking may not have happened (the broker went away right
            // after the row was written): park it (again).
            Some(d)
                if d.status == deliveries::STATUS_FAILED
                    && d.error_class.as_deref() == Some(deliveries::CLASS_EXHAUSTED) =>
            {
                Outcome::Park {
                    reason: format!("out of attempts after {}", d.attempts),
                }
            }
            _ => Outcome::Done,
        });
    };
    let previous = if delivery.attempts > 1 {
        delivery_attempts::previous(&mut conn, delivery.id, delivery.attempts - 1).await?
    } else {
        None
    };
    if let Some((Some(outcome), provider, message_id)) = &previous
        && outcome == "sent"
    {
        // The previous worker had the provider's acceptance recorded but died before the
        // delivery was marked: it is sent.
        Delivery::mark_sent(
            &mut conn,
            delivery.id,
            provider.as_deref().unwrap_or("unknown"),
            message_id.as_deref(),
            now,
        )
        .await?;
        return Ok(Outcome::Done);
    }
    if let Some((Some(outcome), provider, _)) = &previous
        && outcome == "permanent"
    {
        // Refused for good, but the worker died before the delivery was marked.
        Delivery::mark_final_failure(
            &mut conn,
            delivery.id,
            deliveries::STATUS_FAILED,
            provider.as_deref(),
            "permanent",
            "refused by the provider",
            now,
        )
        .await?;
        return Ok(Outcome::Done);
    }
    if channel == Channel::Email && matches!(previous, Some((None, _, _))) {
        // The previous worker died during its SMTP call: the relay may have accepted the
        // message, and SMTP has no idempotency key. Sending again could deliver it twice, so
        // the outcome is recorded as unknown instead (SMS providers get an idempotency key and
        // are simply called again).
        let end = AttemptEnd {
            provider: None,
            outcome: "unknown",
            error: Some("worker died during the provider call"),
            provider_message_id: None,
        };
        delivery_attempts::finish(&mut conn, delivery.id, delivery.attempts - 1, end, now).await?;
        Delivery::mark_final_failure(
            &mut conn,
            delivery.id,
            deliveries::STATUS_FAILED,
            None,
            "outcome_unknown",
            "worker died during the provider call",
            now,
        )
        .await?;
        metrics::counter!("passgate_deliveries_total", "channel" => label, "status" => "outcome_unknown").increment(1);
        return Ok(Outcome::Done);
    }
    if now >= delivery.expires_at {
        Delivery::mark_final_failure(
            &mut conn,
            delivery.id,
            deliveries::STATUS_EXPIRED,
            None,
            "expired",
            "expired before delivery",
            now,
        )
        .await?;
        metrics::counter!("passgate_deliveries_total", "channel" => label, "status" => "expired")
            .increment(1);
        return Ok(Outcome::Done);
    }
    let Ok(secret) = ctx
        .transport
        .open_b64(&delivery_seal_context(delivery.id), &task.secret_sealed)
    else {
        drop(conn);
        return give_up(ctx, &delivery, "sealed secret cannot be opened").await;
    };
    let secret = String::from_utf8_lossy(&secret).into_owned();
    let app = if app.as_ref().is_some_and(|a| a.id == delivery.app_id) {
        app
    } else {
        ctx.app(&mut conn, delivery.app_id).await?
    };
    // Recorded before any provider is called: a crash mid-call leaves an unfinished attempt.
    // A first attempt's row was written with the claim.
    if !attempt_started {
        NewDeliveryAttempt {
            delivery_id: delivery.id,
            attempt: delivery.attempts,
            provider: None,
            started_at: now,
        }
        .insert(&mut conn)
        .await?;
    }
    drop(conn);
    let no_settings = serde_json::Value::Null;
    let (app_name, settings) = app.as_deref().map_or(("Passgate", &no_settings), |a| {
        (a.name.as_str(), &a.settings)
    });
    let minutes = ((delivery.expires_at - now).num_seconds().max(60) + 59) / 60;
    let started = std::time::Instant::now();
    let sent: ChainResult = match channel {
        Channel::Email => {
            let rendered = templates::render_localized(
                &delivery.template,
                app_name,
                settings,
                settings["locale"].as_str().unwrap_or("en"),
                &secret,
                minutes,
            );
            let (Some(chain), Some(rendered)) = (&ctx.email, rendered) else {
                return give_up(ctx, &delivery, "no email provider or unknown template").await;
            };
            let (from, to) = (
                ctx.config.email_from.as_str(),
                delivery.destination.as_str(),
            );
            chain
                .send(now, |mailer| {
                    let email = Email {
                        from,
                        to,
                        subject: &rendered.subject,
                        text: rendered.text.clone(),
                        html: rendered.html.clone(),
                    };
                    mailer.send(email)
                })
                .await
        }
        Channel::Sms => {
            let locale = settings["locale"].as_str().unwrap_or("en").to_owned();
            let body = templates::render_sms(
                &delivery.template,
                app_name,
                settings,
                &locale,
                &secret,
                minutes,
            );
            let (Some(chain), Some(body)) = (&ctx.sms, body) else {
                return give_up(ctx, &delivery, "no SMS provider or unknown template").await;
            };
            let key = delivery.id.to_string();
            let (to, body, key) = (delivery.destination.as_str(), body.as_str(), key.as_str());
            chain.send(now, |sms| sms.send(to, body, key)).await
        }
    };
    metrics::histogram!("passgate_delivery_duration_seconds", "channel" => label)
        .record(started.elapsed().as_secs_f64());
    // A provider's error may quote the number, the address or the message: none of them
    // reaches the logs or the database in clear.
    let shown = masked(channel, &delivery.destination);
    let bare = delivery.destination.trim_start_matches('+');
    let sent = sent.redacted(&[
        (secret.as_str(), "[secret]"),
        (delivery.destination.as_str(), shown.as_str()),
        (bare, shown.as_str()),
    ]);
    // The provider has answered: that answer must be recorded even if the database is away
    // for a while (running the whole job again would send the message again).
    let mut wait = std::time::Duration::from_millis(200);
    let give_up_at = std::time::Instant::now() + RECORD_PATIENCE;
    loop {
        match record(ctx, channel, &delivery, &sent).await {
            Err(JobError::Unavailable(e)) if std::time::Instant::now() < give_up_at => {
                tracing::warn!(delivery.id = %delivery.id, error = %e, "cannot record the outcome yet; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// Records the outcome of an attempt and decides what happens next.
async fn record(
    ctx: &JobContext,
    channel: Channel,
    delivery: &Delivery,
    sent: &ChainResult,
) -> Result<Outcome, JobError> {
    let mut conn = db::conn(&ctx.db).await?;
    // The attempt and the delivery are updated together: a reader never sees a finished
    // attempt beside a delivery still marked `sending`. A success (the usual case) is one
    // statement; the other outcomes take a transaction.
    let error = match &sent.result {
        Ok(message_id) => {
            let provider = sent.provider.as_deref().unwrap_or("unknown");
            Delivery::record_sent(
                &mut conn,
                delivery.id,
                delivery.attempts,
                provider,
                message_id.as_deref(),
                ctx.clock.now(),
            )
            .await?;
            let label = channel.as_str();
            metrics::counter!("passgate_deliveries_total", "channel" => label, "status" => "sent")
                .increment(1);
            let to = masked(channel, &delivery.destination);
            tracing::info!(delivery.id = %delivery.id, to = %to, provider, "{label} sent");
            return Ok(Outcome::Done);
        }
        Err(error) => error,
    };
    let provider = sent.provider.as_deref();
    conn.transaction::<_, JobError, _>(async |conn| {
        record_failure(ctx, conn, channel, delivery, provider, error).await
    })
    .await
}

/// Records a failed attempt: final, retried later, or out of attempts.
async fn record_failure(
    ctx: &JobContext,
    conn: &mut DbConn,
    channel: Channel,
    delivery: &Delivery,
    provider: Option<&str>,
    error: &SendError,
) -> Result<Outcome, JobError> {
    let label = channel.as_str();
    let now = ctx.clock.now();
    let to = masked(channel, &delivery.destination);
    let message = error.to_string();
    delivery_attempts::finish(
        conn,
        delivery.id,
        delivery.attempts,
        AttemptEnd {
            provider,
            outcome: error.class(),
            error: Some(&message),
            provider_message_id: None,
        },
        now,
    )
    .await?;
    match error {
        SendError::Permanent(e) => {
            Delivery::mark_final_failure(
                conn,
                delivery.id,
                deliveries::STATUS_FAILED,
                provider,
                "permanent",
                e,
                now,
            )
            .await?;
            metrics::counter!("passgate_deliveries_total", "channel" => label, "status" => "failed").increment(1);
            tracing::warn!(delivery.id = %delivery.id, to = %to, provider, error = %e, "{label} refused permanently");
            Ok(Outcome::Done)
        }
        e @ SendError::Transient(_) => {
            let attempts = u32::try_from(delivery.ladder_attempts()).unwrap_or(u32::MAX);
            let schedule = &ctx.config.retry;
            match schedule.next_delay(attempts, rand::random::<f64>()) {
                Some(delay)
                    if now + TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX)
                        < delivery.expires_at =>
                {
                    Delivery::mark_retry(
                        conn,
                        delivery.id,
                        provider,
                        e.class(),
                        &e.to_string(),
                        now,
                    )
                    .await?;
                    metrics::counter!("passgate_deliveries_total", "channel" => label, "status" => "retry").increment(1);
                    tracing::warn!(delivery.id = %delivery.id, to = %to, provider, attempt = attempts, retry_in_ms = delay.as_millis() as u64, error = %e, "{label} failed; will retry");
                    Ok(Outcome::Retry {
                        delay,
                        tier: schedule.tier(attempts),
                    })
                }
                _ => {
                    Delivery::mark_exhausted(conn, delivery.id, provider, &e.to_string(), now)
                        .await?;
                    metrics::counter!("passgate_deliveries_total", "channel" => label, "status" => "exhausted").increment(1);
                    tracing::error!(delivery.id = %delivery.id, to = %to, provider, attempts, error = %e, "{label} out of attempts; parked");
                    Ok(Outcome::Park {
                        reason: format!("out of attempts after {attempts}: {e}"),
                    })
                }
            }
        }
    }
}

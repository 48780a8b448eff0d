//! `delivery.email` and `delivery.sms` (delivery role): send one message. The delivery row is
//! claimed first (`queued` → `sending`, attempt counted, 60 s lease), so a delivery that was
//! sent is never sent again on redelivery and two copies of a task cannot send in parallel; a
//! secret that expired before it could be sent is not sent at all.

use chrono::TimeDelta;
use passgate_core::db;
use passgate_core::telemetry::{mask_email, mask_phone};
use passgate_schema::messages::{Channel, Deliver, Envelope, MessageKind};
use passgate_schema::models::apps::App;
use passgate_schema::models::deliveries::{self, Delivery};

use crate::context::JobContext;
use crate::job::{Job, JobError, Outcome};
use crate::jobs::otp_send::delivery_seal_context;
use crate::providers::SendError;
use crate::providers::email::Email;
use crate::templates;

/// How long a claimed delivery belongs to the worker sending it; after that (the worker died)
/// a redelivered task may claim it again. Longer than the providers' timeouts.
const SEND_LEASE: TimeDelta = TimeDelta::seconds(60);

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

/// A delivery this worker can never make: recorded as failed (secret erased), then parked.
async fn give_up(
    ctx: &JobContext,
    delivery: &Delivery,
    provider: Option<&str>,
    why: &str,
) -> Result<Outcome, JobError> {
    let mut conn = db::conn(&ctx.db).await?;
    Delivery::mark_final_failure(
        &mut conn,
        delivery.id,
        deliveries::STATUS_FAILED,
        provider,
        "permanent",
        why,
        ctx.clock.now(),
    )
    .await?;
    Err(JobError::permanent(anyhow::anyhow!(
        "delivery {}: {why}",
        delivery.id
    )))
}

fn masked(channel: Channel, destination: &str) -> String {
    match channel {
        Channel::Email => mask_email(destination),
        Channel::Sms => mask_phone(destination),
    }
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
    let Some(delivery) = Delivery::claim(&mut conn, task.delivery_id, now, SEND_LEASE).await?
    else {
        metrics::counter!("passgate_delivery_duplicates_total", "channel" => label).increment(1);
        return Ok(Outcome::Done);
    };
    let provider = match channel {
        Channel::Email => ctx.mailer.as_ref().map(|m| m.provider()),
        Channel::Sms => ctx.sms.as_ref().map(|s| s.provider()),
    };
    if now >= delivery.expires_at {
        Delivery::mark_final_failure(
            &mut conn,
            delivery.id,
            deliveries::STATUS_EXPIRED,
            provider,
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
        Delivery::mark_final_failure(
            &mut conn,
            delivery.id,
            deliveries::STATUS_FAILED,
            provider,
            "permanent",
            "sealed secret cannot be opened",
            now,
        )
        .await?;
        return Err(JobError::permanent(anyhow::anyhow!(
            "sealed secret cannot be opened"
        )));
    };
    let secret = String::from_utf8_lossy(&secret).into_owned();
    let app = App::find(&mut conn, delivery.app_id).await?;
    drop(conn);
    let (app_name, settings) = app
        .map(|a| (a.name, a.settings))
        .unwrap_or_else(|| ("Passgate".to_owned(), serde_json::Value::Null));
    let minutes = ((delivery.expires_at - now).num_seconds().max(60) + 59) / 60;
    let started = std::time::Instant::now();
    let result = match channel {
        Channel::Email => {
            let rendered =
                templates::render(&delivery.template, &app_name, &settings, &secret, minutes);
            let (Some(mailer), Some(rendered)) = (&ctx.mailer, rendered) else {
                return give_up(ctx, &delivery, provider, "no mailer or unknown template").await;
            };
            mailer
                .send(Email {
                    from: &ctx.config.email_from,
                    to: &delivery.destination,
                    subject: &rendered.subject,
                    text: rendered.text,
                    html: rendered.html,
                })
                .await
        }
        Channel::Sms => {
            let locale = settings["locale"].as_str().unwrap_or("en").to_owned();
            let body = templates::render_sms(
                &delivery.template,
                &app_name,
                &settings,
                &locale,
                &secret,
                minutes,
            );
            let (Some(sms), Some(body)) = (&ctx.sms, body) else {
                return give_up(
                    ctx,
                    &delivery,
                    provider,
                    "no SMS sender or unknown template",
                )
                .await;
            };
            sms.send(&delivery.destination, &body, &delivery.id.to_string())
                .await
        }
    };
    metrics::histogram!("passgate_delivery_duration_seconds", "channel" => label)
        .record(started.elapsed().as_secs_f64());
    let mut conn = db::conn(&ctx.db).await?;
    let now = ctx.clock.now();
    let to = masked(channel, &delivery.destination);
    match result {
        Ok(message_id) => {
            Delivery::mark_sent(
                &mut conn,
                delivery.id,
                provider.unwrap_or("unknown"),
                message_id.as_deref(),
                now,
            )
            .await?;
            metrics::counter!("passgate_deliveries_total", "channel" => label, "status" => "sent")
                .increment(1);
            tracing::info!(delivery.id = %delivery.id, to = %to, "{label} sent");
            Ok(Outcome::Done)
        }
        Err(SendError::Permanent(e)) => {
            Delivery::mark_final_failure(
                &mut conn,
                delivery.id,
                deliveries::STATUS_FAILED,
                provider,
                "permanent",
                &e,
                now,
            )
            .await?;
            metrics::counter!("passgate_deliveries_total", "channel" => label, "status" => "failed").increment(1);
            tracing::warn!(delivery.id = %delivery.id, to = %to, error = %e, "{label} refused permanently");
            Ok(Outcome::Done)
        }
        Err(e @ SendError::Transient(_)) => {
            Delivery::mark_retry(
                &mut conn,
                delivery.id,
                provider,
                e.class(),
                &e.to_string(),
                now,
            )
            .await?;
            metrics::counter!("passgate_deliveries_total", "channel" => label, "status" => "retry")
                .increment(1);
            Err(JobError::Transient(e.into()))
        }
    }
}

//! `delivery.email` (delivery role): sends one email. The delivery row is claimed first
//! (`queued`/`sending` → `sending`, attempt counted), so a delivery already `sent` is never sent
//! again on redelivery; a code that expired before it could be sent is not sent at all.

use passgate_core::db;
use passgate_core::telemetry::mask_email;
use passgate_schema::messages::{DeliverEmail, Envelope, MessageKind};
use passgate_schema::models::apps::App;
use passgate_schema::models::deliveries::{self, Delivery};

use crate::context::JobContext;
use crate::job::{Job, JobError, Outcome};
use crate::jobs::otp_send::delivery_seal_context;
use crate::mailer::{Email, SendError};
use crate::templates;

/// How long a claimed delivery belongs to the worker sending it; after that (the worker died)
/// a redelivered task may claim it again. Longer than the SMTP timeout.
const SEND_LEASE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

pub struct DeliverEmailJob;

impl Job for DeliverEmailJob {
    const KIND: MessageKind = MessageKind::DeliverEmail;
    type Payload = DeliverEmail;

    async fn run(ctx: &JobContext, msg: &Envelope<DeliverEmail>) -> Result<Outcome, JobError> {
        let task = &msg.payload;
        let now = ctx.clock.now();
        let mut conn = db::conn(&ctx.db).await?;
        let Some(delivery) = Delivery::claim(&mut conn, task.delivery_id, now, SEND_LEASE).await?
        else {
            metrics::counter!("passgate_delivery_duplicates_total", "channel" => "email")
                .increment(1);
            return Ok(Outcome::Done);
        };
        let provider = ctx.mailer.as_ref().map(|m| m.provider());
        if now >= delivery.expires_at {
            Delivery::mark_final_failure(
                &mut conn,
                delivery.id,
                deliveries::STATUS_EXPIRED,
                provider,
                "expired",
                "code expired before delivery",
                now,
            )
            .await?;
            metrics::counter!("passgate_deliveries_total", "channel" => "email", "status" => "expired").increment(1);
            return Ok(Outcome::Done);
        }
        let Some(mailer) = &ctx.mailer else {
            return Err(JobError::permanent(anyhow::anyhow!(
                "this worker has no mailer"
            )));
        };
        let Ok(code) = ctx
            .transport
            .open_b64(&delivery_seal_context(delivery.id), &task.secret_sealed)
        else {
            Delivery::mark_final_failure(
                &mut conn,
                delivery.id,
                deliveries::STATUS_FAILED,
                provider,
                "permanent",
                "sealed code cannot be opened",
                now,
            )
            .await?;
            return Err(JobError::permanent(anyhow::anyhow!(
                "sealed code cannot be opened"
            )));
        };
        let secret = String::from_utf8_lossy(&code).into_owned();
        let app = App::find(&mut conn, delivery.app_id).await?;
        drop(conn);
        let (app_name, settings) = app
            .map(|a| (a.name, a.settings))
            .unwrap_or_else(|| ("Passgate".to_owned(), serde_json::Value::Null));
        let minutes = ((delivery.expires_at - now).num_seconds().max(60) + 59) / 60;
        let Some(rendered) =
            templates::render(&delivery.template, &app_name, &settings, &secret, minutes)
        else {
            return Err(JobError::permanent(anyhow::anyhow!(
                "unknown template {}",
                delivery.template
            )));
        };
        let started = std::time::Instant::now();
        let result = mailer
            .send(Email {
                from: &ctx.config.email_from,
                to: &delivery.destination,
                subject: &rendered.subject,
                text: rendered.text,
                html: rendered.html,
            })
            .await;
        metrics::histogram!("passgate_delivery_duration_seconds", "channel" => "email")
            .record(started.elapsed().as_secs_f64());
        let mut conn = db::conn(&ctx.db).await?;
        let now = ctx.clock.now();
        match result {
            Ok(message_id) => {
                Delivery::mark_sent(
                    &mut conn,
                    delivery.id,
                    mailer.provider(),
                    message_id.as_deref(),
                    now,
                )
                .await?;
                metrics::counter!("passgate_deliveries_total", "channel" => "email", "status" => "sent").increment(1);
                tracing::info!(delivery.id = %delivery.id, to = %mask_email(&delivery.destination), "email sent");
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
                metrics::counter!("passgate_deliveries_total", "channel" => "email", "status" => "failed").increment(1);
                tracing::warn!(delivery.id = %delivery.id, to = %mask_email(&delivery.destination), error = %e, "email refused permanently");
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
                metrics::counter!("passgate_deliveries_total", "channel" => "email", "status" => "retry").increment(1);
                Err(JobError::Transient(e.into()))
            }
        }
    }
}

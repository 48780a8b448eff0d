//! The consumer loop: one channel per role queue with the role's prefetch; each delivery runs
//! in its own task; ack after the job's commit; transient failures are retried in place with
//! backoff (the message stays unacked, so nothing is lost while the database is down), then
//! requeued; permanent failures are rejected to the dead-letter queue.
//!
//! Shutdown: consumers are cancelled (no new deliveries), in-flight jobs finish within the
//! grace period, then the connection closes; unacked messages return to their queue.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use passgate_core::amqp::confirm_channel;
use passgate_schema::ids::RequestId;
use passgate_schema::messages::{CommandReply, Envelope, MessageKind};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::answer::{self, Answer};
use crate::context::JobContext;
use crate::job::{Job, JobError, Outcome};
use crate::jobs::deliver::{DeliverEmailJob, DeliverSmsJob};
use crate::jobs::link_authenticate::LinkAuthenticateJob;
use crate::jobs::link_send::LinkSendJob;
use crate::jobs::otp_authenticate::OtpAuthenticateJob;
use crate::jobs::otp_send::OtpSendJob;
use crate::jobs::sessions::{SessionAuthenticateJob, SessionLogoutJob, TokenRefreshJob};
use crate::roles::Role;

/// In-place retries of a transient failure before the message is requeued.
const IN_PLACE_RETRIES: u32 = 8;
/// Longest pause between retries while the database or broker is unavailable.
const MAX_UNAVAILABLE_WAIT: Duration = Duration::from_secs(5);

/// Everything running on one broker connection.
pub struct WorkerBroker {
    pub conn: Arc<Connection>,
    consumers: Vec<(Channel, String)>,
    stop: watch::Sender<bool>,
    loops: tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl WorkerBroker {
    pub fn connected(&self) -> bool {
        self.conn.status().connected()
    }

    /// Stops taking messages and waits (up to `grace`) for in-flight jobs.
    pub async fn drain(&self, grace: Duration) {
        for (channel, tag) in &self.consumers {
            let _ = channel
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await;
        }
        self.stop.send_replace(true);
        let loops = std::mem::take(&mut *self.loops.lock().await);
        let all = futures_util::future::join_all(loops);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("grace period over; unfinished messages return to their queues");
        }
    }
}

/// Starts the consumers of `roles` on a fresh connection.
pub async fn start(
    ctx: Arc<JobContext>,
    conn: Arc<Connection>,
    roles: Vec<Role>,
) -> anyhow::Result<WorkerBroker> {
    let publish = confirm_channel(&conn).await?;
    let (stop, stop_rx) = watch::channel(false);
    let mut consumers = Vec::new();
    let mut loops = Vec::new();
    for role in &roles {
        for queue in role.queues() {
            let channel = conn.create_channel().await?;
            channel
                .basic_qos(role.prefetch()?, BasicQosOptions::default())
                .await?;
            let tag = format!("passgate-{}-{}", role.name(), uuid::Uuid::now_v7());
            let consumer = channel
                .basic_consume(
                    (*queue).into(),
                    tag.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            tracing::info!(role = role.name(), queue = *queue, "consuming");
            loops.push(tokio::spawn(consume(
                ctx.clone(),
                publish.clone(),
                consumer,
                stop_rx.clone(),
            )));
            consumers.push((channel, tag));
        }
    }
    Ok(WorkerBroker {
        conn,
        consumers,
        stop,
        loops: tokio::sync::Mutex::new(loops),
    })
}

async fn consume(
    ctx: Arc<JobContext>,
    publish: Channel,
    mut consumer: lapin::Consumer,
    mut stop: watch::Receiver<bool>,
) {
    let mut inflight = JoinSet::new();
    loop {
        tokio::select! {
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    inflight.spawn(handle(ctx.clone(), publish.clone(), delivery));
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consumer error");
                    break;
                }
                None => break,
            },
            _ = stop.wait_for(|s| *s) => break,
            Some(_) = inflight.join_next(), if !inflight.is_empty() => {}
        }
    }
    while inflight.join_next().await.is_some() {}
}

async fn handle(ctx: Arc<JobContext>, publish: Channel, delivery: Delivery) {
    let started = std::time::Instant::now();
    let kind = delivery
        .properties
        .kind()
        .as_ref()
        .and_then(|k| MessageKind::parse(k.as_str()))
        .or_else(|| kind_from_body(&delivery.data));
    let Some(kind) = kind else {
        tracing::error!("message without a known type; dead-lettering");
        metrics::counter!("passgate_jobs_total", "job" => "unknown", "result" => "poison")
            .increment(1);
        let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
        return;
    };
    let message_id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    let span = tracing::info_span!("job", job.name = kind.as_str(), message.id = %message_id);
    let mut attempt = 0;
    let result = loop {
        let result = dispatch(&ctx, &publish, kind, &delivery)
            .instrument(span.clone())
            .await;
        match result {
            // Our database or broker is down: keep the message (unacked) and wait for it.
            Err(JobError::Unavailable(e)) if channel_open(&publish) => {
                attempt += 1;
                let wait =
                    Duration::from_millis(200 * 2u64.pow(attempt.min(5))).min(MAX_UNAVAILABLE_WAIT);
                tracing::warn!(job.name = kind.as_str(), attempt, error = %e, retry_in_ms = wait.as_millis() as u64, "infrastructure unavailable; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(JobError::Transient(e)) if attempt < IN_PLACE_RETRIES && channel_open(&publish) => {
                attempt += 1;
                let wait = Duration::from_millis(200 * 2u64.pow(attempt.min(5)));
                tracing::warn!(job.name = kind.as_str(), attempt, error = %e, retry_in_ms = wait.as_millis() as u64, "transient failure; retrying");
                tokio::time::sleep(wait).await;
            }
            other => break other,
        }
    };
    let label = match &result {
        Ok(_) => "ok",
        Err(JobError::Transient(_) | JobError::Unavailable(_)) => "requeued",
        Err(JobError::Permanent(_)) => "dead_lettered",
    };
    metrics::counter!("passgate_jobs_total", "job" => kind.as_str(), "result" => label)
        .increment(1);
    metrics::histogram!("passgate_job_duration_seconds", "job" => kind.as_str())
        .record(started.elapsed().as_secs_f64());
    let acked = match result {
        Ok(()) => delivery.ack(BasicAckOptions::default()).await,
        Err(JobError::Transient(e) | JobError::Unavailable(e)) => {
            tracing::warn!(job.name = kind.as_str(), error = %e, "giving the message back to the queue");
            delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await
        }
        Err(JobError::Permanent(e)) => {
            tracing::error!(job.name = kind.as_str(), error = %e, "permanent failure; dead-lettering");
            delivery.reject(BasicRejectOptions { requeue: false }).await
        }
    };
    if let Err(e) = acked {
        tracing::warn!(job.name = kind.as_str(), error = %e, "ack failed; the broker will redeliver");
    }
}

/// While the channel is open the message is ours to retry; once it closes (shutdown or a lost
/// connection) the broker gives it to another consumer.
fn channel_open(publish: &Channel) -> bool {
    publish.status().connected()
}

fn kind_from_body(data: &[u8]) -> Option<MessageKind> {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "type")]
        kind: MessageKind,
    }
    serde_json::from_slice::<Head>(data).ok().map(|h| h.kind)
}

/// The registry: message type → job. Adding a job is a file in `jobs/` and a line here.
async fn dispatch(
    ctx: &JobContext,
    publish: &Channel,
    kind: MessageKind,
    delivery: &Delivery,
) -> Result<(), JobError> {
    match kind {
        MessageKind::OtpSend => run_command::<OtpSendJob>(ctx, publish, delivery).await,
        MessageKind::OtpAuthenticate => {
            run_command::<OtpAuthenticateJob>(ctx, publish, delivery).await
        }
        MessageKind::LinkSend => run_command::<LinkSendJob>(ctx, publish, delivery).await,
        MessageKind::LinkAuthenticate => {
            run_command::<LinkAuthenticateJob>(ctx, publish, delivery).await
        }
        MessageKind::TokenRefresh => run_command::<TokenRefreshJob>(ctx, publish, delivery).await,
        MessageKind::SessionAuthenticate => {
            run_command::<SessionAuthenticateJob>(ctx, publish, delivery).await
        }
        MessageKind::SessionLogout => run_command::<SessionLogoutJob>(ctx, publish, delivery).await,
        MessageKind::DeliverEmail => run_task::<DeliverEmailJob>(ctx, publish, delivery).await,
        MessageKind::DeliverSms => run_task::<DeliverSmsJob>(ctx, publish, delivery).await,
    }
}

fn decode<P: DeserializeOwned>(
    delivery: &Delivery,
    kind: MessageKind,
) -> Result<Envelope<P>, JobError> {
    let envelope: Envelope<P> = serde_json::from_slice(&delivery.data)
        .map_err(|e| JobError::permanent(anyhow::anyhow!("undecodable {kind} message: {e}")))?;
    if envelope.kind != kind || envelope.version != kind.version() {
        return Err(JobError::permanent(anyhow::anyhow!(
            "unexpected message {} v{} on a {kind} route",
            envelope.kind,
            envelope.version
        )));
    }
    Ok(envelope)
}

async fn run_task<J: Job>(
    ctx: &JobContext,
    publish: &Channel,
    delivery: &Delivery,
) -> Result<(), JobError> {
    let msg = decode::<J::Payload>(delivery, J::KIND)?;
    match J::run(ctx, &msg).await? {
        Outcome::Retry { delay, tier } => {
            metrics::counter!("passgate_jobs_retried_total", "job" => J::KIND.as_str())
                .increment(1);
            {
                let exchange = passgate_core::amqp::retry_exchange(tier);
                let route = (exchange.as_str(), delivery.routing_key.as_str());
                republish(ctx, publish, delivery, route, Some(delay), None).await
            }
        }
        Outcome::WaitLease => {
            metrics::counter!("passgate_jobs_retried_total", "job" => J::KIND.as_str())
                .increment(1);
            let route = (
                passgate_core::amqp::LEASE_WAIT_EXCHANGE,
                delivery.routing_key.as_str(),
            );
            republish(ctx, publish, delivery, route, None, None).await
        }
        Outcome::Park { reason } => {
            metrics::counter!("passgate_jobs_parked_total", "job" => J::KIND.as_str()).increment(1);
            tracing::warn!(job.name = J::KIND.as_str(), reason = %reason, "out of attempts; parked");
            republish(
                ctx,
                publish,
                delivery,
                ("", passgate_core::amqp::DEAD_QUEUE),
                None,
                Some(&reason),
            )
            .await
        }
        Outcome::Done | Outcome::Reply(_) => J::after_commit(ctx, publish, &msg).await,
    }
}

/// Publishes a copy of `delivery` (same body and properties) to `(exchange, routing key)`: a
/// delay queue's exchange with the original routing key (and a per-message expiration), or
/// the parking lot (with the reason in a header). Confirmed before the original is acked.
async fn republish(
    ctx: &JobContext,
    publish: &Channel,
    delivery: &Delivery,
    (exchange, routing_key): (&str, &str),
    delay: Option<Duration>,
    reason: Option<&str>,
) -> Result<(), JobError> {
    use lapin::types::{AMQPValue, LongString};
    let mut props = delivery.properties.clone();
    let mut headers = props.headers().clone().unwrap_or_default();
    let attempt = headers
        .inner()
        .get("x-attempt")
        .and_then(|v| match v {
            AMQPValue::LongLongInt(n) => Some(*n),
            AMQPValue::LongInt(n) => Some(i64::from(*n)),
            _ => None,
        })
        .unwrap_or(1);
    headers.insert("x-attempt".into(), AMQPValue::LongLongInt(attempt + 1));
    if let Some(reason) = reason {
        headers.insert(
            "x-passgate-reason".into(),
            AMQPValue::LongString(LongString::from(reason)),
        );
    }
    props = props.with_headers(headers);
    if let Some(delay) = delay {
        props = props.with_expiration(delay.as_millis().max(1).to_string().into());
    }
    passgate_core::amqp::publish_confirmed(
        publish,
        exchange,
        routing_key,
        &delivery.data,
        props,
        ctx.config.publish_timeout,
    )
    .await
    .map_err(|e| JobError::Unavailable(e.into()))
}

/// Commands: run the job (which keeps the request row: see [`crate::answer::run_command`]),
/// then answer the caller and run the outbox step.
async fn run_command<J: Job>(
    ctx: &JobContext,
    publish: &Channel,
    delivery: &Delivery,
) -> Result<(), JobError> {
    let msg = decode::<J::Payload>(delivery, J::KIND)?;
    let id = RequestId(msg.id);
    let reply = match J::run(ctx, &msg).await {
        Ok(Outcome::Reply(reply)) => reply,
        // Dropped: another request carries this command's work.
        Ok(Outcome::Done | Outcome::Retry { .. } | Outcome::WaitLease) => return Ok(()),
        // Not ours to answer (the id is another app's request): parked untouched.
        Ok(Outcome::Park { reason }) => return Err(JobError::permanent(anyhow::anyhow!(reason))),
        Err(JobError::Permanent(e)) => {
            // The command can never succeed: give the caller a final answer instead of a
            // request that stays pending, then park the message for an operator. If even
            // that cannot be recorded (the database went away), keep the message.
            if !fail_request(ctx, publish, delivery, id).await {
                return Err(JobError::Unavailable(e));
            }
            return Err(JobError::Permanent(e));
        }
        Err(e) => return Err(e),
    };
    // The answer is committed: the caller hears it now, without waiting for the outbox
    // publish (a confirmed publish of the delivery task). If that publish fails, the message
    // goes back to the queue, and its redelivery answers from the row (the caller ignores a
    // second reply) and publishes again.
    if let Some(reply_to) = delivery.properties.reply_to() {
        send_reply(publish, reply_to.as_str(), &reply).await;
    }
    J::after_commit(ctx, publish, &msg).await
}

/// Records `500 internal_error` for a command that failed permanently, and tells the caller.
/// `false` when the answer could not be recorded.
async fn fail_request(
    ctx: &JobContext,
    publish: &Channel,
    delivery: &Delivery,
    id: RequestId,
) -> bool {
    let answer = Answer::error(
        500,
        "internal_error",
        "the request could not be processed; it was set aside for an operator",
    );
    let recorded = async {
        let mut conn = passgate_core::db::conn(&ctx.db).await?;
        answer::complete(ctx, &mut conn, id, &answer).await
    }
    .await;
    match recorded {
        Ok(reply) => {
            if let Some(reply_to) = delivery.properties.reply_to() {
                send_reply(publish, reply_to.as_str(), &reply).await;
            }
            true
        }
        Err(e) => {
            tracing::warn!(request.id = %id, error = %e, "could not record the failure; keeping the message");
            false
        }
    }
}

/// Best effort: the answer is also in `auth_requests`, so a lost reply only means the caller
/// polls (or gets `202` when its wait runs out).
async fn send_reply(publish: &Channel, reply_to: &str, reply: &CommandReply) {
    let Ok(body) = serde_json::to_vec(reply) else {
        return;
    };
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_correlation_id(reply.request_id.to_string().into());
    let sent = publish
        .basic_publish(
            "".into(),
            reply_to.into(),
            BasicPublishOptions::default(),
            &body,
            props,
        )
        .await;
    if let Err(e) = sent {
        tracing::warn!(request.id = %reply.request_id, error = %e, "reply not sent; the caller can poll");
    }
}

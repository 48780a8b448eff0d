//! RabbitMQ: the topology every process declares, publishing with confirms, and a supervised
//! connection that reconnects with backoff.
//!
//! Topology (see `docs/topology.md`):
//! - `passgate.commands` (direct): every command and task; routing key = message type.
//! - work queues (quorum, durable) bound to it, one per worker role, each with a delivery limit
//!   and `passgate.dead-letter` as dead-letter exchange (at-least-once dead-lettering).
//! - `passgate.dead-letter` (fanout) → `passgate.dead`: the parking lot; nothing is dropped.
//! - `passgate.events` (topic): outcomes, for the audit trail and webhooks.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Event, ExchangeKind};
use passgate_schema::messages::MessageKind;
use tokio::sync::watch;

use crate::telemetry::Shutdown;

pub const COMMANDS_EXCHANGE: &str = "passgate.commands";
pub const EVENTS_EXCHANGE: &str = "passgate.events";
pub const DEAD_LETTER_EXCHANGE: &str = "passgate.dead-letter";
pub const DEAD_QUEUE: &str = "passgate.dead";
/// RabbitMQ's direct reply-to pseudo-queue.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

pub const CODEGEN_QUEUE: &str = "passgate.codegen";
pub const VERIFY_QUEUE: &str = "passgate.verify";
pub const DELIVERY_EMAIL_QUEUE: &str = "passgate.delivery.email";
pub const DELIVERY_SMS_QUEUE: &str = "passgate.delivery.sms";

/// Delay queues of the delivery retry ladder (`passgate.delivery.delay.0` … `.3`): messages
/// wait there for their per-message expiration, then dead-letter back to `passgate.commands`
/// with their original routing key.
///
/// They are quorum queues with at-least-once dead-lettering: a classic queue dead-letters at
/// most once, and drops a message that expires while the broker is down (it expires at boot,
/// before the work queues are ready to take it), which lost retries in the fault suite.
/// (Until this was found they were classic queues named `passgate.delivery.retry.*`, behind
/// exchanges `passgate.retry.*`; an existing broker may still have them: once empty they can be
/// deleted.)
pub const RETRY_QUEUE_PREFIX: &str = "passgate.delivery.delay.";
pub const RETRY_TIERS: usize = 4;

pub fn retry_queue(tier: usize) -> String {
    format!("{RETRY_QUEUE_PREFIX}{}", tier.min(RETRY_TIERS - 1))
}

/// The fanout exchange in front of a delay queue. Messages are published to it with their
/// original routing key, which dead-lettering keeps: after the delay they go back to the
/// right work queue.
pub fn retry_exchange(tier: usize) -> String {
    format!("passgate.delay.{}", tier.min(RETRY_TIERS - 1))
}

/// Where a delivery task waits out the send lease of a worker that died mid-send: a queue whose
/// every message waits the same [`LEASE_WAIT`] (a queue-level TTL), so none waits behind
/// another, then dead-letters back to `passgate.commands` with its routing key. (In a delay
/// queue of the retry ladder, with per-message expirations, a message only expires at the head:
/// a 60 s wait there held up the short retries queued behind it.)
pub const LEASE_WAIT_QUEUE: &str = "passgate.delivery.lease-wait";
pub const LEASE_WAIT_EXCHANGE: &str = "passgate.delay.lease";
/// Longer than the delivery workers' send lease (60 s).
pub const LEASE_WAIT: Duration = Duration::from_secs(61);

/// Deliveries of one message before it is dead-lettered (poison protection).
pub const DELIVERY_LIMIT: i64 = 5;

/// A work queue and the message types routed to it.
#[derive(Debug, Clone, Copy)]
pub struct QueueSpec {
    pub name: &'static str,
    pub kinds: &'static [MessageKind],
}

pub const WORK_QUEUES: [QueueSpec; 4] = [
    QueueSpec {
        name: CODEGEN_QUEUE,
        kinds: &[MessageKind::OtpSend, MessageKind::LinkSend],
    },
    QueueSpec {
        name: VERIFY_QUEUE,
        kinds: &[
            MessageKind::OtpAuthenticate,
            MessageKind::LinkAuthenticate,
            MessageKind::TokenRefresh,
            MessageKind::SessionAuthenticate,
            MessageKind::SessionLogout,
        ],
    },
    QueueSpec {
        name: DELIVERY_EMAIL_QUEUE,
        kinds: &[MessageKind::DeliverEmail],
    },
    QueueSpec {
        name: DELIVERY_SMS_QUEUE,
        kinds: &[MessageKind::DeliverSms],
    },
];

/// The queue a message type is routed to.
pub fn queue_for(kind: MessageKind) -> Option<&'static str> {
    WORK_QUEUES
        .iter()
        .find(|q| q.kinds.contains(&kind))
        .map(|q| q.name)
}

fn s(v: &str) -> ShortString {
    v.into()
}

/// A delay queue: quorum, at-least-once dead-lettering back to `passgate.commands` (the
/// original routing key is kept), and a queue-level TTL when `ttl` is given.
fn delay_args(ttl: Option<Duration>) -> FieldTable {
    let mut args = quorum_args(false);
    dead_letter_to(&mut args, COMMANDS_EXCHANGE);
    if let Some(ttl) = ttl {
        args.insert(
            s("x-message-ttl"),
            AMQPValue::LongLongInt(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)),
        );
    }
    args
}

/// A quorum queue; with `dead_letter`, a work queue whose poison messages (delivered
/// `DELIVERY_LIMIT` times) go to the parking lot.
fn quorum_args(dead_letter: bool) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(s("x-queue-type"), AMQPValue::LongString("quorum".into()));
    if dead_letter {
        args.insert(
            s("x-delivery-limit"),
            AMQPValue::LongLongInt(DELIVERY_LIMIT),
        );
        dead_letter_to(&mut args, DEAD_LETTER_EXCHANGE);
    }
    args
}

/// At-least-once dead-lettering to `exchange`: a message leaves the queue only once the
/// target queue has confirmed it (this needs `reject-publish` overflow).
fn dead_letter_to(args: &mut FieldTable, exchange: &str) {
    args.insert(
        s("x-dead-letter-exchange"),
        AMQPValue::LongString(exchange.into()),
    );
    args.insert(
        s("x-dead-letter-strategy"),
        AMQPValue::LongString("at-least-once".into()),
    );
    args.insert(
        s("x-overflow"),
        AMQPValue::LongString("reject-publish".into()),
    );
}

/// Declares every exchange, queue and binding. Idempotent; every process runs it at start-up.
pub async fn declare_topology(channel: &Channel) -> lapin::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            s(COMMANDS_EXCHANGE),
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            s(EVENTS_EXCHANGE),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            s(DEAD_LETTER_EXCHANGE),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
    let queue_opts = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(s(DEAD_QUEUE), queue_opts, quorum_args(false))
        .await?;
    channel
        .queue_bind(
            s(DEAD_QUEUE),
            s(DEAD_LETTER_EXCHANGE),
            s(""),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    for tier in 0..RETRY_TIERS {
        // Per-message TTL (each retry carries its delay as `expiration`).
        let args = delay_args(None);
        let (exchange, queue) = (retry_exchange(tier), retry_queue(tier));
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(queue.as_str().into(), queue_opts, args)
            .await?;
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                s(""),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    let args = delay_args(Some(LEASE_WAIT));
    channel
        .exchange_declare(
            s(LEASE_WAIT_EXCHANGE),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(s(LEASE_WAIT_QUEUE), queue_opts, args)
        .await?;
    channel
        .queue_bind(
            s(LEASE_WAIT_QUEUE),
            s(LEASE_WAIT_EXCHANGE),
            s(""),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    for spec in WORK_QUEUES {
        channel
            .queue_declare(s(spec.name), queue_opts, quorum_args(true))
            .await?;
        for kind in spec.kinds {
            channel
                .queue_bind(
                    s(spec.name),
                    s(COMMANDS_EXCHANGE),
                    s(kind.as_str()),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
    }
    Ok(())
}

/// Opens a connection named after the process (visible in the management UI).
pub async fn connect(url: &str, name: &str) -> lapin::Result<Connection> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url, props).await
}

/// A channel in publisher-confirm mode.
pub async fn confirm_channel(conn: &Connection) -> lapin::Result<Channel> {
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// AMQP properties for a message: persistent JSON, ids mirrored from the envelope.
pub fn properties(message_id: &str, kind: MessageKind, app_id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_content_type(s("application/json"))
        .with_delivery_mode(2)
        .with_message_id(s(message_id))
        .with_type(s(kind.as_str()))
        .with_app_id(s(app_id))
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    #[error("broker refused the message (nack)")]
    Nacked,
    #[error("no queue is bound for routing key {0}")]
    Unroutable(String),
    #[error("no publisher confirm within {0:?}")]
    Timeout(Duration),
}

impl From<lapin::Error> for PublishError {
    fn from(e: lapin::Error) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// Publishes and waits for the broker's confirm. `mandatory`: an unroutable message is an
/// error, never silently dropped.
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    properties: BasicProperties,
    timeout: Duration,
) -> Result<(), PublishError> {
    let confirm = async {
        let pending = channel
            .basic_publish(
                s(exchange),
                s(routing_key),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                payload,
                properties,
            )
            .await?;
        let confirmation = pending.await?;
        if confirmation.is_nack() {
            return Err(PublishError::Nacked);
        }
        if confirmation.take_message().is_some() {
            return Err(PublishError::Unroutable(routing_key.to_owned()));
        }
        Ok(())
    };
    let started = std::time::Instant::now();
    let result = match tokio::time::timeout(timeout, confirm).await {
        Ok(result) => result,
        Err(_) => Err(PublishError::Timeout(timeout)),
    };
    metrics::histogram!("passgate_publish_confirm_seconds", "exchange" => exchange.to_owned())
        .record(started.elapsed().as_secs_f64());
    result
}

/// The live value built on the current connection, or `None` while reconnecting.
pub type Live<T> = watch::Receiver<Option<Arc<T>>>;

/// Keeps a connection up: connects (with exponential backoff, 100 ms to 5 s), declares the
/// topology, builds `T` with `setup`, publishes it on the returned channel, and starts again
/// when the connection is lost. Ends on shutdown, after `teardown` has run on the last value.
pub fn supervise<T, S, SF, D, DF>(
    url: String,
    name: String,
    shutdown: Shutdown,
    setup: S,
    teardown: D,
) -> (Live<T>, tokio::task::JoinHandle<()>)
where
    T: Send + Sync + 'static,
    S: Fn(Arc<Connection>) -> SF + Send + Sync + 'static,
    SF: Future<Output = anyhow::Result<T>> + Send,
    D: Fn(Arc<T>) -> DF + Send + Sync + 'static,
    DF: Future<Output = ()> + Send,
{
    let (tx, rx) = watch::channel(None);
    let task = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            if shutdown.is_triggered() {
                break;
            }
            match connect(&url, &name).await {
                Ok(conn) => {
                    let conn = Arc::new(conn);
                    let mut events = conn.events_listener();
                    let ready = async {
                        let channel = conn.create_channel().await?;
                        declare_topology(&channel).await?;
                        let _ = channel.close(200, s("topology declared")).await;
                        setup(conn.clone()).await
                    };
                    match ready.await {
                        Ok(value) => {
                            backoff = Duration::from_millis(100);
                            let value = Arc::new(value);
                            tx.send_replace(Some(value.clone()));
                            metrics::gauge!("passgate_broker_connected").set(1.0);
                            tracing::info!(broker.connection = %name, "connected to RabbitMQ");
                            let lost = async {
                                loop {
                                    tokio::select! {
                                        event = events.next() => match event {
                                            Some(Event::Error(e)) => break e.to_string(),
                                            None => break "connection closed".to_owned(),
                                            Some(_) => {}
                                        },
                                        _ = tokio::time::sleep(Duration::from_secs(1)) => {
                                            if !conn.status().connected() {
                                                break "connection no longer open".to_owned();
                                            }
                                        }
                                    }
                                }
                            };
                            tokio::select! {
                                reason = lost => {
                                    tx.send_replace(None);
                                    metrics::gauge!("passgate_broker_connected").set(0.0);
                                    metrics::counter!("passgate_broker_reconnects_total").increment(1);
                                    tracing::warn!(broker.connection = %name, error = %reason, "lost RabbitMQ connection; reconnecting");
                                    teardown(value).await;
                                }
                                () = shutdown.triggered() => {
                                    tx.send_replace(None);
                                    teardown(value).await;
                                    let _ = conn.close(200, s("shutting down")).await;
                                    break;
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(broker.connection = %name, error = %e, "RabbitMQ set-up failed; retrying");
                            let _ = conn.close(200, s("set-up failed")).await;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(broker.connection = %name, error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot reach RabbitMQ");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.triggered() => break,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
    (rx, task)
}

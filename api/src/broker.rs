//! The API's side of the broker: one confirm-mode channel that publishes commands and, on the
//! same channel, consumes RabbitMQ direct reply-to, so a waiting call gets its worker's answer
//! without polling. Replies are matched to waiting calls by request id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use passgate_core::amqp::{DIRECT_REPLY_TO, confirm_channel};
use passgate_schema::ids::RequestId;
use passgate_schema::messages::CommandReply;
use tokio::sync::oneshot;

pub struct ApiBroker {
    pub conn: Arc<Connection>,
    pub channel: Channel,
}

/// Calls waiting for a worker's reply.
#[derive(Default)]
pub struct Waiters {
    inner: Mutex<HashMap<RequestId, oneshot::Sender<CommandReply>>>,
}

impl Waiters {
    pub fn register(&self, id: RequestId) -> oneshot::Receiver<CommandReply> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut map) = self.inner.lock() {
            map.insert(id, tx);
        }
        rx
    }

    pub fn forget(&self, id: RequestId) {
        if let Ok(mut map) = self.inner.lock() {
            map.remove(&id);
        }
    }

    fn resolve(&self, reply: CommandReply) {
        let waiter = self
            .inner
            .lock()
            .ok()
            .and_then(|mut map| map.remove(&reply.request_id));
        if let Some(tx) = waiter {
            let _ = tx.send(reply);
        }
    }
}

pub async fn setup(conn: Arc<Connection>, waiters: Arc<Waiters>) -> anyhow::Result<ApiBroker> {
    let channel = confirm_channel(&conn).await?;
    let mut replies = channel
        .basic_consume(
            DIRECT_REPLY_TO.into(),
            "passgate-api-replies".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    tokio::spawn(async move {
        while let Some(delivery) = replies.next().await {
            let Ok(delivery) = delivery else { break };
            match serde_json::from_slice::<CommandReply>(&delivery.data) {
                Ok(reply) => waiters.resolve(reply),
                Err(e) => tracing::warn!(error = %e, "undecodable reply ignored"),
            }
        }
    });
    Ok(ApiBroker { conn, channel })
}

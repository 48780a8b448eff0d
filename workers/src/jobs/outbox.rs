//! The delivery outbox: a send job commits a `deliveries` row holding the sealed secret, then
//! publishes the delivery task. On a redelivered command the task is published again while the
//! row is still `queued`; the delivery job ignores duplicates.

use passgate_core::amqp::{COMMANDS_EXCHANGE, properties, publish_confirmed};
use passgate_core::db;
use passgate_schema::ids::{AppId, RequestId};
use passgate_schema::messages::{Deliver, Envelope, MessageKind};
use passgate_schema::models::deliveries::{self, Delivery};

use crate::context::JobContext;
use crate::job::JobError;

pub async fn publish_queued(
    ctx: &JobContext,
    publish: &lapin::Channel,
    request: RequestId,
    app: AppId,
) -> Result<(), JobError> {
    let mut conn = db::conn(&ctx.db).await?;
    let Some(delivery) = Delivery::find_by_request(&mut conn, request).await? else {
        return Ok(());
    };
    drop(conn);
    if delivery.status != deliveries::STATUS_QUEUED {
        return Ok(());
    }
    let Some(sealed) = &delivery.sealed_payload else {
        return Ok(());
    };
    use base64::Engine as _;
    let kind = if delivery.channel == "sms" {
        MessageKind::DeliverSms
    } else {
        MessageKind::DeliverEmail
    };
    let task = Deliver {
        delivery_id: delivery.id,
        template: delivery.template.clone(),
        secret_sealed: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed),
        expires_at: delivery.expires_at,
    };
    let envelope = Envelope::new(delivery.id.0, kind, app, ctx.clock.now(), task);
    let body = serde_json::to_vec(&envelope).map_err(JobError::permanent)?;
    let props = properties(&delivery.id.to_string(), kind, &app.to_string())
        .with_correlation_id(request.to_string().into());
    publish_confirmed(
        publish,
        COMMANDS_EXCHANGE,
        kind.as_str(),
        &body,
        props,
        ctx.config.publish_timeout,
    )
    .await
    .map_err(|e| JobError::Transient(e.into()))
}

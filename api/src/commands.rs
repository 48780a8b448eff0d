//! Submitting a command: the request row, the publish with confirm, then waiting for the
//! worker's answer (direct reply-to) or answering `202 Accepted` with the poll location.
//!
//! Idempotency: with an `Idempotency-Key`, the same key from the same app within 24 h names the
//! same request: its stored answer is returned and nothing runs twice; the same key with a
//! different body is refused (`422 idempotency_key_reused`).

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::TimeDelta;
use passgate_core::amqp::{COMMANDS_EXCHANGE, DIRECT_REPLY_TO, properties, publish_confirmed};
use passgate_core::crypto::ct_eq;
use passgate_core::db;
use passgate_schema::ids::RequestId;
use passgate_schema::messages::{CommandReply, Envelope, Idempotency, MessageKind};
use passgate_schema::models::auth_requests::{AuthRequest, NewAuthRequest};
use serde::Serialize;
use serde_json::json;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

const IDEMPOTENCY_WINDOW: TimeDelta = TimeDelta::hours(24);
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Context for sealing token bodies of one request (replies and stored results).
pub fn result_seal_context(id: RequestId) -> Vec<u8> {
    format!("result:{id}").into_bytes()
}

/// How the caller wants the answer.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    /// The request id, known before the payload is built (sealed secrets are bound to it).
    pub id: RequestId,
    pub kind: MessageKind,
    pub raw_body: &'a [u8],
    pub idempotency_key: Option<String>,
    pub respond_async: bool,
}

impl<'a> Submission<'a> {
    pub fn from_headers(
        kind: MessageKind,
        headers: &HeaderMap,
        raw_body: &'a [u8],
    ) -> Result<Self, ApiError> {
        let idempotency_key = match headers.get("idempotency-key") {
            None => None,
            Some(v) => {
                let key = v
                    .to_str()
                    .map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII"))?
                    .trim();
                if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
                    return Err(ApiError::invalid(
                        "Idempotency-Key",
                        "must be 1 to 255 characters",
                    ));
                }
                Some(key.to_owned())
            }
        };
        let respond_async = headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("respond-async"));
        Ok(Self {
            id: RequestId::new_v7(),
            kind,
            raw_body,
            idempotency_key,
            respond_async,
        })
    }
}

/// Runs a command end to end and turns the outcome into the HTTP answer.
pub async fn submit<P: Serialize>(
    state: &AppState,
    caller: &Caller,
    submission: Submission<'_>,
    payload: P,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let id = submission.id;
    let fingerprint = submission.idempotency_key.as_ref().map(|_| {
        let mut material = submission.kind.as_str().as_bytes().to_vec();
        material.push(0);
        material.extend_from_slice(submission.raw_body);
        state.config.client_key.keyed_hash("idempotency", &material)
    });

    // The request row is written without waiting for the WAL flush (the `ledger` pool): it can
    // be rebuilt. The broker's confirm is what makes the command durable, and a worker that
    // finds no row writes it again from the message, idempotency key included; what the worker
    // commits itself is durable. So a crash of PostgreSQL right after a `202` loses nothing,
    // though the poll can answer `404` until a worker has taken the message.
    let mut conn = db::conn(&state.ledger).await?;
    if let (Some(key), Some(fingerprint)) = (&submission.idempotency_key, &fingerprint) {
        AuthRequest::release_idempotency_key(
            &mut conn,
            caller.app_id,
            key,
            now - IDEMPOTENCY_WINDOW,
        )
        .await?;
        if let Some(existing) =
            AuthRequest::find_by_idempotency_key(&mut conn, caller.app_id, key).await?
        {
            drop(conn);
            return replay(state, existing, fingerprint, submission.respond_async).await;
        }
    }
    let inserted = NewAuthRequest {
        id,
        app_id: caller.app_id,
        kind: submission.kind.as_str(),
        idempotency_key: submission.idempotency_key.as_deref(),
        request_hash: fingerprint.as_ref().map(|f| f.as_slice()),
        created_at: now,
    }
    .insert(&mut conn)
    .await?;
    if !inserted {
        // A concurrent call with the same idempotency key won the race.
        if let (Some(key), Some(fingerprint)) = (&submission.idempotency_key, &fingerprint)
            && let Some(existing) =
                AuthRequest::find_by_idempotency_key(&mut conn, caller.app_id, key).await?
        {
            drop(conn);
            return replay(state, existing, fingerprint, submission.respond_async).await;
        }
        return Err(ApiError::internal(anyhow::anyhow!(
            "request row was not inserted"
        )));
    }

    // The connection is not held while waiting for the broker.
    drop(conn);
    let mut envelope = Envelope::new(id.0, submission.kind, caller.app_id, now, payload);
    envelope.idempotency = submission.idempotency_key.clone().map(|key| Idempotency {
        key,
        request_hash: fingerprint.as_ref().map(|f| base64_encode(f)),
    });
    let body = serde_json::to_vec(&envelope).map_err(ApiError::internal)?;
    let waiter = (!submission.respond_async).then(|| state.waiters.register(id));
    let published = publish(state, id, &envelope, &body, waiter.is_some()).await;
    if let Err(e) = published {
        state.waiters.forget(id);
        // Nothing reached the broker, as far as the API knows: forget the request so a retry
        // starts afresh. If the message did get through (a confirm that never came), the
        // worker recreates the row with the idempotency key the envelope carries, so a retry
        // with that key finds it, or the first of the two to write the row wins and the
        // other command is dropped.
        let removed = async {
            let mut conn = db::conn(&state.ledger).await?;
            AuthRequest::delete_pending(&mut conn, id).await?;
            Ok::<_, ApiError>(())
        }
        .await;
        if let Err(del) = removed {
            tracing::warn!(request.id = %id, error = %del, "could not remove unpublished request");
        }
        metrics::counter!("passgate_api_publish_failures_total").increment(1);
        tracing::warn!(request.id = %id, error = %e, "publish failed; answering 503");
        return Err(ApiError::ServiceUnavailable);
    }
    metrics::counter!("passgate_api_commands_total", "type" => submission.kind.as_str())
        .increment(1);

    let Some(waiter) = waiter else {
        return Ok(accepted(id));
    };
    match tokio::time::timeout(state.config.wait_timeout, waiter).await {
        Ok(Ok(reply)) => reply_response(state, reply),
        _ => {
            state.waiters.forget(id);
            Ok(accepted(id))
        }
    }
}

async fn publish<P: Serialize>(
    state: &AppState,
    id: RequestId,
    envelope: &Envelope<P>,
    body: &[u8],
    wants_reply: bool,
) -> Result<(), passgate_core::amqp::PublishError> {
    let broker = state.broker.borrow().clone();
    let Some(broker) = broker else {
        return Err(passgate_core::amqp::PublishError::Unavailable(
            "not connected".to_owned(),
        ));
    };
    let mut props = properties(&id.to_string(), envelope.kind, &envelope.app_id.to_string())
        .with_correlation_id(id.to_string().into())
        .with_timestamp(u64::try_from(envelope.created_at.timestamp()).unwrap_or_default());
    if wants_reply {
        props = props.with_reply_to(DIRECT_REPLY_TO.into());
    }
    publish_confirmed(
        &broker.channel,
        COMMANDS_EXCHANGE,
        envelope.kind.as_str(),
        body,
        props,
        state.config.publish_timeout,
    )
    .await
}

/// A repeated idempotency key: the stored answer, or wait for the original to finish.
async fn replay(
    state: &AppState,
    existing: AuthRequest,
    fingerprint: &[u8; 32],
    respond_async: bool,
) -> Result<Response, ApiError> {
    let same = existing
        .request_hash
        .as_deref()
        .is_some_and(|h| ct_eq(h, fingerprint));
    if !same {
        return Err(ApiError::IdempotencyKeyReused);
    }
    metrics::counter!("passgate_api_idempotent_replays_total").increment(1);
    let mut current = existing;
    if !respond_async {
        let deadline = tokio::time::Instant::now() + state.config.wait_timeout;
        while !current.is_final() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut conn = db::conn(&state.ledger).await?;
            match AuthRequest::find(&mut conn, current.app_id, current.id).await? {
                Some(row) => current = row,
                None => break,
            }
        }
    }
    if current.is_final() {
        stored_response(state, &current)
    } else {
        Ok(accepted(current.id))
    }
}

/// `202 Accepted` with the poll location.
pub fn accepted(id: RequestId) -> Response {
    let location = format!("/v1/requests/{id}");
    let mut response = (
        StatusCode::ACCEPTED,
        Json(json!({ "request_id": id, "status": "pending" })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

fn with_retry_after(mut response: Response, retry_after: Option<u32>) -> Response {
    if let Some(secs) = retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// The body of a final answer, opening sealed bodies.
pub fn open_body(
    state: &AppState,
    id: RequestId,
    body: Option<serde_json::Value>,
    sealed: Option<&[u8]>,
) -> Result<serde_json::Value, ApiError> {
    if let Some(sealed) = sealed {
        let plain = state
            .transport
            .open(&result_seal_context(id), sealed)
            .map_err(|e| ApiError::internal(anyhow::anyhow!("cannot open result: {e}")))?;
        return serde_json::from_slice(&plain).map_err(ApiError::internal);
    }
    Ok(body.unwrap_or(serde_json::Value::Null))
}

fn reply_response(state: &AppState, reply: CommandReply) -> Result<Response, ApiError> {
    let sealed = match &reply.sealed_body {
        Some(b64) => Some(
            base64_decode(b64)
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("reply body is not base64")))?,
        ),
        None => None,
    };
    let body = open_body(state, reply.request_id, reply.body, sealed.as_deref())?;
    let status = StatusCode::from_u16(reply.http_status).map_err(ApiError::internal)?;
    Ok(with_retry_after(
        final_response(status, body),
        reply.retry_after,
    ))
}

fn stored_response(state: &AppState, row: &AuthRequest) -> Result<Response, ApiError> {
    let body = open_body(
        state,
        row.id,
        row.response.clone(),
        row.response_sealed.as_deref(),
    )?;
    let status = StatusCode::from_u16(u16::try_from(row.http_status.unwrap_or(500)).unwrap_or(500))
        .map_err(ApiError::internal)?;
    let retry_after = row.retry_after.and_then(|s| u32::try_from(s).ok());
    Ok(with_retry_after(final_response(status, body), retry_after))
}

/// The final HTTP answer: the body as JSON, or nothing for `204 No Content`.
fn final_response(status: StatusCode, body: serde_json::Value) -> Response {
    if status == StatusCode::NO_CONTENT {
        status.into_response()
    } else {
        (status, Json(body)).into_response()
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}

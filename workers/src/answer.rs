//! Command answers: the HTTP status and body a worker decides, recorded in `auth_requests`
//! and sent to the caller. Bodies holding tokens are sealed, in the row and on the wire.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use passgate_schema::DbConn;
use passgate_schema::ids::RequestId;
use passgate_schema::messages::CommandReply;
use passgate_schema::models::auth_requests::{AuthRequest, Completion, NewAuthRequest};
use serde_json::{Value, json};

use crate::context::JobContext;
use crate::job::{CommandJob, JobError, Outcome};
use diesel_async::AsyncConnection;
use passgate_schema::messages::Envelope;

#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// Holds tokens: sealed at rest and in transit.
    pub sensitive: bool,
    pub retry_after: Option<u32>,
    /// Undo every change the job made before answering (e.g. do not burn a valid code when
    /// the session named in the request does not exist); only the answer is recorded.
    pub undo: bool,
}

impl Answer {
    pub fn ok(body: Value) -> Self {
        Self {
            status: 200,
            body,
            sensitive: false,
            retry_after: None,
            undo: false,
        }
    }

    pub fn tokens(body: Value) -> Self {
        Self {
            status: 200,
            body,
            sensitive: true,
            retry_after: None,
            undo: false,
        }
    }

    /// `204 No Content`.
    pub fn no_content() -> Self {
        Self {
            status: 204,
            body: Value::Null,
            sensitive: false,
            retry_after: None,
            undo: false,
        }
    }

    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Self {
            status,
            body: json!({ "error_code": code, "message": message, "status": status }),
            sensitive: false,
            retry_after: None,
            undo: false,
        }
    }

    /// Roll the job's changes back; record only this answer.
    pub fn undo(mut self) -> Self {
        self.undo = true;
        self
    }

    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

pub fn seal_context(id: RequestId) -> Vec<u8> {
    format!("result:{id}").into_bytes()
}

/// Records the answer (inside the job's transaction) and returns the reply to send.
pub async fn complete(
    ctx: &JobContext,
    conn: &mut DbConn,
    id: RequestId,
    answer: &Answer,
) -> Result<CommandReply, JobError> {
    let sealed = if answer.sensitive {
        let plain = serde_json::to_vec(&answer.body).map_err(JobError::permanent)?;
        Some(
            ctx.transport
                .seal(&seal_context(id), &plain)
                .map_err(JobError::permanent)?,
        )
    } else {
        None
    };
    let done = Completion {
        http_status: i16::try_from(answer.status).unwrap_or(500),
        response: (!answer.sensitive).then_some(&answer.body),
        response_sealed: sealed.as_deref(),
        retry_after: answer.retry_after.and_then(|s| i32::try_from(s).ok()),
        completed_at: ctx.clock.now(),
    };
    AuthRequest::complete(conn, id, &done).await?;
    Ok(CommandReply {
        request_id: id,
        http_status: answer.status,
        body: (!answer.sensitive).then(|| answer.body.clone()),
        sealed_body: sealed.map(|s| URL_SAFE_NO_PAD.encode(s)),
        retry_after: answer.retry_after,
    })
}

/// The reply for a request that is already final (a redelivered command).
pub fn reply_from_row(row: &AuthRequest) -> CommandReply {
    CommandReply {
        request_id: row.id,
        http_status: u16::try_from(row.http_status.unwrap_or(500)).unwrap_or(500),
        body: row.response.clone(),
        sealed_body: row
            .response_sealed
            .as_ref()
            .map(|s| URL_SAFE_NO_PAD.encode(s)),
        retry_after: row.retry_after.and_then(|s| u32::try_from(s).ok()),
    }
}

enum TxError {
    Job(JobError),
    Undo(Answer),
    /// The app has no request row with the command's id.
    NoRow,
}

impl From<diesel::result::Error> for TxError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Job(e.into())
    }
}

impl From<JobError> for TxError {
    fn from(e: JobError) -> Self {
        Self::Job(e)
    }
}

/// Runs a command job: locks its request row (a finished request is answered from the row),
/// lets the job decide, and records the answer in the same transaction as the job's effects
/// (or alone, after a rollback, when the answer asks to undo them).
///
/// Usually the API wrote the row, and the lock is the only ledger statement. When the app has
/// no row with this id (a producer published straight to the broker, or the API removed its
/// row after a publish it could not confirm), the row is written from the message and the
/// command runs; a command whose idempotency key another request of the app holds is dropped
/// ([`Outcome::Done`]: the caller retried and that request carries the work), and an id that
/// is another app's is parked ([`Outcome::Park`]).
pub async fn run_command<J: CommandJob>(
    ctx: &JobContext,
    msg: &Envelope<J::Payload>,
) -> Result<Outcome, JobError> {
    let id = RequestId(msg.id);
    let mut conn = passgate_core::db::conn(&ctx.db).await?;
    let mut row_written = false;
    loop {
        let result = conn
            .transaction::<_, TxError, _>(async |conn| {
                let Some(request) = AuthRequest::lock(conn, msg.app_id, id).await? else {
                    return Err(TxError::NoRow);
                };
                if request.is_final() {
                    metrics::counter!("passgate_jobs_redelivered_total", "job" => J::KIND.as_str())
                        .increment(1);
                    return Ok(reply_from_row(&request));
                }
                let answer = J::decide(ctx, conn, msg).await?;
                if answer.undo {
                    return Err(TxError::Undo(answer));
                }
                Ok(complete(ctx, conn, id, &answer).await?)
            })
            .await;
        return match result {
            Ok(reply) => Ok(Outcome::Reply(reply)),
            Err(TxError::Job(e)) => Err(e),
            Err(TxError::Undo(answer)) => conn
                .transaction::<_, JobError, _>(async |conn| {
                    match AuthRequest::lock(conn, msg.app_id, id).await? {
                        Some(request) if request.is_final() => Ok(reply_from_row(&request)),
                        _ => complete(ctx, conn, id, &answer).await,
                    }
                })
                .await
                .map(Outcome::Reply),
            Err(TxError::NoRow) if !row_written => {
                // Written with the command's idempotency key; a no-op if the row appeared
                // meanwhile or the id is taken.
                insert_request_row::<J>(&mut conn, msg, ctx.clock.now()).await?;
                row_written = true;
                continue;
            }
            Err(TxError::NoRow) => Ok(missing_row::<J>(&mut conn, msg).await?),
        };
    }
}

/// The request row of a command whose row does not exist, with the command's idempotency key
/// if it has one. Its `created_at` is now, not the envelope's: the 24 h idempotency window
/// counts from it, and a producer's clock (or a stale timestamp) must not release the key at
/// once.
async fn insert_request_row<J: CommandJob>(
    conn: &mut DbConn,
    msg: &Envelope<J::Payload>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), JobError> {
    let key = msg.idempotency.as_ref().map(|i| i.key.as_str());
    let hash = msg
        .idempotency
        .as_ref()
        .and_then(|i| i.request_hash.as_deref())
        .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok());
    NewAuthRequest {
        id: RequestId(msg.id),
        app_id: msg.app_id,
        kind: J::KIND.as_str(),
        idempotency_key: key,
        request_hash: hash.as_deref(),
        created_at: now,
    }
    .insert(conn)
    .await
    .map_err(|e| unknown_app(e, msg.app_id))?;
    Ok(())
}

/// Why the app still has no row after writing one: another request holds the idempotency
/// key (dropped), or the id is another app's (parked).
async fn missing_row<J: CommandJob>(
    conn: &mut DbConn,
    msg: &Envelope<J::Payload>,
) -> Result<Outcome, JobError> {
    let id = RequestId(msg.id);
    if let Some(key) = msg.idempotency.as_ref().map(|i| i.key.as_str())
        && let Some(holder) = AuthRequest::find_by_idempotency_key(conn, msg.app_id, key).await?
        && holder.id != id
    {
        metrics::counter!("passgate_jobs_superseded_total", "job" => J::KIND.as_str()).increment(1);
        tracing::warn!(request.id = %id, holder = %holder.id, "idempotency key already used by another request: command dropped");
        return Ok(Outcome::Done);
    }
    Ok(Outcome::Park {
        reason: format!("request {id} belongs to another app"),
    })
}

/// An insert refused by the `app_id` foreign key names an app that does not exist: a
/// producer's mistake, not worth retrying.
fn unknown_app(e: diesel::result::Error, app: passgate_schema::ids::AppId) -> JobError {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
            JobError::permanent(anyhow::anyhow!("unknown app {app}"))
        }
        other => other.into(),
    }
}

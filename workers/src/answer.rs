//! Command answers: the HTTP status and body a worker decides, recorded in `auth_requests`
//! and sent to the caller. Bodies holding tokens are sealed, in the row and on the wire.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use passgate_schema::DbConn;
use passgate_schema::ids::RequestId;
use passgate_schema::messages::CommandReply;
use passgate_schema::models::auth_requests::{AuthRequest, Completion};
use serde_json::{Value, json};

use crate::context::JobContext;
use crate::job::{CommandJob, JobError};
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
pub async fn run_command<J: CommandJob>(
    ctx: &JobContext,
    msg: &Envelope<J::Payload>,
) -> Result<CommandReply, JobError> {
    let id = RequestId(msg.id);
    let mut conn = passgate_core::db::conn(&ctx.db).await?;
    let result = conn
        .transaction::<_, TxError, _>(async |conn| {
            let Some(request) = AuthRequest::lock(conn, id).await? else {
                return Err(JobError::permanent(anyhow::anyhow!("request row missing")).into());
            };
            if request.is_final() {
                return Ok(reply_from_row(&request));
            }
            let answer = J::decide(ctx, conn, msg).await?;
            if answer.undo {
                return Err(TxError::Undo(answer));
            }
            Ok(complete(ctx, conn, id, &answer).await?)
        })
        .await;
    match result {
        Ok(reply) => Ok(reply),
        Err(TxError::Job(e)) => Err(e),
        Err(TxError::Undo(answer)) => {
            conn.transaction::<_, JobError, _>(async |conn| {
                match AuthRequest::lock(conn, id).await? {
                    Some(request) if request.is_final() => Ok(reply_from_row(&request)),
                    _ => complete(ctx, conn, id, &answer).await,
                }
            })
            .await
        }
    }
}

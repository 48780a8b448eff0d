//! The request ledger. A row is written by the API before it publishes a command (or by the
//! worker, for commands published straight to the broker) and completed by the worker in the
//! same transaction as the command's effect, which makes redelivered commands harmless.

use chrono::{DateTime, Utc};
use diesel::{
    ExpressionMethods, Insertable, OptionalExtension, QueryDsl, QueryResult, Queryable, Selectable,
    SelectableHelper,
};
use diesel_async::RunQueryDsl;

use crate::DbConn;
use crate::ids::{AppId, RequestId};
use crate::schema::auth_requests;

pub const STATUS_PENDING: &str = "pending";
pub const STATUS_SUCCEEDED: &str = "succeeded";
pub const STATUS_FAILED: &str = "failed";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = auth_requests, check_for_backend(diesel::pg::Pg))]
pub struct AuthRequest {
    pub id: RequestId,
    pub app_id: AppId,
    pub kind: String,
    pub status: String,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<Vec<u8>>,
    pub http_status: Option<i16>,
    pub response: Option<serde_json::Value>,
    pub response_sealed: Option<Vec<u8>>,
    pub retry_after: Option<i32>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = auth_requests)]
pub struct NewAuthRequest<'a> {
    pub id: RequestId,
    pub app_id: AppId,
    pub kind: &'a str,
    pub idempotency_key: Option<&'a str>,
    pub request_hash: Option<&'a [u8]>,
    pub created_at: DateTime<Utc>,
}

/// The final answer a worker records.
#[derive(Debug, Clone)]
pub struct Completion<'a> {
    pub http_status: i16,
    pub response: Option<&'a serde_json::Value>,
    pub response_sealed: Option<&'a [u8]>,
    pub retry_after: Option<i32>,
    pub completed_at: DateTime<Utc>,
}

impl NewAuthRequest<'_> {
    /// Inserts the row; `false` when a row with the same id or the same idempotency key exists.
    pub async fn insert(&self, conn: &mut DbConn) -> QueryResult<bool> {
        let n = diesel::insert_into(auth_requests::table)
            .values(self)
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        Ok(n == 1)
    }
}

impl AuthRequest {
    pub fn is_final(&self) -> bool {
        self.status != STATUS_PENDING
    }

    pub async fn find(
        conn: &mut DbConn,
        app: AppId,
        id: RequestId,
    ) -> QueryResult<Option<AuthRequest>> {
        auth_requests::table
            .find(id)
            .filter(auth_requests::app_id.eq(app))
            .select(AuthRequest::as_select())
            .first(conn)
            .await
            .optional()
    }

    pub async fn find_by_idempotency_key(
        conn: &mut DbConn,
        app: AppId,
        key: &str,
    ) -> QueryResult<Option<AuthRequest>> {
        auth_requests::table
            .filter(auth_requests::app_id.eq(app))
            .filter(auth_requests::idempotency_key.eq(key))
            .select(AuthRequest::as_select())
            .first(conn)
            .await
            .optional()
    }

    /// Frees an idempotency key whose window has passed, so it can name a new request.
    pub async fn release_idempotency_key(
        conn: &mut DbConn,
        app: AppId,
        key: &str,
        created_before: DateTime<Utc>,
    ) -> QueryResult<usize> {
        diesel::update(
            auth_requests::table
                .filter(auth_requests::app_id.eq(app))
                .filter(auth_requests::idempotency_key.eq(key))
                .filter(auth_requests::created_at.lt(created_before)),
        )
        .set(auth_requests::idempotency_key.eq(None::<String>))
        .execute(conn)
        .await
    }

    /// Locks the app's row for the rest of the transaction (serialises duplicate deliveries of
    /// one command) and counts the attempt. `None`: no such row of this app.
    pub async fn lock(
        conn: &mut DbConn,
        app: AppId,
        id: RequestId,
    ) -> QueryResult<Option<AuthRequest>> {
        diesel::update(
            auth_requests::table
                .find(id)
                .filter(auth_requests::app_id.eq(app)),
        )
        .set(auth_requests::attempts.eq(auth_requests::attempts + 1))
        .returning(AuthRequest::as_returning())
        .get_result(conn)
        .await
        .optional()
    }

    /// Records the final answer, once: `false` if the row was already final.
    pub async fn complete(
        conn: &mut DbConn,
        id: RequestId,
        done: &Completion<'_>,
    ) -> QueryResult<bool> {
        let status = if done.http_status < 400 {
            STATUS_SUCCEEDED
        } else {
            STATUS_FAILED
        };
        let n = diesel::update(
            auth_requests::table
                .find(id)
                .filter(auth_requests::status.eq(STATUS_PENDING)),
        )
        .set((
            auth_requests::status.eq(status),
            auth_requests::http_status.eq(done.http_status),
            auth_requests::response.eq(done.response),
            auth_requests::response_sealed.eq(done.response_sealed),
            auth_requests::retry_after.eq(done.retry_after),
            auth_requests::completed_at.eq(done.completed_at),
        ))
        .execute(conn)
        .await?;
        Ok(n == 1)
    }

    /// Removes a request that never reached the broker (publish failed), so the caller's retry,
    /// with the same idempotency key, starts afresh.
    pub async fn delete_pending(conn: &mut DbConn, id: RequestId) -> QueryResult<usize> {
        diesel::delete(
            auth_requests::table
                .find(id)
                .filter(auth_requests::status.eq(STATUS_PENDING)),
        )
        .execute(conn)
        .await
    }
}

//! One row per delivery attempt: written before the provider is called (so a crash leaves a
//! trace), finished with the outcome.

use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, Insertable, QueryDsl, QueryResult};
use diesel_async::RunQueryDsl;

use crate::DbConn;
use crate::ids::DeliveryId;
use crate::schema::delivery_attempts;

#[derive(Debug, Insertable)]
#[diesel(table_name = delivery_attempts)]
pub struct NewDeliveryAttempt<'a> {
    pub delivery_id: DeliveryId,
    pub attempt: i32,
    pub provider: Option<&'a str>,
    pub started_at: DateTime<Utc>,
}

impl NewDeliveryAttempt<'_> {
    pub async fn insert(&self, conn: &mut DbConn) -> QueryResult<()> {
        diesel::insert_into(delivery_attempts::table)
            .values(self)
            .on_conflict_do_nothing()
            .execute(conn)
            .await
            .map(drop)
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy)]
pub struct AttemptEnd<'a> {
    pub provider: Option<&'a str>,
    /// `sent`, `transient`, `permanent` or `expired`.
    pub outcome: &'a str,
    pub error: Option<&'a str>,
    pub provider_message_id: Option<&'a str>,
}

/// Records how an attempt ended.
pub async fn finish(
    conn: &mut DbConn,
    delivery: DeliveryId,
    attempt: i32,
    end: AttemptEnd<'_>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(
        delivery_attempts::table
            .filter(delivery_attempts::delivery_id.eq(delivery))
            .filter(delivery_attempts::attempt.eq(attempt)),
    )
    .set((
        delivery_attempts::provider.eq(end.provider),
        delivery_attempts::outcome.eq(end.outcome),
        delivery_attempts::error.eq(end.error),
        delivery_attempts::provider_message_id.eq(end.provider_message_id),
        delivery_attempts::finished_at.eq(now),
    ))
    .execute(conn)
    .await
    .map(drop)
}

/// How an earlier attempt ended, if it was recorded: `Some((outcome, provider, provider
/// message id))` when the attempt row exists; `outcome` is `None` when its worker died during
/// the provider call.
pub async fn previous(
    conn: &mut DbConn,
    delivery: DeliveryId,
    attempt: i32,
) -> QueryResult<Option<(Option<String>, Option<String>, Option<String>)>> {
    use diesel::OptionalExtension;
    delivery_attempts::table
        .filter(delivery_attempts::delivery_id.eq(delivery))
        .filter(delivery_attempts::attempt.eq(attempt))
        .select((
            delivery_attempts::outcome,
            delivery_attempts::provider,
            delivery_attempts::provider_message_id,
        ))
        .first(conn)
        .await
        .optional()
}

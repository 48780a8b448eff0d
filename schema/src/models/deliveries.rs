//! Deliveries: one message to one destination, and the outbox of the sealed secret it carries.
//! The delivery worker moves a row `queued → sending → sent | failed | expired`; the sealed
//! payload is erased once the message has left.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::sql_types::{Integer, Nullable, Text, Timestamptz};
use diesel::{
    ExpressionMethods, Insertable, OptionalExtension, QueryDsl, QueryResult, Queryable,
    QueryableByName, Selectable, SelectableHelper,
};
use diesel_async::RunQueryDsl;

use crate::DbConn;
use crate::ids::{AppId, DeliveryId, RequestId};
use crate::prepared::prepared_query;
use crate::schema::deliveries;

pub const STATUS_QUEUED: &str = "queued";
pub const STATUS_SENDING: &str = "sending";
pub const STATUS_SENT: &str = "sent";
pub const STATUS_FAILED: &str = "failed";
pub const STATUS_EXPIRED: &str = "expired";
/// `error_class` of a delivery whose transient failures used up every attempt. Its sealed
/// secret is kept (until it expires) so an operator can requeue it.
pub const CLASS_EXHAUSTED: &str = "transient_exhausted";

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = deliveries, check_for_backend(diesel::pg::Pg))]
pub struct Delivery {
    pub id: DeliveryId,
    pub app_id: AppId,
    pub request_id: RequestId,
    pub channel: String,
    pub destination: String,
    pub template: String,
    pub status: String,
    pub attempts: i32,
    pub provider: Option<String>,
    pub provider_message_id: Option<String>,
    pub error_class: Option<String>,
    pub last_error: Option<String>,
    pub sealed_payload: Option<Vec<u8>>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// Attempts made before the last requeue; the retry ladder counts from here.
    pub attempt_base: i32,
}

impl Delivery {
    /// Attempts on the current retry ladder (since the last requeue).
    pub fn ladder_attempts(&self) -> i32 {
        self.attempts - self.attempt_base
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = deliveries)]
pub struct NewDelivery<'a> {
    pub id: DeliveryId,
    pub app_id: AppId,
    pub request_id: RequestId,
    pub channel: &'a str,
    pub destination: &'a str,
    pub template: &'a str,
    pub sealed_payload: Option<&'a [u8]>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl NewDelivery<'_> {
    pub async fn insert(&self, conn: &mut DbConn) -> QueryResult<()> {
        diesel::insert_into(deliveries::table)
            .values(self)
            .on_conflict_do_nothing()
            .execute(conn)
            .await
            .map(drop)
    }
}

/// A delivery claimed by [`Delivery::claim_and_start`].
#[derive(Debug, QueryableByName)]
pub struct Claimed {
    #[diesel(embed)]
    pub delivery: Delivery,
    /// The attempt row was written by the same statement (the delivery's first attempt, not
    /// yet expired): the provider may be called without writing it again.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub attempt_started: bool,
}

/// The claim of [`Delivery::claim_and_start`] and, for a first attempt, its
/// `delivery_attempts` row, in one statement (one round trip, one commit).
struct ClaimAndStart {
    id: DeliveryId,
    now: DateTime<Utc>,
    stale_before: DateTime<Utc>,
}

prepared_query!(ClaimAndStart);

impl QueryFragment<Pg> for ClaimAndStart {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "WITH claimed AS (UPDATE deliveries \
             SET status = 'sending', attempts = attempts + 1, updated_at = ",
        );
        out.push_bind_param::<Timestamptz, _>(&self.now)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<diesel::sql_types::Uuid, _>(&self.id)?;
        out.push_sql(" AND (status = 'queued' OR (status = 'sending' AND updated_at < ");
        out.push_bind_param::<Timestamptz, _>(&self.stale_before)?;
        out.push_sql(
            ")) RETURNING *), \
             started AS (INSERT INTO delivery_attempts (delivery_id, attempt, started_at) \
             SELECT id, attempts, ",
        );
        out.push_bind_param::<Timestamptz, _>(&self.now)?;
        out.push_sql(" FROM claimed WHERE attempts = 1 AND expires_at > ");
        out.push_bind_param::<Timestamptz, _>(&self.now)?;
        out.push_sql(
            " ON CONFLICT DO NOTHING RETURNING attempt) \
             SELECT claimed.*, EXISTS (SELECT 1 FROM started) AS attempt_started FROM claimed",
        );
        Ok(())
    }
}

/// A sent attempt and its delivery recorded in one statement (atomic without a transaction).
struct RecordSent<'a> {
    id: DeliveryId,
    attempt: i32,
    provider: &'a str,
    provider_message_id: Option<&'a str>,
    now: DateTime<Utc>,
}

prepared_query!(RecordSent<'_>);

impl QueryFragment<Pg> for RecordSent<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH attempt AS (UPDATE delivery_attempts SET provider = ");
        out.push_bind_param::<Text, _>(self.provider)?;
        out.push_sql(", outcome = 'sent', error = NULL, provider_message_id = ");
        out.push_bind_param::<Nullable<Text>, _>(&self.provider_message_id)?;
        out.push_sql(", finished_at = ");
        out.push_bind_param::<Timestamptz, _>(&self.now)?;
        out.push_sql(" WHERE delivery_id = ");
        out.push_bind_param::<diesel::sql_types::Uuid, _>(&self.id)?;
        out.push_sql(" AND attempt = ");
        out.push_bind_param::<Integer, _>(&self.attempt)?;
        out.push_sql(") UPDATE deliveries SET status = 'sent', provider = ");
        out.push_bind_param::<Text, _>(self.provider)?;
        out.push_sql(", provider_message_id = ");
        out.push_bind_param::<Nullable<Text>, _>(&self.provider_message_id)?;
        out.push_sql(", sealed_payload = NULL, error_class = NULL, last_error = NULL, sent_at = ");
        out.push_bind_param::<Timestamptz, _>(&self.now)?;
        out.push_sql(", updated_at = ");
        out.push_bind_param::<Timestamptz, _>(&self.now)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<diesel::sql_types::Uuid, _>(&self.id)?;
        Ok(())
    }
}

impl Delivery {
    /// Claims a delivery for one attempt: a `queued` row, or a `sending` row whose lease ran
    /// out (its worker died mid-attempt), moves to `sending` with the attempt counted. A row
    /// being sent by a live worker cannot be claimed twice. Returns the claimed row.
    ///
    /// For the delivery's first attempt (not expired) the same statement writes the attempt
    /// row that must exist before a provider is called. For a later attempt the caller looks
    /// at the previous one first and writes the row itself.
    pub async fn claim_and_start(
        conn: &mut DbConn,
        id: DeliveryId,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> QueryResult<Option<Claimed>> {
        ClaimAndStart {
            id,
            now,
            stale_before: now - lease,
        }
        .get_result(conn)
        .await
        .optional()
    }

    /// Marks attempt `attempt` and the delivery sent (secret erased), atomically.
    pub async fn record_sent(
        conn: &mut DbConn,
        id: DeliveryId,
        attempt: i32,
        provider: &str,
        provider_message_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> QueryResult<()> {
        RecordSent {
            id,
            attempt,
            provider,
            provider_message_id,
            now,
        }
        .execute(conn)
        .await
        .map(drop)
    }

    /// Erases the sealed secrets of failed deliveries that have expired (kept until then for
    /// an operator's requeue). Returns how many were erased.
    pub async fn erase_expired_secrets(
        conn: &mut DbConn,
        now: DateTime<Utc>,
    ) -> QueryResult<usize> {
        diesel::update(
            deliveries::table
                .filter(deliveries::sealed_payload.is_not_null())
                .filter(deliveries::expires_at.lt(now))
                .filter(deliveries::status.eq(STATUS_FAILED)),
        )
        .set(deliveries::sealed_payload.eq(None::<Vec<u8>>))
        .execute(conn)
        .await
    }

    pub async fn find(conn: &mut DbConn, id: DeliveryId) -> QueryResult<Option<Delivery>> {
        deliveries::table
            .find(id)
            .select(Delivery::as_select())
            .first(conn)
            .await
            .optional()
    }

    pub async fn find_by_request(
        conn: &mut DbConn,
        request: RequestId,
    ) -> QueryResult<Option<Delivery>> {
        deliveries::table
            .filter(deliveries::request_id.eq(request))
            .select(Delivery::as_select())
            .first(conn)
            .await
            .optional()
    }

    pub async fn mark_sent(
        conn: &mut DbConn,
        id: DeliveryId,
        provider: &str,
        provider_message_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> QueryResult<()> {
        diesel::update(deliveries::table.find(id))
            .set((
                deliveries::status.eq(STATUS_SENT),
                deliveries::provider.eq(provider),
                deliveries::provider_message_id.eq(provider_message_id),
                deliveries::sealed_payload.eq(None::<Vec<u8>>),
                deliveries::sent_at.eq(now),
                deliveries::updated_at.eq(now),
                deliveries::error_class.eq(None::<String>),
                deliveries::last_error.eq(None::<String>),
            ))
            .execute(conn)
            .await
            .map(drop)
    }

    /// Final failure (`failed` or `expired`): the secret is erased, the reason kept.
    pub async fn mark_final_failure(
        conn: &mut DbConn,
        id: DeliveryId,
        status: &str,
        provider: Option<&str>,
        error_class: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> QueryResult<()> {
        diesel::update(deliveries::table.find(id))
            .set((
                deliveries::status.eq(status),
                deliveries::provider.eq(provider),
                deliveries::sealed_payload.eq(None::<Vec<u8>>),
                deliveries::error_class.eq(error_class),
                deliveries::last_error.eq(error),
                deliveries::updated_at.eq(now),
            ))
            .execute(conn)
            .await
            .map(drop)
    }

    /// A failed attempt that will be tried again: back to `queued` with the reason.
    pub async fn mark_retry(
        conn: &mut DbConn,
        id: DeliveryId,
        provider: Option<&str>,
        error_class: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> QueryResult<()> {
        diesel::update(deliveries::table.find(id))
            .set((
                deliveries::status.eq(STATUS_QUEUED),
                deliveries::provider.eq(provider),
                deliveries::error_class.eq(error_class),
                deliveries::last_error.eq(error),
                deliveries::updated_at.eq(now),
            ))
            .execute(conn)
            .await
            .map(drop)
    }

    /// Out of attempts after transient failures: `failed`, secret kept for a requeue.
    pub async fn mark_exhausted(
        conn: &mut DbConn,
        id: DeliveryId,
        provider: Option<&str>,
        error: &str,
        now: DateTime<Utc>,
    ) -> QueryResult<()> {
        diesel::update(deliveries::table.find(id))
            .set((
                deliveries::status.eq(STATUS_FAILED),
                deliveries::provider.eq(provider),
                deliveries::error_class.eq(CLASS_EXHAUSTED),
                deliveries::last_error.eq(error),
                deliveries::updated_at.eq(now),
            ))
            .execute(conn)
            .await
            .map(drop)
    }

    /// An operator requeues an exhausted delivery: back to `queued` if its secret is still
    /// there and still valid. `false` when it cannot be sent any more.
    pub async fn requeue_exhausted(
        conn: &mut DbConn,
        id: DeliveryId,
        now: DateTime<Utc>,
    ) -> QueryResult<bool> {
        diesel::update(
            deliveries::table
                .find(id)
                .filter(deliveries::status.eq(STATUS_FAILED))
                .filter(deliveries::error_class.eq(CLASS_EXHAUSTED))
                .filter(deliveries::sealed_payload.is_not_null())
                .filter(deliveries::expires_at.gt(now)),
        )
        .set((
            deliveries::status.eq(STATUS_QUEUED),
            // A fresh ladder; attempt numbers go on from where they were.
            deliveries::attempt_base.eq(deliveries::attempts),
            deliveries::updated_at.eq(now),
        ))
        .execute(conn)
        .await
        .map(|n| n == 1)
    }
}

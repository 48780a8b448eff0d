//! The live one-time code of a subject. Every decision on a challenge is taken on the row
//! locked with `SELECT … FOR UPDATE`, so concurrent sends and attempts from any number of
//! workers are serialised by PostgreSQL and counted exactly.

use chrono::{DateTime, Utc};
use diesel::{
    AsChangeset, ExpressionMethods, Insertable, OptionalExtension, QueryDsl, QueryResult,
    Queryable, Selectable, SelectableHelper,
};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::DbConn;
use crate::ids::{AppId, RequestId, UserId};
use crate::schema::otp_challenges;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = otp_challenges, check_for_backend(diesel::pg::Pg))]
pub struct OtpChallenge {
    pub id: Uuid,
    pub app_id: AppId,
    pub subject: String,
    #[diesel(embed)]
    pub state: ChallengeState,
    pub created_at: DateTime<Utc>,
}

/// Everything about a challenge that sends and attempts change.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, AsChangeset)]
#[diesel(table_name = otp_challenges, check_for_backend(diesel::pg::Pg), treat_none_as_null = true)]
pub struct ChallengeState {
    pub user_id: Option<UserId>,
    pub channel: String,
    pub code_hash: Option<Vec<u8>>,
    pub code_length: i16,
    pub create_new_user: bool,
    pub new_user_email: Option<String>,
    pub new_user_phone_number: Option<String>,
    pub request_id: RequestId,
    pub expires_at: DateTime<Utc>,
    pub failed_attempts: i32,
    pub locked_until: Option<DateTime<Utc>>,
    pub last_sent_at: DateTime<Utc>,
    pub window_started_at: DateTime<Utc>,
    pub sends_in_window: i32,
    pub consumed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = otp_challenges)]
struct NewChallenge<'a> {
    id: Uuid,
    app_id: AppId,
    subject: &'a str,
    channel: &'a str,
    code_length: i16,
    request_id: RequestId,
    expires_at: DateTime<Utc>,
    last_sent_at: DateTime<Utc>,
    window_started_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl OtpChallenge {
    /// Makes sure a row exists for the subject (without a live code), then locks it.
    pub async fn lock_or_create(
        conn: &mut DbConn,
        app: AppId,
        subject: &str,
        channel: &str,
        request: RequestId,
        now: DateTime<Utc>,
    ) -> QueryResult<OtpChallenge> {
        let never = DateTime::<Utc>::UNIX_EPOCH;
        diesel::insert_into(otp_challenges::table)
            .values(NewChallenge {
                id: Uuid::now_v7(),
                app_id: app,
                subject,
                channel,
                code_length: 0,
                request_id: request,
                expires_at: never,
                last_sent_at: never,
                window_started_at: never,
                created_at: now,
                updated_at: now,
            })
            // One statement: a new subject's row is inserted and returned; an existing one is
            // returned locked (the no-op update takes the row lock, like `FOR UPDATE`).
            .on_conflict((otp_challenges::app_id, otp_challenges::subject))
            .do_update()
            .set(otp_challenges::updated_at.eq(otp_challenges::updated_at))
            .returning(OtpChallenge::as_returning())
            .get_result(conn)
            .await
    }

    /// Locks the subject's row for the rest of the transaction.
    pub async fn lock(
        conn: &mut DbConn,
        app: AppId,
        subject: &str,
    ) -> QueryResult<Option<OtpChallenge>> {
        otp_challenges::table
            .filter(otp_challenges::app_id.eq(app))
            .filter(otp_challenges::subject.eq(subject))
            .select(OtpChallenge::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()
    }

    pub async fn save(conn: &mut DbConn, id: Uuid, state: &ChallengeState) -> QueryResult<()> {
        diesel::update(otp_challenges::table.find(id))
            .set(state)
            .execute(conn)
            .await
            .map(drop)
    }
}

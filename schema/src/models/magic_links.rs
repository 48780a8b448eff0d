//! Email magic links. A link is consumed by one conditional `UPDATE … RETURNING` that also
//! checks the app, expiry and that it was not used: single use without a race.

use chrono::{DateTime, Utc};
use diesel::{
    ExpressionMethods, Insertable, OptionalExtension, QueryDsl, QueryResult, Queryable, Selectable,
    SelectableHelper,
};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::DbConn;
use crate::ids::{AppId, RequestId, UserId};
use crate::schema::magic_links;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = magic_links, check_for_backend(diesel::pg::Pg))]
pub struct MagicLink {
    pub id: Uuid,
    pub app_id: AppId,
    pub code_hash: Vec<u8>,
    pub subject: String,
    pub user_id: Option<UserId>,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub create_new_user: bool,
    pub new_user_email: Option<String>,
    pub request_id: RequestId,
    pub expires_at: DateTime<Utc>,
    pub consumed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = magic_links)]
pub struct NewMagicLink<'a> {
    pub id: Uuid,
    pub app_id: AppId,
    pub code_hash: &'a [u8],
    pub subject: &'a str,
    pub user_id: Option<UserId>,
    pub redirect_uri: &'a str,
    pub state: Option<&'a str>,
    pub create_new_user: bool,
    pub new_user_email: Option<&'a str>,
    pub request_id: RequestId,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl NewMagicLink<'_> {
    pub async fn insert(&self, conn: &mut DbConn) -> QueryResult<()> {
        diesel::insert_into(magic_links::table)
            .values(self)
            .execute(conn)
            .await
            .map(drop)
    }
}

/// Why a code did not log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    Used,
    Expired,
}

impl MagicLink {
    /// Consumes the link with this code hash, once. On refusal, says why (for logs and
    /// metrics; callers get one answer for all three).
    pub async fn consume(
        conn: &mut DbConn,
        app: AppId,
        code_hash: &[u8],
        now: DateTime<Utc>,
    ) -> QueryResult<Result<MagicLink, Refusal>> {
        let consumed = diesel::update(
            magic_links::table
                .filter(magic_links::app_id.eq(app))
                .filter(magic_links::code_hash.eq(code_hash))
                .filter(magic_links::consumed_at.is_null())
                .filter(magic_links::expires_at.gt(now)),
        )
        .set(magic_links::consumed_at.eq(now))
        .returning(MagicLink::as_returning())
        .get_result(conn)
        .await
        .optional()?;
        if let Some(link) = consumed {
            return Ok(Ok(link));
        }
        let existing = magic_links::table
            .filter(magic_links::app_id.eq(app))
            .filter(magic_links::code_hash.eq(code_hash))
            .select(MagicLink::as_select())
            .first(conn)
            .await
            .optional()?;
        Ok(Err(match existing {
            None => Refusal::Unknown,
            Some(l) if l.consumed_at.is_some() => Refusal::Used,
            Some(_) => Refusal::Expired,
        }))
    }

    /// Earlier live links of the subject stop working when a new one is sent.
    pub async fn expire_live_for_subject(
        conn: &mut DbConn,
        app: AppId,
        subject: &str,
        now: DateTime<Utc>,
    ) -> QueryResult<usize> {
        diesel::update(
            magic_links::table
                .filter(magic_links::app_id.eq(app))
                .filter(magic_links::subject.eq(subject))
                .filter(magic_links::consumed_at.is_null())
                .filter(magic_links::expires_at.gt(now)),
        )
        .set(magic_links::expires_at.eq(now))
        .execute(conn)
        .await
    }
}

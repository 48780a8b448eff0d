//! Login sessions and their rotating refresh tokens (stored as keyed hashes).

use chrono::{DateTime, Utc};
use diesel::{
    ExpressionMethods, Insertable, OptionalExtension, QueryDsl, QueryResult, Queryable, Selectable,
    SelectableHelper,
};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::DbConn;
use crate::ids::{AppId, SessionId, UserId};
use crate::schema::{refresh_tokens, sessions};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct Session {
    pub id: SessionId,
    pub app_id: AppId,
    pub user_id: UserId,
    pub amr: Vec<Option<String>>,
    pub created_at: DateTime<Utc>,
    pub last_authenticated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession {
    pub id: SessionId,
    pub app_id: AppId,
    pub user_id: UserId,
    pub amr: Vec<Option<String>>,
    pub created_at: DateTime<Utc>,
    pub last_authenticated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct NewRefreshToken<'a> {
    pub id: Uuid,
    pub session_id: SessionId,
    pub token_hash: &'a [u8],
    pub parent_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl NewSession {
    pub async fn insert(&self, conn: &mut DbConn) -> QueryResult<Session> {
        diesel::insert_into(sessions::table)
            .values(self)
            .returning(Session::as_returning())
            .get_result(conn)
            .await
    }
}

impl NewRefreshToken<'_> {
    pub async fn insert(&self, conn: &mut DbConn) -> QueryResult<()> {
        diesel::insert_into(refresh_tokens::table)
            .values(self)
            .execute(conn)
            .await
            .map(drop)
    }
}

impl Session {
    /// Locks a live session of this app for the rest of the transaction.
    pub async fn lock_live(
        conn: &mut DbConn,
        app: AppId,
        id: SessionId,
        now: DateTime<Utc>,
    ) -> QueryResult<Option<Session>> {
        sessions::table
            .find(id)
            .filter(sessions::app_id.eq(app))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now))
            .select(Session::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()
    }

    /// Adds an authentication method to the session's `amr` list.
    pub async fn add_method(
        conn: &mut DbConn,
        id: SessionId,
        amr: Vec<Option<String>>,
        now: DateTime<Utc>,
    ) -> QueryResult<Session> {
        diesel::update(sessions::table.find(id))
            .set((
                sessions::amr.eq(amr),
                sessions::last_authenticated_at.eq(now),
            ))
            .returning(Session::as_returning())
            .get_result(conn)
            .await
    }

    pub fn methods(&self) -> impl Iterator<Item = &str> {
        self.amr.iter().flatten().map(String::as_str)
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens, check_for_backend(diesel::pg::Pg))]
pub struct RefreshToken {
    pub id: Uuid,
    pub session_id: SessionId,
    pub token_hash: Vec<u8>,
    pub parent_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl RefreshToken {
    /// Locks the token with this hash for the rest of the transaction.
    pub async fn lock_by_hash(conn: &mut DbConn, hash: &[u8]) -> QueryResult<Option<RefreshToken>> {
        refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(hash))
            .select(RefreshToken::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()
    }

    pub async fn mark_rotated(conn: &mut DbConn, id: Uuid, now: DateTime<Utc>) -> QueryResult<()> {
        diesel::update(refresh_tokens::table.find(id))
            .set(refresh_tokens::rotated_at.eq(now))
            .execute(conn)
            .await
            .map(drop)
    }
}

impl Session {
    /// Any session of this app by id (live or not), locked.
    pub async fn lock(
        conn: &mut DbConn,
        app: AppId,
        id: SessionId,
    ) -> QueryResult<Option<Session>> {
        sessions::table
            .find(id)
            .filter(sessions::app_id.eq(app))
            .select(Session::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()
    }

    /// Ends the session and every refresh token of it.
    pub async fn revoke(conn: &mut DbConn, id: SessionId, now: DateTime<Utc>) -> QueryResult<()> {
        diesel::update(
            sessions::table
                .find(id)
                .filter(sessions::revoked_at.is_null()),
        )
        .set(sessions::revoked_at.eq(now))
        .execute(conn)
        .await?;
        diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::session_id.eq(id))
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::revoked_at.eq(now))
        .execute(conn)
        .await
        .map(drop)
    }

    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

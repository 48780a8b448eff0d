//! Token signing keys. Workers sign with the newest unretired key; the API publishes every key
//! that may still have unexpired tokens.

use chrono::{DateTime, Utc};
use diesel::{
    BoolExpressionMethods, ExpressionMethods, Insertable, OptionalExtension, QueryDsl, QueryResult,
    Queryable, Selectable, SelectableHelper,
};
use diesel_async::RunQueryDsl;

use crate::DbConn;
use crate::schema::signing_keys;

#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = signing_keys, check_for_backend(diesel::pg::Pg))]
pub struct SigningKey {
    pub kid: String,
    pub algorithm: String,
    pub public_key: Vec<u8>,
    /// Sealed under the workers' data key; never printed.
    pub private_key_sealed: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    pub unpublish_after: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

#[derive(Insertable)]
#[diesel(table_name = signing_keys)]
pub struct NewSigningKey<'a> {
    pub kid: &'a str,
    pub algorithm: &'a str,
    pub public_key: &'a [u8],
    pub private_key_sealed: &'a [u8],
    pub created_at: DateTime<Utc>,
}

impl NewSigningKey<'_> {
    pub async fn insert(&self, conn: &mut DbConn) -> QueryResult<()> {
        diesel::insert_into(signing_keys::table)
            .values(self)
            .execute(conn)
            .await
            .map(drop)
    }
}

impl SigningKey {
    /// The key to sign with: the newest one not retired.
    pub async fn active(conn: &mut DbConn) -> QueryResult<Option<SigningKey>> {
        signing_keys::table
            .filter(signing_keys::retired_at.is_null())
            .order(signing_keys::created_at.desc())
            .select(SigningKey::as_select())
            .first(conn)
            .await
            .optional()
    }

    /// Every key whose tokens may still be alive, newest first.
    pub async fn published(conn: &mut DbConn, now: DateTime<Utc>) -> QueryResult<Vec<SigningKey>> {
        signing_keys::table
            .filter(
                signing_keys::unpublish_after
                    .is_null()
                    .or(signing_keys::unpublish_after.gt(now)),
            )
            .order(signing_keys::created_at.desc())
            .select(SigningKey::as_select())
            .load(conn)
            .await
    }

    /// Retires every key but `keep`; they stay published until `unpublish_after`.
    pub async fn retire_others(
        conn: &mut DbConn,
        keep: &str,
        now: DateTime<Utc>,
        unpublish_after: DateTime<Utc>,
    ) -> QueryResult<usize> {
        diesel::update(
            signing_keys::table
                .filter(signing_keys::kid.ne(keep))
                .filter(signing_keys::retired_at.is_null()),
        )
        .set((
            signing_keys::retired_at.eq(now),
            signing_keys::unpublish_after.eq(unpublish_after),
        ))
        .execute(conn)
        .await
    }

    pub async fn all(conn: &mut DbConn) -> QueryResult<Vec<SigningKey>> {
        signing_keys::table
            .order(signing_keys::created_at.desc())
            .select(SigningKey::as_select())
            .load(conn)
            .await
    }
}

use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::sql_types::{Nullable, Timestamptz};
use diesel::{
    ExpressionMethods, Insertable, OptionalExtension, QueryDsl, QueryResult, Queryable, Selectable,
    SelectableHelper,
};
use diesel_async::RunQueryDsl;

use crate::DbConn;
use crate::ids::{AppId, UserId};
use crate::schema::users;

pub const STATUS_ACTIVE: &str = "active";
pub const STATUS_DISABLED: &str = "disabled";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct User {
    pub id: UserId,
    pub app_id: AppId,
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub username: Option<String>,
    pub external_user_id: Option<String>,
    pub status: String,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub phone_number_verified_at: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: UserId,
    pub app_id: AppId,
    pub email: Option<&'a str>,
    pub phone_number: Option<&'a str>,
    pub username: Option<&'a str>,
    pub external_user_id: Option<&'a str>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Which address a login proved to work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    Email,
    PhoneNumber,
    Nothing,
}

/// How a caller names a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    Id(UserId),
    Email(&'a str),
    PhoneNumber(&'a str),
    Username(&'a str),
    ExternalId(&'a str),
}

impl NewUser<'_> {
    /// Inserts the user, or returns the existing one when a concurrent insert won the race on the
    /// same unique identifier.
    pub async fn insert_or_get(&self, conn: &mut DbConn) -> QueryResult<User> {
        let inserted = diesel::insert_into(users::table)
            .values(self)
            .on_conflict_do_nothing()
            .returning(User::as_returning())
            .get_result(conn)
            .await
            .optional()?;
        match inserted {
            Some(user) => Ok(user),
            None => {
                let lookup = if let Some(email) = self.email {
                    Lookup::Email(email)
                } else if let Some(phone) = self.phone_number {
                    Lookup::PhoneNumber(phone)
                } else if let Some(username) = self.username {
                    Lookup::Username(username)
                } else if let Some(external) = self.external_user_id {
                    Lookup::ExternalId(external)
                } else {
                    Lookup::Id(self.id)
                };
                User::find(conn, self.app_id, &lookup)
                    .await?
                    .ok_or(diesel::result::Error::NotFound)
            }
        }
    }
}

impl User {
    pub async fn find(
        conn: &mut DbConn,
        app: AppId,
        lookup: &Lookup<'_>,
    ) -> QueryResult<Option<User>> {
        let query = users::table.filter(users::app_id.eq(app)).into_boxed();
        let query = match lookup {
            Lookup::Id(id) => query.filter(users::id.eq(*id)),
            Lookup::Email(v) => query.filter(users::email.eq(*v)),
            Lookup::PhoneNumber(v) => query.filter(users::phone_number.eq(*v)),
            Lookup::Username(v) => query.filter(users::username.eq(*v)),
            Lookup::ExternalId(v) => query.filter(users::external_user_id.eq(*v)),
        };
        query.select(User::as_select()).first(conn).await.optional()
    }

    pub fn is_active(&self) -> bool {
        self.status == STATUS_ACTIVE
    }

    /// Records a successful login, and that the address the secret went to works. Returns the
    /// updated user.
    pub async fn mark_login(
        conn: &mut DbConn,
        id: UserId,
        now: DateTime<Utc>,
        verified: Verified,
    ) -> QueryResult<User> {
        // One statement: the login time, and the channel's address verified if it was not.
        let update = diesel::update(users::table.find(id));
        let login = (users::last_login_at.eq(now), users::updated_at.eq(now));
        match verified {
            Verified::Email => {
                update
                    .set((
                        login,
                        users::email_verified_at.eq(sql::<Nullable<Timestamptz>>(
                            "coalesce(email_verified_at, ",
                        )
                        .bind::<Timestamptz, _>(now)
                        .sql(")")),
                    ))
                    .returning(User::as_returning())
                    .get_result(conn)
                    .await
            }
            Verified::PhoneNumber => {
                update
                    .set((
                        login,
                        users::phone_number_verified_at.eq(sql::<Nullable<Timestamptz>>(
                            "coalesce(phone_number_verified_at, ",
                        )
                        .bind::<Timestamptz, _>(now)
                        .sql(")")),
                    ))
                    .returning(User::as_returning())
                    .get_result(conn)
                    .await
            }
            Verified::Nothing => {
                update
                    .set(login)
                    .returning(User::as_returning())
                    .get_result(conn)
                    .await
            }
        }
    }

    /// Deletes the user; credentials, challenges and sessions go with it (foreign keys cascade).
    pub async fn delete(conn: &mut DbConn, app: AppId, id: UserId) -> QueryResult<bool> {
        diesel::delete(users::table.find(id).filter(users::app_id.eq(app)))
            .execute(conn)
            .await
            .map(|n| n == 1)
    }

    /// Sets `active` or `disabled`.
    pub async fn set_status(
        conn: &mut DbConn,
        app: AppId,
        id: UserId,
        status: &str,
        now: DateTime<Utc>,
    ) -> QueryResult<Option<User>> {
        diesel::update(users::table.find(id).filter(users::app_id.eq(app)))
            .set((users::status.eq(status), users::updated_at.eq(now)))
            .returning(User::as_returning())
            .get_result(conn)
            .await
            .optional()
    }

    /// Inserts a user; `None` when one of its identifiers is taken in the app.
    pub async fn create(conn: &mut DbConn, new: &NewUser<'_>) -> QueryResult<Option<User>> {
        diesel::insert_into(users::table)
            .values(new)
            .on_conflict_do_nothing()
            .returning(User::as_returning())
            .get_result(conn)
            .await
            .optional()
    }
}

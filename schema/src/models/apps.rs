use chrono::{DateTime, Utc};
use diesel::{
    ExpressionMethods, Insertable, OptionalExtension, QueryDsl, QueryResult, Queryable, Selectable,
    SelectableHelper,
};
use diesel_async::RunQueryDsl;

use crate::DbConn;
use crate::ids::AppId;
use crate::schema::apps;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = apps, check_for_backend(diesel::pg::Pg))]
pub struct App {
    pub id: AppId,
    pub name: String,
    pub client_id: String,
    /// Keyed hash of the client secret (never the secret itself).
    pub client_secret_hash: Vec<u8>,
    pub redirect_uris: Vec<Option<String>>,
    pub settings: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = apps)]
pub struct NewApp<'a> {
    pub id: AppId,
    pub name: &'a str,
    pub client_id: &'a str,
    pub client_secret_hash: &'a [u8],
    pub redirect_uris: Vec<Option<String>>,
    pub settings: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl NewApp<'_> {
    pub async fn insert(&self, conn: &mut DbConn) -> QueryResult<App> {
        diesel::insert_into(apps::table)
            .values(self)
            .returning(App::as_returning())
            .get_result(conn)
            .await
    }
}

impl App {
    pub async fn find(conn: &mut DbConn, id: AppId) -> QueryResult<Option<App>> {
        apps::table
            .find(id)
            .select(App::as_select())
            .first(conn)
            .await
            .optional()
    }

    pub async fn find_by_client_id(conn: &mut DbConn, client_id: &str) -> QueryResult<Option<App>> {
        apps::table
            .filter(apps::client_id.eq(client_id))
            .select(App::as_select())
            .first(conn)
            .await
            .optional()
    }

    pub async fn list(conn: &mut DbConn) -> QueryResult<Vec<App>> {
        apps::table
            .order(apps::created_at.asc())
            .select(App::as_select())
            .load(conn)
            .await
    }

    pub fn is_active(&self) -> bool {
        self.disabled_at.is_none()
    }
}

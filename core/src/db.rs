//! PostgreSQL: the async connection pool (diesel-async + deadpool, pure Rust) and migrations.
//!
//! Why diesel-async: every process is a tokio program; async connections keep request handling
//! and job handling on the same runtime without a blocking pool, and the pool is shared by all
//! concurrent jobs of a worker. Migrations reuse Diesel's synchronous harness through
//! diesel-async's wrapper, still without libpq.

use std::time::Duration;

use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

pub type DbPool = Pool<AsyncPgConnection>;
pub type PooledConn = Object<AsyncPgConnection>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

impl DbError {
    /// Errors worth retrying later: the database was unreachable or the connection broke.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Query(e) => is_transient(e),
        }
    }
}

/// Whether a query error means "try again later" (connection lost, server restarting,
/// serialization failure) rather than a bug or bad data.
pub fn is_transient(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    let kind_says = match error {
        Error::DatabaseError(
            DatabaseErrorKind::SerializationFailure | DatabaseErrorKind::ClosedConnection,
            _,
        )
        | Error::BrokenTransactionManager
        | Error::RollbackErrorOnCommit { .. } => true,
        Error::DatabaseError(_, info) => connection_trouble(info.message()),
        _ => false,
    };
    kind_says || connection_trouble(&error.to_string())
}

/// Messages of a lost or refused connection, whatever error variant carries them.
fn connection_trouble(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "connection closed",
        "terminating connection",
        "shutting down",
        "starting up",
        "connection refused",
        "connection reset",
        "broken pipe",
        "server closed the connection",
        "could not connect",
        "timed out",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

/// A pool that opens connections lazily and gives up waiting for one after `wait`.
///
/// Recycling is `Fast`: a connection goes back into use without a test query. A connection
/// is still dropped when its transaction state is broken or its socket has closed (a
/// PostgreSQL restart closes every socket; diesel-async checks `is_closed` on return), and a
/// query on a connection that broke while idle fails with a transient error that the caller
/// retries on a fresh one. The `SELECT 1` of `Verified` cost one round trip per checkout,
/// about six per code sent.
pub fn pool(url: &str, size: usize, wait: Duration) -> Result<DbPool, DbError> {
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(wait))
        .create_timeout(Some(wait))
        .recycle_timeout(Some(wait))
        .build()
        .map_err(|e| DbError::Unavailable(e.to_string()))
}

/// The same database with `synchronous_commit = off` on every connection: a commit returns
/// before its WAL record is flushed (a crash of PostgreSQL can lose the last fraction of a
/// second of such commits, never corrupt anything). Only for rows that can be rebuilt: the
/// API's request rows, which a worker writes again from the message when they are missing.
pub fn relaxed_commit_url(url: &str) -> String {
    if url.contains("options=") {
        // The operator set connection options; theirs win.
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20synchronous_commit%3Doff")
}

/// A connection from the pool; failure to get one is `Unavailable`.
pub async fn conn(pool: &DbPool) -> Result<PooledConn, DbError> {
    pool.get()
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))
}

/// Applies pending migrations. Safe to run from several processes at once: an advisory lock
/// serialises them.
pub async fn migrate(url: &str) -> anyhow::Result<Vec<String>> {
    use diesel::sql_types::BigInt;
    use diesel_async::RunQueryDsl;
    const LOCK: i64 = 0x7061_7373_6761_7465; // "passgate"
    let mut conn = AsyncPgConnection::establish(url).await?;
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(LOCK)
        .execute(&mut conn)
        .await?;
    // The harness drives the async connection with `block_in_place` (multi-threaded runtime).
    let mut harness = AsyncMigrationHarness::new(conn);
    let applied = harness
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(|v| v.to_string()).collect::<Vec<_>>())
        .map_err(|e| anyhow::anyhow!("migration failed: {e}"));
    let mut conn = harness.into_inner();
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(LOCK)
        .execute(&mut conn)
        .await?;
    applied
}

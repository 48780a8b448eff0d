//! Fixed-window counters in PostgreSQL, shared by every process: one atomic
//! `INSERT … ON CONFLICT DO UPDATE … RETURNING count` per hit.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::sql_types::{Integer, Text, Timestamptz};
use diesel::{QueryResult, QueryableByName};
use diesel_async::RunQueryDsl;

use crate::DbConn;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = Integer)]
    count: i32,
}

/// The outcome of one hit on a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    Allowed,
    /// Over the limit; seconds until the window ends.
    Limited {
        retry_after: i64,
    },
}

/// Counts one hit of `key` in the window of length `window` containing `now`; allowed while
/// the count stays within `limit`. A refused hit still counts (a flood cannot probe for free).
pub async fn hit(
    conn: &mut DbConn,
    key: &str,
    limit: i32,
    window: TimeDelta,
    now: DateTime<Utc>,
) -> QueryResult<Hit> {
    let secs = window.num_seconds().max(1);
    let start_ts = now.timestamp() - now.timestamp().rem_euclid(secs);
    let start = DateTime::<Utc>::from_timestamp(start_ts, 0).unwrap_or(now);
    let end = start + TimeDelta::seconds(secs);
    let row: Count = diesel::sql_query(
        "INSERT INTO rate_limits (key, window_start, count, expires_at) VALUES ($1, $2, 1, $3) \
         ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limits.count + 1 RETURNING count",
    )
    .bind::<Text, _>(key)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .get_result(conn)
    .await?;
    if row.count > limit {
        Ok(Hit::Limited {
            retry_after: (end - now).num_seconds().max(1),
        })
    } else {
        Ok(Hit::Allowed)
    }
}

/// Deletes windows that have ended.
pub async fn purge(conn: &mut DbConn, now: DateTime<Utc>) -> QueryResult<usize> {
    diesel::sql_query("DELETE FROM rate_limits WHERE expires_at < $1")
        .bind::<Timestamptz, _>(now)
        .execute(conn)
        .await
}

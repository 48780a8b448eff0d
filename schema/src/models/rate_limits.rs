//! Fixed-window counters in PostgreSQL, shared by every process: one atomic
//! `INSERT … ON CONFLICT DO UPDATE … RETURNING count` per hit.
//!
//! A counter every send of an app touches (the per-app cap) would be one hot row: each send's
//! transaction holds its lock until it commits, so all sends of the app would queue behind
//! each other. Such counters are split over shards ([`hit_sharded`]): a hit bumps one shard
//! chosen by the caller and reads the others in the same statement.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::sql_types::{Array, Integer, Text, Timestamptz};
use diesel::{QueryResult, QueryableByName};
use diesel_async::RunQueryDsl;

use crate::DbConn;
use crate::prepared::prepared_query;

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
    let (start, end) = window_of(window, now);
    let row: Count = Bump { key, start, end }.get_result(conn).await?;
    Ok(verdict(row.count, limit, end, now))
}

/// Like [`hit`] for a counter split over `shards` rows; this hit counts on shard `shard`.
///
/// The total is this shard's new count plus the others' committed counts, so hits in
/// transactions not yet committed elsewhere are not seen: the limit can be passed by at most
/// the number of sends running at that moment.
pub async fn hit_sharded(
    conn: &mut DbConn,
    key: &str,
    shards: u32,
    shard: u32,
    limit: i32,
    window: TimeDelta,
    now: DateTime<Utc>,
) -> QueryResult<Hit> {
    let (start, end) = window_of(window, now);
    let shards = shards.max(1);
    let mine = format!("{key}#{}", shard % shards);
    let others: Vec<String> = (0..shards)
        .filter(|s| *s != shard % shards)
        .map(|s| format!("{key}#{s}"))
        .collect();
    let row: Count = ShardedHit {
        mine: &mine,
        start,
        end,
        others: &others,
    }
    .get_result(conn)
    .await?;
    Ok(verdict(row.count, limit, end, now))
}

/// `INSERT … ON CONFLICT DO UPDATE … RETURNING count`, prepared once per connection.
struct Bump<'a> {
    key: &'a str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

prepared_query!(Bump<'_>);

impl QueryFragment<Pg> for Bump<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        push_bump(&mut out, self.key, &self.start, &self.end)
    }
}

/// `INSERT … ON CONFLICT DO UPDATE SET count = count + 1 RETURNING count` for one key and
/// window: the statement of [`Bump`], and the first part of [`ShardedHit`].
fn push_bump<'b>(
    out: &mut AstPass<'_, 'b, Pg>,
    key: &'b str,
    start: &'b DateTime<Utc>,
    end: &'b DateTime<Utc>,
) -> QueryResult<()> {
    out.push_sql("INSERT INTO rate_limits (key, window_start, count, expires_at) VALUES (");
    out.push_bind_param::<Text, _>(key)?;
    out.push_sql(", ");
    out.push_bind_param::<Timestamptz, _>(start)?;
    out.push_sql(", 1, ");
    out.push_bind_param::<Timestamptz, _>(end)?;
    out.push_sql(
        ") ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limits.count + 1 \
         RETURNING count",
    );
    Ok(())
}

/// One shard bumped, the others' committed counts added, in one prepared statement.
struct ShardedHit<'a> {
    mine: &'a str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    others: &'a [String],
}

prepared_query!(ShardedHit<'_>);

impl QueryFragment<Pg> for ShardedHit<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH bumped AS (");
        push_bump(&mut out, self.mine, &self.start, &self.end)?;
        out.push_sql(
            ") \
             SELECT ((SELECT count FROM bumped) + coalesce((SELECT sum(count) FROM rate_limits \
             WHERE key = ANY(",
        );
        out.push_bind_param::<Array<Text>, _>(self.others)?;
        out.push_sql(") AND window_start = ");
        out.push_bind_param::<Timestamptz, _>(&self.start)?;
        out.push_sql("), 0))::integer AS count");
        Ok(())
    }
}

fn window_of(window: TimeDelta, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let secs = window.num_seconds().max(1);
    let start_ts = now.timestamp() - now.timestamp().rem_euclid(secs);
    let start = DateTime::<Utc>::from_timestamp(start_ts, 0).unwrap_or(now);
    (start, start + TimeDelta::seconds(secs))
}

fn verdict(count: i32, limit: i32, end: DateTime<Utc>, now: DateTime<Utc>) -> Hit {
    if count > limit {
        Hit::Limited {
            retry_after: (end - now).num_seconds().max(1),
        }
    } else {
        Hit::Allowed
    }
}

/// Deletes windows that have ended.
pub async fn purge(conn: &mut DbConn, now: DateTime<Utc>) -> QueryResult<usize> {
    diesel::sql_query("DELETE FROM rate_limits WHERE expires_at < $1")
        .bind::<Timestamptz, _>(now)
        .execute(conn)
        .await
}

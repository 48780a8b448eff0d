//! Seeding a database with history for the growth scenario: users, past requests, one-time
//! code challenges and deliveries, made by PostgreSQL itself (`INSERT … SELECT` over
//! `generate_series`, in chunks), so a million users and ten million requests take minutes,
//! not hours, and no row crosses the network.
//!
//! Row ids are UUIDv7 built from the row's timestamp, as the service makes them, so the primary
//! key indexes have the shape they would have after months of real traffic.

use std::time::Instant;

use tokio_postgres::Client;

/// How much history to make.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub users: i64,
    pub requests: i64,
}

/// Rows per statement: progress is visible and no single statement holds gigabytes of WAL.
const CHUNK: i64 = 1_000_000;

/// A UUIDv7 of `ts` with 72 bits drawn from `seed` (an md5 hex string).
const V7: &str = "(lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7' \
                  || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid";

/// Fills the database of `app_id` with `sizes` worth of history spread over the last 30 days.
pub async fn seed(db: &Client, app_id: &str, sizes: Sizes) -> anyhow::Result<()> {
    let started = Instant::now();
    db.batch_execute("SET synchronous_commit = off").await?;
    // The app id goes into SQL text: it must be a UUID's text and nothing else.
    anyhow::ensure!(
        app_id.len() == 36 && app_id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'),
        "app id {app_id:?} is not a UUID"
    );
    let app = app_id;
    // Users: every one verified and logged in once.
    chunked(db, "users", sizes.users, |from, to| {
        format!(
            "INSERT INTO users (id, app_id, email, status, email_verified_at, last_login_at, \
             created_at, updated_at) \
             SELECT {V7}, '{app}', 'seed' || i || '@seed.test', 'active', ts, ts, ts, ts \
             FROM generate_series({from}, {to}) i, \
             {time}",
            time = row_time(sizes.users, 'u')
        )
    })
    .await?;
    // Past requests: sends and authentications, all answered.
    chunked(db, "auth_requests", sizes.requests, |from, to| {
        format!(
            "INSERT INTO auth_requests (id, app_id, kind, status, http_status, response, \
             attempts, created_at, completed_at) \
             SELECT {V7}, '{app}', \
                    CASE WHEN i % 2 = 0 THEN 'otp.send' ELSE 'otp.authenticate' END, \
                    'succeeded', 200, '{{}}'::jsonb, 1, ts, ts \
             FROM generate_series({from}, {to}) i, \
             {time}",
            time = row_time(sizes.requests, 'r')
        )
    })
    .await?;
    // Challenges: one per known user (consumed), the rest for identifiers that never signed up.
    chunked(db, "otp_challenges", sizes.requests, |from, to| {
        format!(
            "INSERT INTO otp_challenges (id, app_id, subject, user_id, channel, code_hash, \
             code_length, request_id, expires_at, failed_attempts, last_sent_at, \
             window_started_at, sends_in_window, consumed_at, created_at, updated_at) \
             SELECT {V7}, '{app}', \
                    CASE WHEN i <= {users} THEN 'user:' || u.id ELSE 'email:gone' || i || '@seed.test' END, \
                    u.id, 'email', NULL, 6, gen_random_uuid(), ts + interval '10 minutes', 0, \
                    ts, ts, 1, ts, ts, ts \
             FROM generate_series({from}, {to}) i \
             LEFT JOIN users u ON i <= {users} AND u.email = 'seed' || i || '@seed.test' \
                    AND u.app_id = '{app}', \
             {time}",
            time = row_time(sizes.requests, 'c'),
            users = sizes.users
        )
    })
    .await?;
    // Deliveries: every past send delivered once.
    chunked(db, "deliveries", sizes.requests, |from, to| {
        format!(
            "INSERT INTO deliveries (id, app_id, request_id, channel, destination, template, \
             status, attempts, provider, provider_message_id, expires_at, created_at, \
             updated_at, sent_at) \
             SELECT {V7}, '{app}', gen_random_uuid(), 'email', \
                    'seed' || (i % {users} + 1) || '@seed.test', 'otp_code', 'sent', 1, 'smtp', \
                    NULL, ts + interval '10 minutes', ts, ts, ts \
             FROM generate_series({from}, {to}) i, \
             {time}",
            time = row_time(sizes.requests, 'd'),
            users = sizes.users.max(1)
        )
    })
    .await?;
    // Fresh statistics and visibility maps, so autovacuum does not start in the middle of a run.
    let t = Instant::now();
    db.batch_execute("VACUUM (ANALYZE)").await?;
    eprintln!(
        "seed: VACUUM (ANALYZE) in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    eprintln!(
        "seed: {} users, {} requests, challenges and deliveries in {:.0} s",
        sizes.users,
        sizes.requests,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Row `i`'s time `ts` (spread evenly over the last 30 days, oldest first) and the hex string
/// `h` its id's random bits come from (`salt` keeps ids of different tables apart).
fn row_time(n: i64, salt: char) -> String {
    format!(
        "LATERAL (SELECT now() - interval '30 days' + (i * interval '30 days' / {n}) AS ts, \
                  md5(i::text || '{salt}') AS h) x"
    )
}

async fn chunked(
    db: &Client,
    table: &str,
    total: i64,
    statement: impl Fn(i64, i64) -> String,
) -> anyhow::Result<()> {
    let t = Instant::now();
    let mut from = 1;
    while from <= total {
        let to = (from + CHUNK - 1).min(total);
        db.batch_execute(&statement(from, to)).await?;
        from = to + 1;
    }
    eprintln!(
        "seed: {total} {table} in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

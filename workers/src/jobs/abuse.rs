//! Abuse limits shared by every worker process (counters in PostgreSQL): per-app send volume,
//! SMS pumping defences (per number-prefix cap, destination-country allow-list), and the
//! per-subject cooldown and hourly cap used by link sends.

use chrono::TimeDelta;
use passgate_schema::DbConn;
use passgate_schema::models::apps::App;
use passgate_schema::models::rate_limits::{self, Hit};
use serde_json::Value;

use crate::answer::Answer;
use crate::context::JobContext;
use crate::job::JobError;

fn retry(hit: Hit) -> Option<u32> {
    match hit {
        Hit::Allowed => None,
        Hit::Limited { retry_after } => Some(u32::try_from(retry_after).unwrap_or(u32::MAX)),
    }
}

/// The number's region (ISO 3166 alpha-2), from libphonenumber's metadata.
pub fn country_of(number: &str) -> Option<String> {
    let parsed = phonenumber::parse(None, number).ok()?;
    parsed.country().id().map(|id| id.as_ref().to_owned())
}

/// `settings.sms_allowed_countries` (e.g. `["US", "FR"]`): when present, only those.
pub fn country_allowed(settings: &Value, number: &str) -> bool {
    let Some(allowed) = settings["sms_allowed_countries"].as_array() else {
        return true;
    };
    let Some(country) = country_of(number) else {
        return false;
    };
    allowed
        .iter()
        .filter_map(Value::as_str)
        .any(|c| c.eq_ignore_ascii_case(&country))
}

/// The prefix SMS pumping is counted by: `+` and the first 5 digits (country and area code).
pub fn number_prefix(number: &str) -> String {
    number.chars().take(6).collect()
}

/// Hourly cap of text messages per app and number prefix.
pub async fn sms_limits(
    ctx: &JobContext,
    conn: &mut DbConn,
    app: &App,
    number: &str,
) -> Result<Option<u32>, JobError> {
    let now = ctx.clock.now();
    let key = format!("sms-prefix:{}:{}", app.id, number_prefix(number));
    let hit = rate_limits::hit(
        conn,
        &key,
        ctx.config.limits.sms_per_prefix_per_hour,
        TimeDelta::hours(1),
        now,
    )
    .await?;
    Ok(retry(hit))
}

/// Rows the per-app send counter is split over.
const APP_COUNTER_SHARDS: u32 = 32;

/// Hourly cap of sends (codes and links, every channel) per app.
pub async fn app_limit(
    ctx: &JobContext,
    conn: &mut DbConn,
    app: &App,
) -> Result<Option<u32>, JobError> {
    let now = ctx.clock.now();
    let limit = app.settings["sends_per_hour"]
        .as_i64()
        .and_then(|v| i32::try_from(v).ok())
        .unwrap_or(ctx.config.limits.sends_per_app_per_hour);
    // Every send of the app counts here: a sharded counter, so concurrent sends do not queue
    // on one row lock.
    let hit = rate_limits::hit_sharded(
        conn,
        &format!("app-sends:{}", app.id),
        APP_COUNTER_SHARDS,
        rand::random::<u32>(),
        limit,
        TimeDelta::hours(1),
        now,
    )
    .await?;
    Ok(retry(hit))
}

/// The key an IP address is counted under: the address (IPv4) or its /64 (IPv6, where one
/// client holds a whole /64).
pub fn ip_key(ip: &str) -> Option<String> {
    match ip.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(v4) => Some(v4.to_string()),
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            Some(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
        }
    }
}

/// Hourly cap of sends per app and end-user IP (when the caller gave one).
pub async fn ip_limit(
    ctx: &JobContext,
    conn: &mut DbConn,
    app: &App,
    ip: Option<&str>,
) -> Result<Option<u32>, JobError> {
    let Some(key) = ip.and_then(ip_key) else {
        return Ok(None);
    };
    let now = ctx.clock.now();
    let hit = rate_limits::hit(
        conn,
        &format!("ip-sends:{}:{key}", app.id),
        ctx.config.limits.sends_per_ip_per_hour,
        TimeDelta::hours(1),
        now,
    )
    .await?;
    Ok(retry(hit))
}

/// The refusals every send checks after its own limits, in this order: the end user's IP
/// over its hourly cap (`429`), then an unknown user who is not to be created, for an app that
/// chose to reveal unknown users (`404 user_not_found`).
pub async fn address_and_enumeration(
    ctx: &JobContext,
    conn: &mut DbConn,
    app: &App,
    client_ip: Option<&str>,
    unknown_user: bool,
) -> Result<Option<Answer>, JobError> {
    if let Some(retry_after) = ip_limit(ctx, conn, app, client_ip).await? {
        return Ok(Some(
            Answer::error(
                429,
                "too_many_requests",
                "too many sends from this address; retry later",
            )
            .retry_after(retry_after),
        ));
    }
    if unknown_user && reveals_unknown_users(&app.settings) {
        return Ok(Some(Answer::error(
            404,
            "user_not_found",
            "no user with this identifier",
        )));
    }
    Ok(None)
}

/// Whether the app chose to reveal unknown users (`settings.reveal_unknown_users`): then a
/// send for an unknown user answers `404 user_not_found` instead of the usual answer.
pub fn reveals_unknown_users(settings: &Value) -> bool {
    settings["reveal_unknown_users"].as_bool().unwrap_or(false)
}

/// Per-subject cooldown and hourly cap (link sends; one-time codes keep theirs on the
/// challenge row).
pub async fn subject_limits(
    ctx: &JobContext,
    conn: &mut DbConn,
    key: &str,
) -> Result<Option<u32>, JobError> {
    let now = ctx.clock.now();
    let policy = &ctx.config.otp;
    if policy.resend_cooldown > TimeDelta::zero()
        && let Some(r) = retry(
            rate_limits::hit(
                conn,
                &format!("cooldown:{key}"),
                1,
                policy.resend_cooldown,
                now,
            )
            .await?,
        )
    {
        return Ok(Some(r));
    }
    Ok(retry(
        rate_limits::hit(
            conn,
            &format!("hour:{key}"),
            policy.sends_per_hour,
            TimeDelta::hours(1),
            now,
        )
        .await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_and_prefixes() {
        assert_eq!(country_of("+14155550123").as_deref(), Some("US"));
        assert_eq!(country_of("+33612345678").as_deref(), Some("FR"));
        let settings = serde_json::json!({"sms_allowed_countries": ["fr"]});
        assert!(country_allowed(&settings, "+33612345678"));
        assert!(!country_allowed(&settings, "+14155550123"));
        assert!(country_allowed(&Value::Null, "+14155550123"));
        assert_eq!(number_prefix("+14155550123"), "+14155");
        assert_eq!(ip_key("203.0.113.7").as_deref(), Some("203.0.113.7"));
        assert_eq!(
            ip_key("2001:db8:1:2:3:4:5:6").as_deref(),
            Some("2001:db8:1:2::/64")
        );
        assert!(ip_key("nope").is_none());
    }
}

//! One-time code rules, as pure functions over a challenge's state.
//!
//! States of a subject's challenge: *idle* (no live code) → *live* (a code hash and an expiry)
//! → *consumed* (success) or *dead* (lockout). What each check stops:
//! - **Attempt limit per subject, not per code.** Failures are counted on the subject's row and
//!   a resend never resets them, so "send, guess 4 times, send again" gains nothing. The
//!   attempt that reaches the limit kills the code and locks the subject for `lockout`;
//!   afterwards the counter starts again (a victim is never locked out forever).
//! - **Expiry by the server clock**: an expired code is refused whatever is typed, and the
//!   answer does not reveal whether the code was right.
//! - **Single use**: success erases the hash, so the same code fails next time.
//! - **Unknown subjects behave like known ones**: their row has no code, attempts are counted
//!   and locked the same way, and the caller sees the same answers.
//! - **Resend cooldown and hourly cap** per subject stop mail/SMS flooding.

use chrono::{DateTime, TimeDelta, Utc};
use passgate_schema::ids::{RequestId, UserId};
use passgate_schema::models::otp_challenges::ChallengeState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub code_length: usize,
    pub default_ttl: TimeDelta,
    pub max_failed_attempts: i32,
    pub lockout: TimeDelta,
    pub resend_cooldown: TimeDelta,
    pub sends_per_hour: i32,
}

impl Policy {
    pub const MAX_TTL: TimeDelta = TimeDelta::minutes(10);

    pub fn validate(&self) -> Result<(), String> {
        if !(6..=10).contains(&self.code_length) {
            return Err("code length must be 6 to 10 digits".to_owned());
        }
        if self.default_ttl <= TimeDelta::zero() || self.default_ttl > Self::MAX_TTL {
            return Err("code lifetime must be 1 s to 10 min".to_owned());
        }
        if self.max_failed_attempts < 1 || self.sends_per_hour < 1 {
            return Err("attempt and send limits must be at least 1".to_owned());
        }
        if self.lockout < TimeDelta::zero() || self.resend_cooldown < TimeDelta::zero() {
            return Err("durations must not be negative".to_owned());
        }
        Ok(())
    }
}

/// A new code (or, for a subject that gets nothing, a send without code).
#[derive(Debug, Clone)]
pub struct Issue {
    pub request_id: RequestId,
    pub channel: String,
    pub user_id: Option<UserId>,
    pub code_hash: Option<Vec<u8>>,
    pub ttl: TimeDelta,
    pub create_new_user: bool,
    pub new_user_email: Option<String>,
    pub new_user_phone_number: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendRefusal {
    /// Too soon after the previous send.
    Cooldown { retry_after: TimeDelta },
    /// Too many sends in the current hour.
    HourlyCap { retry_after: TimeDelta },
}

impl SendRefusal {
    pub fn retry_after_secs(self) -> u32 {
        let d = match self {
            Self::Cooldown { retry_after } | Self::HourlyCap { retry_after } => retry_after,
        };
        u32::try_from(d.num_seconds().max(1)).unwrap_or(u32::MAX)
    }
}

/// Applies a send: the new code replaces the old one; the failure count is kept.
pub fn on_send(
    state: &ChallengeState,
    issue: Issue,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Result<ChallengeState, SendRefusal> {
    let next_allowed = state.last_sent_at + policy.resend_cooldown;
    if now < next_allowed {
        return Err(SendRefusal::Cooldown {
            retry_after: next_allowed - now,
        });
    }
    let window_over = now >= state.window_started_at + TimeDelta::hours(1);
    let (window_started_at, sends) = if window_over {
        (now, 0)
    } else {
        (state.window_started_at, state.sends_in_window)
    };
    if sends >= policy.sends_per_hour {
        return Err(SendRefusal::HourlyCap {
            retry_after: window_started_at + TimeDelta::hours(1) - now,
        });
    }
    let mut next = state.clone();
    let lock_over = state.locked_until.is_some_and(|until| now >= until);
    if lock_over {
        next.locked_until = None;
        next.failed_attempts = 0;
    }
    next.user_id = issue.user_id;
    next.channel = issue.channel;
    next.code_hash = issue.code_hash;
    next.code_length = i16::try_from(policy.code_length).unwrap_or(6);
    next.create_new_user = issue.create_new_user;
    next.new_user_email = issue.new_user_email;
    next.new_user_phone_number = issue.new_user_phone_number;
    next.request_id = issue.request_id;
    next.expires_at = now + issue.ttl.min(Policy::MAX_TTL);
    next.last_sent_at = now;
    next.window_started_at = window_started_at;
    next.sends_in_window = sends + 1;
    next.consumed_at = None;
    next.updated_at = now;
    Ok(next)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    Invalid,
    Expired,
    Locked { until: DateTime<Utc> },
}

/// Applies one attempt. `code_matches` is the constant-time comparison of the submitted
/// code's keyed hash with the stored one (false when no code is live).
pub fn on_attempt(
    state: &ChallengeState,
    code_matches: bool,
    now: DateTime<Utc>,
    policy: &Policy,
) -> (ChallengeState, Verdict) {
    let mut next = state.clone();
    next.updated_at = now;
    match state.locked_until {
        Some(until) if now < until => return (next, Verdict::Locked { until }),
        Some(_) => {
            next.locked_until = None;
            next.failed_attempts = 0;
        }
        None => {}
    }
    // A send happened and nothing succeeded since: past the expiry every answer is "expired",
    // for known and unknown subjects alike (the answer reveals neither the code nor the user).
    let pending = next.consumed_at.is_none() && next.expires_at > DateTime::<Utc>::UNIX_EPOCH;
    if pending && now >= next.expires_at {
        return (next, Verdict::Expired);
    }
    if next.code_hash.is_some() && code_matches {
        next.code_hash = None;
        next.consumed_at = Some(now);
        next.failed_attempts = 0;
        return (next, Verdict::Success);
    }
    next.failed_attempts += 1;
    if next.failed_attempts >= policy.max_failed_attempts {
        next.code_hash = None;
        next.locked_until = Some(now + policy.lockout);
    }
    (next, Verdict::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(20_000) + TimeDelta::seconds(secs)
    }

    fn policy() -> Policy {
        Policy {
            code_length: 6,
            default_ttl: TimeDelta::minutes(5),
            max_failed_attempts: 5,
            lockout: TimeDelta::minutes(15),
            resend_cooldown: TimeDelta::seconds(30),
            sends_per_hour: 10,
        }
    }

    fn idle() -> ChallengeState {
        ChallengeState {
            user_id: None,
            channel: "email".into(),
            code_hash: None,
            code_length: 0,
            create_new_user: false,
            new_user_email: None,
            new_user_phone_number: None,
            request_id: RequestId(uuid::Uuid::nil()),
            expires_at: DateTime::<Utc>::UNIX_EPOCH,
            failed_attempts: 0,
            locked_until: None,
            last_sent_at: DateTime::<Utc>::UNIX_EPOCH,
            window_started_at: DateTime::<Utc>::UNIX_EPOCH,
            sends_in_window: 0,
            consumed_at: None,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    fn issue(hash: &[u8]) -> Issue {
        Issue {
            request_id: RequestId(uuid::Uuid::nil()),
            channel: "email".into(),
            user_id: None,
            code_hash: Some(hash.to_vec()),
            ttl: TimeDelta::minutes(5),
            create_new_user: false,
            new_user_email: None,
            new_user_phone_number: None,
        }
    }

    fn sent(at: i64) -> ChallengeState {
        on_send(&idle(), issue(b"h1"), t(at), &policy()).unwrap_or_else(|_| idle())
    }

    #[test]
    fn send_sets_code_and_expiry() {
        let s = sent(0);
        assert_eq!(s.code_hash.as_deref(), Some(&b"h1"[..]));
        assert_eq!(s.expires_at, t(300));
        assert_eq!(s.sends_in_window, 1);
    }

    #[test]
    fn resend_respects_cooldown_and_keeps_failures() {
        let p = policy();
        let (s, v) = on_attempt(&sent(0), false, t(1), &p);
        assert_eq!(v, Verdict::Invalid);
        assert_eq!(
            on_send(&s, issue(b"h2"), t(10), &p),
            Err(SendRefusal::Cooldown {
                retry_after: TimeDelta::seconds(20)
            })
        );
        let s2 = on_send(&s, issue(b"h2"), t(30), &p).unwrap_or_else(|_| idle());
        assert_eq!(s2.code_hash.as_deref(), Some(&b"h2"[..]));
        assert_eq!(
            s2.failed_attempts, 1,
            "a resend must not reset the failure count"
        );
    }

    #[test]
    fn hourly_cap_then_new_window() {
        let p = policy();
        let mut s = idle();
        for i in 0..10 {
            s = on_send(&s, issue(b"h"), t(i * 30), &p).unwrap_or_else(|_| idle());
        }
        assert!(matches!(
            on_send(&s, issue(b"h"), t(300), &p),
            Err(SendRefusal::HourlyCap { .. })
        ));
        assert!(on_send(&s, issue(b"h"), t(3600), &p).is_ok());
    }

    #[test]
    fn success_consumes_once() {
        let p = policy();
        let (s, v) = on_attempt(&sent(0), true, t(10), &p);
        assert_eq!(v, Verdict::Success);
        assert!(s.code_hash.is_none());
        let (_, again) = on_attempt(&s, true, t(11), &p);
        assert_eq!(again, Verdict::Invalid, "a consumed code never works again");
    }

    #[test]
    fn expiry_uses_the_given_time_and_hides_correctness() {
        let p = policy();
        assert_eq!(on_attempt(&sent(0), true, t(299), &p).1, Verdict::Success);
        assert_eq!(on_attempt(&sent(0), true, t(300), &p).1, Verdict::Expired);
        assert_eq!(on_attempt(&sent(0), false, t(300), &p).1, Verdict::Expired);
    }

    #[test]
    fn lockout_after_limit_then_recovery() {
        let p = policy();
        let mut s = sent(0);
        for i in 0..5 {
            let (n, v) = on_attempt(&s, false, t(1 + i), &p);
            assert_eq!(v, Verdict::Invalid);
            s = n;
        }
        assert!(s.code_hash.is_none(), "the code dies at the limit");
        let (s, v) = on_attempt(&s, true, t(10), &p);
        assert!(matches!(v, Verdict::Locked { .. }));
        // After the lockout the counter restarts; a fresh code works.
        let s = on_send(&s, issue(b"h3"), t(5 + 900), &p).unwrap_or_else(|_| idle());
        assert_eq!(s.failed_attempts, 0);
        assert_eq!(on_attempt(&s, true, t(5 + 901), &p).1, Verdict::Success);
    }

    #[test]
    fn unknown_subjects_expire_like_known_ones() {
        let p = policy();
        let unknown = on_send(
            &idle(),
            Issue {
                code_hash: None,
                ..issue(b"")
            },
            t(0),
            &p,
        )
        .unwrap_or_else(|_| idle());
        assert_eq!(on_attempt(&unknown, false, t(300), &p).1, Verdict::Expired);
        assert_eq!(on_attempt(&sent(0), false, t(300), &p).1, Verdict::Expired);
        // Never sent: a plain failure for both.
        assert_eq!(on_attempt(&idle(), false, t(300), &p).1, Verdict::Invalid);
    }

    #[test]
    fn unknown_subjects_count_failures_too() {
        let p = policy();
        let mut s = on_send(
            &idle(),
            Issue {
                code_hash: None,
                ..issue(b"")
            },
            t(0),
            &p,
        )
        .unwrap_or_else(|_| idle());
        for i in 0..5 {
            let (n, v) = on_attempt(&s, false, t(1 + i), &p);
            assert_eq!(v, Verdict::Invalid);
            s = n;
        }
        assert!(matches!(
            on_attempt(&s, false, t(10), &p).1,
            Verdict::Locked { .. }
        ));
    }
}

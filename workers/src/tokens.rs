//! Session tokens: a session row, a rotating refresh token (stored as a keyed hash) and two
//! EdDSA-signed JWTs. `amr` lists the methods used in the session, plus `mfa` once two
//! distinct factors have succeeded in it.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, Header};
use passgate_core::crypto::random_token;
use passgate_schema::DbConn;
use passgate_schema::ids::{SessionId, UserId};
use passgate_schema::models::apps::App;
use passgate_schema::models::sessions::{NewRefreshToken, NewSession, Session};
use passgate_schema::models::users::User;
use serde::Serialize;
use serde_json::{Value, json};

use crate::answer::Answer;
use crate::context::JobContext;
use crate::job::JobError;

pub const REFRESH_TOKEN_PURPOSE: &str = "refresh-token";

#[derive(Debug, Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: UserId,
    aud: &'a str,
    iat: i64,
    exp: i64,
    sid: SessionId,
    amr: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_number: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_number_verified: Option<bool>,
}

/// What a method proves possession of: two methods of one kind (an email code and an email
/// link both prove the inbox) are one factor.
fn factor(method: &str) -> &str {
    match method {
        "email_otp" | "magic_link" => "email",
        "sms_otp" => "phone",
        other => other,
    }
}

/// The `amr` after adding `method`: distinct methods, then `mfa` once two distinct factors
/// have succeeded in the session.
pub fn amr_with(existing: &[String], method: &str) -> Vec<String> {
    let mut methods: Vec<String> = existing.iter().filter(|m| *m != "mfa").cloned().collect();
    if !methods.iter().any(|m| m == method) {
        methods.push(method.to_owned());
    }
    let mut factors: Vec<&str> = methods.iter().map(|m| factor(m)).collect();
    factors.sort_unstable();
    factors.dedup();
    if factors.len() >= 2 {
        methods.push("mfa".to_owned());
    }
    methods
}

/// Issues tokens for `user`, in a new session or (with `session_id`) in an existing one.
/// `Err(answer)` when the session cannot be used.
pub async fn issue(
    ctx: &JobContext,
    conn: &mut DbConn,
    app: &App,
    user: &User,
    session_id: Option<SessionId>,
    method: &str,
    now: DateTime<Utc>,
) -> Result<Result<Value, Answer>, JobError> {
    let session = match session_id {
        Some(id) => {
            let Some(session) = Session::lock_live(conn, app.id, id, now).await? else {
                return Ok(Err(Answer::error(
                    404,
                    "session_not_found",
                    "no live session with this id",
                )
                .undo()));
            };
            if session.user_id != user.id {
                return Ok(Err(Answer::error(
                    404,
                    "session_not_found",
                    "no live session with this id for this user",
                )
                .undo()));
            }
            let existing: Vec<String> = session.methods().map(str::to_owned).collect();
            let amr = amr_with(&existing, method).into_iter().map(Some).collect();
            Session::add_method(conn, id, amr, now).await?
        }
        None => {
            NewSession {
                id: SessionId::new_v7(),
                app_id: app.id,
                user_id: user.id,
                amr: vec![Some(method.to_owned())],
                created_at: now,
                last_authenticated_at: now,
                expires_at: now + ctx.config.refresh_token_ttl,
            }
            .insert(conn)
            .await?
        }
    };
    let body = issue_for_session(ctx, conn, app, user, &session, None, now).await?;
    Ok(Ok(body))
}

/// New tokens for an existing session: a fresh refresh token (a child of `parent` when
/// rotating) and signed access and ID tokens carrying the session's `amr`.
pub async fn issue_for_session(
    ctx: &JobContext,
    conn: &mut DbConn,
    app: &App,
    user: &User,
    session: &Session,
    parent: Option<uuid::Uuid>,
    now: DateTime<Utc>,
) -> Result<Value, JobError> {
    let refresh_token = random_token(32);
    let hash = ctx.hash(REFRESH_TOKEN_PURPOSE, refresh_token.as_bytes());
    NewRefreshToken {
        id: uuid::Uuid::now_v7(),
        session_id: session.id,
        token_hash: &hash,
        parent_id: parent,
        created_at: now,
        expires_at: session.expires_at,
    }
    .insert(conn)
    .await?;

    let key = ctx.signing_key(Some(conn)).await?;
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    let ttl = ctx.config.access_token_ttl;
    let amr: Vec<String> = session.methods().map(str::to_owned).collect();
    let base = Claims {
        iss: &ctx.config.common.issuer,
        sub: user.id,
        aud: &app.client_id,
        iat: now.timestamp(),
        exp: (now + ttl).timestamp(),
        sid: session.id,
        amr,
        email: None,
        email_verified: None,
        phone_number: None,
        phone_number_verified: None,
    };
    let sign = |claims: &Claims<'_>| {
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| JobError::Permanent(e.into()))
    };
    let mut access_header = header.clone();
    access_header.typ = Some("at+jwt".to_owned());
    let access_token = jsonwebtoken::encode(&access_header, &base, &key.encoding)
        .map_err(|e| JobError::Permanent(e.into()))?;
    let id_token = sign(&Claims {
        email: user.email.as_deref(),
        email_verified: user
            .email
            .as_ref()
            .map(|_| user.email_verified_at.is_some()),
        phone_number: user.phone_number.as_deref(),
        phone_number_verified: user
            .phone_number
            .as_ref()
            .map(|_| user.phone_number_verified_at.is_some()),
        amr: base.amr.clone(),
        ..base
    })?;
    Ok(json!({
        "access_token": access_token,
        "id_token": id_token,
        "refresh_token": refresh_token,
        "token_type": "Bearer",
        "expires_in": ttl.num_seconds(),
        "session_id": session.id,
    }))
}

#[cfg(test)]
mod tests {
    use super::amr_with;

    #[test]
    fn amr_gains_mfa_with_two_distinct_factors() {
        assert_eq!(amr_with(&[], "email_otp"), vec!["email_otp"]);
        assert_eq!(
            amr_with(&["email_otp".into()], "email_otp"),
            vec!["email_otp"]
        );
        assert_eq!(
            amr_with(&["email_otp".into()], "sms_otp"),
            vec!["email_otp", "sms_otp", "mfa"]
        );
        assert_eq!(
            amr_with(
                &["email_otp".into(), "sms_otp".into(), "mfa".into()],
                "sms_otp"
            ),
            vec!["email_otp", "sms_otp", "mfa"]
        );
    }
}

//! Session commands (verify role): refresh-token rotation with reuse detection, fresh tokens
//! for a live session, and logout.
//!
//! Rotation: each refresh token works once; using it marks it rotated and returns a child. A
//! rotated (or revoked) token presented again means it was copied: the whole session is
//! revoked, so neither the thief nor the victim can continue with it.

use passgate_schema::DbConn;
use passgate_schema::messages::{Envelope, MessageKind, SessionCommand, TokenRefresh};
use passgate_schema::models::sessions::{RefreshToken, Session};
use passgate_schema::models::users::{Lookup, User};

use crate::answer::Answer;
use crate::context::JobContext;
use crate::job::{CommandJob, JobError};
use crate::tokens::{self, REFRESH_TOKEN_PURPOSE};

pub const REFRESH_SEAL_PURPOSE: &str = "refresh-token";

fn invalid_refresh() -> Answer {
    Answer::error(
        401,
        "auth_invalid_credentials",
        "the refresh token is unknown, expired or revoked",
    )
}

fn no_session() -> Answer {
    Answer::error(404, "session_not_found", "no live session with this id")
}

crate::command_job!(TokenRefreshJob, MessageKind::TokenRefresh, TokenRefresh);

impl CommandJob for TokenRefreshJob {
    async fn decide(
        ctx: &JobContext,
        conn: &mut DbConn,
        msg: &Envelope<TokenRefresh>,
    ) -> Result<Answer, JobError> {
        let now = ctx.clock.now();
        let app = match super::active_app(ctx, conn, msg.app_id).await? {
            Ok(app) => app,
            Err(answer) => return Ok(answer),
        };
        let context = format!("{REFRESH_SEAL_PURPOSE}:{}", msg.id);
        let Ok(token) = ctx
            .transport
            .open_b64(context.as_bytes(), &msg.payload.refresh_token_sealed)
        else {
            return Ok(Answer::error(
                400,
                "system_invalid_input",
                "refresh_token: not sealed with the transport key",
            ));
        };
        let hash = ctx.hash(REFRESH_TOKEN_PURPOSE, &token);
        let Some(token) = RefreshToken::lock_by_hash(conn, &hash).await? else {
            return Ok(invalid_refresh());
        };
        // Another app's token is unknown here.
        let Some(session) = Session::lock(conn, app.id, token.session_id).await? else {
            return Ok(invalid_refresh());
        };
        if token.rotated_at.is_some() || token.revoked_at.is_some() {
            if session.revoked_at.is_none() {
                Session::revoke(conn, session.id, now).await?;
                metrics::counter!("passgate_refresh_token_reuse_total").increment(1);
                tracing::warn!(session.id = %session.id, "rotated refresh token presented again; session revoked");
            }
            return Ok(invalid_refresh());
        }
        if token.expires_at <= now || !session.is_live(now) {
            return Ok(invalid_refresh());
        }
        let Some(user) = User::find(conn, app.id, &Lookup::Id(session.user_id)).await? else {
            return Ok(invalid_refresh());
        };
        if !user.is_active() {
            return Ok(Answer::error(
                403,
                "user_not_active",
                "this user is disabled",
            ));
        }
        RefreshToken::mark_rotated(conn, token.id, now).await?;
        let body = tokens::issue_for_session(ctx, conn, &app, &user, &session, Some(token.id), now)
            .await?;
        Ok(Answer::tokens(body))
    }
}

crate::command_job!(
    SessionAuthenticateJob,
    MessageKind::SessionAuthenticate,
    SessionCommand
);

impl CommandJob for SessionAuthenticateJob {
    async fn decide(
        ctx: &JobContext,
        conn: &mut DbConn,
        msg: &Envelope<SessionCommand>,
    ) -> Result<Answer, JobError> {
        let now = ctx.clock.now();
        let app = match super::active_app(ctx, conn, msg.app_id).await? {
            Ok(app) => app,
            Err(answer) => return Ok(answer),
        };
        let Some(session) = Session::lock_live(conn, app.id, msg.payload.session_id, now).await?
        else {
            return Ok(no_session());
        };
        let Some(user) = User::find(conn, app.id, &Lookup::Id(session.user_id)).await? else {
            return Ok(no_session());
        };
        if !user.is_active() {
            return Ok(Answer::error(
                403,
                "user_not_active",
                "this user is disabled",
            ));
        }
        let body = tokens::issue_for_session(ctx, conn, &app, &user, &session, None, now).await?;
        Ok(Answer::tokens(body))
    }
}

crate::command_job!(SessionLogoutJob, MessageKind::SessionLogout, SessionCommand);

impl CommandJob for SessionLogoutJob {
    async fn decide(
        ctx: &JobContext,
        conn: &mut DbConn,
        msg: &Envelope<SessionCommand>,
    ) -> Result<Answer, JobError> {
        let now = ctx.clock.now();
        let app = match super::active_app(ctx, conn, msg.app_id).await? {
            Ok(app) => app,
            Err(answer) => return Ok(answer),
        };
        let Some(session) = Session::lock(conn, app.id, msg.payload.session_id).await? else {
            return Ok(no_session());
        };
        Session::revoke(conn, session.id, now).await?;
        Ok(Answer::no_content())
    }
}

//! `otp.authenticate` (verify role): opens the sealed passcode, compares keyed hashes in
//! constant time on the subject's locked challenge row, applies the attempt rules
//! ([`crate::domain::otp`]), and on success finds or creates the user and issues tokens — all
//! in one transaction with the request's answer.

use passgate_core::crypto::ct_eq;
use passgate_schema::DbConn;
use passgate_schema::ids::{RequestId, UserId};
use passgate_schema::messages::{Envelope, MessageKind, OtpAuthenticate};
use passgate_schema::models::otp_challenges::OtpChallenge;
use passgate_schema::models::users::{NewUser, User, Verified};

use crate::answer::Answer;
use crate::context::JobContext;
use crate::domain::otp::{Verdict, on_attempt};
use crate::job::{CommandJob, JobError};
use crate::jobs::otp_send::CODE_PURPOSE;
use crate::tokens;

/// Must match the API's sealing purpose for passcodes.
pub const PASSCODE_SEAL_PURPOSE: &str = "otp-passcode";

crate::command_job!(
    OtpAuthenticateJob,
    MessageKind::OtpAuthenticate,
    OtpAuthenticate
);

impl CommandJob for OtpAuthenticateJob {
    async fn decide(
        ctx: &JobContext,
        conn: &mut DbConn,
        msg: &Envelope<OtpAuthenticate>,
    ) -> Result<Answer, JobError> {
        decide(ctx, conn, msg, RequestId(msg.id)).await
    }
}

async fn decide(
    ctx: &JobContext,
    conn: &mut DbConn,
    msg: &Envelope<OtpAuthenticate>,
    id: RequestId,
) -> Result<Answer, JobError> {
    let now = ctx.clock.now();
    let cmd = &msg.payload;
    let app = match super::active_app(ctx, conn, msg.app_id).await? {
        Ok(app) => app,
        Err(answer) => return Ok(answer),
    };
    let context = format!("{PASSCODE_SEAL_PURPOSE}:{id}");
    let Ok(passcode) = ctx
        .transport
        .open_b64(context.as_bytes(), &cmd.passcode_sealed)
    else {
        return Ok(Answer::error(
            400,
            "system_invalid_input",
            "passcode: not sealed with the transport key",
        ));
    };
    let (user, subject) =
        super::resolve_subject(conn, app.id, cmd.identifier_type, &cmd.identifier).await?;
    let challenge = OtpChallenge::lock_or_create(conn, app.id, &subject, "email", id, now).await?;
    let presented = ctx.hash(CODE_PURPOSE, &passcode);
    // Compare against a dummy when no code is live, so both paths do the same work.
    let stored = challenge
        .state
        .code_hash
        .clone()
        .unwrap_or_else(|| vec![0u8; 32]);
    let matches = ct_eq(&presented, &stored) && challenge.state.code_hash.is_some();
    let (next, verdict) = on_attempt(&challenge.state, matches, now, &ctx.config.otp);
    OtpChallenge::save(conn, challenge.id, &next).await?;
    metrics::counter!("passgate_otp_attempts_total", "verdict" => verdict_name(verdict))
        .increment(1);
    match verdict {
        Verdict::Invalid => Ok(Answer::error(
            400,
            "auth_invalid_credentials",
            "wrong or unknown code",
        )),
        Verdict::Expired => Ok(Answer::error(
            400,
            "auth_otp_passcode_expired",
            "the code has expired; request a new one",
        )),
        Verdict::Locked { until } => {
            let secs = u32::try_from((until - now).num_seconds().max(1)).unwrap_or(u32::MAX);
            Ok(Answer::error(
                403,
                "auth_locked",
                "too many failed attempts; try again later",
            )
            .retry_after(secs))
        }
        Verdict::Success => {
            let user = match user {
                Some(user) => user,
                None if next.create_new_user
                    && (next.new_user_email.is_some() || next.new_user_phone_number.is_some()) =>
                {
                    NewUser {
                        id: UserId::new_v7(),
                        app_id: app.id,
                        email: next.new_user_email.as_deref(),
                        phone_number: next.new_user_phone_number.as_deref(),
                        username: None,
                        external_user_id: None,
                        created_at: now,
                        updated_at: now,
                    }
                    .insert_or_get(conn)
                    .await?
                }
                // A success without a user cannot happen (no code is sent to nobody);
                // answer like any failure.
                None => {
                    return Ok(Answer::error(
                        400,
                        "auth_invalid_credentials",
                        "wrong or unknown code",
                    ));
                }
            };
            if !user.is_active() {
                return Ok(Answer::error(403, "user_not_active", "this user is disabled").undo());
            }
            // The factor is the channel the code travelled on.
            let (method, verified) = if next.channel == "sms" {
                ("sms_otp", Verified::PhoneNumber)
            } else {
                ("email_otp", Verified::Email)
            };
            let user = User::mark_login(conn, user.id, now, verified).await?;
            match tokens::issue(ctx, conn, &app, &user, cmd.session_id, method, now).await? {
                Ok(body) => Ok(Answer::tokens(body)),
                Err(answer) => Ok(answer),
            }
        }
    }
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Success => "success",
        Verdict::Invalid => "invalid",
        Verdict::Expired => "expired",
        Verdict::Locked { .. } => "locked",
    }
}

//! `otp.send` (codegen role): creates a code, stores only its keyed hash, queues the delivery
//! with the code sealed (outbox row), answers `{message, code_length, expires_at}`.
//! After the commit the delivery message is published; a redelivered command republishes a
//! delivery that is still queued, and the delivery job ignores duplicates.

use chrono::TimeDelta;
use passgate_core::crypto::random_digits;
use passgate_schema::DbConn;
use passgate_schema::ids::{DeliveryId, RequestId};
use passgate_schema::messages::{Channel, Envelope, IdentifierType, MessageKind, OtpSend};
use passgate_schema::models::deliveries::NewDelivery;
use passgate_schema::models::otp_challenges::OtpChallenge;
use serde_json::json;

use crate::answer::{self, Answer};
use crate::context::JobContext;
use crate::domain::otp::{Issue, on_send};
use crate::job::{CommandJob, Job, JobError, Outcome};

pub const CODE_PURPOSE: &str = "otp-code";
pub const TEMPLATE: &str = "otp";

pub fn delivery_seal_context(id: DeliveryId) -> Vec<u8> {
    format!("delivery:{id}").into_bytes()
}

pub struct OtpSendJob;

impl Job for OtpSendJob {
    const KIND: MessageKind = MessageKind::OtpSend;
    type Payload = OtpSend;

    async fn run(ctx: &JobContext, msg: &Envelope<OtpSend>) -> Result<Outcome, JobError> {
        answer::run_command::<Self>(ctx, msg).await
    }

    async fn after_commit(
        ctx: &JobContext,
        publish: &lapin::Channel,
        msg: &Envelope<OtpSend>,
    ) -> Result<(), JobError> {
        super::outbox::publish_queued(ctx, publish, RequestId(msg.id), msg.app_id).await
    }
}

impl CommandJob for OtpSendJob {
    async fn decide(
        ctx: &JobContext,
        conn: &mut DbConn,
        msg: &Envelope<OtpSend>,
    ) -> Result<Answer, JobError> {
        decide(ctx, conn, msg, RequestId(msg.id)).await
    }
}

async fn decide(
    ctx: &JobContext,
    conn: &mut passgate_schema::DbConn,
    msg: &Envelope<OtpSend>,
    id: RequestId,
) -> Result<Answer, JobError> {
    let now = ctx.clock.now();
    let cmd = &msg.payload;
    let policy = &ctx.config.otp;
    let app = match super::active_app(ctx, conn, msg.app_id).await? {
        Ok(app) => app,
        Err(answer) => return Ok(answer),
    };
    let (user, subject) =
        super::resolve_subject(conn, app.id, cmd.identifier_type, &cmd.identifier).await?;
    // The identifier names the address itself when its type matches the channel.
    let identifier_is_address = matches!(
        (cmd.channel, cmd.identifier_type),
        (Channel::Email, IdentifierType::Email) | (Channel::Sms, IdentifierType::PhoneNumber)
    );
    // Where the code goes. Nothing is sent to unknown or inactive users, or users without an
    // address for the channel, unless a new user may be created; the answer is the same.
    let destination = match &user {
        Some(u) if u.is_active() => match cmd.channel {
            Channel::Email => u.email.clone(),
            Channel::Sms => u.phone_number.clone(),
        },
        Some(_) => None,
        None if cmd.create_new_user && identifier_is_address => Some(cmd.identifier.clone()),
        None => None,
    };
    if cmd.channel == Channel::Sms {
        // SMS pumping defences: the destination country allow-list of the app, and shared
        // hourly caps per app and per number prefix. The checks look at the number the caller
        // gave (or the user's number), so known and unknown users are treated alike.
        let number = destination
            .clone()
            .or_else(|| identifier_is_address.then(|| cmd.identifier.clone()));
        if let Some(number) = &number {
            if !super::abuse::country_allowed(&app.settings, number) {
                return Ok(Answer::error(
                    400,
                    "phone_number_country_not_allowed",
                    "this app does not send text messages to this country",
                ));
            }
            if let Some(retry_after) = super::abuse::sms_limits(ctx, conn, &app, number).await? {
                metrics::counter!("passgate_otp_send_refused_total", "reason" => "sms_limit")
                    .increment(1);
                return Ok(Answer::error(
                    429,
                    "too_many_requests",
                    "too many text messages; retry later",
                )
                .retry_after(retry_after));
            }
        }
    }
    let unknown = user.is_none() && !cmd.create_new_user;
    if let Some(refusal) =
        super::abuse::address_and_enumeration(ctx, conn, &app, cmd.client_ip.as_deref(), unknown)
            .await?
    {
        return Ok(refusal);
    }
    if let Some(retry_after) = super::abuse::app_limit(ctx, conn, &app).await? {
        metrics::counter!("passgate_otp_send_refused_total", "reason" => "app_limit").increment(1);
        return Ok(Answer::error(
            429,
            "too_many_requests",
            "this app sends too many codes; retry later",
        )
        .retry_after(retry_after));
    }
    let ttl = cmd
        .expires_in
        .map(|m| TimeDelta::minutes(i64::from(m)))
        .unwrap_or(policy.default_ttl);
    let code = destination
        .as_ref()
        .map(|_| random_digits(policy.code_length));
    let challenge =
        OtpChallenge::lock_or_create(conn, app.id, &subject, cmd.channel.as_str(), id, now).await?;
    let new_user = user.is_none() && identifier_is_address;
    let issue = Issue {
        request_id: id,
        channel: cmd.channel.as_str().to_owned(),
        user_id: user.as_ref().map(|u| u.id),
        code_hash: code
            .as_ref()
            .map(|c| ctx.hash(CODE_PURPOSE, c.as_bytes()).to_vec()),
        ttl,
        create_new_user: cmd.create_new_user && user.is_none(),
        new_user_email: (new_user && cmd.channel == Channel::Email).then(|| cmd.identifier.clone()),
        new_user_phone_number: (new_user && cmd.channel == Channel::Sms)
            .then(|| cmd.identifier.clone()),
    };
    let next = match on_send(&challenge.state, issue, now, policy) {
        Ok(next) => next,
        Err(refusal) => {
            metrics::counter!("passgate_otp_send_refused_total").increment(1);
            return Ok(Answer::error(
                429,
                "too_many_requests",
                "too many codes requested; retry later",
            )
            .retry_after(refusal.retry_after_secs()));
        }
    };
    OtpChallenge::save(conn, challenge.id, &next).await?;
    if let (Some(to), Some(code)) = (&destination, &code) {
        let delivery_id = DeliveryId::new_v7();
        let sealed = ctx
            .transport
            .seal(&delivery_seal_context(delivery_id), code.as_bytes())
            .map_err(JobError::permanent)?;
        NewDelivery {
            id: delivery_id,
            app_id: app.id,
            request_id: id,
            channel: cmd.channel.as_str(),
            destination: to,
            template: TEMPLATE,
            sealed_payload: Some(&sealed),
            expires_at: next.expires_at,
            created_at: now,
            updated_at: now,
        }
        .insert(conn)
        .await?;
        metrics::counter!("passgate_otp_codes_issued_total", "channel" => cmd.channel.as_str())
            .increment(1);
    } else {
        metrics::counter!("passgate_otp_sends_suppressed_total").increment(1);
        tracing::info!(request.id = %id, "no code sent: unknown, inactive or unreachable user");
    }
    Ok(Answer::ok(json!({
        "message": "If the identifier belongs to a user, a code was sent.",
        "code_length": policy.code_length,
        "expires_at": next.expires_at,
    })))
}

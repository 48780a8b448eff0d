//! `link.send` (codegen role): emails a magic link. The redirect URI must be on the app's
//! allow-list, exactly. The link carries a random code (256 bits) of which only a keyed hash is
//! stored; the email points at the caller's `redirect_uri` with `code` and `state`, so a mail
//! scanner that fetches the link burns nothing: only the backend's authenticate call consumes
//! the code. A new link replaces the subject's earlier live links.

use chrono::TimeDelta;
use passgate_core::crypto::random_token;
use passgate_schema::DbConn;
use passgate_schema::ids::{DeliveryId, RequestId};
use passgate_schema::messages::{Envelope, IdentifierType, LinkSend, MessageKind};
use passgate_schema::models::deliveries::NewDelivery;
use passgate_schema::models::magic_links::{MagicLink, NewMagicLink};
use serde_json::json;

use crate::answer::{self, Answer};
use crate::context::JobContext;
use crate::job::{CommandJob, Job, JobError, Outcome};
use crate::jobs::otp_send::delivery_seal_context;

pub const LINK_PURPOSE: &str = "magic-link";
pub const TEMPLATE: &str = "magic_link";
pub const DEFAULT_TTL_MINUTES: u32 = 15;
pub const MAX_TTL_MINUTES: u32 = 60;

pub struct LinkSendJob;

impl Job for LinkSendJob {
    const KIND: MessageKind = MessageKind::LinkSend;
    type Payload = LinkSend;

    async fn run(ctx: &JobContext, msg: &Envelope<LinkSend>) -> Result<Outcome, JobError> {
        answer::run_command::<Self>(ctx, msg).await
    }

    async fn after_commit(
        ctx: &JobContext,
        publish: &lapin::Channel,
        msg: &Envelope<LinkSend>,
    ) -> Result<(), JobError> {
        super::outbox::publish_queued(ctx, publish, RequestId(msg.id), msg.app_id).await
    }
}

impl CommandJob for LinkSendJob {
    async fn decide(
        ctx: &JobContext,
        conn: &mut DbConn,
        msg: &Envelope<LinkSend>,
    ) -> Result<Answer, JobError> {
        decide(ctx, conn, msg, RequestId(msg.id)).await
    }
}

/// `redirect_uri` with `code` and (when given) `state` appended to its query.
pub fn link_url(redirect_uri: &str, code: &str, state: Option<&str>) -> Option<String> {
    let mut url = url::Url::parse(redirect_uri).ok()?;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("code", code);
        if let Some(state) = state {
            query.append_pair("state", state);
        }
    }
    Some(url.into())
}

async fn decide(
    ctx: &JobContext,
    conn: &mut DbConn,
    msg: &Envelope<LinkSend>,
    id: RequestId,
) -> Result<Answer, JobError> {
    let now = ctx.clock.now();
    let cmd = &msg.payload;
    let app = match super::active_app(ctx, conn, msg.app_id).await? {
        Ok(app) => app,
        Err(answer) => return Ok(answer),
    };
    // Exact match only: no prefixes, no wildcards, no normalisation.
    if !app
        .redirect_uris
        .iter()
        .flatten()
        .any(|allowed| allowed == &cmd.redirect_uri)
    {
        return Ok(Answer::error(
            400,
            "redirect_uri_not_allowed",
            "redirect_uri is not on this app's allow-list",
        ));
    }
    let minutes = cmd
        .expires_in
        .unwrap_or(DEFAULT_TTL_MINUTES)
        .clamp(1, MAX_TTL_MINUTES);
    let (user, subject) =
        super::resolve_subject(conn, app.id, cmd.identifier_type, &cmd.identifier).await?;
    if let Some(retry_after) =
        super::abuse::subject_limits(ctx, conn, &format!("link:{}:{subject}", app.id)).await?
    {
        metrics::counter!("passgate_link_send_refused_total").increment(1);
        return Ok(Answer::error(
            429,
            "too_many_requests",
            "too many links requested; retry later",
        )
        .retry_after(retry_after));
    }
    let unknown = user.is_none() && !cmd.create_new_user;
    if let Some(refusal) =
        super::abuse::address_and_enumeration(ctx, conn, &app, cmd.client_ip.as_deref(), unknown)
            .await?
    {
        return Ok(refusal);
    }
    if let Some(retry_after) = super::abuse::app_limit(ctx, conn, &app).await? {
        metrics::counter!("passgate_link_send_refused_total").increment(1);
        return Ok(Answer::error(
            429,
            "too_many_requests",
            "this app sends too many links; retry later",
        )
        .retry_after(retry_after));
    }
    let destination = match &user {
        Some(u) if u.is_active() => u.email.clone(),
        Some(_) => None,
        None if cmd.create_new_user && cmd.identifier_type == IdentifierType::Email => {
            Some(cmd.identifier.clone())
        }
        None => None,
    };
    let expires_at = now + TimeDelta::minutes(i64::from(minutes));
    MagicLink::expire_live_for_subject(conn, app.id, &subject, now).await?;
    if let Some(to) = destination {
        let code = random_token(32);
        let hash = ctx.hash(LINK_PURPOSE, code.as_bytes());
        let new_user_email = (user.is_none()).then(|| cmd.identifier.clone());
        NewMagicLink {
            id: uuid::Uuid::now_v7(),
            app_id: app.id,
            code_hash: &hash,
            subject: &subject,
            user_id: user.as_ref().map(|u| u.id),
            redirect_uri: &cmd.redirect_uri,
            state: cmd.state.as_deref(),
            create_new_user: cmd.create_new_user && user.is_none(),
            new_user_email: new_user_email.as_deref(),
            request_id: id,
            expires_at,
            created_at: now,
        }
        .insert(conn)
        .await?;
        let Some(link) = link_url(&cmd.redirect_uri, &code, cmd.state.as_deref()) else {
            return Ok(Answer::error(
                400,
                "redirect_uri_not_allowed",
                "redirect_uri is not a valid URL",
            ));
        };
        let delivery_id = DeliveryId::new_v7();
        let sealed = ctx
            .transport
            .seal(&delivery_seal_context(delivery_id), link.as_bytes())
            .map_err(JobError::permanent)?;
        NewDelivery {
            id: delivery_id,
            app_id: app.id,
            request_id: id,
            channel: "email",
            destination: &to,
            template: TEMPLATE,
            sealed_payload: Some(&sealed),
            expires_at,
            created_at: now,
            updated_at: now,
        }
        .insert(conn)
        .await?;
        metrics::counter!("passgate_links_issued_total").increment(1);
    } else {
        metrics::counter!("passgate_link_sends_suppressed_total").increment(1);
        tracing::info!(request.id = %id, "no link sent: unknown, inactive or unreachable user");
    }
    Ok(Answer::ok(json!({
        "message": "If the identifier belongs to a user, a link was sent.",
        "expires_at": expires_at,
    })))
}

#[cfg(test)]
mod tests {
    use super::link_url;

    #[test]
    fn link_keeps_the_redirect_and_adds_code_and_state() {
        assert_eq!(
            link_url("https://app.test/cb?x=1", "abc", Some("s t&u")).as_deref(),
            Some("https://app.test/cb?x=1&code=abc&state=s+t%26u")
        );
        assert_eq!(
            link_url("https://app.test/cb", "abc", None).as_deref(),
            Some("https://app.test/cb?code=abc")
        );
        assert!(link_url("not a url", "abc", None).is_none());
    }
}

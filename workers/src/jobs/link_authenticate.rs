//! `link.authenticate` (verify role): consumes a magic-link code in one conditional update
//! (unknown, used and expired codes all answer `invalid_magic_link_code`), then finds or
//! creates the user and issues tokens with `amr` `magic_link`.

use passgate_schema::DbConn;
use passgate_schema::ids::{RequestId, UserId};
use passgate_schema::messages::{Envelope, LinkAuthenticate, MessageKind};
use passgate_schema::models::magic_links::MagicLink;
use passgate_schema::models::users::{Lookup, NewUser, User, Verified};

use crate::answer::Answer;
use crate::context::JobContext;
use crate::job::{CommandJob, JobError};
use crate::jobs::link_send::LINK_PURPOSE;
use crate::tokens;

pub const CODE_SEAL_PURPOSE: &str = "link-code";

crate::command_job!(
    LinkAuthenticateJob,
    MessageKind::LinkAuthenticate,
    LinkAuthenticate
);

impl CommandJob for LinkAuthenticateJob {
    async fn decide(
        ctx: &JobContext,
        conn: &mut DbConn,
        msg: &Envelope<LinkAuthenticate>,
    ) -> Result<Answer, JobError> {
        decide(ctx, conn, msg).await
    }
}

fn invalid() -> Answer {
    Answer::error(
        400,
        "invalid_magic_link_code",
        "the link is unknown, used or expired",
    )
}

async fn decide(
    ctx: &JobContext,
    conn: &mut DbConn,
    msg: &Envelope<LinkAuthenticate>,
) -> Result<Answer, JobError> {
    let now = ctx.clock.now();
    let cmd = &msg.payload;
    let app = match super::active_app(ctx, conn, msg.app_id).await? {
        Ok(app) => app,
        Err(answer) => return Ok(answer),
    };
    let Ok(code) = ctx
        .transport
        .open_b64(&sealed_context(RequestId(msg.id)), &cmd.code_sealed)
    else {
        return Ok(Answer::error(
            400,
            "system_invalid_input",
            "code: not sealed with the transport key",
        ));
    };
    let hash = ctx.hash(LINK_PURPOSE, &code);
    let link = match MagicLink::consume(conn, app.id, &hash, now).await? {
        Ok(link) => link,
        Err(refusal) => {
            metrics::counter!("passgate_link_attempts_total", "verdict" => format!("{refusal:?}").to_lowercase()).increment(1);
            return Ok(invalid());
        }
    };
    let user = match link.user_id {
        Some(user_id) => User::find(conn, app.id, &Lookup::Id(user_id)).await?,
        None => match (&link.new_user_email, link.create_new_user) {
            (Some(email), true) => Some(
                NewUser {
                    id: UserId::new_v7(),
                    app_id: app.id,
                    email: Some(email),
                    phone_number: None,
                    username: None,
                    external_user_id: None,
                    created_at: now,
                    updated_at: now,
                }
                .insert_or_get(conn)
                .await?,
            ),
            _ => None,
        },
    };
    let Some(user) = user else {
        return Ok(invalid());
    };
    if !user.is_active() {
        return Ok(Answer::error(403, "user_not_active", "this user is disabled").undo());
    }
    let user = User::mark_login(conn, user.id, now, Verified::Email).await?;
    metrics::counter!("passgate_link_attempts_total", "verdict" => "success").increment(1);
    match tokens::issue(ctx, conn, &app, &user, cmd.session_id, "magic_link", now).await? {
        Ok(body) => Ok(Answer::tokens(body)),
        Err(answer) => Ok(answer),
    }
}

/// The code is sealed for one request: a sealed value cannot be replayed in another command.
pub fn sealed_context(id: RequestId) -> Vec<u8> {
    format!("{CODE_SEAL_PURPOSE}:{id}").into_bytes()
}

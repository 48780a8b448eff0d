//! One file per job.

pub mod abuse;
pub mod deliver;
pub mod link_authenticate;
pub mod link_send;
pub mod otp_authenticate;
pub mod otp_send;
pub mod outbox;
pub mod sessions;

use passgate_schema::DbConn;
use passgate_schema::ids::{AppId, UserId};
use passgate_schema::messages::IdentifierType;
use passgate_schema::models::users::{Lookup, User};

/// Finds the user an identifier names, and the subject key its challenge lives under: the
/// user when known (so every identifier of one user shares one attempt counter), else the
/// identifier itself.
pub async fn resolve_subject(
    conn: &mut DbConn,
    app: AppId,
    kind: IdentifierType,
    identifier: &str,
) -> diesel::QueryResult<(Option<User>, String)> {
    let user_id;
    let lookup = match kind {
        IdentifierType::Email => Lookup::Email(identifier),
        IdentifierType::PhoneNumber => Lookup::PhoneNumber(identifier),
        IdentifierType::Username => Lookup::Username(identifier),
        IdentifierType::UserId => match identifier.parse::<UserId>() {
            Ok(id) => {
                user_id = id;
                Lookup::Id(user_id)
            }
            Err(_) => return Ok((None, format!("user_id:{identifier}"))),
        },
    };
    let user = User::find(conn, app, &lookup).await?;
    let subject = match &user {
        Some(u) => format!("user:{}", u.id),
        None => format!("{}:{identifier}", kind.as_str()),
    };
    Ok((user, subject))
}

/// The app a command speaks for: a permanent failure if it does not exist (the message is
/// parked), `403 app_disabled` if it is disabled.
pub async fn active_app(
    ctx: &crate::context::JobContext,
    conn: &mut DbConn,
    id: AppId,
) -> Result<
    Result<std::sync::Arc<passgate_schema::models::apps::App>, crate::answer::Answer>,
    crate::job::JobError,
> {
    match ctx.app(conn, id).await? {
        None => Err(crate::job::JobError::permanent(anyhow::anyhow!(
            "unknown app {id}"
        ))),
        Some(app) if !app.is_active() => Ok(Err(crate::answer::Answer::error(
            403,
            "app_disabled",
            "this app is disabled",
        ))),
        Some(app) => Ok(Ok(app)),
    }
}

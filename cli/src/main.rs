//! `passgate`: the admin CLI.
//!
//! - `passgate migrate`: apply database migrations (advisory-locked; safe to run concurrently).
//! - `passgate topology`: declare the RabbitMQ exchanges, queues and bindings.
//! - `passgate app create --name NAME [--redirect-uri URI]…`: create an app and print its
//!   `client_id` and `client_secret` (shown once; only a keyed hash is stored).
//! - `passgate app list`.
//! - `passgate gen-keys`: print fresh random keys for `.env`.

use clap::{Parser, Subcommand};
use passgate_core::config;
use passgate_core::crypto::{SecretKey, hash_client_secret, random_token};
use passgate_schema::ids::AppId;
use passgate_schema::models::apps::{App, NewApp};

#[derive(Parser)]
#[command(name = "passgate", about = "Passgate administration", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending database migrations.
    Migrate,
    /// Declare the RabbitMQ topology.
    Topology,
    /// Manage apps (tenants).
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Print new random values for PASSGATE_CLIENT_KEY, PASSGATE_TRANSPORT_KEY, PASSGATE_DATA_KEY.
    GenKeys,
    /// The parking lot (`passgate.dead`): messages out of attempts, or undecodable.
    Dead {
        #[command(subcommand)]
        command: DeadCommand,
    },
    /// Token signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum DeadCommand {
    /// Show parked messages (they stay parked).
    List {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Send parked messages back to work (deliveries: only while their secret is still
    /// valid). Messages that cannot be requeued stay parked.
    Requeue {
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Only this message id.
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Start signing with a new key (needs PASSGATE_DATA_KEY). The old keys stay in the JWKS
    /// until the tokens they signed have expired.
    Rotate {
        /// Lifetime of the longest token the old key signed (default: access token lifetime
        /// PASSGATE_ACCESS_TOKEN_TTL_SECS, plus a minute).
        #[arg(long)]
        keep_published_secs: Option<i64>,
    },
    /// List the keys: id, created, retired, published until.
    List,
}

#[derive(Subcommand)]
enum AppCommand {
    /// Create an app; prints its credentials once.
    Create {
        #[arg(long)]
        name: String,
        /// Allowed redirect URI for magic links (repeatable, matched exactly).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Policy settings as a JSON object, e.g. '{"sms_allowed_countries":["US"],"sends_per_hour":500}'.
        #[arg(long, default_value = "{}")]
        settings: String,
        /// Print the credentials as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List apps.
    List,
}

#[expect(clippy::print_stdout, reason = "a CLI prints its results")]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    passgate_core::telemetry::init_tracing();
    let cli = Cli::parse();
    match cli.command {
        Command::Migrate => {
            let url = config::required("PASSGATE_DATABASE_URL")?;
            let applied = passgate_core::db::migrate(&url).await?;
            if applied.is_empty() {
                println!("database is up to date");
            }
            for version in applied {
                println!("applied {version}");
            }
        }
        Command::Topology => {
            let url = config::required("PASSGATE_AMQP_URL")?;
            let conn = passgate_core::amqp::connect(&url, "passgate-cli").await?;
            let channel = conn.create_channel().await?;
            passgate_core::amqp::declare_topology(&channel).await?;
            let _ = conn.close(200, "done".into()).await;
            println!("topology declared");
        }
        Command::GenKeys => {
            for name in [
                "PASSGATE_CLIENT_KEY",
                "PASSGATE_TRANSPORT_KEY",
                "PASSGATE_DATA_KEY",
            ] {
                println!("{name}={}", SecretKey::generate().to_base64());
            }
        }
        Command::Dead { command } => dead(command).await?,
        Command::Keys { command } => {
            let url = config::required("PASSGATE_DATABASE_URL")?;
            let pool = passgate_core::db::pool(&url, 1, std::time::Duration::from_secs(5))?;
            let mut conn = passgate_core::db::conn(&pool).await?;
            let now = passgate_core::clock::Clock::from_env().now();
            match command {
                KeysCommand::Rotate {
                    keep_published_secs,
                } => {
                    let data_key = config::key("PASSGATE_DATA_KEY")?;
                    let keep = match keep_published_secs {
                        Some(secs) => secs,
                        None => config::parse_or("PASSGATE_ACCESS_TOKEN_TTL_SECS", 900_i64)? + 60,
                    };
                    let kid = passgate_core::keys::rotate(
                        &mut conn,
                        &passgate_core::keys::sealer(&data_key),
                        now,
                        chrono::TimeDelta::seconds(keep),
                    )
                    .await?;
                    println!("signing with {kid}; older keys stay published for {keep} s");
                }
                KeysCommand::List => {
                    for key in
                        passgate_schema::models::signing_keys::SigningKey::all(&mut conn).await?
                    {
                        println!(
                            "{}  created {}  retired {}  published until {}",
                            key.kid,
                            key.created_at,
                            key.retired_at
                                .map(|t| t.to_string())
                                .unwrap_or_else(|| "-".to_owned()),
                            key.unpublish_after
                                .map(|t| t.to_string())
                                .unwrap_or_else(|| "-".to_owned()),
                        );
                    }
                }
            }
        }
        Command::App { command } => {
            let url = config::required("PASSGATE_DATABASE_URL")?;
            let pool = passgate_core::db::pool(&url, 1, std::time::Duration::from_secs(5))?;
            let mut conn = passgate_core::db::conn(&pool).await?;
            match command {
                AppCommand::Create {
                    name,
                    redirect_uris,
                    settings,
                    json,
                } => {
                    let settings: serde_json::Value = serde_json::from_str(&settings)
                        .map_err(|e| anyhow::anyhow!("--settings is not JSON: {e}"))?;
                    anyhow::ensure!(settings.is_object(), "--settings must be a JSON object");
                    let client_key = config::key("PASSGATE_CLIENT_KEY")?;
                    let client_id = format!("pg_{}", random_token(12));
                    let secret = random_token(32);
                    let hash = hash_client_secret(&client_key, &secret);
                    #[expect(clippy::disallowed_methods, reason = "the CLI stamps creation time")]
                    let now = chrono::Utc::now();
                    let app = NewApp {
                        id: AppId::new_v7(),
                        name: &name,
                        client_id: &client_id,
                        client_secret_hash: &hash,
                        redirect_uris: redirect_uris.into_iter().map(Some).collect(),
                        settings,
                        created_at: now,
                    }
                    .insert(&mut conn)
                    .await?;
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({ "app_id": app.id, "name": app.name, "client_id": client_id, "client_secret": secret })
                        );
                    } else {
                        println!("app_id:        {}", app.id);
                        println!("name:          {}", app.name);
                        println!("client_id:     {client_id}");
                        println!("client_secret: {secret}");
                        println!("(the secret is shown once; only its keyed hash is stored)");
                    }
                }
                AppCommand::List => {
                    for app in App::list(&mut conn).await? {
                        println!(
                            "{}  {}  {}{}",
                            app.id,
                            app.client_id,
                            app.name,
                            if app.is_active() { "" } else { "  (disabled)" }
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

fn header_text(props: &lapin::BasicProperties, name: &str) -> Option<String> {
    use lapin::types::AMQPValue;
    match props.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

#[expect(clippy::print_stdout, reason = "a CLI prints its results")]
async fn dead(command: DeadCommand) -> anyhow::Result<()> {
    use lapin::options::{BasicAckOptions, BasicGetOptions};
    use passgate_core::amqp::{COMMANDS_EXCHANGE, DEAD_QUEUE, publish_confirmed};
    use passgate_schema::messages::MessageKind;
    let url = config::required("PASSGATE_AMQP_URL")?;
    let conn = passgate_core::amqp::connect(&url, "passgate-cli").await?;
    let channel = passgate_core::amqp::confirm_channel(&conn).await?;
    let (limit, only, requeue) = match &command {
        DeadCommand::List { limit } => (*limit, None, false),
        DeadCommand::Requeue { limit, id } => (*limit, id.clone(), true),
    };
    let db = if requeue {
        let db_url = config::required("PASSGATE_DATABASE_URL")?;
        Some(passgate_core::db::pool(
            &db_url,
            1,
            std::time::Duration::from_secs(5),
        )?)
    } else {
        None
    };
    let now = passgate_core::clock::Clock::from_env().now();
    let (mut seen, mut requeued, mut kept) = (0, 0, 0);
    // Messages taken here and not acked go back to the queue when the channel closes.
    while seen < limit {
        let Some(message) = channel
            .basic_get(DEAD_QUEUE.into(), BasicGetOptions { no_ack: false })
            .await?
        else {
            break;
        };
        seen += 1;
        let props = &message.delivery.properties;
        let id = props
            .message_id()
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default();
        let kind = props
            .kind()
            .as_ref()
            .and_then(|k| MessageKind::parse(k.as_str()))
            .or_else(|| {
                serde_json::from_slice::<serde_json::Value>(&message.delivery.data)
                    .ok()
                    .and_then(|v| v["type"].as_str().and_then(MessageKind::parse))
            });
        let reason = header_text(props, "x-passgate-reason")
            .or_else(|| header_text(props, "x-first-death-reason"))
            .unwrap_or_else(|| "-".to_owned());
        let kind_name = kind.map(|k| k.as_str()).unwrap_or("unknown");
        if !requeue {
            println!("{id}  {kind_name}  {reason}");
            continue;
        }
        if only.as_ref().is_some_and(|o| *o != id) {
            continue;
        }
        let Some(kind) = kind else {
            println!("{id}: kept (no known type)");
            kept += 1;
            continue;
        };
        if matches!(kind, MessageKind::DeliverEmail | MessageKind::DeliverSms) {
            let delivery_id = serde_json::from_slice::<serde_json::Value>(&message.delivery.data)
                .ok()
                .and_then(|v| {
                    v["payload"]["delivery_id"]
                        .as_str()
                        .and_then(|d| d.parse().ok())
                });
            let ok = match (delivery_id, &db) {
                (Some(delivery_id), Some(db)) => {
                    let mut conn = passgate_core::db::conn(db).await?;
                    passgate_schema::models::deliveries::Delivery::requeue_exhausted(
                        &mut conn,
                        delivery_id,
                        now,
                    )
                    .await?
                }
                _ => false,
            };
            if !ok {
                println!("{id}: kept (delivery already final, its secret expired, or unknown)");
                kept += 1;
                continue;
            }
        }
        publish_confirmed(
            &channel,
            COMMANDS_EXCHANGE,
            kind.as_str(),
            &message.delivery.data,
            props.clone(),
            std::time::Duration::from_secs(5),
        )
        .await?;
        message.delivery.ack(BasicAckOptions::default()).await?;
        requeued += 1;
        println!("{id}: requeued as {}", kind.as_str());
    }
    let _ = channel.close(200, "done".into()).await;
    let _ = conn.close(200, "done".into()).await;
    if requeue {
        println!("{requeued} requeued, {kept} kept");
    } else {
        println!("{seen} parked message(s) shown");
    }
    Ok(())
}

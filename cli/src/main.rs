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
    /// Token signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
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

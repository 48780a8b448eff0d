//! `passgate-workers [--roles codegen,delivery,verify]`: wiring only.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use diesel_async::RunQueryDsl;
use metrics_exporter_prometheus::PrometheusHandle;
use passgate_core::amqp::{self, Live};
use passgate_core::clock::Clock;
use passgate_core::db::{self, DbPool};
use passgate_core::telemetry::{self, Shutdown};
use passgate_schema::models::deliveries::Delivery;
use passgate_workers::config::WorkerConfig;
use passgate_workers::consumer::{self, WorkerBroker};
use passgate_workers::context::JobContext;
use passgate_workers::roles::Role;
use serde_json::json;

fn roles_from_args() -> Result<Vec<Role>, String> {
    let mut args = std::env::args().skip(1);
    let mut roles = std::env::var("PASSGATE_WORKER_ROLES").unwrap_or_else(|_| "all".to_owned());
    while let Some(arg) = args.next() {
        if let Some(v) = arg.strip_prefix("--roles=") {
            roles = v.to_owned();
        } else if arg == "--roles" {
            roles = args.next().ok_or("--roles needs a value")?;
        } else if arg == "--help" || arg == "-h" {
            return Err("usage: passgate-workers [--roles codegen,delivery,verify|all]".to_owned());
        } else {
            return Err(format!("unknown argument {arg:?}"));
        }
    }
    Role::parse_list(&roles)
}

#[derive(Clone)]
struct Ops {
    db: DbPool,
    broker: Live<WorkerBroker>,
    metrics: PrometheusHandle,
}

async fn readyz(State(ops): State<Ops>) -> impl IntoResponse {
    let database = tokio::time::timeout(Duration::from_secs(2), async {
        let mut conn = db::conn(&ops.db).await.ok()?;
        diesel::sql_query("SELECT 1").execute(&mut conn).await.ok()
    })
    .await
    .ok()
    .flatten()
    .is_some();
    let broker = ops.broker.borrow().as_ref().is_some_and(|b| b.connected());
    let status = if database && broker {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(
            json!({ "database": if database { "up" } else { "down" }, "broker": if broker { "up" } else { "down" } }),
        ),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init_tracing();
    // TLS for provider APIs (reqwest) and SMTP (lettre) uses rustls with the ring provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let roles = roles_from_args().map_err(|e| anyhow::anyhow!(e))?;
    let config = WorkerConfig::from_env(roles.clone())?;
    let metrics = telemetry::init_metrics()?;
    let shutdown = Shutdown::new();
    shutdown.on_signals();

    let db = db::pool(
        &config.common.database_url,
        config.common.database_pool_size,
        Duration::from_secs(3),
    )?;
    let (email, sms) = if roles.contains(&Role::Delivery) {
        let (email, sms) = passgate_workers::providers::build(&config)?;
        tracing::info!(email = ?email.names(), sms = ?sms.names(), "delivery providers (in priority order)");
        (Some(email), Some(sms))
    } else {
        (None, None)
    };
    let clock = Clock::from_env();
    if clock.is_test_clock() {
        tracing::warn!("PASSGATE_TEST_CLOCK_FILE is set: time comes from a test clock");
    }
    let bind = config.bind;
    let grace = config.shutdown_grace;
    let housekeeping = config.housekeeping_interval;
    let amqp_url = config.common.amqp_url.clone();
    let ctx = JobContext::new(config, db.clone(), clock, email, sms);

    if roles.contains(&Role::Verify) {
        // Publish a signing key before the first login, so the JWKS is never empty.
        if let Err(e) = ctx.signing_key(None).await {
            tracing::warn!(error = %e, "no signing key yet; will retry on first use");
        }
    }
    let setup_ctx = ctx.clone();
    let setup_roles = roles.clone();
    let (broker, broker_task) = amqp::supervise(
        amqp_url,
        format!(
            "passgate-workers[{}]",
            roles.iter().map(|r| r.name()).collect::<Vec<_>>().join(",")
        ),
        shutdown.clone(),
        move |conn| consumer::start(setup_ctx.clone(), conn, setup_roles.clone()),
        move |b: Arc<WorkerBroker>| async move { b.drain(grace).await },
    );

    // Housekeeping, now and then (any worker may do it; it is idempotent): ended rate-limit
    // windows deleted, expired secrets of failed deliveries erased.
    let purge_db = db.clone();
    let purge_clock = Clock::from_env();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(housekeeping);
        loop {
            every.tick().await;
            let Ok(mut conn) = db::conn(&purge_db).await else {
                continue;
            };
            let now = purge_clock.now();
            if let Err(e) = passgate_schema::models::rate_limits::purge(&mut conn, now).await {
                tracing::warn!(error = %e, "rate-limit purge failed");
            }
            match Delivery::erase_expired_secrets(&mut conn, now).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(erased = n, "expired secrets of failed deliveries erased"),
                Err(e) => tracing::warn!(error = %e, "erasing expired delivery secrets failed"),
            }
        }
    });
    let ops = Ops {
        db,
        broker,
        metrics,
    };
    let app = axum::Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(|State(ops): State<Ops>| async move { ops.metrics.render() }),
        )
        .with_state(ops);
    let listener = tokio::net::TcpListener::bind(bind).await?;
    tracing::info!(bind = %listener.local_addr()?, roles = ?roles.iter().map(|r| r.name()).collect::<Vec<_>>(), "passgate-workers running");
    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.triggered().await })
            .await
    });
    shutdown.triggered().await;
    let _ = broker_task.await;
    let _ = server.await;
    tracing::info!("passgate-workers stopped");
    Ok(())
}

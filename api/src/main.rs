//! `passgate-api`: wiring only (see the library for the application).

use passgate_api::config::ApiConfig;
use passgate_core::telemetry::{self, Shutdown};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init_tracing();
    let config = ApiConfig::from_env()?;
    let metrics = telemetry::init_metrics()?;
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    let bind = config.bind;
    let (state, broker_task) = passgate_api::start(config, Some(metrics), shutdown.clone())?;
    if state.clock.is_test_clock() {
        tracing::warn!("PASSGATE_TEST_CLOCK_FILE is set: time comes from a test clock");
    }
    let listener = tokio::net::TcpListener::bind(bind).await?;
    tracing::info!(bind = %listener.local_addr()?, "passgate-api listening");
    let app = passgate_api::router(state);
    let stop = shutdown.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.triggered().await })
        .await?;
    shutdown.trigger();
    let _ = broker_task.await;
    tracing::info!("passgate-api stopped");
    Ok(())
}

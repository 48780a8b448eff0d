//! The state every handler receives. Built once in `main` (or by a test) from a config value.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use passgate_core::amqp::Live;
use passgate_core::clock::Clock;
use passgate_core::crypto::Sealer;
use passgate_core::db::DbPool;

use crate::auth::ClientTokens;
use crate::broker::{ApiBroker, Waiters};
use crate::config::ApiConfig;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ApiConfig>,
    pub db: DbPool,
    /// Request rows only: commits do not wait for the WAL flush (see `commands.rs`).
    pub ledger: DbPool,
    pub broker: Live<ApiBroker>,
    pub waiters: Arc<Waiters>,
    pub clock: Clock,
    pub transport: Sealer,
    pub client_tokens: Arc<ClientTokens>,
    pub metrics: Option<PrometheusHandle>,
}

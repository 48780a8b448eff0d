//! The state every handler receives. Built once in `main` (or by a test) from a config value.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use passgate_core::amqp::Live;
use passgate_core::cache::TtlCache;
use passgate_core::clock::Clock;
use passgate_core::crypto::Sealer;
use passgate_core::db::DbPool;
use passgate_schema::ids::AppId;
use passgate_schema::models::apps::App;

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
    /// Apps as callers' requests last read them (`PASSGATE_APP_CACHE_MS`).
    pub apps: Arc<TtlCache<AppId, Arc<App>>>,
    pub metrics: Option<PrometheusHandle>,
}

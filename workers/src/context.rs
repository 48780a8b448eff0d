//! What every job gets: configuration, the pool, the clock, keys, the mailer and the signing key.

use std::sync::Arc;

use passgate_core::clock::Clock;
use passgate_core::crypto::Sealer;
use passgate_core::db::DbPool;
use passgate_core::keys::{self, ActiveKey};
use tokio::sync::RwLock;

use passgate_core::cache::TtlCache;
use passgate_schema::DbConn;
use passgate_schema::ids::AppId;
use passgate_schema::models::apps::App;
use passgate_schema::models::signing_keys::SigningKey;

use crate::config::WorkerConfig;
use crate::job::JobError;
use crate::providers::{EmailChain, SmsChain};

pub struct JobContext {
    pub config: WorkerConfig,
    pub db: DbPool,
    pub clock: Clock,
    /// Opens what the API sealed; seals what goes to other workers and back to the API.
    pub transport: Sealer,
    /// Seals secrets at rest (signing keys).
    pub data_sealer: Sealer,
    /// Email providers (delivery role).
    pub email: Option<EmailChain>,
    /// SMS providers (delivery role).
    pub sms: Option<SmsChain>,
    signing_key: RwLock<Option<(ActiveKey, std::time::Instant)>>,
    /// Apps as jobs last read them. Every command and every delivery needs its app, and apps
    /// change rarely, so each process keeps what it read for `PASSGATE_APP_CACHE_MS` (2 s by
    /// default): a change of settings, or disabling an app, reaches the workers within that
    /// time.
    apps: TtlCache<AppId, Arc<App>>,
}

/// More apps than this in the cache: it is emptied (it refills with the apps in use).
const APP_CACHE_MAX: usize = 10_000;

impl JobContext {
    pub fn new(
        config: WorkerConfig,
        db: DbPool,
        clock: Clock,
        email: Option<EmailChain>,
        sms: Option<SmsChain>,
    ) -> Arc<Self> {
        Arc::new(Self {
            transport: Sealer::new(&config.transport_key),
            data_sealer: keys::sealer(&config.data_key),
            db,
            clock,
            email,
            sms,
            signing_key: RwLock::new(None),
            apps: TtlCache::new(config.app_cache_ttl, APP_CACHE_MAX),
            config,
        })
    }

    /// The app `id`, from this process's short-lived cache or else read on `conn`.
    pub async fn app(&self, conn: &mut DbConn, id: AppId) -> Result<Option<Arc<App>>, JobError> {
        if let Some(app) = self.apps.get(&id, std::time::Instant::now()) {
            return Ok(Some(app));
        }
        let Some(app) = App::find(conn, id).await? else {
            return Ok(None);
        };
        let app = Arc::new(app);
        self.apps
            .put(app.id, app.clone(), std::time::Instant::now());
        Ok(Some(app))
    }

    /// Keyed hash of a secret under the data key.
    pub fn hash(&self, purpose: &str, secret: &[u8]) -> [u8; 32] {
        self.config.data_key.keyed_hash(purpose, secret)
    }

    /// The key to sign tokens with. Cached for `signing_key_refresh`; then read again on the
    /// caller's connection (a job's transaction: no second pooled connection is held, so a busy
    /// pool cannot deadlock). Only when no key exists at all is one created, on a connection of
    /// its own, so it is committed and published before any token uses it.
    pub async fn signing_key(&self, conn: Option<&mut DbConn>) -> Result<ActiveKey, JobError> {
        if let Some((key, loaded)) = self.signing_key.read().await.as_ref()
            && loaded.elapsed() < self.config.signing_key_refresh
        {
            return Ok(key.clone());
        }
        let stored = match conn {
            Some(conn) => SigningKey::active(conn).await?,
            None => None,
        };
        let key = match stored {
            Some(stored) => {
                keys::open(&stored, &self.data_sealer).map_err(|e| JobError::Permanent(e.into()))?
            }
            None => {
                let mut own = passgate_core::db::conn(&self.db).await?;
                keys::active(&mut own, &self.data_sealer, self.clock.now())
                    .await
                    .map_err(|e| match e {
                        keys::KeyError::Db(e) => JobError::from(e),
                        other => JobError::Permanent(other.into()),
                    })?
            }
        };
        *self.signing_key.write().await = Some((key.clone(), std::time::Instant::now()));
        Ok(key)
    }
}

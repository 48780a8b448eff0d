//! What every job gets: configuration, the pool, the clock, keys, the mailer and the signing key.

use std::sync::Arc;

use passgate_core::clock::Clock;
use passgate_core::crypto::Sealer;
use passgate_core::db::DbPool;
use passgate_core::keys::{self, ActiveKey};
use tokio::sync::RwLock;

use passgate_schema::DbConn;
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
}

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
            config,
            db,
            clock,
            email,
            sms,
            signing_key: RwLock::new(None),
        })
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

//! What every job gets: configuration, the pool, the clock, keys, the mailer and the signing key.

use std::sync::Arc;

use passgate_core::clock::Clock;
use passgate_core::crypto::Sealer;
use passgate_core::db::DbPool;
use passgate_core::keys::{self, ActiveKey};
use tokio::sync::RwLock;

use crate::config::WorkerConfig;
use crate::job::JobError;
use crate::providers::email::Mailer;
use crate::providers::sms::SmsSender;

pub struct JobContext {
    pub config: WorkerConfig,
    pub db: DbPool,
    pub clock: Clock,
    /// Opens what the API sealed; seals what goes to other workers and back to the API.
    pub transport: Sealer,
    /// Seals secrets at rest (signing keys).
    pub data_sealer: Sealer,
    pub mailer: Option<Mailer>,
    pub sms: Option<Arc<dyn SmsSender>>,
    signing_key: RwLock<Option<ActiveKey>>,
}

impl JobContext {
    pub fn new(
        config: WorkerConfig,
        db: DbPool,
        clock: Clock,
        mailer: Option<Mailer>,
        sms: Option<Arc<dyn SmsSender>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            transport: Sealer::new(&config.transport_key),
            data_sealer: Sealer::new(&config.data_key.derive("signing-keys")),
            config,
            db,
            clock,
            mailer,
            sms,
            signing_key: RwLock::new(None),
        })
    }

    /// Keyed hash of a secret under the data key.
    pub fn hash(&self, purpose: &str, secret: &[u8]) -> [u8; 32] {
        self.config.data_key.keyed_hash(purpose, secret)
    }

    /// The key to sign tokens with: created on first use (on a connection of its own, so it is
    /// committed and published before any token uses it), then cached.
    pub async fn signing_key(&self) -> Result<ActiveKey, JobError> {
        if let Some(key) = self.signing_key.read().await.as_ref() {
            return Ok(key.clone());
        }
        let mut conn = passgate_core::db::conn(&self.db).await?;
        let key = keys::active(&mut conn, &self.data_sealer, self.clock.now())
            .await
            .map_err(|e| match e {
                keys::KeyError::Db(e) => JobError::from(e),
                other => JobError::Permanent(other.into()),
            })?;
        *self.signing_key.write().await = Some(key.clone());
        Ok(key)
    }
}

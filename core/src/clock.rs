//! Time is an input. Domain code takes `now` as an argument; processes get it from a [`Clock`].
//!
//! [`Clock::system`] is the real clock. [`Clock::offset_file`] adds a number of seconds read
//! from a file to the real time; it exists so integration tests can move time forward in running
//! processes (expiry, lockout windows) without sleeping, and is enabled only by
//! `PASSGATE_TEST_CLOCK_FILE`, which production deployments never set.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_file: Option<Arc<PathBuf>>,
}

impl Clock {
    pub fn system() -> Self {
        Self { offset_file: None }
    }

    pub fn offset_file(path: PathBuf) -> Self {
        Self {
            offset_file: Some(Arc::new(path)),
        }
    }

    /// The system clock, or the test clock when `PASSGATE_TEST_CLOCK_FILE` is set.
    pub fn from_env() -> Self {
        match std::env::var_os("PASSGATE_TEST_CLOCK_FILE") {
            Some(path) if !path.is_empty() => Self::offset_file(PathBuf::from(path)),
            _ => Self::system(),
        }
    }

    pub fn is_test_clock(&self) -> bool {
        self.offset_file.is_some()
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "the one place that reads the system time"
    )]
    pub fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        match &self.offset_file {
            None => now,
            Some(path) => {
                let offset = std::fs::read_to_string(path.as_ref())
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .unwrap_or(0);
                now + TimeDelta::seconds(offset)
            }
        }
    }
}

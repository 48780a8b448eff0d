//! Passgate's shared runtime, used by the API, the workers and the CLI: configuration helpers,
//! secrets and keys, the clock, database pools and migrations, the RabbitMQ topology and
//! publisher, token signing keys, and telemetry.

pub mod amqp;
pub mod cache;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod keys;
pub mod telemetry;

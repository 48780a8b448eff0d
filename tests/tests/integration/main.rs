//! Passgate integration tests: the real binaries against real PostgreSQL, RabbitMQ and SMTP.
//! Run with `scripts/test.sh` (it starts the services and builds the binaries).

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod delivery;
mod faults;
mod limits;
mod links;
mod ops;
mod otp;
mod pipeline;
mod sessions;
mod sms;
mod users;

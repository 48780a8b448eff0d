//! The job abstraction. A job handles one message type; the consumer decodes, runs, then acks,
//! retries or dead-letters. Commands (with a request row and a reply) share the bookkeeping in
//! [`crate::answer`].

use std::future::Future;

use passgate_schema::messages::{CommandReply, Envelope, MessageKind};
use serde::de::DeserializeOwned;

use crate::context::JobContext;

/// How a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Our own infrastructure (database, broker) is unreachable: the worker keeps the message
    /// and retries in place until it is back, so an outage of any length loses nothing.
    #[error("unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// Try again later (a provider is busy or refused for now). The message stays.
    #[error("transient: {0:#}")]
    Transient(anyhow::Error),
    /// Will never succeed (malformed message, unknown app). Dead-lettered for an operator.
    #[error("permanent: {0:#}")]
    Permanent(anyhow::Error),
}

impl JobError {
    pub fn permanent(e: impl Into<anyhow::Error>) -> Self {
        Self::Permanent(e.into())
    }
}

impl From<passgate_core::db::DbError> for JobError {
    fn from(e: passgate_core::db::DbError) -> Self {
        if e.is_transient() {
            Self::Unavailable(e.into())
        } else {
            Self::Permanent(e.into())
        }
    }
}

impl From<diesel::result::Error> for JobError {
    fn from(e: diesel::result::Error) -> Self {
        passgate_core::db::DbError::from(e).into()
    }
}

/// What a successful run produced.
#[derive(Debug)]
pub enum Outcome {
    /// A command's final answer, to send to the waiting caller.
    Reply(CommandReply),
    /// A task finished (or had nothing to do).
    Done,
    /// Try the task again after `delay` (through the delay queue `tier`); the job recorded
    /// the failed attempt.
    Retry {
        delay: std::time::Duration,
        tier: usize,
    },
    /// Out of attempts: park the message in `passgate.dead` for an operator; the job recorded
    /// the final failure.
    Park { reason: String },
    /// Come back once another worker's send lease has surely ended
    /// ([`passgate_core::amqp::LEASE_WAIT`]).
    WaitLease,
}

/// One message type's handler. Every job is idempotent: RabbitMQ delivers at least once.
pub trait Job: Send + Sync + 'static {
    const KIND: MessageKind;
    type Payload: DeserializeOwned + Send + Sync;

    /// Does the work, committing its effect (and, for commands, the answer) in one transaction.
    fn run(
        ctx: &JobContext,
        msg: &Envelope<Self::Payload>,
    ) -> impl Future<Output = Result<Outcome, JobError>> + Send;

    /// Follow-up publishing after the commit (the outbox). Also runs when a redelivered command
    /// turns out to be finished already, so a crash between commit and publish loses nothing.
    fn after_commit(
        _ctx: &JobContext,
        _publish: &lapin::Channel,
        _msg: &Envelope<Self::Payload>,
    ) -> impl Future<Output = Result<(), JobError>> + Send {
        async { Ok(()) }
    }
}

/// A command: decides an [`crate::answer::Answer`] inside the transaction that
/// [`crate::answer::run_command`] opens around it.
pub trait CommandJob: Job {
    fn decide(
        ctx: &JobContext,
        conn: &mut passgate_schema::DbConn,
        msg: &Envelope<Self::Payload>,
    ) -> impl Future<Output = Result<crate::answer::Answer, JobError>> + Send;
}

/// Declares a command job: its message type and payload, and a `run` that is
/// [`crate::answer::run_command`] around the job's [`CommandJob::decide`].
#[macro_export]
macro_rules! command_job {
    ($job:ident, $kind:expr, $payload:ty) => {
        pub struct $job;

        impl $crate::job::Job for $job {
            const KIND: passgate_schema::messages::MessageKind = $kind;
            type Payload = $payload;

            async fn run(
                ctx: &$crate::context::JobContext,
                msg: &passgate_schema::messages::Envelope<$payload>,
            ) -> Result<$crate::job::Outcome, $crate::job::JobError> {
                $crate::answer::run_command::<Self>(ctx, msg).await
            }
        }
    };
}

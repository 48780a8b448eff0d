//! AMQP message contracts. Every message is an [`Envelope`] in JSON; its `type` is also the
//! routing key on the `passgate.commands` exchange. Payloads are versioned by `version`: a
//! consumer refuses (dead-letters) a version it does not know rather than guessing.

pub mod envelope;
pub mod link;
pub mod otp;
pub mod reply;
pub mod session;

pub use envelope::{Envelope, Idempotency, MessageKind};
pub use link::{LinkAuthenticate, LinkSend};
pub use otp::{Channel, Deliver, IdentifierType, OtpAuthenticate, OtpSend};
pub use reply::CommandReply;
pub use session::{SessionCommand, TokenRefresh};

//! One module per table: the row (`Queryable`), the insert struct (`Insertable`) and the queries.
//! Every query returns `QueryResult` and runs on a caller-supplied connection, so callers decide
//! the transaction boundaries.

pub mod apps;
pub mod auth_requests;
pub mod deliveries;
pub mod delivery_attempts;
pub mod magic_links;
pub mod otp_challenges;
pub mod rate_limits;
pub mod sessions;
pub mod signing_keys;
pub mod users;

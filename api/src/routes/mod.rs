//! One module per route group.

pub mod health;
pub mod links;
pub mod oidc;
pub mod otp;
pub mod requests;
pub mod sessions;
pub mod users;

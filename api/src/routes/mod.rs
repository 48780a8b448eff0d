//! One module per route group.

pub mod health;
pub mod oidc;
pub mod otp;
pub mod requests;

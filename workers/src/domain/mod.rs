//! Pure domain logic: no I/O, time passed in.

pub mod breaker;
pub mod otp;
pub mod retry;

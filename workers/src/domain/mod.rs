//! Pure domain logic: no I/O, time passed in.

pub mod otp;

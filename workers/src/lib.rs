//! Passgate workers: one binary, roles chosen at start. Each role consumes its own queue; jobs
//! are idempotent, commit before they ack, and publish follow-ups with confirms.

pub mod answer;
pub mod config;
pub mod consumer;
pub mod context;
pub mod domain;
pub mod job;
pub mod jobs;
pub mod providers;
pub mod roles;
pub mod templates;
pub mod tokens;

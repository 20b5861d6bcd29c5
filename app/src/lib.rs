//! GitHub App: webhook receiver and IAM-authenticated installation-token broker.
//!
//! `POST /v1/tokens` trades a caller's SigV4-signed `sts:GetCallerIdentity` request for a GitHub
//! installation token scoped to one repository and the permissions the policy allows;
//! `POST /webhooks` receives the App's webhooks. The decisions live in `ssm_core::broker` and
//! `ssm_core::webhook`; this crate does the I/O around them and converts GitHub's payloads
//! (octocrab's types) into ours at the edge.

pub mod audit;
pub mod cache;
pub mod config;
pub mod error;
pub mod github;
pub mod metrics;
pub mod routes;
pub mod secrets;
pub mod setup;
pub mod startup;
pub mod state;
pub mod sts;
pub mod telemetry;
pub mod webhook_event;

pub use config::{Opts, Settings};
pub use startup::Application;

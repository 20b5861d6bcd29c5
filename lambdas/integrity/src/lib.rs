//! Integrity Lambda: out-of-band change classification, drift sweep, repository_dispatch.
//!
//! Inputs are SQS batches of EventBridge CloudTrail events and scheduled sweep events
//! ([`input`]). Classification is pure and lives in `ssm_core::integrity`; this crate reads the
//! stack ([`stack`]), runs the sweep ([`sweep`]), and sends one `repository_dispatch` per batch or
//! sweep with a broker-issued token ([`dispatch`]). Failed dispatches are reported as
//! `batchItemFailures` so SQS redelivers the drift messages and its DLQ keeps what still fails.

pub mod app;
pub mod batch;
pub mod broker;
pub mod config;
pub mod dispatch;
pub mod handler;
pub mod input;
pub mod metrics;
pub mod stack;
pub mod sweep;

pub use config::Config;
pub use dispatch::{
    DispatchError, GitHubDispatcher, GitHubToken, Notify, RetryPolicy, TokenError, TokenSource,
};
pub use handler::{BatchResponse, Handler, HandlerError};

//! `ssm-sandbox`: the whole system on one machine, on 127.0.0.1.
//!
//! moto (with the CloudFormation resource types it lacks, `moto/ssm_moto.py`), a local OIDC issuer,
//! the deploy Action deploying the synthesized stack, each deployed function under its own Lambda
//! Runtime API ([`runtime`]) and following moto whoever changes it ([`watch`]), the HTTP API served
//! as API Gateway would ([`gateway`]) to callers issued through
//! moto's IAM ([`callers`]), the GitHub App with the GitHub emulator, and the drift loop:
//! the queue's event source batching as the deployed mapping says ([`poller`]), reconcile runs as
//! the workflow's concurrency group allows ([`concurrency`]), all reported as typed events
//! ([`journal`]).

pub mod callers;
pub mod concurrency;
pub mod drift;
pub mod external;
pub mod gateway;
pub mod install;
pub mod journal;
pub mod named_keys;
pub mod oidc;
pub mod poller;
pub mod procs;
pub mod runtime;
pub mod system;
pub mod watch;
pub mod web;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// What an invocation returns: the function's response payload, or why there is none.
pub type InvokeFuture =
    Pin<Box<dyn Future<Output = Result<serde_json::Value, InvokeError>> + Send>>;

/// Something that runs a Lambda invocation: a local function under its Runtime API, or a test double.
pub trait Invoker: Send + Sync + 'static {
    /// Invokes the function with `event` and waits for its result.
    fn invoke(&self, event: serde_json::Value) -> InvokeFuture;
}

/// Why an invocation has no response payload.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The function reported an error (`/response` was not called; `/error` or `/init/error` was).
    #[error("function error {error_type}: {message}")]
    Function { error_type: String, message: String },
    /// The function did not answer within its timeout; its process was stopped.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The function could not run (process exited, code missing, stopped).
    #[error("function unavailable: {0}")]
    Unavailable(String),
}

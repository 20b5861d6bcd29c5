//! `ssm-sandbox`: the whole system on one machine, on 127.0.0.1.
//!
//! moto (with the CloudFormation resource types it lacks, `moto/ssm_moto.py`), a local OIDC issuer,
//! the deploy Action deploying the synthesized stack, each deployed function under its own Lambda
//! Runtime API ([`runtime`]), the HTTP API served as API Gateway would ([`gateway`]), the GitHub App
//! with the GitHub emulator, and the drift loop.

pub mod drift;
pub mod gateway;
pub mod oidc;
pub mod procs;
pub mod runtime;
pub mod system;
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

//! A Lambda function run on this machine as Lambda runs it: the function's `bootstrap` as a child
//! process, fed one invocation at a time through its own Lambda Runtime API.
//!
//! The Runtime API (version 2018-06-01) that the bootstrap finds at `AWS_LAMBDA_RUNTIME_API`:
//!
//! | request                                             | answer                                       |
//! |-----------------------------------------------------|----------------------------------------------|
//! | `GET  /2018-06-01/runtime/invocation/next`          | 200 with the event, once there is one        |
//! | `POST /2018-06-01/runtime/invocation/{id}/response` | 202; 400 unknown id; 413 past 6 MiB          |
//! | `POST /2018-06-01/runtime/invocation/{id}/error`    | 202; 400 unknown id                          |
//! | `POST /2018-06-01/runtime/init/error`               | 202; 403 once the runtime has polled `/next` |
//! | another method on those paths; any other path      | 405; 404                                     |
//!
//! `/next` answers with the headers `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`
//! (Unix epoch milliseconds), `Lambda-Runtime-Invoked-Function-Arn` and `Lambda-Runtime-Trace-Id`.
//! Error bodies are `{"errorType": ..., "errorMessage": ...}`, the error type falling back to the
//! `Lambda-Runtime-Function-Error-Type` header. A `/next` from a process that has since been
//! stopped gets 500, as Lambda answers a runtime whose environment is gone.
//!
//! A [`LocalFunction`] is one execution environment: invocations run one at a time, in the order
//! they arrive. A timeout, a crash or an init error ends the environment; the next invocation
//! starts a fresh process (a cold start, with init run again), as Lambda would.
//!
//! # Where things are
//!
//! - `code`: how a function's code is unpacked ([`extract_bootstrap`]);
//! - `spec`: what Lambda knows about a function ([`FunctionSpec`]) and the ARN it is invoked as;
//! - `function`: how a function is started, stopped and given new code ([`LocalFunction`]);
//! - `process`: how a function's process is started (its environment, its logs) and retired;
//! - `invoke`: how one invocation runs and what its ending means for the result;
//! - `api`: which invocation a runtime's request gets, and what a runtime may report;
//! - `wire`: how the Runtime API's requests are read and answered over HTTP.

mod api;
mod code;
mod function;
mod invoke;
mod process;
mod spec;
mod wire;

use std::sync::{Mutex, MutexGuard, PoisonError};

pub use self::code::extract_bootstrap;
pub use self::function::LocalFunction;
pub use self::spec::FunctionSpec;

/// Lambda's limit on a synchronous response payload.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

/// The error type of an invocation whose response exceeded [`MAX_RESPONSE_BYTES`], as Lambda names it.
pub const RESPONSE_TOO_LARGE: &str = "Function.ResponseSizeTooLarge";

/// The error type of a response payload that is not JSON. Ours: Lambda would pass the bytes on,
/// but [`Invoker`](crate::Invoker) returns JSON.
pub const INVALID_RESPONSE_PAYLOAD: &str = "Sandbox.InvalidResponsePayload";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

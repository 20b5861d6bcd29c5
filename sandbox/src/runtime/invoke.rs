//! How one invocation runs: queued on the environment, offered to the runtime, raced against
//! the timeout, a crash and a stop, and what its ending means for the result and the process.

use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::api::{FunctionError, Invocation, Outcome};
use super::function::Inner;
use super::{INVALID_RESPONSE_PAYLOAD, MAX_RESPONSE_BYTES, RESPONSE_TOO_LARGE, lock};
use crate::InvokeError;

/// How an invocation ended, before it is turned into a result.
#[derive(Debug)]
enum Ending {
    Reported(Outcome),
    Exited(std::io::Result<ExitStatus>),
    TimedOut,
    Stopped,
}

/// The invocation's result, and whether its process may serve the next one.
fn settle(ending: Ending, timeout: Duration) -> (Result<serde_json::Value, InvokeError>, bool) {
    match ending {
        Ending::Reported(Outcome::Response(body)) => (parse_payload(&body), true),
        Ending::Reported(Outcome::TooLarge) => (
            Err(InvokeError::Function {
                error_type: RESPONSE_TOO_LARGE.to_owned(),
                message: format!(
                    "Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
                ),
            }),
            true,
        ),
        Ending::Reported(Outcome::Error(e)) => (Err(e.into()), true),
        Ending::Reported(Outcome::InitError(e)) => (Err(e.into()), false),
        Ending::Exited(Ok(status)) => (
            Err(InvokeError::Unavailable(format!(
                "the function's process exited during the invocation ({status})"
            ))),
            false,
        ),
        Ending::Exited(Err(e)) => (
            Err(InvokeError::Unavailable(format!(
                "waiting for the function's process: {e}"
            ))),
            false,
        ),
        Ending::TimedOut => (Err(InvokeError::Timeout(timeout)), false),
        Ending::Stopped => (Err(InvokeError::Unavailable("stopped".to_owned())), false),
    }
}

impl From<FunctionError> for InvokeError {
    fn from(e: FunctionError) -> Self {
        InvokeError::Function {
            error_type: e.error_type,
            message: e.message,
        }
    }
}

/// A response payload as JSON; an empty one is `null`.
fn parse_payload(body: &[u8]) -> Result<serde_json::Value, InvokeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_slice(body).map_err(|e| InvokeError::Function {
        error_type: INVALID_RESPONSE_PAYLOAD.to_owned(),
        message: format!("the response payload is not JSON: {e}"),
    })
}

impl Inner {
    pub(super) async fn invoke(
        self: Arc<Self>,
        event: serde_json::Value,
    ) -> Result<serde_json::Value, InvokeError> {
        let mut environment = self.environment.lock().await;
        if *self.stop.borrow() {
            return Err(InvokeError::Unavailable("stopped".to_owned()));
        }
        let (bootstrap, code_version) = {
            let code = lock(&self.code);
            (code.bootstrap.clone(), code.version)
        };
        if let Some(mut old) = environment.take() {
            if old.can_serve(code_version) {
                *environment = Some(old);
            } else {
                self.retire(old).await;
            }
        }
        if environment.is_none() {
            *environment = Some(self.spawn(&bootstrap, code_version)?);
        }
        let Some(process) = environment.as_mut() else {
            return Err(InvokeError::Unavailable("no process".to_owned()));
        };
        self.invocations.fetch_add(1, Ordering::Relaxed);

        let request_id = uuid::Uuid::new_v4().to_string();
        let deadline = Instant::now() + self.spec.timeout;
        let deadline_ms = epoch_ms(SystemTime::now() + self.spec.timeout);
        let (done, mut reported) = oneshot::channel();
        let published = self.api.publish(Invocation {
            request_id: request_id.clone(),
            event: Bytes::from(event.to_string()),
            deadline_ms,
            trace_id: trace_id(),
            delivered: false,
            done,
        });
        let ending = match published {
            Err(init_error) => Ending::Reported(Outcome::InitError(init_error)),
            Ok(()) => {
                let mut stop = self.stop.subscribe();
                tokio::select! {
                    biased;
                    outcome = &mut reported => match outcome {
                        Ok(outcome) => Ending::Reported(outcome),
                        Err(_) => Ending::Stopped,
                    },
                    _ = stop.wait_for(|stopped| *stopped) => Ending::Stopped,
                    status = process.child.wait() => match reported.try_recv() {
                        // Reported just before exiting (an init error, typically).
                        Ok(outcome) => Ending::Reported(outcome),
                        Err(_) => Ending::Exited(status),
                    },
                    () = tokio::time::sleep_until(deadline) => Ending::TimedOut,
                }
            }
        };
        self.api.withdraw(&request_id);
        tracing::debug!(function = %self.spec.name, %request_id, ?ending, "invocation ended");
        let (result, keep) = settle(ending, self.spec.timeout);
        if !keep && let Some(old) = environment.take() {
            self.retire(old).await;
        }
        result
    }
}

/// An X-Ray trace header: `Root=1-{epoch seconds}-{96 random bits};Parent={64 random bits};Sampled=0`.
fn trace_id() -> String {
    let root = uuid::Uuid::new_v4().simple().to_string();
    let parent = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        epoch_ms(SystemTime::now()) / 1000,
        &root[..24],
        &parent[..16]
    )
}

fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settles_each_ending() {
        let timeout = Duration::from_secs(3);
        let (ok, keep) = settle(
            Ending::Reported(Outcome::Response(Bytes::from_static(b"{\"a\":1}"))),
            timeout,
        );
        assert_eq!(ok.unwrap(), serde_json::json!({"a": 1}));
        assert!(keep);

        let (empty, _) = settle(Ending::Reported(Outcome::Response(Bytes::new())), timeout);
        assert_eq!(empty.unwrap(), serde_json::Value::Null);

        let (bad, keep) = settle(
            Ending::Reported(Outcome::Response(Bytes::from_static(b"<html>"))),
            timeout,
        );
        assert!(
            matches!(bad, Err(InvokeError::Function { ref error_type, .. }) if error_type == INVALID_RESPONSE_PAYLOAD)
        );
        assert!(keep);

        let (large, keep) = settle(Ending::Reported(Outcome::TooLarge), timeout);
        assert!(
            matches!(large, Err(InvokeError::Function { ref error_type, .. }) if error_type == RESPONSE_TOO_LARGE)
        );
        assert!(keep);

        let init = FunctionError {
            error_type: "Runtime.InitError".to_owned(),
            message: "no config".to_owned(),
        };
        let (init, keep) = settle(Ending::Reported(Outcome::InitError(init)), timeout);
        assert!(
            matches!(init, Err(InvokeError::Function { ref error_type, .. }) if error_type == "Runtime.InitError")
        );
        assert!(!keep);

        let (timed_out, keep) = settle(Ending::TimedOut, timeout);
        assert!(matches!(timed_out, Err(InvokeError::Timeout(t)) if t == timeout));
        assert!(!keep);

        let (stopped, keep) = settle(Ending::Stopped, timeout);
        assert!(matches!(stopped, Err(InvokeError::Unavailable(ref m)) if m == "stopped"));
        assert!(!keep);
    }

    #[test]
    fn trace_ids_look_like_x_ray_ones() {
        let id = trace_id();
        let root = id.strip_prefix("Root=1-").unwrap();
        let (time, rest) = root.split_once('-').unwrap();
        assert_eq!(time.len(), 8);
        let (random, rest) = rest.split_once(";Parent=").unwrap();
        assert_eq!(random.len(), 24);
        let (parent, sampled) = rest.split_once(';').unwrap();
        assert_eq!(parent.len(), 16);
        assert_eq!(sampled, "Sampled=0");
    }
}

//! What the Runtime API decides: which invocation a runtime's `/next` gets, which process a
//! connection belongs to, and what a runtime may report (a response, an error, an init error).

use std::pin::pin;
use std::sync::Mutex;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::sync::{Notify, oneshot};

use super::wire::{
    BodyError, Route, accepted, container_error, error_response, event_response, function_error,
    invalid_request_id, read_body, route,
};
use super::{MAX_RESPONSE_BYTES, lock};

/// What the runtime reported through the Runtime API.
#[derive(Debug)]
pub(super) enum Outcome {
    Response(Bytes),
    TooLarge,
    Error(FunctionError),
    InitError(FunctionError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FunctionError {
    pub(super) error_type: String,
    pub(super) message: String,
}

/// The Runtime API's view of the function: the one invocation there can be, and which
/// connections belong to the running process.
pub(super) struct Api {
    pub(super) arn: String,
    pub(super) state: Mutex<ApiState>,
    /// Wakes `/next` waiters when an invocation is published, the process changes or the API stops.
    pub(super) changed: Notify,
}

#[derive(Default)]
pub(super) struct ApiState {
    /// Counts process changes; a connection accepted in an earlier epoch came from a process since
    /// killed (or from before the current one started) and gets no events.
    epoch: u64,
    /// The current process has polled `/next`, which ends its init phase.
    initialized: bool,
    /// Reported by the current process before any invocation was waiting for it.
    init_error: Option<FunctionError>,
    invocation: Option<Invocation>,
    stopped: bool,
}

pub(super) struct Invocation {
    pub(super) request_id: String,
    pub(super) event: Bytes,
    pub(super) deadline_ms: u64,
    pub(super) trace_id: String,
    pub(super) delivered: bool,
    pub(super) done: oneshot::Sender<Outcome>,
}

impl Api {
    pub(super) fn epoch(&self) -> u64 {
        lock(&self.state).epoch
    }

    pub(super) fn begin_epoch(&self) {
        {
            let mut state = lock(&self.state);
            state.epoch += 1;
            state.initialized = false;
            state.init_error = None;
        }
        self.changed.notify_waiters();
    }

    pub(super) fn stop(&self) {
        lock(&self.state).stopped = true;
        self.changed.notify_waiters();
    }

    /// Offers `invocation` to the next `/next`, unless the process already failed its init.
    pub(super) fn publish(&self, invocation: Invocation) -> Result<(), FunctionError> {
        {
            let mut state = lock(&self.state);
            if let Some(init_error) = state.init_error.clone() {
                return Err(init_error);
            }
            state.invocation = Some(invocation);
        }
        self.changed.notify_waiters();
        Ok(())
    }

    pub(super) fn withdraw(&self, request_id: &str) {
        let mut state = lock(&self.state);
        if state
            .invocation
            .as_ref()
            .is_some_and(|i| i.request_id == request_id)
        {
            state.invocation = None;
        }
    }

    fn is_delivered(&self, request_id: &str) -> bool {
        lock(&self.state)
            .invocation
            .as_ref()
            .is_some_and(|i| i.delivered && i.request_id == request_id)
    }

    /// Ends the delivered invocation `request_id` with `outcome`; false if there is no such one.
    fn finish(&self, request_id: &str, outcome: Outcome) -> bool {
        let mut state = lock(&self.state);
        match state.invocation.take() {
            Some(invocation) if invocation.delivered && invocation.request_id == request_id => {
                // The invoker may have just given up (timeout, stop); nothing to tell it then.
                let _ = invocation.done.send(outcome);
                true
            }
            other => {
                state.invocation = other;
                false
            }
        }
    }

    pub(super) async fn handle(
        &self,
        epoch: u64,
        request: Request<Incoming>,
    ) -> Response<Full<Bytes>> {
        let route = route(request.method(), request.uri().path());
        match route {
            Route::Next => self.next(epoch).await,
            Route::Response(id) => {
                if !self.is_delivered(&id) {
                    return invalid_request_id(&id);
                }
                match read_body(request).await {
                    Ok(body) => {
                        if self.finish(&id, Outcome::Response(body)) {
                            accepted()
                        } else {
                            invalid_request_id(&id)
                        }
                    }
                    Err(BodyError::TooLarge) => {
                        self.finish(&id, Outcome::TooLarge);
                        error_response(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "RequestEntityTooLarge",
                            &format!(
                                "Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
                            ),
                        )
                    }
                    Err(BodyError::Read(e)) => {
                        error_response(StatusCode::BAD_REQUEST, "InvalidRequest", &e)
                    }
                }
            }
            Route::Error(id) => {
                if !self.is_delivered(&id) {
                    return invalid_request_id(&id);
                }
                let headers = request.headers().clone();
                match read_body(request).await {
                    Ok(body) => {
                        let error = function_error(&headers, &body);
                        if self.finish(&id, Outcome::Error(error)) {
                            accepted()
                        } else {
                            invalid_request_id(&id)
                        }
                    }
                    Err(BodyError::TooLarge) => error_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "RequestEntityTooLarge",
                        "error body too large",
                    ),
                    Err(BodyError::Read(e)) => {
                        error_response(StatusCode::BAD_REQUEST, "InvalidRequest", &e)
                    }
                }
            }
            Route::InitError => {
                let headers = request.headers().clone();
                let body = match read_body(request).await {
                    Ok(body) => body,
                    Err(BodyError::TooLarge) => Bytes::new(),
                    Err(BodyError::Read(e)) => {
                        return error_response(StatusCode::BAD_REQUEST, "InvalidRequest", &e);
                    }
                };
                self.init_error(epoch, function_error(&headers, &body))
            }
            Route::MethodNotAllowed => error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "method not allowed on this path",
            ),
            Route::NotFound => error_response(
                StatusCode::NOT_FOUND,
                "NotFound",
                "no such Runtime API path",
            ),
        }
    }

    /// Long-polls for the invocation; a process of an earlier epoch, or any once stopped, gets 500.
    async fn next(&self, epoch: u64) -> Response<Full<Bytes>> {
        loop {
            let mut changed = pin!(self.changed.notified());
            changed.as_mut().enable();
            {
                let mut state = lock(&self.state);
                if state.stopped || state.epoch != epoch {
                    return container_error();
                }
                state.initialized = true;
                if let Some(invocation) = state.invocation.as_mut().filter(|i| !i.delivered) {
                    invocation.delivered = true;
                    return event_response(invocation, &self.arn);
                }
            }
            changed.await;
        }
    }

    fn init_error(&self, epoch: u64, error: FunctionError) -> Response<Full<Bytes>> {
        let mut state = lock(&self.state);
        if state.stopped || state.epoch != epoch {
            return container_error();
        }
        if state.initialized {
            return error_response(
                StatusCode::FORBIDDEN,
                "InvalidStateTransition",
                "init/error after the runtime polled /next",
            );
        }
        tracing::debug!(error_type = %error.error_type, "init error");
        match state.invocation.take() {
            Some(invocation) => {
                let _ = invocation.done.send(Outcome::InitError(error));
            }
            None => state.init_error = Some(error),
        }
        accepted()
    }
}

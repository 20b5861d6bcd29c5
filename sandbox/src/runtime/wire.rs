//! How the Runtime API is spoken on the wire: the routes of its paths, request bodies read within
//! Lambda's limit, the error a runtime reports, the responses' shapes, and the connections served.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::MAX_RESPONSE_BYTES;
use super::api::{Api, FunctionError, Invocation};

const API_PREFIX: &str = "/2018-06-01/runtime/";

/// A Runtime API request, from its method and path.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Route {
    Next,
    Response(String),
    Error(String),
    InitError,
    MethodNotAllowed,
    NotFound,
}

pub(super) fn route(method: &Method, path: &str) -> Route {
    let Some(rest) = path.strip_prefix(API_PREFIX) else {
        return Route::NotFound;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let (route, allowed) = match segments.as_slice() {
        ["invocation", "next"] => (Route::Next, Method::GET),
        ["invocation", id, "response"] if !id.is_empty() => {
            (Route::Response((*id).to_owned()), Method::POST)
        }
        ["invocation", id, "error"] if !id.is_empty() => {
            (Route::Error((*id).to_owned()), Method::POST)
        }
        ["init", "error"] => (Route::InitError, Method::POST),
        _ => return Route::NotFound,
    };
    if *method == allowed {
        route
    } else {
        Route::MethodNotAllowed
    }
}

/// The error a runtime reported: type and message from the body, the type falling back to the
/// `Lambda-Runtime-Function-Error-Type` header, then to Lambda's `Unhandled`.
pub(super) fn function_error(headers: &HeaderMap, body: &[u8]) -> FunctionError {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ErrorBody {
        error_type: Option<String>,
        error_message: Option<String>,
    }
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let from_header = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let (body_type, body_message) =
        parsed.map_or((None, None), |b| (b.error_type, b.error_message));
    FunctionError {
        error_type: body_type
            .filter(|t| !t.is_empty())
            .or(from_header)
            .unwrap_or_else(|| "Unhandled".to_owned()),
        message: body_message.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
    }
}

pub(super) enum BodyError {
    TooLarge,
    Read(String),
}

pub(super) async fn read_body(request: Request<Incoming>) -> Result<Bytes, BodyError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
        return Err(BodyError::TooLarge);
    }
    match Limited::new(request.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Read(e.to_string())),
    }
}

pub(super) fn event_response(invocation: &Invocation, arn: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header("Lambda-Runtime-Aws-Request-Id", &invocation.request_id)
        .header("Lambda-Runtime-Deadline-Ms", invocation.deadline_ms)
        .header("Lambda-Runtime-Invoked-Function-Arn", arn)
        .header("Lambda-Runtime-Trace-Id", &invocation.trace_id)
        .body(Full::new(invocation.event.clone()))
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR))
}

pub(super) fn accepted() -> Response<Full<Bytes>> {
    let body = serde_json::json!({"status": "OK"}).to_string();
    json_response(StatusCode::ACCEPTED, body)
}

pub(super) fn invalid_request_id(id: &str) -> Response<Full<Bytes>> {
    error_response(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        &format!("Invalid request ID: {id}"),
    )
}

pub(super) fn container_error() -> Response<Full<Bytes>> {
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Runtime.ContainerError",
        "Container error. Non-recoverable state. The runtime should exit promptly.",
    )
}

pub(super) fn error_response(
    status: StatusCode,
    error_type: &str,
    message: &str,
) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"errorMessage": message, "errorType": error_type}).to_string();
    json_response(status, body)
}

fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| plain(status))
}

fn plain(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// Accepts Runtime API connections until aborted; each belongs to the epoch it was accepted in.
pub(super) async fn serve(listener: TcpListener, api: Arc<Api>) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, typically: wait instead of spinning.
                tracing::warn!(error = %e, "accepting a Runtime API connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let epoch = api.epoch();
        connections.spawn(serve_connection(stream, Arc::clone(&api), epoch));
    }
}

async fn serve_connection(stream: TcpStream, api: Arc<Api>, epoch: u64) {
    let service = hyper::service::service_fn(move |request| {
        let api = Arc::clone(&api);
        async move { Ok::<_, Infallible>(api.handle(epoch, request).await) }
    });
    // Header names as Lambda writes them, for runtimes that match them case-sensitively.
    if let Err(e) = http1::Builder::new()
        .title_case_headers(true)
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(error = %e, "Runtime API connection");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_the_runtime_api() {
        let id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";
        assert_eq!(
            route(&Method::GET, "/2018-06-01/runtime/invocation/next"),
            Route::Next
        );
        assert_eq!(
            route(
                &Method::POST,
                &format!("/2018-06-01/runtime/invocation/{id}/response")
            ),
            Route::Response(id.to_owned())
        );
        assert_eq!(
            route(
                &Method::POST,
                &format!("/2018-06-01/runtime/invocation/{id}/error")
            ),
            Route::Error(id.to_owned())
        );
        assert_eq!(
            route(&Method::POST, "/2018-06-01/runtime/init/error"),
            Route::InitError
        );
        assert_eq!(
            route(&Method::POST, "/2018-06-01/runtime/invocation/next"),
            Route::MethodNotAllowed
        );
        assert_eq!(
            route(
                &Method::GET,
                &format!("/2018-06-01/runtime/invocation/{id}/response")
            ),
            Route::MethodNotAllowed
        );
        for path in [
            "/2018-06-01/runtime/invocation//response",
            "/2018-06-01/runtime/invocation/next/",
            "/2020-01-01/runtime/invocation/next",
            "/2018-06-01/runtime/invocation/a/b/response",
            "/",
        ] {
            assert_eq!(route(&Method::GET, path), Route::NotFound, "{path}");
        }
    }

    #[test]
    fn error_type_comes_from_the_body_then_the_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "lambda-runtime-function-error-type",
            "unhandled".parse().unwrap(),
        );
        let body = br#"{"errorType":"MyError","errorMessage":"boom","stackTrace":[]}"#;
        assert_eq!(
            function_error(&headers, body),
            FunctionError {
                error_type: "MyError".to_owned(),
                message: "boom".to_owned()
            }
        );
        assert_eq!(
            function_error(&headers, b"not json"),
            FunctionError {
                error_type: "unhandled".to_owned(),
                message: "not json".to_owned()
            }
        );
        assert_eq!(
            function_error(&HeaderMap::new(), b"{}").error_type,
            "Unhandled"
        );
    }
}

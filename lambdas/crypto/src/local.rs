//! The local HTTP server: the same service over plain HTTP/1.1 on a loopback address.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use ssm_core::api::ApiError;
use tokio::net::TcpListener;

use crate::{HttpResponse, Service};

/// Time allowed to receive a request's headers and body.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let service = service.clone();
        tokio::spawn(async move {
            let handler = service_fn(move |req| {
                let service = service.clone();
                async move { Ok::<_, std::convert::Infallible>(respond(&service, req, peer).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), handler);
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection closed with an error");
            }
        });
    }
}

async fn respond(
    service: &Service,
    request: hyper::Request<Incoming>,
    _peer: SocketAddr,
) -> hyper::Response<Full<Bytes>> {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let limit = service.limits().max_body();
    let body = tokio::time::timeout(
        READ_TIMEOUT,
        Limited::new(request.into_body(), limit).collect(),
    )
    .await;
    let response = match body {
        Ok(Ok(collected)) => {
            service
                .handle(&method, &path, &collected.to_bytes(), None)
                .await
        }
        Ok(Err(error))
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            error_response(&ApiError::body_too_large(limit))
        }
        Ok(Err(_)) => error_response(&ApiError::bad_request("the request body could not be read")),
        Err(_) => error_response(&ApiError::new(
            408,
            "request_timeout",
            "request body not received in time",
        )),
    };
    let mut builder = hyper::Response::builder()
        .status(response.status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store");
    if let (405, Some(allow)) = (response.status, ssm_core::api::Route::allow_header(&path)) {
        builder = builder.header("allow", allow);
    }
    builder
        .body(Full::new(Bytes::from(response.body)))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
}

fn error_response(error: &ApiError) -> HttpResponse {
    HttpResponse {
        status: error.status,
        body: error.json_body(),
    }
}

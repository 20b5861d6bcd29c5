//! How a request is handled: matched to a route, its body size checked, authorized when the
//! route asks for IAM, turned into an event for the route's function, and the function's answer
//! (or its failure) turned into the reply, all within the integration timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use chrono::Utc;
use http::header::CONTENT_LENGTH;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;

use super::event::{EventContext, build_event};
use super::response::{Reply, integration_reply};
use super::routes::RoutePattern;
use super::{GatewayConfig, INTEGRATION_TIMEOUT, Principals};
use crate::{InvokeError, Invoker};

/// The configuration, compiled for serving.
pub(super) struct Gateway {
    pub(super) api_id: String,
    pub(super) stage: String,
    routes: Vec<CompiledRoute>,
    pub(super) account_id: String,
    pub(super) region: String,
    pub(super) principals: Arc<dyn Principals>,
    max_body: usize,
    domain_name: String,
    port: u16,
    requests: Arc<AtomicU64>,
}

struct CompiledRoute {
    key: String,
    pattern: RoutePattern,
    target: Arc<dyn Invoker>,
    iam: bool,
}

impl Gateway {
    pub(super) fn new(
        config: GatewayConfig,
        local_addr: SocketAddr,
        requests: Arc<AtomicU64>,
    ) -> Self {
        let routes = config
            .routes
            .into_iter()
            .filter_map(|route| match RoutePattern::parse(&route.route_key) {
                Some(pattern) => Some(CompiledRoute {
                    key: route.route_key,
                    pattern,
                    target: route.target,
                    iam: route.iam,
                }),
                None => {
                    tracing::warn!(route_key = %route.route_key, "unparsable route key; it never matches");
                    None
                }
            })
            .collect();
        Self {
            api_id: config.api_id,
            stage: config.stage,
            routes,
            account_id: config.account_id,
            region: config.region,
            principals: config.principals,
            max_body: config.max_body,
            domain_name: local_addr.to_string(),
            port: local_addr.port(),
            requests,
        }
    }

    pub(super) async fn handle(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Full<Bytes>> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let request_id = new_request_id();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let reply = tokio::time::timeout(
            INTEGRATION_TIMEOUT,
            self.dispatch(request, peer, &request_id),
        )
        .await
        .unwrap_or_else(|_| Reply::error(StatusCode::SERVICE_UNAVAILABLE));
        tracing::info!(%request_id, %method, %path, status = reply.status.as_u16(), "request");
        reply.into_response(&request_id)
    }

    async fn dispatch(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
        request_id: &str,
    ) -> Reply {
        let now = Utc::now();
        let (parts, body) = request.into_parts();
        let Some((found, route_path)) = self.find_route(parts.method.as_str(), parts.uri.path())
        else {
            return Reply::error(StatusCode::NOT_FOUND);
        };
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.max_body as u64) {
            return Reply::error(StatusCode::PAYLOAD_TOO_LARGE);
        }
        let body = match Limited::new(body, self.max_body).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
                return Reply::error(StatusCode::PAYLOAD_TOO_LARGE);
            }
            Err(error) => {
                tracing::debug!(%error, "could not read the request body");
                return Reply::error(StatusCode::BAD_REQUEST);
            }
        };
        let route = found.route;
        let caller = if route.iam {
            match self
                .authorize(&parts, route_path.as_str(), &body, now, request_id)
                .await
            {
                Ok(caller) => Some(caller),
                Err(refusal) => return refusal,
            }
        } else {
            None
        };
        let context = EventContext {
            route_key: &route.key,
            account_id: &self.account_id,
            path_parameters: found.path_parameters,
            api_id: &self.api_id,
            stage: &self.stage,
            domain_name: &self.domain_name,
            port: self.port,
            source_ip: peer.ip().to_string(),
            request_id,
            now,
            authorizer: caller.as_ref(),
        };
        let event = build_event(&parts, &body, &context);
        match route.target.invoke(event).await {
            Ok(payload) => integration_reply(payload).unwrap_or_else(|error| {
                tracing::warn!(%request_id, %error, "malformed Lambda response");
                Reply::error(StatusCode::INTERNAL_SERVER_ERROR)
            }),
            Err(error) => {
                tracing::warn!(%request_id, %error, "integration failed");
                Reply::error(invoke_error_status(&error))
            }
        }
    }

    /// The most specific route for `method` and `path`, and the path after the stage's segment.
    fn find_route(&self, method: &str, path: &str) -> Option<(Found<'_>, String)> {
        let path = if self.stage == "$default" {
            path
        } else {
            let rest = path.strip_prefix('/')?.strip_prefix(self.stage.as_str())?;
            match rest {
                "" => "/",
                rest if rest.starts_with('/') => rest,
                _ => return None,
            }
        };
        let (route, (_, path_parameters)) = self
            .routes
            .iter()
            .filter_map(|route| Some((route, route.pattern.matches(method, path)?)))
            .min_by(|(_, (a, _)), (_, (b, _))| a.cmp(b))?;
        Some((
            Found {
                route,
                path_parameters,
            },
            path.to_owned(),
        ))
    }
}

struct Found<'a> {
    route: &'a CompiledRoute,
    path_parameters: Vec<(String, String)>,
}

/// What API Gateway answers when the integration has no response payload.
///
/// Lambda reports the function's own timeout as a function error (`Task timed out`), which API
/// Gateway turns into a 500; only an invocation outlasting the 30 s integration timeout is a 503.
fn invoke_error_status(error: &InvokeError) -> StatusCode {
    match error {
        InvokeError::Timeout(after) if *after >= INTEGRATION_TIMEOUT => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        InvokeError::Function { .. } | InvokeError::Timeout(_) | InvokeError::Unavailable(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// An id shaped as API Gateway's: 16 base64 characters.
fn new_request_id() -> String {
    let uuid = uuid::Uuid::new_v4();
    let bytes = uuid.as_bytes();
    STANDARD.encode(bytes.get(..11).unwrap_or(bytes))
}

//! The deployed HTTP API served on 127.0.0.1 as API Gateway (HTTP API) serves it.
//!
//! Each request is matched to a route, turned into a Lambda proxy event in payload format 2.0, and
//! the function's response payload is turned back into an HTTP response, as
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html>
//! describes.
//!
//! # The event (payload format 2.0)
//!
//! ```text
//! version                "2.0"
//! routeKey               the matched route's key, "POST /v1/encrypt" or "$default"
//! rawPath                the path as sent (with a named stage, it starts with "/{stage}")
//! rawQueryString         the query as sent, "" when there is none
//! cookies                each `name=value` of every Cookie header; the Cookie header is dropped
//! headers                lower-case names; a repeated header's values joined with ","; plus
//!                        x-forwarded-for, -port and -proto, as API Gateway adds them
//! queryStringParameters  percent-decoded; a repeated key's values joined with ","
//! pathParameters         "{name}" and "{name+}" values, percent-decoded
//! requestContext         accountId, apiId, authorizer.iam (IAM routes only), domainName,
//!                        domainPrefix, http {method, path, protocol, sourceIp, userAgent},
//!                        requestId, routeKey, stage, time ("12/Mar/2020:19:03:58 +0000"), timeEpoch
//! body                   UTF-8 text for text and JSON content types, base64 otherwise
//! isBase64Encoded        whether `body` is base64
//! ```
//!
//! `cookies`, `queryStringParameters`, `pathParameters` and `body` are left out when empty, and
//! `stageVariables` always is (the sandbox has none).
//!
//! # The response
//!
//! A payload object with a `statusCode` is read as `{statusCode, headers, multiValueHeaders,
//! cookies, body, isBase64Encoded}`; any other payload is inferred as a 200 `application/json`
//! response whose body is the payload's JSON (a string payload is sent as it is). A payload that
//! cannot be read that way is a 500, as are function errors. Errors have API Gateway's bodies:
//!
//! | what happened                                                     | status | `message`                  |
//! |-------------------------------------------------------------------|--------|----------------------------|
//! | no route matches                                                  | 404    | `Not Found`                |
//! | IAM route: unsigned, mis-signed, stale, unknown key, not allowed  | 403    | as [`auth_refusal`] says   |
//! | body over `max_body`                                              | 413    | `Request Entity Too Large` |
//! | function error, malformed payload, function unavailable           | 500    | `Internal Server Error`    |
//! | the function's own timeout under 30 s (Lambda: a function error)  | 500    | `Internal Server Error`    |
//! | no answer within [`INTEGRATION_TIMEOUT`] (30 s)                    | 503    | `Service Unavailable`      |
//!
//! Every response carries `apigw-requestid`, the event's `requestContext.requestId`.
//!
//! # IAM authorization (routes with `AuthorizationType: AWS_IAM`)
//!
//! As API Gateway's IAM authorizer: the request's SigV4 signature is verified for the
//! `execute-api` service in the gateway's region ([`ssm_core::sigv4`]: the canonical request with
//! the payload's own hash, `X-Amz-Date` within 15 minutes, the credential scope, the session token),
//! the secret found by access key id through [`Principals`] (the sandbox issues callers through
//! moto's IAM: [`crate::callers`]), then the principal's identity policies, read at request time,
//! are evaluated for `execute-api:Invoke` on
//! `arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/{METHOD}/{path}` ([`ssm_core::iam`]).
//! The caller then goes into `requestContext.authorizer.iam`. Refusals are 403s with the body and
//! `x-amzn-ErrorType` AWS answers with (what each says, and where that comes from, is on
//! [`auth_refusal`]).
//!
//! # What the sandbox does not do
//!
//! Resource policies, permission boundaries, session policies, SCPs and `Condition` keys are not
//! evaluated (an `Allow` with a condition never applies, a `Deny` with one always does), nor are
//! query-string (presigned) signatures. Throttling, CORS, custom domains, stage variables and
//! other authorizer types are not emulated.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HeaderName, HeaderValue, SET_COOKIE};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Map, Value, json};
use ssm_core::iam::{self, Decision, PolicyDocument};
pub use ssm_core::sigv4::SecretAccessKey;
use ssm_core::sigv4::{Expected, HttpRequest, Presented, SigV4Error};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::{InvokeError, Invoker};

/// API Gateway's payload limit for HTTP APIs (10 MiB); the usual [`GatewayConfig::max_body`].
pub const MAX_BODY: usize = 10 * 1024 * 1024;

/// API Gateway's integration timeout for HTTP APIs: a request without an answer by then is a 503.
pub const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client may take to send its request line and headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`GatewayHandle::shutdown`] lets requests in flight finish before dropping them.
const DRAIN_TIMEOUT: Duration = INTEGRATION_TIMEOUT;

/// A route of the HTTP API and the function it integrates with (payload format 2.0).
pub struct Route {
    /// `"POST /v1/encrypt"`, `"ANY /items/{id}"`, `"GET /files/{proxy+}"` or `"$default"`.
    /// A key that does not parse is logged and never matches.
    pub route_key: String,
    /// The integration's function.
    pub target: Arc<dyn Invoker>,
    /// Whether the route uses AWS_IAM authorization (adds `requestContext.authorizer.iam`).
    pub iam: bool,
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("route_key", &self.route_key)
            .field("iam", &self.iam)
            .finish_non_exhaustive()
    }
}

/// The IAM identity that signed a request, as `requestContext.authorizer.iam` carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamCaller {
    /// `accessKey`: the access key id the request was signed with.
    pub access_key: String,
    /// `accountId`: the caller's account.
    pub account_id: String,
    /// `callerId`: `AIDA...` for a user, `AROA...:session` for an assumed role.
    pub caller_id: String,
    /// `userArn`: the caller's ARN (what the Crypto Lambda authorizes on).
    pub user_arn: String,
    /// `userId`: as `callerId` for most principals.
    pub user_id: String,
}

/// A principal known by one of its access key ids, as IAM holds it when the request comes.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Who it is (`access_key` is the key id looked up).
    pub caller: IamCaller,
    pub secret: SecretAccessKey,
    /// The session token issued with temporary credentials; `None` for an IAM user's key.
    pub session_token: Option<String>,
    /// Its identity policies (JSON documents): inline and attached.
    pub policies: Vec<String>,
}

/// What [`Principals::principal`] returns.
pub type PrincipalFuture = Pin<Box<dyn Future<Output = anyhow::Result<Option<Principal>>> + Send>>;

/// Where the gateway finds the principal behind an access key id (`None`: no such active key).
/// Asked on every IAM-authorized request, so a policy changed in IAM applies to the next one.
pub trait Principals: Send + Sync {
    fn principal(&self, access_key_id: &str) -> PrincipalFuture;
}

/// One HTTP API stage: its routes and who may call it.
pub struct GatewayConfig {
    /// `requestContext.apiId`, also `domainPrefix` (as on the `execute-api` domain).
    pub api_id: String,
    /// `"$default"` serves routes at the root; any other stage name is the path's first segment.
    pub stage: String,
    pub routes: Vec<Route>,
    /// The API's account (`requestContext.accountId`, and the account of its route ARNs).
    pub account_id: String,
    /// The region requests are signed for and the route ARNs name.
    pub region: String,
    /// The principals IAM routes authorize.
    pub principals: Arc<dyn Principals>,
    /// The largest request body accepted; [`MAX_BODY`] as API Gateway.
    pub max_body: usize,
}

impl fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("api_id", &self.api_id)
            .field("stage", &self.stage)
            .field("routes", &self.routes)
            .field("account_id", &self.account_id)
            .field("region", &self.region)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

/// A running gateway. Dropping it stops accepting connections and lets requests in flight finish.
#[derive(Debug)]
pub struct GatewayHandle {
    local_addr: SocketAddr,
    requests: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl GatewayHandle {
    /// The address the gateway listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://127.0.0.1:PORT`, the API's invoke URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// How many requests have been received, answered or not.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Stops accepting connections and waits for requests in flight (at most 30 s).
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::warn!(%error, "the gateway's accept loop failed");
        }
    }
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Serves `config` on `listener` until the returned handle is shut down or dropped.
pub async fn serve(listener: TcpListener, config: GatewayConfig) -> GatewayHandle {
    let local_addr = listener.local_addr().unwrap_or_else(|error| {
        tracing::warn!(%error, "the gateway's listener has no local address");
        SocketAddr::from(([127, 0, 0, 1], 0))
    });
    let requests = Arc::new(AtomicU64::new(0));
    let gateway = Arc::new(Gateway::new(config, local_addr, Arc::clone(&requests)));
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, gateway, stopped));
    tracing::info!(%local_addr, "API Gateway emulation listening");
    GatewayHandle {
        local_addr,
        requests,
        stop,
        task: Some(task),
    }
}

async fn accept_loop(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // A send or the handle's drop (Err) both mean stop.
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, Arc::clone(&gateway), stop.clone()));
                }
                Err(error) => {
                    // EMFILE and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; dropping them");
        connections.abort_all();
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    gateway: Arc<Gateway>,
    mut stop: watch::Receiver<bool>,
) {
    let service = service_fn(move |request| {
        let gateway = Arc::clone(&gateway);
        async move { Ok::<_, Infallible>(gateway.handle(request, peer).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

/// The configuration, compiled for serving.
struct Gateway {
    api_id: String,
    stage: String,
    routes: Vec<CompiledRoute>,
    account_id: String,
    region: String,
    principals: Arc<dyn Principals>,
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
    fn new(config: GatewayConfig, local_addr: SocketAddr, requests: Arc<AtomicU64>) -> Self {
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

    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
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

    /// API Gateway's IAM authorizer: the signature, then the caller's identity policies for
    /// `execute-api:Invoke` on the route's ARN (`path` is the path after the stage).
    async fn authorize(
        &self,
        parts: &http::request::Parts,
        path: &str,
        body: &[u8],
        now: DateTime<Utc>,
        request_id: &str,
    ) -> Result<IamCaller, Reply> {
        let owned: Vec<(&str, String)> = parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let headers: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let request = HttpRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or_default(),
            headers: &headers,
            body,
        };
        let expected = Expected {
            region: &self.region,
            service: "execute-api",
            now,
            max_skew: chrono::Duration::minutes(15),
        };
        let presented = Presented::read(request, &expected).map_err(|e| auth_refusal(&e))?;
        let principal = match self.principals.principal(presented.access_key_id()).await {
            Ok(Some(principal)) => principal,
            Ok(None) => return Err(auth_refusal(&SigV4Error::UnknownCredentials)),
            Err(error) => {
                tracing::warn!(%request_id, error = %format!("{error:#}"), "could not read the caller from IAM");
                return Err(Reply::error(StatusCode::INTERNAL_SERVER_ERROR));
            }
        };
        presented
            .verify(&principal.secret, principal.session_token.as_deref())
            .map_err(|e| auth_refusal(&e))?;
        let resource = iam::execute_api_arn(
            &self.region,
            &self.account_id,
            &self.api_id,
            &self.stage,
            parts.method.as_str(),
            path,
        );
        let mut documents = Vec::with_capacity(principal.policies.len());
        for policy in &principal.policies {
            match PolicyDocument::parse(policy) {
                Ok(document) => documents.push(document),
                // IAM never holds such a document; refuse rather than guess.
                Err(error) => {
                    tracing::warn!(%request_id, %error, user = %principal.caller.user_arn, "unreadable identity policy: access denied");
                    return Err(access_denied(&principal.caller.user_arn, &resource, true));
                }
            }
        }
        let mut caller = principal.caller;
        caller.access_key = presented.access_key_id().to_owned();
        match iam::evaluate(&documents, iam::INVOKE_ACTION, &resource) {
            Decision::Allow => Ok(caller),
            Decision::ExplicitDeny => Err(access_denied(&caller.user_arn, &resource, true)),
            Decision::ImplicitDeny => Err(access_denied(&caller.user_arn, &resource, false)),
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

/// API Gateway's 403 for a request its IAM authorizer refuses.
///
/// What API Gateway answers, per the AWS Knowledge Center articles "How do I troubleshoot
/// signature mismatch errors when making SigV4 signed requests with IAM authentication to API
/// Gateway?" (repost.aws/knowledge-center/api-gateway-iam-sigv4-mismatch) and "...HTTP 403
/// errors from API Gateway", and the bodies quoted from live APIs in public issues (e.g.
/// mhart/aws4#33, postmanlabs/postman-app-support#1663, for execute-api):
/// - unsigned: `Missing Authentication Token` on REST APIs; an HTTP API, which answers an
///   unknown route 404 `Not Found` rather than with that text, answers `{"message":"Forbidden"}`;
/// - unknown access key: `The security token included in the request is invalid.`;
/// - wrong secret or signing: `The request signature we calculated does not match ...` followed
///   by the canonical request and string to sign API Gateway expected;
/// - stale: `Signature expired: {date} is now earlier than ...`;
/// - not allowed: `User: {arn} is not authorized to perform: execute-api:Invoke on resource: {arn}`
///   and why, as IAM words it.
///
/// Each carries `x-amzn-ErrorType`, as AWS services do.
fn auth_refusal(error: &SigV4Error) -> Reply {
    let message = match error {
        SigV4Error::Missing => "Forbidden".to_owned(),
        other => other.to_string(),
    };
    Reply::forbidden(message, error.error_type())
}

fn access_denied(user_arn: &str, resource: &str, explicit: bool) -> Reply {
    let why = if explicit {
        "with an explicit deny in an identity-based policy"
    } else {
        "because no identity-based policy allows the execute-api:Invoke action"
    };
    Reply::forbidden(
        format!(
            "User: {user_arn} is not authorized to perform: execute-api:Invoke on resource: {resource} {why}"
        ),
        "AccessDeniedException",
    )
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

// ---- Routes ------------------------------------------------------------------------------------

/// A parsed route key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RoutePattern {
    Default,
    Path {
        /// `None` for `ANY`.
        method: Option<String>,
        segments: Vec<Segment>,
        /// The `{name+}` variable closing the path, if any.
        greedy: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Variable(String),
}

/// How specific a match is: smaller wins. A path without a greedy variable beats one with; then,
/// segment by segment, a literal beats a variable, which beats the greedy variable; then a method
/// beats `ANY`; `$default` comes last.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Specificity {
    Path {
        greedy: bool,
        /// 0 literal, 1 variable, 2 greedy variable, per segment.
        segments: Vec<u8>,
        any_method: bool,
    },
    Default,
}

impl RoutePattern {
    fn parse(key: &str) -> Option<Self> {
        if key == "$default" {
            return Some(Self::Default);
        }
        let (method, path) = key.split_once(' ')?;
        let method = match method {
            "ANY" => None,
            method if !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase()) => {
                Some(method.to_owned())
            }
            _ => return None,
        };
        let path = path.strip_prefix('/')?;
        let mut segments = Vec::new();
        let mut greedy = None;
        let mut parts = path.split('/').filter(|_| !path.is_empty()).peekable();
        while let Some(part) = parts.next() {
            let variable = part.strip_prefix('{').and_then(|p| p.strip_suffix('}'));
            match variable {
                Some(name) if name.ends_with('+') => {
                    let name = name.trim_end_matches('+');
                    if name.is_empty() || parts.peek().is_some() {
                        return None;
                    }
                    greedy = Some(name.to_owned());
                }
                Some("") => return None,
                Some(name) => segments.push(Segment::Variable(name.to_owned())),
                None if part.contains(['{', '}']) => return None,
                None => segments.push(Segment::Literal(part.to_owned())),
            }
        }
        Some(Self::Path {
            method,
            segments,
            greedy,
        })
    }

    /// Whether a request matches, how specifically, and the path parameters it binds.
    fn matches(&self, method: &str, path: &str) -> Option<(Specificity, Vec<(String, String)>)> {
        let Self::Path {
            method: route_method,
            segments,
            greedy,
        } = self
        else {
            return Some((Specificity::Default, Vec::new()));
        };
        if route_method.as_deref().is_some_and(|m| m != method) {
            return None;
        }
        let path = path.strip_prefix('/')?;
        let mut request: Vec<&str> = if path.is_empty() {
            Vec::new()
        } else {
            path.split('/').collect()
        };
        let rest = match greedy {
            Some(_) if request.len() > segments.len() => {
                request.split_off(segments.len()).join("/")
            }
            Some(_) => return None,
            None if request.len() == segments.len() => String::new(),
            None => return None,
        };
        let mut parameters = Vec::new();
        let mut kinds = Vec::with_capacity(segments.len() + 1);
        for (segment, part) in segments.iter().zip(&request) {
            match segment {
                Segment::Literal(literal) if literal == part => kinds.push(0),
                Segment::Variable(name) if !part.is_empty() => {
                    kinds.push(1);
                    parameters.push((name.clone(), percent_decode(part)));
                }
                _ => return None,
            }
        }
        if let Some(name) = greedy {
            if rest.is_empty() {
                return None;
            }
            kinds.push(2);
            parameters.push((name.clone(), percent_decode(&rest)));
        }
        let specificity = Specificity::Path {
            greedy: greedy.is_some(),
            segments: kinds,
            any_method: route_method.is_none(),
        };
        Some((specificity, parameters))
    }
}

// ---- The event ---------------------------------------------------------------------------------

/// What the event needs besides the request itself.
struct EventContext<'a> {
    route_key: &'a str,
    /// The API's account: the sandbox deploys and calls from one account, the caller's.
    account_id: &'a str,
    path_parameters: Vec<(String, String)>,
    api_id: &'a str,
    stage: &'a str,
    domain_name: &'a str,
    port: u16,
    source_ip: String,
    request_id: &'a str,
    now: DateTime<Utc>,
    authorizer: Option<&'a IamCaller>,
}

/// The payload format 2.0 event for a request.
fn build_event(parts: &http::request::Parts, body: &[u8], context: &EventContext<'_>) -> Value {
    let path = parts.uri.path();
    let raw_query = parts.uri.query().unwrap_or_default();
    let (headers, cookies) = event_headers(&parts.headers, &context.source_ip, context.port);
    let user_agent = headers
        .get("user-agent")
        .cloned()
        .unwrap_or_else(|| json!(""));

    let mut http = Map::new();
    http.insert("method".into(), json!(parts.method.as_str()));
    http.insert("path".into(), json!(path));
    http.insert("protocol".into(), json!(protocol(parts.version)));
    http.insert("sourceIp".into(), json!(context.source_ip));
    http.insert("userAgent".into(), user_agent);

    let mut request_context = Map::new();
    request_context.insert("accountId".into(), json!(context.account_id));
    request_context.insert("apiId".into(), json!(context.api_id));
    if let Some(caller) = context.authorizer {
        request_context.insert(
            "authorizer".into(),
            json!({
                "iam": {
                    "accessKey": caller.access_key,
                    "accountId": caller.account_id,
                    "callerId": caller.caller_id,
                    "cognitoIdentity": null,
                    "principalOrgId": null,
                    "userArn": caller.user_arn,
                    "userId": caller.user_id,
                }
            }),
        );
    }
    request_context.insert("domainName".into(), json!(context.domain_name));
    request_context.insert("domainPrefix".into(), json!(context.api_id));
    request_context.insert("http".into(), Value::Object(http));
    request_context.insert("requestId".into(), json!(context.request_id));
    request_context.insert("routeKey".into(), json!(context.route_key));
    request_context.insert("stage".into(), json!(context.stage));
    request_context.insert(
        "time".into(),
        json!(context.now.format("%d/%b/%Y:%H:%M:%S +0000").to_string()),
    );
    request_context.insert("timeEpoch".into(), json!(context.now.timestamp_millis()));

    let mut event = Map::new();
    event.insert("version".into(), json!("2.0"));
    event.insert("routeKey".into(), json!(context.route_key));
    event.insert("rawPath".into(), json!(path));
    event.insert("rawQueryString".into(), json!(raw_query));
    if !cookies.is_empty() {
        event.insert("cookies".into(), json!(cookies));
    }
    event.insert("headers".into(), Value::Object(headers));
    let query = query_parameters(raw_query);
    if !query.is_empty() {
        event.insert("queryStringParameters".into(), Value::Object(query));
    }
    if !context.path_parameters.is_empty() {
        let parameters: Map<String, Value> = context
            .path_parameters
            .iter()
            .map(|(name, value)| (name.clone(), json!(value)))
            .collect();
        event.insert("pathParameters".into(), Value::Object(parameters));
    }
    event.insert("requestContext".into(), Value::Object(request_context));
    let is_base64 = if body.is_empty() {
        false
    } else {
        let text = is_text(&parts.headers)
            .then(|| std::str::from_utf8(body).ok())
            .flatten();
        match text {
            Some(text) => {
                event.insert("body".into(), json!(text));
                false
            }
            None => {
                event.insert("body".into(), json!(STANDARD.encode(body)));
                true
            }
        }
    };
    event.insert("isBase64Encoded".into(), json!(is_base64));
    Value::Object(event)
}

/// `headers` (repeated names joined with ",") and `cookies` (each pair of every Cookie header),
/// with the `x-forwarded-*` headers API Gateway adds.
fn event_headers(
    headers: &HeaderMap,
    source_ip: &str,
    port: u16,
) -> (Map<String, Value>, Vec<String>) {
    let mut joined: Vec<(String, String)> = Vec::new();
    let mut cookies = Vec::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        if name == COOKIE {
            cookies.extend(
                value
                    .split(';')
                    .map(str::trim)
                    .filter(|cookie| !cookie.is_empty())
                    .map(str::to_owned),
            );
            continue;
        }
        match joined
            .iter_mut()
            .find(|(existing, _)| existing == name.as_str())
        {
            Some((_, values)) => {
                values.push(',');
                values.push_str(&value);
            }
            None => joined.push((name.as_str().to_owned(), value.into_owned())),
        }
    }
    let mut map: Map<String, Value> = joined
        .into_iter()
        .map(|(name, value)| (name, json!(value)))
        .collect();
    let forwarded_for = match map.get("x-forwarded-for").and_then(Value::as_str) {
        Some(existing) => format!("{existing}, {source_ip}"),
        None => source_ip.to_owned(),
    };
    map.insert("x-forwarded-for".into(), json!(forwarded_for));
    map.insert("x-forwarded-port".into(), json!(port.to_string()));
    map.insert("x-forwarded-proto".into(), json!("http"));
    (map, cookies)
}

/// `queryStringParameters`: percent-decoded, a repeated key's values joined with ",".
fn query_parameters(raw: &str) -> Map<String, Value> {
    let mut parameters = Map::new();
    for pair in raw.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (percent_decode(key), percent_decode(value));
        match parameters.get_mut(&key) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                parameters.insert(key, Value::String(value));
            }
        }
    }
    parameters
}

/// Decodes `%XX` escapes; anything else, including a bad escape, is kept as it is.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let escaped = (byte == b'%')
            .then(|| Some((hex_value(*bytes.get(i + 1)?)? << 4) | hex_value(*bytes.get(i + 2)?)?))
            .flatten();
        match escaped {
            Some(value) => {
                decoded.push(value);
                i += 3;
            }
            None => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn hex_value(digit: u8) -> Option<u8> {
    (digit as char)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

/// Whether the body is passed as text: a text or JSON (or XML, JavaScript) content type.
fn is_text(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media_type.starts_with("text/")
        || matches!(
            media_type.as_str(),
            "application/json" | "application/xml" | "application/javascript"
        )
        || media_type.ends_with("+json")
        || media_type.ends_with("+xml")
}

fn protocol(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    }
}

/// An id shaped as API Gateway's: 16 base64 characters.
fn new_request_id() -> String {
    let uuid = uuid::Uuid::new_v4();
    let bytes = uuid.as_bytes();
    STANDARD.encode(bytes.get(..11).unwrap_or(bytes))
}

// ---- The response ------------------------------------------------------------------------------

/// The HTTP response, before the request id is added.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    /// API Gateway's own response for `status`, `{"message":"Not Found"}` and the like.
    fn error(status: StatusCode) -> Self {
        let message = match status {
            StatusCode::NOT_FOUND => "Not Found",
            StatusCode::PAYLOAD_TOO_LARGE => "Request Entity Too Large",
            StatusCode::SERVICE_UNAVAILABLE => "Service Unavailable",
            StatusCode::BAD_REQUEST => "Bad Request",
            StatusCode::FORBIDDEN => "Forbidden",
            _ => "Internal Server Error",
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Self {
            status,
            headers,
            body: Bytes::from(json!({ "message": message }).to_string()),
        }
    }

    /// A 403 of the IAM authorizer: `{"message": ...}` and `x-amzn-ErrorType`.
    fn forbidden(message: String, error_type: &'static str) -> Self {
        let mut reply = Self::error(StatusCode::FORBIDDEN);
        reply.body = Bytes::from(json!({ "message": message }).to_string());
        reply.headers.insert(
            HeaderName::from_static("x-amzn-errortype"),
            HeaderValue::from_static(error_type),
        );
        reply
    }

    fn into_response(self, request_id: &str) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        if let Ok(value) = HeaderValue::from_str(request_id) {
            response
                .headers_mut()
                .insert(HeaderName::from_static("apigw-requestid"), value);
        }
        response
    }
}

/// Why a function's response payload is not a valid payload format 2.0 response.
#[derive(Debug, thiserror::Error)]
enum MalformedResponse {
    #[error("statusCode is not an HTTP status")]
    StatusCode,
    #[error("{0} is not of the expected type")]
    FieldType(&'static str),
    #[error("the header {0:?} is not a valid header")]
    Header(String),
    #[error("body is not valid base64 although isBase64Encoded is true")]
    Base64,
}

/// Headers API Gateway computes itself rather than taking from the function.
const COMPUTED_HEADERS: [&str; 3] = ["content-length", "transfer-encoding", "connection"];

/// The HTTP response for a function's response payload (payload format 2.0).
fn integration_reply(payload: Value) -> Result<Reply, MalformedResponse> {
    let response = match payload {
        Value::Object(response) if response.contains_key("statusCode") => response,
        Value::String(text) => return Ok(inferred(Bytes::from(text))),
        other => return Ok(inferred(Bytes::from(other.to_string()))),
    };
    let status = response
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (100..=599).contains(code))
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or(MalformedResponse::StatusCode)?;

    let mut headers = HeaderMap::new();
    match response.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(single)) => {
            for (name, value) in single {
                append_header(&mut headers, name, header_text(value, "headers")?)?;
            }
        }
        Some(_) => return Err(MalformedResponse::FieldType("headers")),
    }
    match response.get("multiValueHeaders") {
        None | Some(Value::Null) => {}
        Some(Value::Object(multi)) => {
            for (name, values) in multi {
                let values = values
                    .as_array()
                    .ok_or(MalformedResponse::FieldType("multiValueHeaders"))?;
                for value in values {
                    append_header(&mut headers, name, header_text(value, "multiValueHeaders")?)?;
                }
            }
        }
        Some(_) => return Err(MalformedResponse::FieldType("multiValueHeaders")),
    }
    match response.get("cookies") {
        None | Some(Value::Null) => {}
        Some(Value::Array(cookies)) => {
            for cookie in cookies {
                let cookie = cookie
                    .as_str()
                    .ok_or(MalformedResponse::FieldType("cookies"))?;
                append_header(&mut headers, SET_COOKIE.as_str(), cookie.to_owned())?;
            }
        }
        Some(_) => return Err(MalformedResponse::FieldType("cookies")),
    }

    let is_base64 = match response.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(_) => return Err(MalformedResponse::FieldType("isBase64Encoded")),
    };
    let body = match response.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(body)) if is_base64 => Bytes::from(
            STANDARD
                .decode(body)
                .map_err(|_| MalformedResponse::Base64)?,
        ),
        Some(Value::String(body)) => Bytes::from(body.clone()),
        Some(_) => return Err(MalformedResponse::FieldType("body")),
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// A payload without `statusCode`: 200, JSON, the payload as the body.
fn inferred(body: Bytes) -> Reply {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Reply {
        status: StatusCode::OK,
        headers,
        body,
    }
}

/// A header value as text: strings as they are, numbers and booleans written out.
fn header_text(value: &Value, field: &'static str) -> Result<String, MalformedResponse> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        _ => Err(MalformedResponse::FieldType(field)),
    }
}

fn append_header(
    headers: &mut HeaderMap,
    name: &str,
    value: String,
) -> Result<(), MalformedResponse> {
    let header = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| MalformedResponse::Header(name.to_owned()))?;
    if COMPUTED_HEADERS.contains(&header.as_str()) {
        return Ok(());
    }
    let value =
        HeaderValue::try_from(value).map_err(|_| MalformedResponse::Header(name.to_owned()))?;
    headers.append(header, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(key: &str, method: &str, path: &str) -> Option<Vec<(String, String)>> {
        RoutePattern::parse(key)?
            .matches(method, path)
            .map(|(_, parameters)| parameters)
    }

    #[test]
    fn route_keys_parse_as_api_gateway_writes_them() {
        assert_eq!(RoutePattern::parse("$default"), Some(RoutePattern::Default));
        assert!(RoutePattern::parse("POST /v1/encrypt").is_some());
        assert!(RoutePattern::parse("ANY /").is_some());
        assert!(RoutePattern::parse("GET /files/{proxy+}").is_some());
        for bad in [
            "",
            "/v1/encrypt",
            "post /x",
            "GET x",
            "GET /{proxy+}/x",
            "GET /{}",
            "GET /a{b}",
        ] {
            assert_eq!(RoutePattern::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn paths_match_segment_by_segment() {
        assert_eq!(matches("GET /", "GET", "/"), Some(vec![]));
        assert_eq!(matches("GET /", "GET", "/x"), None);
        assert_eq!(matches("GET /version", "POST", "/version"), None);
        assert_eq!(matches("ANY /version", "DELETE", "/version"), Some(vec![]));
        assert_eq!(matches("GET /version", "GET", "/version/"), None);
        assert_eq!(
            matches("GET /keys/{id}", "GET", "/keys/a%20b"),
            Some(vec![("id".into(), "a b".into())])
        );
        assert_eq!(matches("GET /keys/{id}", "GET", "/keys/"), None);
        assert_eq!(
            matches("GET /f/{proxy+}", "GET", "/f/a/b"),
            Some(vec![("proxy".into(), "a/b".into())])
        );
        assert_eq!(matches("GET /f/{proxy+}", "GET", "/f"), None);
    }

    #[test]
    fn more_specific_routes_rank_first() {
        let rank = |key: &str, method: &str, path: &str| {
            RoutePattern::parse(key)
                .and_then(|pattern| pattern.matches(method, path))
                .map(|(specificity, _)| specificity)
        };
        let order = [
            rank("GET /a/b", "GET", "/a/b"),
            rank("ANY /a/b", "GET", "/a/b"),
            rank("GET /a/{x}", "GET", "/a/b"),
            rank("GET /{x}/{y}", "GET", "/a/b"),
            rank("GET /a/{proxy+}", "GET", "/a/b"),
            rank("GET /{proxy+}", "GET", "/a/b"),
            rank("$default", "GET", "/a/b"),
        ];
        assert!(order.iter().all(Option::is_some));
        assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "{order:?}");
    }

    #[test]
    fn query_and_escapes_decode_leniently() {
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
        assert_eq!(percent_decode("%FF"), "\u{FFFD}");
        let query = query_parameters("a=1&a=2&b&&c=x%3Dy");
        assert_eq!(
            Value::Object(query),
            json!({"a": "1,2", "b": "", "c": "x=y"})
        );
    }
}

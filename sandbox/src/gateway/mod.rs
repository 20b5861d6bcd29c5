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
//!
//! # Where things are
//!
//! - `server`: how the gateway listens, serves connections and drains on shutdown ([`serve`]);
//! - `dispatch`: how a request is handled, from its route to its function's answer;
//! - `routes`: which route a request matches;
//! - `authorize`: how a request to an IAM route is authorized, and how a refusal reads;
//! - `event`: how a request becomes the payload format 2.0 event;
//! - `response`: how a response is shaped, from API Gateway's errors to the function's payload.
//!
//! [`auth_refusal`]: authorize::auth_refusal

mod authorize;
mod dispatch;
mod event;
mod response;
mod routes;
mod server;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use ssm_core::sigv4::SecretAccessKey;

pub(crate) use self::event::percent_decode;
pub use self::server::{GatewayHandle, serve};
use crate::Invoker;

/// API Gateway's payload limit for HTTP APIs (10 MiB); the usual [`GatewayConfig::max_body`].
pub const MAX_BODY: usize = 10 * 1024 * 1024;

/// API Gateway's integration timeout for HTTP APIs: a request without an answer by then is a 503.
pub const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);

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

//! The API Gateway HTTP API (payload format 2.0) front end.
//!
//! The event is read into [`HttpApiEvent`], which holds only what the service uses: method, raw
//! path, body and the IAM caller. Every other field (headers, query, cookies, the rest of the
//! request context) is skipped while parsing instead of being built into an `http::Request`,
//! which was most of the handler's cost. The path is `rawPath` as sent: with the `$default`
//! stage (the stack's) it is the route's path.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use ssm_core::api::{ApiError, Route};

use crate::Service;

/// An API Gateway HTTP API request event (payload format 2.0), reduced to what is used.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpApiEvent {
    #[serde(default)]
    pub raw_path: String,
    #[serde(default)]
    pub request_context: RequestContext,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub is_base64_encoded: bool,
}

/// `requestContext`: the method and, on IAM-authorized routes, the caller.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RequestContext {
    #[serde(default)]
    pub http: HttpContext,
    #[serde(default)]
    pub authorizer: Option<Authorizer>,
}

/// `requestContext.http`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HttpContext {
    #[serde(default)]
    pub method: String,
}

/// `requestContext.authorizer`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Authorizer {
    #[serde(default)]
    pub iam: Option<IamAuthorizer>,
}

/// `requestContext.authorizer.iam`: the SigV4 caller API Gateway verified.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IamAuthorizer {
    #[serde(default)]
    pub user_arn: Option<String>,
}

impl HttpApiEvent {
    /// The IAM caller's ARN, when API Gateway authorized the request with SigV4.
    pub fn caller_arn(&self) -> Option<&str> {
        self.request_context
            .authorizer
            .as_ref()?
            .iam
            .as_ref()?
            .user_arn
            .as_deref()
    }
}

/// The response API Gateway expects from a payload 2.0 integration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpApiResponse {
    pub status_code: u16,
    pub headers: ResponseHeaders,
    pub body: String,
    pub is_base64_encoded: bool,
}

/// The response headers: always JSON, never cached; `allow` on a 405.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResponseHeaders {
    #[serde(rename = "content-type")]
    pub content_type: &'static str,
    #[serde(rename = "cache-control")]
    pub cache_control: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<&'static str>,
}

/// Runs one API Gateway event through the service and builds the response.
pub async fn handle(service: &Service, event: HttpApiEvent) -> HttpApiResponse {
    let method = event.request_context.http.method.as_str();
    let path = event.raw_path.as_str();
    let caller = event.caller_arn();
    let body = event.body.as_deref().unwrap_or_default();
    let response = if event.is_base64_encoded {
        match STANDARD.decode(body) {
            Ok(bytes) => service.handle(method, path, &bytes, caller).await,
            Err(_) => service.reject(
                method,
                path,
                body.len(),
                caller,
                ApiError::bad_request("the request body is not valid base64"),
            ),
        }
    } else {
        service.handle(method, path, body.as_bytes(), caller).await
    };
    let allow = match response.status {
        405 => Route::allow_header(path),
        _ => None,
    };
    HttpApiResponse {
        status_code: response.status,
        headers: ResponseHeaders {
            content_type: "application/json",
            cache_control: "no-store",
            allow,
        },
        // serde_json writes UTF-8, so this never falls back.
        body: String::from_utf8(response.body).unwrap_or_default(),
        is_base64_encoded: false,
    }
}

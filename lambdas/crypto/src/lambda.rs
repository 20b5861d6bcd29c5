//! The API Gateway HTTP API (payload v2) front end.

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

use crate::Service;

/// Converts one API Gateway request, runs it, and builds the response.
pub async fn handle(service: &Service, request: Request) -> Response<Body> {
    let caller = caller_arn(&request);
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let body: &[u8] = match request.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    let response = service
        .handle(&method, &path, body, caller.as_deref())
        .await;
    let mut builder = Response::builder()
        .status(response.status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store");
    if let (405, Some(allow)) = (response.status, ssm_core::api::Route::allow_header(&path)) {
        builder = builder.header("allow", allow);
    }
    builder
        .body(Body::Text(
            String::from_utf8(response.body).unwrap_or_default(),
        ))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

/// The IAM caller (SigV4-authorized routes) from the request context.
pub fn caller_arn(request: &Request) -> Option<String> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => {
            ctx.authorizer.as_ref()?.iam.as_ref()?.user_arn.clone()
        }
        #[allow(
            unreachable_patterns,
            reason = "other variants exist only with other features"
        )]
        _ => None,
    }
}

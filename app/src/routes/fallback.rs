//! Answers for unknown routes (404) and known routes called with another method (405, with
//! `Allow`): JSON error bodies like every other refusal, each an audit line.

use std::future::{Ready, ready};

use actix_web::{HttpRequest, HttpResponse};

use crate::audit;
use crate::error::ApiError;

pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let err = ApiError::NotFound;
    audit::refused(&req, &err, &audit::Context::default());
    Err(err)
}

/// The default service of a resource whose only method is `allow`.
pub fn method_not_allowed(
    allow: &'static str,
) -> impl Fn(HttpRequest) -> Ready<Result<HttpResponse, ApiError>> + Clone + 'static {
    move |req: HttpRequest| {
        let err = ApiError::MethodNotAllowed(allow);
        audit::refused(&req, &err, &audit::Context::default());
        ready(Err(err))
    }
}

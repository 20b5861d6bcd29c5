//! How actix's extractor errors are answered: the same JSON error bodies as every other refusal,
//! each counted and audit-logged.

use actix_web::web;

use crate::audit;
use crate::error::ApiError;
use crate::metrics::inc;
use crate::state::AppState;

/// Turns actix's JSON and payload extractor errors into our 400/413 bodies, each an audit line.
pub fn json_error(
    err: actix_web::error::JsonPayloadError,
    req: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let api = match err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => {
            ApiError::PayloadTooLarge("request body is too large".into())
        }
        E::ContentType => ApiError::Malformed("Content-Type must be application/json".into()),
        other => ApiError::Malformed(format!("request body is not valid: {other}")),
    };
    if let Some(state) = req.app_data::<web::Data<AppState>>() {
        inc(&state.metrics.requests_malformed);
    }
    audit::refused(req, &api, &audit::Context::default());
    api.into()
}

//! The App's HTTP errors: each maps to one status and a JSON `ErrorBody`; messages are written
//! for the caller and never include secrets.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use ssm_core::broker::{DenyReason, ErrorBody, IdentityError, RequestError};
use ssm_core::webhook::SignatureError;

use crate::sts::StsError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("STS rejected the signed identity request (HTTP {0})")]
    StsRejected(u16),
    #[error(transparent)]
    Denied(#[from] DenyReason),
    #[error("the App is not installed on {0}")]
    NotInstalled(String),
    #[error(
        "the token for this scope was replaced less than the minimum interval ago; retry in {retry_after_secs} s"
    )]
    ReplaceRateLimited { retry_after_secs: u64 },
    #[error("STS is unavailable: {0}")]
    StsUnavailable(String),
    #[error("GitHub failed: {0}")]
    GitHub(String),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("no such route")]
    NotFound,
    #[error("method not allowed; allowed: {0}")]
    MethodNotAllowed(&'static str),
}

impl From<StsError> for ApiError {
    fn from(err: StsError) -> Self {
        match err {
            StsError::Identity(e) => Self::Identity(e),
            StsError::Rejected(status) => Self::StsRejected(status),
            StsError::Unavailable(why) => Self::StsUnavailable(why),
            StsError::Header(why) => Self::Malformed(why),
        }
    }
}

impl ApiError {
    /// Stable machine-readable code for the error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Request(_) | Self::Malformed(_) => "bad_request",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Identity(_) | Self::StsRejected(_) => "identity_rejected",
            Self::Denied(DenyReason::UnknownPrincipal(_)) => "unknown_principal",
            Self::Denied(DenyReason::Repository { .. }) => "repository_not_allowed",
            Self::Denied(DenyReason::Permission { .. }) => "permission_not_allowed",
            Self::NotInstalled(_) => "not_installed",
            Self::ReplaceRateLimited { .. } => "token_replace_rate_limited",
            Self::StsUnavailable(_) => "sts_unavailable",
            Self::GitHub(_) => "github_error",
            Self::Signature(_) => "bad_signature",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Request(_) | Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Identity(_) | Self::StsRejected(_) | Self::Signature(_) => {
                StatusCode::UNAUTHORIZED
            }
            Self::Denied(_) => StatusCode::FORBIDDEN,
            Self::NotInstalled(_) | Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::ReplaceRateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::StsUnavailable(_) | Self::GitHub(_) => StatusCode::BAD_GATEWAY,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        match self {
            Self::MethodNotAllowed(allow) => {
                resp.insert_header((header::ALLOW, *allow));
            }
            Self::ReplaceRateLimited { retry_after_secs } => {
                resp.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            _ => {}
        }
        resp.json(ErrorBody::new(self.code(), self.to_string()))
    }
}

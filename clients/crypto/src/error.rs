//! What can go wrong, typed so a caller can branch: IAM said no, the key does not exist, the
//! API refused the request, the service stayed throttled, or it could not be reached.

use serde::Deserialize;

/// The API's own error: `{"error": {"code", "message"}}` with the HTTP status it came with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: u16,
    /// A stable machine code, e.g. `decryption_failed`, `key_mismatch`, `unknown_key`.
    pub code: String,
    pub message: String,
}

/// The body of an API error, and of a failed batch item.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub error: ErrorFields,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorFields {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn into_api_error(self, status: u16) -> ApiError {
        ApiError {
            status,
            code: self.error.code,
            message: self.error.message,
        }
    }
}

/// API Gateway's own answers (403 from the IAM authorizer, 404 for a route it does not have):
/// `{"message": "..."}`.
#[derive(Debug, Deserialize)]
struct GatewayBody {
    message: String,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid client configuration: {0}")]
    Config(String),
    #[error(transparent)]
    KeyName(#[from] crate::key_name::InvalidKeyName),
    #[error("no AWS credentials to sign with: {0}")]
    Credentials(String),
    #[error("could not sign the request: {0}")]
    Signing(String),
    /// 403: API Gateway's IAM authorization refused the request (no `execute-api:Invoke` on the
    /// route's ARN for the caller, or a signature it did not accept). `message` is the gateway's.
    #[error("{method} {path}: refused by IAM (403): {message}")]
    IamDenied {
        method: &'static str,
        path: String,
        message: String,
    },
    /// 404: the key (or the route) does not exist in this deployment. `code` is the API's
    /// (`unknown_key`, `not_found`) when the Lambda answered; `None` when API Gateway did.
    #[error("{method} {path}: not found (404): {message}")]
    NotFound {
        method: &'static str,
        path: String,
        code: Option<String>,
        message: String,
    },
    /// The API refused the request (any other 4xx, and a 5xx that is not retried).
    #[error("{method} {path}: {error}")]
    Api {
        method: &'static str,
        path: String,
        error: ApiError,
    },
    /// 429 or 502/503/504 on every attempt.
    #[error("{method} {path}: {status} on each of {attempts} attempts; last: {message}")]
    Unavailable {
        method: &'static str,
        path: String,
        attempts: u32,
        status: u16,
        message: String,
    },
    /// The service could not be reached (connection refused or reset, DNS, TLS, timeout).
    #[error("{method} {path}: no answer after {attempts} attempts: {source}")]
    Transport {
        method: &'static str,
        path: String,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    /// A 2xx whose body is not the route's response, or an error body of no known shape.
    #[error("{method} {path}: unexpected answer ({status}): {message}")]
    Decode {
        method: &'static str,
        path: String,
        status: u16,
        message: String,
    },
}

impl ClientError {
    /// The API's error code, when the API answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { error, .. } => Some(&error.code),
            Self::NotFound { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status the service answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::IamDenied { .. } => Some(403),
            Self::NotFound { .. } => Some(404),
            Self::Api { error, .. } => Some(error.status),
            Self::Unavailable { status, .. } | Self::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The error for a non-2xx answer that is not retried (or no longer), from its status and body.
/// Bodies are quoted only as far as a message goes: ours and API Gateway's carry no data.
pub(crate) fn from_status(
    method: &'static str,
    path: &str,
    status: u16,
    body: &[u8],
    attempts: u32,
) -> ClientError {
    let path = path.to_owned();
    let ours = serde_json::from_slice::<ErrorBody>(body).ok();
    let gateway = || {
        serde_json::from_slice::<GatewayBody>(body)
            .map(|b| b.message)
            .unwrap_or_else(|_| snippet(body))
    };
    match (status, ours) {
        (403, None) => ClientError::IamDenied {
            method,
            path,
            message: gateway(),
        },
        (404, Some(body)) => ClientError::NotFound {
            method,
            path,
            code: Some(body.error.code),
            message: body.error.message,
        },
        (404, None) => ClientError::NotFound {
            method,
            path,
            code: None,
            message: gateway(),
        },
        (status, ours) if crate::retry::is_retryable_status(status) => ClientError::Unavailable {
            method,
            path,
            attempts,
            status,
            message: ours.map_or_else(gateway, |b| {
                format!("{}: {}", b.error.code, b.error.message)
            }),
        },
        (status, Some(body)) => ClientError::Api {
            method,
            path,
            error: body.into_api_error(status),
        },
        (status, None) => ClientError::Decode {
            method,
            path,
            status,
            message: gateway(),
        },
    }
}

/// An error and its sources, `: `-separated, for a message.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The start of a body of unknown shape, as text, for a message.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    if text.trim().is_empty() {
        "(empty body)".to_owned()
    } else {
        text.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_bodies_become_the_right_variant() {
        let iam = from_status(
            "POST",
            "/v1/keys/orders/encrypt",
            403,
            br#"{"message":"User: arn:aws:sts::1:assumed-role/r/s is not authorized to perform: execute-api:Invoke"}"#,
            1,
        );
        assert!(
            matches!(&iam, ClientError::IamDenied { message, .. } if message.contains("not authorized"))
        );
        let gateway_404 = from_status(
            "POST",
            "/v1/keys/nope/encrypt",
            404,
            br#"{"message":"Not Found"}"#,
            1,
        );
        assert!(
            matches!(&gateway_404, ClientError::NotFound { code: None, message, .. } if message == "Not Found")
        );
        let ours_404 = from_status(
            "POST",
            "/v1/keys/nope/encrypt",
            404,
            br#"{"error":{"code":"unknown_key","message":"no key named nope"}}"#,
            1,
        );
        assert_eq!(ours_404.code(), Some("unknown_key"));
        let refused = from_status(
            "POST",
            "/v1/keys/a/decrypt",
            400,
            br#"{"error":{"code":"key_mismatch","message":"sealed by b"}}"#,
            1,
        );
        assert!(
            matches!(&refused, ClientError::Api { error, .. } if error.status == 400 && error.code == "key_mismatch")
        );
        let busy = from_status(
            "POST",
            "/v1/encrypt",
            429,
            br#"{"message":"Too Many Requests"}"#,
            4,
        );
        assert!(matches!(
            &busy,
            ClientError::Unavailable {
                attempts: 4,
                status: 429,
                ..
            }
        ));
        let odd = from_status("POST", "/v1/encrypt", 500, b"", 1);
        assert!(
            matches!(&odd, ClientError::Decode { status: 500, message, .. } if message == "(empty body)")
        );
        assert_eq!(odd.status(), Some(500));
    }
}

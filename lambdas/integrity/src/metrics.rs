//! CloudWatch metrics as embedded-metric-format (EMF) lines on stdout: CloudWatch Logs extracts
//! them from the function's log group, so no `PutMetricData` permission or client is needed.
//! The documents are built in `ssm_core::integrity::configuration`; this module classifies a
//! dispatch failure (at the edge, where the broker client's error type is known) and writes.

use std::error::Error as StdError;
use std::fmt;
use std::io::Write;

use serde_json::Value;
use ssm_broker_client::BrokerClientError;
use ssm_core::integrity::ConfigurationError;

use crate::dispatch::DispatchError;

/// Where EMF documents go: stdout in Lambda, a buffer in tests.
pub trait MetricSink: fmt::Debug + Send + Sync {
    fn emit(&self, document: &Value);
}

/// One JSON line per document on stdout, which Lambda ships to CloudWatch Logs as-is.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdoutMetrics;

impl MetricSink for StdoutMetrics {
    fn emit(&self, document: &Value) {
        let line = document.to_string();
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
            tracing::warn!(error = %e, "could not write a metric line");
        }
    }
}

/// Keeps every document in memory, in order: for tests, or a caller that forwards them itself.
#[derive(Debug, Default)]
pub struct MemoryMetrics(std::sync::Mutex<Vec<Value>>);

impl MemoryMetrics {
    /// The documents emitted so far.
    pub fn documents(&self) -> Vec<Value> {
        self.0.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

impl MetricSink for MemoryMetrics {
    fn emit(&self, document: &Value) {
        if let Ok(mut documents) = self.0.lock() {
            documents.push(document.clone());
        }
    }
}

/// Whether a failed dispatch was refused for a reason only configuration fixes; `None` for
/// outages (transport, 5xx, 429, retries exhausted), which redelivery cures.
pub fn configuration_error(e: &DispatchError) -> Option<ConfigurationError> {
    match e {
        DispatchError::Rejected { status, .. } => ConfigurationError::from_github(*status),
        DispatchError::Token(token) if !token.retryable => {
            let mut cause: Option<&(dyn StdError + 'static)> = Some(token.source.as_ref());
            while let Some(err) = cause {
                if let Some(broker) = err.downcast_ref::<BrokerClientError>() {
                    return broker_refusal(broker);
                }
                cause = err.source();
            }
            None
        }
        DispatchError::Token(_) | DispatchError::Exhausted { .. } => None,
    }
}

fn broker_refusal(e: &BrokerClientError) -> Option<ConfigurationError> {
    match e {
        BrokerClientError::Status { status, code, .. } => {
            ConfigurationError::from_broker(*status, Some(code))
        }
        BrokerClientError::Decode { status, .. } => ConfigurationError::from_broker(*status, None),
        // A repository or permissions the broker could not grant: this Lambda's configuration.
        BrokerClientError::Config(_)
        | BrokerClientError::Signing(_)
        | BrokerClientError::Request(_) => Some(ConfigurationError::broker_client()),
        BrokerClientError::Transport(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::TokenError;

    fn refused(status: u16, code: &str) -> DispatchError {
        DispatchError::Token(TokenError {
            retryable: status >= 500 || status == 429,
            source: Box::new(BrokerClientError::Status {
                status,
                code: code.into(),
                message: "refused".into(),
            }),
        })
    }

    #[test]
    fn broker_refusals_are_configuration_errors_with_the_broker_code() {
        for (status, code) in [
            (401, "identity_rejected"),
            (403, "unknown_principal"),
            (403, "repository_not_allowed"),
            (404, "not_installed"),
        ] {
            assert_eq!(
                configuration_error(&refused(status, code)).map(|c| c.code().to_owned()),
                Some(code.to_owned())
            );
        }
        let html = DispatchError::Token(TokenError {
            retryable: false,
            source: Box::new(BrokerClientError::Decode {
                status: 404,
                message: "<html>".into(),
            }),
        });
        assert_eq!(
            configuration_error(&html).map(|c| c.code().to_owned()),
            Some("broker_404".to_owned())
        );
    }

    #[test]
    fn outages_are_not_configuration_errors() {
        assert_eq!(configuration_error(&refused(503, "sts_unavailable")), None);
        assert_eq!(configuration_error(&refused(429, "slow_down")), None);
        let exhausted = DispatchError::Exhausted {
            attempts: 5,
            last: "GitHub answered 502".into(),
        };
        assert_eq!(configuration_error(&exhausted), None);
        let other = DispatchError::Token(TokenError {
            retryable: false,
            source: "not a broker error".into(),
        });
        assert_eq!(configuration_error(&other), None);
    }

    #[test]
    fn github_refusals_are_configuration_errors() {
        let rejected = |status| DispatchError::Rejected {
            status,
            message: String::new(),
        };
        assert_eq!(
            configuration_error(&rejected(404)).map(|c| c.code().to_owned()),
            Some("github_404".to_owned())
        );
        assert_eq!(
            configuration_error(&rejected(301)).map(|c| c.code().to_owned()),
            Some("github_301".to_owned())
        );
    }
}

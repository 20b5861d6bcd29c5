//! Refusals only an operator can fix, and the metric that tells them.
//!
//! A dispatch that fails because of an outage (broker or GitHub 5xx, 429, timeouts) succeeds on
//! redelivery. A dispatch the broker or GitHub *refuses* — wrong broker audience or STS endpoint,
//! a broker policy that does not name the function's role or repository, the App not installed,
//! a renamed repository — fails the same way on every redelivery until the configuration changes.
//! Each such refusal becomes one CloudWatch embedded-metric-format (EMF) log line, so an alarm
//! fires within minutes rather than after the messages have cycled to the dead-letter queue.
//!
//! EMF document (one JSON object per log line; CloudWatch Logs extracts the metric):
//!
//! ```json
//! {"_aws": {"Timestamp": 1796119200000, "CloudWatchMetrics": [{
//!    "Namespace": "ServerlessSSM/Integrity",
//!    "Dimensions": [["Stack"], ["Stack", "Code"]],
//!    "Metrics": [{"Name": "ConfigurationError", "Unit": "Count"}]}]},
//!  "Stack": "SsmServerless", "Code": "identity_rejected", "ConfigurationError": 1,
//!  "remedy": "…"}
//! ```
//!
//! The `[Stack]` dimension set is the one the alarm watches; `[Stack, Code]` says which cause.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// CloudWatch namespace of the integrity Lambda's metrics.
pub const METRIC_NAMESPACE: &str = "ServerlessSSM/Integrity";
/// Count of dispatches refused for a configuration error.
pub const CONFIGURATION_ERROR_METRIC: &str = "ConfigurationError";

/// A refusal that retrying will not cure; `code` names the cause (a metric dimension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigurationError {
    code: String,
}

impl ConfigurationError {
    /// The broker answered `status` with error `code`: any 4xx but 408 and 429 is configuration.
    /// A code that is not a plain identifier (a proxy's page, a wrong URL) becomes `broker_<status>`.
    pub fn from_broker(status: u16, code: Option<&str>) -> Option<ConfigurationError> {
        if !(400..500).contains(&status) || status == 408 || status == 429 {
            return None;
        }
        let code = code
            .filter(|c| {
                (1..=64).contains(&c.len())
                    && c.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            })
            .map_or_else(|| format!("broker_{status}"), str::to_owned);
        Some(ConfigurationError { code })
    }

    /// The broker client could not even build or sign its request (bad endpoint, no region).
    pub fn broker_client() -> ConfigurationError {
        ConfigurationError {
            code: "broker_client".into(),
        }
    }

    /// GitHub refused the dispatch itself with `status` (after the token refresh on 401): a
    /// redirect (renamed repository) or a 4xx other than 408 and 429.
    pub fn from_github(status: u16) -> Option<ConfigurationError> {
        let refused = (300..400).contains(&status)
            || ((400..500).contains(&status) && !matches!(status, 401 | 408 | 429));
        refused.then(|| ConfigurationError {
            code: format!("github_{status}"),
        })
    }

    /// The metric dimension `Code`.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// What the operator should change, for the log line (and the README's table).
    pub fn remedy(&self) -> &'static str {
        match self.code.as_str() {
            "identity_rejected" => {
                "the broker could not verify the function's signed identity: SSM_BROKER_AUDIENCE \
                 must equal the broker's audience and SSM_STS_ENDPOINT the broker's STS endpoint \
                 (the broker's message says which), and the clocks must agree within 5 minutes"
            }
            "unknown_principal" => {
                "the broker's policy does not name this function's role: add the stack output \
                 IntegrityRoleArn to it"
            }
            "repository_not_allowed" | "permission_not_allowed" => {
                "the broker's policy does not allow this function's role contents: write on \
                 SSM_GITHUB_REPOSITORY: allow it"
            }
            "not_installed" => {
                "the GitHub App is not installed on SSM_GITHUB_REPOSITORY: install it there"
            }
            "broker_client" => {
                "the function could not build or sign the broker request: check SSM_BROKER_URL, \
                 SSM_STS_ENDPOINT and the function's region"
            }
            code if code.starts_with("github_3") => {
                "GitHub redirected the dispatch: the repository was renamed or moved; deploy with \
                 its current owner/name (SSM_GITHUB_REPOSITORY)"
            }
            "github_403" | "github_404" => {
                "the installation token cannot dispatch to SSM_GITHUB_REPOSITORY: the App needs \
                 contents: write on it, and the name must be right"
            }
            code if code.starts_with("github_") => {
                "GitHub rejected the dispatch request: see the logged message"
            }
            _ => "the broker refused the request: check SSM_BROKER_URL and the broker's logs",
        }
    }
}

impl fmt::Display for ConfigurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code)
    }
}

/// The EMF document counting one configuration error of `stack` at `at`.
pub fn configuration_error_metric(
    stack: &str,
    error: &ConfigurationError,
    at: DateTime<Utc>,
) -> Value {
    json!({
        "_aws": {
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": METRIC_NAMESPACE,
                "Dimensions": [["Stack"], ["Stack", "Code"]],
                "Metrics": [{"Name": CONFIGURATION_ERROR_METRIC, "Unit": "Count"}],
            }],
        },
        "Stack": stack,
        "Code": error.code(),
        CONFIGURATION_ERROR_METRIC: 1,
        "remedy": error.remedy(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_refusals_are_configuration_and_outages_are_not() {
        for (status, code) in [
            (401, "identity_rejected"),
            (403, "unknown_principal"),
            (403, "repository_not_allowed"),
            (403, "permission_not_allowed"),
            (404, "not_installed"),
            (400, "bad_request"),
        ] {
            let e = ConfigurationError::from_broker(status, Some(code)).unwrap();
            assert_eq!(e.code(), code);
        }
        for status in [408, 429, 500, 502, 503, 504, 200, 301] {
            assert_eq!(
                ConfigurationError::from_broker(status, Some("x")),
                None,
                "{status}"
            );
        }
    }

    #[test]
    fn an_unusable_broker_code_becomes_the_status() {
        for code in [
            None,
            Some(""),
            Some("<html>Not Found</html>"),
            Some("Identity Rejected"),
        ] {
            assert_eq!(
                ConfigurationError::from_broker(404, code).unwrap().code(),
                "broker_404"
            );
        }
        let long = "a".repeat(65);
        assert_eq!(
            ConfigurationError::from_broker(403, Some(&long))
                .unwrap()
                .code(),
            "broker_403"
        );
    }

    #[test]
    fn github_refusals_are_configuration_but_401_and_limits_are_not() {
        for status in [301, 307, 400, 403, 404, 410, 422] {
            assert_eq!(
                ConfigurationError::from_github(status).unwrap().code(),
                format!("github_{status}")
            );
        }
        for status in [200, 204, 401, 408, 429, 500, 503] {
            assert_eq!(ConfigurationError::from_github(status), None, "{status}");
        }
    }

    #[test]
    fn every_cause_has_its_own_remedy() {
        let remedy = |status, code| {
            ConfigurationError::from_broker(status, Some(code))
                .unwrap()
                .remedy()
        };
        assert!(remedy(401, "identity_rejected").contains("SSM_BROKER_AUDIENCE"));
        assert!(remedy(401, "identity_rejected").contains("SSM_STS_ENDPOINT"));
        assert!(remedy(403, "unknown_principal").contains("IntegrityRoleArn"));
        assert!(remedy(403, "repository_not_allowed").contains("SSM_GITHUB_REPOSITORY"));
        assert!(remedy(404, "not_installed").contains("install"));
        let github = |s| ConfigurationError::from_github(s).unwrap().remedy();
        assert!(github(301).contains("renamed"));
        assert!(github(403).contains("contents: write"));
        assert_ne!(github(422), github(403));
    }

    #[test]
    fn the_metric_is_a_valid_emf_document() {
        let error = ConfigurationError::from_broker(401, Some("identity_rejected")).unwrap();
        let at: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        let doc = configuration_error_metric("SsmServerless", &error, at);
        let meta = &doc["_aws"];
        assert_eq!(meta["Timestamp"], 1_796_119_200_000_i64);
        let directive = &meta["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "ServerlessSSM/Integrity");
        // Every dimension key and every metric name is a member of the root, as EMF requires.
        for set in directive["Dimensions"].as_array().unwrap() {
            for key in set.as_array().unwrap() {
                assert!(doc[key.as_str().unwrap()].is_string(), "{key}");
            }
        }
        assert_eq!(
            directive["Dimensions"][0],
            json!(["Stack"]),
            "the alarm's set"
        );
        for metric in directive["Metrics"].as_array().unwrap() {
            assert_eq!(metric["Unit"], "Count");
            assert_eq!(doc[metric["Name"].as_str().unwrap()], 1);
        }
        assert_eq!(doc["Stack"], "SsmServerless");
        assert_eq!(doc["Code"], "identity_rejected");
        assert_eq!(doc["remedy"], error.remedy());
        assert!(!doc.to_string().contains('\n'), "one log line");
    }
}

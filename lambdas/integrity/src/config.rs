//! Typed configuration, read once from the environment the CDK stack sets.

use std::time::Duration;

use clap::Parser;
use ssm_core::integrity::{ArnError, IgnorePolicy};

/// The Lambda's settings (`SSM_*` variables; flags for local runs).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ssm-integrity",
    version,
    about = "Integrity Lambda: out-of-band change detection"
)]
pub struct Config {
    /// The CloudFormation stack whose resources are watched.
    #[arg(long, env = "SSM_STACK_NAME")]
    pub stack_name: String,
    /// The repository that receives `repository_dispatch`, as `owner/name`.
    #[arg(long, env = "SSM_GITHUB_REPOSITORY", value_parser = parse_repository)]
    pub github_repository: String,
    /// The token broker's base URL (the GitHub App).
    #[arg(long, env = "SSM_BROKER_URL")]
    pub broker_url: String,
    /// The audience the broker expects in the signed identity request.
    #[arg(long, env = "SSM_BROKER_AUDIENCE")]
    pub broker_audience: String,
    /// Roles whose every call is expected (deploy, rotation), comma-separated ARNs.
    #[arg(
        long,
        env = "SSM_IGNORED_ROLE_ARNS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub ignored_role_arns: Vec<String>,
    /// CloudFormation execution roles of our deploys, comma-separated: their calls are expected
    /// only while the stack has an operation in progress.
    #[arg(long, env = "SSM_CLOUDFORMATION_ROLE_ARNS", value_delimiter = ',')]
    pub cloudformation_role_arns: Vec<String>,
    /// Keyring operator roles, comma-separated: their keyring value writes are expected.
    #[arg(long, env = "SSM_KEYRING_OPERATOR_ROLE_ARNS", value_delimiter = ',')]
    pub keyring_operator_role_arns: Vec<String>,
    /// GitHub's REST API base URL (GitHub Enterprise Server: `https://HOST/api/v3`).
    #[arg(
        long,
        env = "SSM_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    pub github_api_url: String,
    /// The STS endpoint the identity request is signed for; default: the regional endpoint.
    #[arg(long, env = "SSM_STS_ENDPOINT")]
    pub sts_endpoint: Option<String>,
    /// HTTP timeout for GitHub and the broker, in seconds.
    #[arg(long, env = "SSM_HTTP_TIMEOUT_SECS", default_value_t = 10)]
    pub http_timeout_secs: u64,
    /// Upper bound on waiting for `DetectStackDrift`, in seconds (below the Lambda timeout).
    #[arg(long, env = "SSM_DRIFT_TIMEOUT_SECS", default_value_t = 300)]
    pub drift_timeout_secs: u64,
}

impl Config {
    pub fn ignore_policy(&self) -> Result<IgnorePolicy, ArnError> {
        IgnorePolicy::from_role_arns(&self.ignored_role_arns)?
            .with_cloudformation_roles(&self.cloudformation_role_arns)?
            .with_keyring_operators(&self.keyring_operator_role_arns)
    }

    pub fn http_timeout(&self) -> Duration {
        Duration::from_secs(self.http_timeout_secs)
    }

    pub fn drift_timeout(&self) -> Duration {
        Duration::from_secs(self.drift_timeout_secs)
    }

    /// The STS endpoint: configured, or the regional one (`https://sts.{region}.amazonaws.com/`).
    pub fn sts_endpoint_for(&self, region: &str) -> String {
        match &self.sts_endpoint {
            Some(endpoint) if !endpoint.is_empty() => endpoint.clone(),
            _ if region.starts_with("cn-") => format!("https://sts.{region}.amazonaws.com.cn/"),
            _ => format!("https://sts.{region}.amazonaws.com/"),
        }
    }
}

fn parse_repository(value: &str) -> Result<String, String> {
    match value.split_once('/') {
        Some((owner, name))
            if !owner.is_empty()
                && !name.is_empty()
                && !name.contains('/')
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) =>
        {
            Ok(value.to_owned())
        }
        _ => Err(format!("expected owner/name, got {value:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Config, clap::Error> {
        let base = [
            "ssm-integrity",
            "--stack-name",
            "Ssm",
            "--broker-url",
            "https://broker",
            "--broker-audience",
            "ssm",
        ];
        Config::try_parse_from(base.iter().chain(extra))
    }

    #[test]
    fn defaults_and_lists() {
        let c = parse(&[
            "--github-repository",
            "acme/infra",
            "--ignored-role-arns",
            "arn:aws:iam::111122223333:role/A,arn:aws:iam::111122223333:role/B",
        ])
        .unwrap();
        assert_eq!(c.github_api_url, "https://api.github.com");
        assert_eq!(c.ignore_policy().unwrap().roles().len(), 2);
        assert_eq!(
            c.sts_endpoint_for("eu-west-1"),
            "https://sts.eu-west-1.amazonaws.com/"
        );
    }

    #[test]
    fn rejects_bad_repository_and_role() {
        assert!(parse(&["--github-repository", "acme"]).is_err());
        assert!(parse(&["--github-repository", "acme/infra/x"]).is_err());
        let c = parse(&[
            "--github-repository",
            "acme/infra",
            "--ignored-role-arns",
            "cdk",
        ])
        .unwrap();
        assert!(c.ignore_policy().is_err());
    }
}

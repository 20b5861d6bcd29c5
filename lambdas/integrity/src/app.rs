//! Builds the handler from configuration: one factory per external client.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_config::SdkConfig;
use ssm_broker_client::{BrokerClient, BrokerClientConfig};
use ssm_core::integrity::RefreshPolicy;

use crate::broker::BrokerTokenSource;
use crate::config::Config;
use crate::dispatch::{GitHubDispatcher, RetryPolicy, github_http_client};
use crate::handler::Handler;
use crate::metrics::StdoutMetrics;
use crate::stack::StackSource;
use crate::sweep::Sweeper;

/// How long the stack's resource list is reused; misses re-read it as `RefreshPolicy::default()`
/// bounds it (at most one read per 10 s).
const STACK_TTL: Duration = Duration::from_secs(300);

/// The handler the Lambda runs.
pub type IntegrityHandler = Handler<GitHubDispatcher<BrokerTokenSource>>;

/// Builds every client from `config` and the AWS environment (region, credentials, endpoints).
pub async fn build(config: &Config, aws: &SdkConfig) -> anyhow::Result<IntegrityHandler> {
    let policy = config.ignore_policy().context("SSM_IGNORED_ROLE_ARNS")?;
    let region = aws
        .region()
        .map(|r| r.to_string())
        .context("no AWS region configured")?;
    let broker_config = broker_client_config(config, &region);
    let sts_endpoint = broker_config.sts_endpoint.clone();
    let broker = BrokerClient::new(broker_config).context("broker client")?;
    let credentials = aws
        .credentials_provider()
        .context("no AWS credentials provider")?;
    let tokens = BrokerTokenSource::new(broker, credentials, &config.github_repository);
    let http = github_http_client(config.http_timeout()).context("GitHub HTTP client")?;
    let notifier = GitHubDispatcher::new(
        http,
        &config.github_api_url,
        &config.github_repository,
        tokens,
        RetryPolicy::default(),
    );
    let stack = StackSource::new(
        aws_sdk_cloudformation::Client::new(aws),
        &config.stack_name,
        STACK_TTL,
        RefreshPolicy::default(),
    );
    let sweeper = Sweeper::new(
        aws_sdk_cloudformation::Client::new(aws),
        aws_sdk_lambda::Client::new(aws),
        config.drift_timeout(),
    );
    tracing::info!(
        stack = %config.stack_name,
        repository = %config.github_repository,
        ignored_roles = policy.roles().len(),
        %sts_endpoint,
        "integrity handler ready"
    );
    Ok(Handler {
        stack,
        sweeper,
        policy,
        notifier,
        metrics: Arc::new(StdoutMetrics),
    })
}

/// Loads the AWS environment of the Lambda.
pub async fn aws_config() -> SdkConfig {
    ssm_sdk_http::sdk_config_loader().load().await
}

/// The broker client's settings in `region`: by default it signs for the regional STS endpoint,
/// which the broker accepts when it runs in the same region or lists it in
/// `SSM_STS_ALLOWED_REGIONS` (`tests/sts_defaults.rs` keeps the two defaults in agreement).
pub fn broker_client_config(config: &Config, region: &str) -> BrokerClientConfig {
    let sts_endpoint = config.sts_endpoint_for(region);
    BrokerClientConfig {
        broker_url: config.broker_url.clone(),
        audience: config.broker_audience.clone(),
        region: signing_region(&sts_endpoint, region),
        sts_endpoint,
        timeout: config.http_timeout(),
    }
}

/// The region to sign for: `us-east-1` for the global endpoint, else the Lambda's region.
fn signing_region(sts_endpoint: &str, region: &str) -> String {
    let host = url_host(sts_endpoint);
    if host == "sts.amazonaws.com" {
        "us-east-1".to_owned()
    } else {
        region.to_owned()
    }
}

fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', ':']).next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_regions() {
        assert_eq!(
            signing_region("https://sts.amazonaws.com/", "eu-west-1"),
            "us-east-1"
        );
        assert_eq!(
            signing_region("https://sts.eu-west-1.amazonaws.com/", "eu-west-1"),
            "eu-west-1"
        );
        assert_eq!(
            signing_region("http://127.0.0.1:5000", "us-east-1"),
            "us-east-1"
        );
    }
}

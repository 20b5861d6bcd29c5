//! End to end: a real CloudFormation stack in moto, the real `ssm-app` token broker (in process,
//! on 127.0.0.1:0, STS = moto), and the GitHub emulator that checks the installation token's scope
//! and the dispatch body. The Lambda is built by its own factory (`app::build`) from a `Config`
//! parsed like the environment would be.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail the test"
)]

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::{Region, SdkConfig};
use aws_credential_types::Credentials;
use clap::Parser;
use serde_json::{Value, json};
use ssm_broker_client::{BrokerClient, BrokerClientConfig};
use ssm_core::broker::Policy;
use ssm_integrity::app::IntegrityHandler;
use ssm_integrity::broker::dispatch_permissions;
use ssm_integrity::metrics::MemoryMetrics;
use ssm_integrity::{Config, RetryPolicy};
use ssm_testkit::github::{GitHubEmulator, TEST_APP_PRIVATE_KEY_PEM, TEST_APP_PUBLIC_KEY_PEM};

const APP_ID: u64 = 5150;
const AUDIENCE: &str = "ssm-broker.integrity-e2e";
const REPOSITORY: &str = "acme/infra";
const MOTO_ACCOUNT: &str = "123456789012";
const LAMBDA_ROLE: &str = "arn:aws:iam::123456789012:role/ssm-integrity-e2e";
const DISPATCHES: &str = "/repos/acme/infra/dispatches";

/// Every log line of this test binary at TRACE, from every crate and thread.
fn logs() -> String {
    ssm_testkit::logs::global().text()
}

struct World {
    handler: IntegrityHandler,
    github: GitHubEmulator,
    broker_url: String,
    moto: String,
    credentials: Credentials,
    /// Physical ids of the moto stack: function, role, rule.
    function: String,
    role: String,
    rule: String,
}

fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("ssm-e2e-{name}-{}-{nanos}", std::process::id())
}

/// Credentials of the Lambda's role, from moto's STS (its GetCallerIdentity then names the role).
async fn assume(moto: &str) -> Credentials {
    ssm_testkit::assume_role(moto, LAMBDA_ROLE, "ssm-integrity").await
}

async fn create_stack(aws: &SdkConfig, name: &str) -> (String, String, String) {
    let template = json!({"Resources": {
        "CryptoFnServiceRole": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}}},
        "CryptoFn": {"Type": "AWS::Lambda::Function", "Properties": {"Runtime": "python3.12",
            "Handler": "index.handler", "Role": {"Fn::GetAtt": ["CryptoFnServiceRole", "Arn"]},
            "Code": {"ZipFile": "def handler(event, context):\n    return 1\n"}}},
        "SweepRule": {"Type": "AWS::Events::Rule", "Properties": {"ScheduleExpression": "rate(1 hour)", "State": "ENABLED"}},
        "IntegrityQueue": {"Type": "AWS::SQS::Queue"}
    }});
    let cfn = aws_sdk_cloudformation::Client::new(aws);
    cfn.create_stack()
        .stack_name(name)
        .template_body(template.to_string())
        .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityIam)
        .send()
        .await
        .unwrap();
    let resources = cfn
        .list_stack_resources()
        .stack_name(name)
        .send()
        .await
        .unwrap();
    let physical = |ty: &str| {
        resources
            .stack_resource_summaries()
            .iter()
            .find(|r| r.resource_type() == Some(ty))
            .and_then(|r| r.physical_resource_id())
            .unwrap()
            .to_owned()
    };
    (
        physical("AWS::Lambda::Function"),
        physical("AWS::IAM::Role"),
        physical("AWS::Events::Rule"),
    )
}

async fn spawn_broker(github: &GitHubEmulator, moto: &str) -> String {
    let opts = ssm_app::Opts::try_parse_from([
        "ssm-app",
        "--listen",
        "127.0.0.1:0",
        "--app-id",
        &APP_ID.to_string(),
        "--github-api-url",
        &github.base_url(),
        "--sts-endpoint",
        moto,
        "--audience",
        AUDIENCE,
        "--policy-file",
        "unused",
        "--github-max-backoff-secs",
        "1",
    ])
    .unwrap();
    let policy = Policy::from_json(
        &json!({"rules": [{"principal": LAMBDA_ROLE, "repositories": [REPOSITORY],
                           "permissions": {"contents": "write"}}]})
        .to_string(),
    )
    .unwrap();
    let settings = ssm_app::Settings::new(opts, TEST_APP_PRIVATE_KEY_PEM, policy).unwrap();
    let app = ssm_app::Application::build(settings).unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    url
}

/// The world, or `None` (skipped) without moto.
async fn world(test: &str) -> Option<World> {
    world_with(test, AUDIENCE).await
}

/// The world with the Lambda configured for `audience` (the broker expects [`AUDIENCE`]).
async fn world_with(test: &str, audience: &str) -> Option<World> {
    let moto = ssm_testkit::moto_endpoint(test)?;
    logs();
    let github = GitHubEmulator::start(APP_ID, TEST_APP_PUBLIC_KEY_PEM).await;
    github.install(REPOSITORY, 77);
    let broker_url = spawn_broker(&github, &moto).await;
    let credentials = assume(&moto).await;
    let aws = ssm_sdk_http::sdk_config_loader()
        .endpoint_url(&moto)
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials.clone())
        .load()
        .await;
    let stack_name = unique(test);
    let (function, role, rule) = create_stack(&aws, &stack_name).await;
    let deploy_role = format!(
        "arn:aws:iam::{MOTO_ACCOUNT}:role/cdk-hnb659fds-deploy-role-{MOTO_ACCOUNT}-us-east-1"
    );
    let config = Config::try_parse_from([
        "ssm-integrity",
        "--stack-name",
        &stack_name,
        "--github-repository",
        REPOSITORY,
        "--broker-url",
        &broker_url,
        "--broker-audience",
        audience,
        "--ignored-role-arns",
        &deploy_role,
        "--github-api-url",
        &github.base_url(),
        "--sts-endpoint",
        &moto,
    ])
    .unwrap();
    let mut handler = ssm_integrity::app::build(&config, &aws).await.unwrap();
    handler.notifier.set_retry(RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
    });
    Some(World {
        handler,
        github,
        broker_url,
        moto,
        credentials,
        function,
        role,
        rule,
    })
}

impl World {
    /// A fixture rewritten to name this moto stack's resources and account.
    fn event(&self, fixture: &str) -> String {
        common::cloudtrail(fixture)
            .replace("111122223333", MOTO_ACCOUNT)
            .replace("Ssm-CryptoFn1A2B3C4D-abcdEFGH1234", &self.function)
            .replace("Ssm-CryptoFnServiceRole7C2D1B9A-ABCDEFGH1234", &self.role)
            .replace("Ssm-SweepRule5B6C7D8E-1A2B3C4D5E6F", &self.rule)
    }

    fn batch(&self, fixtures: &[&str]) -> Value {
        json!({"Records": fixtures.iter().enumerate().map(|(i, f)| json!({
            "messageId": format!("msg-{i}"), "receiptHandle": "AQEB", "body": self.event(f),
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"
        })).collect::<Vec<_>>()})
    }

    /// The installation token the broker handed out (cached by scope, so the one the Lambda used).
    async fn issued_token(&self) -> String {
        let client = BrokerClient::new(BrokerClientConfig {
            broker_url: self.broker_url.clone(),
            audience: AUDIENCE.into(),
            sts_endpoint: self.moto.clone(),
            region: "us-east-1".into(),
            timeout: Duration::from_secs(10),
        })
        .unwrap();
        let response = client
            .token(&self.credentials, REPOSITORY, &dispatch_permissions())
            .await
            .unwrap();
        response.token.expose().to_owned()
    }
}

fn failures(response: &Value) -> Vec<&str> {
    response["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect()
}

const BURST: [&str; 5] = [
    "lambda-update-function-code",
    "lambda-function-by-arn",
    "iam-put-role-policy",
    "events-disable-rule",
    "lambda-deploy-role",
];

#[tokio::test]
async fn a_batch_of_several_events_makes_exactly_one_scoped_dispatch() {
    let Some(w) = world("a_batch_of_several_events_makes_exactly_one_scoped_dispatch").await else {
        return;
    };
    let response = w.handler.handle(w.batch(&BURST)).await.unwrap();
    assert_eq!(failures(&response), Vec::<&str>::new());
    let dispatches = w.github.dispatches();
    assert_eq!(dispatches.len(), 1, "one dispatch per batch");
    let d = &dispatches[0];
    assert_eq!(d.repository, REPOSITORY);
    assert_eq!(
        d.scope.repositories,
        [REPOSITORY],
        "token scoped to the one repository"
    );
    assert_eq!(
        d.scope.permissions,
        dispatch_permissions(),
        "and to contents:write only"
    );
    assert_eq!(d.body["event_type"], "ssm-drift");
    let payload = &d.body["client_payload"];
    assert_eq!(payload["count"], 4, "the deploy role's call is ignored");
    assert!(
        payload["stack"]
            .as_str()
            .unwrap()
            .starts_with("ssm-e2e-a_batch_of_several")
    );
    let resources: Vec<&str> = payload["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(resources.len(), 3);
    assert!(
        resources
            .iter()
            .any(|r| r.starts_with("CryptoFn (AWS::Lambda::Function ") && r.contains(&w.function))
    );
    assert!(
        resources
            .iter()
            .any(|r| r.starts_with("CryptoFnServiceRole (AWS::IAM::Role "))
    );
    assert!(
        resources
            .iter()
            .any(|r| r.starts_with("SweepRule (AWS::Events::Rule "))
    );

    // Nothing logs the token, though the log at TRACE holds the whole exchange.
    let token = w.issued_token().await;
    assert_eq!(
        w.github.access_token_requests(),
        1,
        "the broker's cache served the same token"
    );
    let logs = logs();
    assert!(
        logs.contains("repository_dispatch sent"),
        "log capture works"
    );
    assert!(
        token.len() >= 20 && !logs.contains(&token),
        "the installation token leaked into the logs"
    );
}

#[tokio::test]
async fn a_github_5xx_then_success_is_one_dispatch() {
    let Some(w) = world("a_github_5xx_then_success_is_one_dispatch").await else {
        return;
    };
    w.github.fail_next("POST", DISPATCHES, 502, 1);
    let response = w.handler.handle(w.batch(&BURST)).await.unwrap();
    assert_eq!(failures(&response), Vec::<&str>::new());
    assert_eq!(w.github.dispatches().len(), 1);
}

#[tokio::test]
async fn a_rate_limit_is_waited_out() {
    let Some(w) = world("a_rate_limit_is_waited_out").await else {
        return;
    };
    w.github.fail_next("POST", DISPATCHES, 429, 1);
    let response = w.handler.handle(w.batch(&BURST[..1])).await.unwrap();
    assert_eq!(failures(&response), Vec::<&str>::new());
    assert_eq!(w.github.dispatches().len(), 1);
}

#[tokio::test]
async fn persistent_github_failure_returns_every_item_for_redelivery() {
    let Some(w) = world("persistent_github_failure_returns_every_item_for_redelivery").await else {
        return;
    };
    w.github.fail_next("POST", DISPATCHES, 503, 100);
    let fixtures = &BURST[..4];
    let response = w.handler.handle(w.batch(fixtures)).await.unwrap();
    assert_eq!(failures(&response), ["msg-0", "msg-1", "msg-2", "msg-3"]);
    assert!(w.github.dispatches().is_empty());
}

/// The metric codes the handler emitted, in order.
fn codes(metrics: &MemoryMetrics) -> Vec<String> {
    metrics
        .documents()
        .iter()
        .map(|d| d["Code"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_wrong_broker_audience_is_an_alarmable_configuration_error() {
    let Some(mut w) = world_with("a_wrong_broker_audience", "ssm-broker.someone-else").await else {
        return;
    };
    let metrics = Arc::new(MemoryMetrics::default());
    w.handler.metrics = metrics.clone();
    let response = w.handler.handle(w.batch(&BURST[..2])).await.unwrap();
    assert_eq!(failures(&response), ["msg-0", "msg-1"], "nothing is lost");
    assert_eq!(codes(&metrics), ["identity_rejected"]);
    assert!(w.github.dispatches().is_empty());
    assert!(
        logs().contains("SSM_BROKER_AUDIENCE"),
        "the log line says what to fix"
    );
}

#[tokio::test]
async fn a_repository_the_app_is_not_installed_on_fails_without_retrying_forever() {
    let Some(mut w) = world("a_repository_the_app_is_not_installed_on").await else {
        return;
    };
    let metrics = Arc::new(MemoryMetrics::default());
    w.handler.metrics = metrics.clone();
    // The broker refuses with 404 (not installed) → not retryable → the items go back to SQS.
    w.github
        .fail_next("GET", "/repos/acme/infra/installation", 404, 100);
    let started = std::time::Instant::now();
    let response = w.handler.handle(w.batch(&BURST[..2])).await.unwrap();
    assert_eq!(failures(&response), ["msg-0", "msg-1"]);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(codes(&metrics), ["not_installed"], "alarmable at once");
}

/// GitHub revokes the installation token that both the Lambda and the broker hold. The Lambda's
/// dispatch gets 401, it tells the broker which token was rejected (its SHA-256), the broker
/// replaces that cached token, and the dispatch goes through with the fresh one.
#[tokio::test]
async fn a_token_revoked_mid_flight_is_replaced_and_the_dispatch_succeeds() {
    let Some(w) = world("a_token_revoked_mid_flight_is_replaced").await else {
        return;
    };
    let response = w.handler.handle(w.batch(&BURST[..1])).await.unwrap();
    assert_eq!(failures(&response), Vec::<&str>::new());
    assert_eq!(w.github.access_token_requests(), 1);
    assert_eq!(w.github.revoke_all_tokens(), 1, "the one token is revoked");

    let response = w.handler.handle(w.batch(&BURST[1..2])).await.unwrap();
    assert_eq!(
        failures(&response),
        Vec::<&str>::new(),
        "the dispatch went through with a fresh token"
    );
    assert_eq!(w.github.dispatches().len(), 2);
    assert_eq!(
        w.github.access_token_requests(),
        2,
        "exactly one replacement mint"
    );
    assert!(logs().contains("source=Replaced"));
}

//! The handler end to end with CloudFormation and Lambda served by `aws-smithy-mocks` (moto has
//! no drift detection) and a recording notifier in place of GitHub.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions; a poisoned lock or a malformed response fails the test"
)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::operation::describe_stack_drift_detection_status::DescribeStackDriftDetectionStatusOutput;
use aws_sdk_cloudformation::operation::describe_stack_events::{
    DescribeStackEventsError, DescribeStackEventsOutput,
};
use aws_sdk_cloudformation::operation::describe_stack_resource_drifts::DescribeStackResourceDriftsOutput;
use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput;
use aws_sdk_cloudformation::operation::detect_stack_drift::DetectStackDriftOutput;
use aws_sdk_cloudformation::operation::get_template::GetTemplateOutput;
use aws_sdk_cloudformation::operation::list_stack_resources::{
    ListStackResourcesError, ListStackResourcesOutput,
};
use aws_sdk_cloudformation::types::{
    ResourceStatus, Stack, StackDriftDetectionStatus, StackEvent, StackResourceDrift,
    StackResourceDriftStatus, StackResourceSummary,
};
use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use base64::Engine;
use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use ssm_broker_client::BrokerClientError;
use ssm_core::integrity::{RefreshPolicy, StackResource};
use ssm_integrity::dispatch::{DispatchError, Notify};
use ssm_integrity::metrics::MemoryMetrics;
use ssm_integrity::stack::StackSource;
use ssm_integrity::sweep::Sweeper;
use ssm_integrity::{Handler, HandlerError, TokenError};

const ZIP: &[u8] = b"PK\x03\x04 the deployed asset zip";

/// Records dispatch bodies; fails the first `fail` calls with `error` (default: retries
/// exhausted on 502s).
#[derive(Debug, Default)]
struct Recorder {
    bodies: Mutex<Vec<Value>>,
    calls: AtomicUsize,
    fail: usize,
    error: Option<fn() -> DispatchError>,
}

impl Notify for Recorder {
    async fn notify(&self, body: &Value) -> Result<(), DispatchError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail {
            return Err(self.error.map_or_else(
                || DispatchError::Exhausted {
                    attempts: 5,
                    last: "502 from GitHub".into(),
                },
                |error| error(),
            ));
        }
        self.bodies.lock().unwrap().push(body.clone());
        Ok(())
    }
}

/// Keeps the EMF documents the handler writes.
type Metrics = MemoryMetrics;

fn describe_stacks() -> Rule {
    mock!(aws_sdk_cloudformation::Client::describe_stacks).then_output(|| {
        DescribeStacksOutput::builder()
            .stacks(
                Stack::builder()
                    .stack_id(STACK_ID)
                    .stack_name("Ssm")
                    .build(),
            )
            .build()
    })
}

fn list_resources(rows: Vec<StackResource>) -> Rule {
    mock!(aws_sdk_cloudformation::Client::list_stack_resources)
        .then_output(move || summaries(&rows))
}

fn handler_with(
    cfn_rules: &[&Rule],
    lambda_rules: &[&Rule],
    notifier: Recorder,
) -> Handler<Recorder> {
    let cfn = mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, cfn_rules);
    let lambda = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, lambda_rules);
    let mut sweeper = Sweeper::new(cfn.clone(), lambda, Duration::from_millis(200));
    sweeper.poll_interval = Duration::from_millis(20);
    // No floor and no minimum age: every miss re-reads (tests of the bounds set their own).
    let eager = RefreshPolicy {
        stale_after: Duration::ZERO,
        min_interval: Duration::ZERO,
        ..RefreshPolicy::default()
    };
    Handler {
        stack: StackSource::new(cfn, "Ssm", Duration::from_secs(300), eager),
        sweeper,
        policy: policy(),
        notifier,
        metrics: Arc::new(Metrics::default()),
    }
}

/// The same handler with its own stack-refresh bounds and a metric sink the test can read.
fn bounded(
    cfn_rules: &[&Rule],
    refresh: RefreshPolicy,
    notifier: Recorder,
) -> (Handler<Recorder>, Arc<Metrics>) {
    let mut handler = handler_with(cfn_rules, &[], notifier);
    let cfn = mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, cfn_rules);
    handler.stack = StackSource::new(cfn, "Ssm", Duration::from_secs(300), refresh);
    let metrics = Arc::new(Metrics::default());
    handler.metrics = metrics.clone();
    (handler, metrics)
}

/// A fixture whose CloudTrail `eventTime` (and EventBridge `time`) is `at`.
fn at(fixture: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    cloudtrail(fixture).replace(
        "2024-05-01T12:00:00Z",
        &at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

fn sqs(messages: &[(&str, String)]) -> Value {
    json!({"Records": messages.iter().map(|(id, body)| json!({
        "messageId": id, "receiptHandle": format!("AQEB{id}"), "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1714564800000"},
        "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:111122223333:Ssm-IntegrityQueue", "awsRegion": "us-east-1"
    })).collect::<Vec<_>>()})
}

fn failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_burst_becomes_one_dispatch_and_noise_is_acknowledged() {
    let (ds, lr) = (describe_stacks(), list_resources(stack_rows()));
    let handler = handler_with(&[&ds, &lr], &[], Recorder::default());
    let payload = sqs(&[
        ("m1", cloudtrail("lambda-update-function-code")),
        ("m2", cloudtrail("iam-put-role-policy")),
        ("m3", cloudtrail("events-disable-rule")),
        ("m4", cloudtrail("lambda-deploy-role")),
        ("m5", "not json at all".into()),
        ("m6", cloudtrail("lambda-other-stack")),
        ("m7", cloudtrail("iam-put-role-policy")),
    ]);
    let response = handler.handle(payload).await.unwrap();
    assert_eq!(failures(&response), Vec::<String>::new());
    let bodies = handler.notifier.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "one dispatch per batch");
    let payload = &bodies[0]["client_payload"];
    assert_eq!(bodies[0]["event_type"], "ssm-drift");
    assert_eq!(payload["source"], "event");
    assert_eq!(
        payload["count"], 3,
        "m7 duplicates m2 (at-least-once delivery)"
    );
    assert_eq!(payload["event_ids"].as_array().unwrap().len(), 3);
    assert_eq!(
        lr.num_calls(),
        2,
        "a miss (m6) refreshes the stack once, not per event"
    );
}

/// `DescribeStackEvents` of the fixture stack: stack-level rows, newest first.
fn stack_events(rows: &'static [(&'static str, &'static str)]) -> Rule {
    mock!(aws_sdk_cloudformation::Client::describe_stack_events)
        .match_requests(|r| r.stack_name() == Some(STACK_ID))
        .then_output(move || {
            let events = rows.iter().map(|(time, status)| {
                let at: chrono::DateTime<chrono::Utc> = time.parse().unwrap();
                StackEvent::builder()
                    .stack_id(STACK_ID)
                    .event_id(format!("{time}-{status}"))
                    .stack_name("Ssm")
                    .logical_resource_id("Ssm")
                    .physical_resource_id(STACK_ID)
                    .resource_type("AWS::CloudFormation::Stack")
                    .resource_status(ResourceStatus::from(*status))
                    .timestamp(aws_smithy_types::DateTime::from_secs(at.timestamp()))
                    .build()
            });
            DescribeStackEventsOutput::builder()
                .set_stack_events(Some(events.collect()))
                .build()
        })
}

const OUR_DEPLOY: &[(&str, &str)] = &[
    ("2024-05-01T12:05:00Z", "UPDATE_COMPLETE"),
    ("2024-05-01T11:55:00Z", "UPDATE_IN_PROGRESS"),
    ("2024-05-01T10:00:00Z", "CREATE_COMPLETE"),
];

#[tokio::test]
async fn nothing_to_report_sends_nothing() {
    let (ds, lr, ev) = (
        describe_stacks(),
        list_resources(stack_rows()),
        stack_events(OUR_DEPLOY),
    );
    let handler = handler_with(&[&ds, &lr, &ev], &[], Recorder::default());
    let payload = sqs(&[
        ("m1", cloudtrail("lambda-deploy-role")),
        ("m2", cloudtrail("lambda-cloudformation-invoked")),
        ("m3", cloudtrail("secretsmanager-rotation-put-secret-value")),
        ("m4", cloudtrail("secretsmanager-operator-rotate-secret")),
    ]);
    let response = handler.handle(payload).await.unwrap();
    assert_eq!(failures(&response), Vec::<String>::new());
    assert_eq!(handler.notifier.calls.load(Ordering::SeqCst), 0);
    assert_eq!(
        ev.num_calls(),
        1,
        "one read of the stack's operations per batch"
    );
}

/// Issue 19, point 4: the same CloudFormation call while our stack was idle (its last operation
/// ended at 10:00) was made for another stack: drift. A batch without CloudFormation calls reads
/// no stack events.
#[tokio::test]
async fn cloudformation_outside_our_operations_is_drift() {
    const IDLE: &[(&str, &str)] = &[
        ("2024-05-01T10:00:00Z", "UPDATE_COMPLETE"),
        ("2024-05-01T09:50:00Z", "UPDATE_IN_PROGRESS"),
    ];
    let (ds, lr, ev) = (
        describe_stacks(),
        list_resources(stack_rows()),
        stack_events(IDLE),
    );
    let handler = handler_with(&[&ds, &lr, &ev], &[], Recorder::default());
    let response = handler
        .handle(sqs(&[("m1", cloudtrail("lambda-cloudformation-invoked"))]))
        .await
        .unwrap();
    assert_eq!(failures(&response), Vec::<String>::new());
    let bodies = handler.notifier.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    assert_eq!(
        bodies[0]["client_payload"]["calls"],
        json!(["lambda.amazonaws.com:UpdateFunctionConfiguration20150331v2"])
    );
    handler
        .handle(sqs(&[("m2", cloudtrail("lambda-deploy-role"))]))
        .await
        .unwrap();
    assert_eq!(ev.num_calls(), 1);
}

#[tokio::test]
async fn unreadable_stack_events_redeliver_the_batch() {
    let (ds, lr) = (describe_stacks(), list_resources(stack_rows()));
    let ev = mock!(aws_sdk_cloudformation::Client::describe_stack_events)
        .then_error(|| DescribeStackEventsError::unhandled("throttled"));
    let handler = handler_with(&[&ds, &lr, &ev], &[], Recorder::default());
    let batch = ["lambda-cloudformation-invoked", "lambda-deploy-role"].map(cloudtrail);
    let response = handler
        .handle(sqs(&[("m1", batch[0].clone()), ("m2", batch[1].clone())]))
        .await
        .unwrap();
    assert_eq!(failures(&response), ["m1", "m2"]);
    assert_eq!(handler.notifier.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn failed_dispatch_returns_the_drift_messages_for_redelivery() {
    let (ds, lr) = (describe_stacks(), list_resources(stack_rows()));
    let handler = handler_with(
        &[&ds, &lr],
        &[],
        Recorder {
            fail: usize::MAX,
            ..Default::default()
        },
    );
    let payload = sqs(&[
        ("m1", cloudtrail("lambda-update-function-code")),
        ("m2", cloudtrail("lambda-deploy-role")),
        ("m3", cloudtrail("apigateway-update-stage")),
        ("m4", "{}".into()),
    ]);
    let response = handler.handle(payload).await.unwrap();
    // m2 (our deploy) and m4 (unparseable) would never become drift: redelivering them is useless.
    assert_eq!(failures(&response), ["m1", "m3"]);
}

#[tokio::test]
async fn unreadable_stack_fails_the_whole_batch() {
    let ds = describe_stacks();
    let lr = mock!(aws_sdk_cloudformation::Client::list_stack_resources)
        .then_error(|| ListStackResourcesError::unhandled("Throttling"));
    let handler = handler_with(&[&ds, &lr], &[], Recorder::default());
    let payload = sqs(&[
        ("m1", cloudtrail("lambda-update-function-code")),
        ("m2", cloudtrail("lambda-deploy-role")),
    ]);
    let response = handler.handle(payload).await.unwrap();
    assert_eq!(failures(&response), ["m1", "m2"]);
}

fn summaries(rows: &[StackResource]) -> ListStackResourcesOutput {
    let mut out = ListStackResourcesOutput::builder();
    for r in rows {
        out = out.stack_resource_summaries(
            StackResourceSummary::builder()
                .logical_resource_id(&r.logical_id)
                .physical_resource_id(&r.physical_id)
                .resource_type(&r.resource_type)
                .build(),
        );
    }
    out.build()
}

#[tokio::test]
async fn a_resource_created_by_the_latest_deploy_is_found_after_one_refresh() {
    let ds = describe_stacks();
    let before: Vec<_> = stack_rows()
        .into_iter()
        .filter(|r| r.resource_type != "AWS::Lambda::Function")
        .collect();
    let lr = mock!(aws_sdk_cloudformation::Client::list_stack_resources)
        .sequence()
        .output(move || summaries(&before))
        .output(|| summaries(&stack_rows()))
        .build();
    let handler = handler_with(&[&ds, &lr], &[], Recorder::default());
    let response = handler
        .handle(sqs(&[("m1", cloudtrail("lambda-update-function-code"))]))
        .await
        .unwrap();
    assert_eq!(failures(&response), Vec::<String>::new());
    assert_eq!(
        lr.num_calls(),
        2,
        "the cached list missed the function; one refresh found it"
    );
    let bodies = handler.notifier.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["client_payload"]["count"], 1);
}

#[tokio::test]
async fn unknown_invocations_are_acknowledged() {
    let (ds, lr) = (describe_stacks(), list_resources(stack_rows()));
    let handler = handler_with(&[&ds, &lr], &[], Recorder::default());
    for payload in [
        json!({"hello": "world"}),
        json!(null),
        json!({"Records": [{"eventSource": "aws:sns"}]}),
    ] {
        assert_eq!(handler.handle(payload).await.unwrap(), json!({}));
    }
    assert_eq!(handler.notifier.calls.load(Ordering::SeqCst), 0);
    assert_eq!(lr.num_calls(), 0);
}

/// The deployed template: the crypto function's code hash as CDK recorded it at synth.
fn template() -> String {
    template_recording(Some(&zip_sha256()))
}

fn template_recording(code_sha256: Option<&str>) -> String {
    let metadata = match code_sha256 {
        Some(hash) => json!({"ssm:CodeSha256": hash, "aws:asset:property": "Code"}),
        None => json!({"aws:asset:property": "Code"}),
    };
    json!({"Resources": {
        "CryptoFn1A2B3C4D": {"Type": "AWS::Lambda::Function", "Metadata": metadata, "Properties": {
            "Code": {"S3Bucket": {"Fn::Sub": "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}"},
                     "S3Key": "4f1c0e7a9b2d.zip"},
            "Handler": "bootstrap", "Runtime": "provided.al2023"}},
        "KeyringSecret1D2E3F4A": {"Type": "AWS::SecretsManager::Secret"}
    }})
    .to_string()
}

fn zip_sha256() -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(ZIP))
}

struct SweepMocks {
    rules: Vec<Rule>,
    lambda: Rule,
}

fn sweep_mocks(status: StackDriftDetectionStatus, deployed_sha: String) -> SweepMocks {
    sweep_mocks_with(status, deployed_sha, template())
}

fn sweep_mocks_with(
    status: StackDriftDetectionStatus,
    deployed_sha: String,
    template: String,
) -> SweepMocks {
    let detect = mock!(aws_sdk_cloudformation::Client::detect_stack_drift).then_output(|| {
        DetectStackDriftOutput::builder()
            .stack_drift_detection_id("d-1")
            .build()
    });
    let progress = mock!(aws_sdk_cloudformation::Client::describe_stack_drift_detection_status)
        .sequence()
        .output(|| {
            DescribeStackDriftDetectionStatusOutput::builder()
                .detection_status(StackDriftDetectionStatus::DetectionInProgress)
                .build()
        })
        .output(move || {
            DescribeStackDriftDetectionStatusOutput::builder()
                .detection_status(status.clone())
                .build()
        })
        .repeatedly()
        .build();
    let drifts = mock!(aws_sdk_cloudformation::Client::describe_stack_resource_drifts)
        .match_requests(|r| {
            r.stack_resource_drift_status_filters()
                == [
                    StackResourceDriftStatus::Modified,
                    StackResourceDriftStatus::Deleted,
                ]
        })
        .then_output(|| {
            DescribeStackResourceDriftsOutput::builder()
                .stack_resource_drifts(
                    StackResourceDrift::builder()
                        .logical_resource_id("SweepRule5B6C7D8E")
                        .physical_resource_id("Ssm-SweepRule5B6C7D8E-1A2B3C4D5E6F")
                        .resource_type("AWS::Events::Rule")
                        .stack_resource_drift_status(StackResourceDriftStatus::Modified)
                        .build(),
                )
                .build()
        });
    let get_template = mock!(aws_sdk_cloudformation::Client::get_template).then_output(move || {
        GetTemplateOutput::builder()
            .template_body(template.clone())
            .build()
    });
    let lambda = mock!(aws_sdk_lambda::Client::get_function_configuration)
        .match_requests(|r| r.function_name() == Some("Ssm-CryptoFn1A2B3C4D-abcdEFGH1234"))
        .then_output(move || {
            GetFunctionConfigurationOutput::builder()
                .code_sha256(deployed_sha.clone())
                .build()
        });
    SweepMocks {
        rules: vec![
            describe_stacks(),
            list_resources(stack_rows()),
            detect,
            progress,
            drifts,
            get_template,
        ],
        lambda,
    }
}

async fn sweep(
    mocks: &SweepMocks,
    recorder: Recorder,
) -> (Result<Value, HandlerError>, Vec<Value>) {
    let cfn_rules: Vec<&Rule> = mocks.rules.iter().collect();
    let handler = handler_with(&cfn_rules, &[&mocks.lambda], recorder);
    let scheduled = json!({"version": "0", "id": "sweep-1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "111122223333", "time": "2024-05-01T12:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:111122223333:rule/Ssm-SweepSchedule"], "detail": {}});
    let result = handler.handle(scheduled).await;
    let bodies = handler.notifier.bodies.lock().unwrap().clone();
    (result, bodies)
}

#[tokio::test]
async fn sweep_reports_cloudformation_drift_and_code_drift_in_one_dispatch() {
    let mocks = sweep_mocks(
        StackDriftDetectionStatus::DetectionComplete,
        "c29tZXRoaW5nIGVsc2U=".into(),
    );
    let (result, bodies) = sweep(&mocks, Recorder::default()).await;
    let summary = result.unwrap();
    assert_eq!(summary["findings"], 2);
    assert_eq!(summary["driftDetectionComplete"], true);
    assert_eq!(bodies.len(), 1);
    let payload = &bodies[0]["client_payload"];
    assert_eq!(payload["source"], "sweep");
    assert_eq!(
        payload["calls"],
        json!(["code:CodeSha256", "drift:MODIFIED"])
    );
    assert_eq!(
        payload["resources"],
        json!([
            "CryptoFn1A2B3C4D (AWS::Lambda::Function Ssm-CryptoFn1A2B3C4D-abcdEFGH1234)",
            "SweepRule5B6C7D8E (AWS::Events::Rule Ssm-SweepRule5B6C7D8E-1A2B3C4D5E6F)"
        ])
    );
}

/// Issue 19, point 1: the asset object was overwritten after the deploy and the function's code
/// replaced from it (as a repair that trusted the object would). The sweep still expects the
/// hash the deployed template recorded, so the replaced code is drift. The old sweep hashed the
/// object as it stood, found it equal to the live code, and reported nothing.
#[tokio::test]
async fn code_from_an_overwritten_asset_object_is_drift() {
    let overwritten = base64::engine::general_purpose::STANDARD
        .encode(Sha256::digest(b"PK\x03\x04 the attacker's zip"));
    let mocks = sweep_mocks(StackDriftDetectionStatus::DetectionComplete, overwritten);
    let (result, bodies) = sweep(&mocks, Recorder::default()).await;
    assert_eq!(result.unwrap()["findings"], 2);
    assert_eq!(
        bodies[0]["client_payload"]["calls"],
        json!(["code:CodeSha256", "drift:MODIFIED"])
    );
}

/// A function whose deployed template records no hash is escalated, never skipped.
#[tokio::test]
async fn a_function_without_a_recorded_hash_is_escalated() {
    for template in [template_recording(None), "Resources: {}".to_owned()] {
        let mocks = sweep_mocks_with(
            StackDriftDetectionStatus::DetectionComplete,
            zip_sha256(),
            template,
        );
        let (result, bodies) = sweep(&mocks, Recorder::default()).await;
        assert_eq!(result.unwrap()["findings"], 2);
        assert_eq!(
            bodies[0]["client_payload"]["calls"],
            json!(["code:unrecorded", "drift:MODIFIED"])
        );
        assert_eq!(mocks.lambda.num_calls(), 1);
    }
}

#[tokio::test]
async fn sweep_with_matching_code_reports_only_cloudformation_drift() {
    let mocks = sweep_mocks(StackDriftDetectionStatus::DetectionComplete, zip_sha256());
    let (result, bodies) = sweep(&mocks, Recorder::default()).await;
    assert_eq!(result.unwrap()["findings"], 1);
    assert_eq!(
        bodies[0]["client_payload"]["calls"],
        json!(["drift:MODIFIED"])
    );
    assert_eq!(mocks.lambda.num_calls(), 1);
}

#[tokio::test]
async fn sweep_gives_up_on_slow_detection_within_its_bound_but_still_checks_code() {
    let mocks = sweep_mocks(
        StackDriftDetectionStatus::DetectionInProgress,
        "c29tZXRoaW5nIGVsc2U=".into(),
    );
    let started = std::time::Instant::now();
    let (result, bodies) = sweep(&mocks, Recorder::default()).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by drift_timeout"
    );
    let summary = result.unwrap();
    assert_eq!(summary["driftDetectionComplete"], false);
    assert_eq!(
        bodies[0]["client_payload"]["calls"],
        json!(["code:CodeSha256"]),
        "stale drift rows are not used"
    );
}

#[tokio::test]
async fn sweep_dispatch_failure_is_an_invocation_error_for_the_scheduler_to_retry() {
    let mocks = sweep_mocks(StackDriftDetectionStatus::DetectionComplete, zip_sha256());
    let (result, bodies) = sweep(
        &mocks,
        Recorder {
            fail: 1,
            ..Default::default()
        },
    )
    .await;
    assert!(matches!(result, Err(HandlerError::Sweep(_))));
    assert!(bodies.is_empty());
}

#[tokio::test]
async fn clean_sweep_sends_nothing() {
    let mut mocks = sweep_mocks(StackDriftDetectionStatus::DetectionComplete, zip_sha256());
    mocks.rules[4] = mock!(aws_sdk_cloudformation::Client::describe_stack_resource_drifts)
        .then_output(|| DescribeStackResourceDriftsOutput::builder().build());
    let (result, bodies) = sweep(&mocks, Recorder::default()).await;
    assert_eq!(result.unwrap()["dispatched"], false);
    assert!(bodies.is_empty());
}

// ---- Issue 10.8: a resource added after the list was read -------------------------------------

fn without_functions() -> Vec<StackResource> {
    stack_rows()
        .into_iter()
        .filter(|r| r.resource_type != "AWS::Lambda::Function")
        .collect()
}

/// The production bounds, but a floor short enough for a test to wait out.
fn short_floor(min_interval: Duration) -> RefreshPolicy {
    RefreshPolicy {
        min_interval,
        ..RefreshPolicy::default()
    }
}

#[tokio::test]
async fn a_change_to_a_resource_added_after_the_list_was_read_is_drift() {
    let ds = describe_stacks();
    let lr = mock!(aws_sdk_cloudformation::Client::list_stack_resources)
        .sequence()
        .output(|| summaries(&without_functions()))
        .output(|| summaries(&stack_rows()))
        .build();
    let policy = short_floor(Duration::from_millis(50));
    assert_eq!(
        policy.stale_after,
        Duration::from_secs(30),
        "the list stays younger than the old 30 s minimum age throughout"
    );
    let (handler, _) = bounded(&[&ds, &lr], policy, Recorder::default());
    // A batch reads the list; then a deploy adds the function and someone changes it.
    let first = handler
        .handle(sqs(&[("m1", cloudtrail("iam-put-role-policy"))]))
        .await
        .unwrap();
    assert_eq!(failures(&first), Vec::<String>::new());
    tokio::time::sleep(Duration::from_millis(80)).await;
    let change = at("lambda-update-function-code", chrono::Utc::now());
    let response = handler.handle(sqs(&[("m2", change)])).await.unwrap();
    assert_eq!(failures(&response), Vec::<String>::new());
    assert_eq!(
        lr.num_calls(),
        2,
        "the event postdates the list: one re-read"
    );
    let bodies = handler.notifier.bodies.lock().unwrap().clone();
    assert_eq!(
        bodies.len(),
        2,
        "the change is drift, not 'outside the stack'"
    );
    assert!(
        bodies[1]["client_payload"]["resources"][0]
            .as_str()
            .unwrap()
            .starts_with("CryptoFn")
    );
}

#[tokio::test]
async fn an_event_that_may_postdate_a_list_too_recent_to_reread_is_redelivered_not_dropped() {
    let ds = describe_stacks();
    let lr = list_resources(without_functions());
    let (handler, _) = bounded(
        &[&ds, &lr],
        short_floor(Duration::from_secs(3600)),
        Recorder::default(),
    );
    let response = handler
        .handle(sqs(&[
            ("new", at("lambda-update-function-code", chrono::Utc::now())),
            ("old", cloudtrail("lambda-other-stack")),
        ]))
        .await
        .unwrap();
    assert_eq!(
        failures(&response),
        ["new"],
        "decided on redelivery, once the list may be re-read; the 2024 event is final"
    );
    assert_eq!(lr.num_calls(), 1);
    assert_eq!(handler.notifier.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn forged_future_events_cannot_flood_cloudformation() {
    let forged = || {
        at(
            "lambda-other-stack",
            "2999-01-01T00:00:00Z".parse().unwrap(),
        )
    };
    let floor = Duration::from_millis(100);
    let ds = describe_stacks();
    let lr = list_resources(stack_rows());
    let (handler, _) = bounded(&[&ds, &lr], short_floor(floor), Recorder::default());
    let started = Instant::now();
    let mut deferred = 0;
    for i in 0..40 {
        let id = format!("f{i}");
        let response = handler
            .handle(sqs(&[(id.as_str(), forged())]))
            .await
            .unwrap();
        deferred += failures(&response).len();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    let bound = 1 + usize::try_from(elapsed.as_millis() / floor.as_millis()).unwrap();
    let reads = lr.num_calls();
    assert!(
        (2..=bound).contains(&reads),
        "{reads} reads in {elapsed:?}: at most one per {floor:?}"
    );
    assert_eq!(
        deferred,
        40 + 1 - reads,
        "each batch either re-read (then final) or was deferred"
    );
    assert_eq!(handler.notifier.calls.load(Ordering::SeqCst), 0);

    // Without the floor, the same stream would read the stack for every batch.
    let lr = list_resources(stack_rows());
    let (unbounded, _) = bounded(
        &[&ds, &lr],
        short_floor(Duration::ZERO),
        Recorder::default(),
    );
    for i in 0..10 {
        let id = format!("f{i}");
        unbounded
            .handle(sqs(&[(id.as_str(), forged())]))
            .await
            .unwrap();
    }
    assert_eq!(lr.num_calls(), 11);
}

// ---- Issue 10.7: configuration errors are alarmable --------------------------------------------

fn broker_refusal() -> DispatchError {
    DispatchError::Token(TokenError {
        retryable: false,
        source: Box::new(BrokerClientError::Status {
            status: 403,
            code: "repository_not_allowed".into(),
            message: "the policy does not allow this role on acme/infra".into(),
        }),
    })
}

#[tokio::test]
async fn a_broker_refusal_counts_as_a_configuration_error_and_the_drift_is_kept() {
    let (ds, lr) = (describe_stacks(), list_resources(stack_rows()));
    let (handler, metrics) = bounded(
        &[&ds, &lr],
        RefreshPolicy::default(),
        Recorder {
            fail: usize::MAX,
            error: Some(broker_refusal),
            ..Default::default()
        },
    );
    let response = handler
        .handle(sqs(&[
            ("m1", cloudtrail("lambda-update-function-code")),
            ("m2", cloudtrail("lambda-deploy-role")),
        ]))
        .await
        .unwrap();
    assert_eq!(
        failures(&response),
        ["m1"],
        "redelivered, then kept by the DLQ for a redrive after the fix"
    );
    let documents = metrics.documents();
    assert_eq!(documents.len(), 1, "one metric per refused dispatch");
    let doc = &documents[0];
    let directive = &doc["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "ServerlessSSM/Integrity");
    assert_eq!(directive["Metrics"][0]["Name"], "ConfigurationError");
    assert_eq!(directive["Dimensions"][0], json!(["Stack"]));
    assert_eq!(doc["Stack"], "Ssm");
    assert_eq!(doc["Code"], "repository_not_allowed");
    assert_eq!(doc["ConfigurationError"], 1);
    assert!(
        doc["remedy"]
            .as_str()
            .unwrap()
            .contains("SSM_GITHUB_REPOSITORY")
    );
}

#[tokio::test]
async fn outages_are_not_counted_as_configuration_errors() {
    let (ds, lr) = (describe_stacks(), list_resources(stack_rows()));
    let (handler, metrics) = bounded(
        &[&ds, &lr],
        RefreshPolicy::default(),
        Recorder {
            fail: usize::MAX,
            ..Default::default()
        },
    );
    let response = handler
        .handle(sqs(&[("m1", cloudtrail("lambda-update-function-code"))]))
        .await
        .unwrap();
    assert_eq!(failures(&response), ["m1"]);
    assert!(metrics.documents().is_empty());
}

#[tokio::test]
async fn a_refused_sweep_dispatch_counts_as_a_configuration_error() {
    let mocks = sweep_mocks(StackDriftDetectionStatus::DetectionComplete, zip_sha256());
    let cfn_rules: Vec<&Rule> = mocks.rules.iter().collect();
    let mut handler = handler_with(
        &cfn_rules,
        &[&mocks.lambda],
        Recorder {
            fail: 1,
            error: Some(|| DispatchError::Rejected {
                status: 404,
                message: "Not Found".into(),
            }),
            ..Default::default()
        },
    );
    let metrics = Arc::new(Metrics::default());
    handler.metrics = metrics.clone();
    let scheduled = json!({"version": "0", "id": "sweep-1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "111122223333", "time": "2024-05-01T12:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:111122223333:rule/Ssm-SweepSchedule"], "detail": {}});
    let result = handler.handle(scheduled).await;
    assert!(matches!(result, Err(HandlerError::Sweep(_))));
    let documents = metrics.documents();
    assert_eq!(documents.len(), 1);
    assert_eq!(documents[0]["Code"], "github_404");
}

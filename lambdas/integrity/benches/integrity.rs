//! Classification throughput and the handler's latency for a 10-event batch, network excluded,
//! each beside a peer measured in the same run: parsing the same JSON into `serde_json::Value`.
//! `bench/integrity-bench.sh` runs this and prints the ratios.

#![expect(clippy::unwrap_used, reason = "benchmark setup")]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_cloudformation::operation::describe_stack_events::DescribeStackEventsOutput;
use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput;
use aws_sdk_cloudformation::operation::list_stack_resources::ListStackResourcesOutput;
use aws_sdk_cloudformation::types::{ResourceStatus, Stack, StackEvent, StackResourceSummary};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use ssm_core::integrity::{
    CloudTrailEvent, IgnorePolicy, RefreshPolicy, StackResource, StackResources, classify,
};
use ssm_integrity::Handler;
use ssm_integrity::dispatch::{DispatchError, Notify};
use ssm_integrity::metrics::StdoutMetrics;
use ssm_integrity::stack::StackSource;
use ssm_integrity::sweep::Sweeper;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn fixtures() -> Vec<String> {
    let mut paths: Vec<_> = std::fs::read_dir(format!("{DIR}/cloudtrail"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

fn rows() -> Vec<StackResource> {
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{DIR}/stack-resources.json")).unwrap(),
    )
    .unwrap();
    json["StackResourceSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| StackResource {
            logical_id: r["LogicalResourceId"].as_str().unwrap().into(),
            physical_id: r["PhysicalResourceId"].as_str().unwrap().into(),
            resource_type: r["ResourceType"].as_str().unwrap().into(),
        })
        .collect()
}

fn policy() -> IgnorePolicy {
    IgnorePolicy::from_role_arns([
        "arn:aws:iam::111122223333:role/cdk-hnb659fds-deploy-role-111122223333-us-east-1",
        "arn:aws:iam::111122223333:role/Ssm-RotationFnServiceRoleE4F5A6B7-IJKLMNOP5678",
    ])
    .unwrap()
}

struct Discard;

impl Notify for Discard {
    async fn notify(&self, body: &Value) -> Result<(), DispatchError> {
        black_box(serde_json::to_vec(body).unwrap());
        Ok(())
    }
}

fn classification(c: &mut Criterion) {
    let events = fixtures();
    let stack = StackResources::new(
        Some("111122223333".into()),
        Some("us-east-1".into()),
        rows(),
    );
    let policy = policy();
    let mut group = c.benchmark_group("classify");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("parse_and_classify", |b| {
        b.iter(|| {
            for e in &events {
                let event = CloudTrailEvent::from_json(black_box(e)).unwrap();
                black_box(classify(&event, &stack, &policy));
            }
        })
    });
    group.bench_function("peer_serde_json_value", |b| {
        b.iter(|| {
            for e in &events {
                black_box(serde_json::from_str::<Value>(black_box(e)).unwrap());
            }
        })
    });
    group.finish();
}

/// The fixture stack the mocked CloudFormation describes.
const STACK_ID: &str = "arn:aws:cloudformation:us-east-1:111122223333:stack/Ssm/0a1b2c3d";

fn batch_latency(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let summaries = rows();
    let ds = mock!(aws_sdk_cloudformation::Client::describe_stacks).then_output(|| {
        DescribeStacksOutput::builder()
            .stacks(
                Stack::builder()
                    .stack_id(STACK_ID)
                    .stack_name("Ssm")
                    .build(),
            )
            .build()
    });
    let lr = mock!(aws_sdk_cloudformation::Client::list_stack_resources).then_output(move || {
        let mut out = ListStackResourcesOutput::builder();
        for r in &summaries {
            out = out.stack_resource_summaries(
                StackResourceSummary::builder()
                    .logical_resource_id(&r.logical_id)
                    .physical_resource_id(&r.physical_id)
                    .resource_type(&r.resource_type)
                    .build(),
            );
        }
        out.build()
    });
    // The stack's last operation, finished a day ago: one page of events says no deploy is under
    // way (the handler reads it to classify CloudFormation's own calls).
    let ev = mock!(aws_sdk_cloudformation::Client::describe_stack_events).then_output(|| {
        DescribeStackEventsOutput::builder()
            .stack_events(
                StackEvent::builder()
                    .stack_id(STACK_ID)
                    .event_id("update-complete")
                    .stack_name("Ssm")
                    .logical_resource_id("Ssm")
                    .physical_resource_id(STACK_ID)
                    .resource_type("AWS::CloudFormation::Stack")
                    .resource_status(ResourceStatus::UpdateComplete)
                    .timestamp(aws_smithy_types::DateTime::from_secs(
                        chrono::Utc::now().timestamp() - 86_400,
                    ))
                    .build(),
            )
            .build()
    });
    let cfn = mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, [&ds, &lr, &ev]);
    let handler = Handler {
        // Long TTL and floor: the stack is read once (as in a warm Lambda), never per batch.
        stack: StackSource::new(
            cfn.clone(),
            "Ssm",
            Duration::from_secs(3600),
            RefreshPolicy {
                stale_after: Duration::from_secs(3600),
                min_interval: Duration::from_secs(3600),
                ..RefreshPolicy::default()
            },
        ),
        sweeper: Sweeper::new(
            cfn,
            mock_client!(aws_sdk_lambda, RuleMode::MatchAny, &[]),
            Duration::from_secs(1),
        ),
        policy: policy(),
        notifier: Discard,
        metrics: Arc::new(StdoutMetrics),
    };
    let events = fixtures();
    // Ten events: eight that drift and two that are ignored, as a real burst would mix them.
    let picks = [0, 1, 2, 3, 5, 6, 8, 10, 12, 13];
    let payload = json!({"Records": picks.iter().map(|&i| json!({
        "messageId": format!("m{i}"), "receiptHandle": "AQEB", "body": events[i % events.len()],
        "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:111122223333:q", "awsRegion": "us-east-1"})).collect::<Vec<_>>()});
    runtime.block_on(handler.handle(payload.clone())).unwrap();
    let raw = payload.to_string();
    let mut group = c.benchmark_group("batch10");
    group.bench_function("handler", |b| {
        b.iter(|| {
            let payload: Value = serde_json::from_str(black_box(&raw)).unwrap();
            black_box(runtime.block_on(handler.handle(payload)).unwrap())
        })
    });
    group.bench_function("peer_serde_json_value", |b| {
        b.iter(|| {
            let payload: Value = serde_json::from_str(black_box(&raw)).unwrap();
            for r in payload["Records"].as_array().unwrap() {
                black_box(serde_json::from_str::<Value>(r["body"].as_str().unwrap()).unwrap());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, classification, batch_latency);
criterion_main!(benches);

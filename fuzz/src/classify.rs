//! CloudTrail classification: parsing and classifying never panic and are deterministic; drift
//! names at least one resource, all of them the stack's; a failed call is never drift; the
//! dispatch built from drift stays within GitHub's limits.
//!
//! Input: an EventBridge "AWS API Call via CloudTrail" event, as the Integrity Lambda receives
//! it; classified against the Integrity Lambda's fixture stack and ignore policy.

use std::sync::OnceLock;

use ssm_core::integrity::payload::{MAX_ENTRY_CHARS, MAX_LIST, MAX_PAYLOAD_KEYS};
use ssm_core::integrity::{
    Classification, CloudTrailEvent, DriftSource, Finding, IgnorePolicy, Ignored, StackResource,
    StackResources, build_dispatch, classify,
};

const ACCOUNT: &str = "111122223333";
const IGNORED_ROLES: [&str; 3] = [
    "arn:aws:iam::111122223333:role/cdk-hnb659fds-deploy-role-111122223333-us-east-1",
    "arn:aws:iam::111122223333:role/cdk-hnb659fds-cfn-exec-role-111122223333-us-east-1",
    "arn:aws:iam::111122223333:role/Ssm-RotationFnServiceRoleE4F5A6B7-IJKLMNOP5678",
];

struct Fixture {
    rows: Vec<StackResource>,
    stack: StackResources,
    policy: IgnorePolicy,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let json: serde_json::Value = serde_json::from_str(include_str!(
            "../../lambdas/integrity/tests/fixtures/stack-resources.json"
        ))
        .expect("the stack fixture is JSON");
        let field = |r: &serde_json::Value, name: &str| r[name].as_str().unwrap_or_default().into();
        let rows: Vec<StackResource> = json["StackResourceSummaries"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|r| StackResource {
                logical_id: field(r, "LogicalResourceId"),
                physical_id: field(r, "PhysicalResourceId"),
                resource_type: field(r, "ResourceType"),
            })
            .collect();
        Fixture {
            stack: StackResources::new(
                Some(ACCOUNT.into()),
                Some("us-east-1".into()),
                rows.iter().cloned(),
            ),
            rows,
            policy: IgnorePolicy::from_role_arns(IGNORED_ROLES).expect("role ARNs"),
        }
    })
}

pub(crate) fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(event) = CloudTrailEvent::from_json(text) else {
        return;
    };
    let fixture = fixture();
    let first = classify(&event, &fixture.stack, &fixture.policy);
    let again = CloudTrailEvent::from_json(text).expect("parsing is deterministic");
    assert_eq!(
        classify(&again, &fixture.stack, &fixture.policy),
        first,
        "classification is not deterministic"
    );
    // The log line's caller and reason render for any input.
    let _ = event.caller().to_string();
    if let Classification::Ignored(reason) = &first {
        let _ = reason.to_string();
    }

    if event.detail.error_code.is_some() {
        assert!(
            matches!(first, Classification::Ignored(Ignored::Failed { .. })),
            "a failed call classified as {first:?}"
        );
    }
    let Classification::Drift(drift) = first else {
        return;
    };
    assert!(!drift.resources.is_empty(), "drift without resources");
    for resource in &drift.resources {
        assert!(
            fixture.rows.contains(resource),
            "drift names {resource:?}, which is not the stack's"
        );
    }
    let findings = Finding::from_drift(&drift);
    assert_eq!(findings.len(), drift.resources.len());
    let dispatch = build_dispatch("Ssm", DriftSource::Event, &findings).expect("drift dispatches");
    let payload = dispatch["client_payload"]
        .as_object()
        .expect("a client_payload object");
    assert!(payload.len() <= MAX_PAYLOAD_KEYS);
    for list in payload.values().filter_map(serde_json::Value::as_array) {
        assert!(list.len() <= MAX_LIST);
        for entry in list.iter().filter_map(serde_json::Value::as_str) {
            assert!(entry.chars().count() <= MAX_ENTRY_CHARS);
        }
    }
}

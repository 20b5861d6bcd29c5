//! Every real-shaped CloudTrail fixture classified against the fixture stack: what must trigger
//! and what must not, each with its reason.

#![expect(
    clippy::panic,
    reason = "test helpers fail the test with the fixture name"
)]

mod common;

use common::*;
use ssm_core::integrity::{
    Caller, Classification, CloudTrailEvent, IgnorePolicy, Ignored, StackOperations,
    build_dispatch, classify, classify_in,
};

/// Classified as the Lambda does, with our stack's deploy from 11:55 to 12:05.
fn classify_fixture(name: &str) -> Classification {
    let event =
        CloudTrailEvent::from_json(&cloudtrail(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    classify_in(&event, &stack(), &policy(), &our_deploy())
}

fn drift_of(name: &str) -> (Vec<String>, Caller, String) {
    match classify_fixture(name) {
        Classification::Drift(d) => (
            d.resources.into_iter().map(|r| r.logical_id).collect(),
            d.caller,
            d.event_name,
        ),
        other => panic!("{name}: expected drift, got {other:?}"),
    }
}

#[test]
fn out_of_band_changes_trigger() {
    let cases = [
        (
            "lambda-update-function-code",
            "CryptoFn1A2B3C4D",
            "UpdateFunctionCode20150331v2",
        ),
        (
            "lambda-update-function-configuration-iam-user",
            "CryptoFn1A2B3C4D",
            "UpdateFunctionConfiguration20150331v2",
        ),
        (
            "lambda-add-permission-root",
            "CryptoFn1A2B3C4D",
            "AddPermission20150331v2",
        ),
        (
            "lambda-function-by-arn",
            "CryptoFn1A2B3C4D",
            "UpdateFunctionCode20150331v2",
        ),
        (
            "lambda-cdk-named-role-not-deploy",
            "CryptoFn1A2B3C4D",
            "UpdateFunctionConfiguration20150331v2",
        ),
        (
            "apigateway-update-route-federated",
            "HttpApiF5A9A8A7",
            "UpdateRoute",
        ),
        ("apigateway-update-stage", "HttpApiF5A9A8A7", "UpdateStage"),
        (
            "secretsmanager-put-resource-policy",
            "KeyringSecret1D2E3F4A",
            "PutResourcePolicy",
        ),
        (
            "secretsmanager-put-secret-value-by-name",
            "KeyringSecret1D2E3F4A",
            "PutSecretValue",
        ),
        ("events-disable-rule", "SweepRule5B6C7D8E", "DisableRule"),
        // CloudFormation with our shared execution role, deploying another stack while ours is
        // idle, grants a permission on our function.
        (
            "lambda-cloudformation-other-stack-add-permission",
            "CryptoFn1A2B3C4D",
            "AddPermission20150331v2",
        ),
        // CloudFormation with another stack's service role, during our deploy.
        (
            "secretsmanager-cloudformation-other-role-policy",
            "KeyringSecret1D2E3F4A",
            "PutResourcePolicy",
        ),
        // RotateSecret that points rotation at another function.
        (
            "secretsmanager-rotate-secret-other-function",
            "KeyringSecret1D2E3F4A",
            "RotateSecret",
        ),
        // The keyring operator role may write values, not policies.
        (
            "secretsmanager-keyring-operator-put-resource-policy",
            "KeyringSecret1D2E3F4A",
            "PutResourcePolicy",
        ),
        (
            "iam-put-role-policy",
            "CryptoFnServiceRole7C2D1B9A",
            "PutRolePolicy",
        ),
    ];
    for (fixture, logical_id, call) in cases {
        let (resources, _, event_name) = drift_of(fixture);
        assert_eq!(resources, [logical_id], "{fixture}");
        assert_eq!(event_name, call, "{fixture}");
    }
}

#[test]
fn identities_are_reported_as_who_they_are() {
    assert!(
        matches!(drift_of("lambda-update-function-configuration-iam-user").1,
        Caller::IamUser { arn } if arn == "arn:aws:iam::111122223333:user/bob")
    );
    assert_eq!(
        drift_of("lambda-add-permission-root").1,
        Caller::Root {
            account: ACCOUNT.into()
        }
    );
    assert!(matches!(drift_of("apigateway-update-route-federated").1,
        Caller::FederatedUser { issuer: Some(i), .. } if i.ends_with(":user/bob")));
    let (_, caller, _) = drift_of("lambda-update-function-code");
    assert_eq!(
        caller.to_string(),
        "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_AdministratorAccess_0123456789abcdef (session alice@example.com)"
    );
}

#[test]
fn expected_and_irrelevant_calls_are_ignored_with_their_reason() {
    let ignored = |name: &str| match classify_fixture(name) {
        Classification::Ignored(reason) => reason,
        other => panic!("{name}: expected ignored, got {other:?}"),
    };
    assert_eq!(
        ignored("lambda-deploy-role"),
        Ignored::IgnoredRole {
            role: DEPLOY_ROLE.into()
        }
    );
    assert_eq!(
        ignored("secretsmanager-rotation-put-secret-value"),
        Ignored::IgnoredRole {
            role: ROTATION_ROLE.into()
        }
    );
    assert_eq!(
        ignored("lambda-cloudformation-invoked"),
        Ignored::InvokedByCloudFormation
    );
    assert_eq!(
        ignored("secretsmanager-operator-rotate-secret"),
        Ignored::RotationRequested
    );
    assert_eq!(
        ignored("secretsmanager-keyring-operator-put-secret-value"),
        Ignored::KeyringOperator {
            role: KEYRING_OPERATOR_ROLE.into()
        }
    );
    assert_eq!(
        ignored("lambda-access-denied"),
        Ignored::Failed {
            error_code: "AccessDenied".into()
        }
    );
    assert_eq!(ignored("lambda-get-function-read-only"), Ignored::ReadOnly);
    assert_eq!(
        ignored("lambda-other-stack"),
        Ignored::OutsideStack {
            names: vec!["Other-WorkerFn9F8E7D6C-zyxwVUTS4321".into()]
        }
    );
}

/// Issue 19, point 4: a call CloudFormation makes is ours only with our execution role, while our
/// stack has an operation in progress. The old classifier ignored every call `invokedBy`
/// CloudFormation, whoever's stack it was for.
#[test]
fn cloudformation_is_ours_only_for_our_stacks_operation() {
    let ours = CloudTrailEvent::from_json(&cloudtrail("lambda-cloudformation-invoked")).unwrap();
    let is_drift = |operations: &StackOperations, policy: &IgnorePolicy| {
        matches!(
            classify_in(&ours, &stack(), policy, operations),
            Classification::Drift(_)
        )
    };
    assert!(!is_drift(&our_deploy(), &policy()));
    // Our stack idle at 12:00 (its last deploy ended at 11:30): another stack's call.
    let earlier = StackOperations::from_events(
        STACK_ID,
        &[
            stack_event("2024-05-01T11:20:00Z", "UPDATE_IN_PROGRESS"),
            stack_event("2024-05-01T11:30:00Z", "UPDATE_COMPLETE"),
        ],
    );
    assert!(is_drift(&earlier, &policy()));
    assert!(is_drift(&StackOperations::default(), &policy()));
    // During our deploy, but the execution role is not configured as ours.
    let no_exec_role = IgnorePolicy::from_role_arns([DEPLOY_ROLE]).unwrap();
    assert!(is_drift(&our_deploy(), &no_exec_role));
    // Listing the execution role among the plainly ignored roles does not excuse it either.
    let exec_ignored = IgnorePolicy::from_role_arns([DEPLOY_ROLE, EXEC_ROLE]).unwrap();
    assert!(is_drift(&StackOperations::default(), &exec_ignored));
}

/// Issue 19, point 6: the documented operator path (RotateSecret; value writes by the keyring
/// operator role) is expected; everything else on the keyring is drift.
#[test]
fn the_operator_path_is_expected_and_nothing_else() {
    // Without a configured operator role, the operator's PutSecretValue is drift.
    let put = CloudTrailEvent::from_json(&cloudtrail(
        "secretsmanager-keyring-operator-put-secret-value",
    ))
    .unwrap();
    let without_operator = IgnorePolicy::from_role_arns([DEPLOY_ROLE, ROTATION_ROLE]).unwrap();
    assert!(matches!(
        classify(&put, &stack(), &without_operator),
        Classification::Drift(_)
    ));
    // Someone else's PutSecretValue stays drift.
    assert!(matches!(
        classify_fixture("secretsmanager-put-secret-value-by-name"),
        Classification::Drift(_)
    ));
    // The operator role on another resource type is drift too.
    let mut json: serde_json::Value =
        serde_json::from_str(&cloudtrail("lambda-update-function-code")).unwrap();
    json["detail"]["userIdentity"] = serde_json::from_str::<serde_json::Value>(&cloudtrail(
        "secretsmanager-keyring-operator-put-secret-value",
    ))
    .unwrap()["detail"]["userIdentity"]
        .clone();
    let event = CloudTrailEvent::from_json(&json.to_string()).unwrap();
    assert!(matches!(
        classify_in(&event, &stack(), &policy(), &our_deploy()),
        Classification::Drift(_)
    ));
}

#[test]
fn without_an_ignore_policy_the_deploy_role_would_trigger() {
    // Proves the ignore above comes from the exact ARN, not from anything else in the event.
    let event = CloudTrailEvent::from_json(&cloudtrail("lambda-deploy-role")).unwrap();
    assert!(matches!(
        classify(&event, &stack(), &Default::default()),
        Classification::Drift(_)
    ));
}

#[test]
fn other_account_or_region_is_outside_the_stack() {
    let mut json: serde_json::Value =
        serde_json::from_str(&cloudtrail("lambda-update-function-code")).unwrap();
    json["detail"]["awsRegion"] = "eu-west-1".into();
    let event = CloudTrailEvent::from_json(&json.to_string()).unwrap();
    assert!(matches!(
        classify(&event, &stack(), &policy()),
        Classification::Ignored(Ignored::OtherAccountOrRegion { region, .. }) if region == "eu-west-1"
    ));
    // IAM is global: its events carry us-east-1 whatever the stack's region.
    let eu_stack = ssm_core::integrity::StackResources::new(
        Some(ACCOUNT.into()),
        Some("eu-west-1".into()),
        stack_rows(),
    );
    let iam = CloudTrailEvent::from_json(&cloudtrail("iam-put-role-policy")).unwrap();
    assert!(matches!(
        classify(&iam, &eu_stack, &policy()),
        Classification::Drift(_)
    ));
}

#[test]
fn every_fixture_parses_and_a_batch_of_all_gives_one_small_payload() {
    let mut drifts = Vec::new();
    for (name, body) in all_cloudtrail() {
        let event = CloudTrailEvent::from_json(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Classification::Drift(d) = classify_in(&event, &stack(), &policy(), &our_deploy()) {
            drifts.push(d);
        }
    }
    assert_eq!(
        drifts.len(),
        15,
        "the fifteen triggering fixtures of out_of_band_changes_trigger"
    );
    let findings: Vec<_> = drifts
        .iter()
        .flat_map(ssm_core::integrity::Finding::from_drift)
        .collect();
    let body = build_dispatch("Ssm", ssm_core::integrity::DriftSource::Event, &findings).unwrap();
    let payload = body["client_payload"].as_object().unwrap();
    assert!(payload.len() <= 10);
    assert_eq!(payload["count"], 15);
    assert_eq!(payload["event_ids"].as_array().unwrap().len(), 15);
    assert_eq!(payload["resources"].as_array().unwrap().len(), 5);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for body in [
        "",
        "null",
        "[]",
        "{\"detail-type\":\"AWS API Call via CloudTrail\"}",
        "\u{0}",
    ] {
        assert!(CloudTrailEvent::from_json(body).is_err(), "{body:?}");
    }
    // Truncate every fixture at many points: never a panic.
    for (_, body) in all_cloudtrail() {
        for cut in (0..body.len()).step_by(97) {
            let _ = CloudTrailEvent::from_json(&body[..cut]);
        }
    }
}

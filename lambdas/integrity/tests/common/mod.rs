//! Shared fixture loading for the integration tests (`mod common;`).

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test support shared by several test binaries, each using a different part"
)]

use std::path::PathBuf;

use serde_json::Value;
use ssm_core::integrity::{
    IgnorePolicy, StackEvent, StackOperations, StackResource, StackResources,
};

pub const ACCOUNT: &str = "111122223333";
pub const DEPLOY_ROLE: &str =
    "arn:aws:iam::111122223333:role/cdk-hnb659fds-deploy-role-111122223333-us-east-1";
pub const EXEC_ROLE: &str =
    "arn:aws:iam::111122223333:role/cdk-hnb659fds-cfn-exec-role-111122223333-us-east-1";
pub const ROTATION_ROLE: &str =
    "arn:aws:iam::111122223333:role/Ssm-RotationFnServiceRoleE4F5A6B7-IJKLMNOP5678";
pub const KEYRING_OPERATOR_ROLE: &str = "arn:aws:iam::111122223333:role/ssm-keyring-operator";
pub const STACK_ID: &str =
    "arn:aws:cloudformation:us-east-1:111122223333:stack/Ssm/0a1b2c3d-0000-1111-2222-333344445555";

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn cloudtrail(name: &str) -> String {
    std::fs::read_to_string(
        fixture_dir()
            .join("cloudtrail")
            .join(format!("{name}.json")),
    )
    .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

pub fn all_cloudtrail() -> Vec<(String, String)> {
    let mut names: Vec<_> = std::fs::read_dir(fixture_dir().join("cloudtrail"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

/// `ListStackResources` rows of the fixture stack (the shape the SDK returns).
pub fn stack_rows() -> Vec<StackResource> {
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir().join("stack-resources.json")).unwrap(),
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

pub fn stack() -> StackResources {
    StackResources::new(Some(ACCOUNT.into()), Some("us-east-1".into()), stack_rows())
}

/// The policy the stack configures: deploy and rotation roles, the CloudFormation execution
/// role (only during our stack's operations) and a keyring operator role.
pub fn policy() -> IgnorePolicy {
    IgnorePolicy::from_role_arns([DEPLOY_ROLE, ROTATION_ROLE])
        .unwrap()
        .with_cloudformation_roles([EXEC_ROLE])
        .unwrap()
        .with_keyring_operators([KEYRING_OPERATOR_ROLE])
        .unwrap()
}

/// A stack-level `DescribeStackEvents` row of the fixture stack.
pub fn stack_event(time: &str, status: &str) -> StackEvent {
    StackEvent {
        timestamp: time.parse().unwrap(),
        physical_id: STACK_ID.into(),
        resource_type: "AWS::CloudFormation::Stack".into(),
        status: status.into(),
    }
}

/// Our stack's one deploy around the fixtures' 12:00: 11:55 to 12:05.
pub fn our_deploy() -> StackOperations {
    StackOperations::from_events(
        STACK_ID,
        &[
            stack_event("2024-05-01T11:55:00Z", "UPDATE_IN_PROGRESS"),
            stack_event("2024-05-01T12:05:00Z", "UPDATE_COMPLETE"),
        ],
    )
}

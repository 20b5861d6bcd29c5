//! Paths moto cannot serve, with the SDK's mock clients (aws-smithy-mocks): STS throttling and
//! AccessDenied, a failed stack with resource reasons, REVERT_DRIFT change sets, ROLLBACK_COMPLETE
//! recreation, stack outputs, and Lambda code restore.

#![expect(clippy::unwrap_used, reason = "test fixtures fail loudly")]

mod common;

use std::path::Path;

use aws_sdk_cloudformation::operation::create_change_set::{
    CreateChangeSetError, CreateChangeSetOutput,
};
use aws_sdk_cloudformation::operation::delete_change_set::DeleteChangeSetOutput;
use aws_sdk_cloudformation::operation::delete_stack::DeleteStackOutput;
use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
use aws_sdk_cloudformation::operation::describe_stack_events::DescribeStackEventsOutput;
use aws_sdk_cloudformation::operation::describe_stack_resource::DescribeStackResourceOutput;
use aws_sdk_cloudformation::operation::describe_stacks::{
    DescribeStacksError, DescribeStacksOutput,
};
use aws_sdk_cloudformation::operation::execute_change_set::ExecuteChangeSetOutput;
use aws_sdk_cloudformation::operation::update_termination_protection::UpdateTerminationProtectionOutput;
use aws_sdk_cloudformation::types::{
    Change, ChangeAction, ChangeSetStatus, ChangeSetType, DeploymentMode, LiveResourceDrift,
    Output, Replacement, ResourceChange, ResourceChangeDetail, ResourceStatus,
    ResourceTargetDefinition, Stack, StackEvent, StackResourceDetail, StackStatus,
};
use aws_sdk_lambda::operation::get_function::GetFunctionOutput;
use aws_sdk_lambda::operation::update_function_code::UpdateFunctionCodeOutput;
use aws_sdk_lambda::types::FunctionConfiguration;
use aws_sdk_sts::operation::assume_role_with_web_identity::{
    AssumeRoleWithWebIdentityError, AssumeRoleWithWebIdentityOutput,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use secrecy::SecretString;
use ssm_action::clients::{Clients, RoleClients};
use ssm_action::credentials::{CredentialsError, RetryPolicy, assume_role_with_web_identity};
use ssm_action::deploy::{self, Template};
use ssm_action::reconcile::{CodeSource, restore_lambda_code};
use ssm_action::run::RunSummary;
use ssm_core::deploy::assembly::{CloudAssembly, Placeholders};
use ssm_core::deploy::{ActionInputs, Mode};

const STACK: &str = "Svc";
const ROLE: &str = "arn:aws:iam::123456789012:role/github-deploy";

fn fast() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base_ms: 1,
        cap_ms: 5,
    }
}

/// As in production: the STS client does not retry by itself, the Action's policy does.
fn no_sdk_retries(c: aws_sdk_sts::config::Builder) -> aws_sdk_sts::config::Builder {
    c.retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
}

fn web_identity_ok() -> AssumeRoleWithWebIdentityOutput {
    AssumeRoleWithWebIdentityOutput::builder()
        .credentials(
            aws_sdk_sts::types::Credentials::builder()
                .access_key_id("ASIAEXAMPLE")
                .secret_access_key("secret-key-value")
                .session_token("session-token-value")
                .expiration(aws_smithy_types::DateTime::from_secs(4_102_444_800))
                .build()
                .unwrap(),
        )
        .build()
}

fn sts_error(code: &str, message: &str) -> AssumeRoleWithWebIdentityError {
    AssumeRoleWithWebIdentityError::generic(
        ErrorMetadata::builder().code(code).message(message).build(),
    )
}

#[tokio::test]
async fn sts_throttling_and_5xx_are_retried_then_succeed() {
    let rule = mock!(aws_sdk_sts::Client::assume_role_with_web_identity)
        .sequence()
        .error(|| sts_error("Throttling", "Rate exceeded"))
        .http_status(
            503,
            Some(
                "<ErrorResponse><Error><Code>ServiceUnavailable</Code></Error></ErrorResponse>"
                    .into(),
            ),
        )
        .output(web_identity_ok)
        .build();
    let sts = mock_client!(aws_sdk_sts, RuleMode::Sequential, [&rule], no_sdk_retries);
    let token = SecretString::from(common::fake_jwt("repo:octo/ssm:ref:refs/heads/main"));
    let creds = assume_role_with_web_identity(&sts, ROLE, "ssm-test", 3600, &token, fast())
        .await
        .unwrap();
    assert_eq!(creds.access_key_id(), "ASIAEXAMPLE");
    assert_eq!(creds.session_token(), Some("session-token-value"));
    assert_eq!(rule.num_calls(), 3);
}

#[tokio::test]
async fn sts_gives_up_after_the_retry_budget() {
    let rule = mock!(aws_sdk_sts::Client::assume_role_with_web_identity)
        .then_error(|| sts_error("ThrottlingException", "Rate exceeded"));
    let sts = mock_client!(aws_sdk_sts, RuleMode::MatchAny, [&rule], no_sdk_retries);
    let token = SecretString::from(common::fake_jwt("x"));
    let err = assume_role_with_web_identity(&sts, ROLE, "s", 3600, &token, fast())
        .await
        .unwrap_err();
    assert!(matches!(err, CredentialsError::Sts(_)), "{err}");
    assert_eq!(rule.num_calls(), 4);
}

#[tokio::test]
async fn access_denied_is_not_retried_and_shows_the_claims() {
    let rule = mock!(aws_sdk_sts::Client::assume_role_with_web_identity).then_error(|| {
        sts_error(
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        )
    });
    let sts = mock_client!(aws_sdk_sts, RuleMode::MatchAny, [&rule], no_sdk_retries);
    let jwt = common::fake_jwt("repo:octo/serverless-ssm:pull_request");
    let token = SecretString::from(jwt.clone());
    let err = assume_role_with_web_identity(&sts, ROLE, "s", 3600, &token, fast())
        .await
        .unwrap_err();
    assert_eq!(rule.num_calls(), 1);
    let CredentialsError::AccessDenied(msg) = &err else {
        panic!("{err}")
    };
    for needle in [
        ROLE,
        "Not authorized",
        "sub: repo:octo/serverless-ssm:pull_request",
        "aud: sts.amazonaws.com",
        "repository: octo/serverless-ssm",
        "ref: refs/heads/main",
        "\"token.actions.githubusercontent.com:sub\": \"repo:octo/serverless-ssm:pull_request\"",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in {msg}");
    }
    assert!(
        !msg.contains(&jwt) && !msg.contains(jwt.split('.').nth(2).unwrap()),
        "the token itself is never shown"
    );
}

// ---- CloudFormation ------------------------------------------------------------------------

fn inputs(mode: &str, extra: &[(&str, &str)]) -> ActionInputs {
    let mut env = vec![("INPUT_MODE", mode), ("INPUT_AWS-REGION", "eu-west-1")];
    env.extend_from_slice(extra);
    ActionInputs::from_env(env).unwrap()
}

fn stack(status: StackStatus) -> Stack {
    Stack::builder()
        .stack_name(STACK)
        .stack_id("arn:aws:cloudformation:eu-west-1:123456789012:stack/Svc/1")
        .stack_status(status)
        .outputs(
            Output::builder()
                .output_key("ApiUrl")
                .output_value("https://api.example")
                .build(),
        )
        .outputs(
            Output::builder()
                .output_key("Multi")
                .output_value("a\nb")
                .build(),
        )
        .build()
}

fn stacks(status: StackStatus) -> DescribeStacksOutput {
    DescribeStacksOutput::builder()
        .stacks(stack(status))
        .build()
}

fn missing() -> DescribeStacksError {
    DescribeStacksError::generic(
        ErrorMetadata::builder()
            .code("ValidationError")
            .message("Stack with id Svc does not exist")
            .build(),
    )
}

fn event(id: &str, logical: &str, ty: &str, status: ResourceStatus, reason: &str) -> StackEvent {
    StackEvent::builder()
        .event_id(id)
        .stack_id("arn:aws:cloudformation:eu-west-1:123456789012:stack/Svc/1")
        .stack_name(STACK)
        .logical_resource_id(logical)
        .resource_type(ty)
        .resource_status(status)
        .resource_status_reason(reason)
        .timestamp(aws_smithy_types::DateTime::from_secs(1_700_000_000))
        .build()
}

fn change(
    logical: &str,
    ty: &str,
    action: ChangeAction,
    replacement: Option<Replacement>,
) -> Change {
    let mut rc = ResourceChange::builder()
        .logical_resource_id(logical)
        .resource_type(ty)
        .action(action);
    if let Some(r) = replacement {
        rc = rc.replacement(r);
    }
    Change::builder().resource_change(rc.build()).build()
}

fn change_set(changes: Vec<Change>) -> DescribeChangeSetOutput {
    DescribeChangeSetOutput::builder()
        .status(ChangeSetStatus::CreateComplete)
        .change_set_id("arn:aws:cloudformation:eu-west-1:123456789012:changeSet/ssm/1")
        .set_changes(Some(changes))
        .build()
}

fn cfn_clients(rules: &[&Rule]) -> Clients {
    Clients {
        cloudformation: mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, rules),
        s3: mock_client!(aws_sdk_s3, RuleMode::MatchAny, &[] as &[&Rule]),
        lambda: mock_client!(aws_sdk_lambda, RuleMode::MatchAny, &[] as &[&Rule]),
        cloudwatch: mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, &[] as &[&Rule]),
        secretsmanager: mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, &[] as &[&Rule]),
    }
}

fn template() -> Template {
    let body = r#"{"Resources":{"Fn":{"Type":"AWS::Lambda::Function","Properties":{"Code":{"S3Bucket":"b","S3Key":"h.zip"}}}}}"#;
    Template {
        body: body.to_owned(),
        json: serde_json::from_str(body).unwrap(),
    }
}

fn artifact() -> ssm_core::deploy::StackArtifact {
    let manifest = serde_json::json!({"artifacts": {STACK: {
        "type": "aws:cloudformation:stack",
        "properties": {"templateFile": "Svc.template.json", "terminationProtection": false}
    }}});
    CloudAssembly::parse(&manifest.to_string())
        .unwrap()
        .stacks
        .remove(0)
}

async fn deploy_with(
    inputs: &ActionInputs,
    clients: Clients,
) -> anyhow::Result<deploy::StackOutcome> {
    let placeholders = Placeholders::new("123456789012", "eu-west-1");
    let roles = RoleClients::fixed(clients);
    let ctx = deploy::Context {
        inputs,
        assembly_dir: Path::new("."),
        placeholders: &placeholders,
        roles: &roles,
        change_set_name: "ssm-test-1".into(),
    };
    deploy::deploy_stack(&ctx, &artifact(), &template()).await
}

#[tokio::test]
async fn a_failed_update_reports_the_failing_resources_and_their_reasons() {
    let describe = mock!(aws_sdk_cloudformation::Client::describe_stacks)
        .sequence()
        .output(|| stacks(StackStatus::UpdateComplete))
        .output(|| stacks(StackStatus::UpdateRollbackComplete))
        .repeatedly()
        .build();
    let create = mock!(aws_sdk_cloudformation::Client::create_change_set)
        .match_requests(|r| {
            r.change_set_type() == Some(&ChangeSetType::Update) && r.deployment_mode().is_none()
        })
        .then_output(|| {
            CreateChangeSetOutput::builder()
                .id("cs-1")
                .stack_id("stack-1")
                .build()
        });
    let describe_cs =
        mock!(aws_sdk_cloudformation::Client::describe_change_set).then_output(|| {
            change_set(vec![change(
                "Fn",
                "AWS::Lambda::Function",
                ChangeAction::Modify,
                Some(Replacement::False),
            )])
        });
    let execute = mock!(aws_sdk_cloudformation::Client::execute_change_set)
        .then_output(|| ExecuteChangeSetOutput::builder().build());
    let old = event(
        "e0",
        STACK,
        "AWS::CloudFormation::Stack",
        ResourceStatus::UpdateComplete,
        "",
    );
    let (old1, old2) = (old.clone(), old.clone());
    let events = mock!(aws_sdk_cloudformation::Client::describe_stack_events)
        .sequence()
        .output(move || {
            DescribeStackEventsOutput::builder()
                .stack_events(old1.clone())
                .build()
        })
        .output(move || {
            DescribeStackEventsOutput::builder()
                .stack_events(event(
                    "e4",
                    STACK,
                    "AWS::CloudFormation::Stack",
                    ResourceStatus::UpdateRollbackComplete,
                    "",
                ))
                .stack_events(event(
                    "e3",
                    "Fn",
                    "AWS::Lambda::Function",
                    ResourceStatus::UpdateFailed,
                    "Resource handler returned message: \"MemorySize must be at least 128\"",
                ))
                .stack_events(event(
                    "e2",
                    "Fn",
                    "AWS::Lambda::Function",
                    ResourceStatus::UpdateInProgress,
                    "",
                ))
                .stack_events(event(
                    "e1",
                    STACK,
                    "AWS::CloudFormation::Stack",
                    ResourceStatus::UpdateInProgress,
                    "User Initiated",
                ))
                .stack_events(old2.clone())
                .build()
        })
        .output(|| DescribeStackEventsOutput::builder().build())
        .repeatedly()
        .build();
    let clients = cfn_clients(&[&describe, &create, &describe_cs, &execute, &events]);
    let outcome = deploy_with(&inputs("apply", &[]), clients).await.unwrap();
    assert!(outcome.failed);
    assert_eq!(outcome.report.status, "UPDATE_ROLLBACK_COMPLETE");
    assert_eq!(
        outcome.report.failures.len(),
        1,
        "{:?}",
        outcome.report.failures
    );
    assert_eq!(outcome.report.failures[0].0, "Fn");
    assert!(
        outcome.report.failures[0]
            .2
            .contains("MemorySize must be at least 128")
    );
    assert!(outcome.report.markdown().contains("#### Failures"));
    assert_eq!(execute.num_calls(), 1);
}

/// The change set of a deploy after `payments` was taken out of the `keys` setting: its secret and
/// KMS key removed (with its policy and schedule), the crypto function's environment modified.
fn removing_a_key() -> DescribeChangeSetOutput {
    change_set(vec![
        change(
            "KeyringpaymentsSecret9F7BE255",
            "AWS::SecretsManager::Secret",
            ChangeAction::Remove,
            None,
        ),
        change(
            "KeyringpaymentsKey02387C8E",
            "AWS::KMS::Key",
            ChangeAction::Remove,
            None,
        ),
        change(
            "KeyringpaymentsRotationBEA8E658",
            "AWS::SecretsManager::RotationSchedule",
            ChangeAction::Remove,
            None,
        ),
        change(
            "CryptoFunction63BD24A0",
            "AWS::Lambda::Function",
            ChangeAction::Modify,
            Some(Replacement::False),
        ),
    ])
}

/// Deploys a stable stack whose change set is `changes` (expected refused): the error, and how
/// many times the change set was executed and deleted.
async fn refused_deploy(
    mode: &str,
    changes: fn() -> DescribeChangeSetOutput,
) -> (String, usize, usize) {
    let describe = mock!(aws_sdk_cloudformation::Client::describe_stacks)
        .then_output(|| stacks(StackStatus::UpdateComplete));
    let create = mock!(aws_sdk_cloudformation::Client::create_change_set)
        .then_output(|| CreateChangeSetOutput::builder().id("cs-keys").build());
    let describe_cs =
        mock!(aws_sdk_cloudformation::Client::describe_change_set).then_output(changes);
    let delete_cs = mock!(aws_sdk_cloudformation::Client::delete_change_set)
        .match_requests(|r| r.change_set_name() == Some("cs-keys"))
        .then_output(|| DeleteChangeSetOutput::builder().build());
    let execute = mock!(aws_sdk_cloudformation::Client::execute_change_set)
        .then_output(|| ExecuteChangeSetOutput::builder().build());
    let clients = cfn_clients(&[&describe, &create, &describe_cs, &delete_cs, &execute]);
    let err = deploy_with(&inputs(mode, &[]), clients)
        .await
        .expect_err(mode)
        .to_string();
    (err, execute.num_calls(), delete_cs.num_calls())
}

#[tokio::test]
async fn a_change_set_removing_a_keyring_is_refused_in_every_mode_and_never_executed() {
    for mode in ["apply", "plan", "reconcile"] {
        let (err, executed, deleted) = refused_deploy(mode, removing_a_key).await;
        assert!(
            err.contains("removes the keyring secret KeyringpaymentsSecret9F7BE255"),
            "{mode}: {err}"
        );
        assert!(
            err.contains("removes the KMS key of the keyring KeyringpaymentsKey02387C8E"),
            "{mode}: {err}"
        );
        assert!(
            !err.contains("Rotation"),
            "the schedule is not a keyring: {err}"
        );
        assert!(err.contains("Keep the key declared"), "{err}");
        assert_eq!(executed, 0, "{mode}: nothing executed");
        assert_eq!(deleted, 1, "{mode}: the change set is removed");
    }
}

#[tokio::test]
async fn a_change_set_replacing_the_default_keyring_is_refused() {
    let (err, executed, _) = refused_deploy("apply", || {
        change_set(vec![change(
            "Keyring5277DB2C",
            "AWS::SecretsManager::Secret",
            ChangeAction::Modify,
            Some(Replacement::True),
        )])
    })
    .await;
    assert!(
        err.contains("replaces the keyring secret Keyring5277DB2C"),
        "{err}"
    );
    assert_eq!(executed, 0);
}

#[tokio::test]
async fn reconcile_uses_revert_drift_and_reports_each_drifted_property() {
    let describe = mock!(aws_sdk_cloudformation::Client::describe_stacks)
        .then_output(|| stacks(StackStatus::UpdateComplete));
    let create = mock!(aws_sdk_cloudformation::Client::create_change_set)
        .match_requests(|r| r.deployment_mode() == Some(&DeploymentMode::RevertDrift))
        .then_output(|| CreateChangeSetOutput::builder().id("cs-drift").build());
    let detail = ResourceChangeDetail::builder()
        .target(
            ResourceTargetDefinition::builder()
                .name("Timeout")
                .path("/Properties/Timeout")
                .before_value("900")
                .after_value("10")
                .drift(
                    LiveResourceDrift::builder()
                        .previous_value("10")
                        .actual_value("900")
                        .build(),
                )
                .build(),
        )
        .build();
    let describe_cs =
        mock!(aws_sdk_cloudformation::Client::describe_change_set).then_output(move || {
            let rc = ResourceChange::builder()
                .logical_resource_id("Fn")
                .resource_type("AWS::Lambda::Function")
                .action(ChangeAction::Modify)
                .replacement(Replacement::False)
                .details(detail.clone())
                .build();
            change_set(vec![Change::builder().resource_change(rc).build()])
        });
    let execute = mock!(aws_sdk_cloudformation::Client::execute_change_set)
        .then_output(|| ExecuteChangeSetOutput::builder().build());
    let events = mock!(aws_sdk_cloudformation::Client::describe_stack_events)
        .then_output(|| DescribeStackEventsOutput::builder().build());
    let clients = cfn_clients(&[&describe, &create, &describe_cs, &execute, &events]);
    let outcome = deploy_with(&inputs("reconcile", &[]), clients)
        .await
        .unwrap();
    assert!(!outcome.failed);
    assert_eq!(create.num_calls(), 1, "the change set was REVERT_DRIFT");
    assert_eq!(execute.num_calls(), 1);
    let drift = &outcome.report.drift;
    assert_eq!(drift.len(), 1);
    assert_eq!(
        (
            drift[0].property.as_str(),
            drift[0].expected.as_str(),
            drift[0].actual.as_str()
        ),
        ("Timeout", "10", "900")
    );
    assert_eq!(outcome.report.changes[0].properties, ["Timeout"]);
    let summary = RunSummary {
        stacks: vec![outcome],
    };
    let outputs: std::collections::BTreeMap<_, _> = summary.outputs().into_iter().collect();
    assert_eq!(outputs["drifted-resources"], "[\"Svc/Fn\"]");
    assert!(
        summary
            .markdown(Mode::Reconcile, None)
            .contains("| `Fn` | AWS::Lambda::Function | `Timeout` | `10` | `900` |")
    );
}

#[tokio::test]
async fn rollback_complete_is_recreated_only_when_allowed() {
    // Not allowed: a clear error, nothing deleted.
    let describe = mock!(aws_sdk_cloudformation::Client::describe_stacks)
        .then_output(|| stacks(StackStatus::RollbackComplete));
    let delete = mock!(aws_sdk_cloudformation::Client::delete_stack)
        .then_output(|| DeleteStackOutput::builder().build());
    let err = deploy_with(&inputs("apply", &[]), cfn_clients(&[&describe, &delete]))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("ROLLBACK_COMPLETE") && err.to_string().contains("allow-recreate"),
        "{err}"
    );
    assert_eq!(delete.num_calls(), 0);

    // Allowed: deleted, waited for, then created with a CREATE change set.
    let describe = mock!(aws_sdk_cloudformation::Client::describe_stacks)
        .sequence()
        .output(|| stacks(StackStatus::RollbackComplete))
        .output(|| stacks(StackStatus::DeleteInProgress))
        .error(missing)
        .output(|| stacks(StackStatus::CreateComplete))
        .repeatedly()
        .build();
    let delete = mock!(aws_sdk_cloudformation::Client::delete_stack)
        .then_output(|| DeleteStackOutput::builder().build());
    let create = mock!(aws_sdk_cloudformation::Client::create_change_set)
        .match_requests(|r| r.change_set_type() == Some(&ChangeSetType::Create))
        .then_output(|| {
            CreateChangeSetOutput::builder()
                .id("cs-new")
                .stack_id("stack-2")
                .build()
        });
    let describe_cs =
        mock!(aws_sdk_cloudformation::Client::describe_change_set).then_output(|| {
            change_set(vec![change(
                "Fn",
                "AWS::Lambda::Function",
                ChangeAction::Add,
                None,
            )])
        });
    let execute = mock!(aws_sdk_cloudformation::Client::execute_change_set)
        .then_output(|| ExecuteChangeSetOutput::builder().build());
    let events = mock!(aws_sdk_cloudformation::Client::describe_stack_events)
        .then_output(|| DescribeStackEventsOutput::builder().build());
    let clients = cfn_clients(&[&describe, &delete, &create, &describe_cs, &execute, &events]);
    let outcome = deploy_with(
        &inputs("apply", &[("INPUT_ALLOW-RECREATE", "true")]),
        clients,
    )
    .await
    .unwrap();
    assert_eq!(delete.num_calls(), 1);
    assert_eq!(create.num_calls(), 1);
    assert_eq!(outcome.report.change_set_type, "CREATE");
    assert_eq!(outcome.report.status, "CREATE_COMPLETE");
    assert_eq!(
        outcome.stack_id.as_deref(),
        Some("arn:aws:cloudformation:eu-west-1:123456789012:stack/Svc/1")
    );
}

#[tokio::test]
async fn no_updates_validation_error_is_success_with_outputs() {
    let describe = mock!(aws_sdk_cloudformation::Client::describe_stacks)
        .then_output(|| stacks(StackStatus::UpdateComplete));
    let create = mock!(aws_sdk_cloudformation::Client::create_change_set).then_error(|| {
        CreateChangeSetError::generic(
            ErrorMetadata::builder()
                .code("ValidationError")
                .message("No updates are to be performed.")
                .build(),
        )
    });
    let delete_cs = mock!(aws_sdk_cloudformation::Client::delete_change_set)
        .then_output(|| DeleteChangeSetOutput::builder().build());
    let protect = mock!(aws_sdk_cloudformation::Client::update_termination_protection)
        .match_requests(|r| {
            r.stack_name() == Some(STACK) && r.enable_termination_protection() == Some(true)
        })
        .then_output(|| UpdateTerminationProtectionOutput::builder().build());
    let clients = cfn_clients(&[&describe, &create, &delete_cs, &protect]);
    let outcome = deploy_with(&inputs("apply", &[]), clients.clone())
        .await
        .unwrap();
    assert!(!outcome.failed && !outcome.report.has_changes());
    assert_eq!(
        protect.num_calls(),
        0,
        "the assembly says false and the stack has it off"
    );
    deploy_with(
        &inputs("apply", &[("INPUT_TERMINATION-PROTECTION", "true")]),
        clients.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        protect.num_calls(),
        1,
        "the input turns it on even without changes"
    );
    deploy_with(
        &inputs("plan", &[("INPUT_TERMINATION-PROTECTION", "true")]),
        clients.clone(),
    )
    .await
    .unwrap();
    assert_eq!(protect.num_calls(), 1, "a plan changes nothing");
    let summary = RunSummary {
        stacks: vec![outcome],
    };
    let outputs: std::collections::BTreeMap<_, _> = summary.outputs().into_iter().collect();
    assert_eq!(outputs["ApiUrl"], "https://api.example");
    assert_eq!(outputs["Multi"], "a\nb");
    assert_eq!(outputs["has-changes"], "false");

    let err = deploy_with(
        &inputs("apply", &[("INPUT_FAIL-ON-EMPTY-CHANGESET", "true")]),
        clients,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("fail-on-empty-changeset"), "{err}");
}

#[tokio::test]
async fn the_failed_change_set_form_of_no_changes_is_also_success() {
    let describe = mock!(aws_sdk_cloudformation::Client::describe_stacks)
        .then_output(|| stacks(StackStatus::UpdateComplete));
    let create = mock!(aws_sdk_cloudformation::Client::create_change_set)
        .then_output(|| CreateChangeSetOutput::builder().id("cs-empty").build());
    let describe_cs = mock!(aws_sdk_cloudformation::Client::describe_change_set).then_output(|| {
        DescribeChangeSetOutput::builder()
            .status(ChangeSetStatus::Failed)
            .status_reason("The submitted information didn't contain changes. Submit different information to create a change set.")
            .build()
    });
    let delete_cs = mock!(aws_sdk_cloudformation::Client::delete_change_set)
        .then_output(|| DeleteChangeSetOutput::builder().build());
    let execute = mock!(aws_sdk_cloudformation::Client::execute_change_set)
        .then_output(|| ExecuteChangeSetOutput::builder().build());
    let clients = cfn_clients(&[&describe, &create, &describe_cs, &delete_cs, &execute]);
    let outcome = deploy_with(&inputs("apply", &[]), clients).await.unwrap();
    assert!(!outcome.report.has_changes());
    assert_eq!(
        delete_cs.num_calls(),
        1,
        "the empty change set is cleaned up"
    );
    assert_eq!(execute.num_calls(), 0);
}

// ---- Lambda code -------------------------------------------------------------------------

fn lambda_rules(live_sha: &'static str, restored_sha: String, zip: Vec<u8>) -> (Rule, Rule) {
    let get = mock!(aws_sdk_lambda::Client::get_function).then_output(move || {
        GetFunctionOutput::builder()
            .configuration(
                FunctionConfiguration::builder()
                    .function_name("svc-fn")
                    .code_sha256(live_sha)
                    .build(),
            )
            .build()
    });
    // The local bytes themselves, never a pointer to the bucket's copy.
    let update = mock!(aws_sdk_lambda::Client::update_function_code)
        .match_requests(move |r| {
            r.function_name() == Some("svc-fn")
                && r.zip_file().map(|b| b.as_ref()) == Some(zip.as_slice())
                && r.s3_bucket().is_none()
                && r.s3_key().is_none()
        })
        .then_output(move || {
            UpdateFunctionCodeOutput::builder()
                .code_sha256(restored_sha.clone())
                .build()
        });
    (get, update)
}

async fn code_check(
    live_sha: &'static str,
) -> (
    anyhow::Result<Vec<ssm_core::deploy::DriftedProperty>>,
    usize,
) {
    let dir = tempfile::tempdir().unwrap();
    let zip = b"PK-the-asset-zip".to_vec();
    std::fs::write(dir.path().join("h.zip"), &zip).unwrap();
    let expected = ssm_action::assets::code_sha256(&zip);
    let (get, update) = lambda_rules(live_sha, expected, zip);
    let resource =
        mock!(aws_sdk_cloudformation::Client::describe_stack_resource).then_output(|| {
            DescribeStackResourceOutput::builder()
                .stack_resource_detail(
                    StackResourceDetail::builder()
                        .logical_resource_id("Fn")
                        .physical_resource_id("svc-fn")
                        .build(),
                )
                .build()
        });
    let cfn = mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, [&resource]);
    let lambda = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, [&get, &update]);
    let asset = ssm_core::deploy::assembly::FileAsset {
        id: "h".into(),
        path: "h.zip".into(),
        packaging: ssm_core::deploy::assembly::Packaging::File,
        destinations: vec![],
    };
    let packaged = ssm_action::assets::Packaged::build(dir.path(), &[asset]).unwrap();
    let sources = [CodeSource {
        logical_id: "Fn".into(),
        asset_id: "h".into(),
        bucket: "assets".into(),
        key: "h.zip".into(),
    }];
    let result = restore_lambda_code(STACK, &sources, &packaged, &cfn, &lambda).await;
    (result, update.num_calls())
}

#[tokio::test]
async fn code_sha256_mismatch_is_restored_from_the_asset() {
    let expected = ssm_action::assets::code_sha256(b"PK-the-asset-zip");
    let (result, updates) = code_check("tampered+sha256/base64=").await;
    let reverted = result.unwrap();
    assert_eq!(updates, 1);
    assert_eq!(reverted.len(), 1);
    assert_eq!(reverted[0].logical_id, "Fn");
    assert_eq!(reverted[0].expected, expected);
    assert_eq!(reverted[0].actual, "tampered+sha256/base64=");
}

#[tokio::test]
async fn matching_code_is_left_alone() {
    let expected: &'static str =
        Box::leak(ssm_action::assets::code_sha256(b"PK-the-asset-zip").into_boxed_str());
    let (result, updates) = code_check(expected).await;
    assert!(result.unwrap().is_empty());
    assert_eq!(updates, 0);
}

#[tokio::test]
async fn a_missing_bootstrap_is_explained() {
    let describe = mock!(aws_sdk_cloudformation::Client::describe_stacks)
        .match_requests(|r| r.stack_name() == Some(STACK))
        .then_output(|| stacks(StackStatus::UpdateComplete));
    let toolkit = mock!(aws_sdk_cloudformation::Client::describe_stacks)
        .match_requests(|r| r.stack_name() == Some("CDKToolkit"))
        .then_error(missing);
    let create = mock!(aws_sdk_cloudformation::Client::create_change_set).then_error(|| {
        CreateChangeSetError::generic(
            ErrorMetadata::builder()
                .code("ValidationError")
                .message("Unable to fetch parameters [/cdk-bootstrap/hnb659fds/version] from parameter store for this account.")
                .build(),
        )
    });
    let placeholders = Placeholders::new("123456789012", "eu-west-1");
    let roles = RoleClients::fixed(cfn_clients(&[&describe, &toolkit, &create]));
    let inputs = inputs("apply", &[]);
    let ctx = deploy::Context {
        inputs: &inputs,
        assembly_dir: Path::new("."),
        placeholders: &placeholders,
        roles: &roles,
        change_set_name: "ssm-test-1".into(),
    };
    let body = r#"{"Parameters":{"BootstrapVersion":{"Type":"AWS::SSM::Parameter::Value<String>","Default":"/cdk-bootstrap/hnb659fds/version"}},"Resources":{}}"#;
    let template = Template {
        body: body.to_owned(),
        json: serde_json::from_str(body).unwrap(),
    };
    let err = deploy::deploy_stack(&ctx, &artifact(), &template)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not bootstrapped") && err.contains("cdk bootstrap aws://<account>/eu-west-1"),
        "{err}"
    );
    assert_eq!(toolkit.num_calls(), 1);
}

fn big_artifact() -> ssm_core::deploy::StackArtifact {
    let manifest = serde_json::json!({"artifacts": {STACK: {
        "type": "aws:cloudformation:stack",
        "properties": {
            "templateFile": "Svc.template.json",
            "stackTemplateAssetObjectUrl": "s3://assets-${AWS::AccountId}-${AWS::Region}/t.json",
            "cloudFormationExecutionRoleArn": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/exec-${AWS::Region}"
        }
    }}});
    CloudAssembly::parse(&manifest.to_string())
        .unwrap()
        .stacks
        .remove(0)
}

/// Deploys a new stack with `template` in `mode`; `create` must match the request.
async fn deploy_big(
    mode: &str,
    template: &Template,
    create: &Rule,
) -> (anyhow::Result<deploy::StackOutcome>, usize) {
    let describe = mock!(aws_sdk_cloudformation::Client::describe_stacks).then_error(missing);
    let describe_cs =
        mock!(aws_sdk_cloudformation::Client::describe_change_set).then_output(|| {
            change_set(vec![change(
                "Fn",
                "AWS::Lambda::Function",
                ChangeAction::Add,
                None,
            )])
        });
    let delete_cs = mock!(aws_sdk_cloudformation::Client::delete_change_set)
        .then_output(|| DeleteChangeSetOutput::builder().build());
    let delete = mock!(aws_sdk_cloudformation::Client::delete_stack)
        .then_output(|| DeleteStackOutput::builder().build());
    let execute = mock!(aws_sdk_cloudformation::Client::execute_change_set)
        .then_output(|| ExecuteChangeSetOutput::builder().build());
    let events = mock!(aws_sdk_cloudformation::Client::describe_stack_events)
        .then_output(|| DescribeStackEventsOutput::builder().build());
    let roles = RoleClients::fixed(cfn_clients(&[
        &describe,
        create,
        &describe_cs,
        &delete_cs,
        &delete,
        &execute,
        &events,
    ]));
    let placeholders = Placeholders::new("123456789012", "eu-west-1");
    let inputs = inputs(mode, &[]);
    let ctx = deploy::Context {
        inputs: &inputs,
        assembly_dir: Path::new("."),
        placeholders: &placeholders,
        roles: &roles,
        change_set_name: "ssm-test-1".into(),
    };
    let outcome = deploy::deploy_stack(&ctx, &big_artifact(), template).await;
    (outcome, delete_cs.num_calls())
}

fn created(id: &'static str) -> CreateChangeSetOutput {
    CreateChangeSetOutput::builder()
        .id(id)
        .stack_id("stack-big")
        .build()
}

/// 60 kB that no whitespace removal can shrink.
fn incompressible() -> Template {
    let padding = "x".repeat(60_000);
    let body = format!(r#"{{"Description":"{padding}","Resources":{{}}}}"#);
    Template {
        json: serde_json::from_str(&body).unwrap(),
        body,
    }
}

#[tokio::test]
async fn large_templates_go_by_their_s3_url_when_applied() {
    let create = mock!(aws_sdk_cloudformation::Client::create_change_set)
        .match_requests(|r| {
            r.template_body().is_none()
                && r.template_url()
                    == Some(
                        "https://s3.eu-west-1.amazonaws.com/assets-123456789012-eu-west-1/t.json",
                    )
                && r.role_arn() == Some("arn:aws:iam::123456789012:role/exec-eu-west-1")
        })
        .then_output(|| created("cs-big"));
    let (outcome, _) = deploy_big("apply", &incompressible(), &create).await;
    assert_eq!(create.num_calls(), 1);
    assert_eq!(outcome.unwrap().report.change_set_type, "CREATE");
}

#[tokio::test]
async fn plans_send_large_templates_inline_without_whitespace() {
    // CDK pretty-prints its templates: over the inline limit as written, well under it compact.
    let resources: serde_json::Map<String, serde_json::Value> = (0..400)
        .map(|i| {
            (
                format!("Queue{i}"),
                serde_json::json!({"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 60, "Tags": [{"Key": "k", "Value": "v"}]}}),
            )
        })
        .collect();
    let json = serde_json::json!({"Resources": resources});
    let body = serde_json::to_string_pretty(&json).unwrap();
    let compact = json.to_string();
    assert!(
        body.len() > 51_200 && compact.len() <= 51_200,
        "{} / {}",
        body.len(),
        compact.len()
    );
    let create = mock!(aws_sdk_cloudformation::Client::create_change_set)
        .match_requests(move |r| {
            r.template_url().is_none() && r.template_body() == Some(compact.as_str())
        })
        .then_output(|| created("cs-plan"));
    let (outcome, deleted) = deploy_big("plan", &Template { json, body }, &create).await;
    assert_eq!(create.num_calls(), 1, "inline, never by the bucket's URL");
    assert_eq!(outcome.unwrap().report.change_set_type, "CREATE");
    assert_eq!(deleted, 1, "a plan deletes its change set");
}

#[tokio::test]
async fn a_plan_of_a_template_too_large_to_inline_is_refused_with_a_reason() {
    let create = mock!(aws_sdk_cloudformation::Client::create_change_set)
        .then_output(|| created("cs-never"));
    let (outcome, _) = deploy_big("plan", &incompressible(), &create).await;
    let err = outcome.unwrap_err().to_string();
    assert!(
        err.contains("even without whitespace") && err.contains("publishes nothing"),
        "{err}"
    );
    assert_eq!(create.num_calls(), 0);
}

#[tokio::test]
async fn tampered_assets_emit_the_alarm_metric_per_stack() {
    let put = mock!(aws_sdk_cloudwatch::Client::put_metric_data)
        .match_requests(|r| {
            let d = &r.metric_data()[0];
            r.namespace() == Some("ServerlessSSM/Deploy")
                && d.metric_name() == Some("AssetTampered")
                && d.value() == Some(2.0)
                && d.dimensions()[0].name() == Some("Stack")
                && d.dimensions()[0].value() == Some(STACK)
        })
        .then_output(|| {
            aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataOutput::builder().build()
        });
    let cloudwatch = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&put]);
    let tampered = ssm_core::deploy::TamperedAsset {
        asset_id: "a".into(),
        bucket: "b".into(),
        key: "k".into(),
        expected_sha256: "e".into(),
        found_sha256: "f".into(),
    };
    let mut summary = RunSummary::default();
    summary.stacks.push(deploy::StackOutcome {
        report: ssm_core::deploy::StackReport {
            stack_name: STACK.into(),
            tampered: vec![tampered.clone(), tampered],
            ..Default::default()
        },
        ..Default::default()
    });
    summary.stacks.push(deploy::StackOutcome {
        report: ssm_core::deploy::StackReport {
            stack_name: "Clean".into(),
            ..Default::default()
        },
        ..Default::default()
    });
    summary.emit_metrics(&cloudwatch).await;
    assert_eq!(
        put.num_calls(),
        1,
        "one datum for the stack with tampering, none for a clean one"
    );
    assert_eq!(summary.tampered(), 2);
}

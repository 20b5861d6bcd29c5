//! The binary's edge: what it does with no inputs at all.

mod common;

#[tokio::test]
async fn empty_environment_exits_1_naming_the_missing_inputs() {
    let work = tempfile::tempdir().unwrap();
    let r = common::run_action(work.path(), &[]).await;
    assert_eq!(r.code, Some(1));
    assert!(
        r.stdout.starts_with(
            "::error title=ssm-action%3A inputs::missing required input(s): mode, aws-region"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains("error: missing required input(s): mode, aws-region"),
        "{}",
        r.stderr
    );
    assert!(r.outputs.is_empty() && r.summary.is_empty());
}

#[tokio::test]
async fn dashed_input_names_are_read() {
    // INPUT_AWS-REGION has a dash: a shell wrapper would drop it. Invalid on purpose, so the run
    // stops at parsing and the message proves the variable was seen.
    let work = tempfile::tempdir().unwrap();
    let r = common::run_action(
        work.path(),
        &[
            ("INPUT_MODE", "apply".into()),
            ("INPUT_AWS-REGION", "nowhere".into()),
            ("INPUT_ROLE-TO-ASSUME", "not-an-arn".into()),
        ],
    )
    .await;
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("invalid input `aws-region`: `nowhere`"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("invalid input `role-to-assume`"),
        "{}",
        r.stderr
    );
}

//! End-to-end runs of the `ssm-action` binary against moto (STS, S3, CloudFormation, Lambda) and
//! a local GitHub OIDC token endpoint.

mod common;

use common::*;

fn inputs(mode: &str, assembly: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("INPUT_MODE", mode.to_owned()),
        ("INPUT_AWS-REGION", REGION.to_owned()),
        ("INPUT_CLOUD-ASSEMBLY", assembly.display().to_string()),
        ("INPUT_AUDIENCE", "sts.amazonaws.com".to_owned()),
        ("INPUT_TAGS", "owner=ci".to_owned()),
        ("GITHUB_RUN_ID", "4242".to_owned()),
        ("GITHUB_RUN_ATTEMPT", "1".to_owned()),
        ("GITHUB_REPOSITORY", "octo/serverless-ssm".to_owned()),
    ]
}

fn with_oidc(
    mut env: Vec<(&'static str, String)>,
    endpoint: &str,
    oidc: &OidcServer,
) -> Vec<(&'static str, String)> {
    env.extend([
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        (
            "INPUT_ROLE-TO-ASSUME",
            format!("arn:aws:iam::{ACCOUNT}:role/github-deploy"),
        ),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", oidc.url.clone()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", oidc.bearer.clone()),
    ]);
    env
}

fn with_static_creds(
    mut env: Vec<(&'static str, String)>,
    endpoint: &str,
) -> Vec<(&'static str, String)> {
    env.extend([
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
    ]);
    env
}

fn assert_ok(r: &RunResult) {
    assert_eq!(
        r.code,
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        r.stdout,
        r.stderr
    );
}

#[tokio::test]
async fn apply_then_no_change_then_plan_then_update() {
    let Some(endpoint) = ssm_testkit::moto_endpoint("apply_then_no_change_then_plan_then_update")
    else {
        return;
    };
    let config = ssm_testkit::aws_config(&endpoint).await;
    let s3 = s3_client(&config);
    let cfn = aws_sdk_cloudformation::Client::new(&config);
    bootstrap_bucket(&s3).await;
    let work = tempfile::tempdir().unwrap();
    let asm = work.path().join("cdk.out");
    let stack = format!(
        "Lifecycle{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let asset = format!("a{}", uuid::Uuid::new_v4().simple());
    write_assembly(&asm, &stack, &asset, false);
    let oidc = start_oidc("sts.amazonaws.com").await;

    // 1. First deploy, through OIDC: creates the stack and uploads the assets.
    let first = run_action(
        work.path(),
        &with_oidc(inputs("apply", &asm), &endpoint, &oidc),
    )
    .await;
    assert_ok(&first);
    let requests = oidc.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(
        requests[0].contains("audience=sts.amazonaws.com")
            && requests[0].contains("api-version=2.0")
    );
    let object = s3
        .head_object()
        .bucket(BUCKET)
        .key(format!("{asset}.zip"))
        .send()
        .await;
    assert!(
        object.is_ok(),
        "the zip asset is under <hash>.zip in the bootstrap bucket"
    );
    let described = cfn
        .describe_stacks()
        .stack_name(&stack)
        .send()
        .await
        .unwrap();
    let live = &described.stacks()[0];
    assert_eq!(live.stack_status().unwrap().as_str(), "CREATE_COMPLETE");
    assert!(
        live.tags()
            .iter()
            .any(|t| t.key() == Some("owner") && t.value() == Some("ci"))
    );
    assert!(
        live.tags()
            .iter()
            .any(|t| t.key() == Some("project") && t.value() == Some("ssm"))
    );
    assert_eq!(first.outputs["has-changes"], "true");
    assert_eq!(first.outputs["changes-count"], "2");
    assert_eq!(first.outputs["stack-id"], live.stack_id().unwrap());
    assert!(
        first.outputs["change-set-id"].contains(":changeSet/ssm-apply-4242-1-"),
        "{:?}",
        first.outputs
    );
    // moto leaves stacks made by change sets without outputs; stack outputs as Action outputs
    // are covered by the mocked tests. The Markdown output is multi-line and must survive.
    assert!(first.outputs["changes-markdown"].lines().count() > 3);
    assert!(
        first.outputs["changes-markdown"].contains("| ➕ Add | `Fn` | AWS::Lambda::Function |")
    );
    assert!(
        first.summary.contains(&format!("### {stack} — `apply`")),
        "{}",
        first.summary
    );
    assert!(
        first
            .summary
            .contains("assets: 2 uploaded, 0 already present"),
        "{}",
        first.summary
    );
    assert!(first.stdout.contains("::group::"));

    // The token reaches stdout only inside the ::add-mask:: command, and never reaches stderr.
    let jwt_lines: Vec<&str> = first
        .stdout
        .lines()
        .filter(|l| l.contains(&oidc.jwt))
        .collect();
    assert_eq!(jwt_lines, [format!("::add-mask::{}", oidc.jwt)]);
    assert!(!first.stderr.contains(&oidc.jwt) && !first.stderr.contains(&oidc.bearer));
    assert!(!first.stdout.contains(&oidc.bearer));
    assert!(!first.stdout.contains("signature-bytes") && !first.stderr.contains("c2lnbmF0dXJl"));
    // Every secret masked (the token, and each role's secret key and session token) is printed
    // only in its own ::add-mask:: line: never logged elsewhere.
    let masked: Vec<&str> = first
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("::add-mask::"))
        .collect();
    assert!(
        masked.len() >= 5,
        "token + OIDC role + publishing and deploy roles' keys: {masked:?}"
    );
    for secret in masked {
        assert_eq!(
            first.stdout.matches(secret).count(),
            1,
            "{secret} leaked into stdout"
        );
        assert!(
            !first.stderr.contains(secret),
            "{secret} leaked into the log"
        );
    }

    // 2. The same assembly again (default credential chain this time): no changes, success.
    let second = run_action(
        work.path(),
        &with_static_creds(inputs("apply", &asm), &endpoint),
    )
    .await;
    assert_ok(&second);
    assert_eq!(second.outputs["has-changes"], "false");
    assert_eq!(second.outputs["changes-count"], "0");
    assert_eq!(second.outputs["change-set-id"], "");
    assert!(second.summary.contains("no changes"), "{}", second.summary);
    assert!(
        second
            .summary
            .contains("assets: 0 uploaded, 2 already present"),
        "{}",
        second.summary
    );
    assert!(
        second.stderr.contains("default AWS credential chain"),
        "{}",
        second.stderr
    );

    // fail-on-empty-changeset turns the same run into a failure.
    let mut strict = with_static_creds(inputs("apply", &asm), &endpoint);
    strict.push(("INPUT_FAIL-ON-EMPTY-CHANGESET", "true".into()));
    // No OIDC but a role: assumed with the default chain's credentials, as the AWS action does.
    strict.push((
        "INPUT_ROLE-TO-ASSUME",
        format!("arn:aws:iam::{ACCOUNT}:role/local-deploy"),
    ));
    let strict = run_action(work.path(), &strict).await;
    assert!(
        strict.stderr.contains(
            "default AWS credential chain to assume arn:aws:iam::123456789012:role/local-deploy"
        ),
        "{}",
        strict.stderr
    );
    assert_eq!(strict.code, Some(1));
    assert!(
        strict.stdout.contains("::error") && strict.stdout.contains("no changes"),
        "{}",
        strict.stdout
    );

    // 3. A changed template, planned: reported, never executed, no change set left behind.
    write_assembly(&asm, &stack, &asset, true);
    let plan = run_action(
        work.path(),
        &with_static_creds(inputs("plan", &asm), &endpoint),
    )
    .await;
    assert_ok(&plan);
    assert_eq!(plan.outputs["has-changes"], "true");
    assert_eq!(plan.outputs["changes-count"], "1");
    assert!(
        plan.outputs["changes-markdown"].contains("would change 1 resource(s)"),
        "{}",
        plan.outputs["changes-markdown"]
    );
    assert!(plan.outputs["changes-markdown"].contains("`Queue` | AWS::SQS::Queue"));
    assert!(
        plan.summary
            .contains("assets: 1 uploaded, 1 already present"),
        "only the new template uploads: {}",
        plan.summary
    );
    let resources = cfn
        .describe_stack_resources()
        .stack_name(&stack)
        .send()
        .await
        .unwrap();
    assert!(
        !resources
            .stack_resources()
            .iter()
            .any(|r| r.logical_resource_id() == Some("Queue")),
        "plan executed"
    );
    let sets = cfn
        .list_change_sets()
        .stack_name(&stack)
        .send()
        .await
        .unwrap();
    // (moto lists executed change sets of every stack too; only a leftover plan would be wrong.)
    let leftover: Vec<_> = sets
        .summaries()
        .iter()
        .filter(|s| {
            s.stack_name() == Some(stack.as_str())
                && s.change_set_name()
                    .is_some_and(|n| n.starts_with("ssm-plan"))
        })
        .collect();
    assert!(
        leftover.is_empty(),
        "plan leaves no change set: {leftover:?}"
    );

    // 4. The changed template, applied: the queue exists.
    let update = run_action(
        work.path(),
        &with_static_creds(inputs("apply", &asm), &endpoint),
    )
    .await;
    assert_ok(&update);
    let described = cfn
        .describe_stacks()
        .stack_name(&stack)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.stacks()[0].stack_status().unwrap().as_str(),
        "UPDATE_COMPLETE"
    );
    let resources = cfn
        .describe_stack_resources()
        .stack_name(&stack)
        .send()
        .await
        .unwrap();
    assert!(
        resources
            .stack_resources()
            .iter()
            .any(|r| r.logical_resource_id() == Some("Queue"))
    );
    assert!(
        update
            .summary
            .contains("assets: 0 uploaded, 2 already present"),
        "the plan published them: {}",
        update.summary
    );
}

#[tokio::test]
async fn reconcile_restores_drifted_lambda_code() {
    let Some(endpoint) = ssm_testkit::moto_endpoint("reconcile_restores_drifted_lambda_code")
    else {
        return;
    };
    let config = ssm_testkit::aws_config(&endpoint).await;
    let s3 = s3_client(&config);
    let lambda = aws_sdk_lambda::Client::new(&config);
    let cfn = aws_sdk_cloudformation::Client::new(&config);
    bootstrap_bucket(&s3).await;
    let work = tempfile::tempdir().unwrap();
    let asm = work.path().join("cdk.out");
    let stack = format!("Drift{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let asset = format!("d{}", uuid::Uuid::new_v4().simple());
    write_assembly(&asm, &stack, &asset, false);
    assert_ok(
        &run_action(
            work.path(),
            &with_static_creds(inputs("apply", &asm), &endpoint),
        )
        .await,
    );

    let function = cfn
        .describe_stack_resource()
        .stack_name(&stack)
        .logical_resource_id("Fn")
        .send()
        .await
        .unwrap()
        .stack_resource_detail()
        .unwrap()
        .physical_resource_id()
        .unwrap()
        .to_owned();
    let deployed = lambda
        .get_function()
        .function_name(&function)
        .send()
        .await
        .unwrap();
    let good_sha = deployed
        .configuration()
        .unwrap()
        .code_sha256()
        .unwrap()
        .to_owned();
    let asset_zip = s3
        .get_object()
        .bucket(BUCKET)
        .key(format!("{asset}.zip"))
        .send()
        .await
        .unwrap();
    let asset_bytes = asset_zip.body.collect().await.unwrap().into_bytes();
    assert_eq!(
        good_sha,
        ssm_action::assets::code_sha256(&asset_bytes),
        "moto computes CodeSha256 like AWS"
    );

    // A clean reconcile changes nothing.
    let clean = run_action(
        work.path(),
        &with_static_creds(inputs("reconcile", &asm), &endpoint),
    )
    .await;
    assert_ok(&clean);
    assert_eq!(clean.outputs["drifted-resources"], "[]");

    // Someone replaces the code out of band.
    let tampered = b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec();
    lambda
        .update_function_code()
        .function_name(&function)
        .zip_file(aws_sdk_lambda::primitives::Blob::new(tampered.clone()))
        .send()
        .await
        .unwrap();
    let bad_sha = ssm_action::assets::code_sha256(&tampered);

    let run = run_action(
        work.path(),
        &with_static_creds(inputs("reconcile", &asm), &endpoint),
    )
    .await;
    assert_ok(&run);
    let now = lambda
        .get_function()
        .function_name(&function)
        .send()
        .await
        .unwrap();
    assert_eq!(
        now.configuration().unwrap().code_sha256(),
        Some(good_sha.as_str()),
        "code restored from the asset"
    );
    assert_eq!(
        run.outputs["drifted-resources"],
        format!("[\"{stack}/Fn\"]")
    );
    assert_eq!(run.outputs["has-changes"], "true");
    assert!(
        run.summary.contains("#### Drift reverted"),
        "{}",
        run.summary
    );
    assert!(
        run.summary.contains(&format!(
            "| `Fn` | AWS::Lambda::Function | `Code (CodeSha256)` | `{good_sha}` | `{bad_sha}` |"
        )),
        "{}",
        run.summary
    );
}

#[tokio::test]
async fn wrong_audience_fails_before_touching_aws() {
    let Some(endpoint) = ssm_testkit::moto_endpoint("wrong_audience_fails_before_touching_aws")
    else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let asm = work.path().join("cdk.out");
    write_assembly(&asm, "Never", "never", false);
    let oidc = start_oidc("sts.amazonaws.com").await;
    let mut env = with_oidc(inputs("apply", &asm), &endpoint, &oidc);
    env.retain(|(k, _)| *k != "INPUT_AUDIENCE");
    env.push(("INPUT_AUDIENCE", "sts.amazonaws.com.cn".into()));
    let r = run_action(work.path(), &env).await;
    assert_eq!(r.code, Some(1));
    assert!(
        r.stdout.contains("could not get the GitHub OIDC token"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("id-token: write"));
    assert!(!r.stdout.contains(&oidc.bearer) && !r.stderr.contains(&oidc.bearer));
}

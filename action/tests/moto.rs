//! End-to-end runs of the `ssm-action` binary against moto (STS, S3, CloudFormation, Lambda,
//! Secrets Manager) and a local GitHub OIDC token endpoint.
#![expect(
    clippy::unwrap_used,
    reason = "the helpers shared by these tests fail loudly"
)]

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

/// Every object of the bootstrap bucket: key, ETag and modification time.
/// Key, ETag and modification time of the bucket's objects that `assembly`'s stack publishes
/// (its asset manifest's object keys): other tests share the bucket and write their own.
async fn bucket_listing(
    s3: &aws_sdk_s3::Client,
    assembly: &std::path::Path,
    stack: &str,
) -> Vec<(String, String, String)> {
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(assembly.join(format!("{stack}.assets.json"))).unwrap(),
    )
    .unwrap();
    let keys: Vec<&str> = manifest["files"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|f| f["destinations"].as_object().unwrap().values())
        .map(|d| d["objectKey"].as_str().unwrap())
        .collect();
    assert!(!keys.is_empty(), "the assembly publishes nothing");
    let mut all = Vec::new();
    let mut pages = s3.list_objects_v2().bucket(BUCKET).into_paginator().send();
    while let Some(page) = pages.next().await {
        for o in page.unwrap().contents() {
            if !keys.contains(&o.key().unwrap_or_default()) {
                continue;
            }
            all.push((
                o.key().unwrap_or_default().to_owned(),
                o.e_tag().unwrap_or_default().to_owned(),
                o.last_modified().map(|t| t.to_string()).unwrap_or_default(),
            ));
        }
    }
    all
}

/// Runs the Action in `reconcile` mode on `assembly` with static credentials.
async fn reconcile(
    work: &std::path::Path,
    assembly: &std::path::Path,
    endpoint: &str,
) -> RunResult {
    run_action(
        work,
        &with_static_creds(inputs("reconcile", assembly), endpoint),
    )
    .await
}

/// Someone replaces a function's code out of band.
async fn replace_code(lambda: &aws_sdk_lambda::Client, function: &str, zip: &[u8]) {
    lambda
        .update_function_code()
        .function_name(function)
        .zip_file(aws_sdk_lambda::primitives::Blob::new(zip.to_vec()))
        .send()
        .await
        .unwrap();
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

    // 3. A changed template, planned: reported, never executed, no change set left behind, and
    // nothing written to the assets bucket (a plan runs a pull request's code).
    write_assembly(&asm, &stack, &asset, true);
    let before = bucket_listing(&s3, &asm, &stack).await;
    let plan = run_action(
        work.path(),
        &with_static_creds(inputs("plan", &asm), &endpoint),
    )
    .await;
    assert_ok(&plan);
    assert_eq!(
        bucket_listing(&s3, &asm, &stack).await,
        before,
        "a plan wrote to the bucket"
    );
    assert_eq!(plan.outputs["has-changes"], "true");
    assert_eq!(plan.outputs["changes-count"], "1");
    assert!(
        plan.outputs["changes-markdown"].contains("would change 1 resource(s)"),
        "{}",
        plan.outputs["changes-markdown"]
    );
    assert!(plan.outputs["changes-markdown"].contains("`Queue` | AWS::SQS::Queue"));
    assert!(
        plan.summary.contains("assets: not published (plan)"),
        "{}",
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
            .contains("assets: 1 uploaded, 1 already present"),
        "the apply publishes the new template, the plan did not: {}",
        update.summary
    );
}

#[tokio::test]
async fn reconcile_restores_drifted_lambda_code() {
    let Some(endpoint) = ssm_testkit::moto_endpoint("reconcile_restores_drifted_lambda_code")
    else {
        return;
    };
    let Aws {
        s3, lambda, cfn, ..
    } = aws(&endpoint).await;
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

    let function = function_of(&cfn, &stack).await;
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
    let clean = reconcile(work.path(), &asm, &endpoint).await;
    assert_ok(&clean);
    assert_eq!(clean.outputs["drifted-resources"], "[]");

    // Someone replaces the code out of band.
    let tampered = b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec();
    replace_code(&lambda, &function, &tampered).await;
    let bad_sha = ssm_action::assets::code_sha256(&tampered);

    let run = reconcile(work.path(), &asm, &endpoint).await;
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

/// Clients for moto, with the bootstrap bucket in place.
struct Aws {
    config: aws_config::SdkConfig,
    s3: aws_sdk_s3::Client,
    lambda: aws_sdk_lambda::Client,
    cfn: aws_sdk_cloudformation::Client,
}

async fn aws(endpoint: &str) -> Aws {
    let config = ssm_testkit::aws_config(endpoint).await;
    let s3 = s3_client(&config);
    bootstrap_bucket(&s3).await;
    Aws {
        lambda: aws_sdk_lambda::Client::new(&config),
        cfn: aws_sdk_cloudformation::Client::new(&config),
        s3,
        config,
    }
}

/// The bytes of an object of the bootstrap bucket.
async fn object_bytes(s3: &aws_sdk_s3::Client, key: &str) -> Vec<u8> {
    let object = s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    object.body.collect().await.unwrap().into_bytes().to_vec()
}

/// The function id the stack created for `Fn`.
async fn function_of(cfn: &aws_sdk_cloudformation::Client, stack: &str) -> String {
    cfn.describe_stack_resource()
        .stack_name(stack)
        .logical_resource_id("Fn")
        .send()
        .await
        .unwrap()
        .stack_resource_detail()
        .unwrap()
        .physical_resource_id()
        .unwrap()
        .to_owned()
}

async fn live_code_sha(lambda: &aws_sdk_lambda::Client, function: &str) -> String {
    lambda
        .get_function()
        .function_name(function)
        .send()
        .await
        .unwrap()
        .configuration()
        .unwrap()
        .code_sha256()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn reconcile_restores_the_commits_code_not_an_overwritten_asset() {
    let Some(endpoint) =
        ssm_testkit::moto_endpoint("reconcile_restores_the_commits_code_not_an_overwritten_asset")
    else {
        return;
    };
    let Aws {
        s3, lambda, cfn, ..
    } = aws(&endpoint).await;
    let Deployed {
        work,
        asm,
        asset,
        function,
        ..
    } = deployed_fixture(&endpoint, &cfn, "Tamper").await;
    let local = ssm_action::assets::deterministic_zip(&asm.join(format!("asset.{asset}"))).unwrap();
    let good_sha = ssm_action::assets::code_sha256(&local);
    assert_eq!(live_code_sha(&lambda, &function).await, good_sha);

    // Someone who can write to the bucket replaces the asset object, then changes the function's
    // code (or waits for anything that dispatches a reconcile).
    let evil = b"PK\x05\x06evil-code-from-a-pull-request\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec();
    s3.put_object()
        .bucket(BUCKET)
        .key(format!("{asset}.zip"))
        .body(aws_sdk_s3::primitives::ByteStream::from(evil.clone()))
        .send()
        .await
        .unwrap();
    let drifted = b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec();
    replace_code(&lambda, &function, &drifted).await;

    let run = reconcile(work.path(), &asm, &endpoint).await;
    let now = live_code_sha(&lambda, &function).await;
    assert_ne!(
        now,
        ssm_action::assets::code_sha256(&evil),
        "the overwritten object was installed:\n{}",
        run.stderr
    );
    assert_eq!(
        now, good_sha,
        "the commit's code is restored:\n{}",
        run.stderr
    );
    // The tampering is reported, the object restored, and the run fails.
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let object = format!("s3://{BUCKET}/{asset}.zip");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("::error title=asset tampered")
                && l.contains(&format!("{asset}.zip"))),
        "{}",
        run.stdout
    );
    assert!(
        run.summary.contains("#### ⛔ Tampered assets")
            && run.summary.contains(&format!("| `{object}` |")),
        "{}",
        run.summary
    );
    let restored = object_bytes(&s3, &format!("{asset}.zip")).await;
    assert_eq!(
        restored.as_slice(),
        local.as_slice(),
        "the object holds the commit's bytes again"
    );
    assert!(
        run.summary.contains(&format!(
            "| `Fn` | AWS::Lambda::Function | `Code (CodeSha256)` | `{good_sha}` | `{}` |",
            ssm_action::assets::code_sha256(&drifted)
        )),
        "{}",
        run.summary
    );
}

#[tokio::test]
async fn publish_compares_existing_objects_by_content_and_restores_them() {
    let Some(endpoint) = ssm_testkit::moto_endpoint(
        "publish_compares_existing_objects_by_content_and_restores_them",
    ) else {
        return;
    };
    use ssm_action::assets::{Packaged, publish};
    use ssm_core::deploy::assembly::{Destination, FileAsset, Packaging, Placeholders};
    const N: usize = 10;
    const SIZE: usize = 1 << 20;
    let config = ssm_testkit::aws_config(&endpoint).await;
    let s3 = s3_client(&config);
    bootstrap_bucket(&s3).await;
    let dir = tempfile::tempdir().unwrap();
    let prefix = uuid::Uuid::new_v4().simple().to_string();
    let assets: Vec<FileAsset> = (0..N)
        .map(|i| {
            let bytes: Vec<u8> = (0..SIZE).map(|j| ((i * 31 + j * 7) % 251) as u8).collect();
            std::fs::write(dir.path().join(format!("a{i}.bin")), bytes).unwrap();
            FileAsset {
                id: format!("a{i}"),
                path: format!("a{i}.bin"),
                packaging: Packaging::File,
                destinations: vec![Destination {
                    bucket: BUCKET.into(),
                    key: format!("{prefix}/a{i}.bin"),
                    assume_role_arn: None,
                }],
            }
        })
        .collect();
    let packaged = Packaged::build(dir.path(), &assets).unwrap();
    let roles = ssm_action::clients::RoleClients::fixed(ssm_action::clients::Clients::new(&config));
    let placeholders = Placeholders::new(ACCOUNT, REGION);

    let first = publish(&assets, &packaged, &placeholders, &roles)
        .await
        .unwrap();
    assert_eq!((first.uploaded, first.skipped), (N, 0));

    // What a deploy with N assets already published costs: the old presence check (one
    // ListObjectsV2 per object) against reading and comparing every object.
    let t = std::time::Instant::now();
    for a in &assets {
        let listed = s3
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix(&a.destinations[0].key)
            .max_keys(1)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.contents().len(), 1);
    }
    let presence = t.elapsed();
    let t = std::time::Instant::now();
    let again = publish(&assets, &packaged, &placeholders, &roles)
        .await
        .unwrap();
    let content = t.elapsed();
    assert_eq!((again.uploaded, again.skipped), (0, N));
    assert!(again.tampered.is_empty());
    eprintln!(
        "publish of {N} existing {} KiB assets against moto: presence check {presence:?}, content check {content:?}",
        SIZE / 1024
    );

    // Same size other bytes, and another size: both are tampering, both restored.
    let mut same_size = packaged.get("a0").unwrap().to_vec();
    same_size[SIZE / 2] ^= 1;
    for (key, body) in [
        (format!("{prefix}/a0.bin"), same_size),
        (format!("{prefix}/a1.bin"), b"short".to_vec()),
    ] {
        s3.put_object()
            .bucket(BUCKET)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(body))
            .send()
            .await
            .unwrap();
    }
    let third = publish(&assets, &packaged, &placeholders, &roles)
        .await
        .unwrap();
    assert_eq!((third.uploaded, third.skipped), (2, N - 2));
    let ids: Vec<&str> = third.tampered.iter().map(|t| t.asset_id.as_str()).collect();
    assert_eq!(ids, ["a0", "a1"]);
    assert_eq!(
        third.tampered[0].expected_sha256,
        ssm_action::assets::hex_sha256(packaged.get("a0").unwrap())
    );
    for id in ["a0", "a1"] {
        let now = object_bytes(&s3, &format!("{prefix}/{id}.bin")).await;
        assert_eq!(now.as_slice(), packaged.get(id).unwrap(), "{id} restored");
    }
    let fourth = publish(&assets, &packaged, &placeholders, &roles)
        .await
        .unwrap();
    assert_eq!(
        (fourth.uploaded, fourth.skipped, fourth.tampered.len()),
        (0, N, 0)
    );
}

/// The fixture stack, deployed by the Action.
struct Deployed {
    work: tempfile::TempDir,
    asm: std::path::PathBuf,
    stack: String,
    asset: String,
    function: String,
}

async fn deployed_fixture(
    endpoint: &str,
    cfn: &aws_sdk_cloudformation::Client,
    prefix: &str,
) -> Deployed {
    let work = tempfile::tempdir().unwrap();
    let asm = work.path().join("cdk.out");
    let stack = format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let asset = format!("a{}", uuid::Uuid::new_v4().simple());
    write_assembly(&asm, &stack, &asset, false);
    assert_ok(
        &run_action(
            work.path(),
            &with_static_creds(inputs("apply", &asm), endpoint),
        )
        .await,
    );
    let function = function_of(cfn, &stack).await;
    Deployed {
        work,
        asm,
        stack,
        asset,
        function,
    }
}

async fn add_backdoors(lambda: &aws_sdk_lambda::Client, function: &str) {
    lambda
        .add_permission()
        .function_name(function)
        .statement_id("backdoor")
        .action("lambda:InvokeFunction")
        .principal("999999999999")
        .send()
        .await
        .unwrap();
    lambda
        .create_function_url_config()
        .function_name(function)
        .auth_type(aws_sdk_lambda::types::FunctionUrlAuthType::None)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn reconcile_names_undeclared_lambda_permissions_and_function_urls() {
    let Some(endpoint) = ssm_testkit::moto_endpoint(
        "reconcile_names_undeclared_lambda_permissions_and_function_urls",
    ) else {
        return;
    };
    let Aws { lambda, cfn, .. } = aws(&endpoint).await;
    let Deployed {
        work,
        asm,
        stack,
        function,
        ..
    } = deployed_fixture(&endpoint, &cfn, "Undeclared").await;

    add_backdoors(&lambda, &function).await;
    let run = reconcile(work.path(), &asm, &endpoint).await;
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&run.outputs["unrevertable-drift"]).unwrap();
    let kinds: Vec<(&str, &str)> = listed
        .iter()
        .map(|d| {
            (
                d["logical_id"].as_str().unwrap(),
                d["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds, [("Fn", "Lambda permission"), ("Fn", "Function URL")]);
    assert!(listed.iter().all(|d| d["stack"] == stack.as_str()));
    assert!(
        listed[0]["detail"].as_str().unwrap().contains("`backdoor`"),
        "{listed:?}"
    );
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.starts_with(&format!("::error title=unrevertable drift%3A {stack}/Fn")))
            .count(),
        2,
        "{}",
        run.stdout
    );
    assert!(
        run.summary.contains("#### ⛔ Unrevertable drift"),
        "{}",
        run.summary
    );
    // Nothing removed: a person decides.
    assert!(
        lambda
            .get_policy()
            .function_name(&function)
            .send()
            .await
            .is_ok()
    );

    // Once removed by hand, the reconcile is green again.
    lambda
        .remove_permission()
        .function_name(&function)
        .statement_id("backdoor")
        .send()
        .await
        .unwrap();
    lambda
        .delete_function_url_config()
        .function_name(&function)
        .send()
        .await
        .unwrap();
    let clean = reconcile(work.path(), &asm, &endpoint).await;
    assert_ok(&clean);
    assert_eq!(clean.outputs["unrevertable-drift"], "[]");
}

async fn put_policy(sm: &aws_sdk_secretsmanager::Client, secret: &str, policy: &str) {
    sm.put_resource_policy()
        .secret_id(secret)
        .resource_policy(policy)
        .send()
        .await
        .unwrap();
}

async fn live_policy(sm: &aws_sdk_secretsmanager::Client, secret: &str) -> Option<String> {
    sm.get_resource_policy()
        .secret_id(secret)
        .send()
        .await
        .unwrap()
        .resource_policy
}

/// moto's CloudFormation does not create secrets: the stack's resources come from a mocked
/// DescribeStackResources naming a secret and the function moto made; Secrets Manager and Lambda
/// are moto's.
#[tokio::test]
async fn a_policy_on_a_secret_is_deleted_or_put_back_as_declared() {
    let Some(endpoint) =
        ssm_testkit::moto_endpoint("a_policy_on_a_secret_is_deleted_or_put_back_as_declared")
    else {
        return;
    };
    use aws_sdk_cloudformation::operation::describe_stack_resources::DescribeStackResourcesOutput;
    use aws_sdk_cloudformation::types::StackResource;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use serde_json::json;
    use ssm_action::undeclared::{CheckClients, check};

    let Aws {
        config,
        lambda,
        cfn,
        ..
    } = aws(&endpoint).await;
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let Deployed {
        stack, function, ..
    } = deployed_fixture(&endpoint, &cfn, "Keyring").await;
    let secret = sm
        .create_secret()
        .name(format!("{stack}-keyring"))
        .secret_string(r#"{"keys":[]}"#)
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/{stack}-CryptoRole");
    let resources = {
        let (secret, function, stack) = (secret.clone(), function.clone(), stack.clone());
        mock!(aws_sdk_cloudformation::Client::describe_stack_resources).then_output(move || {
            let r = |id: &str, ty: &str, physical: &str| {
                StackResource::builder()
                    .logical_resource_id(id)
                    .resource_type(ty)
                    .physical_resource_id(physical)
                    .build()
            };
            DescribeStackResourcesOutput::builder()
                .stack_resources(r("Keyring", "AWS::SecretsManager::Secret", &secret))
                .stack_resources(r("Fn", "AWS::Lambda::Function", &function))
                .stack_resources(r(
                    "CryptoRole",
                    "AWS::IAM::Role",
                    &format!("{stack}-CryptoRole"),
                ))
                .stack_resources(r(
                    "Invoke",
                    "AWS::Lambda::Permission",
                    "Declared-Invoke-1AB",
                ))
                .build()
        })
    };
    let mocked_cfn = mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, [&resources]);
    let clients = CheckClients {
        cloudformation: &mocked_cfn,
        secretsmanager: &sm,
        lambda: &lambda,
    };
    let placeholders = ssm_core::deploy::Placeholders::new(ACCOUNT, REGION);
    let mut template = json!({"Resources": {
        "Keyring": {"Type": "AWS::SecretsManager::Secret"},
        "CryptoRole": {"Type": "AWS::IAM::Role"},
        "Fn": {"Type": "AWS::Lambda::Function"},
        "Invoke": {"Type": "AWS::Lambda::Permission", "Properties": {"FunctionName": {"Ref": "Fn"}}}
    }});
    let foreign = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
        "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})
    .to_string();
    // The declared permission is ours; nothing to report.
    lambda
        .add_permission()
        .function_name(&function)
        .statement_id("Declared-Invoke-1AB")
        .action("lambda:InvokeFunction")
        .principal("events.amazonaws.com")
        .send()
        .await
        .unwrap();

    // 1. The template declares no policy: the added one is deleted.
    put_policy(&sm, &secret, &foreign).await;
    let found = check(&stack, &template, &placeholders, &clients)
        .await
        .unwrap();
    assert!(found.unrevertable.is_empty(), "{:?}", found.unrevertable);
    assert_eq!(found.reverted.len(), 1);
    assert_eq!(found.reverted[0].logical_id, "Keyring");
    assert_eq!(found.reverted[0].actual, foreign);
    assert_eq!(
        live_policy(&sm, &secret).await,
        None,
        "the foreign policy is gone"
    );

    // 2. The template declares one: another policy is replaced by the declared document, with
    // its intrinsics resolved.
    template["Resources"]["KeyringPolicy"] = json!({
        "Type": "AWS::SecretsManager::ResourcePolicy",
        "Properties": {"SecretId": {"Ref": "Keyring"}, "BlockPublicPolicy": true, "ResourcePolicy": {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "secretsmanager:GetSecretValue", "Resource": "*",
                "Condition": {"StringNotEquals": {"aws:PrincipalArn": [{"Fn::GetAtt": ["CryptoRole", "Arn"]}]}}}]
        }}
    });
    put_policy(&sm, &secret, &foreign).await;
    let found = check(&stack, &template, &placeholders, &clients)
        .await
        .unwrap();
    assert_eq!(found.reverted.len(), 1, "{:?}", found.unrevertable);
    let now: serde_json::Value =
        serde_json::from_str(&live_policy(&sm, &secret).await.unwrap()).unwrap();
    assert_eq!(
        now["Statement"][0]["Condition"]["StringNotEquals"]["aws:PrincipalArn"],
        json!([role_arn])
    );
    // Put back, it matches: a second check does nothing.
    let again = check(&stack, &template, &placeholders, &clients)
        .await
        .unwrap();
    assert!(again.reverted.is_empty() && again.unrevertable.is_empty());

    // 3. An undeclared statement and a Function URL are named, not removed.
    add_backdoors(&lambda, &function).await;
    let found = check(&stack, &template, &placeholders, &clients)
        .await
        .unwrap();
    let kinds: Vec<&str> = found.unrevertable.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds, ["Lambda permission", "Function URL"]);
    assert!(
        found.unrevertable[1].detail.contains("auth NONE"),
        "{:?}",
        found.unrevertable
    );
}

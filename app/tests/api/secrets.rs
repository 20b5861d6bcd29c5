//! The App's key and webhook secrets read from Secrets Manager (moto) at startup.

use clap::Parser;
use ssm_app::{Application, Opts};
use ssm_core::webhook::sign;
use ssm_testkit::github::{GitHubEmulator, TEST_APP_PRIVATE_KEY_PEM, TEST_APP_PUBLIC_KEY_PEM};

use crate::helpers::{
    ALLOWED_ROLE, APP_ID, AUDIENCE, INSTALLATION, POLICY, ROTATED_SECRET, TestApp, WEBHOOK_SECRET,
    logs, perms,
};

async fn put_secret(moto: &str, name: &str, value: &str) -> String {
    let config = ssm_testkit::aws_config(moto).await;
    aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("create secret")
        .arn
        .expect("arn")
}

/// A secret name no other run used (moto outlives test runs).
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{name}-{nanos}")
}

fn opts(github: &str, sts: &str, extra: &[String]) -> Opts {
    let mut args = vec![
        "ssm-app".to_owned(),
        "--listen=127.0.0.1:0".to_owned(),
        "--metrics-listen=127.0.0.1:0".to_owned(),
        format!("--github-api-url={github}"),
        format!("--sts-endpoint={sts}"),
        format!("--audience={AUDIENCE}"),
        format!("--policy={POLICY}"),
    ];
    args.extend_from_slice(extra);
    Opts::try_parse_from(args).expect("options")
}

#[tokio::test]
async fn key_and_webhook_secrets_come_from_secrets_manager() {
    let test = "key_and_webhook_secrets_come_from_secrets_manager";
    let Some(moto) = ssm_testkit::moto_endpoint(test) else {
        return;
    };
    crate::helpers::logs();
    let key_json =
        serde_json::json!({"app_id": APP_ID.to_string(), "pem": TEST_APP_PRIVATE_KEY_PEM});
    let key_id = put_secret(&moto, &unique("app-key"), &key_json.to_string()).await;
    let hooks = serde_json::json!([ROTATED_SECRET, WEBHOOK_SECRET]).to_string();
    let hook_id = put_secret(&moto, &unique("webhook"), &hooks).await;

    let github = GitHubEmulator::start(APP_ID, TEST_APP_PUBLIC_KEY_PEM).await;
    github.install("acme/infra", INSTALLATION);
    // No GITHUB_APP_ID: the id comes from the key secret.
    let opts = opts(
        &github.base_url(),
        &moto,
        &[
            format!("--private-key-secret-id={key_id}"),
            format!("--webhook-secret-id={hook_id}"),
        ],
    );
    let settings = ssm_app::secrets::load_settings(opts)
        .await
        .expect("settings from Secrets Manager");
    assert_eq!(settings.app_id, APP_ID.to_string());
    assert_eq!(settings.webhook_secrets.len(), 2);
    let server = Application::build(settings).expect("build");
    let app = TestApp {
        address: format!("http://127.0.0.1:{}", server.port()),
        metrics_address: format!(
            "http://127.0.0.1:{}",
            server.metrics_port().expect("a metrics listener")
        ),
        state: server.state(),
        http: reqwest::Client::new(),
        sts_endpoint: moto.clone(),
        moto: moto.clone(),
        github,
    };
    tokio::spawn(server.run_until_stopped());

    let creds = app.assume(ALLOWED_ROLE).await;
    let token = app
        .client()
        .token(&creds, "acme/infra", &perms(&[("contents", "write")]))
        .await
        .expect("a token minted with the key from Secrets Manager");
    assert_eq!(token.repository, "acme/infra");
    let body = b"{\"zen\": \"Keep it logically awesome.\", \"hook_id\": 1}".to_vec();
    for (delivery, secret) in [("s-1", WEBHOOK_SECRET), ("s-2", ROTATED_SECRET)] {
        let sig = sign(secret.as_bytes(), &body);
        let resp = app
            .post_webhook("ping", delivery, Some(&sig), body.clone())
            .await;
        assert_eq!(resp.status(), 200, "signed with a secret from the list");
    }

    let log = logs();
    let key_line = TEST_APP_PRIVATE_KEY_PEM.lines().nth(1).expect("key body");
    for secret in [key_line, WEBHOOK_SECRET, ROTATED_SECRET] {
        assert!(!log.contains(secret), "a secret leaked into the logs");
    }
}

#[tokio::test]
async fn a_missing_or_malformed_secret_fails_fast_naming_the_id_not_the_value() {
    let test = "a_missing_or_malformed_secret_fails_fast_naming_the_id_not_the_value";
    let Some(moto) = ssm_testkit::moto_endpoint(test) else {
        return;
    };
    let missing = unique("no-such-secret");
    let err = ssm_app::secrets::load_settings(opts(
        "http://127.0.0.1:9",
        &moto,
        &[format!("--private-key-secret-id={missing}")],
    ))
    .await
    .expect_err("missing secret");
    let text = format!("{err:#}");
    assert!(text.contains(&missing), "{text}");
    assert!(text.contains("ResourceNotFound"), "{text}");

    let bad_key = put_secret(&moto, &unique("bad-key"), "hunter2-is-not-a-key").await;
    let err = ssm_app::secrets::load_settings(opts(
        "http://127.0.0.1:9",
        &moto,
        &[format!("--private-key-secret-id={bad_key}")],
    ))
    .await
    .expect_err("malformed key secret");
    let text = format!("{err:#}");
    assert!(
        text.contains(&bad_key) && !text.contains("hunter2"),
        "{text}"
    );

    let not_rsa = serde_json::json!({"app_id": 1, "pem": "-----BEGIN hunter2"}).to_string();
    let not_rsa = put_secret(&moto, &unique("not-rsa"), &not_rsa).await;
    let err = ssm_app::secrets::load_settings(opts(
        "http://127.0.0.1:9",
        &moto,
        &[format!("--private-key-secret-id={not_rsa}")],
    ))
    .await
    .expect_err("not an RSA key");
    let text = format!("{err:#}");
    assert!(
        text.contains("not an RSA PEM key") && !text.contains("hunter2"),
        "{text}"
    );

    let key = serde_json::json!({"app_id": 7, "pem": TEST_APP_PRIVATE_KEY_PEM}).to_string();
    let key = put_secret(&moto, &unique("key"), &key).await;
    let err = ssm_app::secrets::load_settings(opts(
        "http://127.0.0.1:9",
        &moto,
        &[
            format!("--private-key-secret-id={key}"),
            "--app-id=8".to_owned(),
        ],
    ))
    .await
    .expect_err("conflicting app ids");
    assert!(format!("{err:#}").contains("differs"), "{err:#}");

    let err = Opts::try_parse_from([
        "ssm-app",
        "--private-key-secret-id=a",
        "--private-key-file=/dev/null",
        "--audience=a",
        "--policy={}",
    ])
    .expect_err("a secret id and a key file are exclusive");
    assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
}

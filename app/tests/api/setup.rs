//! `ssm-app setup` end to end: the page, GitHub's manifest flow (the emulator), the code
//! conversion and the credentials in Secrets Manager (moto).

use clap::Parser;
use ssm_app::setup::{SetupOpts, SetupServer};
use ssm_testkit::github::{GitHubEmulator, TEST_APP_PRIVATE_KEY_PEM, TEST_APP_PUBLIC_KEY_PEM};

use crate::helpers::{APP_ID, logs};

/// The value of `attr="..."` in `html`, HTML entities undone.
fn attr(html: &str, attr: &str) -> String {
    let start = html.find(&format!("{attr}=\"")).expect(attr) + attr.len() + 2;
    let len = html[start..].find('"').expect("closing quote");
    html[start..start + len]
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The setup page on port 0, with `extra` options, and the moto client its secrets go to.
struct Started {
    github: GitHubEmulator,
    secrets: aws_sdk_secretsmanager::Client,
    /// A fresh secret name prefix.
    prefix: String,
    base: String,
    port: u16,
    http: reqwest::Client,
    registered: tokio::sync::oneshot::Receiver<ssm_app::setup::Registered>,
}

async fn start(test: &str, extra: &[&str]) -> Option<Started> {
    let moto = ssm_testkit::moto_endpoint(test)?;
    logs();
    let github = GitHubEmulator::start(APP_ID, TEST_APP_PUBLIC_KEY_PEM).await;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let prefix = format!("{test}-{nanos}");
    let mut args = vec![
        "setup".to_owned(),
        format!("--github-api-url={}", github.base_url()),
        "--webhook-url=https://ssm.example.com/webhooks".to_owned(),
        format!("--secret-prefix={prefix}"),
        "--listen=127.0.0.1:0".to_owned(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let opts = SetupOpts::try_parse_from(args).expect("options");
    let secrets = aws_sdk_secretsmanager::Client::new(&ssm_testkit::aws_config(&moto).await);
    let setup = SetupServer::build(&opts, secrets.clone()).expect("setup page");
    tokio::spawn(setup.server);
    Some(Started {
        github,
        secrets,
        prefix,
        base: format!("http://127.0.0.1:{}", setup.port),
        port: setup.port,
        http: reqwest::Client::new(),
        registered: setup.registered,
    })
}

/// The page's form action, its state nonce and the manifest it posts.
async fn page(http: &reqwest::Client, base: &str) -> (String, String, serde_json::Value) {
    let html = http
        .get(format!("{base}/"))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    let action = attr(&html, "action");
    let (form, state) = action.split_once("?state=").expect("state in the action");
    let manifest = serde_json::from_str(&attr(&html, "value")).expect("manifest");
    (form.to_owned(), state.to_owned(), manifest)
}

#[tokio::test]
async fn setup_registers_the_app_and_fills_the_secrets() {
    let Some(Started {
        github,
        secrets,
        prefix,
        base,
        port,
        http,
        registered,
    }) = start(
        "setup_registers_the_app_and_fills_the_secrets",
        // The emulator's converted App belongs to octo-org.
        &["--github-url=https://ghe.example.com", "--org=octo-org"],
    )
    .await
    else {
        return;
    };
    // The App stack creates both secrets (with their resource policy) before setup fills them.
    for name in ["private-key", "webhook-secret"] {
        secrets
            .create_secret()
            .name(format!("{prefix}/{name}"))
            .secret_string("placeholder")
            .send()
            .await
            .expect("create");
    }

    // The page posts the manifest to the organization's new-App form with a state nonce.
    let (form, state, manifest) = page(&http, &base).await;
    let state = state.as_str();
    assert_eq!(
        form,
        "https://ghe.example.com/organizations/octo-org/settings/apps/new"
    );
    assert!(state.len() >= 32, "{state}");
    assert_eq!(
        manifest["hook_attributes"]["url"],
        "https://ssm.example.com/webhooks"
    );
    assert_eq!(manifest["redirect_url"], format!("{base}/callback"));
    assert_eq!(
        manifest["default_permissions"],
        serde_json::json!({"contents": "write", "metadata": "read", "actions": "read"})
    );

    // Another host name (DNS rebinding) or another site's Origin is refused, before anything.
    let rebound = http
        .get(format!("{base}/"))
        .header("host", format!("rebind.evil.example:{port}"))
        .send()
        .await
        .expect("send");
    assert_eq!(rebound.status(), 403);
    let cross_site = http
        .get(format!("{base}/callback?code=x&state={state}"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("send");
    assert_eq!(cross_site.status(), 403);

    // The user confirms on GitHub, which redirects back with a code.
    let code = github.confirm_manifest(manifest);
    let callback = |code: &str, state: &str| {
        http.get(format!("{base}/callback?code={code}&state={state}"))
            .send()
    };
    let wrong = callback(&code, "not-the-state").await.expect("send");
    assert_eq!(wrong.status(), 400);
    assert_eq!(callback("", state).await.expect("send").status(), 400);
    assert_eq!(
        callback("unknown0code", state)
            .await
            .expect("send")
            .status(),
        400
    );
    let done = callback(&code, state).await.expect("send");
    assert_eq!(done.status(), 200);
    let done = done.text().await.expect("body");
    assert!(done.contains("/installations/new"), "{done}");
    let registered = registered.await.expect("registered");
    assert_eq!(registered.app_id, APP_ID);

    // A replayed code is refused (GitHub converts each code once) and changes nothing.
    let replay = callback(&code, state).await.expect("send");
    assert_eq!(replay.status(), 400);

    let read = |id: String| {
        let secrets = secrets.clone();
        async move {
            secrets
                .get_secret_value()
                .secret_id(id)
                .send()
                .await
                .expect("secret")
                .secret_string
                .expect("string")
        }
    };
    let key: serde_json::Value =
        serde_json::from_str(&read(format!("{prefix}/private-key")).await).expect("key json");
    assert_eq!(key["app_id"], APP_ID.to_string());
    assert_eq!(key["pem"], TEST_APP_PRIVATE_KEY_PEM);
    assert_eq!(
        registered.private_key_secret,
        read_arn(&secrets, &prefix, "private-key").await
    );
    let hook = read(format!("{prefix}/webhook-secret")).await;
    assert!(hook.starts_with("emu-webhook-secret-"), "{hook}");

    // The secrets are in the shapes the App loads.
    let parsed =
        ssm_app::secrets::parse_private_key(&read(registered.private_key_secret.clone()).await)
            .expect("key secret shape");
    assert_eq!(parsed.app_id, Some(APP_ID.to_string()));
    assert_eq!(
        ssm_app::secrets::parse_webhook_secrets(&hook)
            .expect("webhook shape")
            .len(),
        1
    );

    let log = logs();
    let key_line = TEST_APP_PRIVATE_KEY_PEM.lines().nth(1).expect("key body");
    assert!(
        !log.contains(key_line) && !log.contains(&hook),
        "a secret leaked into the logs"
    );
}

async fn read_arn(secrets: &aws_sdk_secretsmanager::Client, prefix: &str, name: &str) -> String {
    secrets
        .describe_secret()
        .secret_id(format!("{prefix}/{name}"))
        .send()
        .await
        .expect("describe")
        .arn
        .expect("arn")
}

/// Setup never creates a secret (one it created would be readable by any principal of the account
/// allowed `GetSecretValue`): without the App stack's secrets it stores nothing and says why.
#[tokio::test]
async fn setup_without_the_stacks_secrets_creates_none() {
    let Some(started) = start("setup_without_the_stacks_secrets_creates_none", &[]).await else {
        return;
    };
    let Started {
        github,
        secrets,
        prefix,
        base,
        http,
        ..
    } = started;
    let (_, state, manifest) = page(&http, &base).await;
    let code = github.confirm_manifest(manifest);
    let resp = http
        .get(format!("{base}/callback?code={code}&state={state}"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 502);
    for name in ["private-key", "webhook-secret"] {
        let found = secrets
            .describe_secret()
            .secret_id(format!("{prefix}/{name}"))
            .send()
            .await;
        assert!(found.is_err(), "setup created {prefix}/{name}");
    }
    assert!(logs().contains("deploy the App stack first"));
}

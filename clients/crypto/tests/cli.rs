//! The `ssm` binary against the stand-in API (tests/common), with credentials from the
//! environment as the default chain reads them.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{REGION, SECRET_KEY, SESSION_TOKEN, TestApi, test_credentials_only, write_stdin};

/// Runs `ssm args` with `stdin`, credentials in the environment and nothing else of the
/// machine's AWS set-up.
async fn ssm(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().expect("home");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ssm"));
    test_credentials_only(&mut command, home.path());
    command
        .args(args)
        .env("AWS_REGION", REGION)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn ssm");
    write_stdin(child.stdin.take().expect("stdin"), stdin).await;
    child.wait_with_output().await.expect("ssm runs")
}

async fn ok(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Vec<u8> {
    let out = ssm(args, stdin, env).await;
    assert!(
        out.status.success(),
        "ssm {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn encrypt_then_decrypt_round_trips_bytes_through_stdin_and_files() {
    let api = TestApi::start().await;
    let endpoint = ["--endpoint", api.url.as_str()];
    let plaintext = [0u8, 159, 146, 150, b'\n', 0xff];
    let envelope = ok(
        &[
            &endpoint[..],
            &["encrypt", "--key", "payments", "--context", "order=42"],
        ]
        .concat(),
        &plaintext,
        &[],
    )
    .await;
    let envelope = text(&envelope);
    assert!(envelope.starts_with("ssm2:payments:v1:") && envelope.ends_with('\n'));
    let opened = ok(
        &[
            &endpoint[..],
            &["decrypt", "--key", "payments", "--context", "order=42"],
        ]
        .concat(),
        envelope.as_bytes(),
        &[],
    )
    .await;
    assert_eq!(opened, plaintext);

    let dir = tempfile::tempdir().expect("dir");
    let (input, context) = (dir.path().join("in"), dir.path().join("ctx"));
    std::fs::write(&input, envelope.trim()).expect("write");
    std::fs::write(&context, "order=42").expect("write");
    let from_files = ok(
        &[
            "decrypt",
            "-k",
            "payments",
            "--in",
            input.to_str().expect("utf-8"),
            "--context-file",
            context.to_str().expect("utf-8"),
        ],
        b"",
        &[("SSM_ENDPOINT", api.url.as_str())],
    )
    .await;
    assert_eq!(from_files, plaintext);
    let rewrapped = ok(
        &[
            &endpoint[..],
            &["rewrap", "--key", "payments", "--context", "order=42"],
        ]
        .concat(),
        envelope.as_bytes(),
        &[],
    )
    .await;
    assert!(text(&rewrapped).starts_with("ssm2:payments:v1:"));
    let paths: Vec<String> = api.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths,
        [
            "/v1/keys/payments/encrypt",
            "/v1/keys/payments/decrypt",
            "/v1/keys/payments/decrypt",
            "/v1/keys/payments/rewrap"
        ]
    );
    assert!(api.seen().iter().all(|s| s.signed.is_ok()));
}

#[tokio::test]
async fn key_defaults_to_default_on_the_named_route() {
    let api = TestApi::start().await;
    let envelope = ok(&["--endpoint", &api.url, "encrypt"], b"hi", &[]).await;
    assert!(text(&envelope).starts_with("ssm2:default:v1:"));
    assert_eq!(api.seen()[0].path, "/v1/keys/default/encrypt");
}

#[tokio::test]
async fn hmac_and_verify_answer_with_exit_codes() {
    let api = TestApi::start().await;
    let endpoint = ["--endpoint", api.url.as_str()];
    let mac = text(
        &ok(
            &[&endpoint[..], &["hmac", "--key", "payments"]].concat(),
            b"data",
            &[],
        )
        .await,
    );
    assert!(mac.starts_with("ssm-mac:payments:v1:"), "{mac}");
    let verify = |input: &'static [u8]| {
        let args = [
            &endpoint[..],
            &["verify", "--key", "payments", "--mac", mac.trim()],
        ]
        .concat();
        async move { ssm(&args, input, &[]).await }
    };
    let good = verify(b"data").await;
    assert_eq!(
        (good.status.code(), text(&good.stdout)),
        (Some(0), "valid\n".into())
    );
    let bad = verify(b"date").await;
    assert_eq!(
        (bad.status.code(), text(&bad.stdout)),
        (Some(1), "invalid\n".into())
    );
}

#[tokio::test]
async fn errors_name_their_cause_and_exit_with_its_code() {
    let api = TestApi::start().await;
    api.state().denied.insert("orders".into());
    let endpoint = ["--endpoint", api.url.as_str()];

    let denied = ssm(
        &[&endpoint[..], &["encrypt", "--key", "orders"]].concat(),
        b"x",
        &[],
    )
    .await;
    let stderr = text(&denied.stderr);
    assert_eq!(denied.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("not authorized by IAM for key orders"),
        "{stderr}"
    );
    assert!(
        stderr.contains("execute-api:Invoke on arn:aws:execute-api:eu-west-1:ACCOUNT:API_ID/$default/POST/v1/keys/orders/encrypt"),
        "{stderr}"
    );

    let missing = ssm(
        &[&endpoint[..], &["encrypt", "--key", "nope"]].concat(),
        b"x",
        &[],
    )
    .await;
    let stderr = text(&missing.stderr);
    assert_eq!(missing.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("no key named nope in this deployment"),
        "{stderr}"
    );

    let envelope = ok(
        &[&endpoint[..], &["encrypt", "--key", "payments"]].concat(),
        b"x",
        &[],
    )
    .await;
    let mismatch = ssm(
        &[&endpoint[..], &["decrypt", "--key", "default"]].concat(),
        &envelope,
        &[],
    )
    .await;
    let stderr = text(&mismatch.stderr);
    assert_eq!(mismatch.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("key_mismatch") && stderr.contains("/v1/keys/payments/decrypt"),
        "{stderr}"
    );

    for _ in 0..2 {
        api.queue(503, r#"{"message":"Service Unavailable"}"#, None);
    }
    let busy = ssm(
        &[
            &endpoint[..],
            &["--max-attempts", "2", "hmac", "--key", "payments"],
        ]
        .concat(),
        b"x",
        &[],
    )
    .await;
    assert_eq!(busy.status.code(), Some(6), "{}", text(&busy.stderr));

    let bad_signature = ssm(
        &[&endpoint[..], &["hmac"]].concat(),
        b"x",
        &[("AWS_SECRET_ACCESS_KEY", "wrong")],
    )
    .await;
    let stderr = text(&bad_signature.stderr);
    assert_eq!(bad_signature.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("refused the request's SigV4 signature"),
        "{stderr}"
    );

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let nowhere = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let unreachable = ssm(
        &["--endpoint", &nowhere, "--max-attempts", "1", "hmac"],
        b"x",
        &[],
    )
    .await;
    assert_eq!(
        unreachable.status.code(),
        Some(7),
        "{}",
        text(&unreachable.stderr)
    );

    let no_endpoint = ssm(&["hmac"], b"x", &[]).await;
    assert_eq!(no_endpoint.status.code(), Some(2));
    assert!(text(&no_endpoint.stderr).contains("--endpoint"));
    let bad_name = ssm(
        &[&endpoint[..], &["hmac", "--key", "Bad_Name"]].concat(),
        b"x",
        &[],
    )
    .await;
    assert_eq!(bad_name.status.code(), Some(2));
    assert!(text(&bad_name.stderr).contains("invalid key name"));
}

#[tokio::test]
async fn datakey_writes_the_plaintext_key_only_to_a_new_private_file() {
    let api = TestApi::start().await;
    let endpoint = ["--endpoint", api.url.as_str()];
    let wrapped = ok(
        &[&endpoint[..], &["datakey", "--key", "payments"]].concat(),
        b"",
        &[],
    )
    .await;
    let json: serde_json::Value = serde_json::from_slice(&wrapped).expect("json");
    assert!(
        json["ciphertext"]
            .as_str()
            .expect("ciphertext")
            .starts_with("ssm2:payments:")
    );
    assert!(json.get("plaintext").is_none());
    assert!(text(&api.seen()[0].body).contains(r#""wrapped_only":true"#));

    let dir = tempfile::tempdir().expect("dir");
    let key_file = dir.path().join("data.key");
    let key_path = key_file.to_str().expect("utf-8");
    let out = ok(
        &[
            &endpoint[..],
            &[
                "datakey",
                "--key",
                "payments",
                "--plaintext-key-out",
                key_path,
            ],
        ]
        .concat(),
        b"",
        &[],
    )
    .await;
    let key = std::fs::read(&key_file).expect("key file");
    assert_eq!(key.len(), 32);
    assert!(!text(&out).contains(&STANDARD.encode(&key)));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let requests = api.seen().len();
    let again = ssm(
        &[&endpoint[..], &["datakey", "--plaintext-key-out", key_path]].concat(),
        b"",
        &[],
    )
    .await;
    assert_eq!(again.status.code(), Some(2));
    assert_eq!(
        api.seen().len(),
        requests,
        "no key is made for a file that exists"
    );
    assert_eq!(std::fs::read(&key_file).expect("key file"), key);

    // A refused request leaves no (empty) key file behind.
    api.state().denied.insert("orders".into());
    let refused_file = dir.path().join("orders.key");
    let refused = ssm(
        &[
            &endpoint[..],
            &[
                "datakey",
                "--key",
                "orders",
                "--plaintext-key-out",
                refused_file.to_str().expect("utf-8"),
            ],
        ]
        .concat(),
        b"",
        &[],
    )
    .await;
    assert_eq!(refused.status.code(), Some(3));
    assert!(!refused_file.exists());
}

#[tokio::test]
async fn verbose_logs_routes_but_no_data_keys_or_credentials() {
    let api = TestApi::start().await;
    api.queue(503, r#"{"message":"Service Unavailable"}"#, None);
    let endpoint = ["--endpoint", api.url.as_str()];
    let plaintext = b"TOP-SECRET-PLAINTEXT-8d1f";
    let context = "CONTEXT-VALUE-77aa";
    let enc = ssm(
        &[
            &endpoint[..],
            &[
                "--verbose",
                "encrypt",
                "--key",
                "payments",
                "--context",
                context,
            ],
        ]
        .concat(),
        plaintext,
        &[],
    )
    .await;
    assert!(enc.status.success());
    let dir = tempfile::tempdir().expect("dir");
    let key_file = dir.path().join("k");
    let dk = ssm(
        &[
            &endpoint[..],
            &[
                "-v",
                "datakey",
                "--plaintext-key-out",
                key_file.to_str().expect("utf-8"),
            ],
        ]
        .concat(),
        b"",
        &[],
    )
    .await;
    assert!(dk.status.success());
    let dec = ssm(
        &[
            &endpoint[..],
            &[
                "--verbose",
                "decrypt",
                "--key",
                "payments",
                "--context",
                context,
            ],
        ]
        .concat(),
        &enc.stdout,
        &[],
    )
    .await;
    assert_eq!(dec.stdout, plaintext);
    let logs = [&enc.stderr, &dk.stderr, &dec.stderr]
        .map(|b| text(b))
        .join("\n");
    assert!(logs.contains("/v1/keys/payments/encrypt"), "{logs}");
    assert!(logs.contains("retrying"), "{logs}");
    let data_key = std::fs::read(&key_file).expect("key");
    let secrets = [
        String::from_utf8_lossy(plaintext).into_owned(),
        STANDARD.encode(plaintext),
        context.to_owned(),
        STANDARD.encode(context),
        STANDARD.encode(&data_key),
        SECRET_KEY.to_owned(),
        SESSION_TOKEN.to_owned(),
        "Signature=".to_owned(),
    ];
    for secret in secrets {
        assert!(
            !logs.contains(&secret),
            "--verbose shows {secret:?}:\n{logs}"
        );
    }
    assert!(!text(&dk.stdout).contains(&STANDARD.encode(&data_key)));
}

#[tokio::test]
async fn stack_finds_the_api_url_output() {
    let api = TestApi::start().await;
    api.state().stack_api_url = Some(api.url.clone());
    let env = [("AWS_ENDPOINT_URL", api.url.as_str())];
    let mac = ok(
        &["--stack", "SsmServerless", "hmac", "--key", "payments"],
        b"x",
        &env,
    )
    .await;
    assert!(text(&mac).starts_with("ssm-mac:payments:"));
    let both = ssm(
        &["--stack", "S", "--endpoint", &api.url, "hmac"],
        b"x",
        &env,
    )
    .await;
    assert_eq!(both.status.code(), Some(2));
    api.state().stack_api_url = None;
    let gone = ssm(&["--stack", "Nope", "hmac"], b"x", &env).await;
    let stderr = text(&gone.stderr);
    assert_eq!(gone.status.code(), Some(7), "{stderr}");
    assert!(
        stderr.contains("Nope") && stderr.contains("does not exist"),
        "{stderr}"
    );
}

#[test]
fn help_lists_the_commands() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ssm"))
        .arg("--help")
        .output()
        .expect("ssm --help");
    let help = text(&out.stdout);
    for command in [
        "encrypt", "decrypt", "rewrap", "datakey", "hmac", "verify", "info",
    ] {
        assert!(help.contains(command), "{help}");
    }
    assert!(Path::new(env!("CARGO_BIN_EXE_ssm")).exists());
}

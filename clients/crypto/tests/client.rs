//! The library against the in-process stand-in API (tests/common): signatures checked by an
//! independent SigV4 implementation, every route typed, retries and their bounds.

mod common;

use std::time::{Duration, Instant};

use common::{REGION, SECRET_KEY, TestApi, credentials};
use ssm_client::{
    CiphertextItem, ClientConfig, ClientError, CryptoClient, ExposeSecret as _, KeyName, MacItem,
    PlaintextItem, RetryPolicy,
};

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(2),
    }
}

fn client_for(url: &str, region: &str, secret: &str, retry: RetryPolicy) -> CryptoClient {
    let config = ClientConfig::new(url, region)
        .expect("config")
        .with_retry(retry)
        .with_timeout(Duration::from_millis(1500))
        .with_connect_timeout(Duration::from_millis(500));
    CryptoClient::new(config, credentials(secret)).expect("client")
}

fn client(api: &TestApi) -> CryptoClient {
    client_for(&api.url, REGION, SECRET_KEY, fast_retries(4))
}

fn key(name: &str) -> KeyName {
    KeyName::parse(name).expect("key name")
}

#[tokio::test]
async fn requests_are_signed_for_execute_api_with_their_body() {
    let api = TestApi::start().await;
    let client = client(&api);
    let payments = key("payments");
    let sealed = client
        .key(&payments)
        .encrypt(b"card 4111", b"order=42")
        .await
        .expect("encrypt");
    let opened = client
        .key(&payments)
        .decrypt(&sealed.ciphertext, b"order=42")
        .await
        .expect("decrypt");
    assert_eq!(opened.expose_secret(), b"card 4111");
    client
        .key(&payments)
        .info()
        .await
        .expect("GET without a body");
    client.legacy().version().await.expect("GET /version");
    let seen = api.seen();
    assert_eq!(seen.len(), 4);
    for request in &seen {
        assert_eq!(
            request.signed,
            Ok(()),
            "{} {}",
            request.method,
            request.path
        );
        assert_eq!(request.query, None);
        let authorization = request.authorization.as_deref().unwrap_or_default();
        assert!(
            authorization.contains(&format!("/{REGION}/execute-api/aws4_request")),
            "{authorization}"
        );
    }
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/v1/keys/payments/encrypt")
    );
    assert!(!seen[0].body.is_empty());
    assert_eq!((seen[2].method.as_str(), seen[2].body.len()), ("GET", 0));

    // The server's check is not vacuous: the same signature over another body is refused.
    let first = &seen[0];
    let mut replay = reqwest::Client::new().post(format!("{}{}", api.url, first.path));
    for (name, value) in &first.headers {
        if name != "content-length" {
            replay = replay.header(name.as_str(), value.as_str());
        }
    }
    let tampered = String::from_utf8(first.body.clone())
        .expect("json")
        .replace(r#""plaintext":""#, r#""plaintext":"AAAA"#);
    assert_ne!(tampered.as_bytes(), first.body);
    let answer = replay.body(tampered).send().await.expect("replay");
    assert_eq!(answer.status().as_u16(), 403);
    assert!(
        answer
            .text()
            .await
            .expect("body")
            .contains("signature we calculated")
    );
}

#[tokio::test]
async fn a_wrong_secret_or_region_is_refused_as_api_gateway_does() {
    let api = TestApi::start().await;
    for (region, secret) in [(REGION, "not-the-secret"), ("us-east-1", SECRET_KEY)] {
        let client = client_for(&api.url, region, secret, fast_retries(4));
        let error = client
            .key(&key("payments"))
            .encrypt(b"x", b"")
            .await
            .expect_err("refused");
        assert!(
            matches!(&error, ClientError::IamDenied { path, .. } if path == "/v1/keys/payments/encrypt"),
            "{error:?}"
        );
    }
    assert_eq!(api.seen().len(), 2, "a 403 is not retried");
}

#[tokio::test]
async fn every_route_is_typed_bytes_in_bytes_out() {
    let api = TestApi::start().await;
    let client = client(&api);
    let payments = client.key(&key("payments"));
    let binary = [0u8, 0xff, 0x80, b'"', b'\\', b'\n'];

    let batch = payments
        .encrypt_batch(&[
            PlaintextItem {
                plaintext: &binary,
                context: b"a",
            },
            PlaintextItem {
                plaintext: b"",
                context: b"",
            },
        ])
        .await
        .expect("batch");
    let sealed: Vec<_> = batch.into_iter().map(|r| r.expect("sealed")).collect();
    assert!(sealed[0].ciphertext.starts_with("ssm2:payments:v1:"));
    let opened = payments
        .decrypt_batch(&[
            CiphertextItem {
                ciphertext: &sealed[0].ciphertext,
                context: b"a",
            },
            CiphertextItem {
                ciphertext: &sealed[0].ciphertext,
                context: b"wrong",
            },
            CiphertextItem {
                ciphertext: &sealed[1].ciphertext,
                context: b"",
            },
        ])
        .await
        .expect("batch");
    assert_eq!(opened[0].as_ref().expect("item 0").expose_secret(), binary);
    let failed = opened[1].as_ref().expect_err("wrong context");
    assert_eq!(failed.code, "decryption_failed");
    assert!(
        opened[2]
            .as_ref()
            .expect("item 2")
            .expose_secret()
            .is_empty()
    );

    let rewrapped = payments
        .rewrap(&sealed[0].ciphertext, b"a")
        .await
        .expect("rewrap");
    assert_eq!(rewrapped.key_version, 1);
    let rewrapped_batch = payments
        .rewrap_batch(&[CiphertextItem {
            ciphertext: "ssm2:payments:v1:garbage",
            context: b"",
        }])
        .await
        .expect("batch");
    assert!(rewrapped_batch[0].is_err());

    let wrapped = payments.data_key(b"", true).await.expect("datakey");
    assert!(wrapped.plaintext.is_none());
    let full = payments.data_key(b"ctx", false).await.expect("datakey");
    let plaintext = full.plaintext.expect("plaintext key");
    assert_eq!(plaintext.expose_secret().len(), 32);
    assert!(!format!("{plaintext:?}").contains("7, 7"));
    let opened = payments
        .decrypt(&full.ciphertext, b"ctx")
        .await
        .expect("unwrap key");
    assert_eq!(opened.expose_secret(), plaintext.expose_secret());

    let mac = payments.hmac(&binary).await.expect("hmac");
    assert!(mac.mac.starts_with("ssm-mac:payments:v1:"));
    assert!(payments.verify(&binary, &mac.mac).await.expect("verify"));
    assert!(!payments.verify(b"other", &mac.mac).await.expect("verify"));
    let foreign = client
        .key(&key("orders"))
        .verify(&binary, &mac.mac)
        .await
        .expect_err("a MAC of another key");
    assert_eq!(foreign.code(), Some("key_mismatch"));

    let macs = payments
        .hmac_batch(&[b"a", b"", &binary])
        .await
        .expect("hmac batch");
    let macs: Vec<String> = macs.into_iter().map(|m| m.expect("mac").mac).collect();
    assert_eq!(macs[2], mac.mac);
    let checked = payments
        .verify_batch(&[
            MacItem {
                input: b"a",
                mac: &macs[0],
            },
            MacItem {
                input: b"b",
                mac: &macs[0],
            },
            MacItem {
                input: b"a",
                mac: "ssm-mac:orders:v1:AAAA",
            },
        ])
        .await
        .expect("verify batch");
    assert_eq!(checked[0], Ok(true));
    assert_eq!(checked[1], Ok(false));
    assert_eq!(
        checked[2].as_ref().map_err(|e| e.code.as_str()),
        Err("key_mismatch")
    );
    let sent: serde_json::Value =
        serde_json::from_slice(&api.seen().last().expect("seen").body).expect("json");
    assert_eq!(sent["items"].as_array().map(Vec::len), Some(3));

    let info = payments.info().await.expect("info");
    assert_eq!(
        (info.name.as_deref(), info.primary_version),
        (Some("payments"), Some(1))
    );

    // Another key's envelope: the API's error, typed, with its code and status.
    let mismatch = client
        .key(&key("orders"))
        .decrypt(&sealed[0].ciphertext, b"a")
        .await
        .expect_err("key mismatch");
    assert!(
        matches!(&mismatch, ClientError::Api { error, .. } if error.status == 400 && error.code == "key_mismatch"),
        "{mismatch:?}"
    );

    let legacy = client.legacy();
    let old = legacy.encrypt(b"old", b"").await.expect("v1 encrypt");
    assert!(old.ciphertext.starts_with("ssm:v1:"));
    assert_eq!(
        legacy
            .decrypt(&old.ciphertext, b"")
            .await
            .expect("v1")
            .expose_secret(),
        b"old"
    );
    let cipher = legacy.wrap("héllo").await.expect("wrap");
    assert_eq!(legacy.unwrap(&cipher).await.expect("unwrap"), "héllo");
    assert_eq!(legacy.keys().await.expect("keys").primary_version, Some(1));
    assert!(
        legacy
            .data_key(b"", true)
            .await
            .expect("datakey")
            .plaintext
            .is_none()
    );
    let paths: Vec<String> = api.seen().into_iter().map(|s| s.path).collect();
    for path in [
        "/v1/encrypt",
        "/v1/decrypt",
        "/wrap",
        "/unwrap",
        "/v1/keys",
        "/v1/datakey",
    ] {
        assert!(paths.iter().any(|p| p == path), "{path} not called");
    }
}

#[tokio::test]
async fn iam_denial_and_unknown_keys_are_told_apart_and_not_retried() {
    let api = TestApi::start().await;
    api.state().denied.insert("orders".into());
    let client = client(&api);
    let denied = client
        .key(&key("orders"))
        .encrypt(b"x", b"")
        .await
        .expect_err("denied");
    assert!(
        matches!(&denied, ClientError::IamDenied { message, .. } if message.contains("execute-api:Invoke")),
        "{denied:?}"
    );
    let missing = client
        .key(&key("nope"))
        .encrypt(b"x", b"")
        .await
        .expect_err("no such key");
    assert!(
        matches!(&missing, ClientError::NotFound { code: None, .. }),
        "{missing:?}"
    );
    api.queue(
        404,
        r#"{"error":{"code":"unknown_key","message":"no key named gone"}}"#,
        None,
    );
    let unknown = client
        .key(&key("payments"))
        .encrypt(b"x", b"")
        .await
        .expect_err("the Lambda's 404");
    assert_eq!(unknown.code(), Some("unknown_key"));
    assert_eq!(api.seen().len(), 3);
}

#[tokio::test]
async fn a_503_then_200_is_retried_and_signed_afresh() {
    let api = TestApi::start().await;
    api.queue(
        503,
        r#"{"error":{"code":"keyring_unavailable","message":"try again"}}"#,
        None,
    );
    let sealed = client(&api)
        .key(&key("payments"))
        .encrypt(b"x", b"")
        .await
        .expect("second attempt");
    assert!(sealed.ciphertext.starts_with("ssm2:payments:"));
    let seen = api.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.signed.is_ok()));
    assert_eq!(seen[0].body, seen[1].body);
}

#[tokio::test]
async fn a_429_waits_as_retry_after_says_and_backs_off() {
    let api = TestApi::start().await;
    api.queue(429, r#"{"message":"Too Many Requests"}"#, Some(1));
    api.queue(429, r#"{"message":"Too Many Requests"}"#, None);
    client(&api)
        .key(&key("payments"))
        .hmac(b"x")
        .await
        .expect("third attempt");
    let seen = api.seen();
    assert_eq!(seen.len(), 3);
    let first_wait = seen[1].at - seen[0].at;
    assert!(first_wait >= Duration::from_millis(950), "{first_wait:?}");
    assert!(first_wait < Duration::from_millis(1900), "{first_wait:?}");
}

#[tokio::test]
async fn attempts_are_bounded() {
    let api = TestApi::start().await;
    for _ in 0..10 {
        api.queue(503, r#"{"message":"Service Unavailable"}"#, None);
    }
    let error = client_for(&api.url, REGION, SECRET_KEY, fast_retries(3))
        .key(&key("payments"))
        .encrypt(b"x", b"")
        .await
        .expect_err("still unavailable");
    assert!(
        matches!(
            &error,
            ClientError::Unavailable {
                attempts: 3,
                status: 503,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(api.seen().len(), 3);
}

#[tokio::test]
async fn other_4xx_are_final() {
    let api = TestApi::start().await;
    api.queue(
        400,
        r#"{"error":{"code":"invalid_request","message":"bad"}}"#,
        None,
    );
    api.queue(
        413,
        r#"{"error":{"code":"payload_too_large","message":"big"}}"#,
        None,
    );
    let client = client(&api);
    let payments = client.key(&key("payments"));
    let bad = payments.encrypt(b"x", b"").await.expect_err("400");
    assert_eq!(
        (bad.status(), bad.code()),
        (Some(400), Some("invalid_request"))
    );
    let big = payments.encrypt(b"x", b"").await.expect_err("413");
    assert_eq!(
        (big.status(), big.code()),
        (Some(413), Some("payload_too_large"))
    );
    assert_eq!(api.seen().len(), 2);
}

#[tokio::test]
async fn connection_errors_and_timeouts_are_retried_then_reported() {
    // A port nothing listens on: connection refused, each attempt.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let error = client_for(&url, REGION, SECRET_KEY, fast_retries(3))
        .legacy()
        .version()
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(&error, ClientError::Transport { attempts: 3, .. }),
        "{error:?}"
    );

    let api = TestApi::start().await;
    api.queue(0, "", None);
    let started = Instant::now();
    let sealed = client(&api)
        .key(&key("payments"))
        .encrypt(b"x", b"")
        .await
        .expect("the second attempt is answered");
    assert!(sealed.ciphertext.starts_with("ssm2:"));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(api.seen().len(), 2);
}

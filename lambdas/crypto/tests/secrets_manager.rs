//! The service on a Secrets Manager keyring (emulator): old ciphertexts keep decrypting after a
//! new secret version is put, and a ciphertext naming a newer version refreshes at once; each
//! named key follows its own secret.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use ssm_core::api::Limits;
use ssm_core::keyring::Keyring;
use ssm_crypto::Service;
use ssm_keystore::{CachePolicy, KeySource, KeyringCache};

type Secrets = aws_sdk_secretsmanager::Client;

/// Puts `ring` as the secret's new AWSCURRENT (creating the secret if `create`).
async fn store(client: &Secrets, secret_id: &str, ring: &Keyring, create: bool) {
    let text = ring.to_json();
    if create {
        client
            .create_secret()
            .name(secret_id)
            .secret_string(text.as_str())
            .send()
            .await
            .expect("create_secret");
    } else {
        client
            .put_secret_value()
            .secret_id(secret_id)
            .secret_string(text.as_str())
            .send()
            .await
            .expect("put_secret_value");
    }
}

async fn call(service: &Service, path: &str, body: Value) -> (u16, Value) {
    let res = service
        .handle("POST", path, body.to_string().as_bytes(), None)
        .await;
    (
        res.status,
        serde_json::from_slice::<Value>(&res.body).expect("JSON body"),
    )
}

#[tokio::test]
async fn service_follows_the_secret() {
    let Some(endpoint) = ssm_testkit::moto_endpoint("crypto::service_follows_the_secret") else {
        return;
    };
    let config = ssm_testkit::aws_config(&endpoint).await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let secret_id = format!("ssm-crypto-test-{}", std::process::id());
    let mut ring = Keyring::generate(chrono::Utc::now()).unwrap();
    store(&client, &secret_id, &ring, true).await;

    let cache = KeyringCache::new(
        KeySource::SecretsManager {
            client: client.clone(),
            secret_id: secret_id.clone(),
        },
        CachePolicy {
            ttl: Duration::from_secs(300),
            min_refresh_interval: Duration::ZERO,
        },
    );
    let service = Service::new(Arc::new(cache), Limits::default());
    let (_, v1) = call(
        &service,
        "/v1/encrypt",
        json!({"plaintext": STANDARD.encode(b"one")}),
    )
    .await;
    assert_eq!(v1["key_version"], 1);

    // Another instance rotated the secret.
    ring.rotate(chrono::Utc::now()).unwrap();
    let v2 = ring.encrypt(b"two", b"").unwrap();
    store(&client, &secret_id, &ring, false).await;

    let (status, dec) = call(
        &service,
        "/v1/decrypt",
        json!({"ciphertext": v2.ciphertext}),
    )
    .await;
    assert_eq!(
        (status, &dec["plaintext"]),
        (200, &json!(STANDARD.encode(b"two"))),
        "{dec}"
    );
    let (status, dec) = call(
        &service,
        "/v1/decrypt",
        json!({"ciphertext": v1["ciphertext"]}),
    )
    .await;
    assert_eq!(
        (status, &dec["plaintext"]),
        (200, &json!(STANDARD.encode(b"one")))
    );
    let (_, enc) = call(&service, "/v1/encrypt", json!({"plaintext": "YQ=="})).await;
    assert_eq!(
        enc["key_version"], 2,
        "the refreshed keyring's primary encrypts"
    );
}

#[tokio::test]
async fn each_named_key_follows_its_own_secret() {
    let Some(endpoint) =
        ssm_testkit::moto_endpoint("crypto::each_named_key_follows_its_own_secret")
    else {
        return;
    };
    let config = ssm_testkit::aws_config(&endpoint).await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let pid = std::process::id();
    let mut secrets = Vec::new();
    for key in ["default", "payments"] {
        let secret_id = format!("ssm-crypto-test-{key}-{pid}");
        let ring = Keyring::generate(chrono::Utc::now()).unwrap();
        store(&client, &secret_id, &ring, true).await;
        secrets.push((secret_id, ring));
    }
    let source = |secret_id: &str| KeySource::SecretsManager {
        client: client.clone(),
        secret_id: secret_id.to_owned(),
    };
    let payments = ssm_core::keyname::KeyName::parse("payments").unwrap();
    let service = Service::from_sources(
        source(&secrets[0].0),
        vec![(payments, source(&secrets[1].0))],
        CachePolicy {
            ttl: Duration::from_secs(300),
            min_refresh_interval: Duration::ZERO,
        },
        Limits::default(),
    );
    let (status, sealed) = call(
        &service,
        "/v1/keys/payments/encrypt",
        json!({"plaintext": STANDARD.encode(b"p")}),
    )
    .await;
    assert_eq!(status, 200, "{sealed}");
    assert!(
        sealed["ciphertext"]
            .as_str()
            .unwrap()
            .starts_with("ssm2:payments:v1:")
    );
    let payments_cache = service.keyring_of(&payments).unwrap();
    assert_eq!((service.keyring().loads(), payments_cache.loads()), (0, 1));

    // The payments secret is rotated elsewhere: its new version's ciphertext refreshes only
    // the payments keyring, at once.
    let (secret_id, ring) = &mut secrets[1];
    ring.rotate(chrono::Utc::now()).unwrap();
    let v2 = ring.encrypt_named(&payments, b"two", b"").unwrap();
    store(&client, secret_id.as_str(), ring, false).await;
    let (status, opened) = call(
        &service,
        "/v1/keys/payments/decrypt",
        json!({"ciphertext": v2.ciphertext}),
    )
    .await;
    assert_eq!(
        (status, &opened["plaintext"]),
        (200, &json!(STANDARD.encode(b"two"))),
        "{opened}"
    );
    assert_eq!((service.keyring().loads(), payments_cache.loads()), (0, 2));
    // The default key never opens it, whatever its keyring holds.
    let (status, error) = call(
        &service,
        "/v1/decrypt",
        json!({"ciphertext": v2.ciphertext}),
    )
    .await;
    assert_eq!(
        (status, &error["error"]["code"]),
        (400, &json!("key_mismatch"))
    );
}

//! The service on a Secrets Manager keyring (emulator): old ciphertexts keep decrypting after a
//! new secret version is put, and a ciphertext naming a newer version refreshes at once.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use ssm_core::api::Limits;
use ssm_core::keyring::Keyring;
use ssm_crypto::Service;
use ssm_keystore::{CachePolicy, KeySource, KeyringCache};

#[tokio::test]
async fn service_follows_the_secret() {
    let Some(endpoint) = ssm_testkit::moto_endpoint("crypto::service_follows_the_secret") else {
        return;
    };
    let config = ssm_testkit::aws_config(&endpoint).await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let secret_id = format!("ssm-crypto-test-{}", std::process::id());
    let mut ring = Keyring::generate(chrono::Utc::now()).unwrap();
    client
        .create_secret()
        .name(&secret_id)
        .secret_string(ring.to_json().as_str())
        .send()
        .await
        .unwrap();

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
    let call = |path: &'static str, body: Value| {
        let service = &service;
        async move {
            let res = service
                .handle("POST", path, body.to_string().as_bytes(), None)
                .await;
            (
                res.status,
                serde_json::from_slice::<Value>(&res.body).unwrap(),
            )
        }
    };
    let (_, v1) = call("/v1/encrypt", json!({"plaintext": STANDARD.encode(b"one")})).await;
    assert_eq!(v1["key_version"], 1);

    // Another instance rotated the secret.
    ring.rotate(chrono::Utc::now()).unwrap();
    let v2 = ring.encrypt(b"two", b"").unwrap();
    client
        .put_secret_value()
        .secret_id(&secret_id)
        .secret_string(ring.to_json().as_str())
        .send()
        .await
        .unwrap();

    let (status, dec) = call("/v1/decrypt", json!({"ciphertext": v2.ciphertext})).await;
    assert_eq!(
        (status, &dec["plaintext"]),
        (200, &json!(STANDARD.encode(b"two"))),
        "{dec}"
    );
    let (status, dec) = call("/v1/decrypt", json!({"ciphertext": v1["ciphertext"]})).await;
    assert_eq!(
        (status, &dec["plaintext"]),
        (200, &json!(STANDARD.encode(b"one")))
    );
    let (_, enc) = call("/v1/encrypt", json!({"plaintext": "YQ=="})).await;
    assert_eq!(
        enc["key_version"], 2,
        "the refreshed keyring's primary encrypts"
    );
}

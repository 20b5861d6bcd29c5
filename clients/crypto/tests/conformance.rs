//! The client's bodies and types against the service's own code: the stand-in API answers the
//! original routes with ssm-core's request parser and operations, so a field the client names
//! differently from the service, or a response shape it misreads, fails here.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{REGION, SECRET_KEY, TestApi, credentials};
use ssm_client::{
    CiphertextItem, ClientConfig, ClientError, CryptoClient, ExposeSecret as _, PlaintextItem,
    RetryPolicy,
};
use ssm_core::keyring::Keyring;

async fn api_with_core() -> (TestApi, CryptoClient) {
    let mut ring =
        Keyring::from_json(r#"{"aes_key": "0123456789abcdef0123456789abcdef"}"#).expect("keyring");
    ring.rotate("2026-11-28T00:00:00Z".parse().expect("time"))
        .expect("rotate");
    let api = TestApi::start().await;
    api.state().core = Some(Arc::new(ring));
    let config = ClientConfig::new(&api.url, REGION)
        .expect("config")
        .with_retry(RetryPolicy::never())
        .with_timeout(Duration::from_secs(5));
    let client = CryptoClient::new(config, credentials(SECRET_KEY)).expect("client");
    (api, client)
}

#[tokio::test]
async fn the_original_routes_round_trip_through_ssm_core() {
    let (api, client) = api_with_core().await;
    let legacy = client.legacy();
    let binary = [0u8, 0xff, b'"', b'\\', 0x80];
    let sealed = legacy.encrypt(&binary, b"ctx").await.expect("encrypt");
    assert!(sealed.ciphertext.starts_with("ssm:v1:"));
    assert_eq!(sealed.key_version, 1);
    let opened = legacy
        .decrypt(&sealed.ciphertext, b"ctx")
        .await
        .expect("decrypt");
    assert_eq!(opened.expose_secret(), binary);
    let no_context = legacy.encrypt(b"x", b"").await.expect("no context");
    assert_eq!(
        legacy
            .decrypt(&no_context.ciphertext, b"")
            .await
            .expect("decrypt")
            .expose_secret(),
        b"x"
    );

    let wrong = legacy
        .decrypt(&sealed.ciphertext, b"other")
        .await
        .expect_err("wrong context");
    assert!(
        matches!(&wrong, ClientError::Api { error, .. } if error.status == 400 && error.code == "decryption_failed"),
        "{wrong:?}"
    );

    let batch = legacy
        .decrypt_batch(&[
            CiphertextItem {
                ciphertext: &sealed.ciphertext,
                context: b"ctx",
            },
            CiphertextItem {
                ciphertext: "ssm:v1:broken",
                context: b"",
            },
        ])
        .await
        .expect("batch");
    assert_eq!(batch[0].as_ref().expect("item 0").expose_secret(), binary);
    assert_eq!(
        batch[1].as_ref().map_err(|e| e.code.as_str()).err(),
        Some("decryption_failed")
    );
    let sealed_batch = legacy
        .encrypt_batch(&[PlaintextItem {
            plaintext: b"a",
            context: b"",
        }])
        .await
        .expect("encrypt batch");
    assert!(sealed_batch[0].is_ok());
    let rewrapped = legacy
        .rewrap_batch(&[CiphertextItem {
            ciphertext: &sealed.ciphertext,
            context: b"ctx",
        }])
        .await
        .expect("rewrap batch");
    assert_eq!(rewrapped[0].as_ref().expect("rewrapped").key_version, 1);
    legacy
        .rewrap(&sealed.ciphertext, b"ctx")
        .await
        .expect("rewrap");

    let key = legacy.data_key(b"k", false).await.expect("datakey");
    let plaintext = key.plaintext.expect("plaintext key");
    assert_eq!(plaintext.expose_secret().len(), 32);
    assert_eq!(
        legacy
            .decrypt(&key.ciphertext, b"k")
            .await
            .expect("unwrap")
            .expose_secret(),
        plaintext.expose_secret()
    );
    assert!(
        legacy
            .data_key(b"", true)
            .await
            .expect("wrapped only")
            .plaintext
            .is_none()
    );

    let info = legacy.keys().await.expect("keys");
    assert_eq!(
        (
            info.primary_version,
            info.min_decryption_version,
            info.legacy_key
        ),
        (Some(1), 1, true)
    );
    assert_eq!(info.versions.len(), 1);
    let cipher = legacy.wrap("héllo \"quoted\"").await.expect("wrap");
    assert_eq!(
        legacy.unwrap(&cipher).await.expect("unwrap"),
        "héllo \"quoted\""
    );
    assert!(!legacy.version().await.expect("version").is_empty());
    assert!(api.seen().iter().all(|s| s.signed.is_ok()));
}

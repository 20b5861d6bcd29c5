//! The local server over real HTTP: statuses, body cap, no 5xx on bad input.

mod common;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use ssm_core::api::Limits;

async fn spawn(service: Arc<ssm_crypto::Service>) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(ssm_crypto::local::serve(listener, service, async {
        let _ = rx.await;
    }));
    (format!("http://{addr}"), tx)
}

#[tokio::test]
async fn serves_the_api_over_http() {
    let t = common::service_with(
        ssm_core::keyring::Keyring::generate(chrono::Utc::now()).unwrap(),
        Limits {
            max_plaintext: 1024,
            max_batch: 10,
        },
    );
    let (base, _stop) = spawn(t.service.clone()).await;
    let client = reqwest::Client::new();

    let res = client
        .post(format!("{base}/v1/encrypt"))
        .json(&json!({"batch": [{"plaintext": STANDARD.encode(b"a")}, {"plaintext": STANDARD.encode(vec![0u8; 2000])}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body["batch_results"][0]["ciphertext"].is_string());
    assert_eq!(
        body["batch_results"][1]["error"]["code"],
        "payload_too_large"
    );

    let res = client
        .get(format!("{base}/v1/decrypt"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "POST");
    assert_eq!(
        client
            .get(format!("{base}/missing"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // A body beyond the cap is refused with 413 without being read whole.
    let huge = vec![
        b'x';
        Limits {
            max_plaintext: 1024,
            max_batch: 10
        }
        .max_body()
            + 1
    ];
    let res = client
        .post(format!("{base}/v1/encrypt"))
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);

    for junk in [
        &b"\xff\xfe"[..],
        b"[]",
        b"null",
        b"{\"plaintext\": null}",
        b"{\"batch\": {}}",
    ] {
        let res = client
            .post(format!("{base}/v1/encrypt"))
            .body(junk.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{junk:?}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_request");
    }
}

#[tokio::test]
async fn keyring_outage_is_503_not_500() {
    let t = common::service();
    std::fs::remove_file(&t.path).unwrap();
    let (base, _stop) = spawn(t.service.clone()).await;
    let res = reqwest::Client::new()
        .get(format!("{base}/v1/keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "keyring_unavailable");
    // /version needs no keyring.
    let res = reqwest::Client::new()
        .get(format!("{base}/version"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

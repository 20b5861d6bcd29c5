//! Plaintext, key material and context values never reach the logs, whatever the outcome.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

#[tokio::test]
async fn logs_carry_sizes_and_versions_never_data() {
    let t = common::service();
    let (logs, _guard) = ssm_testkit::logs::capture_thread();
    let plaintext = b"TOP-SECRET-PLAINTEXT-0123456789";
    let context = b"CONTEXT-VALUE-tenant-42";
    let svc = &t.service;

    let enc = json!({"plaintext": STANDARD.encode(plaintext), "context": STANDARD.encode(context)});
    let res = svc
        .handle(
            "POST",
            "/v1/encrypt",
            enc.to_string().as_bytes(),
            Some("arn:aws:iam::1:role/r"),
        )
        .await;
    assert_eq!(res.status, 200);
    let value: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
    let ct = value["ciphertext"].as_str().unwrap().to_owned();
    for body in [
        json!({"ciphertext": ct, "context": STANDARD.encode(context)}),
        json!({"ciphertext": ct, "context": STANDARD.encode(b"WRONG-CONTEXT-VALUE")}),
        json!({"batch": [{"ciphertext": ct, "context": STANDARD.encode(context)}, {"ciphertext": "junk"}]}),
    ] {
        svc.handle("POST", "/v1/decrypt", body.to_string().as_bytes(), None)
            .await;
    }
    svc.handle(
        "POST",
        "/v1/rewrap",
        json!({"ciphertext": ct, "context": STANDARD.encode(context)})
            .to_string()
            .as_bytes(),
        None,
    )
    .await;
    let dk = svc.handle("POST", "/v1/datakey", b"{}", None).await;
    let data_key = serde_json::from_slice::<serde_json::Value>(&dk.body).unwrap()["plaintext"]
        .as_str()
        .unwrap()
        .to_owned();
    svc.handle(
        "POST",
        "/wrap",
        br#"{"text": "TOP-SECRET-PLAINTEXT-0123456789"}"#,
        None,
    )
    .await;
    svc.handle(
        "POST",
        "/v1/encrypt",
        br#"{"plaintext": "TOP-SECRET-PLAINTEXT", "x": 1}"#,
        None,
    )
    .await;
    svc.handle(
        "POST",
        "/v1/encrypt",
        b"{\"plaintext\": \"VE9QLVNFQ1JFVA==\"",
        None,
    )
    .await;

    let text = logs.text();
    assert!(
        text.contains("\"route\":\"/v1/encrypt\""),
        "the access log is there: {text}"
    );
    assert!(text.contains("bytes_in"), "{text}");
    let keyring = std::fs::read_to_string(&t.path).unwrap();
    let material: serde_json::Value = serde_json::from_str(&keyring).unwrap();
    let key_b64 = material["keys"][0]["material"].as_str().unwrap();
    for needle in [
        "TOP-SECRET-PLAINTEXT".to_owned(),
        STANDARD.encode(plaintext),
        "CONTEXT-VALUE".to_owned(),
        STANDARD.encode(context),
        "WRONG-CONTEXT".to_owned(),
        key_b64.to_owned(),
        data_key,
        "VE9QLVNFQ1JFVA".to_owned(),
    ] {
        assert!(!text.contains(&needle), "logs contain {needle:?}:\n{text}");
    }
}

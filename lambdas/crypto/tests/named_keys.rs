//! Named keys: one lazily loaded keyring per key, format 2 envelopes on the named routes,
//! another key's ciphertext refused by name, unknown keys 404, and the key in the access log.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use ssm_core::api::Limits;
use ssm_core::keyname::KeyName;
use ssm_core::keyring::Keyring;
use ssm_crypto::Service;
use ssm_keystore::{CachePolicy, KeySource};

struct Keys {
    service: Arc<Service>,
    _dir: tempfile::TempDir,
}

fn payments() -> KeyName {
    KeyName::parse("payments").expect("valid name")
}

/// `default` and `payments`, each its own keyring file.
fn keys() -> Keys {
    // Every test installs the global log capture before it logs, so no callsite is first hit
    // (and its interest cached) without it.
    let _ = ssm_testkit::logs::global();
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |file: &str| {
        let path = dir.path().join(file);
        let ring = Keyring::generate(chrono::Utc::now()).expect("keyring");
        std::fs::write(&path, ring.to_json().as_bytes()).expect("write keyring");
        KeySource::File(path)
    };
    let service = Service::from_sources(
        write("default.json"),
        vec![(payments(), write("payments.json"))],
        CachePolicy::default(),
        Limits::default(),
    );
    Keys {
        service: Arc::new(service),
        _dir: dir,
    }
}

async fn call(service: &Service, method: &str, path: &str, body: Value) -> (u16, Value) {
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let response = service.handle(method, path, &body, None).await;
    let value = serde_json::from_slice(&response.body).expect("JSON body");
    (response.status, value)
}

#[tokio::test]
async fn each_key_loads_on_first_use_and_keeps_its_ciphertexts() {
    let t = keys();
    let svc = &t.service;
    assert_eq!(svc.key_names(), vec![KeyName::DEFAULT, payments()]);
    let payments_cache = svc.keyring_of(&payments()).expect("payments is configured");
    assert_eq!(payments_cache.loads(), 0, "nothing loads before a request");

    let (status, old) = call(svc, "POST", "/v1/encrypt", json!({"plaintext": "aGk="})).await;
    assert_eq!(status, 200);
    assert!(old["ciphertext"].as_str().unwrap().starts_with("ssm:v1:"));
    assert_eq!(
        payments_cache.loads(),
        0,
        "the default key's request loads only its keyring"
    );

    let (status, sealed) = call(
        svc,
        "POST",
        "/v1/keys/payments/encrypt",
        json!({"plaintext": "aGk=", "context": "Yw=="}),
    )
    .await;
    assert_eq!(status, 200, "{sealed}");
    let ct = sealed["ciphertext"].as_str().unwrap().to_owned();
    assert!(ct.starts_with("ssm2:payments:v1:"), "{ct}");
    assert_eq!(payments_cache.loads(), 1);

    let (status, opened) = call(
        svc,
        "POST",
        "/v1/keys/payments/decrypt",
        json!({"ciphertext": ct, "context": "Yw=="}),
    )
    .await;
    assert_eq!((status, opened), (200, json!({"plaintext": "aGk="})));
    assert_eq!(payments_cache.loads(), 1, "cached");

    // Given to the default key (old or named route): refused by name, naming the route.
    for path in ["/v1/decrypt", "/v1/keys/default/decrypt"] {
        let (status, error) = call(
            svc,
            "POST",
            path,
            json!({"ciphertext": ct, "context": "Yw=="}),
        )
        .await;
        assert_eq!(status, 400, "{path}");
        assert_eq!(error["error"]["code"], "key_mismatch");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains("/v1/keys/payments/decrypt"), "{message}");
    }
    // And the default key's old ciphertext is not payments'.
    let (status, error) = call(
        svc,
        "POST",
        "/v1/keys/payments/decrypt",
        json!({"ciphertext": old["ciphertext"]}),
    )
    .await;
    assert_eq!(
        (status, &error["error"]["code"]),
        (400, &json!("key_mismatch"))
    );

    let (status, info) = call(svc, "GET", "/v1/keys/payments", Value::Null).await;
    assert_eq!((status, &info["name"]), (200, &json!("payments")));
    let (_, old_info) = call(svc, "GET", "/v1/keys", Value::Null).await;
    assert!(old_info.get("name").is_none());
}

#[tokio::test]
async fn unknown_keys_are_404_before_anything_loads() {
    let t = keys();
    for (method, path) in [
        ("POST", "/v1/keys/orders/encrypt"),
        ("POST", "/v1/keys/orders/hmac"),
        ("GET", "/v1/keys/orders"),
    ] {
        let (status, error) = call(&t.service, method, path, json!({"plaintext": ""})).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(error["error"]["code"], "unknown_key");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`orders`")
        );
    }
    let (status, error) = call(&t.service, "POST", "/v1/keys/Orders/encrypt", json!({})).await;
    assert_eq!(
        (status, &error["error"]["code"]),
        (404, &json!("not_found"))
    );
    assert_eq!(t.service.keyring().loads(), 0);
}

#[tokio::test]
async fn macs_through_the_service_and_the_key_in_the_log() {
    // The global capture (see tests/lambda.rs): a per-thread one can miss a callsite first hit
    // on another test's thread. Only this test MACs successfully, so those hmac lines are its.
    let logs = ssm_testkit::logs::global();
    let t = keys();
    let svc = &t.service;
    let input = STANDARD.encode(b"MAC-INPUT-SECRET-VALUE");
    let (status, made) = call(
        svc,
        "POST",
        "/v1/keys/payments/hmac",
        json!({"input": input}),
    )
    .await;
    assert_eq!(status, 200, "{made}");
    let mac = made["mac"].as_str().unwrap().to_owned();
    assert!(mac.starts_with("ssm-mac:payments:v1:"));
    let (_, valid) = call(
        svc,
        "POST",
        "/v1/keys/payments/verify",
        json!({"input": input, "mac": mac}),
    )
    .await;
    assert_eq!(valid, json!({"valid": true}));
    // The default key's MAC over the same input is another key's: refused by name.
    let (_, other) = call(
        svc,
        "POST",
        "/v1/keys/default/hmac",
        json!({"input": input}),
    )
    .await;
    let (status, error) = call(
        svc,
        "POST",
        "/v1/keys/payments/verify",
        json!({"input": input, "mac": other["mac"]}),
    )
    .await;
    assert_eq!(
        (status, &error["error"]["code"]),
        (400, &json!("key_mismatch"))
    );

    let text = logs.text();
    let hmac_keys: Vec<&str> = text
        .lines()
        .filter(|line| {
            line.contains("route=\"/v1/keys/{name}/hmac\"") && line.contains("status=200")
        })
        .filter_map(|line| line.split(" key=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(hmac_keys, ["payments", "default"], "{text}");
    for needle in ["MAC-INPUT-SECRET-VALUE", input.as_str(), &mac[20..]] {
        assert!(!text.contains(needle), "logs contain {needle:?}:\n{text}");
    }
}

#[tokio::test]
async fn named_routes_through_api_gateway_events() {
    let t = keys();
    let event: ssm_crypto::lambda::HttpApiEvent = serde_json::from_value(json!({
        "rawPath": "/v1/keys/payments/encrypt",
        "requestContext": {"http": {"method": "POST"}},
        "body": "{\"plaintext\": \"aGk=\"}",
    }))
    .expect("event");
    let response = ssm_crypto::lambda::handle(&t.service, event).await;
    assert_eq!(response.status_code, 200, "{}", response.body);
    assert!(response.body.contains("ssm2:payments:v1:"));
    let event: ssm_crypto::lambda::HttpApiEvent = serde_json::from_value(json!({
        "rawPath": "/v1/keys/payments",
        "requestContext": {"http": {"method": "POST"}},
    }))
    .expect("event");
    let response = ssm_crypto::lambda::handle(&t.service, event).await;
    assert_eq!(
        (response.status_code, response.headers.allow),
        (405, Some("GET, HEAD"))
    );
}

//! The Lambda front end: API Gateway HTTP API v2 events in, responses out.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

fn event(method: &str, path: &str, body: &str) -> lambda_http::Request {
    let text = include_str!("fixtures/apigw-v2-encrypt.json")
        .replace("\"POST\"", &format!("\"{method}\""))
        .replace("/v1/encrypt", path)
        .replace("__BODY__", &body.replace('\\', "\\\\").replace('"', "\\\""));
    lambda_http::request::from_str(&text).expect("valid API Gateway v2 event")
}

async fn call(
    t: &common::TestService,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, Value, Option<String>) {
    let response = ssm_crypto::lambda::handle(&t.service, event(method, path, body)).await;
    let status = response.status().as_u16();
    let allow = response
        .headers()
        .get("allow")
        .map(|v| v.to_str().expect("ascii header").to_owned());
    assert_eq!(response.headers()["content-type"], "application/json");
    let lambda_http::Body::Text(text) = response.body() else {
        return (status, Value::Null, allow);
    };
    let body: Value = serde_json::from_str(text).expect("JSON body");
    (status, body, allow)
}

#[tokio::test]
async fn encrypt_then_decrypt_through_api_gateway_events() {
    let t = common::service();
    let body =
        json!({"plaintext": STANDARD.encode(b"payload"), "context": STANDARD.encode(b"ctx")});
    let (status, enc, _) = call(&t, "POST", "/v1/encrypt", &body.to_string()).await;
    assert_eq!(status, 200, "{enc}");
    assert_eq!(enc["key_version"], 1);
    let body = json!({"ciphertext": enc["ciphertext"], "context": STANDARD.encode(b"ctx")});
    let (status, dec, _) = call(&t, "POST", "/v1/decrypt", &body.to_string()).await;
    assert_eq!(
        (status, dec),
        (200, json!({"plaintext": STANDARD.encode(b"payload")}))
    );
}

#[tokio::test]
async fn errors_have_the_right_status_and_shape() {
    let t = common::service();
    let cases = [
        ("POST", "/v1/encrypt", "{not json", 400, "invalid_request"),
        (
            "POST",
            "/v1/encrypt",
            r#"{"plaintext": "aGk=", "bogus": true}"#,
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/decrypt",
            r#"{"ciphertext": "ssm:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
            400,
            "decryption_failed",
        ),
        ("GET", "/v1/encrypt", "", 405, "method_not_allowed"),
        ("POST", "/nope", "{}", 404, "not_found"),
        (
            "POST",
            "/unwrap",
            r#"{"cipher": "not-base64-at-all!"}"#,
            400,
            "decryption_failed",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (got, value, allow) = call(&t, method, path, body).await;
        assert_eq!(got, status, "{method} {path} {body}: {value}");
        assert_eq!(value["error"]["code"], code, "{method} {path} {body}");
        assert!(
            value["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        if status == 405 {
            assert_eq!(allow.as_deref(), Some("POST"));
        }
    }
}

#[tokio::test]
async fn original_routes_keep_working() {
    let t = common::service();
    let (status, version, _) = call(&t, "GET", "/version", "").await;
    assert_eq!(status, 200);
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    let (_, wrapped, _) = call(&t, "POST", "/wrap", r#"{"text": "hello"}"#).await;
    let cipher = wrapped["cipher"].as_str().unwrap();
    let (status, text, _) = call(
        &t,
        "POST",
        "/unwrap",
        &json!({"cipher": cipher}).to_string(),
    )
    .await;
    assert_eq!((status, text), (200, json!({"text": "hello"})));
}

#[tokio::test]
async fn access_log_names_the_iam_caller() {
    let t = common::service();
    let (logs, _guard) = ssm_testkit::logs::capture_thread();
    let (status, _, _) = call(&t, "GET", "/v1/keys", "").await;
    assert_eq!(status, 200);
    let text = logs.text();
    assert!(
        text.contains("arn:aws:sts::123456789012:assumed-role/app-role/session"),
        "{text}"
    );
    assert!(text.contains("/v1/keys"), "{text}");
}

//! The Lambda front end: API Gateway HTTP API v2 events in, responses out.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use ssm_crypto::lambda::{HttpApiEvent, HttpApiResponse};

fn event(method: &str, path: &str, body: &str) -> HttpApiEvent {
    let text = include_str!("fixtures/apigw-v2-encrypt.json")
        .replace("\"POST\"", &format!("\"{method}\""))
        .replace("/v1/encrypt", path)
        .replace("__BODY__", &body.replace('\\', "\\\\").replace('"', "\\\""));
    serde_json::from_str(&text).expect("valid API Gateway v2 event")
}

async fn call(
    t: &common::TestService,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, Value, Option<String>) {
    let response = ssm_crypto::lambda::handle(&t.service, event(method, path, body)).await;
    check_wire_shape(&response);
    let status = response.status_code;
    assert_eq!(response.headers.content_type, "application/json");
    assert_eq!(response.headers.cache_control, "no-store");
    let body: Value = serde_json::from_str(&response.body).expect("JSON body");
    (status, body, response.headers.allow.map(str::to_owned))
}

/// What lambda_runtime sends back to API Gateway: the payload 2.0 response fields.
fn check_wire_shape(response: &HttpApiResponse) {
    let wire = serde_json::to_value(response).expect("serializable");
    assert_eq!(wire["statusCode"], response.status_code);
    assert_eq!(wire["isBase64Encoded"], false);
    assert_eq!(wire["headers"]["content-type"], "application/json");
    assert_eq!(wire["headers"]["cache-control"], "no-store");
    assert_eq!(
        wire["headers"].get("allow").and_then(Value::as_str),
        response.headers.allow
    );
    assert!(wire["body"].is_string());
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
    // The global capture (not a per-thread one): a callsite first hit on another test's thread
    // would otherwise cache "no subscriber" and drop this test's line. A caller ARN no other
    // test uses tells this request's line apart.
    let logs = ssm_testkit::logs::global();
    let t = common::service();
    let caller = "arn:aws:sts::123456789012:assumed-role/access-log-test/session";
    let mut keys = event("GET", "/v1/keys", "");
    keys.request_context = serde_json::from_value(json!({
        "http": {"method": "GET"},
        "authorizer": {"iam": {"userArn": caller}}
    }))
    .expect("request context");
    let response = ssm_crypto::lambda::handle(&t.service, keys).await;
    assert_eq!(response.status_code, 200);
    let text = logs.text();
    let line = text
        .lines()
        .find(|line| line.contains(caller))
        .unwrap_or_else(|| panic!("no access log line names the caller: {text}"));
    assert!(line.contains("/v1/keys"), "{line}");
    assert!(line.contains("status=200"), "{line}");
}

#[tokio::test]
async fn base64_encoded_bodies_are_decoded_and_bad_base64_is_a_400() {
    let t = common::service();
    let plain = json!({"plaintext": STANDARD.encode(b"binary body")}).to_string();
    let mut encoded = event("POST", "/v1/encrypt", "");
    encoded.body = Some(STANDARD.encode(plain.as_bytes()));
    encoded.is_base64_encoded = true;
    let response = ssm_crypto::lambda::handle(&t.service, encoded).await;
    assert_eq!(response.status_code, 200, "{}", response.body);

    let mut broken = event("POST", "/v1/encrypt", "");
    broken.body = Some("not base64 at all!".to_owned());
    broken.is_base64_encoded = true;
    let response = ssm_crypto::lambda::handle(&t.service, broken).await;
    assert_eq!(response.status_code, 400);
    let body: Value = serde_json::from_str(&response.body).expect("JSON body");
    assert_eq!(body["error"]["code"], "invalid_request");
}

#[tokio::test]
async fn events_without_body_or_authorizer_are_handled() {
    let t = common::service();
    let event: HttpApiEvent = serde_json::from_value(json!({
        "version": "2.0",
        "rawPath": "/v1/keys",
        "requestContext": {"http": {"method": "GET", "path": "/v1/keys"}}
    }))
    .expect("minimal event");
    assert_eq!(event.caller_arn(), None);
    let response = ssm_crypto::lambda::handle(&t.service, event).await;
    assert_eq!(response.status_code, 200, "{}", response.body);
    // Unknown fields anywhere in the event are skipped, as API Gateway adds fields over time.
    let event: HttpApiEvent = serde_json::from_value(json!({
        "rawPath": "/version", "cookies": ["a=b"], "newField": {"x": 1},
        "requestContext": {"http": {"method": "GET", "newer": true}, "authorizer": {"jwt": {}}}
    }))
    .expect("event with extra fields");
    let response = ssm_crypto::lambda::handle(&t.service, event).await;
    assert_eq!(response.status_code, 200, "{}", response.body);
}

//! Crypto API request bodies: parsing never panics and refuses with a 4xx; a parsed request
//! executes to 200 or a 4xx, never a 5xx while the keyring is there, and to 503 (or the
//! version) without one; a single encrypt decrypts back through the same key's route to its
//! plaintext, and a single hmac verifies back through the same key's verify.
//!
//! Input: one byte choosing the route (the original ones, then the named key `payments`'s), then
//! the body.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ssm_core::api::{Items, KeyOp, Limits, Request, Route, execute_as};
use ssm_core::keyring::Keyring;

const ROUTES: [(&str, &str); 15] = [
    ("POST", "/v1/encrypt"),
    ("POST", "/v1/decrypt"),
    ("POST", "/v1/rewrap"),
    ("POST", "/v1/datakey"),
    ("GET", "/v1/keys"),
    ("GET", "/version"),
    ("POST", "/wrap"),
    ("POST", "/unwrap"),
    ("POST", "/v1/keys/payments/encrypt"),
    ("POST", "/v1/keys/payments/decrypt"),
    ("POST", "/v1/keys/payments/rewrap"),
    ("POST", "/v1/keys/payments/datakey"),
    ("POST", "/v1/keys/payments/hmac"),
    ("POST", "/v1/keys/payments/verify"),
    ("GET", "/v1/keys/payments"),
];

/// Small limits, so the fuzzer reaches the size checks.
const LIMITS: Limits = Limits {
    max_plaintext: 64,
    max_batch: 4,
};

/// Three versions (primary 3; version 1 retired by the minimum) and the legacy key.
const RING: &str = r#"{
  "primary_version": 3,
  "min_decryption_version": 2,
  "keys": [
    {"version": 1, "created_at": "2026-01-01T00:00:00Z", "material": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
    {"version": 2, "created_at": "2026-02-01T00:00:00Z", "material": "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="},
    {"version": 3, "created_at": "2026-03-01T00:00:00Z", "material": "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo="}
  ],
  "legacy_aes_key": "0123456789abcdef0123456789abcdef"
}"#;

fn ring() -> &'static Keyring {
    static RING_CELL: OnceLock<Keyring> = OnceLock::new();
    RING_CELL.get_or_init(|| Keyring::from_json(RING).expect("the fuzz keyring parses"))
}

pub(crate) fn run(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let (method, path) = ROUTES[usize::from(selector) % ROUTES.len()];
    let route = Route::from_request(method, path).expect("every listed route matches");
    let request = match Request::parse(route, body, &LIMITS) {
        Ok(request) => request,
        Err(error) => {
            assert!(
                (400..500).contains(&error.status),
                "parse refused with {}: {error:?}",
                error.status
            );
            assert!(!error.code.is_empty());
            return;
        }
    };
    let target = route.target();
    let response = execute_as(target, &request, Some(ring()), &LIMITS);
    // Every body is JSON (they are written without a Value tree, so this checks the writer).
    let body: serde_json::Value =
        serde_json::from_slice(&response.body).expect("every response body is JSON");
    assert!(
        response.status == 200 || (400..500).contains(&response.status),
        "{path} answered {}: {body}",
        response.status,
    );
    if response.status != 200 {
        assert!(body["error"]["code"].is_string());
        assert_eq!(
            body["error"]["code"].as_str(),
            response.error_code.as_deref()
        );
    }
    let without_ring = execute_as(target, &request, None, &LIMITS);
    let expected = if matches!(request, Request::Version) {
        200
    } else {
        503
    };
    assert_eq!(without_ring.status, expected);

    if let (Request::Encrypt(Items::One(item)), 200) = (&request, response.status) {
        let decrypt = serde_json::json!({
            "ciphertext": body["ciphertext"],
            "context": item.context,
        });
        let decrypt = decrypt.to_string();
        let decrypt_route = match route {
            Route::Key(name, _) => Route::Key(name, KeyOp::Decrypt),
            _ => Route::Decrypt,
        };
        let decrypt = Request::parse(decrypt_route, decrypt.as_bytes(), &LIMITS)
            .expect("the decrypt request for a fresh ciphertext parses");
        let back = execute_as(target, &decrypt, Some(ring()), &LIMITS);
        let back_body: serde_json::Value =
            serde_json::from_slice(&back.body).expect("every response body is JSON");
        assert_eq!(back.status, 200, "fresh ciphertext refused: {back_body}");
        let got = STANDARD
            .decode(back_body["plaintext"].as_str().unwrap_or_default())
            .expect("plaintext answers are base64");
        if let Ok(sent) = STANDARD.decode(item.plaintext.as_bytes()) {
            assert_eq!(got, sent, "decrypt(encrypt(x)) != x");
        }
    }

    if let (Request::Hmac(Items::One(item)), 200, Route::Key(name, _)) =
        (&request, response.status, route)
    {
        let verify = serde_json::json!({"input": item.input, "mac": body["mac"]}).to_string();
        let verify = Request::parse(Route::Key(name, KeyOp::Verify), verify.as_bytes(), &LIMITS)
            .expect("the verify request for a fresh MAC parses");
        let back = execute_as(target, &verify, Some(ring()), &LIMITS);
        assert_eq!(
            (back.status, back.body.as_slice()),
            (200, &br#"{"valid":true}"#[..]),
            "verify(hmac(x)) is not valid"
        );
    }
}

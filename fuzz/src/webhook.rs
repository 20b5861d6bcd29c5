//! Webhook signatures: `verify_signature` accepts a header only if it is the HMAC-SHA256 of the
//! body under a configured secret (computed here independently), always accepts that HMAC, alone
//! or among other secrets, and never for another body or with no secrets.
//!
//! Input: `secret\0body\0header`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use ssm_core::webhook::{sign, verify_signature};

use crate::input::fields;

pub(crate) fn run(data: &[u8]) {
    let [secret, body, header] = fields::<3>(data);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    let expected = mac.finalize().into_bytes();

    let header = std::str::from_utf8(header).ok();
    if verify_signature(&[secret], header, body).is_ok() {
        let hex_sig = header
            .and_then(|h| h.strip_prefix("sha256="))
            .expect("an accepted header starts with sha256=");
        assert_eq!(
            hex::decode(hex_sig).ok().as_deref(),
            Some(&expected[..]),
            "accepted a signature that is not the body's HMAC"
        );
    }

    let good = format!("sha256={}", hex::encode(expected));
    assert_eq!(sign(secret, body), good);
    assert!(verify_signature(&[secret], Some(&good), body).is_ok());
    assert!(verify_signature(&[&b"previous secret"[..], secret], Some(&good), body).is_ok());
    assert!(verify_signature::<&[u8]>(&[], Some(&good), body).is_err());
    assert!(verify_signature(&[secret], None, body).is_err());
    let mut other_body = body.to_vec();
    other_body.push(b'\n');
    assert!(
        verify_signature(&[secret], Some(&good), &other_body).is_err(),
        "accepted a signature for another body"
    );
}

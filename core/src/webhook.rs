//! GitHub webhook signature verification and our own webhook event enum.
//!
//! [`verify_signature`] runs on the raw body before anything parses it; the App then converts
//! GitHub's payload (octocrab's webhook types, at its edge) into the few events it acts on.
//! Anything else is [`WebhookEvent::Ignored`] (answered 200, as GitHub expects).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Header carrying `sha256=<hex HMAC of the body>`.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// Header naming the event.
pub const EVENT_HEADER: &str = "x-github-event";
/// Header with the delivery's unique id (the same on redeliveries).
pub const DELIVERY_HEADER: &str = "x-github-delivery";

/// Why a webhook's signature is refused (401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    #[error("X-Hub-Signature-256 is not sha256=<64 hex digits>")]
    Malformed,
    #[error("X-Hub-Signature-256 does not match any configured secret")]
    Mismatch,
}

/// Verifies `X-Hub-Signature-256` over the raw `body` against each secret (several are accepted
/// during a rotation). The comparison is constant-time (`Mac::verify_slice`).
pub fn verify_signature<S: AsRef<[u8]>>(
    secrets: &[S],
    header: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_sig = header
        .strip_prefix("sha256=")
        .filter(|h| h.len() == 64)
        .ok_or(SignatureError::Malformed)?;
    let expected = hex::decode(hex_sig).map_err(|_| SignatureError::Malformed)?;
    let mut ok = false;
    for secret in secrets {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_ref()) else {
            continue;
        };
        mac.update(body);
        // Check every secret so the time taken does not reveal which one matched.
        ok |= mac.verify_slice(&expected).is_ok();
    }
    if ok {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The webhook events the App acts on, converted from GitHub's payloads at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    Ping {
        hook_id: Option<u64>,
    },
    /// The App was installed, uninstalled, suspended...: `repositories` are the ones listed.
    Installation {
        action: String,
        installation_id: u64,
        repositories: Vec<String>,
    },
    /// Repositories were added to or removed from an installation.
    InstallationRepositories {
        action: String,
        installation_id: u64,
        added: Vec<String>,
        removed: Vec<String>,
    },
    /// A reconcile was requested (our `ssm-drift` dispatches land here).
    RepositoryDispatch {
        event_type: String,
        repository: String,
        installation_id: Option<u64>,
    },
    /// A workflow run (reconcile runs among them) changed state.
    WorkflowRun {
        action: String,
        repository: String,
        run_id: u64,
        name: String,
        event: String,
        status: String,
        conclusion: Option<String>,
    },
    /// Any other event: acknowledged and dropped.
    Ignored {
        event: String,
    },
}

/// Computes `sha256=<hex>` for `body` (for tests and for clients that sign deliveries).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        // HMAC accepts keys of any length, so this arm is never taken.
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // GitHub's published test vector (docs: "Validating webhook deliveries").
    const SECRET: &str = "It's a Secret to Everybody";
    const PAYLOAD: &str = "Hello, World!";
    const EXPECTED: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn github_test_vector() {
        assert_eq!(sign(SECRET.as_bytes(), PAYLOAD.as_bytes()), EXPECTED);
        assert_eq!(
            verify_signature(&[SECRET], Some(EXPECTED), PAYLOAD.as_bytes()),
            Ok(())
        );
    }

    #[test]
    fn one_flipped_byte_fails() {
        let mut body = PAYLOAD.as_bytes().to_vec();
        body[0] ^= 1;
        assert_eq!(
            verify_signature(&[SECRET], Some(EXPECTED), &body),
            Err(SignatureError::Mismatch)
        );
        let mut sig = EXPECTED.to_owned();
        sig.replace_range(70..71, "0");
        assert_ne!(sig, EXPECTED);
        assert_eq!(
            verify_signature(&[SECRET], Some(&sig), PAYLOAD.as_bytes()),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn rotation_accepts_any_configured_secret() {
        assert_eq!(
            verify_signature(&["new secret", SECRET], Some(EXPECTED), PAYLOAD.as_bytes()),
            Ok(())
        );
        assert_eq!(
            verify_signature(&["new secret"], Some(EXPECTED), PAYLOAD.as_bytes()),
            Err(SignatureError::Mismatch)
        );
        let none: [&str; 0] = [];
        assert_eq!(
            verify_signature(&none, Some(EXPECTED), PAYLOAD.as_bytes()),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn malformed_headers() {
        assert_eq!(
            verify_signature(&[SECRET], None, b""),
            Err(SignatureError::Missing)
        );
        for bad in [
            "sha1=abc",
            "sha256=",
            "sha256=zz",
            &EXPECTED[..70],
            &format!("{EXPECTED}00"),
        ] {
            assert_eq!(
                verify_signature(&[SECRET], Some(bad), PAYLOAD.as_bytes()),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }
}

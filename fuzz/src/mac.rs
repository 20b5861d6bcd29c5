//! MACs (`ssm-mac:<name>:v<version>:<base64 tag>`): parsing and verifying never panic, nothing
//! verifies that `sign` did not produce for that key, name, version and input, and a keyring
//! refuses another key's MAC by name.
//!
//! Inputs starting with `ssm-mac:` are `mac\0input`: the MAC is parsed, its header checked
//! canonical, and verified with every key of `core/tests/vectors/mac.json` (the seeds are those
//! vectors); one that verifies must be byte for byte what signing gives. Other inputs are
//! `name\0input\0edits`: signed, verified, verified against another input and as another key
//! (refused by name), and after the edits (fails unless they changed nothing).

use std::sync::OnceLock;

use ssm_core::envelope::KeyVersion;
use ssm_core::keyname::KeyName;
use ssm_core::keyring::{Keyring, OpenError};
use ssm_core::mac::{self, MacText};
use ssm_core::secret::KeyMaterial;

use crate::envelope2::name_from;
use crate::input::{edited, fields};

/// One keyring, version 1 only.
const RING: &str = r#"{"primary_version": 1, "min_decryption_version": 1, "keys": [
  {"version": 1, "created_at": "2026-01-01T00:00:00Z", "material": "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="}
]}"#;

pub(crate) fn run(data: &[u8]) {
    if data.starts_with(b"ssm-mac:") {
        let [text, input] = fields::<2>(data);
        if let Ok(text) = std::str::from_utf8(text) {
            given(text, input);
        }
    } else {
        round_trip(data);
    }
}

fn given(text: &str, input: &[u8]) {
    let ring = keyring();
    // Whatever the text, the keyring answers without panicking.
    let Some(parsed) = MacText::parse(text) else {
        assert_eq!(
            ring.verify_mac(&KeyName::DEFAULT, text, input),
            Ok(false),
            "a malformed MAC is invalid, not an error"
        );
        return;
    };
    let header = format!("ssm-mac:{}:v{}:", parsed.name, parsed.version);
    assert!(
        text.starts_with(&header),
        "parse accepted a non-canonical header: {text:?}"
    );
    let _ = ring.verify_mac(&parsed.name, text, input);
    for key in vector_keys() {
        if mac::verify(key, &parsed, input) {
            assert_eq!(
                mac::sign(key, &parsed.name, parsed.version, input),
                text,
                "a second spelling of a MAC verified"
            );
        }
    }
}

fn round_trip(data: &[u8]) {
    let [name, input, edits] = fields::<3>(data);
    let name = name_from(name);
    let ring = keyring();
    let (text, version) = ring.mac(&name, input).expect("the keyring has a primary");
    assert_eq!(version, KeyVersion::FIRST);
    assert_eq!(ring.verify_mac(&name, &text, input), Ok(true));
    let mut other_input = input.to_vec();
    other_input.push(b'!');
    assert_eq!(ring.verify_mac(&name, &text, &other_input), Ok(false));
    let other = if name.as_str() == "other" {
        KeyName::DEFAULT
    } else {
        KeyName::parse("other").expect("valid")
    };
    assert_eq!(
        ring.verify_mac(&other, &text, input),
        Err(OpenError::KeyMismatch {
            found: name,
            expected: other
        })
    );
    if let Some(edited) = edited(&text, edits) {
        let outcome = ring.verify_mac(&name, &edited, input);
        assert!(
            !matches!(outcome, Ok(true)),
            "an edited MAC verified: {text:?} -> {edited:?}"
        );
    }
}

fn keyring() -> &'static Keyring {
    static RING_CELL: OnceLock<Keyring> = OnceLock::new();
    RING_CELL.get_or_init(|| Keyring::from_json(RING).expect("the fuzz keyring parses"))
}

/// The keys of `core/tests/vectors/mac.json`.
fn vector_keys() -> &'static [KeyMaterial] {
    static KEYS: OnceLock<Vec<KeyMaterial>> = OnceLock::new();
    KEYS.get_or_init(|| {
        crate::input::vector_keys(include_str!("../../core/tests/vectors/mac.json"))
            .into_iter()
            .map(|(key, _)| key)
            .collect()
    })
}

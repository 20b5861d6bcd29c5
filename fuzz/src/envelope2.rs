//! The named envelope (`ssm2:<name>:v<version>:<base64>`): parsing and opening never panic,
//! nothing opens that `seal_named` did not produce under that key, name, version and context,
//! and a keyring refuses another key's envelope by name.
//!
//! Inputs starting with `ssm2:` are ciphertexts, checked as the `envelope` target checks them:
//! the header canonical, opened with every vector key (the seeds are the vectors of
//! `core/tests/vectors/envelope2.json`), and what opens must be byte for byte what sealing its
//! plaintext again under the same name and nonce gives. Other inputs are `name\0plaintext\0context\0edits`: the name is made valid from the
//! bytes, then sealed, opened back, opened as another key (refused by name), relabelled (fails
//! authentication), and opened after the edits (fails unless they changed nothing).

use std::sync::OnceLock;

use ssm_core::envelope::{Envelope, KeyVersion, NONCE_LEN, seal_named_with_nonce};
use ssm_core::keyname::KeyName;
use ssm_core::keyring::{Keyring, OpenError};
use ssm_core::secret::KeyMaterial;

use crate::input::{edited, fields};

const KEY: [u8; 32] = [0x42; 32];

/// One keyring (version 1 = [`KEY`]), to check the keyring's name check too.
const RING: &str = r#"{"primary_version": 1, "min_decryption_version": 1, "keys": [
  {"version": 1, "created_at": "2026-01-01T00:00:00Z", "material": "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="}
]}"#;

pub(crate) fn run(data: &[u8]) {
    if data.starts_with(b"ssm2:") {
        if let Ok(text) = std::str::from_utf8(data) {
            crate::envelope::ciphertext(text);
        }
    } else {
        round_trip(data);
    }
}

/// A valid key name from arbitrary bytes: letters and digits from the alphabet, `-` inside.
pub(crate) fn name_from(bytes: &[u8]) -> KeyName {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-";
    let mut name: Vec<u8> = bytes
        .iter()
        .take(32)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()])
        .collect();
    match name.first_mut() {
        Some(first) if !first.is_ascii_lowercase() => *first = b'k',
        Some(_) => {}
        None => name.push(b'k'),
    }
    if name.last() == Some(&b'-') {
        name.pop();
        name.push(b'z');
    }
    let text = String::from_utf8(name).expect("ASCII");
    KeyName::parse(&text).expect("made valid")
}

fn round_trip(data: &[u8]) {
    let [name, plaintext, context, edits] = fields::<4>(data);
    let name = name_from(name);
    let key = KeyMaterial::from_bytes(KEY);
    let version = KeyVersion::FIRST;
    let mut nonce = [0u8; NONCE_LEN];
    for (n, b) in nonce.iter_mut().zip(edits.iter().rev()) {
        *n = *b;
    }
    let text =
        seal_named_with_nonce(&key, &name, version, nonce, plaintext, context).expect("sealing");
    let open =
        |text: &str, context: &[u8]| Envelope::parse(text).and_then(|e| e.open(&key, context));
    assert_eq!(
        open(&text, context)
            .expect("a sealed envelope opens")
            .expose(),
        plaintext
    );

    // The keyring opens it as its key and refuses it, untried, as any other.
    let ring = keyring();
    let (opened, _) = ring
        .decrypt_as(&name, &text, context)
        .expect("the keyring opens its key's envelope");
    assert_eq!(opened.expose(), plaintext);
    let other = if name.as_str() == "other" {
        KeyName::DEFAULT
    } else {
        KeyName::parse("other").expect("valid")
    };
    assert_eq!(
        ring.decrypt_as(&other, &text, context).map(|_| ()),
        Err(OpenError::KeyMismatch {
            found: name,
            expected: other
        })
    );
    // Relabelled to the other name, the same body fails authentication.
    let relabelled = text.replacen(&format!("ssm2:{name}:"), &format!("ssm2:{other}:"), 1);
    assert!(
        open(&relabelled, context).is_err(),
        "a relabelled envelope opened"
    );

    // Edits: byte pairs (position, value) overwrite the text; an odd last byte truncates it.
    if let Some(edited) = edited(&text, edits.get(1..).unwrap_or_default()) {
        assert!(
            open(&edited, context).is_err(),
            "an edited envelope opened: {text:?} -> {edited:?}"
        );
    }
}

fn keyring() -> &'static Keyring {
    static RING_CELL: OnceLock<Keyring> = OnceLock::new();
    RING_CELL.get_or_init(|| Keyring::from_json(RING).expect("the fuzz keyring parses"))
}

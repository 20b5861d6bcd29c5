//! The envelope (`ssm:v<version>:<base64>`): parsing and opening never panic, and nothing opens
//! that `seal` did not produce under that key, header and context.
//!
//! Inputs starting with `ssm:` are ciphertexts: they are parsed and opened with every key and
//! context of the published test vectors of both formats (the seeds are those vectors, so the
//! fuzzer mutates envelopes that do open; the `envelope2` target sends its `ssm2:` inputs here). Whatever opens must be byte for byte what sealing its plaintext again
//! with the same nonce gives: no second spelling of a ciphertext (padding, trailing bits, header
//! digits) is accepted. Other inputs are `plaintext\0context\0edits`: sealed with a fixed key,
//! opened back, then opened with another key, another context, and after the edits, which must
//! all fail unless the edits changed nothing.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ssm_core::envelope::{Envelope, KeyVersion, NONCE_LEN, seal_named_with_nonce, seal_with_nonce};
use ssm_core::secret::KeyMaterial;

use crate::input::{edited, fields};

const KEY: [u8; 32] = [0x42; 32];
const OTHER_KEY: [u8; 32] = [0x24; 32];

pub(crate) fn run(data: &[u8]) {
    if data.starts_with(b"ssm:") {
        if let Ok(text) = std::str::from_utf8(data) {
            ciphertext(text);
        }
    } else {
        round_trip(data);
    }
}

/// Checks a ciphertext of either format.
pub(crate) fn ciphertext(text: &str) {
    let Ok(envelope) = Envelope::parse(text) else {
        return;
    };
    let header = match envelope.name {
        None => format!("ssm:v{}:", envelope.version),
        Some(name) => format!("ssm2:{name}:v{}:", envelope.version),
    };
    assert!(
        text.starts_with(&header),
        "parse accepted a non-canonical header: {text:?}"
    );
    for (key, context) in vector_keys() {
        let Ok(plaintext) = envelope.open(key, context) else {
            continue;
        };
        let raw = STANDARD
            .decode(&text[header.len()..])
            .expect("an envelope that opens has a base64 body");
        let nonce: [u8; NONCE_LEN] = raw[..NONCE_LEN]
            .try_into()
            .expect("an envelope that opens has a nonce");
        let version = envelope.version;
        let again = match &envelope.name {
            None => seal_with_nonce(key, version, nonce, plaintext.expose(), context),
            Some(name) => {
                seal_named_with_nonce(key, name, version, nonce, plaintext.expose(), context)
            }
        }
        .expect("sealing what was opened");
        assert_eq!(again, text, "a second spelling of a ciphertext opened");
    }
}

fn round_trip(data: &[u8]) {
    let [plaintext, context, edits] = fields::<3>(data);
    let key = KeyMaterial::from_bytes(KEY);
    let version = KeyVersion::new(u32::from(edits.first().copied().unwrap_or(1)).max(1))
        .expect("versions from 1");
    let mut nonce = [0u8; NONCE_LEN];
    for (n, b) in nonce.iter_mut().zip(edits.iter().rev()) {
        *n = *b;
    }
    let text = seal_with_nonce(&key, version, nonce, plaintext, context).expect("sealing");
    let open = |text: &str, key: &KeyMaterial, context: &[u8]| {
        Envelope::parse(text).and_then(|e| e.open(key, context))
    };

    let opened = open(&text, &key, context).expect("a sealed envelope opens");
    assert_eq!(
        opened.expose(),
        plaintext,
        "round trip changed the plaintext"
    );
    assert!(
        open(&text, &KeyMaterial::from_bytes(OTHER_KEY), context).is_err(),
        "opened with the wrong key"
    );
    let mut other_context = context.to_vec();
    other_context.push(b'!');
    assert!(
        open(&text, &key, &other_context).is_err(),
        "opened with the wrong context"
    );

    // Edits: byte pairs (position, value) overwrite the text; an odd last byte truncates it.
    if let Some(edited) = edited(&text, edits.get(1..).unwrap_or_default()) {
        assert!(
            open(&edited, &key, context).is_err(),
            "an edited envelope opened: {text:?} -> {edited:?}"
        );
    }
}

/// The keys and contexts of `core/tests/vectors/envelope.json` and `envelope2.json`, plus the
/// fixed key with an empty context.
fn vector_keys() -> &'static [(KeyMaterial, Vec<u8>)] {
    static KEYS: OnceLock<Vec<(KeyMaterial, Vec<u8>)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut keys =
            crate::input::vector_keys(include_str!("../../core/tests/vectors/envelope.json"));
        keys.extend(crate::input::vector_keys(include_str!(
            "../../core/tests/vectors/envelope2.json"
        )));
        keys.push((KeyMaterial::from_bytes(KEY), Vec::new()));
        keys
    })
}

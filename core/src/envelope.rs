//! The ciphertext envelope: AES-256-GCM, self-describing and versioned.
//!
//! ```text
//! envelope = "ssm:v" version ":" base64( nonce ‖ ciphertext ‖ tag )
//! version  = decimal key version, 1 ..= 4294967295, no leading zeros
//! nonce    = 12 random bytes from the OS CSPRNG (96 bits, NIST SP 800-38D §8.2.2)
//! tag      = 16 bytes (128-bit GCM tag)
//! base64   = RFC 4648 §4 standard alphabet with padding, canonical encoding only
//! aad      = "ssm:v" version ":" ‖ context       (context: caller bytes, empty if absent)
//! ```
//!
//! The header is bound into the associated data, so a ciphertext moved under another version
//! label fails authentication instead of being tried with another key. The header ends at its
//! second `:`, so `header ‖ context` splits one way only. An absent context and an empty
//! context are the same context.
//!
//! Every failure to open an envelope (bad header, bad base64, truncation, wrong key, wrong
//! context, tampering) is the one [`DecryptError`]: callers learn nothing about which check
//! failed. The full specification with test vectors is `docs/envelope.md`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::secret::{KeyMaterial, Plaintext, RandomnessError, fill_random};

/// Prefix of every envelope.
pub const PREFIX: &str = "ssm:v";
/// Nonce length in bytes.
pub const NONCE_LEN: usize = 12;
/// Tag length in bytes.
pub const TAG_LEN: usize = 16;

/// A key version: 1, 2, 3, … Version 0 does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct KeyVersion(u32);

impl KeyVersion {
    pub const FIRST: KeyVersion = KeyVersion(1);

    pub fn new(version: u32) -> Option<Self> {
        (version >= 1).then_some(Self(version))
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// The version after this one, if any.
    pub fn next(self) -> Option<Self> {
        self.0.checked_add(1).map(Self)
    }
}

impl TryFrom<u32> for KeyVersion {
    type Error = String;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::new(value).ok_or_else(|| "key versions start at 1".to_owned())
    }
}

impl From<KeyVersion> for u32 {
    fn from(value: KeyVersion) -> Self {
        value.0
    }
}

impl fmt::Display for KeyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The one error for every way an envelope can fail to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "ciphertext could not be decrypted: it is malformed, was altered, or the key or context is wrong"
)]
pub struct DecryptError;

/// Encryption failed: only the OS random number generator can make it fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncryptError {
    #[error(transparent)]
    Randomness(#[from] RandomnessError),
    #[error("plaintext is too long for AES-GCM")]
    TooLong,
}

/// A parsed envelope header and its still-encoded body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub version: KeyVersion,
    header: &'a str,
    body: &'a str,
}

impl<'a> Envelope<'a> {
    /// Parses the header only (no base64, no crypto). Any deviation is a [`DecryptError`].
    pub fn parse(text: &'a str) -> Result<Self, DecryptError> {
        let rest = text.strip_prefix(PREFIX).ok_or(DecryptError)?;
        let colon = rest.find(':').ok_or(DecryptError)?;
        let digits = &rest[..colon];
        let canonical = !digits.is_empty()
            && digits.len() <= 10
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !canonical {
            return Err(DecryptError);
        }
        let version = digits
            .parse::<u32>()
            .ok()
            .and_then(KeyVersion::new)
            .ok_or(DecryptError)?;
        let header_len = PREFIX.len() + colon + 1;
        Ok(Self {
            version,
            header: &text[..header_len],
            body: &text[header_len..],
        })
    }

    /// Whether `text` looks like an envelope at all (for routing legacy ciphertexts).
    pub fn is_envelope(text: &str) -> bool {
        text.starts_with("ssm:")
    }

    /// Authenticates and decrypts the body with `key` (the key of [`Self::version`]).
    pub fn open(&self, key: &KeyMaterial, context: &[u8]) -> Result<Plaintext, DecryptError> {
        let mut raw = STANDARD.decode(self.body).map_err(|_| DecryptError)?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(DecryptError);
        }
        // Decrypt in place: nonce ‖ ciphertext ‖ tag becomes the plaintext, with no second buffer.
        let tag_at = raw.len() - TAG_LEN;
        let (nonce, rest) = raw.split_at_mut(NONCE_LEN);
        let (body, tag) = rest.split_at_mut(tag_at - NONCE_LEN);
        let nonce: &[u8; NONCE_LEN] = (&*nonce).try_into().map_err(|_| DecryptError)?;
        let tag: &[u8; TAG_LEN] = (&*tag).try_into().map_err(|_| DecryptError)?;
        let aad = associated_data(self.header, context);
        let result = aead::open_in_place(key, nonce, &aad, body, tag);
        raw.truncate(tag_at);
        raw.drain(..NONCE_LEN);
        // Wrapped before the result is checked, so a failed open's buffer is zeroized too.
        let plaintext = Plaintext::new(raw);
        result?;
        Ok(plaintext)
    }
}

/// Seals `plaintext` under `key` (version `version`) with a fresh random nonce.
pub fn seal(
    key: &KeyMaterial,
    version: KeyVersion,
    plaintext: &[u8],
    context: &[u8],
) -> Result<String, EncryptError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    seal_with_nonce(key, version, nonce, plaintext, context)
}

/// Seals with a caller-chosen nonce. Only for test vectors: a repeated nonce under one key
/// destroys GCM's confidentiality and authenticity, so production code calls [`seal`].
pub fn seal_with_nonce(
    key: &KeyMaterial,
    version: KeyVersion,
    nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
    context: &[u8],
) -> Result<String, EncryptError> {
    let header = header(version);
    let aad = associated_data(&header, context);
    // Encrypt in place behind the nonce, then append the tag: one buffer, one copy of the input.
    let mut raw = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    raw.extend_from_slice(&nonce);
    raw.extend_from_slice(plaintext);
    let tag = aead::seal_in_place(key, &nonce, &aad, &mut raw[NONCE_LEN..])?;
    raw.extend_from_slice(&tag);
    let mut out = header;
    STANDARD.encode_string(&raw, &mut out);
    Ok(out)
}

/// Length of the envelope for a plaintext of `len` bytes (for size limits and benchmarks).
pub fn sealed_len(version: KeyVersion, len: usize) -> usize {
    header(version).len() + (NONCE_LEN + len + TAG_LEN).div_ceil(3) * 4
}

fn header(version: KeyVersion) -> String {
    format!("{PREFIX}{version}:")
}

fn associated_data(header: &str, context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + context.len());
    aad.extend_from_slice(header.as_bytes());
    aad.extend_from_slice(context);
    aad
}

/// The AEAD layer under the envelope: AES-256-GCM, 96-bit nonce, 128-bit tag, in place.
///
/// The envelope adds the header, the AAD layout and the encoding around these two functions and
/// nothing else, so vectors for plain AES-256-GCM (Wycheproof's, in `tests/wycheproof.rs`) test
/// exactly the cryptography every envelope goes through. The sizes are in the types: a key,
/// nonce or tag of another length cannot reach the cipher.
pub mod aead {
    use aes_gcm::aead::{AeadInOut, KeyInit};
    use aes_gcm::{Aes256Gcm, Nonce, Tag};

    use super::{DecryptError, EncryptError, NONCE_LEN, TAG_LEN};
    use crate::secret::KeyMaterial;

    /// Encrypts `buffer` in place and returns the tag over `aad` and the ciphertext.
    pub fn seal_in_place(
        key: &KeyMaterial,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buffer: &mut [u8],
    ) -> Result<[u8; TAG_LEN], EncryptError> {
        let tag = cipher(key)
            .encrypt_inout_detached(&Nonce::from(*nonce), aad, buffer.into())
            .map_err(|_| EncryptError::TooLong)?;
        Ok(tag.into())
    }

    /// Authenticates `buffer` (ciphertext) and `aad` against `tag`, then decrypts in place. On
    /// failure the buffer's contents are unspecified and must not be used.
    pub fn open_in_place(
        key: &KeyMaterial,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buffer: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), DecryptError> {
        cipher(key)
            .decrypt_inout_detached(&Nonce::from(*nonce), aad, buffer.into(), &Tag::from(*tag))
            .map_err(|_| DecryptError)
    }

    fn cipher(key: &KeyMaterial) -> Aes256Gcm {
        Aes256Gcm::new(key.expose().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(byte: u8) -> KeyMaterial {
        KeyMaterial::from_bytes([byte; 32])
    }

    fn v(n: u32) -> KeyVersion {
        KeyVersion::new(n).unwrap()
    }

    #[test]
    fn header_parsing_is_strict() {
        for bad in [
            "",
            "ssm:",
            "ssm:v",
            "ssm:v:",
            "ssm:v0:AAAA",
            "ssm:v01:AAAA",
            "ssm:v-1:AAAA",
            "ssm:v1",
            "vault:v1:AAAA",
            "ssm:v4294967296:AAAA",
            "ssm:v+1:AAAA",
            "SSM:v1:AAAA",
        ] {
            assert_eq!(Envelope::parse(bad), Err(DecryptError), "{bad:?}");
        }
        let env = Envelope::parse("ssm:v4294967295:AAAA").unwrap();
        assert_eq!(env.version.get(), u32::MAX);
    }

    #[test]
    fn sealed_len_matches() {
        for len in [0, 1, 2, 3, 64, 1000] {
            let sealed = seal(&key(1), v(7), &vec![0u8; len], b"").unwrap();
            assert_eq!(sealed.len(), sealed_len(v(7), len));
        }
    }

    #[test]
    fn nonces_are_fresh() {
        let a = seal(&key(1), v(1), b"same", b"").unwrap();
        let b = seal(&key(1), v(1), b"same", b"").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn wrong_key_and_relabelled_version_fail() {
        let sealed = seal(&key(1), v(1), b"secret", b"ctx").unwrap();
        let env = Envelope::parse(&sealed).unwrap();
        assert_eq!(env.open(&key(2), b"ctx"), Err(DecryptError));
        // Same key, header relabelled as version 2: the AAD differs, so it fails.
        let relabelled = sealed.replacen("ssm:v1:", "ssm:v2:", 1);
        let env2 = Envelope::parse(&relabelled).unwrap();
        assert_eq!(env2.open(&key(1), b"ctx"), Err(DecryptError));
    }

    #[test]
    fn non_canonical_base64_fails() {
        let sealed = seal(&key(1), v(1), b"x", b"").unwrap();
        let with_space = format!("{sealed} ");
        assert!(
            Envelope::parse(&with_space)
                .unwrap()
                .open(&key(1), b"")
                .is_err()
        );
        let unpadded = sealed.trim_end_matches('=').to_owned();
        if unpadded != sealed {
            assert!(
                Envelope::parse(&unpadded)
                    .unwrap()
                    .open(&key(1), b"")
                    .is_err()
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn round_trip(plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
                      context in proptest::collection::vec(any::<u8>(), 0..64),
                      version in 1u32..,
                      k in any::<[u8; 32]>()) {
            let key = KeyMaterial::from_bytes(k);
            let sealed = seal(&key, v(version), &plaintext, &context).unwrap();
            let env = Envelope::parse(&sealed).unwrap();
            prop_assert_eq!(env.version, v(version));
            let opened = env.open(&key, &context).unwrap();
            prop_assert_eq!(opened.expose(), &plaintext[..]);
        }

        #[test]
        fn any_bit_flip_fails(plaintext in proptest::collection::vec(any::<u8>(), 0..256),
                              bit in any::<prop::sample::Index>()) {
            let key = key(9);
            let sealed = seal(&key, v(3), &plaintext, b"ctx").unwrap();
            let env = Envelope::parse(&sealed).unwrap();
            let mut raw = STANDARD.decode(env.body).unwrap();
            let i = bit.index(raw.len() * 8);
            raw[i / 8] ^= 1 << (i % 8);
            let tampered = format!("ssm:v3:{}", STANDARD.encode(&raw));
            prop_assert_eq!(Envelope::parse(&tampered).unwrap().open(&key, b"ctx"), Err(DecryptError));
        }

        #[test]
        fn any_truncation_fails(plaintext in proptest::collection::vec(any::<u8>(), 0..256),
                                cut in any::<prop::sample::Index>()) {
            let key = key(9);
            let sealed = seal(&key, v(3), &plaintext, b"").unwrap();
            let env = Envelope::parse(&sealed).unwrap();
            let raw = STANDARD.decode(env.body).unwrap();
            let keep = cut.index(raw.len());
            let truncated = format!("ssm:v3:{}", STANDARD.encode(&raw[..keep]));
            prop_assert_eq!(Envelope::parse(&truncated).unwrap().open(&key, b""), Err(DecryptError));
            // Truncating the text itself (breaking the base64 or the header) fails too.
            let text_cut = cut.index(sealed.len());
            let outcome = Envelope::parse(&sealed[..text_cut]).and_then(|e| e.open(&key, b""));
            prop_assert_eq!(outcome, Err(DecryptError));
        }

        #[test]
        fn any_context_change_fails(context in proptest::collection::vec(any::<u8>(), 0..64),
                                    other in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assume!(context != other);
            let key = key(4);
            let sealed = seal(&key, v(1), b"payload", &context).unwrap();
            prop_assert_eq!(Envelope::parse(&sealed).unwrap().open(&key, &other), Err(DecryptError));
        }

        #[test]
        fn any_header_change_fails(version in 1u32.., other in 1u32..) {
            prop_assume!(version != other);
            let key = key(4);
            let sealed = seal(&key, v(version), b"payload", b"").unwrap();
            let moved = sealed.replacen(&format!("ssm:v{version}:"), &format!("ssm:v{other}:"), 1);
            prop_assert_eq!(Envelope::parse(&moved).unwrap().open(&key, b""), Err(DecryptError));
        }
    }
}

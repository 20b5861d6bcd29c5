//! The ciphertext envelope: AES-256-GCM, self-describing and versioned.
//!
//! ```text
//! envelope  = "ssm:v" version ":" base64( nonce ‖ ciphertext ‖ tag )            (format 1)
//! envelope2 = "ssm2:" name ":v" version ":" base64( nonce ‖ ciphertext ‖ tag )  (format 2)
//! name      = key name, see crate::keyname ([a-z][a-z0-9-]*, 1 ..= 32, no trailing "-")
//! version   = decimal key version, 1 ..= 4294967295, no leading zeros
//! nonce     = 12 random bytes from the OS CSPRNG (96 bits, NIST SP 800-38D §8.2.2)
//! tag       = 16 bytes (128-bit GCM tag)
//! base64    = RFC 4648 §4 standard alphabet with padding, canonical encoding only
//! aad       = header ‖ context      (header: everything before the base64; context: caller
//!                                    bytes, empty if absent)
//! ```
//!
//! The header is bound into the associated data, so a ciphertext moved under another version
//! label or (format 2) another key name fails authentication instead of being tried with
//! another key. The header ends at its last `:`, and neither a name nor a version holds one, so
//! `header ‖ context` splits one way only. An absent context and an empty context are the same
//! context. Format 1 envelopes carry no name: they are the `default` key's.
//!
//! Every failure to open an envelope (bad header, bad base64, truncation, wrong key, wrong
//! context, tampering) is the one [`DecryptError`]: callers learn nothing about which check
//! failed. Which key an envelope names is not secret, and the keyring reports a name that is
//! not the expected one on its own (`OpenError::KeyMismatch`). The full specification with
//! test vectors is `docs/envelope.md`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::keyname::{KeyName, MAX_LEN as NAME_MAX_LEN};
use crate::secret::{KeyMaterial, Plaintext, RandomnessError, fill_random};

/// Prefix of every format 1 envelope.
pub const PREFIX: &str = "ssm:v";
/// Prefix of every format 2 (named) envelope.
pub const PREFIX2: &str = "ssm2:";
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
    /// The key a format 2 envelope names; `None` for format 1 (the `default` key's).
    pub name: Option<KeyName>,
    header: &'a str,
    body: &'a str,
}

impl<'a> Envelope<'a> {
    /// Parses the header only (no base64, no crypto). Any deviation is a [`DecryptError`].
    pub fn parse(text: &'a str) -> Result<Self, DecryptError> {
        let (name, after_name) = match text.strip_prefix(PREFIX2) {
            Some(rest) => {
                let colon = rest.find(':').ok_or(DecryptError)?;
                let name = KeyName::parse(&rest[..colon]).map_err(|_| DecryptError)?;
                let at = PREFIX2.len() + colon + 1;
                if !text[at..].starts_with('v') {
                    return Err(DecryptError);
                }
                (Some(name), at + 1)
            }
            None if text.starts_with(PREFIX) => (None, PREFIX.len()),
            None => return Err(DecryptError),
        };
        let rest = &text[after_name..];
        let colon = rest.find(':').ok_or(DecryptError)?;
        let version = parse_version(&rest[..colon])?;
        let header_len = after_name + colon + 1;
        Ok(Self {
            version,
            name,
            header: &text[..header_len],
            body: &text[header_len..],
        })
    }

    /// Whether `text` looks like an envelope of either format at all (for routing legacy
    /// ciphertexts).
    pub fn is_envelope(text: &str) -> bool {
        text.starts_with("ssm:") || text.starts_with(PREFIX2)
    }

    /// The key this envelope belongs to: its name, or `default` for format 1.
    pub fn key_name(&self) -> KeyName {
        self.name.unwrap_or(KeyName::DEFAULT)
    }

    /// Authenticates and decrypts the body with `key` (the key of [`Self::version`]).
    pub fn open(&self, key: &KeyMaterial, context: &[u8]) -> Result<Plaintext, DecryptError> {
        let (nonce, mut raw) = decode_body(self.body.as_bytes())?;
        let Some(tag_at) = raw.len().checked_sub(TAG_LEN) else {
            return Err(DecryptError);
        };
        // Decrypt in place: ciphertext ‖ tag becomes the plaintext, with no second buffer.
        let (body, tag) = raw.split_at_mut(tag_at);
        let tag: &[u8; TAG_LEN] = (&*tag).try_into().map_err(|_| DecryptError)?;
        let result = with_associated_data(self.header.as_bytes(), context, |aad| {
            aead::open_in_place(key, &nonce, aad, body, tag)
        });
        raw.truncate(tag_at);
        // Wrapped before the result is checked, so a failed open's buffer is zeroized too.
        let plaintext = Plaintext::new(raw);
        result?;
        Ok(plaintext)
    }
}

/// A canonical decimal version: 1 to 10 digits, no leading zero, at most `u32::MAX`.
pub(crate) fn parse_version(digits: &str) -> Result<KeyVersion, DecryptError> {
    let canonical = !digits.is_empty()
        && digits.len() <= 10
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if !canonical {
        return Err(DecryptError);
    }
    digits
        .parse::<u32>()
        .ok()
        .and_then(KeyVersion::new)
        .ok_or(DecryptError)
}

/// Base64 characters of the nonce: 12 bytes are exactly four 3-byte groups.
const NONCE_B64_LEN: usize = NONCE_LEN / 3 * 4;

/// Bodies up to this many characters decode in one call and then move `ciphertext ‖ tag` down
/// over the nonce (a few kilobytes at most); longer ones decode the nonce apart, so that a
/// large plaintext is never moved.
const ONE_CALL_BODY: usize = 4096;

/// Decodes `nonce ‖ ciphertext ‖ tag` into the nonce and a buffer holding `ciphertext ‖ tag`.
fn decode_body(body: &[u8]) -> Result<([u8; NONCE_LEN], Vec<u8>), DecryptError> {
    let mut nonce = [0u8; NONCE_LEN];
    if body.len() <= ONE_CALL_BODY {
        let mut raw = STANDARD.decode(body).map_err(|_| DecryptError)?;
        let head = raw.get(..NONCE_LEN).ok_or(DecryptError)?;
        nonce.copy_from_slice(head);
        raw.copy_within(NONCE_LEN.., 0);
        raw.truncate(raw.len() - NONCE_LEN);
        return Ok((nonce, raw));
    }
    // The nonce is exactly the body's first 16 base64 characters (12 bytes, no padding), so it
    // decodes on its own. Both parts are canonical standard base64 exactly when the whole body
    // is (padding only at the very end).
    let (nonce_b64, rest_b64) = body.split_at_checked(NONCE_B64_LEN).ok_or(DecryptError)?;
    let decoded = STANDARD
        .decode_slice(nonce_b64, &mut nonce)
        .map_err(|_| DecryptError)?;
    if decoded != NONCE_LEN {
        return Err(DecryptError);
    }
    let raw = STANDARD.decode(rest_b64).map_err(|_| DecryptError)?;
    Ok((nonce, raw))
}

/// Seals `plaintext` under `key` (version `version`) with a fresh random nonce (format 1).
pub fn seal(
    key: &KeyMaterial,
    version: KeyVersion,
    plaintext: &[u8],
    context: &[u8],
) -> Result<String, EncryptError> {
    seal_under(key, &Header::v1(version), plaintext, context)
}

/// Seals `plaintext` under the key `name` (version `version`) with a fresh random nonce
/// (format 2: the name is in the header and so in the associated data).
pub fn seal_named(
    key: &KeyMaterial,
    name: &KeyName,
    version: KeyVersion,
    plaintext: &[u8],
    context: &[u8],
) -> Result<String, EncryptError> {
    seal_under(key, &Header::named(name, version), plaintext, context)
}

fn seal_under(
    key: &KeyMaterial,
    header: &Header,
    plaintext: &[u8],
    context: &[u8],
) -> Result<String, EncryptError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    seal_header(key, header.as_bytes(), nonce, plaintext, context)
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
    seal_header(
        key,
        Header::v1(version).as_bytes(),
        nonce,
        plaintext,
        context,
    )
}

/// [`seal_named`] with a caller-chosen nonce; only for test vectors, as [`seal_with_nonce`].
pub fn seal_named_with_nonce(
    key: &KeyMaterial,
    name: &KeyName,
    version: KeyVersion,
    nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
    context: &[u8],
) -> Result<String, EncryptError> {
    let header = Header::named(name, version);
    seal_header(key, header.as_bytes(), nonce, plaintext, context)
}

fn seal_header(
    key: &KeyMaterial,
    header: &[u8],
    nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
    context: &[u8],
) -> Result<String, EncryptError> {
    // Encrypt from the caller's plaintext straight into `nonce ‖ ciphertext ‖ tag`: the
    // input is read once, by the cipher, and not copied first.
    let raw_len = NONCE_LEN + plaintext.len() + TAG_LEN;
    let mut raw = vec![0u8; raw_len];
    let (nonce_out, rest) = raw.split_at_mut(NONCE_LEN);
    nonce_out.copy_from_slice(&nonce);
    let (body, tag_out) = rest.split_at_mut(plaintext.len());
    let tag = with_associated_data(header, context, |aad| {
        aead::seal(key, &nonce, aad, plaintext, body)
    })?;
    tag_out.copy_from_slice(&tag);
    // One exact-size output: header, then the base64 written in place (no growing string,
    // no chunked copies).
    let mut out = vec![0u8; header.len() + encoded_len(raw_len)];
    out[..header.len()].copy_from_slice(header);
    let written = STANDARD
        .encode_slice(&raw, &mut out[header.len()..])
        .map_err(|_| EncryptError::TooLong)?;
    out.truncate(header.len() + written);
    String::from_utf8(out).map_err(|_| EncryptError::TooLong)
}

/// Length of the format 1 envelope for a plaintext of `len` bytes (for size limits and
/// benchmarks).
pub fn sealed_len(version: KeyVersion, len: usize) -> usize {
    Header::v1(version).as_bytes().len() + encoded_len(NONCE_LEN + len + TAG_LEN)
}

/// Length of the format 2 envelope of key `name` for a plaintext of `len` bytes.
pub fn sealed_named_len(name: &KeyName, version: KeyVersion, len: usize) -> usize {
    Header::named(name, version).as_bytes().len() + encoded_len(NONCE_LEN + len + TAG_LEN)
}

fn encoded_len(raw_len: usize) -> usize {
    raw_len.div_ceil(3) * 4
}

/// Longest header: `"ssm2:"`, a name, `":v"`, ten digits, `":"`.
const HEADER_MAX: usize = PREFIX2.len() + NAME_MAX_LEN + 2 + 10 + 1;

/// An envelope header, formatted on the stack.
struct Header {
    buf: [u8; HEADER_MAX],
    len: usize,
}

impl Header {
    /// `"ssm:v" version ":"`.
    fn v1(version: KeyVersion) -> Self {
        let mut header = Self {
            buf: [0; HEADER_MAX],
            len: 0,
        };
        header.push(PREFIX.as_bytes());
        header.version(version);
        header
    }

    /// `"ssm2:" name ":v" version ":"`.
    fn named(name: &KeyName, version: KeyVersion) -> Self {
        let mut header = Self {
            buf: [0; HEADER_MAX],
            len: 0,
        };
        header.push(PREFIX2.as_bytes());
        header.push(name.as_str().as_bytes());
        header.push(b":v");
        header.version(version);
        header
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// The version's decimal digits and the closing `:`.
    fn version(&mut self, version: KeyVersion) {
        let mut digits = [0u8; 10];
        let mut at = digits.len();
        let mut n = version.get();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[at..]);
        self.push(b":");
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Runs `f` on `header ‖ context` (the associated data), built on the stack when it is short.
fn with_associated_data<R>(header: &[u8], context: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    const INLINE: usize = 128;
    let len = header.len() + context.len();
    if len <= INLINE {
        let mut aad = [0u8; INLINE];
        aad[..header.len()].copy_from_slice(header);
        aad[header.len()..len].copy_from_slice(context);
        f(&aad[..len])
    } else {
        let mut aad = Vec::with_capacity(len);
        aad.extend_from_slice(header);
        aad.extend_from_slice(context);
        f(&aad)
    }
}

/// The AEAD layer under the envelope: AES-256-GCM, 96-bit nonce, 128-bit tag, in place.
///
/// The envelope adds the header, the AAD layout and the encoding around these two functions and
/// nothing else, so vectors for plain AES-256-GCM (Wycheproof's, in `tests/wycheproof.rs`) test
/// exactly the cryptography every envelope goes through. The sizes are in the types: a key,
/// nonce or tag of another length cannot reach the cipher.
pub mod aead {
    use aes_gcm::aead::AeadInOut;
    use aes_gcm::aead::inout::InOutBuf;
    use aes_gcm::{Nonce, Tag};

    use super::{DecryptError, EncryptError, NONCE_LEN, TAG_LEN};
    use crate::secret::KeyMaterial;

    /// Encrypts `buffer` in place and returns the tag over `aad` and the ciphertext.
    pub fn seal_in_place(
        key: &KeyMaterial,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buffer: &mut [u8],
    ) -> Result<[u8; TAG_LEN], EncryptError> {
        let tag = key
            .aead()
            .encrypt_inout_detached(&Nonce::from(*nonce), aad, buffer.into())
            .map_err(|_| EncryptError::TooLong)?;
        Ok(tag.into())
    }

    /// Encrypts `plaintext` into `out` (of the same length) and returns the tag over `aad` and
    /// the ciphertext.
    pub fn seal(
        key: &KeyMaterial,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], EncryptError> {
        let buffer = InOutBuf::new(plaintext, out).map_err(|_| EncryptError::TooLong)?;
        let tag = key
            .aead()
            .encrypt_inout_detached(&Nonce::from(*nonce), aad, buffer)
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
        key.aead()
            .decrypt_inout_detached(&Nonce::from(*nonce), aad, buffer.into(), &Tag::from(*tag))
            .map_err(|_| DecryptError)
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

    #[test]
    fn padding_inside_the_nonce_is_refused() {
        // Long bodies decode the nonce's 16 characters on their own: padding there (which a
        // whole-body decode refuses as padding before the end) must not make a shorter nonce
        // acceptable. Short bodies (one decode call) are held to the same.
        for len in [7, ONE_CALL_BODY, 3 * ONE_CALL_BODY] {
            nonce_padding_and_cuts_are_refused(&vec![0x3Cu8; len]);
        }
    }

    fn nonce_padding_and_cuts_are_refused(payload: &[u8]) {
        let sealed = seal_with_nonce(&key(1), v(1), [7; NONCE_LEN], payload, b"").unwrap();
        let body = &sealed["ssm:v1:".len()..];
        for padded in ["AAAAAAAAAAAAAA==", "AAAAAAAAAAAAAAA="] {
            let text = format!("ssm:v1:{padded}{}", &body[NONCE_B64_LEN..]);
            assert_eq!(
                Envelope::parse(&text).unwrap().open(&key(1), b""),
                Err(DecryptError)
            );
        }
        // Shorter than the nonce, exactly the nonce, nonce and a partial tag: all refused.
        for cut in [0, 4, NONCE_B64_LEN, NONCE_B64_LEN + 4, body.len() - 4] {
            let text = format!("ssm:v1:{}", &body[..cut]);
            assert_eq!(
                Envelope::parse(&text).unwrap().open(&key(1), b""),
                Err(DecryptError)
            );
        }
        assert_eq!(
            Envelope::parse(&sealed)
                .unwrap()
                .open(&key(1), b"")
                .unwrap()
                .expose(),
            payload
        );
        let mut flipped = sealed.into_bytes();
        let last = flipped.len() - 8;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(
            Envelope::parse(&flipped).unwrap().open(&key(1), b""),
            Err(DecryptError)
        );
    }

    #[test]
    fn long_contexts_and_every_header_width() {
        // The associated data is built on the stack up to 128 bytes and on the heap beyond.
        for context_len in [0, 1, 111, 112, 113, 128, 500] {
            let context = vec![0xA5u8; context_len];
            for version in [1, 9, 10, 4_000_000_000, u32::MAX] {
                let sealed = seal(&key(3), v(version), b"x", &context).unwrap();
                assert!(sealed.starts_with(&format!("ssm:v{version}:")));
                let env = Envelope::parse(&sealed).unwrap();
                assert_eq!(env.open(&key(3), &context).unwrap().expose(), b"x");
                let mut other = context.clone();
                other.push(0);
                assert_eq!(env.open(&key(3), &other), Err(DecryptError));
            }
        }
    }

    #[test]
    fn a_cloned_or_zeroized_key_seals_with_its_own_bytes() {
        use zeroize::Zeroize;
        let original = key(5);
        let sealed = seal(&original, v(1), b"abc", b"").unwrap();
        let copy = original.clone();
        let env = Envelope::parse(&sealed).unwrap();
        assert_eq!(env.open(&copy, b"").unwrap().expose(), b"abc");
        // Zeroizing drops the expanded schedule too: the key is now the all-zero key.
        let mut wiped = original.clone();
        assert!(env.open(&wiped, b"").is_ok());
        wiped.zeroize();
        assert_eq!(wiped.expose(), &[0u8; 32]);
        assert_eq!(env.open(&wiped, b""), Err(DecryptError));
        assert!(env.open(&KeyMaterial::from_bytes([0; 32]), b"").is_err());
        let zero_sealed = seal(&wiped, v(1), b"abc", b"").unwrap();
        let zero_env = Envelope::parse(&zero_sealed).unwrap();
        assert!(
            zero_env
                .open(&KeyMaterial::from_bytes([0; 32]), b"")
                .is_ok()
        );
    }

    fn name(text: &str) -> KeyName {
        KeyName::parse(text).unwrap()
    }

    #[test]
    fn named_header_parsing_is_strict() {
        for bad in [
            "ssm2:",
            "ssm2:payments",
            "ssm2:payments:",
            "ssm2:payments:v",
            "ssm2:payments:1:AAAA",
            "ssm2:payments:v0:AAAA",
            "ssm2:payments:v01:AAAA",
            "ssm2::v1:AAAA",
            "ssm2:Payments:v1:AAAA",
            "ssm2:pay_ments:v1:AAAA",
            "ssm2:payments-:v1:AAAA",
            "ssm2:payments:v1",
            "ssm2:payments:v4294967296:AAAA",
            &format!("ssm2:{}:v1:AAAA", "k".repeat(33)),
            "SSM2:payments:v1:AAAA",
        ] {
            assert_eq!(Envelope::parse(bad), Err(DecryptError), "{bad:?}");
        }
        let env = Envelope::parse("ssm2:orders-eu:v4294967295:AAAA").unwrap();
        assert_eq!(env.version.get(), u32::MAX);
        assert_eq!(env.name, Some(name("orders-eu")));
        assert_eq!(env.key_name(), name("orders-eu"));
        let v1 = Envelope::parse("ssm:v3:AAAA").unwrap();
        assert_eq!((v1.name, v1.key_name()), (None, KeyName::DEFAULT));
        assert!(Envelope::is_envelope("ssm2:x:v1:"));
    }

    #[test]
    fn named_envelopes_round_trip_and_bind_the_name() {
        let longest = "k".repeat(32);
        for key_name in ["default", "payments", longest.as_str()] {
            let n = name(key_name);
            for version in [1, 10, u32::MAX] {
                let sealed = seal_named(&key(1), &n, v(version), b"secret", b"ctx").unwrap();
                assert!(sealed.starts_with(&format!("ssm2:{key_name}:v{version}:")));
                assert_eq!(sealed.len(), sealed_named_len(&n, v(version), 6));
                let env = Envelope::parse(&sealed).unwrap();
                assert_eq!((env.name, env.version), (Some(n), v(version)));
                assert_eq!(env.open(&key(1), b"ctx").unwrap().expose(), b"secret");
                assert_eq!(env.open(&key(1), b"other"), Err(DecryptError));
            }
        }
        // A format 2 envelope relabelled as format 1 (same key, version and body) fails.
        let sealed = seal_named(&key(1), &KeyName::DEFAULT, v(1), b"x", b"").unwrap();
        let as_v1 = sealed.replacen("ssm2:default:v1:", "ssm:v1:", 1);
        assert_eq!(
            Envelope::parse(&as_v1).unwrap().open(&key(1), b""),
            Err(DecryptError)
        );
        let v1 = seal(&key(1), v(1), b"x", b"").unwrap();
        let as_v2 = v1.replacen("ssm:v1:", "ssm2:default:v1:", 1);
        assert_eq!(
            Envelope::parse(&as_v2).unwrap().open(&key(1), b""),
            Err(DecryptError)
        );
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
        fn relabelling_the_name_fails(a in "[a-z][a-z0-9-]{0,30}[a-z0-9]",
                                      b in "[a-z][a-z0-9-]{0,30}[a-z0-9]",
                                      version in 1u32..,
                                      context in proptest::collection::vec(any::<u8>(), 0..32)) {
            prop_assume!(a != b);
            let key = key(6);
            let sealed = seal_named(&key, &name(&a), v(version), b"payload", &context).unwrap();
            let moved = sealed.replacen(&format!("ssm2:{a}:"), &format!("ssm2:{b}:"), 1);
            let env = Envelope::parse(&moved).unwrap();
            prop_assert_eq!(env.name, Some(name(&b)));
            prop_assert_eq!(env.open(&key, &context), Err(DecryptError));
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

//! Versioned MACs: HMAC-SHA256 under a key derived from one key version's material.
//!
//! ```text
//! mac_key = HKDF-SHA256(salt = none, ikm = the version's 32-byte material,
//!                       info = "serverless-ssm/hmac-sha256/v1", length = 32)
//! header  = "ssm-mac:" name ":v" version ":"
//! tag     = HMAC-SHA256(mac_key, header ‖ input)
//! mac     = header ‖ base64(tag)          (RFC 4648 §4, padded: 44 characters)
//! ```
//!
//! The MAC key is never the AES key itself: HKDF with a purpose label separates the two uses of
//! one version's material. The header (key name and version) is MACed with the input, so a tag
//! cannot be moved to another key or version. Verifying compares tags in constant time. The
//! specification with test vectors is in `docs/envelope.md`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::envelope::{KeyVersion, parse_version};
use crate::keyname::{KeyName, MAX_LEN as NAME_MAX_LEN};
use crate::secret::KeyMaterial;

/// Prefix of every MAC.
pub const PREFIX: &str = "ssm-mac:";
/// HKDF `info`: names the purpose (and this construction's version) of the derived key.
pub const HKDF_INFO: &[u8] = b"serverless-ssm/hmac-sha256/v1";
/// Tag length in bytes (HMAC-SHA256).
pub const TAG_LEN: usize = 32;
/// Base64 characters of a tag: 32 bytes, padded.
const TAG_B64_LEN: usize = TAG_LEN.div_ceil(3) * 4;

/// A MAC's parts: the key and version it names, and its tag. Parsing checks the form only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacText {
    pub name: KeyName,
    pub version: KeyVersion,
    tag: [u8; TAG_LEN],
}

impl MacText {
    /// Parses `ssm-mac:{name}:v{version}:{base64 tag}`; `None` for anything else (a
    /// non-canonical version or base64, a tag of another length).
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(PREFIX)?;
        let (name, rest) = rest.split_once(':')?;
        let name = KeyName::parse(name).ok()?;
        let (version, tag_b64) = rest.strip_prefix('v')?.split_once(':')?;
        let version = parse_version(version).ok()?;
        if tag_b64.len() != TAG_B64_LEN {
            return None;
        }
        let mut tag = [0u8; TAG_LEN];
        let mut decoded = [0u8; TAG_LEN + 3];
        let len = STANDARD.decode_slice(tag_b64, &mut decoded).ok()?;
        tag.copy_from_slice(decoded.get(..len).filter(|d| d.len() == TAG_LEN)?);
        Some(Self { name, version, tag })
    }

    /// The version a MAC text names, if it is one (for deciding on an early keyring refresh).
    pub fn named_version(text: &str) -> Option<KeyVersion> {
        Self::parse(text).map(|mac| mac.version)
    }
}

/// The MAC key of one version's material (HKDF-SHA256, see the module docs).
pub fn mac_key(material: &KeyMaterial) -> Zeroizing<[u8; 32]> {
    let mut okm = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expanding cannot fail.
    let _ = Hkdf::<Sha256>::new(None, material.expose()).expand(HKDF_INFO, okm.as_mut());
    okm
}

/// The MAC of `input` under key `name`, version `version`, whose material is `material`.
pub fn sign(material: &KeyMaterial, name: &KeyName, version: KeyVersion, input: &[u8]) -> String {
    let header = header(name, version);
    let tag = hmac(material, &header, input).finalize().into_bytes();
    let mut out = String::with_capacity(header.len() + TAG_B64_LEN);
    out.push_str(&header);
    STANDARD.encode_string(tag, &mut out);
    out
}

/// Whether `mac` is the MAC of `input` under `material` (the key of `mac.version`), compared
/// in constant time. The caller has already checked that `mac` names the right key.
pub fn verify(material: &KeyMaterial, mac: &MacText, input: &[u8]) -> bool {
    let header = header(&mac.name, mac.version);
    hmac(material, &header, input)
        .verify_slice(&mac.tag)
        .is_ok()
}

/// Longest header: `"ssm-mac:"`, a name, `":v"`, ten digits, `":"`.
const HEADER_MAX: usize = PREFIX.len() + NAME_MAX_LEN + 2 + 10 + 1;

fn header(name: &KeyName, version: KeyVersion) -> String {
    let mut header = String::with_capacity(HEADER_MAX);
    header.push_str(PREFIX);
    header.push_str(name.as_str());
    header.push_str(":v");
    header.push_str(&version.to_string());
    header.push(':');
    header
}

fn hmac(material: &KeyMaterial, header: &str, input: &[u8]) -> Hmac<Sha256> {
    let key = mac_key(material);
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_ref())
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    mac.update(header.as_bytes());
    mac.update(input);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn material(byte: u8) -> KeyMaterial {
        KeyMaterial::from_bytes([byte; 32])
    }

    fn v(n: u32) -> KeyVersion {
        KeyVersion::new(n).unwrap()
    }

    fn name(text: &str) -> KeyName {
        KeyName::parse(text).unwrap()
    }

    #[test]
    fn the_mac_key_is_hkdf_and_not_the_aes_key() {
        // RFC 5869 has no vector with an empty salt and this info; the independent vectors in
        // tests/vectors/mac.json pin the derivation. Here: derived, deterministic, distinct.
        let key = mac_key(&material(7));
        assert_ne!(key.as_ref(), material(7).expose());
        assert_eq!(key.as_ref(), mac_key(&material(7)).as_ref());
        assert_ne!(key.as_ref(), mac_key(&material(8)).as_ref());
    }

    #[test]
    fn sign_parse_verify() {
        let mac = sign(&material(1), &name("payments"), v(3), b"hello");
        assert!(mac.starts_with("ssm-mac:payments:v3:"));
        assert_eq!(mac.len(), "ssm-mac:payments:v3:".len() + 44);
        let parsed = MacText::parse(&mac).unwrap();
        assert_eq!((parsed.name, parsed.version), (name("payments"), v(3)));
        assert!(verify(&material(1), &parsed, b"hello"));
        assert!(!verify(&material(1), &parsed, b"hellO"));
        assert!(!verify(&material(2), &parsed, b"hello"));
        assert_eq!(MacText::named_version(&mac), Some(v(3)));
    }

    #[test]
    fn parsing_is_strict() {
        let mac = sign(&material(1), &name("k"), v(1), b"");
        let tag = &mac["ssm-mac:k:v1:".len()..];
        for bad in [
            String::new(),
            "ssm-mac:".into(),
            format!("ssm-mac:k:v1:{}", &tag[..43]),
            format!("ssm-mac:k:v1:{tag}A"),
            format!("ssm-mac:k:v1:{}", tag.replace('=', "")),
            format!("ssm-mac:k:v01:{tag}"),
            format!("ssm-mac:k:v0:{tag}"),
            format!("ssm-mac:k:1:{tag}"),
            format!("ssm-mac:K:v1:{tag}"),
            format!("ssm-mac::v1:{tag}"),
            format!("ssm-mac:k:v1:{}", tag.replace('=', "A")),
            format!("ssm-mac:k:v1:{} ", &tag[..43]),
            format!("SSM-MAC:k:v1:{tag}"),
            format!("ssm2:k:v1:{tag}"),
        ] {
            assert_eq!(MacText::parse(&bad), None, "{bad:?}");
        }
        // The last character carries 4 unused bits: only the canonical spelling parses.
        let last = tag.as_bytes()[42];
        let bumped = format!(
            "ssm-mac:k:v1:{}{}=",
            &tag[..42],
            char::from(if last == b'A' { b'B' } else { last ^ 1 })
        );
        if let Some(parsed) = MacText::parse(&bumped) {
            assert!(!verify(&material(1), &parsed, b""));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn moving_a_tag_to_another_key_or_version_fails(
            input in proptest::collection::vec(any::<u8>(), 0..64),
            version in 1u32..,
            other in 1u32..,
        ) {
            let mac = sign(&material(9), &name("a"), v(version), &input);
            let parsed = MacText::parse(&mac).unwrap();
            prop_assert!(verify(&material(9), &parsed, &input));
            let renamed = mac.replacen("ssm-mac:a:", "ssm-mac:b:", 1);
            prop_assert!(!verify(&material(9), &MacText::parse(&renamed).unwrap(), &input));
            if other != version {
                let moved = mac.replacen(&format!(":v{version}:"), &format!(":v{other}:"), 1);
                prop_assert!(!verify(&material(9), &MacText::parse(&moved).unwrap(), &input));
            }
        }
    }
}

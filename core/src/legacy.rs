//! The original sample's ciphertexts, readable only so that they can be migrated.
//!
//! Format: standard base64 of a 16-byte IV followed by AES-256-CFB8 ciphertext, with the key
//! being the 32 ASCII bytes of `aes_key` in the old `{"aes_key": "..."}` secret. CFB8 has no
//! authentication: any input "decrypts", so callers can't tell a wrong key from a right one.
//! That is why legacy input is accepted only where a legacy key is configured, and why
//! `/v1/rewrap` exists to move such data to the authenticated envelope.

use std::fmt;

use aes::Aes256;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cfb8::cipher::KeyIvInit;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::envelope::DecryptError;
use crate::secret::{KEY_LEN, Plaintext};

/// IV length of the legacy format.
pub const IV_LEN: usize = 16;

/// The legacy `aes_key`: exactly 32 ASCII characters, used as raw key bytes.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct LegacyKey(String);

impl LegacyKey {
    /// Accepts exactly 32 ASCII characters, as the original sample required.
    pub fn new(text: String) -> Result<Self, String> {
        if text.len() == KEY_LEN && text.is_ascii() {
            Ok(Self(text))
        } else {
            let len = text.len();
            let mut text = text;
            text.zeroize();
            Err(format!(
                "legacy aes_key must be {KEY_LEN} ASCII characters, got {len} bytes"
            ))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Decrypts a legacy ciphertext. Errors only on malformed input (bad base64, too short):
    /// CFB8 cannot detect a wrong key or tampering.
    pub fn decrypt(&self, text: &str) -> Result<Plaintext, DecryptError> {
        let raw = STANDARD.decode(text.trim()).map_err(|_| DecryptError)?;
        if raw.len() < IV_LEN {
            return Err(DecryptError);
        }
        let (iv, body) = raw.split_at(IV_LEN);
        let mut buf = body.to_vec();
        cfb8::Decryptor::<Aes256>::new_from_slices(self.0.as_bytes(), iv)
            .map_err(|_| DecryptError)?
            .decrypt(&mut buf);
        Ok(Plaintext::new(buf))
    }

    /// Encrypts in the legacy format. Only for building test fixtures of old data.
    pub fn encrypt_for_tests(&self, iv: [u8; IV_LEN], plaintext: &[u8]) -> String {
        let mut buf = plaintext.to_vec();
        let encryptor = cfb8::Encryptor::<Aes256>::new_from_slices(self.0.as_bytes(), &iv);
        if let Ok(mut encryptor) = encryptor {
            encryptor.encrypt(&mut buf);
        }
        let mut raw = iv.to_vec();
        raw.extend_from_slice(&buf);
        STANDARD.encode(raw)
    }
}

impl fmt::Debug for LegacyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LegacyKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Produced independently with Python's `cryptography` (AES, modes.CFB8), see docs/envelope.md.
    const VECTOR_KEY: &str = "0123456789abcdef0123456789abcdef";
    const VECTOR_CIPHER: &str = "AAECAwQFBgcICQoLDA0ODz+pYUMoIl5syJQpDlMn3JNhLw==";
    const VECTOR_TEXT: &str = "legacy sample text";

    #[test]
    fn decrypts_the_python_vector() {
        let key = LegacyKey::new(VECTOR_KEY.to_owned()).unwrap();
        let text = key.decrypt(VECTOR_CIPHER).unwrap();
        assert_eq!(text.expose(), VECTOR_TEXT.as_bytes());
        assert_eq!(
            key.encrypt_for_tests(core::array::from_fn(|i| i as u8), VECTOR_TEXT.as_bytes()),
            VECTOR_CIPHER
        );
    }

    #[test]
    fn rejects_bad_keys_and_input() {
        assert!(LegacyKey::new("short".into()).is_err());
        assert!(LegacyKey::new("é".repeat(16)).is_err());
        let key = LegacyKey::new(VECTOR_KEY.to_owned()).unwrap();
        assert!(key.decrypt("not base64!").is_err());
        assert!(key.decrypt("AAAA").is_err());
        assert_eq!(format!("{key:?}"), "LegacyKey(<redacted>)");
    }
}

//! Secret values as types: their `Debug` never shows the value and their memory is zeroized on drop.

use std::fmt;
use std::sync::OnceLock;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length in bytes of an AES-256 key.
pub const KEY_LEN: usize = 32;

/// 256 bits of key material. Never printable; zeroized on drop; compared in constant time.
///
/// The AES-256-GCM key schedule (round keys and the GHASH key powers) is built on the first
/// envelope operation and kept beside the bytes, so a long-lived key (a keyring's) expands once,
/// not per request: expanding cost more than sealing 64 bytes. It is zeroized on drop with the
/// bytes (`aes-gcm`'s `zeroize` feature), is never cloned (a clone expands again) and is not
/// part of equality.
pub struct KeyMaterial {
    bytes: [u8; KEY_LEN],
    aead: OnceLock<Box<Aes256Gcm>>,
}

impl KeyMaterial {
    /// Wraps existing bytes (copied; the caller should zeroize its own copy).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self {
            bytes,
            aead: OnceLock::new(),
        }
    }

    /// Parses exactly [`KEY_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(Self::from_bytes(array))
    }

    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, RandomnessError> {
        let mut bytes = [0u8; KEY_LEN];
        fill_random(&mut bytes)?;
        let key = Self::from_bytes(bytes);
        bytes.zeroize();
        Ok(key)
    }

    /// The raw bytes, for the cipher and for serialization into the secret only.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// This key's AES-256-GCM cipher, expanded on first use.
    pub(crate) fn aead(&self) -> &Aes256Gcm {
        self.aead
            .get_or_init(|| Box::new(Aes256Gcm::new(&self.bytes.into())))
    }
}

impl Clone for KeyMaterial {
    fn clone(&self) -> Self {
        Self::from_bytes(self.bytes)
    }
}

impl Zeroize for KeyMaterial {
    fn zeroize(&mut self) {
        self.bytes.zeroize();
        // Dropping the schedule zeroizes it.
        self.aead.take();
    }
}

impl Drop for KeyMaterial {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl ZeroizeOnDrop for KeyMaterial {}

impl PartialEq for KeyMaterial {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.bytes.ct_eq(&other.bytes).into()
    }
}

impl Eq for KeyMaterial {}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial(<redacted>)")
    }
}

/// Decrypted or caller-supplied plaintext: zeroized on drop (its bytes and the buffer's spare
/// capacity), never printed.
///
/// Not `Zeroizing<Vec<u8>>`: `Vec`'s own `zeroize` clears the elements one volatile byte store
/// at a time, which was 14 % of opening a 1 KiB envelope and about a third of a 1 MiB one (the
/// bulk of the gap to ring there). A byte slice's `zeroize` is a `memset` held in place by
/// zeroize's optimisation barrier, the same guarantee at memory speed.
#[derive(Clone, PartialEq, Eq)]
pub struct Plaintext(Vec<u8>);

impl Plaintext {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Zeroize for Plaintext {
    fn zeroize(&mut self) {
        // The spare capacity first: clearing first would make all of it spare.
        self.0.spare_capacity_mut().zeroize();
        self.0.as_mut_slice().zeroize();
        self.0.clear();
    }
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for Plaintext {}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plaintext(<{} bytes redacted>)", self.0.len())
    }
}

/// The operating system's random number generator failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomnessError;

/// Fills `buf` from the OS CSPRNG (getrandom).
pub fn fill_random(buf: &mut [u8]) -> Result<(), RandomnessError> {
    getrandom::fill(buf).map_err(|_| RandomnessError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroizing_a_plaintext_empties_it_and_leaves_its_clone() {
        let mut text = Plaintext::new(vec![0x5A; 4096]);
        let copy = text.clone();
        text.zeroize();
        assert!(text.is_empty());
        assert_eq!(copy.expose(), &[0x5A; 4096][..]);
    }

    #[test]
    fn debug_never_shows_key_or_plaintext() {
        let key = KeyMaterial::from_bytes([0xAB; KEY_LEN]);
        let shown = format!("{key:?}");
        assert_eq!(shown, "KeyMaterial(<redacted>)");
        let text = Plaintext::new(b"hunter2".to_vec());
        assert!(!format!("{text:?}").contains("hunter2"));
    }

    #[test]
    fn generated_keys_differ() {
        let a = KeyMaterial::generate().unwrap();
        let b = KeyMaterial::generate().unwrap();
        assert_ne!(a, b);
        assert_ne!(a.expose(), &[0u8; KEY_LEN]);
    }
}

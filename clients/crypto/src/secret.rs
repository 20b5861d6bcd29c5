//! Plaintexts and data keys handed back to the caller.

/// Bytes that are secret (a decrypted plaintext, a data key): `Debug` shows none of them, and
/// they are zeroed when dropped. Read them with [`secrecy::ExposeSecret::expose_secret`].
pub type SecretBytes = secrecy::SecretSlice<u8>;

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    #[test]
    fn debug_never_shows_the_bytes() {
        let secret = SecretBytes::from(b"hunter2".to_vec());
        let shown = format!("{secret:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("104"),
            "{shown}"
        );
        assert_eq!(secret.expose_secret(), b"hunter2");
    }
}

//! The keyring JSON: parsing never panics; what parses serializes to JSON that parses back to
//! the same keyring and the same text; a keyring with a primary version encrypts to what it
//! decrypts, under that version.

use ssm_core::keyring::Keyring;

pub(crate) fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(ring) = Keyring::from_json(text) else {
        return;
    };
    let json = ring.to_json();
    let again = Keyring::from_json(&json).expect("a serialized keyring parses");
    assert_eq!(
        again, ring,
        "parse -> serialize -> parse changed the keyring"
    );
    assert_eq!(*again.to_json(), *json, "serializing is not stable");

    let versions: Vec<_> = ring.versions().collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions out of order"
    );
    assert_eq!(ring.latest(), versions.last().copied());
    if let Some(primary) = ring.primary() {
        assert!(versions.contains(&primary), "primary version has no key");
        let plaintext = &data[..data.len().min(64)];
        let sealed = ring
            .encrypt(plaintext, b"fuzz")
            .expect("a keyring with a primary encrypts");
        assert_eq!(sealed.version, primary);
        if primary >= ring.min_decryption_version() {
            let (opened, version) = ring
                .decrypt(&sealed.ciphertext, b"fuzz")
                .expect("the keyring decrypts what it encrypted");
            assert_eq!(opened.expose(), plaintext);
            assert_eq!(version, Some(primary));
        }
        assert!(ring.decrypt(&sealed.ciphertext, b"other").is_err());
    }
}

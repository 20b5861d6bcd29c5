//! Every Wycheproof AES-GCM vector through the envelope's AEAD layer (`envelope::aead`).
//!
//! Vectors for AES-256 with a 96-bit nonce and a 128-bit tag (the only parameters an envelope
//! can carry) must seal to the expected ciphertext and tag when valid, and must fail to open when
//! invalid. Every other vector has a key, nonce or tag length that the layer's types refuse to
//! hold, which is checked too, so each vector of the set is accounted for.

use ssm_core::envelope::{NONCE_LEN, TAG_LEN, aead};
use ssm_core::secret::KeyMaterial;
use wycheproof::TestResult;
use wycheproof::aead::{TestName, TestSet};

#[derive(Debug, Default)]
struct Tally {
    valid: usize,
    invalid: usize,
    acceptable: usize,
    other_sizes: usize,
}

#[test]
fn every_aes_gcm_vector() {
    let set = TestSet::load(TestName::AesGcm).expect("the AES-GCM set loads");
    let mut tally = Tally::default();
    let mut total = 0;
    for group in &set.test_groups {
        for test in &group.tests {
            total += 1;
            let key = KeyMaterial::from_slice(&test.key);
            let nonce = <&[u8; NONCE_LEN]>::try_from(test.nonce.as_slice()).ok();
            let tag = <&[u8; TAG_LEN]>::try_from(test.tag.as_slice()).ok();
            let (Some(key), Some(nonce), Some(tag)) = (key, nonce, tag) else {
                // Not expressible: the layer cannot be handed these sizes at all.
                assert!(
                    group.key_size != 256 || group.nonce_size != 96 || group.tag_size != 128,
                    "tcId {}: a 256/96/128 vector was not representable",
                    test.tc_id
                );
                tally.other_sizes += 1;
                continue;
            };
            let id = test.tc_id;

            // Open: only valid vectors authenticate, and they give back the message.
            let mut buffer = test.ct.to_vec();
            let opened = aead::open_in_place(&key, nonce, &test.aad, &mut buffer, tag);
            // Seal: a valid vector's message seals to exactly its ciphertext and tag.
            let mut sealed = test.pt.to_vec();
            let sealed_tag = aead::seal_in_place(&key, nonce, &test.aad, &mut sealed)
                .expect("Wycheproof messages are far below GCM's length limit");
            let matches = sealed == *test.ct && sealed_tag == *tag;
            match test.result {
                TestResult::Valid => {
                    assert!(opened.is_ok(), "tcId {id}: a valid vector failed to open");
                    assert_eq!(buffer, *test.pt, "tcId {id}: wrong plaintext");
                    assert!(matches, "tcId {id}: seal differs from the vector");
                    tally.valid += 1;
                }
                TestResult::Invalid => {
                    assert!(opened.is_err(), "tcId {id}: an invalid vector opened");
                    assert!(!matches, "tcId {id}: seal reproduced an invalid vector");
                    tally.invalid += 1;
                }
                TestResult::Acceptable => {
                    // Acceptable means either outcome is allowed, but it must be consistent.
                    assert_eq!(opened.is_ok(), matches, "tcId {id}: open and seal disagree");
                    tally.acceptable += 1;
                }
            }
        }
    }
    let counted = tally.valid + tally.invalid + tally.acceptable + tally.other_sizes;
    assert_eq!(counted, total, "every vector is accounted for");
    assert_eq!(total, set.number_of_tests, "the set's own count");
    assert!(tally.valid >= 30 && tally.invalid >= 20, "{tally:?}");
    eprintln!("wycheproof AES-GCM: {total} vectors, {tally:?}");
}

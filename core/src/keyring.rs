//! The keyring: every key version, the primary (encrypting) version and the lowest version
//! still allowed to decrypt. Stored as JSON in one Secrets Manager secret:
//!
//! ```json
//! {
//!   "primary_version": 2,
//!   "min_decryption_version": 1,
//!   "keys": [
//!     {"version": 1, "created_at": "2026-01-01T00:00:00Z", "material": "<base64 of 32 bytes>"},
//!     {"version": 2, "created_at": "2026-02-01T00:00:00Z", "material": "<base64 of 32 bytes>"}
//!   ],
//!   "legacy_aes_key": "<32 ASCII characters, optional>"
//! }
//! ```
//!
//! `{"keys": []}` is an uninitialised keyring (the stack creates the secret so, and the first
//! rotation adds version 1); it is the only document without key versions that parses, apart
//! from the original sample's `{"aes_key": "..."}`, a keyring holding only that legacy key.
//! Anything else without keys (`{}`, `[]`, `null`, an empty list with a `primary_version` or
//! `min_decryption_version`) is refused, so a damaged secret can never pass for an empty one
//! and have a second, different version 1 minted over it. Rotation appends a version and
//! promotes it; nothing is removed except by an explicit [`Keyring::trim`].

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::envelope::{self, DecryptError, EncryptError, Envelope, KeyVersion};
use crate::legacy::LegacyKey;
use crate::secret::{KeyMaterial, Plaintext, RandomnessError};

/// One key version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub created_at: DateTime<Utc>,
    material: KeyMaterial,
}

/// A validated keyring. Cloning copies key material (zeroized when each copy drops).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    keys: BTreeMap<KeyVersion, KeyEntry>,
    primary: Option<KeyVersion>,
    min_decryption: KeyVersion,
    legacy: Option<LegacyKey>,
}

/// Why a keyring document was refused. Messages name the problem, never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("keyring is not valid JSON of the expected shape: {0}")]
    Malformed(String),
    #[error("keyring lists key version {0} twice")]
    DuplicateVersion(KeyVersion),
    #[error("key version {0} is not 32 bytes of standard base64")]
    BadMaterial(KeyVersion),
    #[error("primary_version {0} is not one of the keyring's versions")]
    UnknownPrimary(KeyVersion),
    #[error("keyring has keys but no primary_version")]
    MissingPrimary,
    #[error("min_decryption_version {min} is above primary_version {primary}")]
    MinAbovePrimary {
        min: KeyVersion,
        primary: KeyVersion,
    },
    #[error("{0}")]
    BadLegacyKey(String),
    #[error("key versions are exhausted")]
    VersionsExhausted,
    #[error(
        "keyring has no key versions and is not the uninitialised form {{\"keys\": []}} \
         (nor a legacy {{\"aes_key\": …}} secret)"
    )]
    NotUninitialised,
}

/// Why a keyring is not a valid successor of another: the next AWSCURRENT must be exactly the
/// current keyring plus one new primary version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SuccessorError {
    #[error("the new keyring has no primary version")]
    NoPrimary,
    #[error("the new primary version {primary} is not newer than the current version {latest}")]
    NotNewer {
        primary: KeyVersion,
        latest: KeyVersion,
    },
    #[error("key version {0} of the current keyring is missing from the new one")]
    Lost(KeyVersion),
    #[error("key version {0} differs between the current and the new keyring")]
    Changed(KeyVersion),
    #[error(
        "the new keyring adds key version {0} besides its primary (a trimmed or unknown version)"
    )]
    Unexpected(KeyVersion),
    #[error("min_decryption_version differs: {current} in the current keyring, {new} in the new")]
    MinDecryptionChanged {
        current: KeyVersion,
        new: KeyVersion,
    },
    #[error("the legacy key differs between the current and the new keyring")]
    LegacyChanged,
}

/// Encrypting needs a primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the keyring has no primary key yet: rotate the secret once to initialise it")]
    NoPrimary,
    #[error(transparent)]
    Encrypt(#[from] EncryptError),
}

/// Why a ciphertext did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The uniform failure: malformed, altered, wrong key or context.
    #[error(transparent)]
    Invalid(#[from] DecryptError),
    /// The version exists (or existed) but is below `min_decryption_version`.
    #[error(
        "key version {version} is below min_decryption_version {min} and may no longer decrypt"
    )]
    Retired {
        version: KeyVersion,
        min: KeyVersion,
    },
    /// A version this keyring does not know and that is newer than all it knows: the caller
    /// may refresh the keyring and try again. Reported to clients as [`OpenError::Invalid`].
    #[error("key version {0} is newer than the keyring")]
    NewerVersion(KeyVersion),
}

/// A sealed envelope and the version that sealed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub ciphertext: String,
    pub version: KeyVersion,
}

/// What `GET /v1/keys` and `ssm-keyring show` print: versions, never material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyringInfo {
    pub primary_version: Option<KeyVersion>,
    pub min_decryption_version: KeyVersion,
    pub versions: Vec<VersionInfo>,
    pub legacy_key: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub version: KeyVersion,
    pub created_at: DateTime<Utc>,
    pub decrypts: bool,
    pub primary: bool,
}

impl Keyring {
    /// An uninitialised keyring: no versions.
    pub fn empty() -> Self {
        Self {
            keys: BTreeMap::new(),
            primary: None,
            min_decryption: KeyVersion::FIRST,
            legacy: None,
        }
    }

    /// A keyring with one fresh version 1.
    pub fn generate(now: DateTime<Utc>) -> Result<Self, RandomnessError> {
        let mut ring = Self::empty();
        ring.add_version(KeyMaterial::generate()?, now)
            .map_err(|_| RandomnessError)?;
        Ok(ring)
    }

    /// Parses and validates the secret's JSON.
    pub fn from_json(text: &str) -> Result<Self, KeyringError> {
        // serde's derived struct visitor also takes a JSON array (fields by position): `[]`
        // and `[null]` would otherwise parse as an empty keyring.
        if !text
            .trim_start_matches([' ', '\t', '\n', '\r'])
            .starts_with('{')
        {
            return Err(KeyringError::Malformed(
                "the keyring is not a JSON object".into(),
            ));
        }
        let doc: Document =
            serde_json::from_str(text).map_err(|e| KeyringError::Malformed(scrub(&e)))?;
        let doc_keys = match (&doc.keys, &doc.aes_key) {
            (Some(keys), _) if !keys.is_empty() => keys.as_slice(),
            // A primary among no keys: refused below as an unknown primary.
            _ if doc.primary_version.is_some() => &[],
            // The two documented forms without key versions, and nothing else.
            (Some(_), _) | (None, Some(_)) if doc.min_decryption_version.is_none() => &[],
            _ => return Err(KeyringError::NotUninitialised),
        };
        let mut keys = BTreeMap::new();
        for key in doc_keys {
            let mut bytes = Zeroizing::new(
                STANDARD
                    .decode(key.material.0.as_bytes())
                    .map_err(|_| KeyringError::BadMaterial(key.version))?,
            );
            let material =
                KeyMaterial::from_slice(&bytes).ok_or(KeyringError::BadMaterial(key.version))?;
            bytes.zeroize();
            let entry = KeyEntry {
                created_at: key.created_at,
                material,
            };
            if keys.insert(key.version, entry).is_some() {
                return Err(KeyringError::DuplicateVersion(key.version));
            }
        }
        let primary = match (doc.primary_version, keys.is_empty()) {
            (Some(p), _) if !keys.contains_key(&p) => return Err(KeyringError::UnknownPrimary(p)),
            (Some(p), _) => Some(p),
            (None, true) => None,
            (None, false) => return Err(KeyringError::MissingPrimary),
        };
        let min_decryption = doc.min_decryption_version.unwrap_or(KeyVersion::FIRST);
        if let Some(primary) = primary
            && min_decryption > primary
        {
            return Err(KeyringError::MinAbovePrimary {
                min: min_decryption,
                primary,
            });
        }
        let legacy = match doc.legacy_aes_key.or(doc.aes_key) {
            Some(text) => Some(LegacyKey::new(text.0.clone()).map_err(KeyringError::BadLegacyKey)?),
            None => None,
        };
        Ok(Self {
            keys,
            primary,
            min_decryption,
            legacy,
        })
    }

    /// The secret's JSON, in a buffer zeroized on drop.
    pub fn to_json(&self) -> Zeroizing<String> {
        let doc = Document {
            primary_version: self.primary,
            // Without keys the policy is moot, and the uninitialised form has none.
            min_decryption_version: (!self.keys.is_empty()).then_some(self.min_decryption),
            keys: Some(
                self.keys
                    .iter()
                    .map(|(version, entry)| KeyDoc {
                        version: *version,
                        created_at: entry.created_at,
                        material: SecretText(STANDARD.encode(entry.material.expose())),
                    })
                    .collect(),
            ),
            legacy_aes_key: self
                .legacy
                .as_ref()
                .map(|k| SecretText(k.expose().to_owned())),
            aes_key: None,
        };
        // Serializing plain structs of strings and numbers cannot fail.
        Zeroizing::new(serde_json::to_string_pretty(&doc).unwrap_or_default())
    }

    pub fn is_initialised(&self) -> bool {
        self.primary.is_some()
    }

    pub fn primary(&self) -> Option<KeyVersion> {
        self.primary
    }

    /// The newest version held.
    pub fn latest(&self) -> Option<KeyVersion> {
        self.keys.keys().next_back().copied()
    }

    pub fn min_decryption_version(&self) -> KeyVersion {
        self.min_decryption
    }

    pub fn versions(&self) -> impl Iterator<Item = KeyVersion> + '_ {
        self.keys.keys().copied()
    }

    pub fn has_legacy_key(&self) -> bool {
        self.legacy.is_some()
    }

    /// Seals `plaintext` under the primary version.
    pub fn encrypt(&self, plaintext: &[u8], context: &[u8]) -> Result<Sealed, SealError> {
        let (version, entry) = self.primary_entry().ok_or(SealError::NoPrimary)?;
        let ciphertext = envelope::seal(&entry.material, version, plaintext, context)?;
        Ok(Sealed {
            ciphertext,
            version,
        })
    }

    /// Opens an envelope (`ssm:v…`), or, when this keyring holds a legacy key, a legacy
    /// ciphertext. Returns the plaintext and the version that opened it (`None` for legacy).
    pub fn decrypt(
        &self,
        text: &str,
        context: &[u8],
    ) -> Result<(Plaintext, Option<KeyVersion>), OpenError> {
        if !Envelope::is_envelope(text) {
            let legacy = self.legacy.as_ref().ok_or(DecryptError)?;
            return Ok((legacy.decrypt(text)?, None));
        }
        let envelope = Envelope::parse(text)?;
        let version = envelope.version;
        if version < self.min_decryption {
            return Err(OpenError::Retired {
                version,
                min: self.min_decryption,
            });
        }
        match self.keys.get(&version) {
            Some(entry) => Ok((envelope.open(&entry.material, context)?, Some(version))),
            None if self.latest().is_none_or(|latest| version > latest) => {
                Err(OpenError::NewerVersion(version))
            }
            None => Err(DecryptError.into()),
        }
    }

    /// The version an envelope names, if `text` is one (for deciding on an early refresh).
    pub fn named_version(text: &str) -> Option<KeyVersion> {
        Envelope::parse(text).ok().map(|e| e.version)
    }

    /// Appends a version with `material` and makes it primary. Returns the new version.
    pub fn add_version(
        &mut self,
        material: KeyMaterial,
        now: DateTime<Utc>,
    ) -> Result<KeyVersion, KeyringError> {
        let version = match self.latest() {
            None => KeyVersion::FIRST.max(self.min_decryption),
            Some(latest) => latest.next().ok_or(KeyringError::VersionsExhausted)?,
        };
        let created_at = now
            .to_rfc3339_opts(SecondsFormat::Secs, true)
            .parse()
            .unwrap_or(now);
        self.keys.insert(
            version,
            KeyEntry {
                created_at,
                material,
            },
        );
        self.primary = Some(version);
        Ok(version)
    }

    /// Appends a fresh random version and makes it primary.
    pub fn rotate(&mut self, now: DateTime<Utc>) -> Result<KeyVersion, RotateError> {
        let material = KeyMaterial::generate()?;
        Ok(self.add_version(material, now)?)
    }

    /// Moves `min_decryption_version`. It may never pass the primary version, nor go below
    /// the oldest version still held (those keys are gone).
    pub fn set_min_decryption_version(&mut self, min: KeyVersion) -> Result<(), PolicyError> {
        let primary = self.primary.ok_or(PolicyError::Uninitialised)?;
        if min > primary {
            return Err(PolicyError::AbovePrimary { min, primary });
        }
        if let Some(oldest) = self.keys.keys().next().copied()
            && min < oldest
        {
            return Err(PolicyError::BelowOldest { min, oldest });
        }
        self.min_decryption = min;
        Ok(())
    }

    /// The versions [`Keyring::trim`] would destroy.
    pub fn trimmable(&self) -> Vec<KeyVersion> {
        self.keys
            .range(..self.min_decryption)
            .map(|(v, _)| *v)
            .collect()
    }

    /// Destroys every version below `min_decryption_version`. Irreversible: ciphertexts under
    /// those versions can never be decrypted again. Returns what was removed.
    pub fn trim(&mut self) -> Vec<KeyVersion> {
        let removed = self.trimmable();
        for version in &removed {
            self.keys.remove(version);
        }
        removed
    }

    /// Removes the legacy key (after migrating legacy data with rewrap).
    pub fn remove_legacy_key(&mut self) -> bool {
        self.legacy.take().is_some()
    }

    /// Versions and policy without material.
    pub fn info(&self) -> KeyringInfo {
        KeyringInfo {
            primary_version: self.primary,
            min_decryption_version: self.min_decryption,
            versions: self
                .keys
                .iter()
                .map(|(version, entry)| VersionInfo {
                    version: *version,
                    created_at: entry.created_at,
                    decrypts: *version >= self.min_decryption,
                    primary: Some(*version) == self.primary,
                })
                .collect(),
            legacy_key: self.legacy.is_some(),
        }
    }

    /// Key material of one version, for rotation checks that must prove each version works.
    pub fn seal_with(
        &self,
        version: KeyVersion,
        plaintext: &[u8],
        context: &[u8],
    ) -> Option<Result<String, EncryptError>> {
        let entry = self.keys.get(&version)?;
        Some(envelope::seal(&entry.material, version, plaintext, context))
    }

    /// Checks that `next` is this keyring plus exactly one new version, its primary: every
    /// version kept with the same material, no trimmed version back, the same
    /// `min_decryption_version` and legacy key. What rotation may promote to AWSCURRENT.
    /// Returns the new primary version.
    pub fn check_successor(&self, next: &Keyring) -> Result<KeyVersion, SuccessorError> {
        let primary = next.primary.ok_or(SuccessorError::NoPrimary)?;
        if let Some(latest) = self.latest()
            && primary <= latest
        {
            return Err(SuccessorError::NotNewer { primary, latest });
        }
        for (version, entry) in &self.keys {
            match next.keys.get(version) {
                None => return Err(SuccessorError::Lost(*version)),
                Some(other) if other != entry => return Err(SuccessorError::Changed(*version)),
                Some(_) => {}
            }
        }
        if let Some(extra) = next
            .keys
            .keys()
            .find(|v| **v != primary && !self.keys.contains_key(v))
        {
            return Err(SuccessorError::Unexpected(*extra));
        }
        if next.min_decryption != self.min_decryption {
            return Err(SuccessorError::MinDecryptionChanged {
                current: self.min_decryption,
                new: next.min_decryption,
            });
        }
        if next.legacy != self.legacy {
            return Err(SuccessorError::LegacyChanged);
        }
        Ok(primary)
    }

    fn primary_entry(&self) -> Option<(KeyVersion, &KeyEntry)> {
        let version = self.primary?;
        self.keys.get(&version).map(|entry| (version, entry))
    }
}

/// Rotation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Randomness(#[from] RandomnessError),
    #[error(transparent)]
    Keyring(#[from] KeyringError),
}

/// A `min_decryption_version` change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the keyring has no versions yet")]
    Uninitialised,
    #[error("min_decryption_version {min} would be above the primary version {primary}")]
    AbovePrimary {
        min: KeyVersion,
        primary: KeyVersion,
    },
    #[error(
        "min_decryption_version {min} is below the oldest version held ({oldest}); trimmed keys are gone"
    )]
    BelowOldest { min: KeyVersion, oldest: KeyVersion },
}

/// serde_json's messages may quote input; keep only the position and category.
fn scrub(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match error.classify() {
        Category::Io => "unreadable input",
        Category::Syntax => "syntax error",
        Category::Data => "unexpected field or value",
        Category::Eof => "unexpected end of input",
    };
    format!("{what} at line {} column {}", error.line(), error.column())
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    primary_version: Option<KeyVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_decryption_version: Option<KeyVersion>,
    /// Absent only in the original sample's `{"aes_key": …}`.
    #[serde(default)]
    keys: Option<Vec<KeyDoc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    legacy_aes_key: Option<SecretText>,
    /// The original sample's secret shape.
    #[serde(default, skip_serializing)]
    aes_key: Option<SecretText>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyDoc {
    version: KeyVersion,
    created_at: DateTime<Utc>,
    material: SecretText,
}

/// A string holding secret text while (de)serializing: zeroized on drop.
#[derive(Serialize, Deserialize, Zeroize)]
#[serde(transparent)]
#[zeroize(drop)]
struct SecretText(String);

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-28T00:00:00Z".parse().unwrap()
    }

    fn v(n: u32) -> KeyVersion {
        KeyVersion::new(n).unwrap()
    }

    #[test]
    fn empty_document_is_uninitialised() {
        let ring = Keyring::from_json(r#"{"keys": []}"#).unwrap();
        assert!(!ring.is_initialised());
        assert_eq!(ring.encrypt(b"x", b""), Err(SealError::NoPrimary));
    }

    #[test]
    fn only_the_documented_forms_without_keys_parse() {
        let material = STANDARD.encode([7u8; 32]);
        for doc in [
            "[]",
            "[null]",
            "  [null, null, []]",
            "{}",
            "null",
            r#"{"keys": null}"#,
            r#"{"keys": [], "primary_version": 1}"#,
            r#"{"keys": [], "min_decryption_version": 3}"#,
            r#"{"min_decryption_version": 1}"#,
            r#"{"legacy_aes_key": "0123456789abcdef0123456789abcdef"}"#,
        ] {
            let err = Keyring::from_json(doc).expect_err(doc).to_string();
            assert!(!err.contains("0123456789abcdef"), "{err}");
        }
        // What the refusal says quotes nothing of the document.
        let sequence = format!(r#"[1, "{material}"]"#);
        let err = Keyring::from_json(&sequence).unwrap_err().to_string();
        assert!(
            err.contains("not a JSON object") && !err.contains(&material),
            "{err}"
        );
        // The accepted ones.
        for doc in [
            r#"{"keys": []}"#,
            "\n {\"keys\":[]}\n",
            r#"{"aes_key": "0123456789abcdef0123456789abcdef"}"#,
            r#"{"keys": [], "legacy_aes_key": "0123456789abcdef0123456789abcdef"}"#,
        ] {
            let ring = Keyring::from_json(doc).expect(doc);
            assert!(!ring.is_initialised());
        }
        // An empty keyring serializes to the documented form and back.
        let empty = Keyring::empty();
        assert_eq!(Keyring::from_json(&empty.to_json()).unwrap(), empty);
    }

    #[test]
    fn a_successor_is_the_current_keyring_plus_one_primary() {
        let mut current = Keyring::generate(now()).unwrap();
        current.rotate(now()).unwrap();
        let mut next = current.clone();
        assert_eq!(next.rotate(now()), Ok(v(3)));
        assert_eq!(current.check_successor(&next), Ok(v(3)));
        assert_eq!(
            Keyring::empty().check_successor(&Keyring::generate(now()).unwrap()),
            Ok(v(1))
        );

        // A stale successor: built before an operator's rotation added a different version 3.
        let mut operator = current.clone();
        operator.rotate(now()).unwrap();
        assert_eq!(
            operator.check_successor(&next),
            Err(SuccessorError::NotNewer {
                primary: v(3),
                latest: v(3)
            })
        );
        assert_eq!(
            current.check_successor(&current),
            Err(SuccessorError::NotNewer {
                primary: v(2),
                latest: v(2)
            })
        );
        assert_eq!(
            current.check_successor(&Keyring::empty()),
            Err(SuccessorError::NoPrimary)
        );

        // Built before the operator retired version 1, or before a trim.
        let mut retired = current.clone();
        retired.set_min_decryption_version(v(2)).unwrap();
        assert_eq!(
            retired.check_successor(&next),
            Err(SuccessorError::MinDecryptionChanged {
                current: v(2),
                new: v(1)
            })
        );
        let mut trimmed = retired.clone();
        trimmed.trim();
        let mut from_trimmed = retired.clone();
        from_trimmed.rotate(now()).unwrap();
        assert_eq!(
            trimmed.check_successor(&from_trimmed),
            Err(SuccessorError::Unexpected(v(1)))
        );

        // A lost or replaced version.
        let mut lost = next.clone();
        lost.keys.remove(&v(1));
        assert_eq!(
            current.check_successor(&lost),
            Err(SuccessorError::Lost(v(1)))
        );
        let mut replaced = Keyring::generate(now()).unwrap();
        replaced.rotate(now()).unwrap();
        replaced.rotate(now()).unwrap();
        assert_eq!(
            current.check_successor(&replaced),
            Err(SuccessorError::Changed(v(1)))
        );

        // Two new versions at once.
        let mut two = next.clone();
        two.rotate(now()).unwrap();
        assert_eq!(
            current.check_successor(&two),
            Err(SuccessorError::Unexpected(v(3)))
        );

        // The legacy key must survive unchanged.
        let legacy =
            Keyring::from_json(r#"{"aes_key": "0123456789abcdef0123456789abcdef"}"#).unwrap();
        let mut from_legacy = legacy.clone();
        from_legacy.rotate(now()).unwrap();
        assert_eq!(legacy.check_successor(&from_legacy), Ok(v(1)));
        from_legacy.remove_legacy_key();
        assert_eq!(
            legacy.check_successor(&from_legacy),
            Err(SuccessorError::LegacyChanged)
        );
    }

    #[test]
    fn json_round_trip_keeps_everything() {
        let mut ring = Keyring::generate(now()).unwrap();
        ring.rotate(now()).unwrap();
        ring.set_min_decryption_version(v(2)).unwrap();
        let again = Keyring::from_json(&ring.to_json()).unwrap();
        assert_eq!(again, ring);
        assert_eq!(again.primary(), Some(v(2)));
        assert_eq!(again.min_decryption_version(), v(2));
    }

    #[test]
    fn rotation_keeps_old_versions_decrypting() {
        let mut ring = Keyring::generate(now()).unwrap();
        let first = ring.encrypt(b"one", b"ctx").unwrap();
        assert_eq!(first.version, v(1));
        ring.rotate(now()).unwrap();
        ring.rotate(now()).unwrap();
        let third = ring.encrypt(b"three", b"").unwrap();
        assert_eq!(third.version, v(3));
        assert_eq!(
            ring.decrypt(&first.ciphertext, b"ctx").unwrap().0.expose(),
            b"one"
        );
        assert_eq!(ring.decrypt(&third.ciphertext, b"").unwrap().1, Some(v(3)));
    }

    #[test]
    fn min_decryption_version_retires_then_trim_destroys() {
        let mut ring = Keyring::generate(now()).unwrap();
        let old = ring.encrypt(b"old", b"").unwrap();
        ring.rotate(now()).unwrap();
        assert_eq!(
            ring.set_min_decryption_version(v(3)),
            Err(PolicyError::AbovePrimary {
                min: v(3),
                primary: v(2)
            })
        );
        ring.set_min_decryption_version(v(2)).unwrap();
        assert_eq!(
            ring.decrypt(&old.ciphertext, b""),
            Err(OpenError::Retired {
                version: v(1),
                min: v(2)
            })
        );
        // Reversible until trimmed.
        ring.set_min_decryption_version(v(1)).unwrap();
        assert!(ring.decrypt(&old.ciphertext, b"").is_ok());
        assert!(ring.trim().is_empty());
        ring.set_min_decryption_version(v(2)).unwrap();
        assert_eq!(ring.trim(), vec![v(1)]);
        assert_eq!(
            ring.set_min_decryption_version(v(1)),
            Err(PolicyError::BelowOldest {
                min: v(1),
                oldest: v(2)
            })
        );
    }

    #[test]
    fn newer_unknown_and_missing_versions() {
        let mut ring = Keyring::generate(now()).unwrap();
        let mut newer = ring.clone();
        newer.rotate(now()).unwrap();
        let from_newer = newer.encrypt(b"x", b"").unwrap();
        assert_eq!(
            ring.decrypt(&from_newer.ciphertext, b""),
            Err(OpenError::NewerVersion(v(2)))
        );
        // A hole in the versions (not newer than latest) is the uniform error.
        ring.rotate(now()).unwrap();
        ring.rotate(now()).unwrap();
        ring.keys.remove(&v(2));
        assert_eq!(
            ring.decrypt(&from_newer.ciphertext, b""),
            Err(OpenError::Invalid(DecryptError))
        );
    }

    #[test]
    fn malformed_documents_are_refused_without_echoing_secrets() {
        let material = STANDARD.encode([7u8; 32]);
        let cases = [
            (r#"{"keys": [}"#.to_owned(), "syntax"),
            (format!(r#"{{"keys": [{{"version": 1, "created_at": "2026-01-01T00:00:00Z", "material": "{material}"}}]}}"#), "no primary_version"),
            (format!(r#"{{"primary_version": 2, "keys": [{{"version": 1, "created_at": "2026-01-01T00:00:00Z", "material": "{material}"}}]}}"#), "primary_version 2"),
            (r#"{"primary_version": 1, "keys": [{"version": 1, "created_at": "2026-01-01T00:00:00Z", "material": "c2hvcnQ="}]}"#.to_owned(), "32 bytes"),
            (format!(r#"{{"primary_version": 1, "min_decryption_version": 2, "keys": [{{"version": 1, "created_at": "2026-01-01T00:00:00Z", "material": "{material}"}}]}}"#), "above"),
            (format!(r#"{{"primary_version": 1, "keys": [{{"version": 1, "created_at": "2026-01-01T00:00:00Z", "material": "{material}"}}, {{"version": 1, "created_at": "2026-01-01T00:00:00Z", "material": "{material}"}}]}}"#), "twice"),
            (format!(r#"{{"keys": [], "surprise": "{material}"}}"#), "unexpected field"),
            (r#"{"aes_key": "too short"}"#.to_owned(), "32 ASCII"),
        ];
        for (doc, expected) in cases {
            let err = Keyring::from_json(&doc).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{err:?} should mention {expected:?}"
            );
            assert!(!err.contains(&material), "error echoes key material: {err}");
        }
    }

    #[test]
    fn legacy_secret_shape_is_a_legacy_only_keyring() {
        let ring =
            Keyring::from_json(r#"{"aes_key": "0123456789abcdef0123456789abcdef"}"#).unwrap();
        assert!(ring.has_legacy_key());
        assert!(!ring.is_initialised());
        let key = LegacyKey::new("0123456789abcdef0123456789abcdef".into()).unwrap();
        let old = key.encrypt_for_tests([1; 16], b"migrate me");
        let (text, version) = ring.decrypt(&old, b"").unwrap();
        assert_eq!(text.expose(), b"migrate me");
        assert_eq!(version, None);
        // Rotation initialises version 1 and keeps the legacy key under its new name.
        let mut ring = ring;
        ring.rotate(now()).unwrap();
        let json = ring.to_json();
        assert!(json.contains("legacy_aes_key") && !json.contains("\"aes_key\""));
        assert!(Keyring::from_json(&json).unwrap().has_legacy_key());
    }

    #[test]
    fn without_legacy_key_legacy_text_is_the_uniform_error() {
        let ring = Keyring::generate(now()).unwrap();
        assert_eq!(
            ring.decrypt("AAECAwQFBgcICQoLDA0ODw==", b""),
            Err(OpenError::Invalid(DecryptError))
        );
    }

    #[test]
    fn info_and_debug_never_show_material() {
        let ring = Keyring::generate(now()).unwrap();
        let material = STANDARD.encode(ring.keys[&v(1)].material.expose());
        let info = serde_json::to_string(&ring.info()).unwrap();
        assert!(!info.contains(&material));
        assert!(!format!("{ring:?}").contains(&material));
        assert!(ring.to_json().contains(&material));
    }
}

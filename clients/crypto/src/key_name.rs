//! Key names as the service accepts them: checked before a request is built, so a bad name is
//! a local error rather than a path the gateway answers 404 (or worse, a path that means
//! something else once it is percent-encoded).

use std::fmt;

/// A key's name: 1 to 32 characters `[a-z][a-z0-9-]*`, not ending in `-`. `default` is the key
/// behind the original routes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyName(String);

/// Why a key name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid key name {name:?}: use 1 to 32 characters a-z, 0-9 and '-', starting with a letter and not ending in '-'"
)]
pub struct InvalidKeyName {
    pub name: String,
}

impl KeyName {
    /// The longest name the service accepts.
    pub const MAX_LEN: usize = 32;

    pub fn parse(name: &str) -> Result<Self, InvalidKeyName> {
        let bytes = name.as_bytes();
        let valid = (1..=Self::MAX_LEN).contains(&bytes.len())
            && bytes[0].is_ascii_lowercase()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && !name.ends_with('-');
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(InvalidKeyName {
                name: name.chars().take(64).collect(),
            })
        }
    }

    /// The key behind the original routes.
    pub fn default_key() -> Self {
        Self("default".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for KeyName {
    type Err = InvalidKeyName;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::parse(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        for good in ["default", "payments", "a", "a-b", "k9", &"x".repeat(32)] {
            assert_eq!(
                KeyName::parse(good).map(|k| k.to_string()),
                Ok(good.to_owned())
            );
        }
        for bad in [
            "",
            "9lives",
            "-a",
            "a-",
            "Payments",
            "a_b",
            "a/b",
            "a b",
            "é",
            "..",
            &"x".repeat(33),
        ] {
            assert!(KeyName::parse(bad).is_err(), "{bad:?}");
        }
    }
}

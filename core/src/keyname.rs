//! Key names: which of a deployment's keys a request, an envelope or a MAC is for.
//!
//! ```text
//! name = [a-z] [a-z0-9-]*     1 ..= 32 characters, not ending in "-"
//! ```
//!
//! The name appears in routes (`/v1/keys/{name}/…`), envelopes (`ssm2:{name}:v…`), MACs
//! (`ssm-mac:{name}:v…`) and IAM resource ARNs, so the alphabet has no character any of them
//! would have to escape, and no `:` (the envelope's separator). `default` is the key behind the
//! original routes. A name is stored inline (no allocation) and is `Copy`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest key name, in characters.
pub const MAX_LEN: usize = 32;

/// A validated key name.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyName {
    bytes: [u8; MAX_LEN],
    len: u8,
}

/// Why a string is not a key name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a key name is 1 to 32 characters: a lowercase letter, then lowercase letters, digits and '-', not ending in '-'"
)]
pub struct InvalidKeyName;

impl KeyName {
    /// The key behind the original routes (`/v1/encrypt`, `/wrap`, …).
    pub const DEFAULT: KeyName = match KeyName::parse("default") {
        Ok(name) => name,
        Err(_) => unreachable!(),
    };

    /// Validates `text` as a key name.
    pub const fn parse(text: &str) -> Result<Self, InvalidKeyName> {
        let raw = text.as_bytes();
        if raw.is_empty() || raw.len() > MAX_LEN || !raw[0].is_ascii_lowercase() {
            return Err(InvalidKeyName);
        }
        if raw[raw.len() - 1] == b'-' {
            return Err(InvalidKeyName);
        }
        let mut bytes = [0u8; MAX_LEN];
        let mut i = 0;
        while i < raw.len() {
            let b = raw[i];
            if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
                return Err(InvalidKeyName);
            }
            bytes[i] = b;
            i += 1;
        }
        Ok(Self {
            bytes,
            len: raw.len() as u8,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored, so this never fails.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    pub fn is_default(&self) -> bool {
        *self == Self::DEFAULT
    }
}

impl Default for KeyName {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl FromStr for KeyName {
    type Err = InvalidKeyName;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for KeyName {
    type Error = InvalidKeyName;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<KeyName> for String {
    fn from(name: KeyName) -> Self {
        name.as_str().to_owned()
    }
}

impl AsRef<str> for KeyName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyName({:?})", self.as_str())
    }
}

/// Why a `name=value,…` list (`SSM_KEYRINGS`, `--key`) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignmentError {
    #[error("`{0}` is not `name=value`")]
    NotAnAssignment(String),
    #[error("`{name}`: {source}")]
    InvalidName {
        name: String,
        source: InvalidKeyName,
    },
    #[error("key `{0}` has an empty value")]
    EmptyValue(KeyName),
    #[error("key `{0}` is named twice")]
    Duplicate(KeyName),
}

/// Parses a comma-separated `name=value` list (spaces around items ignored, empty items
/// skipped), refusing invalid or repeated names and empty values.
pub fn parse_assignments(text: &str) -> Result<Vec<(KeyName, &str)>, AssignmentError> {
    let mut out: Vec<(KeyName, &str)> = Vec::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let (name, value) = item
            .split_once('=')
            .ok_or_else(|| AssignmentError::NotAnAssignment(item.to_owned()))?;
        let (name, value) = (name.trim(), value.trim());
        let name = KeyName::parse(name).map_err(|source| AssignmentError::InvalidName {
            name: name.to_owned(),
            source,
        })?;
        if value.is_empty() {
            return Err(AssignmentError::EmptyValue(name));
        }
        if out.iter().any(|(seen, _)| *seen == name) {
            return Err(AssignmentError::Duplicate(name));
        }
        out.push((name, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_and_invalid_names() {
        for good in [
            "default",
            "a",
            "payments",
            "orders-eu-1",
            "a1",
            &"k".repeat(32),
        ] {
            assert_eq!(KeyName::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "1abc",
            "-abc",
            "abc-",
            "Payments",
            "pay_ments",
            "pay:ments",
            "pay/ments",
            "pay ments",
            "päy",
            &"k".repeat(33),
        ] {
            assert_eq!(KeyName::parse(bad), Err(InvalidKeyName), "{bad:?}");
        }
        assert!(KeyName::DEFAULT.is_default());
        assert_eq!(KeyName::default().as_str(), "default");
        assert_eq!(format!("{:?}", KeyName::DEFAULT), "KeyName(\"default\")");
    }

    #[test]
    fn serde_validates() {
        let name: KeyName = serde_json::from_str("\"orders\"").unwrap();
        assert_eq!(name.as_str(), "orders");
        assert!(serde_json::from_str::<KeyName>("\"Orders\"").is_err());
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"orders\"");
    }

    #[test]
    fn assignment_lists() {
        let name = |t| KeyName::parse(t).unwrap();
        assert_eq!(parse_assignments(""), Ok(vec![]));
        assert_eq!(parse_assignments(" , "), Ok(vec![]));
        assert_eq!(
            parse_assignments("payments=arn:aws:secretsmanager:r:1:secret:p-AbC, orders = o ,"),
            Ok(vec![
                (name("payments"), "arn:aws:secretsmanager:r:1:secret:p-AbC"),
                (name("orders"), "o")
            ])
        );
        assert_eq!(
            parse_assignments("payments"),
            Err(AssignmentError::NotAnAssignment("payments".into()))
        );
        assert!(matches!(
            parse_assignments("Pay=x"),
            Err(AssignmentError::InvalidName { .. })
        ));
        assert_eq!(
            parse_assignments("a=x,a=y"),
            Err(AssignmentError::Duplicate(name("a")))
        );
        assert_eq!(
            parse_assignments("a="),
            Err(AssignmentError::EmptyValue(name("a")))
        );
    }

    proptest! {
        #[test]
        fn parse_matches_the_grammar(text in "[a-z0-9:A-Z_-]{0,40}") {
            let chars: Vec<char> = text.chars().collect();
            let expected = (1..=MAX_LEN).contains(&chars.len())
                && chars[0].is_ascii_lowercase()
                && chars.last() != Some(&'-')
                && chars.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-');
            prop_assert_eq!(KeyName::parse(&text).is_ok(), expected);
            if let Ok(name) = KeyName::parse(&text) {
                prop_assert_eq!(name.as_str(), text.as_str());
            }
        }
    }
}

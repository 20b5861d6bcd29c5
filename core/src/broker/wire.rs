//! The JSON bodies of `POST /v1/tokens`: request, success, error; and the token types they carry.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::request::RequestError;

/// Most headers a signed identity request may carry (a SigV4 request has about six).
pub const MAX_IDENTITY_HEADERS: usize = 32;

/// `POST /v1/tokens` request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// `owner/name`.
    pub repository: String,
    /// GitHub permission name to level, e.g. `contents` → `write`.
    pub permissions: BTreeMap<String, String>,
    /// The caller's SigV4-signed `sts:GetCallerIdentity` request.
    pub identity: SignedIdentityRequest,
    /// Lowercase hex SHA-256 of a token for this scope that GitHub rejected (401): the broker
    /// drops its cached token for the scope if, and only if, it is that token, and mints another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_token_sha256: Option<String>,
}

/// A signed HTTP request, as the caller would have sent it to STS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedIdentityRequest {
    pub method: String,
    pub url: String,
    pub headers: IdentityHeaders,
    pub body: String,
}

/// The headers of a signed identity request, in the order received. Unlike a map it keeps a
/// repeated name (in any case, or even byte-identical JSON keys) so that the broker can refuse
/// it instead of silently checking one copy while STS might read another. On the wire it is a
/// JSON object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityHeaders(Vec<(String, String)>);

impl IdentityHeaders {
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of the first header named exactly `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `name` (exact spelling) to `value`, replacing its first occurrence or appending.
    pub fn insert(&mut self, name: String, value: String) -> Option<String> {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => Some(std::mem::replace(v, value)),
            None => {
                self.0.push((name, value));
                None
            }
        }
    }

    /// Appends a header even if one of that name exists (how a smuggled duplicate looks).
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// Removes every header named exactly `name`, returning the first value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let first = self.get(name).map(str::to_owned);
        self.0.retain(|(n, _)| n != name);
        first
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::ops::Index<&str> for IdentityHeaders {
    type Output = str;

    #[expect(
        clippy::panic,
        reason = "Index panics on a missing key, as BTreeMap's does"
    )]
    fn index(&self, name: &str) -> &str {
        self.get(name)
            .unwrap_or_else(|| panic!("no identity header {name:?}"))
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for IdentityHeaders {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl From<BTreeMap<String, String>> for IdentityHeaders {
    fn from(map: BTreeMap<String, String>) -> Self {
        map.into_iter().collect()
    }
}

impl Serialize for IdentityHeaders {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for IdentityHeaders {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeadersVisitor;

        impl<'de> Visitor<'de> for HeadersVisitor {
            type Value = IdentityHeaders;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "an object of at most {MAX_IDENTITY_HEADERS} string headers"
                )
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut headers = Vec::new();
                while let Some((name, value)) = access.next_entry::<String, String>()? {
                    if headers.len() == MAX_IDENTITY_HEADERS {
                        return Err(serde::de::Error::custom(format!(
                            "more than {MAX_IDENTITY_HEADERS} identity headers"
                        )));
                    }
                    headers.push((name, value));
                }
                Ok(IdentityHeaders(headers))
            }
        }

        deserializer.deserialize_map(HeadersVisitor)
    }
}

/// `POST /v1/tokens` success body (201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub token: InstallationToken,
    pub expires_at: DateTime<Utc>,
    pub repository: String,
    pub permissions: BTreeMap<String, String>,
}

/// A GitHub installation token: an opaque string of any length, never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstallationToken(String);

impl InstallationToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token itself, for an `Authorization` header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for InstallationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InstallationToken(<redacted>)")
    }
}

/// The SHA-256 of an installation token: how a caller names a token GitHub rejected without
/// sending the token itself ([`TokenRequest::rejected_token_sha256`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of `token`.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Parses the wire form: exactly 64 lowercase hex digits.
    pub fn parse_hex(hex_digest: &str) -> Result<Self, RequestError> {
        let well_formed = hex_digest.len() == 64
            && hex_digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let mut out = [0u8; 32];
        if !well_formed || hex::decode_to_slice(hex_digest, &mut out).is_err() {
            return Err(RequestError::RejectedTokenDigest);
        }
        Ok(Self(out))
    }

    /// The wire form: 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Whether `token` hashes to this digest, compared in constant time.
    pub fn matches(&self, token: &InstallationToken) -> bool {
        bool::from(Self::of(token.expose()).0.ct_eq(&self.0))
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({})", self.to_hex())
    }
}

/// Error body of every broker failure: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::test_support::*;
    use crate::broker::*;
    use std::collections::BTreeMap;

    #[test]
    fn tokens_never_print_and_serialize_transparently() {
        let long = "ghs_".to_owned() + &"x".repeat(516);
        let t = InstallationToken::new(long.clone());
        assert_eq!(format!("{t:?}"), "InstallationToken(<redacted>)");
        let json = serde_json::to_string(&t).expect("json");
        assert_eq!(json, format!("\"{long}\""));
        let resp = TokenResponse {
            token: t,
            expires_at: now(),
            repository: "acme/infra".into(),
            permissions: BTreeMap::new(),
        };
        assert!(!format!("{resp:?}").contains("ghs_"));
    }

    #[test]
    fn request_types_refuse_unknown_fields() {
        let good = TokenRequest {
            repository: "acme/infra".into(),
            permissions: BTreeMap::from([("contents".into(), "write".into())]),
            identity: signed(Some(AUD), ALL_SIGNED),
            rejected_token_sha256: None,
        };
        let json = serde_json::to_value(&good).expect("json");
        assert!(json.get("rejected_token_sha256").is_none());
        assert_eq!(
            serde_json::from_value::<TokenRequest>(json.clone()).expect("round trip"),
            good
        );
        let mut extra = json.clone();
        extra["repositories"] = serde_json::json!(["acme/other"]);
        let err = serde_json::from_value::<TokenRequest>(extra).expect_err("unknown field");
        assert!(err.to_string().contains("repositories"), "{err}");
        let mut query = json;
        query["identity"]["query"] = serde_json::json!("Action=AssumeRole");
        let err = serde_json::from_value::<TokenRequest>(query).expect_err("unknown field");
        assert!(err.to_string().contains("query"), "{err}");
        let many: serde_json::Map<String, serde_json::Value> = (0..=MAX_IDENTITY_HEADERS)
            .map(|i| (format!("x-h{i}"), serde_json::json!("v")))
            .collect();
        let mut req = serde_json::to_value(signed(Some(AUD), ALL_SIGNED)).expect("json");
        req["headers"] = serde_json::Value::Object(many);
        assert!(serde_json::from_value::<SignedIdentityRequest>(req).is_err());
    }

    #[test]
    fn token_digests_match_only_their_token() {
        let token = InstallationToken::new("ghs_".to_owned() + &"a".repeat(516));
        let hex = TokenDigest::of(token.expose()).to_hex();
        assert_eq!(hex.len(), 64);
        let digest = TokenDigest::parse_hex(&hex).expect("hex");
        assert!(digest.matches(&token));
        assert!(!digest.matches(&InstallationToken::new("ghs_other")));
        for bad in [
            "",
            "abc",
            &hex.to_ascii_uppercase(),
            &format!("{hex}0"),
            &hex.replacen(|c: char| c.is_ascii_hexdigit(), "g", 1),
        ] {
            assert_eq!(
                TokenDigest::parse_hex(bad),
                Err(RequestError::RejectedTokenDigest),
                "{bad}"
            );
        }
        assert!(!format!("{digest:?}").contains("ghs_"));
    }
}

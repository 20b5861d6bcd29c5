//! Token broker protocol: request/response types shared by the App and its clients, the checks
//! on the caller's signed `sts:GetCallerIdentity` request, and the policy.
//!
//! The caller proves its AWS identity the way Vault's AWS IAM auth does: it signs a
//! `GetCallerIdentity` request with its own credentials and hands the signed request (method, URL,
//! headers, body) to the broker, which forwards it to STS and reads the ARN from the answer. The
//! request is bound to this broker by the [`AUDIENCE_HEADER`], which must be covered by the
//! signature, and kept fresh by `X-Amz-Date`. Everything here is pure: the App does the I/O.
//!
//! What the broker checks is exactly what it forwards: every header name appears once, the
//! `Authorization` header has exactly one `Credential`, `SignedHeaders` and `Signature`, and the
//! request sent to STS carries an `Authorization` rebuilt from those three parts and only the
//! signed headers, to an STS endpoint of the broker's own allowlist.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Header naming the broker a signed identity request is meant for; it must be signed.
pub const AUDIENCE_HEADER: &str = "x-ssm-broker-audience";
/// The only body a signed identity request may carry.
pub const GET_CALLER_IDENTITY_BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
/// How far `X-Amz-Date` may be from the broker's clock.
pub const MAX_IDENTITY_AGE: Duration = Duration::minutes(5);
/// The global STS endpoint (signed for `us-east-1`).
pub const GLOBAL_STS_ENDPOINT: &str = "https://sts.amazonaws.com/";
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

/// A validated `owner/name`, compared case-insensitively as GitHub does.
///
/// GitHub's grammar: the owner is 1–39 letters, digits or `-`; the name 1–100 letters, digits,
/// `.`, `_` or `-`, and not `.` or `..`. Anything else is refused before it is used or logged, so
/// a validated name is safe to print as is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoName {
    owner: String,
    name: String,
}

/// Why a token request is malformed (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(
        "repository must be \"owner/name\": owner of letters, digits and '-' (at most 39), name of letters, digits, '.', '_' and '-' (at most 100)"
    )]
    Repository,
    #[error("permissions must name at least one permission")]
    NoPermissions,
    #[error("permission {0:?} is not a GitHub permission name")]
    PermissionName(String),
    #[error("permission level {0:?} must be read, write or admin")]
    PermissionLevel(String),
    #[error(
        "rejected_token_sha256 must be 64 lowercase hex digits: the SHA-256 of the rejected token"
    )]
    RejectedTokenDigest,
}

impl RepoName {
    pub fn parse(s: &str) -> Result<Self, RequestError> {
        let (owner, name) = s.split_once('/').ok_or(RequestError::Repository)?;
        let owner_ok = (1..=39).contains(&owner.len())
            && owner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let name_ok = (1..=100).contains(&name.len())
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !owner_ok || !name_ok {
            return Err(RequestError::Repository);
        }
        Ok(Self {
            owner: owner.to_ascii_lowercase(),
            name: name.to_ascii_lowercase(),
        })
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// GitHub permission levels, ordered so that `write` covers `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Read,
    Write,
    Admin,
}

impl Level {
    pub fn parse(s: &str) -> Result<Self, RequestError> {
        match s {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "admin" => Ok(Self::Admin),
            other => Err(RequestError::PermissionLevel(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

/// Requested or granted permissions, validated: name → level.
pub type Permissions = BTreeMap<String, Level>;

/// Validates the permission map of a request (names are `snake_case` ASCII, levels known).
pub fn parse_permissions(raw: &BTreeMap<String, String>) -> Result<Permissions, RequestError> {
    if raw.is_empty() {
        return Err(RequestError::NoPermissions);
    }
    raw.iter()
        .map(|(name, level)| {
            let ok = !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
            if !ok {
                return Err(RequestError::PermissionName(name.clone()));
            }
            Ok((name.clone(), Level::parse(level)?))
        })
        .collect()
}

/// Renders validated permissions back to GitHub's wire shape.
pub fn permissions_to_wire(perms: &Permissions) -> BTreeMap<String, String> {
    perms
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().to_owned()))
        .collect()
}

/// Whether GitHub granted exactly what was asked: every requested permission at its level and
/// nothing more, except `metadata: read`, which GitHub adds to every installation token.
pub fn scope_matches(requested: &Permissions, granted: &BTreeMap<String, String>) -> bool {
    let asked = requested
        .iter()
        .all(|(name, level)| granted.get(name).map(String::as_str) == Some(level.as_str()));
    let nothing_more = granted.iter().all(|(name, level)| {
        requested.contains_key(name) || (name == "metadata" && level == "read")
    });
    asked && nothing_more
}

/// Why an STS endpoint setting is refused (at start-up).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StsConfigError {
    #[error("{0:?} is not an AWS region name (like us-east-1 or eu-central-2)")]
    Region(String),
    #[error("STS endpoint {0:?} must be an absolute http(s) URL without query or fragment")]
    Url(String),
}

/// Whether `region` is shaped like an AWS region name: lowercase letters in two or more
/// hyphenated parts, then a number (`us-east-1`, `us-gov-west-1`, `cn-north-1`).
pub fn is_region_name(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let Some((number, words)) = parts.split_last() else {
        return false;
    };
    region.len() <= 32
        && words.len() >= 2
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && !number.is_empty()
        && number.len() <= 2
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// The regional STS endpoint of `region`: `https://sts.REGION.amazonaws.com/`
/// (`.amazonaws.com.cn` in the China regions). The host is built only from a validated name.
pub fn regional_sts_endpoint(region: &str) -> Result<String, StsConfigError> {
    if !is_region_name(region) {
        return Err(StsConfigError::Region(region.to_owned()));
    }
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    Ok(format!("https://sts.{region}.{suffix}/"))
}

/// One STS endpoint the broker accepts and forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsEndpoint {
    /// The URL identity requests must name and are forwarded to, with a trailing `/`.
    url: String,
    /// `host[:port]`, which the signed `Host` header must equal.
    authority: String,
    /// The region the credential scope must name; `None` for a configured override (an
    /// emulator or a VPC endpoint), where any region is left to STS to judge.
    region: Option<String>,
}

impl StsEndpoint {
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn authority(&self) -> &str {
        &self.authority
    }

    pub fn signing_region(&self) -> Option<&str> {
        self.region.as_deref()
    }
}

/// The STS endpoints the broker accepts: the global one and those of an allowlist of regions,
/// all AWS-owned hosts built here, or else exactly one configured override. A caller never
/// chooses a host: its URL must equal one of these, and the request goes to that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsEndpoints(Vec<StsEndpoint>);

impl StsEndpoints {
    /// `https://sts.amazonaws.com/` and the regional endpoint of each of `regions`.
    pub fn global_and_regions<S: AsRef<str>>(regions: &[S]) -> Result<Self, StsConfigError> {
        let mut endpoints = vec![StsEndpoint {
            url: GLOBAL_STS_ENDPOINT.to_owned(),
            authority: "sts.amazonaws.com".to_owned(),
            region: Some("us-east-1".to_owned()),
        }];
        for region in regions {
            let region = region.as_ref().trim();
            let url = regional_sts_endpoint(region)?;
            if endpoints.iter().any(|e| e.url == url) {
                continue;
            }
            let authority = url
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .to_owned();
            endpoints.push(StsEndpoint {
                url,
                authority,
                region: Some(region.to_owned()),
            });
        }
        Ok(Self(endpoints))
    }

    /// Exactly `url` (an emulator, a VPC endpoint): `http(s)://host[:port]/path`, no query.
    pub fn only(url: &str) -> Result<Self, StsConfigError> {
        let bad = || StsConfigError::Url(url.to_owned());
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(bad)?;
        if url.contains(['?', '#']) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() || authority.contains('@') {
            return Err(bad());
        }
        let url = if url.ends_with('/') {
            url.to_owned()
        } else {
            format!("{url}/")
        };
        Ok(Self(vec![StsEndpoint {
            url,
            authority: authority.to_ascii_lowercase(),
            region: None,
        }]))
    }

    /// The accepted endpoint `url` names (a trailing `/` aside), if any.
    pub fn find(&self, url: &str) -> Option<&StsEndpoint> {
        if url.contains(['?', '#']) {
            return None;
        }
        self.0
            .iter()
            .find(|e| trim_slash(&e.url) == trim_slash(url))
    }

    pub fn iter(&self) -> impl Iterator<Item = &StsEndpoint> {
        self.0.iter()
    }

    /// The accepted URLs, comma-separated (for error messages and the start-up log).
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|e| e.url.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What the broker expects of a signed identity request.
#[derive(Debug, Clone)]
pub struct IdentityExpectations<'a> {
    /// The STS endpoints the request may be signed for.
    pub sts: &'a StsEndpoints,
    /// This broker's audience.
    pub audience: &'a str,
    pub now: DateTime<Utc>,
}

/// Why a signed identity request is rejected (401). Messages are safe to return to the caller
/// and to log: caller-supplied text appears only escaped (`{:?}`) and shortened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("identity request method must be POST")]
    Method,
    #[error(
        "identity request URL {received} is not an STS endpoint this broker accepts (expected one of: {expected})"
    )]
    Url { expected: String, received: String },
    #[error("identity request body must be exactly {GET_CALLER_IDENTITY_BODY}")]
    Body,
    #[error("identity request has no valid SigV4 Authorization header: {0}")]
    Authorization(&'static str),
    #[error("identity request lacks the {AUDIENCE_HEADER} header")]
    MissingAudience,
    #[error("identity request is meant for another audience")]
    WrongAudience,
    #[error("the {AUDIENCE_HEADER} header is not covered by the signature")]
    AudienceNotSigned,
    #[error("identity request has no valid X-Amz-Date header")]
    MissingDate,
    #[error("identity request is older or newer than five minutes")]
    Stale,
    #[error(
        "identity request header {0} appears more than once (header names are case-insensitive)"
    )]
    DuplicateHeader(String),
    #[error("identity request header {0} is signed but missing")]
    SignedHeaderMissing(String),
    #[error("identity request header {0} has a value with control characters")]
    HeaderValue(String),
    #[error(
        "identity request Host header must be {expected} (the STS endpoint's host), got {received}"
    )]
    Host { expected: String, received: String },
    #[error("identity request credential scope must be {expected}, got {received}")]
    CredentialScope { expected: String, received: String },
    #[error("STS did not return a GetCallerIdentityResponse")]
    StsResponse,
    #[error("caller ARN {0:?} is not an IAM role, assumed role or user")]
    Arn(String),
}

/// A caller-supplied string for an error message or a log line: escaped (`{:?}`, so no line
/// break or terminal escape survives) and cut to `max` characters.
pub fn escaped(untrusted: &str, max: usize) -> String {
    let cut: String = untrusted.chars().take(max).collect();
    if cut.len() < untrusted.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// A signed identity request that passed every local check, ready to be forwarded to STS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardRequest {
    /// The accepted STS endpoint it was signed for, where it is sent.
    pub url: String,
    /// Headers to send: the signed ones (minus `host` and `content-length`, which the HTTP client
    /// sets from the URL and body) and an `authorization` rebuilt from the checked parts, names
    /// lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// `X-Amz-Date`.
    pub signed_at: DateTime<Utc>,
}

/// The three parts of a SigV4 `Authorization` header, each present exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigV4Authorization<'a> {
    /// `AKID/YYYYMMDD/region/service/aws4_request`.
    pub credential: &'a str,
    /// Lowercase header names, strictly ascending.
    pub signed_headers: Vec<&'a str>,
    /// 64 lowercase hex digits.
    pub signature: &'a str,
}

impl<'a> SigV4Authorization<'a> {
    /// Parses `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`: exactly these three
    /// components, each once, in any order; anything else is refused.
    pub fn parse(header: &'a str) -> Result<Self, IdentityError> {
        let bad = IdentityError::Authorization;
        let rest = header
            .strip_prefix("AWS4-HMAC-SHA256 ")
            .ok_or(bad("the scheme must be AWS4-HMAC-SHA256"))?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (key, value) = part
                .trim_matches(' ')
                .split_once('=')
                .ok_or(bad("every component must be Name=value"))?;
            let slot = match key {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed,
                "Signature" => &mut signature,
                _ => {
                    return Err(bad(
                        "only Credential, SignedHeaders and Signature may appear",
                    ));
                }
            };
            if slot.replace(value).is_some() {
                return Err(bad(
                    "Credential, SignedHeaders and Signature must each appear exactly once",
                ));
            }
        }
        let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature)
        else {
            return Err(bad(
                "Credential, SignedHeaders and Signature are all required",
            ));
        };
        let signed_headers: Vec<&str> = signed.split(';').collect();
        let names_ok = signed_headers.iter().all(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
        let ascending = signed_headers.windows(2).all(|w| w[0] < w[1]);
        if !names_ok || !ascending {
            return Err(bad(
                "SignedHeaders must be distinct lowercase header names in ascending order",
            ));
        }
        let signature_ok = signature.len() == 64
            && signature
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !signature_ok {
            return Err(bad("Signature must be 64 lowercase hex digits"));
        }
        let scope: Vec<&str> = credential.split('/').collect();
        let credential_ok = scope.len() == 5
            && (1..=128).contains(&scope[0].len())
            && scope[0].bytes().all(|b| b.is_ascii_alphanumeric())
            && scope[1].len() == 8
            && scope[1].bytes().all(|b| b.is_ascii_digit())
            && scope[4] == "aws4_request";
        if !credential_ok {
            return Err(bad(
                "Credential must be ACCESS_KEY_ID/YYYYMMDD/REGION/sts/aws4_request",
            ));
        }
        Ok(Self {
            credential,
            signed_headers,
            signature,
        })
    }

    /// `YYYYMMDD/region/service` of the credential scope.
    fn scope(&self) -> (&'a str, &'a str, &'a str) {
        let mut parts = self.credential.split('/').skip(1);
        let mut next = || parts.next().unwrap_or_default();
        (next(), next(), next())
    }

    fn signs(&self, name: &str) -> bool {
        self.signed_headers.contains(&name)
    }

    /// The header as forwarded: built from the checked parts, nothing else.
    pub fn render(&self) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential={}, SignedHeaders={}, Signature={}",
            self.credential,
            self.signed_headers.join(";"),
            self.signature
        )
    }
}

/// Checks a signed identity request against the broker's expectations without any I/O.
pub fn check_identity(
    req: &SignedIdentityRequest,
    expect: &IdentityExpectations<'_>,
) -> Result<ForwardRequest, IdentityError> {
    if req.method != "POST" {
        return Err(IdentityError::Method);
    }
    let endpoint = expect
        .sts
        .find(&req.url)
        .ok_or_else(|| IdentityError::Url {
            expected: expect.sts.describe(),
            received: escaped(&req.url, 200),
        })?;
    if !is_get_caller_identity(&req.body) {
        return Err(IdentityError::Body);
    }
    // One value per case-insensitive name: a second copy is refused, never silently chosen.
    let mut headers: BTreeMap<String, &str> = BTreeMap::new();
    for (name, value) in req.headers.iter() {
        let lower = name.to_ascii_lowercase();
        if headers.contains_key(&lower) {
            return Err(IdentityError::DuplicateHeader(escaped(&lower, 64)));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(IdentityError::HeaderValue(escaped(&lower, 64)));
        }
        headers.insert(lower, value);
    }
    let auth = SigV4Authorization::parse(
        headers
            .get("authorization")
            .ok_or(IdentityError::Authorization("it is missing"))?,
    )?;
    let audience = headers
        .get(AUDIENCE_HEADER)
        .ok_or(IdentityError::MissingAudience)?;
    if *audience != expect.audience {
        return Err(IdentityError::WrongAudience);
    }
    if !auth.signs(AUDIENCE_HEADER) {
        return Err(IdentityError::AudienceNotSigned);
    }
    let raw_date = headers
        .get("x-amz-date")
        .copied()
        .filter(|d| d.len() == 16 && d.is_ascii())
        .ok_or(IdentityError::MissingDate)?;
    let date = NaiveDateTime::parse_from_str(raw_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| IdentityError::MissingDate)?
        .and_utc();
    if !auth.signs("x-amz-date") {
        return Err(IdentityError::MissingDate);
    }
    if (expect.now - date).abs() > MAX_IDENTITY_AGE {
        return Err(IdentityError::Stale);
    }
    let host = headers.get("host").copied().unwrap_or_default();
    if !auth.signs("host") || !host.eq_ignore_ascii_case(endpoint.authority()) {
        return Err(IdentityError::Host {
            expected: endpoint.authority().to_owned(),
            received: escaped(host, 100),
        });
    }
    let (day, region, service) = auth.scope();
    let want_region = endpoint.signing_region().unwrap_or(region);
    let want_scope = format!("{}/{want_region}/sts", &raw_date[..8]);
    if (day, region, service) != (&raw_date[..8], want_region, "sts") {
        return Err(IdentityError::CredentialScope {
            expected: want_scope,
            received: escaped(&format!("{day}/{region}/{service}"), 100),
        });
    }
    let mut forward = vec![("authorization".to_owned(), auth.render())];
    for name in &auth.signed_headers {
        let value = headers
            .get(*name)
            .ok_or_else(|| IdentityError::SignedHeaderMissing(escaped(name, 64)))?;
        if !is_hop_or_framing(name) {
            forward.push(((*name).to_owned(), (*value).to_owned()));
        }
    }
    Ok(ForwardRequest {
        url: endpoint.url().to_owned(),
        headers: forward,
        body: req.body.clone(),
        signed_at: date,
    })
}

/// Headers the HTTP client sets itself (from the URL and body) or that belong to one hop.
fn is_hop_or_framing(name: &str) -> bool {
    matches!(
        name,
        "host"
            | "content-length"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "expect"
            | "proxy-authorization"
            | "proxy-connection"
            | "authorization"
    )
}

fn trim_slash(url: &str) -> &str {
    url.strip_suffix('/').unwrap_or(url)
}

fn is_get_caller_identity(body: &str) -> bool {
    let mut pairs: Vec<&str> = body.split('&').collect();
    pairs.sort_unstable();
    pairs == ["Action=GetCallerIdentity", "Version=2011-06-15"]
}

/// The caller as the policy sees it: assumed roles are mapped to their role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Principal {
    Role {
        partition: String,
        account: String,
        name: String,
    },
    User {
        partition: String,
        account: String,
        name: String,
    },
}

impl Principal {
    /// Parses an IAM role, IAM user or STS assumed-role ARN. Role and user paths are dropped
    /// (an assumed-role ARN does not carry them, so the policy matches on account and name).
    pub fn from_arn(arn: &str) -> Result<Self, IdentityError> {
        let bad = || IdentityError::Arn(arn.to_owned());
        let parsed = crate::arn::Arn::parse(arn).map_err(|_| bad())?;
        let (partition, service, account, res) = (
            parsed.partition.as_str(),
            parsed.service.as_str(),
            parsed.account.as_str(),
            parsed.resource.as_str(),
        );
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let (kind, path) = res.split_once('/').ok_or_else(bad)?;
        let (partition, account) = (partition.to_owned(), account.to_owned());
        let name = match (service, kind) {
            ("sts", "assumed-role") => path.split_once('/').map(|(role, _session)| role),
            ("iam", "role" | "user") => path.rsplit('/').next(),
            _ => None,
        }
        .filter(|n| !n.is_empty())
        .ok_or_else(bad)?
        .to_owned();
        Ok(match kind {
            "user" => Self::User {
                partition,
                account,
                name,
            },
            _ => Self::Role {
                partition,
                account,
                name,
            },
        })
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Role {
                partition,
                account,
                name,
            } => write!(f, "arn:{partition}:iam::{account}:role/{name}"),
            Self::User {
                partition,
                account,
                name,
            } => write!(f, "arn:{partition}:iam::{account}:user/{name}"),
        }
    }
}

/// Reads the caller's ARN from an STS `GetCallerIdentityResponse` XML document.
pub fn parse_caller_identity(xml: &str) -> Result<String, IdentityError> {
    let root = xml
        .find("<GetCallerIdentityResponse")
        .ok_or(IdentityError::StsResponse)?;
    let result = &xml[root..];
    let start = result.find("<Arn>").ok_or(IdentityError::StsResponse)? + "<Arn>".len();
    let len = result[start..]
        .find("</Arn>")
        .ok_or(IdentityError::StsResponse)?;
    let arn = result[start..start + len].trim();
    if arn.is_empty() || arn.contains(['<', '&']) {
        return Err(IdentityError::StsResponse);
    }
    Ok(arn.to_owned())
}

/// The policy file: which principals may get tokens for which repositories, with what.
///
/// ```json
/// {"rules": [{"principal": "arn:aws:iam::123456789012:role/integrity",
///             "repositories": ["acme/infra", "acme/*"],
///             "permissions": {"contents": "write"}}]}
/// ```
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub rules: Vec<PolicyRule>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// An IAM role or user ARN.
    pub principal: String,
    /// `owner/name` or `owner/*`.
    pub repositories: Vec<String>,
    pub permissions: BTreeMap<String, String>,
}

/// A compiled [`PolicyFile`].
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    principal: Principal,
    repositories: Vec<RepoPattern>,
    permissions: Permissions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RepoPattern {
    Exact(RepoName),
    Owner(String),
}

impl RepoPattern {
    fn matches(&self, repo: &RepoName) -> bool {
        match self {
            Self::Exact(r) => r == repo,
            Self::Owner(owner) => owner == repo.owner(),
        }
    }
}

/// Why a policy file does not load.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    #[error("rule {rule}: {message}")]
    Rule { rule: usize, message: String },
}

/// The policy's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(DenyReason),
}

/// Which part of the policy refused; returned to the caller (403) and audit-logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DenyReason {
    #[error("principal {0} is not in the broker policy")]
    UnknownPrincipal(String),
    #[error("principal {principal} may not get tokens for repository {repository}")]
    Repository {
        principal: String,
        repository: String,
    },
    #[error(
        "permission {permission}:{requested} exceeds what the policy allows for {repository} ({allowed})"
    )]
    Permission {
        repository: String,
        permission: String,
        requested: String,
        allowed: String,
    },
}

impl Policy {
    pub fn from_json(json: &str) -> Result<Self, PolicyError> {
        let file: PolicyFile = serde_json::from_str(json)?;
        Self::compile(file)
    }

    pub fn compile(file: PolicyFile) -> Result<Self, PolicyError> {
        let rules = file
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| {
                let err = |message: String| PolicyError::Rule { rule: i, message };
                let principal =
                    Principal::from_arn(&rule.principal).map_err(|e| err(e.to_string()))?;
                let repositories = rule
                    .repositories
                    .iter()
                    .map(|r| match r.strip_suffix("/*") {
                        Some(owner) => RepoName::parse(&format!("{owner}/x"))
                            .map(|n| RepoPattern::Owner(n.owner().to_owned())),
                        None => RepoName::parse(r).map(RepoPattern::Exact),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| err(e.to_string()))?;
                let permissions =
                    parse_permissions(&rule.permissions).map_err(|e| err(e.to_string()))?;
                Ok(Rule {
                    principal,
                    repositories,
                    permissions,
                })
            })
            .collect::<Result<_, PolicyError>>()?;
        Ok(Self { rules })
    }

    /// Decides whether `principal` may get a token for `repo` with `requested` permissions.
    /// Rules for the same principal and repository add up (the highest level wins).
    pub fn check(
        &self,
        principal: &Principal,
        repo: &RepoName,
        requested: &Permissions,
    ) -> Decision {
        let mine: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| &r.principal == principal)
            .collect();
        if mine.is_empty() {
            return Decision::Deny(DenyReason::UnknownPrincipal(principal.to_string()));
        }
        let applicable: Vec<&Rule> = mine
            .into_iter()
            .filter(|r| r.repositories.iter().any(|p| p.matches(repo)))
            .collect();
        if applicable.is_empty() {
            return Decision::Deny(DenyReason::Repository {
                principal: principal.to_string(),
                repository: repo.to_string(),
            });
        }
        for (permission, level) in requested {
            let allowed = applicable
                .iter()
                .filter_map(|r| r.permissions.get(permission))
                .max();
            if allowed.is_none_or(|a| a < level) {
                return Decision::Deny(DenyReason::Permission {
                    repository: repo.to_string(),
                    permission: permission.clone(),
                    requested: level.as_str().to_owned(),
                    allowed: allowed.map_or("none", |a| a.as_str()).to_owned(),
                });
            }
        }
        Decision::Allow
    }
}

/// Claims of the App's JWT, as GitHub requires them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppJwtClaims {
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

impl AppJwtClaims {
    /// `iat` 60 s in the past (GitHub's advice against clock drift) and `exp` 9 minutes ahead, so
    /// the whole window stays within GitHub's 10-minute limit. `now` is already skew-corrected.
    pub fn new(issuer: &str, now: DateTime<Utc>) -> Self {
        let now = now.timestamp();
        Self {
            iat: now - 60,
            exp: now + 540,
            iss: issuer.to_owned(),
        }
    }
}

/// Whether a cached token expiring at `expires_at` may still be handed out at `now`.
pub fn still_fresh(expires_at: DateTime<Utc>, now: DateTime<Utc>, margin: Duration) -> bool {
    now + margin < expires_at
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 1, 0, 0)
            .single()
            .expect("valid date")
    }

    const STS: &str = "https://sts.amazonaws.com/";
    const AUD: &str = "ssm-broker.example";

    const SIG: &str = "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024";
    const DATE: &str = "20261128T005800Z";

    fn auth(signed_list: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261128/us-east-1/sts/aws4_request, SignedHeaders={signed_list}, Signature={SIG}"
        )
    }

    fn signed(audience: Option<&str>, signed_list: &str) -> SignedIdentityRequest {
        let mut headers = BTreeMap::from([
            ("Host".to_owned(), "sts.amazonaws.com".to_owned()),
            (
                "Content-Type".to_owned(),
                "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
            ),
            ("X-Amz-Date".to_owned(), DATE.to_owned()),
            ("X-Amz-Security-Token".to_owned(), "session".to_owned()),
            ("Authorization".to_owned(), auth(signed_list)),
        ]);
        if let Some(a) = audience {
            headers.insert(AUDIENCE_HEADER.to_owned(), a.to_owned());
        }
        SignedIdentityRequest {
            method: "POST".into(),
            url: STS.into(),
            headers: headers.into(),
            body: GET_CALLER_IDENTITY_BODY.into(),
        }
    }

    const ALL_SIGNED: &str =
        "content-type;host;x-amz-date;x-amz-security-token;x-ssm-broker-audience";

    fn global() -> StsEndpoints {
        StsEndpoints::global_and_regions::<&str>(&[]).expect("endpoints")
    }

    fn expect(sts: &StsEndpoints) -> IdentityExpectations<'_> {
        IdentityExpectations {
            sts,
            audience: AUD,
            now: now(),
        }
    }

    fn check(req: &SignedIdentityRequest) -> Result<ForwardRequest, IdentityError> {
        check_identity(req, &expect(&global()))
    }

    #[test]
    fn good_identity_is_forwarded_with_signed_headers_only() {
        let mut req = signed(Some(AUD), ALL_SIGNED);
        req.headers.insert("X-Unsigned".into(), "dropped".into());
        let fwd = check(&req).expect("accepted");
        let names: Vec<&str> = fwd.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "authorization",
                "content-type",
                "x-amz-date",
                "x-amz-security-token",
                AUDIENCE_HEADER
            ]
        );
        assert_eq!(fwd.body, GET_CALLER_IDENTITY_BODY);
        assert_eq!(fwd.url, STS);
        assert_eq!(fwd.headers[0].1, auth(ALL_SIGNED));
    }

    #[test]
    fn identity_rejections() {
        let cases: Vec<(SignedIdentityRequest, IdentityError)> = vec![
            (signed(None, ALL_SIGNED), IdentityError::MissingAudience),
            (
                signed(Some("other"), ALL_SIGNED),
                IdentityError::WrongAudience,
            ),
            (
                signed(
                    Some(AUD),
                    "content-type;host;x-amz-date;x-amz-security-token",
                ),
                IdentityError::AudienceNotSigned,
            ),
            (
                SignedIdentityRequest {
                    method: "GET".into(),
                    ..signed(Some(AUD), ALL_SIGNED)
                },
                IdentityError::Method,
            ),
            (
                SignedIdentityRequest {
                    url: "https://sts.amazonaws.com/?Action=GetCallerIdentity".into(),
                    ..signed(Some(AUD), ALL_SIGNED)
                },
                IdentityError::Url {
                    expected: STS.into(),
                    received: "\"https://sts.amazonaws.com/?Action=GetCallerIdentity\"".into(),
                },
            ),
            (
                SignedIdentityRequest {
                    url: "https://evil.example/".into(),
                    ..signed(Some(AUD), ALL_SIGNED)
                },
                IdentityError::Url {
                    expected: STS.into(),
                    received: "\"https://evil.example/\"".into(),
                },
            ),
            (
                SignedIdentityRequest {
                    body: "Action=AssumeRole&Version=2011-06-15".into(),
                    ..signed(Some(AUD), ALL_SIGNED)
                },
                IdentityError::Body,
            ),
            (
                SignedIdentityRequest {
                    body: format!("{GET_CALLER_IDENTITY_BODY}&Extra=1"),
                    ..signed(Some(AUD), ALL_SIGNED)
                },
                IdentityError::Body,
            ),
        ];
        for (req, want) in cases {
            assert_eq!(check(&req), Err(want));
        }
    }

    #[test]
    fn identity_freshness_window_is_five_minutes_both_ways() {
        let req = signed(Some(AUD), ALL_SIGNED); // signed at 00:58:00
        let sts = global();
        let at = |m: i64, s: i64| IdentityExpectations {
            now: now() - Duration::minutes(2) + Duration::minutes(m) + Duration::seconds(s),
            ..expect(&sts)
        };
        assert!(check_identity(&req, &at(5, 0)).is_ok());
        assert_eq!(check_identity(&req, &at(5, 1)), Err(IdentityError::Stale));
        assert!(check_identity(&req, &at(-5, 0)).is_ok());
        assert_eq!(check_identity(&req, &at(-5, -1)), Err(IdentityError::Stale));
    }

    #[test]
    fn missing_or_unsigned_date_and_authorization_are_rejected() {
        let mut req = signed(Some(AUD), ALL_SIGNED);
        req.headers.remove("X-Amz-Date");
        assert_eq!(check(&req), Err(IdentityError::MissingDate));
        let req = signed(Some(AUD), "content-type;host;x-ssm-broker-audience");
        assert_eq!(check(&req), Err(IdentityError::MissingDate));
        let mut req = signed(Some(AUD), ALL_SIGNED);
        req.headers
            .insert("Authorization".into(), "Bearer x".into());
        assert!(matches!(check(&req), Err(IdentityError::Authorization(_))));
        let mut req = signed(Some(AUD), ALL_SIGNED);
        req.headers.remove("Authorization");
        assert!(matches!(check(&req), Err(IdentityError::Authorization(_))));
        let mut req = signed(Some(AUD), ALL_SIGNED);
        req.headers.insert("authorization".into(), "again".into());
        assert_eq!(
            check(&req),
            Err(IdentityError::DuplicateHeader("\"authorization\"".into()))
        );
    }

    #[test]
    fn trailing_slash_of_the_sts_url_does_not_matter() {
        let mut req = signed(Some(AUD), ALL_SIGNED);
        req.url = "https://sts.amazonaws.com".into();
        assert!(check(&req).is_ok());
    }

    #[test]
    fn principals_from_arns() {
        let role =
            Principal::from_arn("arn:aws:sts::123456789012:assumed-role/integrity/session-1")
                .expect("assumed role");
        assert_eq!(role.to_string(), "arn:aws:iam::123456789012:role/integrity");
        assert_eq!(
            Principal::from_arn("arn:aws:iam::123456789012:role/service/integrity").expect("role"),
            role
        );
        assert_eq!(
            Principal::from_arn("arn:aws-cn:iam::123456789012:user/alice")
                .expect("user")
                .to_string(),
            "arn:aws-cn:iam::123456789012:user/alice"
        );
        for bad in [
            "arn:aws:iam::123456789012:root",
            "arn:aws:sts::123456789012:federated-user/bob",
            "arn:aws:iam::12345:role/x",
            "arn:aws:sts::123456789012:assumed-role/nosession",
            "not an arn",
        ] {
            assert!(Principal::from_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_sts_xml() {
        let xml = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:sts::123456789012:assumed-role/integrity/s</Arn>
    <UserId>AROA:s</UserId>
    <Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#;
        assert_eq!(
            parse_caller_identity(xml),
            Ok("arn:aws:sts::123456789012:assumed-role/integrity/s".into())
        );
        assert!(parse_caller_identity("<ErrorResponse><Arn>x</Arn></ErrorResponse>").is_err());
        assert!(parse_caller_identity("{}").is_err());
    }

    fn policy() -> Policy {
        Policy::from_json(
            r#"{"rules": [
              {"principal": "arn:aws:iam::123456789012:role/integrity",
               "repositories": ["Acme/Infra"], "permissions": {"contents": "write"}},
              {"principal": "arn:aws:iam::123456789012:role/integrity",
               "repositories": ["acme/*"], "permissions": {"metadata": "read", "contents": "read"}}
            ]}"#,
        )
        .expect("policy")
    }

    fn perms(p: &[(&str, &str)]) -> Permissions {
        parse_permissions(
            &p.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
        .expect("permissions")
    }

    #[test]
    fn policy_decisions() {
        let p = policy();
        let role =
            Principal::from_arn("arn:aws:sts::123456789012:assumed-role/integrity/x").expect("arn");
        let infra = RepoName::parse("acme/infra").expect("repo");
        let other = RepoName::parse("acme/web").expect("repo");
        assert_eq!(
            p.check(&role, &infra, &perms(&[("contents", "write")])),
            Decision::Allow
        );
        assert_eq!(
            p.check(
                &role,
                &infra,
                &perms(&[("contents", "read"), ("metadata", "read")])
            ),
            Decision::Allow
        );
        assert_eq!(
            p.check(&role, &other, &perms(&[("contents", "read")])),
            Decision::Allow
        );
        assert!(matches!(
            p.check(&role, &other, &perms(&[("contents", "write")])),
            Decision::Deny(DenyReason::Permission { ref allowed, .. }) if allowed == "read"
        ));
        assert!(matches!(
            p.check(&role, &infra, &perms(&[("issues", "read")])),
            Decision::Deny(DenyReason::Permission { ref allowed, .. }) if allowed == "none"
        ));
        let elsewhere = RepoName::parse("evil/infra").expect("repo");
        assert!(matches!(
            p.check(&role, &elsewhere, &perms(&[("contents", "read")])),
            Decision::Deny(DenyReason::Repository { .. })
        ));
        let stranger = Principal::from_arn("arn:aws:iam::123456789012:role/other").expect("arn");
        assert!(matches!(
            p.check(&stranger, &infra, &perms(&[("contents", "read")])),
            Decision::Deny(DenyReason::UnknownPrincipal(_))
        ));
        let other_account =
            Principal::from_arn("arn:aws:iam::210987654321:role/integrity").expect("arn");
        assert!(matches!(
            p.check(&other_account, &infra, &perms(&[("contents", "read")])),
            Decision::Deny(DenyReason::UnknownPrincipal(_))
        ));
    }

    #[test]
    fn bad_policies_say_which_rule() {
        let err = Policy::from_json(
            r#"{"rules": [{"principal": "arn:aws:iam::123456789012:role/a", "repositories": ["a/b"],
                 "permissions": {"contents": "owner"}}]}"#,
        )
        .expect_err("bad level");
        assert!(err.to_string().starts_with("rule 0:"), "{err}");
        assert!(Policy::from_json(r#"{"rules": [], "extra": 1}"#).is_err());
    }

    #[test]
    fn request_validation() {
        assert!(RepoName::parse("acme/infra").is_ok());
        for bad in [
            "acme",
            "acme/",
            "/infra",
            "a/b/c",
            "acme/..",
            "ac me/x",
            "acme/inf?ra",
        ] {
            assert_eq!(RepoName::parse(bad), Err(RequestError::Repository), "{bad}");
        }
        assert_eq!(
            parse_permissions(&BTreeMap::new()),
            Err(RequestError::NoPermissions)
        );
        assert!(matches!(
            parse_permissions(&BTreeMap::from([("contents".into(), "owner".into())])),
            Err(RequestError::PermissionLevel(_))
        ));
        assert!(matches!(
            parse_permissions(&BTreeMap::from([("Contents".into(), "read".into())])),
            Err(RequestError::PermissionName(_))
        ));
    }

    #[test]
    fn scope_must_match_exactly() {
        let want = perms(&[("contents", "write")]);
        assert!(scope_matches(
            &want,
            &BTreeMap::from([("contents".into(), "write".into())])
        ));
        assert!(!scope_matches(
            &want,
            &BTreeMap::from([("contents".into(), "read".into())])
        ));
        assert!(!scope_matches(
            &want,
            &BTreeMap::from([
                ("contents".into(), "write".into()),
                ("issues".into(), "write".into())
            ])
        ));
        // GitHub adds metadata:read to every token; anything above it is still a mismatch.
        let with_metadata = |level: &str| {
            BTreeMap::from([
                ("contents".into(), "write".into()),
                ("metadata".into(), level.into()),
            ])
        };
        assert!(scope_matches(&want, &with_metadata("read")));
        assert!(!scope_matches(&want, &with_metadata("write")));
        assert!(!scope_matches(&want, &BTreeMap::new()));
    }

    #[test]
    fn jwt_window_fits_githubs_ten_minutes() {
        let c = AppJwtClaims::new("42", now());
        assert_eq!(c.iat, now().timestamp() - 60);
        assert!(c.exp - c.iat <= 600);
        assert!(c.exp > now().timestamp());
    }

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
    fn freshness_margin() {
        let exp = now() + Duration::minutes(10);
        assert!(still_fresh(exp, now(), Duration::minutes(5)));
        assert!(!still_fresh(
            exp,
            now() + Duration::minutes(5),
            Duration::minutes(5)
        ));
    }

    // ---- Issue 10, point 1: what is checked is what is forwarded -----------------------------

    /// The attack: a request signed without the audience header, with the header added
    /// afterwards and a second `SignedHeaders` (naming it) appended to `Authorization`. The old
    /// checker read the last `SignedHeaders`; STS verifies with the first.
    #[test]
    fn audience_added_after_signing_with_a_second_signed_headers_is_refused() {
        let without = "content-type;host;x-amz-date;x-amz-security-token";
        let mut req = signed(None, without);
        req.headers
            .insert(AUDIENCE_HEADER.to_owned(), AUD.to_owned());
        let smuggled = format!("{}, SignedHeaders={ALL_SIGNED}", auth(without));
        req.headers.insert("Authorization".into(), smuggled);
        let err = check(&req).expect_err("a second SignedHeaders is refused");
        assert!(
            matches!(err, IdentityError::Authorization(m) if m.contains("exactly once")),
            "{err}"
        );
        // The same with the components in another order, or a second Credential or Signature.
        for extra in [
            format!(", Signature={SIG}"),
            ", Credential=AKIAIOSFODNN7EXAMPLE/20261128/us-east-1/sts/aws4_request".to_owned(),
            ", X-Extra=1".to_owned(),
        ] {
            let mut req = signed(Some(AUD), ALL_SIGNED);
            req.headers.insert(
                "Authorization".into(),
                format!("{}{extra}", auth(ALL_SIGNED)),
            );
            assert!(
                matches!(check(&req), Err(IdentityError::Authorization(_))),
                "{extra}"
            );
        }
        let reordered = format!(
            "AWS4-HMAC-SHA256 SignedHeaders={without}, Signature={SIG}, SignedHeaders={ALL_SIGNED}, Credential=AKIAIOSFODNN7EXAMPLE/20261128/us-east-1/sts/aws4_request"
        );
        let mut req = signed(Some(AUD), ALL_SIGNED);
        req.headers.insert("Authorization".into(), reordered);
        assert!(matches!(check(&req), Err(IdentityError::Authorization(_))));
    }

    #[test]
    fn authorization_components_are_strict() {
        let cases = [
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261128/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date;x-ssm-broker-audience",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261128/us-east-1/sts/aws4_request, SignedHeaders=x-amz-date;host;x-ssm-broker-audience, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261128/us-east-1/sts/aws4_request, SignedHeaders=Host;x-amz-date;x-ssm-broker-audience, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261128/us-east-1/sts/aws4_request, SignedHeaders=host;host;x-amz-date, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261128/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=XYZ",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261128/us-east-1/sts, SignedHeaders=host;x-amz-date, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
            "AWS4-HMAC-SHA1 Credential=AKIAIOSFODNN7EXAMPLE/20261128/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
        ];
        for header in cases {
            assert!(
                matches!(
                    SigV4Authorization::parse(header),
                    Err(IdentityError::Authorization(_))
                ),
                "{header}"
            );
        }
        let ok = SigV4Authorization::parse(
            "AWS4-HMAC-SHA256 Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024,SignedHeaders=host;x-amz-date,   Credential=AKIAIOSFODNN7EXAMPLE/20261128/us-east-1/sts/aws4_request",
        )
        .expect("any order, any spacing");
        assert_eq!(
            ok.render(),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261128/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024"
        );
    }

    #[test]
    fn every_header_name_appears_once_in_any_case() {
        for (name, value) in [
            ("x-amz-date", DATE),
            ("HOST", "sts.amazonaws.com"),
            ("X-SSM-Broker-Audience", AUD),
            ("authorization", "AWS4-HMAC-SHA256 x"),
        ] {
            let mut req = signed(Some(AUD), ALL_SIGNED);
            req.headers.append(name, value);
            let err = check(&req).expect_err("duplicate");
            assert_eq!(
                err,
                IdentityError::DuplicateHeader(format!("{:?}", name.to_ascii_lowercase()))
            );
            assert!(
                err.to_string()
                    .contains(&format!("{:?}", name.to_ascii_lowercase())),
                "the message names the header: {err}"
            );
        }
        // Byte-identical JSON keys are kept too, and refused.
        let mut json = serde_json::to_value(signed(Some(AUD), ALL_SIGNED)).expect("json");
        json["headers"]
            .as_object_mut()
            .expect("object")
            .remove("X-Amz-Date");
        let text = json.to_string().replacen(
            "\"headers\":{",
            &format!("\"headers\":{{\"X-Amz-Date\":\"{DATE}\",\"X-Amz-Date\":\"{DATE}\","),
            1,
        );
        let req: SignedIdentityRequest = serde_json::from_str(&text).expect("parses");
        assert_eq!(req.headers.len(), 7);
        assert_eq!(
            check(&req),
            Err(IdentityError::DuplicateHeader("\"x-amz-date\"".into()))
        );
    }

    #[test]
    fn forwarded_request_is_rebuilt_from_the_checked_parts() {
        let mut req = signed(Some(AUD), ALL_SIGNED);
        let spaced = format!(
            "AWS4-HMAC-SHA256 Signature={SIG},  SignedHeaders={ALL_SIGNED} , Credential=AKIAIOSFODNN7EXAMPLE/20261128/us-east-1/sts/aws4_request"
        );
        req.headers.insert("Authorization".into(), spaced);
        req.headers
            .insert("X-Forwarded-For".into(), "1.2.3.4".into());
        req.headers.insert("Content-Length".into(), "43".into());
        let fwd = check(&req).expect("accepted");
        assert_eq!(
            fwd.headers,
            [
                ("authorization".to_owned(), auth(ALL_SIGNED)),
                (
                    "content-type".to_owned(),
                    "application/x-www-form-urlencoded; charset=utf-8".to_owned()
                ),
                ("x-amz-date".to_owned(), DATE.to_owned()),
                ("x-amz-security-token".to_owned(), "session".to_owned()),
                (AUDIENCE_HEADER.to_owned(), AUD.to_owned()),
            ]
        );
        assert_eq!(fwd.signed_at, now() - Duration::minutes(2));

        // A signed header that is not there, a Host for another server, an unsigned Host, a
        // scope for another region or day, and a value with a line break are refused.
        let mut req = signed(Some(AUD), &format!("{ALL_SIGNED};x-zz"));
        req.headers.remove("x-zz");
        assert_eq!(
            check(&req),
            Err(IdentityError::SignedHeaderMissing("\"x-zz\"".into()))
        );
        let mut req = signed(Some(AUD), ALL_SIGNED);
        req.headers.insert("Host".into(), "sts.evil.example".into());
        assert!(matches!(check(&req), Err(IdentityError::Host { .. })));
        let req = signed(
            Some(AUD),
            "content-type;x-amz-date;x-amz-security-token;x-ssm-broker-audience",
        );
        assert!(matches!(check(&req), Err(IdentityError::Host { .. })));
        for scope in [
            "20261128/eu-west-1/sts",
            "20261127/us-east-1/sts",
            "20261128/us-east-1/iam",
        ] {
            let mut req = signed(Some(AUD), ALL_SIGNED);
            req.headers.insert(
                "Authorization".into(),
                auth(ALL_SIGNED).replace("20261128/us-east-1/sts", scope),
            );
            assert!(
                matches!(check(&req), Err(IdentityError::CredentialScope { .. })),
                "{scope}"
            );
        }
        let mut req = signed(Some(AUD), ALL_SIGNED);
        req.headers
            .insert("X-Amz-Security-Token".into(), "a\r\nX-Injected: 1".into());
        assert!(matches!(check(&req), Err(IdentityError::HeaderValue(_))));
    }

    // ---- Issue 10, point 3: unknown fields are refused ---------------------------------------

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

    // ---- Issue 10, point 5: naming a rejected token --------------------------------------------

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

    // ---- Issue 10, point 6: regional STS endpoints from an allowlist -------------------------

    #[test]
    fn regional_sts_endpoints_come_from_an_allowlist_of_region_names() {
        let sts = StsEndpoints::global_and_regions(&["eu-west-1", "cn-north-1", "eu-west-1"])
            .expect("endpoints");
        assert_eq!(
            sts.describe(),
            "https://sts.amazonaws.com/, https://sts.eu-west-1.amazonaws.com/, https://sts.cn-north-1.amazonaws.com.cn/"
        );
        let regional = sts
            .find("https://sts.eu-west-1.amazonaws.com")
            .expect("regional");
        assert_eq!(regional.authority(), "sts.eu-west-1.amazonaws.com");
        assert_eq!(regional.signing_region(), Some("eu-west-1"));
        for not_ours in [
            "https://sts.us-west-2.amazonaws.com/",
            "https://sts.eu-west-1.amazonaws.com.evil.example/",
            "https://sts.eu-west-1.amazonaws.com@evil.example/",
            "http://sts.eu-west-1.amazonaws.com/",
            "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity",
            "https://STS.amazonaws.com/",
        ] {
            assert!(sts.find(not_ours).is_none(), "{not_ours}");
        }
        for bad in [
            "",
            "us-east",
            "US-EAST-1",
            "us-east-1.evil.example",
            "evil.example/x-1",
            "us-east-1/",
            "a-b-123",
            "us--1",
        ] {
            assert_eq!(
                StsEndpoints::global_and_regions(&[bad]),
                Err(StsConfigError::Region(bad.to_owned())),
                "{bad}"
            );
        }
        assert!(is_region_name("us-gov-west-1") && is_region_name("ap-southeast-5"));

        // A request signed for an allowed region passes; one for another region names both URLs.
        let mut req = signed(Some(AUD), ALL_SIGNED);
        req.url = "https://sts.eu-west-1.amazonaws.com/".into();
        req.headers
            .insert("Host".into(), "sts.eu-west-1.amazonaws.com".into());
        req.headers.insert(
            "Authorization".into(),
            auth(ALL_SIGNED).replace("us-east-1", "eu-west-1"),
        );
        let fwd = check_identity(&req, &expect(&sts)).expect("allowed region");
        assert_eq!(fwd.url, "https://sts.eu-west-1.amazonaws.com/");
        let err = check(&req).expect_err("the global-only broker refuses it");
        assert_eq!(
            err.to_string(),
            "identity request URL \"https://sts.eu-west-1.amazonaws.com/\" is not an STS endpoint this broker accepts (expected one of: https://sts.amazonaws.com/)"
        );

        // An override (an emulator) is the only endpoint, and any scope region is left to it.
        let moto = StsEndpoints::only("http://127.0.0.1:5000").expect("override");
        assert_eq!(moto.describe(), "http://127.0.0.1:5000/");
        req.url = "http://127.0.0.1:5000/".into();
        req.headers.insert("Host".into(), "127.0.0.1:5000".into());
        assert!(check_identity(&req, &expect(&moto)).is_ok());
        for bad in ["ftp://x/", "http://", "http://a/?q", "http://u@h/"] {
            assert!(StsEndpoints::only(bad).is_err(), "{bad}");
        }
    }

    // ---- Issue 10, point 2: caller strings are validated or escaped --------------------------

    #[test]
    fn repository_grammar_is_githubs_and_escaping_keeps_one_line() {
        for good in ["acme/infra", "a/b", "Acme-Corp/.github", "x/a_b.c-d"] {
            assert!(RepoName::parse(good).is_ok(), "{good}");
        }
        let forged = "acme/x\n2026-11-28T01:00:00Z  INFO audit: decision=\"issued\"";
        for bad in [
            forged,
            "ac_me/infra",
            "ac.me/infra",
            &format!("{}/x", "a".repeat(40)),
            &format!("a/{}", "x".repeat(101)),
            "acme/.",
            "acme/\u{1b}[31mred",
        ] {
            assert_eq!(RepoName::parse(bad), Err(RequestError::Repository), "{bad}");
        }
        let shown = escaped(forged, 200);
        assert!(!shown.contains('\n') && shown.contains("\\n"), "{shown}");
        assert!(!escaped("\u{1b}[31m", 10).contains('\u{1b}'));
        assert_eq!(escaped("abcdef", 3), "\"abc\"…");
    }
}

//! Token broker protocol: request/response types shared by the App and its clients, the checks
//! on the caller's signed `sts:GetCallerIdentity` request, and the policy.
//!
//! The caller proves its AWS identity the way Vault's AWS IAM auth does: it signs a
//! `GetCallerIdentity` request with its own credentials and hands the signed request (method, URL,
//! headers, body) to the broker, which forwards it to STS and reads the ARN from the answer. The
//! request is bound to this broker by the [`AUDIENCE_HEADER`], which must be covered by the
//! signature, and kept fresh by `X-Amz-Date`. Everything here is pure: the App does the I/O.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

/// Header naming the broker a signed identity request is meant for; it must be signed.
pub const AUDIENCE_HEADER: &str = "x-ssm-broker-audience";
/// The only body a signed identity request may carry.
pub const GET_CALLER_IDENTITY_BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
/// How far `X-Amz-Date` may be from the broker's clock.
pub const MAX_IDENTITY_AGE: Duration = Duration::minutes(5);

/// `POST /v1/tokens` request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    /// `owner/name`.
    pub repository: String,
    /// GitHub permission name to level, e.g. `contents` → `write`.
    pub permissions: BTreeMap<String, String>,
    /// The caller's SigV4-signed `sts:GetCallerIdentity` request.
    pub identity: SignedIdentityRequest,
}

/// A signed HTTP request, as the caller would have sent it to STS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIdentityRequest {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoName {
    owner: String,
    name: String,
}

/// Why a token request is malformed (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("repository must be \"owner/name\" with letters, digits, '-', '_' or '.'")]
    Repository,
    #[error("permissions must name at least one permission")]
    NoPermissions,
    #[error("permission {0:?} is not a GitHub permission name")]
    PermissionName(String),
    #[error("permission level {0:?} must be read, write or admin")]
    PermissionLevel(String),
}

impl RepoName {
    pub fn parse(s: &str) -> Result<Self, RequestError> {
        let (owner, name) = s.split_once('/').ok_or(RequestError::Repository)?;
        let valid = |part: &str, max: usize| {
            !part.is_empty()
                && part.len() <= max
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        if !valid(owner, 39) || !valid(name, 100) {
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

/// What the broker expects of a signed identity request.
#[derive(Debug, Clone)]
pub struct IdentityExpectations<'a> {
    /// The configured STS endpoint, e.g. `https://sts.amazonaws.com/`.
    pub sts_url: &'a str,
    /// This broker's audience.
    pub audience: &'a str,
    pub now: DateTime<Utc>,
}

/// Why a signed identity request is rejected (401). Messages are safe to return to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("identity request method must be POST")]
    Method,
    #[error("identity request URL must be the broker's STS endpoint, without a query")]
    Url,
    #[error("identity request body must be exactly {GET_CALLER_IDENTITY_BODY}")]
    Body,
    #[error("identity request has no SigV4 Authorization header")]
    Authorization,
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
    #[error("identity request header {0:?} appears twice with different case")]
    DuplicateHeader(String),
    #[error("STS did not return a GetCallerIdentityResponse")]
    StsResponse,
    #[error("caller ARN {0:?} is not an IAM role, assumed role or user")]
    Arn(String),
}

/// A signed identity request that passed every local check, ready to be forwarded to STS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardRequest {
    /// Headers to send: the signed ones (minus `host` and `content-length`, which the HTTP client
    /// sets from the URL and body) and `authorization`, names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Checks a signed identity request against the broker's expectations without any I/O.
pub fn check_identity(
    req: &SignedIdentityRequest,
    expect: &IdentityExpectations<'_>,
) -> Result<ForwardRequest, IdentityError> {
    if req.method != "POST" {
        return Err(IdentityError::Method);
    }
    if req.url.contains(['?', '#']) || trim_slash(&req.url) != trim_slash(expect.sts_url) {
        return Err(IdentityError::Url);
    }
    if !is_get_caller_identity(&req.body) {
        return Err(IdentityError::Body);
    }
    let mut headers: BTreeMap<String, &str> = BTreeMap::new();
    for (name, value) in &req.headers {
        let lower = name.to_ascii_lowercase();
        if headers.insert(lower.clone(), value.as_str()).is_some() {
            return Err(IdentityError::DuplicateHeader(lower));
        }
    }
    let auth = headers
        .get("authorization")
        .ok_or(IdentityError::Authorization)?;
    let signed = signed_headers(auth).ok_or(IdentityError::Authorization)?;
    let audience = headers
        .get(AUDIENCE_HEADER)
        .ok_or(IdentityError::MissingAudience)?;
    if *audience != expect.audience {
        return Err(IdentityError::WrongAudience);
    }
    if !signed.contains(&AUDIENCE_HEADER) {
        return Err(IdentityError::AudienceNotSigned);
    }
    let date = headers
        .get("x-amz-date")
        .and_then(|d| NaiveDateTime::parse_from_str(d, "%Y%m%dT%H%M%SZ").ok())
        .ok_or(IdentityError::MissingDate)?
        .and_utc();
    if !signed.contains(&"x-amz-date") {
        return Err(IdentityError::MissingDate);
    }
    if (expect.now - date).abs() > MAX_IDENTITY_AGE {
        return Err(IdentityError::Stale);
    }
    let forward = headers
        .iter()
        .filter(|(name, _)| {
            name.as_str() == "authorization"
                || (signed.contains(&name.as_str()) && !is_hop_or_framing(name))
        })
        .map(|(name, value)| (name.clone(), (*value).to_owned()))
        .collect();
    Ok(ForwardRequest {
        headers: forward,
        body: req.body.clone(),
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

/// The `SignedHeaders=` list of a SigV4 `Authorization` header.
fn signed_headers(auth: &str) -> Option<Vec<&str>> {
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let mut signed = None;
    let mut signature = false;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(list) = part.strip_prefix("SignedHeaders=") {
            signed = Some(list.split(';').collect::<Vec<_>>());
        } else if part.starts_with("Signature=") {
            signature = true;
        }
    }
    signed.filter(|_| signature)
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

    fn signed(audience: Option<&str>, signed_list: &str) -> SignedIdentityRequest {
        let mut headers = BTreeMap::from([
            ("Host".to_owned(), "sts.amazonaws.com".to_owned()),
            (
                "Content-Type".to_owned(),
                "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
            ),
            ("X-Amz-Date".to_owned(), "20261128T005800Z".to_owned()),
            ("X-Amz-Security-Token".to_owned(), "session".to_owned()),
            (
                "Authorization".to_owned(),
                format!(
                    "AWS4-HMAC-SHA256 Credential=AKIA/20261128/us-east-1/sts/aws4_request, SignedHeaders={signed_list}, Signature=abcd"
                ),
            ),
        ]);
        if let Some(a) = audience {
            headers.insert(AUDIENCE_HEADER.to_owned(), a.to_owned());
        }
        SignedIdentityRequest {
            method: "POST".into(),
            url: STS.into(),
            headers,
            body: GET_CALLER_IDENTITY_BODY.into(),
        }
    }

    const ALL_SIGNED: &str =
        "content-type;host;x-amz-date;x-amz-security-token;x-ssm-broker-audience";

    fn expect() -> IdentityExpectations<'static> {
        IdentityExpectations {
            sts_url: STS,
            audience: AUD,
            now: now(),
        }
    }

    #[test]
    fn good_identity_is_forwarded_with_signed_headers_only() {
        let mut req = signed(Some(AUD), ALL_SIGNED);
        req.headers.insert("X-Unsigned".into(), "dropped".into());
        let fwd = check_identity(&req, &expect()).expect("accepted");
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
                IdentityError::Url,
            ),
            (
                SignedIdentityRequest {
                    url: "https://evil.example/".into(),
                    ..signed(Some(AUD), ALL_SIGNED)
                },
                IdentityError::Url,
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
            assert_eq!(check_identity(&req, &expect()), Err(want));
        }
    }

    #[test]
    fn identity_freshness_window_is_five_minutes_both_ways() {
        let req = signed(Some(AUD), ALL_SIGNED); // signed at 00:58:00
        let at = |m: i64, s: i64| IdentityExpectations {
            now: now() - Duration::minutes(2) + Duration::minutes(m) + Duration::seconds(s),
            ..expect()
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
        assert_eq!(
            check_identity(&req, &expect()),
            Err(IdentityError::MissingDate)
        );
        let req = signed(Some(AUD), "content-type;host;x-ssm-broker-audience");
        assert_eq!(
            check_identity(&req, &expect()),
            Err(IdentityError::MissingDate)
        );
        let mut req = signed(Some(AUD), ALL_SIGNED);
        req.headers
            .insert("Authorization".into(), "Bearer x".into());
        assert_eq!(
            check_identity(&req, &expect()),
            Err(IdentityError::Authorization)
        );
        let mut req = signed(Some(AUD), ALL_SIGNED);
        req.headers.insert("authorization".into(), "again".into());
        assert!(matches!(
            check_identity(&req, &expect()),
            Err(IdentityError::DuplicateHeader(_))
        ));
    }

    #[test]
    fn trailing_slash_of_the_sts_url_does_not_matter() {
        let mut req = signed(Some(AUD), ALL_SIGNED);
        req.url = "https://sts.amazonaws.com".into();
        assert!(check_identity(&req, &expect()).is_ok());
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
}

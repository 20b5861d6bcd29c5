//! AWS Signature Version 4 from the receiving side: reading an `Authorization` header strictly
//! and verifying a signed HTTP request as an AWS service does.
//!
//! Used by the token broker (which only reads the header and lets STS verify) and by the
//! sandbox's API Gateway emulation (which verifies `execute-api` requests itself). Nothing here
//! does I/O: the caller looks the secret up between [`Presented::read`] and [`Presented::verify`].
//!
//! The canonical request is the one of
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html>
//! for every service but S3:
//!
//! ```text
//! METHOD \n
//! canonical URI     the path as received, dot segments removed, URI-encoded once more
//! canonical query   each name and value decoded then strictly URI-encoded, sorted
//! canonical headers each signed header: lower-case name ":" its values trimmed, joined with ","
//! signed headers    as in the Authorization header
//! payload hash      hex SHA-256 of the body as received
//! ```
//!
//! The payload hash is always computed from the body: like every service but S3, API Gateway
//! does not take `x-amz-content-sha256` on trust, so a request signed over `UNSIGNED-PAYLOAD` (or
//! any hash but the body's) fails with a signature mismatch.

use std::fmt;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The only algorithm SigV4 header authentication names.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The three parts of a SigV4 `Authorization` header, each present exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    /// `AKID/YYYYMMDD/region/service/aws4_request`.
    pub credential: &'a str,
    /// Lowercase header names, strictly ascending.
    pub signed_headers: Vec<&'a str>,
    /// 64 lowercase hex digits.
    pub signature: &'a str,
}

impl<'a> Authorization<'a> {
    /// Parses `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`: exactly these three
    /// components, each once, in any order; anything else is refused with the reason.
    pub fn parse(header: &'a str) -> Result<Self, &'static str> {
        let rest = header
            .strip_prefix("AWS4-HMAC-SHA256 ")
            .ok_or("the scheme must be AWS4-HMAC-SHA256")?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (key, value) = part
                .trim_matches(' ')
                .split_once('=')
                .ok_or("every component must be Name=value")?;
            let slot = match key {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed,
                "Signature" => &mut signature,
                _ => return Err("only Credential, SignedHeaders and Signature may appear"),
            };
            if slot.replace(value).is_some() {
                return Err(
                    "Credential, SignedHeaders and Signature must each appear exactly once",
                );
            }
        }
        let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature)
        else {
            return Err("Credential, SignedHeaders and Signature are all required");
        };
        let signed_headers: Vec<&str> = signed.split(';').collect();
        let names_ok = signed_headers.iter().all(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
        let ascending = signed_headers.windows(2).all(|w| w[0] < w[1]);
        if !names_ok || !ascending {
            return Err("SignedHeaders must be distinct lowercase header names in ascending order");
        }
        let signature_ok = signature.len() == 64
            && signature
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !signature_ok {
            return Err("Signature must be 64 lowercase hex digits");
        }
        let scope: Vec<&str> = credential.split('/').collect();
        let credential_ok = scope.len() == 5
            && (1..=128).contains(&scope[0].len())
            && scope[0].bytes().all(|b| b.is_ascii_alphanumeric())
            && scope[1].len() == 8
            && scope[1].bytes().all(|b| b.is_ascii_digit())
            && scope[4] == "aws4_request";
        if !credential_ok {
            return Err("Credential must be ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request");
        }
        Ok(Self {
            credential,
            signed_headers,
            signature,
        })
    }

    /// The access key id the request names.
    pub fn access_key_id(&self) -> &'a str {
        self.credential.split('/').next().unwrap_or_default()
    }

    /// `YYYYMMDD/region/service` of the credential scope.
    pub fn scope(&self) -> (&'a str, &'a str, &'a str) {
        let mut parts = self.credential.split('/').skip(1);
        let mut next = || parts.next().unwrap_or_default();
        (next(), next(), next())
    }

    /// Whether `name` (lower case) is covered by the signature.
    pub fn signs(&self, name: &str) -> bool {
        self.signed_headers.contains(&name)
    }

    /// The header rebuilt from the checked parts, nothing else.
    pub fn render(&self) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential={}, SignedHeaders={}, Signature={}",
            self.credential,
            self.signed_headers.join(";"),
            self.signature
        )
    }
}

/// A secret access key: never printed, zeroized on drop.
#[derive(Clone)]
pub struct SecretAccessKey(Zeroizing<String>);

impl SecretAccessKey {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Zeroizing::new(secret.into()))
    }

    /// The secret itself, for signing or storing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretAccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretAccessKey(<redacted>)")
    }
}

/// An HTTP request as the server received it.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// The path as sent, still percent-encoded.
    pub path: &'a str,
    /// The query as sent, without `?`; `""` when there is none.
    pub query: &'a str,
    /// Every header line, names in any case, in the order received.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// What a request must be signed for, and when it is checked.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub region: &'a str,
    pub service: &'a str,
    pub now: DateTime<Utc>,
    /// How far `X-Amz-Date` may be from `now`, either way.
    pub max_skew: Duration,
}

/// Why a signed request is refused. Every one is a 403 from an AWS service; [`Self::error_type`]
/// is its `x-amzn-ErrorType` and the `Display` text its message, worded as AWS words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// No `Authorization` header at all.
    #[error("Missing Authentication Token")]
    Missing,
    /// The headers that carry the signature are malformed, repeated or not signed.
    #[error("{0}")]
    Incomplete(String),
    #[error(
        "Signature expired: {date} is now earlier than {earliest} ({now} - {minutes} min.)",
        date = stamp(*.date), earliest = stamp(*.now - *.skew), now = stamp(*.now), minutes = .skew.num_minutes()
    )]
    Expired {
        date: DateTime<Utc>,
        now: DateTime<Utc>,
        skew: Duration,
    },
    #[error(
        "Signature not yet current: {date} is still later than {latest} ({now} + {minutes} min.)",
        date = stamp(*.date), latest = stamp(*.now + *.skew), now = stamp(*.now), minutes = .skew.num_minutes()
    )]
    NotYetCurrent {
        date: DateTime<Utc>,
        now: DateTime<Utc>,
        skew: Duration,
    },
    /// The credential scope names another day, region or service than the request's.
    #[error("{0}")]
    Scope(String),
    /// The access key id or the session token is not one the service knows.
    #[error("The security token included in the request is invalid.")]
    UnknownCredentials,
    /// The signature is not the one the secret gives; the text shows what was expected to be
    /// signed, as API Gateway shows it (nothing secret).
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'{canonical_request}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
    )]
    Mismatch {
        canonical_request: String,
        string_to_sign: String,
    },
}

impl SigV4Error {
    /// The `x-amzn-ErrorType` AWS answers with.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Missing => "MissingAuthenticationTokenException",
            Self::Incomplete(_) => "IncompleteSignatureException",
            Self::UnknownCredentials => "UnrecognizedClientException",
            Self::Expired { .. } | Self::NotYetCurrent { .. } | Self::Scope(_) => {
                "InvalidSignatureException"
            }
            Self::Mismatch { .. } => "InvalidSignatureException",
        }
    }
}

fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

/// A request's signature, read and checked for everything but the secret: the caller looks up
/// [`Self::access_key_id`], then calls [`Self::verify`].
#[derive(Debug)]
pub struct Presented<'a> {
    request: HttpRequest<'a>,
    authorization: Authorization<'a>,
    amz_date: &'a str,
    session_token: Option<&'a str>,
}

impl<'a> Presented<'a> {
    /// Reads the `Authorization`, `X-Amz-Date` and `X-Amz-Security-Token` headers (each at most
    /// once: a repeated one is ambiguous and refused), and checks the date against `expected.now`
    /// and the credential scope against the date, region and service.
    pub fn read(request: HttpRequest<'a>, expected: &Expected<'_>) -> Result<Self, SigV4Error> {
        let incomplete = |why: &str| SigV4Error::Incomplete(why.to_owned());
        let authorization = match only_value(request.headers, "authorization")? {
            None => return Err(SigV4Error::Missing),
            Some(value) => Authorization::parse(value)
                .map_err(|why| incomplete(&format!("Authorization header: {why}.")))?,
        };
        if !authorization.signs("host") {
            return Err(incomplete(
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            ));
        }
        let amz_date = only_value(request.headers, "x-amz-date")?.ok_or_else(|| {
            incomplete("Authorization header requires existence of a 'X-Amz-Date' header.")
        })?;
        if !authorization.signs("x-amz-date") {
            return Err(incomplete(
                "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.",
            ));
        }
        let date = NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
            .ok()
            .filter(|_| amz_date.len() == 16)
            .map(|date| date.and_utc())
            .ok_or_else(|| {
                incomplete("X-Amz-Date must be an ISO 8601 basic date, YYYYMMDD'T'HHMMSS'Z'.")
            })?;
        let session_token = only_value(request.headers, "x-amz-security-token")?;
        if session_token.is_some() && !authorization.signs("x-amz-security-token") {
            return Err(incomplete(
                "'X-Amz-Security-Token' must be a 'SignedHeader' in the AWS Authorization.",
            ));
        }
        for name in &authorization.signed_headers {
            if !request
                .headers
                .iter()
                .any(|(have, _)| have.eq_ignore_ascii_case(name))
            {
                return Err(incomplete(&format!(
                    "The signed header {name:?} is not in the request."
                )));
            }
        }
        let skew = expected.max_skew;
        if date < expected.now - skew {
            return Err(SigV4Error::Expired {
                date,
                now: expected.now,
                skew,
            });
        }
        if date > expected.now + skew {
            return Err(SigV4Error::NotYetCurrent {
                date,
                now: expected.now,
                skew,
            });
        }
        let (day, region, service) = authorization.scope();
        let date_day = amz_date.get(..8).unwrap_or_default();
        if day != date_day {
            return Err(SigV4Error::Scope(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{day}' != '{date_day}', from '{amz_date}'."
            )));
        }
        if region != expected.region {
            return Err(SigV4Error::Scope(format!(
                "Credential should be scoped to a valid region, not '{}'. ",
                region.escape_debug()
            )));
        }
        if service != expected.service {
            return Err(SigV4Error::Scope(format!(
                "Credential should be scoped to correct service: '{}'. ",
                expected.service
            )));
        }
        Ok(Self {
            request,
            authorization,
            amz_date,
            session_token,
        })
    }

    /// The access key id to look the secret up by.
    pub fn access_key_id(&self) -> &'a str {
        self.authorization.access_key_id()
    }

    /// The `X-Amz-Security-Token` presented, if any.
    pub fn session_token(&self) -> Option<&'a str> {
        self.session_token
    }

    /// Checks the session token against the one issued with the key (`None`: long-term
    /// credentials, which must come without one), then the signature, in constant time.
    pub fn verify(
        &self,
        secret: &SecretAccessKey,
        issued_token: Option<&str>,
    ) -> Result<(), SigV4Error> {
        let token_ok = match (self.session_token, issued_token) {
            (None, None) => true,
            (Some(presented), Some(issued)) => {
                bool::from(presented.as_bytes().ct_eq(issued.as_bytes()))
            }
            _ => false,
        };
        if !token_ok {
            return Err(SigV4Error::UnknownCredentials);
        }
        let canonical_request =
            canonical_request(&self.request, &self.authorization.signed_headers);
        let (day, region, service) = self.authorization.scope();
        let string_to_sign = format!(
            "{ALGORITHM}\n{}\n{day}/{region}/{service}/aws4_request\n{}",
            self.amz_date,
            hex::encode(Sha256::digest(canonical_request.as_bytes()))
        );
        let mut mac = signing_key(secret, day, region, service);
        mac.update(string_to_sign.as_bytes());
        let presented = hex::decode(self.authorization.signature).unwrap_or_default();
        mac.verify_slice(&presented)
            .map_err(|_| SigV4Error::Mismatch {
                canonical_request,
                string_to_sign,
            })
    }
}

/// The one value of a header that may appear at most once.
fn only_value<'a>(headers: &[(&str, &'a str)], name: &str) -> Result<Option<&'a str>, SigV4Error> {
    let mut values = headers
        .iter()
        .filter(|(have, _)| have.eq_ignore_ascii_case(name))
        .map(|(_, value)| *value);
    let first = values.next();
    if values.next().is_some() {
        return Err(SigV4Error::Incomplete(format!(
            "The {name} header appears more than once."
        )));
    }
    Ok(first)
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &str) -> HmacSha256 {
    // HMAC takes keys of any length.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data.as_bytes());
    mac
}

/// The signing key's MAC, ready for the string to sign.
fn signing_key(secret: &SecretAccessKey, day: &str, region: &str, service: &str) -> HmacSha256 {
    let first = Zeroizing::new(format!("AWS4{}", secret.expose()));
    let k_date = hmac(first.as_bytes(), day).finalize().into_bytes();
    let k_region = hmac(&k_date, region).finalize().into_bytes();
    let k_service = hmac(&k_region, service).finalize().into_bytes();
    let k_signing = hmac(&k_service, "aws4_request").finalize().into_bytes();
    <HmacSha256 as KeyInit>::new_from_slice(&k_signing).unwrap_or_else(|_| unreachable!())
}

/// The canonical request (see the module's documentation).
pub fn canonical_request(request: &HttpRequest<'_>, signed_headers: &[&str]) -> String {
    let mut headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = request
            .headers
            .iter()
            .filter(|(have, _)| have.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        headers.push_str(name);
        headers.push(':');
        headers.push_str(&values.join(","));
        headers.push('\n');
    }
    format!(
        "{}\n{}\n{}\n{headers}\n{}\n{}",
        request.method,
        canonical_uri(request.path),
        canonical_query(request.query),
        signed_headers.join(";"),
        hex::encode(Sha256::digest(request.body))
    )
}

/// The path with `.` and `..` segments removed, each byte but unreserved ones and `/` encoded
/// (so an escape as sent is encoded a second time, as SigV4 wants for every service but S3).
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let trailing = path.len() > 1 && path.ends_with('/');
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    let mut uri = String::from("/");
    uri.push_str(
        &segments
            .iter()
            .map(|s| uri_encode(s.as_bytes()))
            .collect::<Vec<_>>()
            .join("/"),
    );
    if trailing && !segments.is_empty() {
        uri.push('/');
    }
    uri
}

/// Each name and value decoded (`+` as a space, as a form) and encoded strictly, sorted.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&form_decode(name)),
                uri_encode(&form_decode(value)),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn form_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let escaped = (byte == b'%')
            .then(|| {
                let hex = text.get(i + 1..i + 3)?;
                u8::from_str_radix(hex, 16).ok()
            })
            .flatten();
        match (escaped, byte) {
            (Some(value), _) => {
                decoded.push(value);
                i += 3;
            }
            (None, b'+') => {
                decoded.push(b' ');
                i += 1;
            }
            (None, byte) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    decoded
}

/// RFC 3986 encoding: unreserved bytes as they are, every other byte `%XX` (upper case).
fn uri_encode(bytes: &[u8]) -> String {
    let mut encoded = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    type Headers<'a> = Vec<(&'a str, &'a str)>;

    fn at(stamp: &str) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
            .unwrap_or_default()
            .and_utc()
    }

    fn expected<'a>(service: &'a str, now: &str) -> Expected<'a> {
        Expected {
            region: "us-east-1",
            service,
            now: at(now),
            max_skew: Duration::minutes(15),
        }
    }

    /// AWS's `get-vanilla-query-order-key-case` style request from the SigV4 documentation
    /// (IAM ListUsers, 2015-08-30), signature as published there.
    const IAM_EXAMPLE_SIGNATURE: &str =
        "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";

    fn iam_example(signature: &str) -> Vec<(&'static str, String)> {
        vec![
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
            ),
            ("X-Amz-Date", "20150830T123600Z".to_owned()),
            ("Host", "iam.amazonaws.com".to_owned()),
            (
                "Authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature={signature}"
                ),
            ),
        ]
    }

    fn request<'a>(headers: &'a [(&'a str, &'a str)], query: &'a str) -> HttpRequest<'a> {
        HttpRequest {
            method: "GET",
            path: "/",
            query,
            headers,
            body: b"",
        }
    }

    fn borrowed<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        headers.iter().map(|(n, v)| (*n, v.as_str())).collect()
    }

    #[test]
    fn the_documented_example_verifies_and_nothing_else_does() {
        let owned = iam_example(IAM_EXAMPLE_SIGNATURE);
        let headers = borrowed(&owned);
        let req = request(&headers, "Action=ListUsers&Version=2010-05-08");
        let presented = Presented::read(req, &expected("iam", "20150830T124000Z")).unwrap();
        assert_eq!(presented.access_key_id(), "AKIDEXAMPLE");
        presented
            .verify(&SecretAccessKey::new(SECRET), None)
            .unwrap();
        assert!(matches!(
            presented.verify(&SecretAccessKey::new("another secret"), None),
            Err(SigV4Error::Mismatch { .. })
        ));
        assert_eq!(
            presented.verify(&SecretAccessKey::new(SECRET), Some("token")),
            Err(SigV4Error::UnknownCredentials)
        );

        // The query is part of what is signed; its order is not.
        let reordered = request(&headers, "Version=2010-05-08&Action=ListUsers");
        Presented::read(reordered, &expected("iam", "20150830T124000Z"))
            .unwrap()
            .verify(&SecretAccessKey::new(SECRET), None)
            .unwrap();
        let changed = request(&headers, "Action=ListRoles&Version=2010-05-08");
        let err = Presented::read(changed, &expected("iam", "20150830T124000Z"))
            .unwrap()
            .verify(&SecretAccessKey::new(SECRET), None)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("GET\n/\nAction=ListRoles&Version=2010-05-08\ncontent-type:"),
            "{err}"
        );
        assert_eq!(err.error_type(), "InvalidSignatureException");
    }

    #[test]
    fn dates_scopes_and_headers_are_checked_before_the_secret() {
        let owned = iam_example(IAM_EXAMPLE_SIGNATURE);
        let headers = borrowed(&owned);
        let query = "Action=ListUsers&Version=2010-05-08";
        let read_at = |service: &str, now: &str| {
            Presented::read(request(&headers, query), &expected(service, now)).map(|_| ())
        };
        assert_eq!(
            read_at("iam", "20150830T125101Z").unwrap_err().to_string(),
            "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z (20150830T125101Z - 15 min.)"
        );
        read_at("iam", "20150830T125100Z").unwrap();
        assert!(matches!(
            read_at("iam", "20150830T122059Z"),
            Err(SigV4Error::NotYetCurrent { .. })
        ));
        let wrong_service = read_at("execute-api", "20150830T123600Z");
        assert!(matches!(wrong_service, Err(SigV4Error::Scope(m)) if m.contains("'execute-api'")));

        // The headers changed one way each: what `read` says of them.
        let read_with = |change: &dyn Fn(&mut Headers<'_>)| {
            let mut changed = headers.clone();
            change(&mut changed);
            let now = changed
                .iter()
                .find(|(n, _)| *n == "X-Amz-Date")
                .map_or("", |h| h.1);
            let result = Presented::read(request(&changed, ""), &expected("iam", now));
            result.map(|_| ()).unwrap_err()
        };
        let twice = read_with(&|h| h.push(("x-amz-date", "20150830T123600Z")));
        assert!(matches!(twice, SigV4Error::Incomplete(m) if m.contains("more than once")));
        let unsigned = read_with(&|h| h.retain(|(n, _)| *n != "Authorization"));
        assert_eq!(unsigned, SigV4Error::Missing);
        let token = read_with(&|h| h.push(("X-Amz-Security-Token", "FwoG")));
        assert!(matches!(token, SigV4Error::Incomplete(m) if m.contains("X-Amz-Security-Token")));
        let bad_day = read_with(&|h| h[1].1 = "20150831T000100Z");
        assert!(matches!(bad_day, SigV4Error::Scope(m) if m.contains("'20150830' != '20150831'")));
    }

    #[test]
    fn canonical_uris_and_queries_follow_sigv4() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("/a/./b/../c/"), "/a/c/");
        assert_eq!(canonical_uri("/keys/a%20b"), "/keys/a%2520b");
        assert_eq!(canonical_uri("/$default/x~y"), "/%24default/x~y");
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("b=2&a=1&a=0&c"), "a=0&a=1&b=2&c=");
        assert_eq!(canonical_query("q=a+b%2Fc&x=%7e"), "q=a%20b%2Fc&x=~");
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
            assert!(Authorization::parse(header).is_err(), "{header}");
        }
        let ok = Authorization::parse(
            "AWS4-HMAC-SHA256 Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024,SignedHeaders=host;x-amz-date,   Credential=AKIAIOSFODNN7EXAMPLE/20261128/us-east-1/sts/aws4_request",
        )
        .expect("any order, any spacing");
        assert_eq!(
            ok.render(),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261128/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024"
        );
        assert_eq!(ok.access_key_id(), "AKIAIOSFODNN7EXAMPLE");
        assert_eq!(ok.scope(), ("20261128", "us-east-1", "sts"));
    }

    #[test]
    fn secrets_never_print() {
        assert_eq!(
            format!("{:?}", SecretAccessKey::new(SECRET)),
            "SecretAccessKey(<redacted>)"
        );
    }
}

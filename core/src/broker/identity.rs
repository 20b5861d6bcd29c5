//! Whether a signed `sts:GetCallerIdentity` request is acceptable, decided without I/O, and the
//! request forwarded to STS when it is; and the caller's ARN read from STS's answer.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};

use super::sigv4::SigV4Authorization;
use super::sts_endpoint::StsEndpoints;
use super::wire::SignedIdentityRequest;

/// Header naming the broker a signed identity request is meant for; it must be signed.
pub const AUDIENCE_HEADER: &str = "x-ssm-broker-audience";
/// The only body a signed identity request may carry.
pub const GET_CALLER_IDENTITY_BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
/// Header naming the repository and permissions a signed identity request is for; it must be
/// signed and equal [`signed_scope`] of the token request, so an identity captured on its way
/// to one repository's token cannot be spent on another's.
pub const SCOPE_HEADER: &str = "x-ssm-scope";
/// How long a signed identity request stays valid after its `X-Amz-Date`.
pub const MAX_IDENTITY_AGE: Duration = Duration::minutes(5);
/// How far `X-Amz-Date` may be ahead of the broker's clock. Lambda and CI runners keep NTP time
/// (Lambda's to the millisecond through the Amazon Time Sync Service), so a minute covers a
/// badly synchronised runner while keeping a signed request usable at most
/// `MAX_FUTURE_SKEW + MAX_IDENTITY_AGE` (6 minutes) after it was made, not 10.
pub const MAX_FUTURE_SKEW: Duration = Duration::seconds(60);

/// What the broker expects of a signed identity request.
#[derive(Debug, Clone)]
pub struct IdentityExpectations<'a> {
    /// The STS endpoints the request may be signed for.
    pub sts: &'a StsEndpoints,
    /// This broker's audience.
    pub audience: &'a str,
    /// [`signed_scope`] of the token request the identity comes with.
    pub scope: &'a str,
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
    #[error("identity request is older than five minutes")]
    Stale,
    #[error("identity request is dated more than 60 seconds ahead of the broker's clock")]
    FromTheFuture,
    #[error(
        "identity request lacks the {SCOPE_HEADER} header naming the repository and permissions"
    )]
    MissingScope,
    #[error(
        "the {SCOPE_HEADER} header names another repository or other permissions than the token request ({expected})"
    )]
    WrongScope { expected: String },
    #[error("the {SCOPE_HEADER} header is not covered by the signature")]
    ScopeNotSigned,
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
    /// When the request stops being accepted (`signed_at + MAX_IDENTITY_AGE`): the broker may
    /// remember the identity STS confirmed for it until then, never longer.
    pub valid_until: DateTime<Utc>,
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
    )
    .map_err(IdentityError::Authorization)?;
    let audience = headers
        .get(AUDIENCE_HEADER)
        .ok_or(IdentityError::MissingAudience)?;
    if *audience != expect.audience {
        return Err(IdentityError::WrongAudience);
    }
    if !auth.signs(AUDIENCE_HEADER) {
        return Err(IdentityError::AudienceNotSigned);
    }
    let scope = headers
        .get(SCOPE_HEADER)
        .ok_or(IdentityError::MissingScope)?;
    if *scope != expect.scope {
        return Err(IdentityError::WrongScope {
            expected: expect.scope.to_owned(),
        });
    }
    if !auth.signs(SCOPE_HEADER) {
        return Err(IdentityError::ScopeNotSigned);
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
    if date - expect.now > MAX_FUTURE_SKEW {
        return Err(IdentityError::FromTheFuture);
    }
    let valid_until = date + MAX_IDENTITY_AGE;
    if expect.now > valid_until {
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
        valid_until,
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

fn is_get_caller_identity(body: &str) -> bool {
    let mut pairs: Vec<&str> = body.split('&').collect();
    pairs.sort_unstable();
    pairs == ["Action=GetCallerIdentity", "Version=2011-06-15"]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::test_support::*;
    use crate::broker::*;
    use chrono::Duration;

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
                AUDIENCE_HEADER,
                SCOPE_HEADER
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
    fn identity_is_valid_five_minutes_after_signing_and_at_most_a_minute_before() {
        let req = signed(Some(AUD), ALL_SIGNED); // signed at 00:58:00
        let sts = global();
        let signed_at = now() - Duration::minutes(2);
        let at = |offset: Duration| IdentityExpectations {
            now: signed_at + offset,
            ..expect(&sts)
        };
        let fwd = check_identity(&req, &at(Duration::minutes(5))).expect("last valid second");
        assert_eq!(fwd.valid_until, signed_at + Duration::minutes(5));
        let late = Duration::minutes(5) + Duration::seconds(1);
        assert_eq!(check_identity(&req, &at(late)), Err(IdentityError::Stale));
        // Dated up to a minute ahead of the broker's clock (a runner's clock a little fast)...
        let fwd = check_identity(&req, &at(-Duration::seconds(60))).expect("60 s ahead");
        assert_eq!(fwd.valid_until, signed_at + MAX_IDENTITY_AGE);
        // ...but not more: a request signed 5 minutes ahead was a 10-minute bearer credential.
        for ahead in [Duration::seconds(61), Duration::minutes(5)] {
            assert_eq!(
                check_identity(&req, &at(-ahead)),
                Err(IdentityError::FromTheFuture),
                "{ahead}"
            );
        }
    }

    /// The scope header binds the signed identity to one repository and permission set.
    #[test]
    fn identity_is_bound_to_the_signed_scope() {
        let sts = global();
        let other = "acme/web contents=write";
        let for_other = IdentityExpectations {
            scope: other,
            ..expect(&sts)
        };
        assert_eq!(
            check_identity(&signed(Some(AUD), ALL_SIGNED), &for_other),
            Err(IdentityError::WrongScope {
                expected: other.to_owned()
            })
        );
        let mut req = signed(Some(AUD), ALL_SIGNED);
        req.headers.remove(SCOPE_HEADER);
        assert_eq!(check(&req), Err(IdentityError::MissingScope));
        let unsigned = "content-type;host;x-amz-date;x-amz-security-token;x-ssm-broker-audience";
        assert_eq!(
            check(&signed(Some(AUD), unsigned)),
            Err(IdentityError::ScopeNotSigned)
        );
        let repo = RepoName::parse("Acme/Infra").expect("repo");
        assert_eq!(
            signed_scope(
                &repo,
                &perms(&[("metadata", "read"), ("contents", "write")])
            ),
            "acme/infra contents=write,metadata=read"
        );
        assert_eq!(signed_scope(&repo, &perms(&[("contents", "write")])), SCOPE);
    }

    #[test]
    fn missing_or_unsigned_date_and_authorization_are_rejected() {
        let mut req = signed(Some(AUD), ALL_SIGNED);
        req.headers.remove("X-Amz-Date");
        assert_eq!(check(&req), Err(IdentityError::MissingDate));
        let req = signed(
            Some(AUD),
            "content-type;host;x-ssm-broker-audience;x-ssm-scope",
        );
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
        assert_eq!(req.headers.len(), 8);
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
                (SCOPE_HEADER.to_owned(), SCOPE.to_owned()),
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
            "content-type;x-amz-date;x-amz-security-token;x-ssm-broker-audience;x-ssm-scope",
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
}

//! The broker's identity checks: `check_identity` never panics, and whatever it forwards to STS
//! is a POST of exactly `GetCallerIdentity` to one of the accepted endpoints (the one the caller
//! named), for this broker's audience and the token request's scope, signed over both, `Host`
//! and an `X-Amz-Date` neither stale nor ahead by more than a minute, carrying only signed headers (plus `Authorization`) and nothing the HTTP client
//! sets itself. The caller's `Authorization` had exactly one `Credential`, `SignedHeaders` and
//! `Signature`, and the forwarded one is rebuilt from them. Header names are case-insensitive:
//! upper-casing them changes nothing. ARN and STS-response parsing never panic, and a
//! principal's ARN parses back to the same principal.
//!
//! Input, one field per line: method, URL, body, then `Name: value` headers.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use ssm_core::broker::{
    AUDIENCE_HEADER, GET_CALLER_IDENTITY_BODY, IdentityExpectations, IdentityHeaders,
    MAX_FUTURE_SKEW, MAX_IDENTITY_AGE, Principal, SCOPE_HEADER, SigV4Authorization,
    SignedIdentityRequest, StsEndpoints, check_identity, parse_caller_identity,
};

/// Accepted: the global endpoint and eu-west-1's.
const REGIONS: [&str; 1] = ["eu-west-1"];
const AUDIENCE: &str = "ssm-broker.example";
const SCOPE: &str = "acme/infra contents=write";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 1, 0, 0)
        .single()
        .expect("a valid date")
}

pub(crate) fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    arns(text);
    let mut lines = text.split('\n');
    let (method, url, body) = (
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
    );
    let headers: IdentityHeaders = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_owned(), value.trim_start().to_owned()))
        .collect();
    let request = SignedIdentityRequest {
        method: method.to_owned(),
        url: url.to_owned(),
        headers,
        body: body.to_owned(),
    };
    let sts = StsEndpoints::global_and_regions(&REGIONS).expect("valid regions");
    let expect = IdentityExpectations {
        sts: &sts,
        audience: AUDIENCE,
        scope: SCOPE,
        now: now(),
    };
    let result = check_identity(&request, &expect);

    let upper = SignedIdentityRequest {
        headers: request
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_uppercase(), v))
            .collect(),
        ..request.clone()
    };
    assert_eq!(
        check_identity(&upper, &expect),
        result,
        "header name case changed the outcome"
    );

    let Ok(forward) = result else {
        return;
    };
    assert_eq!(request.method, "POST");
    assert!(!request.url.contains(['?', '#']));
    let endpoint = sts
        .find(&forward.url)
        .expect("forwarded to an accepted endpoint");
    assert_eq!(
        request.url.trim_end_matches('/'),
        forward.url.trim_end_matches('/'),
        "forwarded elsewhere than the endpoint it was signed for"
    );
    let sent_auth: Vec<&str> = request
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(sent_auth.len(), 1, "Authorization accepted twice");
    for part in ["Credential=", "SignedHeaders=", "Signature="] {
        assert_eq!(
            sent_auth[0].matches(part).count(),
            1,
            "{part} accepted other than exactly once"
        );
    }
    let host: Vec<&str> = request
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(host.len(), 1, "Host accepted other than once");
    assert!(
        host[0].eq_ignore_ascii_case(endpoint.authority()),
        "signed for another host"
    );
    let mut pairs: Vec<&str> = forward.body.split('&').collect();
    pairs.sort_unstable();
    let mut want: Vec<&str> = GET_CALLER_IDENTITY_BODY.split('&').collect();
    want.sort_unstable();
    assert_eq!(pairs, want, "forwarded another STS call");

    let header = |name: &str| {
        forward
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let auth = header("authorization").expect("Authorization is forwarded");
    let rebuilt = SigV4Authorization::parse(auth).expect("the forwarded Authorization parses");
    assert_eq!(
        rebuilt.render(),
        auth,
        "the forwarded Authorization is rebuilt"
    );
    assert!(rebuilt.signed_headers.contains(&"host"), "Host not signed");
    let signed: Vec<&str> = auth
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("SignedHeaders="))
        .flat_map(|list| list.split(';'))
        .collect();
    assert!(signed.contains(&AUDIENCE_HEADER), "audience not signed");
    assert_eq!(header(AUDIENCE_HEADER), Some(AUDIENCE), "wrong audience");
    let date = header("x-amz-date")
        .and_then(|d| NaiveDateTime::parse_from_str(d, "%Y%m%dT%H%M%SZ").ok())
        .expect("a valid X-Amz-Date is forwarded")
        .and_utc();
    assert!(signed.contains(&"x-amz-date"), "date not signed");
    assert!(now() - date <= MAX_IDENTITY_AGE, "stale request");
    assert!(date - now() <= MAX_FUTURE_SKEW, "request from the future");
    assert_eq!(forward.valid_until, date + MAX_IDENTITY_AGE);
    assert!(signed.contains(&SCOPE_HEADER), "scope not signed");
    assert_eq!(header(SCOPE_HEADER), Some(SCOPE), "wrong scope");
    for (i, (name, _)) in forward.headers.iter().enumerate() {
        assert_eq!(*name, name.to_ascii_lowercase());
        assert!(
            forward.headers[..i].iter().all(|(n, _)| n != name),
            "{name} forwarded twice"
        );
        assert!(
            name == "authorization" || signed.contains(&name.as_str()),
            "unsigned header {name} forwarded"
        );
        assert!(
            !matches!(
                name.as_str(),
                "host" | "content-length" | "transfer-encoding"
            ),
            "framing header {name} forwarded"
        );
    }
}

/// Every line as an ARN, and the whole input as an STS response.
fn arns(text: &str) {
    for line in text.lines() {
        if let Ok(principal) = Principal::from_arn(line) {
            let again =
                Principal::from_arn(&principal.to_string()).expect("a principal's ARN parses");
            assert_eq!(again, principal, "{line:?} does not round-trip");
        }
    }
    if let Ok(arn) = parse_caller_identity(text) {
        let _ = Principal::from_arn(&arn);
    }
}

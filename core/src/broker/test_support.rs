use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};

use super::*;

pub(crate) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 1, 0, 0)
        .single()
        .expect("valid date")
}

pub(crate) const STS: &str = "https://sts.amazonaws.com/";
pub(crate) const AUD: &str = "ssm-broker.example";
/// The signed scope of every request [`signed`] builds.
pub(crate) const SCOPE: &str = "acme/infra contents=write";

pub(crate) const SIG: &str = "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024";
pub(crate) const DATE: &str = "20261128T005800Z";

pub(crate) fn auth(signed_list: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261128/us-east-1/sts/aws4_request, SignedHeaders={signed_list}, Signature={SIG}"
    )
}

pub(crate) fn signed(audience: Option<&str>, signed_list: &str) -> SignedIdentityRequest {
    let mut headers = BTreeMap::from([
        ("Host".to_owned(), "sts.amazonaws.com".to_owned()),
        (
            "Content-Type".to_owned(),
            "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
        ),
        ("X-Amz-Date".to_owned(), DATE.to_owned()),
        (SCOPE_HEADER.to_owned(), SCOPE.to_owned()),
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

pub(crate) const ALL_SIGNED: &str =
    "content-type;host;x-amz-date;x-amz-security-token;x-ssm-broker-audience;x-ssm-scope";

pub(crate) fn global() -> StsEndpoints {
    StsEndpoints::global_and_regions::<&str>(&[]).expect("endpoints")
}

pub(crate) fn expect(sts: &StsEndpoints) -> IdentityExpectations<'_> {
    IdentityExpectations {
        sts,
        audience: AUD,
        scope: SCOPE,
        now: now(),
    }
}

pub(crate) fn check(req: &SignedIdentityRequest) -> Result<ForwardRequest, IdentityError> {
    check_identity(req, &expect(&global()))
}

pub(crate) fn perms(p: &[(&str, &str)]) -> Permissions {
    parse_permissions(
        &p.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
    .expect("permissions")
}

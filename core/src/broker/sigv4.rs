//! The strict reading of a SigV4 `Authorization` header: three components, each once.

use super::identity::IdentityError;

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
    pub(super) fn scope(&self) -> (&'a str, &'a str, &'a str) {
        let mut parts = self.credential.split('/').skip(1);
        let mut next = || parts.next().unwrap_or_default();
        (next(), next(), next())
    }

    pub(super) fn signs(&self, name: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::*;

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
}

//! Which STS endpoints a signed identity request may name: an allowlist built here, never a host
//! the caller chooses.

/// The global STS endpoint (signed for `us-east-1`).
pub const GLOBAL_STS_ENDPOINT: &str = "https://sts.amazonaws.com/";

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

fn trim_slash(url: &str) -> &str {
    url.strip_suffix('/').unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::test_support::*;
    use crate::broker::*;

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
}

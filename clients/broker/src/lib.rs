//! Client for the token broker: signs `sts:GetCallerIdentity` with the caller's AWS credentials and
//! trades it for a GitHub installation token scoped to one repository.
//!
//! The signed request is never sent to STS by the client: the broker forwards it, so only someone
//! holding these credentials can obtain a token, and the signed audience header stops a broker
//! (or anyone it is shown to) from replaying it against another service. The signed scope header
//! names the repository and permissions asked for, so a signed request seen on its way to the
//! broker cannot be spent on a token for another repository.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use ssm_core::broker::{
    AUDIENCE_HEADER, ErrorBody, GET_CALLER_IDENTITY_BODY, GLOBAL_STS_ENDPOINT, RepoName,
    RequestError, SCOPE_HEADER, SignedIdentityRequest, TokenDigest, TokenRequest, TokenResponse,
    parse_permissions, signed_scope,
};

/// Where the broker is and how to prove who we are to it.
#[derive(Debug, Clone)]
pub struct BrokerClientConfig {
    /// The broker's base URL, e.g. `https://ssm-app.example.com`.
    pub broker_url: String,
    /// The audience the broker is configured with.
    pub audience: String,
    /// The STS endpoint to sign for, one the broker accepts: the global
    /// `https://sts.amazonaws.com/` or the regional endpoint of a region in the broker's
    /// `SSM_STS_ALLOWED_REGIONS` (by default the broker's own region).
    pub sts_endpoint: String,
    /// The region to sign for (`us-east-1` for the global STS endpoint).
    pub region: String,
    /// Timeout of the whole call to the broker.
    pub timeout: Duration,
}

impl BrokerClientConfig {
    /// The global STS endpoint, the default for [`BrokerClientConfig::sts_endpoint`].
    pub const DEFAULT_STS_ENDPOINT: &str = GLOBAL_STS_ENDPOINT;
}

/// Why a token could not be obtained. [`BrokerClientError::is_retryable`] tells the caller
/// whether trying again later can help.
#[derive(Debug, thiserror::Error)]
pub enum BrokerClientError {
    #[error("invalid broker client configuration: {0}")]
    Config(String),
    #[error("could not sign the identity request: {0}")]
    Signing(String),
    /// The repository or permissions are not something the broker could grant.
    #[error("invalid token request: {0}")]
    Request(#[from] RequestError),
    #[error("could not reach the broker: {0}")]
    Transport(#[source] reqwest::Error),
    #[error("broker answered {status} {code}: {message}")]
    Status {
        status: u16,
        code: String,
        message: String,
    },
    #[error("broker answered {status} with a body that is not a token response: {message}")]
    Decode { status: u16, message: String },
}

impl BrokerClientError {
    /// Transport errors, 5xx and 429 may succeed later; 4xx and local errors will not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Status { status, .. } | Self::Decode { status, .. } => {
                *status >= 500 || *status == 429
            }
            Self::Config(_) | Self::Signing(_) | Self::Request(_) => false,
        }
    }
}

/// A client for `POST /v1/tokens`.
#[derive(Debug, Clone)]
pub struct BrokerClient {
    http: reqwest::Client,
    tokens_url: url::Url,
    sts_url: url::Url,
    sts_host: String,
    audience: String,
    region: String,
}

impl BrokerClient {
    pub fn new(config: BrokerClientConfig) -> Result<BrokerClient, BrokerClientError> {
        let bad =
            |what: &str, e: url::ParseError| BrokerClientError::Config(format!("{what}: {e}"));
        let broker = url::Url::parse(&config.broker_url).map_err(|e| bad("broker_url", e))?;
        let tokens_url = broker
            .join(&format!(
                "{}/v1/tokens",
                broker.path().trim_end_matches('/')
            ))
            .map_err(|e| bad("broker_url", e))?;
        let sts_url = url::Url::parse(&config.sts_endpoint).map_err(|e| bad("sts_endpoint", e))?;
        if sts_url.query().is_some() || sts_url.host_str().is_none() {
            return Err(BrokerClientError::Config(
                "sts_endpoint must be an absolute URL without a query".into(),
            ));
        }
        let sts_host = sts_url[url::Position::BeforeHost..url::Position::AfterPort].to_owned();
        if config.audience.is_empty() || config.region.is_empty() {
            return Err(BrokerClientError::Config(
                "audience and region must not be empty".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| BrokerClientError::Config(format!("HTTP client: {e}")))?;
        Ok(BrokerClient {
            http,
            tokens_url,
            sts_url,
            sts_host,
            audience: config.audience,
            region: config.region,
        })
    }

    /// Signs `sts:GetCallerIdentity` with `credentials`, binding it to the broker's audience and
    /// to one token request's scope: `repository` (`owner/name`) with `permissions`.
    pub fn sign_identity(
        &self,
        credentials: &Credentials,
        at: SystemTime,
        repository: &str,
        permissions: &BTreeMap<String, String>,
    ) -> Result<SignedIdentityRequest, BrokerClientError> {
        let scope = signed_scope(
            &RepoName::parse(repository)?,
            &parse_permissions(permissions)?,
        );
        let headers = BTreeMap::from([
            (
                "content-type".to_owned(),
                "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
            ),
            (AUDIENCE_HEADER.to_owned(), self.audience.clone()),
            (SCOPE_HEADER.to_owned(), scope),
        ]);
        self.sign_identity_with_headers(credentials, at, headers)
    }

    /// Signs `sts:GetCallerIdentity` for the configured endpoint with exactly `headers` (plus
    /// `host` and what SigV4 adds). [`BrokerClient::sign_identity`] is this with the audience
    /// and the scope;
    /// tests use it to build requests the broker must refuse.
    pub fn sign_identity_with_headers(
        &self,
        credentials: &Credentials,
        at: SystemTime,
        mut headers: BTreeMap<String, String>,
    ) -> Result<SignedIdentityRequest, BrokerClientError> {
        let signing_err = |e: &dyn std::fmt::Display| BrokerClientError::Signing(e.to_string());
        let identity: Identity = credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("sts")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| signing_err(&e))?
            .into();
        headers.insert("host".to_owned(), self.sts_host.clone());
        let signable = SignableRequest::new(
            "POST",
            self.sts_url.as_str(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(GET_CALLER_IDENTITY_BODY.as_bytes()),
        )
        .map_err(|e| signing_err(&e))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| signing_err(&e))?
            .into_parts();
        for (name, value) in instructions.headers() {
            headers.insert(name.to_owned(), value.to_owned());
        }
        Ok(SignedIdentityRequest {
            method: "POST".into(),
            url: self.sts_url.to_string(),
            headers: headers.into(),
            body: GET_CALLER_IDENTITY_BODY.into(),
        })
    }

    /// Asks the broker for a token for `repository` (`owner/name`) with `permissions`.
    pub async fn token(
        &self,
        credentials: &Credentials,
        repository: &str,
        permissions: &BTreeMap<String, String>,
    ) -> Result<TokenResponse, BrokerClientError> {
        self.request(credentials, repository, permissions, None)
            .await
    }

    /// Like [`BrokerClient::token`], reporting that GitHub rejected (401) the token whose
    /// SHA-256 is `rejected`: the broker drops its cached token for this scope only if it is
    /// that one, and mints a fresh one (at most once per scope in a configured interval; sooner,
    /// it answers 429 `token_replace_rate_limited`, which is retryable). A digest of any other
    /// token leaves the cache alone.
    pub async fn replace_token(
        &self,
        credentials: &Credentials,
        repository: &str,
        permissions: &BTreeMap<String, String>,
        rejected: &TokenDigest,
    ) -> Result<TokenResponse, BrokerClientError> {
        self.request(credentials, repository, permissions, Some(rejected))
            .await
    }

    async fn request(
        &self,
        credentials: &Credentials,
        repository: &str,
        permissions: &BTreeMap<String, String>,
        rejected: Option<&TokenDigest>,
    ) -> Result<TokenResponse, BrokerClientError> {
        let request = TokenRequest {
            repository: repository.to_owned(),
            permissions: permissions.clone(),
            identity: self.sign_identity(
                credentials,
                SystemTime::now(),
                repository,
                permissions,
            )?,
            rejected_token_sha256: rejected.map(TokenDigest::to_hex),
        };
        let resp = self
            .http
            .post(self.tokens_url.clone())
            .json(&request)
            .send()
            .await
            .map_err(BrokerClientError::Transport)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(BrokerClientError::Transport)?;
        if status == 201 || status == 200 {
            return serde_json::from_slice(&body).map_err(|e| BrokerClientError::Decode {
                status,
                message: e.to_string(),
            });
        }
        Err(match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(ErrorBody { error }) => BrokerClientError::Status {
                status,
                code: error.code,
                message: error.message,
            },
            Err(_) => BrokerClientError::Status {
                status,
                code: "unknown".into(),
                message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssm_core::broker::{IdentityExpectations, StsEndpoints, check_identity};

    fn contents_write() -> BTreeMap<String, String> {
        BTreeMap::from([("contents".into(), "write".into())])
    }

    fn client(sts: &str) -> BrokerClient {
        BrokerClient::new(BrokerClientConfig {
            broker_url: "http://127.0.0.1:1/base/".into(),
            audience: "ssm-broker-test".into(),
            sts_endpoint: sts.into(),
            region: "us-east-1".into(),
            timeout: Duration::from_secs(2),
        })
        .expect("client")
    }

    #[test]
    fn signed_request_passes_the_brokers_checks() {
        let c = client("https://sts.amazonaws.com");
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            Some("session".into()),
            None,
            "test",
        );
        let req = c
            .sign_identity(&creds, SystemTime::now(), "Acme/Infra", &contents_write())
            .expect("signed");
        assert_eq!(c.tokens_url.as_str(), "http://127.0.0.1:1/base/v1/tokens");
        let auth = &req.headers["authorization"];
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{auth}"
        );
        assert!(auth.contains(AUDIENCE_HEADER), "audience is signed: {auth}");
        assert!(auth.contains(SCOPE_HEADER), "scope is signed: {auth}");
        assert_eq!(req.headers[SCOPE_HEADER], *"acme/infra contents=write");
        assert!(auth.contains("x-amz-security-token"), "{auth}");
        assert!(!auth.contains("secret"));
        let fwd = check_identity(
            &req,
            &IdentityExpectations {
                sts: &StsEndpoints::global_and_regions::<&str>(&[]).expect("endpoints"),
                audience: "ssm-broker-test",
                scope: "acme/infra contents=write",
                now: chrono::Utc::now(),
            },
        )
        .expect("broker accepts it");
        assert!(fwd.headers.iter().any(|(n, _)| n == "x-amz-date"));
        assert_eq!(
            fwd.headers[0],
            ("authorization".to_owned(), auth.to_owned())
        );
    }

    #[test]
    fn a_regional_signature_passes_a_broker_that_allows_the_region() {
        let c = BrokerClient::new(BrokerClientConfig {
            broker_url: "http://127.0.0.1:1/".into(),
            audience: "ssm-broker-test".into(),
            sts_endpoint: "https://sts.eu-west-1.amazonaws.com/".into(),
            region: "eu-west-1".into(),
            timeout: Duration::from_secs(2),
        })
        .expect("client");
        let creds = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let req = c
            .sign_identity(&creds, SystemTime::now(), "acme/infra", &contents_write())
            .expect("signed");
        let check = |regions: &[&str]| {
            check_identity(
                &req,
                &IdentityExpectations {
                    sts: &StsEndpoints::global_and_regions(regions).expect("endpoints"),
                    audience: "ssm-broker-test",
                    scope: "acme/infra contents=write",
                    now: chrono::Utc::now(),
                },
            )
        };
        assert_eq!(
            check(&["eu-west-1"]).expect("allowed").url,
            "https://sts.eu-west-1.amazonaws.com/"
        );
        assert!(check(&["us-east-1"]).is_err());
    }

    #[test]
    fn config_errors_are_not_retryable() {
        let err = BrokerClient::new(BrokerClientConfig {
            broker_url: "not a url".into(),
            audience: "a".into(),
            sts_endpoint: BrokerClientConfig::DEFAULT_STS_ENDPOINT.into(),
            region: "us-east-1".into(),
            timeout: Duration::from_secs(1),
        })
        .expect_err("bad url");
        assert!(!err.is_retryable());
        let err = BrokerClient::new(BrokerClientConfig {
            broker_url: "http://x".into(),
            audience: "a".into(),
            sts_endpoint: "https://sts.amazonaws.com/?Action=x".into(),
            region: "us-east-1".into(),
            timeout: Duration::from_secs(1),
        })
        .expect_err("query");
        assert!(matches!(err, BrokerClientError::Config(_)));
    }

    #[test]
    fn a_scope_the_broker_could_not_grant_is_refused_before_signing() {
        let c = client(BrokerClientConfig::DEFAULT_STS_ENDPOINT);
        let creds = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let err = c
            .sign_identity(&creds, SystemTime::now(), "acme", &contents_write())
            .expect_err("not owner/name");
        assert!(matches!(err, BrokerClientError::Request(_)) && !err.is_retryable());
        assert!(
            c.sign_identity(&creds, SystemTime::now(), "acme/infra", &BTreeMap::new())
                .is_err()
        );
    }

    #[test]
    fn retryability_by_status() {
        let status = |s| BrokerClientError::Status {
            status: s,
            code: "c".into(),
            message: "m".into(),
        };
        assert!(status(502).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(403).is_retryable());
        assert!(!status(401).is_retryable());
        assert!(!status(404).is_retryable());
    }

    #[tokio::test]
    async fn unreachable_broker_is_a_retryable_transport_error() {
        let c = client(BrokerClientConfig::DEFAULT_STS_ENDPOINT);
        let creds = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let err = c
            .token(
                &creds,
                "acme/infra",
                &BTreeMap::from([("contents".into(), "write".into())]),
            )
            .await
            .expect_err("nothing listens on port 1");
        assert!(matches!(err, BrokerClientError::Transport(_)), "{err:?}");
        assert!(err.is_retryable());
    }
}

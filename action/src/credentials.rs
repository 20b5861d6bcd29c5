//! Credentials: GitHub's OIDC token exchanged with STS `AssumeRoleWithWebIdentity`, or the
//! default AWS credential chain when the runner offers no token (local runs, tests).

use std::time::{Duration, SystemTime};

use aws_config::{Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use ssm_core::deploy::ActionInputs;
use ssm_core::deploy::github::{TokenClaims, access_denied_help};
use ssm_core::deploy::stack::backoff_ms;

use crate::runner::{self, OidcRequest, Runner};

/// Why no credentials could be had. `AccessDenied` carries the help text for the user.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "could not get the GitHub OIDC token: {0} (does the job have `permissions: id-token: write`?)"
    )]
    Oidc(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("STS AssumeRoleWithWebIdentity failed: {0}")]
    Sts(String),
}

/// How often and how patiently to retry STS (throttling and 5xx only).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_ms: u64,
    pub cap_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_ms: 300,
            cap_ms: 5_000,
        }
    }
}

/// The HTTP client for the runner's token endpoint, with bounded timeouts.
pub fn oidc_http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("ssm-action/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

#[derive(Deserialize)]
struct TokenResponse {
    value: SecretString,
}

/// GETs `<ACTIONS_ID_TOKEN_REQUEST_URL>&audience=<aud>` with the runner's bearer token and masks
/// the returned JWT before anything else can print it.
#[tracing::instrument(skip_all, fields(%audience))]
pub async fn fetch_oidc_token(
    http: &reqwest::Client,
    request: &OidcRequest,
    audience: &str,
) -> Result<SecretString, CredentialsError> {
    let mut url = url::Url::parse(&request.url)
        .map_err(|e| CredentialsError::Oidc(format!("bad ACTIONS_ID_TOKEN_REQUEST_URL: {e}")))?;
    url.query_pairs_mut().append_pair("audience", audience);
    let resp = http
        .get(url)
        .bearer_auth(request.bearer.expose_secret())
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| CredentialsError::Oidc(e.without_url().to_string()))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(CredentialsError::Oidc(format!(
            "the token endpoint answered {status}"
        )));
    }
    let body: TokenResponse = resp.json().await.map_err(|e| {
        CredentialsError::Oidc(format!("unexpected token response: {}", e.without_url()))
    })?;
    runner::mask(body.value.expose_secret());
    Ok(body.value)
}

/// Throttling and 5xx are worth retrying; anything else (AccessDenied, bad token, expired
/// token) will fail the same way again.
pub fn retryable<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    let throttled = matches!(
        err.code(),
        Some(
            "Throttling"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "TooManyRequestsException"
                | "SlowDown"
        )
    );
    let server = err
        .raw_response()
        .is_some_and(|r| r.status().is_server_error());
    throttled || server
}

/// Exchanges the OIDC token for role credentials; retries throttling and 5xx with full-jitter
/// backoff, explains AccessDenied with the token's claims.
#[tracing::instrument(skip(sts, token, policy))]
pub async fn assume_role_with_web_identity(
    sts: &aws_sdk_sts::Client,
    role_arn: &str,
    session_name: &str,
    duration_seconds: i32,
    token: &SecretString,
    policy: RetryPolicy,
) -> Result<Credentials, CredentialsError> {
    let mut attempt = 0;
    loop {
        let result = sts
            .assume_role_with_web_identity()
            .role_arn(role_arn)
            .role_session_name(session_name)
            .duration_seconds(duration_seconds)
            .web_identity_token(token.expose_secret())
            .send()
            .await;
        match result {
            Ok(out) => {
                let c = out.credentials.ok_or_else(|| {
                    CredentialsError::Sts("the response had no credentials".into())
                })?;
                runner::mask(&c.secret_access_key);
                runner::mask(&c.session_token);
                return Ok(Credentials::new(
                    c.access_key_id,
                    c.secret_access_key,
                    Some(c.session_token),
                    SystemTime::try_from(c.expiration).ok(),
                    "github-oidc",
                ));
            }
            Err(err) if retryable(&err) && attempt + 1 < policy.attempts => {
                let wait = backoff_ms(
                    attempt,
                    policy.base_ms,
                    policy.cap_ms,
                    rand::random::<f64>(),
                );
                tracing::warn!(attempt, wait_ms = wait, error = %crate::aws_error(&err), "STS throttled or failed; retrying");
                tokio::time::sleep(Duration::from_millis(wait)).await;
                attempt += 1;
            }
            Err(err) => {
                let code = err.code().unwrap_or_default().to_owned();
                if code == "AccessDenied"
                    || code == "InvalidIdentityToken"
                    || code == "AccessDeniedException"
                {
                    let claims = TokenClaims::from_jwt(token.expose_secret());
                    let sts_message = err.message().unwrap_or(code.as_str()).to_owned();
                    return Err(CredentialsError::AccessDenied(access_denied_help(
                        role_arn,
                        claims.as_ref(),
                        &sts_message,
                    )));
                }
                return Err(CredentialsError::Sts(crate::aws_error(&err).to_string()));
            }
        }
    }
}

/// The SDK configuration the run uses: region from the inputs, `AWS_ENDPOINT_URL` honoured, and
/// credentials from OIDC when the runner offers a token and a role is given, else the default
/// chain (assuming `role-to-assume` with it when given).
pub async fn sdk_config(inputs: &ActionInputs, runner: &Runner) -> anyhow::Result<SdkConfig> {
    let region = Region::new(inputs.aws_region.clone());
    // Bounded waits on every call: no hang on a dead endpoint (uploads get minutes, not forever).
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(120))
        .operation_attempt_timeout(Duration::from_secs(600))
        .build();
    let base = ssm_sdk_http::sdk_config_loader()
        .region(region.clone())
        .timeout_config(timeouts.clone());
    match (&runner.oidc, &inputs.role_to_assume) {
        (Some(oidc), Some(role)) => {
            let http = oidc_http_client()?;
            let token = fetch_oidc_token(&http, oidc, &inputs.audience).await?;
            // AssumeRoleWithWebIdentity is unsigned; this client needs no credentials and does
            // its own retrying (throttling and 5xx only).
            let anon = ssm_sdk_http::sdk_config_loader()
                .region(region)
                .no_credentials()
                .timeout_config(timeouts)
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .load()
                .await;
            let sts = aws_sdk_sts::Client::new(&anon);
            let creds = assume_role_with_web_identity(
                &sts,
                role,
                &inputs.role_session_name,
                inputs.role_duration_seconds,
                &token,
                RetryPolicy::default(),
            )
            .await?;
            tracing::info!(%role, session = %inputs.role_session_name, "assumed the role with the GitHub OIDC token");
            Ok(base
                .credentials_provider(SharedCredentialsProvider::new(creds))
                .load()
                .await)
        }
        (None, Some(role)) => {
            tracing::info!(
                "no ACTIONS_ID_TOKEN_REQUEST_URL: using the default AWS credential chain to assume {role}"
            );
            let config = base.load().await;
            let out = aws_sdk_sts::Client::new(&config)
                .assume_role()
                .role_arn(role)
                .role_session_name(&inputs.role_session_name)
                .duration_seconds(inputs.role_duration_seconds)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "AssumeRole {role} with the default credentials: {}",
                        crate::aws_error(&e)
                    )
                })?;
            let c = out
                .credentials
                .ok_or_else(|| anyhow::anyhow!("AssumeRole returned no credentials"))?;
            runner::mask(&c.secret_access_key);
            runner::mask(&c.session_token);
            let creds = Credentials::new(
                c.access_key_id,
                c.secret_access_key,
                Some(c.session_token),
                SystemTime::try_from(c.expiration).ok(),
                "assume-role",
            );
            Ok(config
                .to_builder()
                .credentials_provider(SharedCredentialsProvider::new(creds))
                .build())
        }
        (oidc, None) => {
            if oidc.is_some() {
                tracing::info!("no role-to-assume input: using the default AWS credential chain");
            } else {
                tracing::info!(
                    "no ACTIONS_ID_TOKEN_REQUEST_URL and no role-to-assume: using the default AWS credential chain"
                );
            }
            Ok(base.load().await)
        }
    }
}

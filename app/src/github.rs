//! The App's GitHub client: App JWTs, installation lookup and installation access tokens, sent
//! through octocrab, with our layers around it: bounded jittered retries (5xx, 429, secondary
//! rate limits honouring `Retry-After`), clock skew correction from GitHub's `Date` header, call
//! latency metrics and the scope check on minted tokens.
//!
//! Octocrab carries every request (base URL, headers, our rustls `reqwest` client underneath). We
//! sign the App JWT ourselves (skew-corrected, see [`GitHubApp::jwt`]) and hand it to a per-call
//! octocrab handle as its bearer token, and we use the raw `_get`/`_post` methods because the
//! retry and skew layers need the status and the `Date`/`Retry-After` headers that the typed
//! methods consume. Bodies are read into our own types: octocrab's `InstallationToken` keeps the
//! token in a plain `String`, and its `Repository` requires fields the access-token response does
//! not promise.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::header::{self, HeaderMap};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use jsonwebtoken::{Algorithm, Header};
use octocrab::Octocrab;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use ssm_core::broker::{
    AppJwtClaims, InstallationToken, Permissions, RepoName, permissions_to_wire, scope_matches,
};

use crate::config::AppKey;
use crate::metrics::Metrics;

/// The one factory for octocrab clients: `api_url` (github.com or GitHub Enterprise Server's
/// `https://HOST/api/v3`), no authentication (callers add theirs per call), requests carried by
/// a `reqwest` client with `timeout`, no redirects, on the workspace's rustls stack.
pub fn octocrab_client(api_url: &url::Url, timeout: Duration) -> anyhow::Result<Octocrab> {
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("serverless-ssm-app/", env!("CARGO_PKG_VERSION")))
        .build()?;
    Ok(Octocrab::builder()
        .base_uri(api_url.as_str().trim_end_matches('/'))?
        .build_with_reqwest(http)?)
}

/// Why a GitHub call failed.
#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("not found")]
    NotFound,
    #[error("GitHub answered HTTP {status}: {message}")]
    Rejected { status: u16, message: String },
    #[error("GitHub is unavailable: {0}")]
    Unavailable(String),
    #[error("GitHub returned a token for another scope than requested")]
    ScopeMismatch,
    #[error("could not sign the App JWT: {0}")]
    Jwt(String),
}

/// A token as GitHub minted it.
#[derive(Debug, Clone)]
pub struct MintedToken {
    pub token: InstallationToken,
    pub expires_at: DateTime<Utc>,
    pub permissions: BTreeMap<String, String>,
}

/// Retry and timeout knobs.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub max_backoff: Duration,
}

/// GitHub as the App sees it.
#[derive(Debug)]
pub struct GitHubApp {
    /// Unauthenticated; each call adds its own App JWT.
    octocrab: Octocrab,
    app_id: String,
    key: AppKey,
    /// GitHub's clock minus ours, in seconds, learnt from `Date` when GitHub rejects a JWT.
    skew_secs: AtomicI64,
    retry: RetryPolicy,
    metrics: Arc<Metrics>,
}

#[derive(Deserialize)]
struct InstallationBody {
    id: u64,
}

#[derive(Deserialize)]
struct AccessTokenBody {
    token: InstallationToken,
    expires_at: DateTime<Utc>,
    #[serde(default)]
    permissions: BTreeMap<String, String>,
    #[serde(default)]
    repositories: Vec<RepoBody>,
}

#[derive(Deserialize)]
struct RepoBody {
    full_name: String,
}

#[derive(Deserialize)]
struct GitHubMessage {
    message: String,
}

impl GitHubApp {
    /// The factory: base URL (github.com or GitHub Enterprise Server), timeout and retries from
    /// configuration.
    pub fn new(
        base: &url::Url,
        app_id: String,
        key: AppKey,
        timeout: Duration,
        retry: RetryPolicy,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            octocrab: octocrab_client(base, timeout)?,
            app_id,
            key,
            skew_secs: AtomicI64::new(0),
            retry,
            metrics,
        })
    }

    /// GitHub's clock offset currently applied to JWTs, in seconds.
    pub fn skew_secs(&self) -> i64 {
        self.skew_secs.load(Ordering::Relaxed)
    }

    fn jwt(&self) -> Result<String, GitHubError> {
        let now = Utc::now() + chrono::Duration::seconds(self.skew_secs());
        let claims = AppJwtClaims::new(&self.app_id, now);
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key.0)
            .map_err(|e| GitHubError::Jwt(e.to_string()))
    }

    /// `GET /repos/{owner}/{repo}/installation`.
    pub async fn installation_id(&self, repo: &RepoName) -> Result<u64, GitHubError> {
        let path = format!("/repos/{}/{}/installation", repo.owner(), repo.name());
        let (status, body) = self.call(Method::GET, &path, None).await?;
        match status {
            StatusCode::OK => serde_json::from_slice::<InstallationBody>(&body)
                .map(|b| b.id)
                .map_err(|e| GitHubError::Unavailable(format!("installation body: {e}"))),
            StatusCode::NOT_FOUND => Err(GitHubError::NotFound),
            other => Err(rejected(other, &body)),
        }
    }

    /// `POST /app/installations/{id}/access_tokens` limited to `repo` and `permissions`; the
    /// returned scope is checked against the request.
    pub async fn mint(
        &self,
        installation_id: u64,
        repo: &RepoName,
        permissions: &Permissions,
    ) -> Result<MintedToken, GitHubError> {
        let path = format!("/app/installations/{installation_id}/access_tokens");
        let body = json!({
            "repositories": [repo.name()],
            "permissions": permissions_to_wire(permissions),
        });
        let (status, bytes) = self.call(Method::POST, &path, Some(&body)).await?;
        match status {
            StatusCode::CREATED | StatusCode::OK => {
                let minted: AccessTokenBody = serde_json::from_slice(&bytes)
                    .map_err(|e| GitHubError::Unavailable(format!("access token body: {e}")))?;
                let same_repo = minted.repositories.len() == 1
                    && RepoName::parse(&minted.repositories[0].full_name).as_ref() == Ok(repo);
                if !same_repo || !scope_matches(permissions, &minted.permissions) {
                    return Err(GitHubError::ScopeMismatch);
                }
                Ok(MintedToken {
                    token: minted.token,
                    expires_at: minted.expires_at,
                    permissions: minted.permissions,
                })
            }
            StatusCode::NOT_FOUND => Err(GitHubError::NotFound),
            other => Err(rejected(other, &bytes)),
        }
    }

    /// One logical call: retries transient failures with bounded jittered backoff, and corrects
    /// the JWT clock once when GitHub rejects its `iat`/`exp`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, Bytes), GitHubError> {
        let mut attempt = 0u32;
        let mut skew_corrected = false;
        loop {
            let started = Instant::now();
            let outcome = self.send(&method, path, body).await;
            self.metrics.observe_github(started.elapsed());
            let (status, headers, bytes) = match outcome {
                Ok(done) => done,
                Err(e) if attempt < self.retry.max_retries => {
                    tracing::warn!(path, attempt, error = %e, "GitHub call failed; retrying");
                    tokio::time::sleep(self.backoff(attempt, None)).await;
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if status == StatusCode::UNAUTHORIZED
                && !skew_corrected
                && is_clock_error(&bytes)
                && let Some(skew) = skew_from(&headers, Utc::now())
            {
                self.skew_secs.store(skew, Ordering::Relaxed);
                skew_corrected = true;
                tracing::warn!(
                    path,
                    skew_secs = skew,
                    "GitHub rejected the JWT's time; correcting the clock skew from its Date header"
                );
                continue;
            }
            if is_retryable(status, &headers, &bytes) && attempt < self.retry.max_retries {
                let delay = self.backoff(attempt, retry_after(&headers));
                tracing::warn!(
                    path,
                    status = status.as_u16(),
                    attempt,
                    delay_ms = delay.as_millis() as u64,
                    "GitHub call failed; retrying"
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
                continue;
            }
            if is_retryable(status, &headers, &bytes) {
                return Err(GitHubError::Unavailable(format!(
                    "HTTP {} after {} attempts",
                    status.as_u16(),
                    attempt + 1
                )));
            }
            return Ok((status, bytes));
        }
    }

    /// One request through octocrab, authenticated with a fresh App JWT.
    async fn send(
        &self,
        method: &Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), GitHubError> {
        let client = self
            .octocrab
            .user_access_token(SecretString::from(self.jwt()?))
            .map_err(|e| GitHubError::Unavailable(transport_error(&e)))?;
        let sent = match *method {
            Method::GET => client._get(path).await,
            _ => client._post(path, body).await,
        };
        read_response(sent).await
    }

    /// `Retry-After` (capped) when GitHub gives one, otherwise exponential backoff with jitter
    /// (a random wait between half and all of 100 ms × 2^attempt, capped).
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let cap = self.retry.max_backoff;
        match retry_after {
            Some(wait) => wait.min(cap),
            None => {
                let ceiling =
                    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(10))).min(cap);
                let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
                Duration::from_millis(rand::random_range(millis / 2..=millis.max(1)))
            }
        }
    }
}

/// Status, headers and body of an octocrab raw response.
pub(crate) async fn read_response(
    sent: octocrab::Result<http::Response<BoxBody<Bytes, octocrab::Error>>>,
) -> Result<(StatusCode, HeaderMap, Bytes), GitHubError> {
    let response = sent.map_err(|e| GitHubError::Unavailable(transport_error(&e)))?;
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|e| GitHubError::Unavailable(transport_error(&e)))?
        .to_bytes();
    Ok((parts.status, parts.headers, bytes))
}

/// A transport failure in words, without the URL (a manifest code travels in one).
pub(crate) fn transport_error(e: &octocrab::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(r) = err.downcast_ref::<reqwest::Error>() {
            let kind = if r.is_timeout() {
                "timed out"
            } else if r.is_connect() {
                "could not connect"
            } else if r.is_body() || r.is_decode() {
                "could not read the response"
            } else {
                "request failed"
            };
            return format!("GitHub {kind}");
        }
        source = err.source();
    }
    match e {
        octocrab::Error::Uri { .. } | octocrab::Error::UriParse { .. } => {
            "invalid GitHub URL".into()
        }
        _ => "GitHub request failed".into(),
    }
}

fn rejected(status: StatusCode, body: &[u8]) -> GitHubError {
    let message = serde_json::from_slice::<GitHubMessage>(body)
        .map(|m| m.message)
        .unwrap_or_else(|_| "no message".into());
    GitHubError::Rejected {
        status: status.as_u16(),
        message: message.chars().take(300).collect(),
    }
}

/// 5xx, 429 and secondary rate limits (403 with `Retry-After`, or with no requests left).
fn is_retryable(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> bool {
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return true;
    }
    status == StatusCode::FORBIDDEN
        && (headers.contains_key(header::RETRY_AFTER)
            || headers
                .get("x-ratelimit-remaining")
                .is_some_and(|v| v == "0")
            || String::from_utf8_lossy(body).contains("rate limit"))
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

/// GitHub's messages for a JWT whose `iat` or `exp` it cannot accept.
fn is_clock_error(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    text.contains("('iat')") || text.contains("('exp')")
}

/// GitHub's clock minus ours, from its `Date` header.
fn skew_from(headers: &HeaderMap, now: DateTime<Utc>) -> Option<i64> {
    let date = headers.get(header::DATE)?.to_str().ok()?;
    let theirs = DateTime::parse_from_rfc2822(date).ok()?;
    Some(theirs.timestamp() - now.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    #[test]
    fn retryable_statuses() {
        let none = HeaderMap::new();
        assert!(is_retryable(StatusCode::BAD_GATEWAY, &none, b""));
        assert!(is_retryable(StatusCode::TOO_MANY_REQUESTS, &none, b""));
        assert!(!is_retryable(
            StatusCode::FORBIDDEN,
            &none,
            b"{\"message\":\"Resource not accessible\"}"
        ));
        assert!(is_retryable(
            StatusCode::FORBIDDEN,
            &none,
            b"{\"message\":\"You have exceeded a secondary rate limit.\"}"
        ));
        let mut ra = HeaderMap::new();
        ra.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert!(is_retryable(StatusCode::FORBIDDEN, &ra, b""));
        assert_eq!(retry_after(&ra), Some(Duration::from_secs(7)));
        assert!(!is_retryable(StatusCode::UNPROCESSABLE_ENTITY, &none, b""));
        assert!(!is_retryable(StatusCode::NOT_FOUND, &none, b""));
    }

    #[test]
    fn skew_is_read_from_the_date_header() {
        let mut h = HeaderMap::new();
        h.insert(
            header::DATE,
            HeaderValue::from_static("Sat, 28 Nov 2026 01:00:00 GMT"),
        );
        let now = DateTime::parse_from_rfc3339("2026-11-28T01:02:00Z")
            .expect("date")
            .to_utc();
        assert_eq!(skew_from(&h, now), Some(-120));
        assert!(is_clock_error(
            b"{\"message\":\"'Issued at' claim ('iat') must be an Integer representing a time in the past.\"}"
        ));
        assert!(!is_clock_error(b"{\"message\":\"Bad credentials\"}"));
    }
}

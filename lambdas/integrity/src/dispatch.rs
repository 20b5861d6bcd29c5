//! `POST /repos/{owner}/{repo}/dispatches` with a broker-issued installation token, sent through
//! octocrab and retried with bounded, jittered backoff. The token never appears in logs or errors.

use std::error::Error as StdError;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use octocrab::Octocrab;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::Mutex;

/// A short-lived installation token and its expiry.
#[derive(Debug, Clone)]
pub struct GitHubToken {
    pub token: SecretString,
    pub expires_at: DateTime<Utc>,
}

/// Why no token could be had; `retryable` for transport errors, 5xx and 429 from the broker.
#[derive(Debug, thiserror::Error)]
#[error("token broker: {source}")]
pub struct TokenError {
    pub retryable: bool,
    #[source]
    pub source: Box<dyn StdError + Send + Sync>,
}

/// Where installation tokens come from (the broker in production).
pub trait TokenSource: Send + Sync {
    fn token(&self) -> impl Future<Output = Result<GitHubToken, TokenError>> + Send;

    /// GitHub answered 401 to `token`: the next [`TokenSource::token`] should not hand it out
    /// again (the broker replaces its cached copy when told which one it was).
    fn rejected(&self, token: &SecretString) -> impl Future<Output = ()> + Send {
        let _ = token;
        std::future::ready(())
    }
}

/// Sends a dispatch body; the handler's seam.
pub trait Notify: Send + Sync {
    fn notify(&self, body: &Value) -> impl Future<Output = Result<(), DispatchError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// GitHub refused the request for good (400, 403, 404, 422): retrying will not help.
    #[error("GitHub rejected the dispatch with {status}: {message}")]
    Rejected { status: u16, message: String },
    #[error(transparent)]
    Token(TokenError),
    #[error("gave up after {attempts} attempts; last: {last}")]
    Exhausted { attempts: u32, last: String },
}

/// Bounded exponential backoff with full jitter; `Retry-After` honoured up to `max_delay`.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (attempt counts from 1).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        let jittered = exp.mul_f64(rand::random::<f64>());
        retry_after
            .map_or(jittered, |ra| ra.max(jittered))
            .min(self.max_delay)
    }
}

/// What to do with a GitHub answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// 401: the token expired or was revoked; fetch a new one and retry.
    RefreshToken,
    Retry {
        after: Option<Duration>,
    },
    Fail,
}

/// Decides from status and headers. 403 is retried only as a rate limit (`Retry-After` or
/// `x-ratelimit-remaining: 0`), as GitHub documents for secondary limits.
pub fn decide(status: StatusCode, headers: &HeaderMap) -> Outcome {
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let rate_limited = retry_after.is_some()
        || headers
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            == Some("0");
    match status.as_u16() {
        200..=299 => Outcome::Done,
        401 => Outcome::RefreshToken,
        429 => Outcome::Retry { after: retry_after },
        403 if rate_limited => Outcome::Retry { after: retry_after },
        500..=599 => Outcome::Retry { after: retry_after },
        _ => Outcome::Fail,
    }
}

/// The GitHub client: octocrab over a `reqwest` client (timeout from configuration, no redirects,
/// the workspace's rustls stack). Requests carry their own installation token, so the client
/// holds none.
pub fn github_http_client(timeout: Duration) -> anyhow::Result<Octocrab> {
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("ssm-integrity/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    Ok(Octocrab::builder().build_with_reqwest(http)?)
}

/// Sends dispatches to one repository.
#[derive(Debug)]
pub struct GitHubDispatcher<T> {
    github: Octocrab,
    url: String,
    tokens: T,
    retry: RetryPolicy,
    cached: Mutex<Option<GitHubToken>>,
}

/// A token is reused until this long before it expires.
const TOKEN_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

impl<T: TokenSource> GitHubDispatcher<T> {
    pub fn new(
        github: Octocrab,
        api_url: &str,
        repository: &str,
        tokens: T,
        retry: RetryPolicy,
    ) -> Self {
        let url = format!(
            "{}/repos/{repository}/dispatches",
            api_url.trim_end_matches('/')
        );
        GitHubDispatcher {
            github,
            url,
            tokens,
            retry,
            cached: Mutex::new(None),
        }
    }

    /// The token source (tests inspect it).
    pub fn tokens(&self) -> &T {
        &self.tokens
    }

    /// Replaces the retry policy (tests shorten the waits).
    pub fn set_retry(&mut self, retry: RetryPolicy) {
        self.retry = retry;
    }

    async fn token(&self) -> Result<SecretString, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(t) = cached
            .as_ref()
            .filter(|t| t.expires_at - TOKEN_MARGIN > Utc::now())
        {
            return Ok(t.token.clone());
        }
        let fresh = self.tokens.token().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    async fn forget_token(&self) {
        *self.cached.lock().await = None;
    }

    async fn attempt(&self, body: &Value) -> Attempt {
        let token = match self.token().await {
            Ok(token) => token,
            Err(e) if e.retryable => {
                return Attempt::Retry {
                    after: None,
                    reason: e.to_string(),
                };
            }
            Err(e) => return Attempt::Fatal(DispatchError::Token(e)),
        };
        // The URL is absolute (github.com or GHES), so octocrab sends it as is; the token is
        // this request's own header, marked sensitive.
        let sent = match bearer(token.expose_secret()) {
            Some(auth) => {
                let request = http::Request::post(&self.url)
                    .header(http::header::ACCEPT, "application/vnd.github+json")
                    .header(http::header::AUTHORIZATION, auth);
                match self.github.build_request(request, Some(body)) {
                    Ok(request) => self.github.execute(request).await,
                    Err(e) => Err(e),
                }
            }
            None => {
                return Attempt::Fatal(DispatchError::Rejected {
                    status: 0,
                    message: "the installation token is not a valid header value".into(),
                });
            }
        };
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                let reason = format!("transport: {}", transport_error(&e));
                return Attempt::Retry {
                    after: None,
                    reason,
                };
            }
        };
        let status = response.status();
        match decide(status, response.headers()) {
            Outcome::Done => Attempt::Sent,
            Outcome::RefreshToken => {
                self.forget_token().await;
                self.tokens.rejected(&token).await;
                Attempt::Retry {
                    after: None,
                    reason: "401: token expired or revoked".into(),
                }
            }
            Outcome::Retry { after } => Attempt::Retry {
                after,
                reason: format!("GitHub answered {status}"),
            },
            Outcome::Fail => {
                let message = match response.into_body().collect().await {
                    Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
                    Err(_) => String::new(),
                };
                Attempt::Fatal(DispatchError::Rejected {
                    status: status.as_u16(),
                    message: message.chars().take(500).collect(),
                })
            }
        }
    }
}

/// `Bearer <token>` as a sensitive header value.
fn bearer(token: &str) -> Option<http::HeaderValue> {
    let mut value = http::HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// A transport failure in words, without the URL.
fn transport_error(e: &octocrab::Error) -> String {
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(r) = err.downcast_ref::<reqwest::Error>() {
            return if r.is_timeout() {
                "timed out".into()
            } else if r.is_connect() {
                "could not connect".into()
            } else {
                "request failed".into()
            };
        }
        source = err.source();
    }
    "request failed".into()
}

/// The result of one attempt.
#[derive(Debug)]
enum Attempt {
    Sent,
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    Fatal(DispatchError),
}

impl<T: TokenSource> Notify for GitHubDispatcher<T> {
    #[tracing::instrument(skip_all, fields(url = %self.url))]
    async fn notify(&self, body: &Value) -> Result<(), DispatchError> {
        let mut last = String::new();
        for attempt in 1..=self.retry.max_attempts {
            match self.attempt(body).await {
                Attempt::Sent => {
                    tracing::info!(attempt, "repository_dispatch sent");
                    return Ok(());
                }
                Attempt::Fatal(e) => return Err(e),
                Attempt::Retry { after, reason } => {
                    if attempt < self.retry.max_attempts {
                        let delay = self.retry.delay(attempt, after);
                        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                        tracing::warn!(attempt, delay_ms, %reason, "dispatch failed, retrying");
                        tokio::time::sleep(delay).await;
                    }
                    last = reason;
                }
            }
        }
        Err(DispatchError::Exhausted {
            attempts: self.retry.max_attempts,
            last,
        })
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn decisions() {
        let none = HeaderMap::new();
        assert_eq!(decide(StatusCode::NO_CONTENT, &none), Outcome::Done);
        assert_eq!(
            decide(StatusCode::UNAUTHORIZED, &none),
            Outcome::RefreshToken
        );
        assert_eq!(
            decide(StatusCode::BAD_GATEWAY, &none),
            Outcome::Retry { after: None }
        );
        assert_eq!(
            decide(StatusCode::TOO_MANY_REQUESTS, &none),
            Outcome::Retry { after: None }
        );
        assert_eq!(decide(StatusCode::FORBIDDEN, &none), Outcome::Fail);
        assert_eq!(decide(StatusCode::NOT_FOUND, &none), Outcome::Fail);
        assert_eq!(
            decide(StatusCode::UNPROCESSABLE_ENTITY, &none),
            Outcome::Fail
        );
        let mut limited = HeaderMap::new();
        limited.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(
            decide(StatusCode::FORBIDDEN, &limited),
            Outcome::Retry {
                after: Some(Duration::from_secs(3))
            }
        );
        let mut exhausted = HeaderMap::new();
        exhausted.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        assert_eq!(
            decide(StatusCode::FORBIDDEN, &exhausted),
            Outcome::Retry { after: None }
        );
    }

    #[test]
    fn backoff_is_bounded() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for attempt in 1..=40 {
            assert!(policy.delay(attempt, None) <= Duration::from_secs(1));
        }
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(60))),
            Duration::from_secs(1),
            "Retry-After capped"
        );
        assert!(policy.delay(1, Some(Duration::from_millis(500))) >= Duration::from_millis(500));
    }
}

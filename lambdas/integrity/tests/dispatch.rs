//! `GitHubDispatcher` against the GitHub emulator (no AWS needed): retries, token refresh on 401,
//! permanent rejections, token caching, and no token in the logs.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail the test"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use secrecy::SecretString;
use serde_json::{Value, json};
use ssm_integrity::dispatch::{
    DispatchError, GitHubDispatcher, GitHubToken, Notify, RetryPolicy, TokenError, TokenSource,
    github_http_client,
};
use ssm_testkit::github::{GitHubEmulator, TEST_APP_PUBLIC_KEY_PEM};

const REPOSITORY: &str = "acme/infra";
const DISPATCHES: &str = "/repos/acme/infra/dispatches";

/// Every log line of this test binary at TRACE, from every crate and thread.
fn logs() -> String {
    ssm_testkit::logs::global().text()
}

/// Mints tokens from the emulator; the first `fail` calls fail (retryable or not).
struct EmulatorTokens {
    github: Arc<GitHubEmulator>,
    repository: &'static str,
    calls: AtomicUsize,
    fail: usize,
    retryable: bool,
    issued: Mutex<Vec<String>>,
}

impl std::fmt::Debug for EmulatorTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmulatorTokens")
    }
}

impl TokenSource for EmulatorTokens {
    async fn token(&self) -> Result<GitHubToken, TokenError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail {
            return Err(TokenError {
                retryable: self.retryable,
                source: "broker answered 503".into(),
            });
        }
        let token = self
            .github
            .issue_token(self.repository, &[("contents", "write")]);
        self.issued.lock().unwrap().push(token.clone());
        Ok(GitHubToken {
            token: SecretString::from(token),
            expires_at: Utc::now() + chrono::TimeDelta::hours(1),
        })
    }
}

async fn setup(
    repository: &'static str,
    fail: usize,
    retryable: bool,
) -> (Arc<GitHubEmulator>, GitHubDispatcher<EmulatorTokens>) {
    logs();
    let github = Arc::new(GitHubEmulator::start(4242, TEST_APP_PUBLIC_KEY_PEM).await);
    github.install(REPOSITORY, 9);
    github.install("acme/other", 10);
    let tokens = EmulatorTokens {
        github: github.clone(),
        repository,
        calls: AtomicUsize::new(0),
        fail,
        retryable,
        issued: Mutex::default(),
    };
    let retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
    };
    let http = github_http_client(Duration::from_secs(5)).unwrap();
    (
        github.clone(),
        GitHubDispatcher::new(http, &github.base_url(), REPOSITORY, tokens, retry),
    )
}

fn body() -> Value {
    json!({"event_type": "ssm-drift", "client_payload": {"source": "event", "count": 1}})
}

impl EmulatorTokens {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn sends_and_reuses_the_token() {
    let (github, dispatcher) = setup(REPOSITORY, 0, false).await;
    dispatcher.notify(&body()).await.unwrap();
    dispatcher.notify(&body()).await.unwrap();
    assert_eq!(github.dispatches().len(), 2);
    assert_eq!(github.dispatches()[0].body, body());
    assert_eq!(
        dispatcher_tokens(&dispatcher).calls(),
        1,
        "a valid token is reused"
    );
}

fn dispatcher_tokens(d: &GitHubDispatcher<EmulatorTokens>) -> &EmulatorTokens {
    d.tokens()
}

#[tokio::test]
async fn a_401_fetches_a_new_token_and_retries() {
    let (github, dispatcher) = setup(REPOSITORY, 0, false).await;
    github.fail_next("POST", DISPATCHES, 401, 1);
    dispatcher.notify(&body()).await.unwrap();
    assert_eq!(github.dispatches().len(), 1);
    assert_eq!(dispatcher_tokens(&dispatcher).calls(), 2);
}

#[tokio::test]
async fn server_errors_are_retried_up_to_the_bound() {
    let (github, dispatcher) = setup(REPOSITORY, 0, false).await;
    github.fail_next("POST", DISPATCHES, 500, 2);
    dispatcher.notify(&body()).await.unwrap();
    assert_eq!(github.dispatches().len(), 1, "third attempt succeeded");

    github.fail_next("POST", DISPATCHES, 500, 3);
    let err = dispatcher.notify(&body()).await.unwrap_err();
    assert!(
        matches!(err, DispatchError::Exhausted { attempts: 3, .. }),
        "{err}"
    );
    assert_eq!(github.dispatches().len(), 1);
}

#[tokio::test]
async fn a_secondary_rate_limit_403_is_retried() {
    let (github, dispatcher) = setup(REPOSITORY, 0, false).await;
    github.fail_next("POST", DISPATCHES, 403, 1);
    dispatcher.notify(&body()).await.unwrap();
    assert_eq!(github.dispatches().len(), 1);
}

#[tokio::test]
async fn an_invalid_body_is_rejected_once_not_retried() {
    let (github, dispatcher) = setup(REPOSITORY, 0, false).await;
    let eleven: serde_json::Map<String, Value> =
        (0..11).map(|i| (format!("k{i}"), json!(i))).collect();
    let err = dispatcher
        .notify(&json!({"event_type": "ssm-drift", "client_payload": eleven}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DispatchError::Rejected { status: 422, .. }),
        "{err}"
    );
    assert!(github.dispatches().is_empty());
}

#[tokio::test]
async fn a_token_for_another_repository_is_refused() {
    let (github, dispatcher) = setup("acme/other", 0, false).await;
    let err = dispatcher.notify(&body()).await.unwrap_err();
    assert!(
        matches!(
            err,
            DispatchError::Rejected {
                status: 403 | 404,
                ..
            }
        ),
        "{err}"
    );
    assert!(github.dispatches().is_empty());
}

#[tokio::test]
async fn broker_outages_are_retried_and_refusals_are_not() {
    let (github, dispatcher) = setup(REPOSITORY, 1, true).await;
    dispatcher.notify(&body()).await.unwrap();
    assert_eq!(github.dispatches().len(), 1);

    let (github, dispatcher) = setup(REPOSITORY, 1, false).await;
    let err = dispatcher.notify(&body()).await.unwrap_err();
    assert!(
        matches!(
            err,
            DispatchError::Token(TokenError {
                retryable: false,
                ..
            })
        ),
        "{err}"
    );
    assert_eq!(
        dispatcher_tokens(&dispatcher).calls(),
        1,
        "a refusal is not retried"
    );
    assert!(github.dispatches().is_empty());
}

#[tokio::test]
async fn the_token_never_reaches_the_logs_or_errors() {
    let (github, dispatcher) = setup(REPOSITORY, 0, false).await;
    github.fail_next("POST", DISPATCHES, 401, 1);
    github.fail_next("POST", DISPATCHES, 502, 1);
    dispatcher.notify(&body()).await.unwrap();
    github.fail_next("POST", DISPATCHES, 500, 3);
    let err = dispatcher.notify(&body()).await.unwrap_err();
    let issued = dispatcher_tokens(&dispatcher)
        .issued
        .lock()
        .unwrap()
        .clone();
    assert_eq!(issued.len(), 2);
    let logs = logs();
    assert!(
        logs.contains("dispatch failed, retrying"),
        "log capture works"
    );
    for token in issued {
        assert!(token.len() >= 20);
        assert!(!logs.contains(&token), "token in logs");
        assert!(
            !format!("{err} {err:?} {dispatcher:?}").contains(&token),
            "token in an error or Debug"
        );
    }
}

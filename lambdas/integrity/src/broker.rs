//! Installation tokens from the token broker, proved with the Lambda's own IAM role: no PAT and no
//! secret anywhere in the Lambda.

use std::collections::BTreeMap;
use std::sync::Mutex;

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use secrecy::{ExposeSecret, SecretString};
use ssm_broker_client::{BrokerClient, BrokerClientError};
use ssm_core::broker::TokenDigest;

use crate::dispatch::{GitHubToken, TokenError, TokenSource};

/// `repository_dispatch` needs `contents: write` and nothing else.
pub fn dispatch_permissions() -> BTreeMap<String, String> {
    BTreeMap::from([("contents".to_owned(), "write".to_owned())])
}

/// Asks the broker for a token scoped to one repository with [`dispatch_permissions`].
#[derive(Debug)]
pub struct BrokerTokenSource {
    client: BrokerClient,
    credentials: SharedCredentialsProvider,
    repository: String,
    permissions: BTreeMap<String, String>,
    /// The digest of the last token GitHub rejected, until the broker hands out another one.
    rejected: Mutex<Option<TokenDigest>>,
}

impl BrokerTokenSource {
    pub fn new(
        client: BrokerClient,
        credentials: SharedCredentialsProvider,
        repository: impl Into<String>,
    ) -> Self {
        BrokerTokenSource {
            client,
            credentials,
            repository: repository.into(),
            permissions: dispatch_permissions(),
            rejected: Mutex::new(None),
        }
    }

    fn pending_rejection(&self) -> Option<TokenDigest> {
        *self.rejected.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl TokenSource for BrokerTokenSource {
    async fn token(&self) -> Result<GitHubToken, TokenError> {
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| TokenError {
                retryable: true,
                source: Box::new(e),
            })?;
        let rejected = self.pending_rejection();
        let response = match &rejected {
            // Tell the broker which token GitHub rejected, so it replaces its cached copy.
            Some(digest) => {
                self.client
                    .replace_token(&credentials, &self.repository, &self.permissions, digest)
                    .await
            }
            None => {
                self.client
                    .token(&credentials, &self.repository, &self.permissions)
                    .await
            }
        }
        .map_err(|e: BrokerClientError| TokenError {
            retryable: e.is_retryable(),
            source: Box::new(e),
        })?;
        if rejected.is_some_and(|d| !d.matches(&response.token)) {
            *self.rejected.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        tracing::info!(repository = %response.repository, expires_at = %response.expires_at, replacing = rejected.is_some(), "installation token from the broker");
        Ok(GitHubToken {
            token: SecretString::from(response.token.expose().to_owned()),
            expires_at: response.expires_at,
        })
    }

    async fn rejected(&self, token: &SecretString) {
        let digest = TokenDigest::of(token.expose_secret());
        *self.rejected.lock().unwrap_or_else(|p| p.into_inner()) = Some(digest);
    }
}

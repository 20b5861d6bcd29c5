//! Installation tokens from the token broker, proved with the Lambda's own IAM role: no PAT and no
//! secret anywhere in the Lambda.

use std::collections::BTreeMap;

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use secrecy::SecretString;
use ssm_broker_client::{BrokerClient, BrokerClientError};

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
        }
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
        let response = self
            .client
            .token(&credentials, &self.repository, &self.permissions)
            .await
            .map_err(|e: BrokerClientError| TokenError {
                retryable: e.is_retryable(),
                source: Box::new(e),
            })?;
        tracing::info!(repository = %response.repository, expires_at = %response.expires_at, "installation token from the broker");
        Ok(GitHubToken {
            token: SecretString::from(response.token.expose().to_owned()),
            expires_at: response.expires_at,
        })
    }
}

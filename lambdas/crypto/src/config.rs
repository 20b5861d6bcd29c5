//! Typed configuration, from flags or the environment, loaded once at start-up.

use std::path::PathBuf;
use std::time::Duration;

use ssm_core::api::Limits;
use ssm_keystore::{CachePolicy, KeySource};

/// Where the keyring comes from and the request limits.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceArgs {
    /// Keyring JSON file (takes precedence over the secret).
    #[arg(long, env = "SSM_KEYRING_FILE")]
    pub keyring_file: Option<PathBuf>,
    /// Secrets Manager secret holding the keyring (its AWSCURRENT version is used).
    #[arg(long, env = "SSM_KEY_SECRET_ID")]
    pub key_secret_id: Option<String>,
    /// Seconds a loaded keyring is used before it is reloaded.
    #[arg(long, env = "SSM_KEYRING_TTL_SECS", default_value_t = 300)]
    pub keyring_ttl_secs: u64,
    /// Least seconds between early reloads caused by ciphertexts naming unknown newer versions.
    #[arg(long, env = "SSM_KEYRING_REFRESH_SECS", default_value_t = 5)]
    pub keyring_refresh_secs: u64,
    /// Largest plaintext per item, in bytes.
    #[arg(long, env = "SSM_MAX_PLAINTEXT_BYTES", default_value_t = 1 << 20)]
    pub max_plaintext_bytes: usize,
    /// Most items in one batch request.
    #[arg(long, env = "SSM_MAX_BATCH", default_value_t = 1000)]
    pub max_batch: usize,
}

impl ServiceArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_plaintext: self.max_plaintext_bytes,
            max_batch: self.max_batch.max(1),
        }
    }

    pub fn cache_policy(&self) -> CachePolicy {
        CachePolicy {
            ttl: Duration::from_secs(self.keyring_ttl_secs),
            min_refresh_interval: Duration::from_secs(self.keyring_refresh_secs),
        }
    }

    /// [`ServiceArgs::source`] for the Lambda function: the secret's client is built from
    /// the environment Lambda sets ([`ssm_keystore::lambda_secrets_client`]).
    pub fn lambda_source(&self) -> Result<Option<KeySource>, String> {
        if let Some(path) = &self.keyring_file {
            return Ok(Some(KeySource::File(path.clone())));
        }
        let Some(secret_id) = self.key_secret_id.clone() else {
            return Ok(None);
        };
        Ok(Some(KeySource::SecretsManager {
            client: ssm_keystore::lambda_secrets_client()?,
            secret_id,
        }))
    }

    /// The configured source: the file if set, else the secret, else `None`.
    pub async fn source(&self) -> Option<KeySource> {
        if let Some(path) = &self.keyring_file {
            return Some(KeySource::File(path.clone()));
        }
        let secret_id = self.key_secret_id.clone()?;
        Some(KeySource::SecretsManager {
            client: ssm_keystore::secrets_client().await,
            secret_id,
        })
    }
}

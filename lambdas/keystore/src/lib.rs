//! Where the keyring comes from, and how long a copy of it is trusted.
//!
//! A [`KeySource`] loads the keyring from a Secrets Manager secret (its AWSCURRENT version) or
//! from a file. A [`KeyringCache`] keeps it for a TTL per execution environment, loads it at
//! most once at a time, refreshes it early (rate-limited) when a ciphertext names a version
//! newer than it knows, and keeps serving the last good copy when a refresh fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_secretsmanager::Client as SecretsClient;
use ssm_core::envelope::KeyVersion;
use ssm_core::keyring::{Keyring, KeyringError};
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

/// Stage label of the version in use.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// Stage label Secrets Manager moves to the version AWSCURRENT replaced.
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// Loading the keyring failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading secret {secret_id}: {message}")]
    Secret { secret_id: String, message: String },
    #[error("secret {0} has no SecretString")]
    NotAString(String),
    #[error("reading keyring file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Keyring(#[from] KeyringError),
}

/// Where the keyring lives.
#[derive(Debug, Clone)]
pub enum KeySource {
    SecretsManager {
        client: SecretsClient,
        secret_id: String,
    },
    File(PathBuf),
}

impl KeySource {
    /// Loads and validates the keyring.
    ///
    /// A secret whose AWSCURRENT holds no keys while AWSPREVIOUS does (the keyring was put back
    /// to its uninitialised form, e.g. by a template change that regenerated the value) is served
    /// from AWSPREVIOUS: the API keeps working with the keys it had until rotation continues that
    /// keyring (the rotation function never starts a new one over stored keys). Never the other
    /// way round: a current keyring with keys is always the one served.
    pub async fn load(&self) -> Result<Keyring, LoadError> {
        let text = match self {
            KeySource::SecretsManager { client, secret_id } => {
                let current = Keyring::from_json(
                    &read_secret_string(client, secret_id, None, Some(AWSCURRENT)).await?,
                )?;
                if current.holds_keys() {
                    return Ok(current);
                }
                // No AWSPREVIOUS (a new install) or one without keys: the current keyring stands.
                let previous = read_secret_string(client, secret_id, None, Some(AWSPREVIOUS))
                    .await
                    .ok()
                    .and_then(|text| Keyring::from_json(&text).ok())
                    .filter(Keyring::holds_keys);
                return Ok(match previous {
                    Some(previous) => {
                        tracing::warn!(
                            secret = %secret_id,
                            "AWSCURRENT holds no keys; serving AWSPREVIOUS until rotation continues it"
                        );
                        previous
                    }
                    None => current,
                });
            }
            KeySource::File(path) => {
                tokio::fs::read_to_string(path)
                    .await
                    .map_err(|source| LoadError::File {
                        path: path.clone(),
                        source,
                    })?
            }
        };
        Ok(Keyring::from_json(&text)?)
    }

    /// A short description for logs (the secret id or path; never contents).
    pub fn describe(&self) -> String {
        match self {
            KeySource::SecretsManager { secret_id, .. } => format!("secret {secret_id}"),
            KeySource::File(path) => format!("file {}", path.display()),
        }
    }
}

/// Reads one version of a secret (by id or stage) as a string.
pub async fn read_secret_string(
    client: &SecretsClient,
    secret_id: &str,
    version_id: Option<&str>,
    stage: Option<&str>,
) -> Result<String, LoadError> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .set_version_id(version_id.map(str::to_owned))
        .set_version_stage(stage.map(str::to_owned))
        .send()
        .await
        .map_err(|e| LoadError::Secret {
            secret_id: secret_id.to_owned(),
            message: aws_error_message(&e),
        })?;
    out.secret_string
        .ok_or_else(|| LoadError::NotAString(secret_id.to_owned()))
}

/// A one-line description of an SDK error: its code and message, never request data.
pub fn aws_error_message<E, R>(error: &aws_sdk_secretsmanager::error::SdkError<E, R>) -> String
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_secretsmanager::error::SdkError;
    match error {
        SdkError::ServiceError(service) => {
            let err = service.err();
            format!(
                "{}: {}",
                err.code().unwrap_or("ServiceError"),
                err.message().unwrap_or("no message")
            )
        }
        SdkError::TimeoutError(_) => "timed out".to_owned(),
        SdkError::DispatchFailure(_) => "could not reach the service".to_owned(),
        other => other.to_string(),
    }
}

/// The Secrets Manager client, configured from the environment (region, credentials,
/// `AWS_ENDPOINT_URL`), with bounded timeouts and the SDK's standard retries.
pub async fn secrets_client() -> SecretsClient {
    let config = ssm_sdk_http::sdk_config_loader()
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(12))
                .build(),
        )
        .load()
        .await;
    SecretsClient::new(&config)
}

/// The Secrets Manager client of a Lambda function, from the environment Lambda sets (region,
/// the execution role's credentials, and `AWS_ENDPOINT_URL_SECRETS_MANAGER` or `AWS_ENDPOINT_URL`
/// where an emulator stands in), with the same timeouts and standard retries as
/// [`secrets_client`].
///
/// It does not go through `aws_config`'s provider chain: in Lambda the environment is the
/// first link of that chain and always present, and skipping the chain (profile files, SSO,
/// web identity, IMDS) keeps its code out of the Lambda binaries (fat LTO drops what is never
/// called) and its work out of the cold start. Operator tools keep [`secrets_client`].
pub fn lambda_secrets_client() -> Result<SecretsClient, String> {
    lambda_secrets_client_from(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

/// [`lambda_secrets_client`] with the environment given as a lookup (tests).
pub fn lambda_secrets_client_from(
    var: impl Fn(&str) -> Option<String>,
) -> Result<SecretsClient, String> {
    use aws_sdk_secretsmanager::config::retry::RetryConfig;
    use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};

    let region = var("AWS_REGION")
        .or_else(|| var("AWS_DEFAULT_REGION"))
        .ok_or("no AWS region is configured (AWS_REGION, which Lambda sets)")?;
    let (Some(key), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) else {
        return Err(
            "no credentials in the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, which Lambda sets)"
                .into(),
        );
    };
    let credentials = Credentials::new(
        key,
        secret,
        var("AWS_SESSION_TOKEN"),
        None,
        "lambda-environment",
    );
    let mut builder = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(ssm_sdk_http::http_client())
        .region(Region::new(region))
        .credentials_provider(credentials)
        .retry_config(RetryConfig::standard())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(12))
                .build(),
        );
    let ignore_endpoints =
        var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !ignore_endpoints
        && let Some(url) =
            var("AWS_ENDPOINT_URL_SECRETS_MANAGER").or_else(|| var("AWS_ENDPOINT_URL"))
    {
        builder = builder.endpoint_url(url);
    }
    Ok(SecretsClient::from_conf(builder.build()))
}

/// Cache policy.
#[derive(Debug, Clone, Copy)]
pub struct CachePolicy {
    /// How long a loaded keyring is used before it is reloaded (default 300 s).
    pub ttl: Duration,
    /// The least time between two loads triggered by unknown newer versions (default 5 s):
    /// garbage `ssm:v999999:` ciphertexts must not turn into a Secrets Manager request flood.
    pub min_refresh_interval: Duration,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            min_refresh_interval: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    ring: Option<Arc<Keyring>>,
    loaded_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

/// The keyring of one execution environment.
#[derive(Debug)]
pub struct KeyringCache {
    source: KeySource,
    policy: CachePolicy,
    state: RwLock<State>,
    loading: Mutex<()>,
    loads: AtomicUsize,
}

impl KeyringCache {
    pub fn new(source: KeySource, policy: CachePolicy) -> Self {
        Self {
            source,
            policy,
            state: RwLock::new(State::default()),
            loading: Mutex::new(()),
            loads: AtomicUsize::new(0),
        }
    }

    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// How many loads were attempted (for tests and metrics).
    pub fn loads(&self) -> usize {
        self.loads.load(Ordering::Relaxed)
    }

    /// The keyring, loading it if there is none or the TTL has passed.
    pub async fn get(&self) -> Result<Arc<Keyring>, LoadError> {
        if let Some(ring) = self.fresh().await {
            return Ok(ring);
        }
        self.load(Reason::Expired).await
    }

    /// The keyring, made to know `newest` if it can be: when a ciphertext names a version newer
    /// than the cached keyring's newest, reload at once unless a load happened within the
    /// rate-limit interval.
    pub async fn get_knowing(&self, newest: Option<KeyVersion>) -> Result<Arc<Keyring>, LoadError> {
        let ring = self.get().await?;
        let Some(named) = newest else {
            return Ok(ring);
        };
        if ring.latest().is_some_and(|latest| named <= latest) {
            return Ok(ring);
        }
        self.load(Reason::NewerVersion(named)).await
    }

    async fn fresh(&self) -> Option<Arc<Keyring>> {
        let state = self.state.read().await;
        let loaded_at = state.loaded_at?;
        (loaded_at.elapsed() < self.policy.ttl)
            .then(|| state.ring.clone())
            .flatten()
    }

    async fn load(&self, reason: Reason) -> Result<Arc<Keyring>, LoadError> {
        // One load at a time; whoever waited re-checks what the previous load brought.
        let _guard = self.loading.lock().await;
        {
            let state = self.state.read().await;
            if let Some(ring) = &state.ring {
                let satisfied = match reason {
                    Reason::Expired => state
                        .loaded_at
                        .is_some_and(|at| at.elapsed() < self.policy.ttl),
                    Reason::NewerVersion(v) => {
                        ring.latest().is_some_and(|latest| v <= latest)
                            || state
                                .last_attempt
                                .is_some_and(|at| at.elapsed() < self.policy.min_refresh_interval)
                    }
                };
                if satisfied {
                    return Ok(ring.clone());
                }
            }
        }
        self.loads.fetch_add(1, Ordering::Relaxed);
        let result = self.source.load().await;
        let mut state = self.state.write().await;
        state.last_attempt = Some(Instant::now());
        match result {
            Ok(ring) => {
                let ring = Arc::new(ring);
                tracing::info!(
                    source = %self.source.describe(),
                    reason = reason.as_str(),
                    primary = ring.primary().map(KeyVersion::get),
                    latest = ring.latest().map(KeyVersion::get),
                    min_decryption_version = ring.min_decryption_version().get(),
                    "keyring loaded"
                );
                state.ring = Some(ring.clone());
                state.loaded_at = Some(Instant::now());
                Ok(ring)
            }
            Err(error) => match state.ring.clone() {
                Some(stale) => {
                    tracing::warn!(source = %self.source.describe(), %error, "keyring reload failed; serving the last good copy");
                    // Retry after the rate-limit interval, not on every request.
                    let retry_in = self.policy.min_refresh_interval.min(self.policy.ttl);
                    state.loaded_at = Some(Instant::now() - self.policy.ttl + retry_in);
                    Ok(stale)
                }
                None => {
                    tracing::error!(source = %self.source.describe(), %error, "keyring load failed");
                    Err(error)
                }
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Reason {
    Expired,
    NewerVersion(KeyVersion),
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Expired => "ttl",
            Reason::NewerVersion(_) => "newer_version",
        }
    }
}

/// Writes a keyring file readable only by its owner, atomically (temp file + rename).
pub async fn write_keyring_file(path: &Path, keyring: &Keyring) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await?;
    }
    let tmp = path.with_extension("tmp");
    let json = keyring.to_json();
    {
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options.open(&tmp).await?;
        tokio::io::AsyncWriteExt::write_all(&mut file, json.as_bytes()).await?;
        file.sync_all().await?;
    }
    tokio::fs::rename(&tmp, path).await
}

/// Creates a development keyring with one fresh key at `path` unless one exists there.
/// Returns whether it created one.
pub async fn ensure_dev_keyring(path: &Path) -> Result<bool, LoadError> {
    if tokio::fs::try_exists(path).await.unwrap_or(false) {
        return Ok(false);
    }
    let io = |source| LoadError::File {
        path: path.to_owned(),
        source,
    };
    let ring = Keyring::generate(chrono::Utc::now())
        .map_err(|e| io(std::io::Error::other(e.to_string())))?;
    write_keyring_file(path, &ring).await.map_err(io)?;
    Ok(true)
}

//! Typed configuration, from flags or the environment, loaded once at start-up.

use std::path::PathBuf;
use std::time::Duration;

use ssm_core::api::Limits;
use ssm_core::keyname::{KeyName, parse_assignments};
use ssm_keystore::{CachePolicy, KeySource};

/// Where the keyring comes from and the request limits.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceArgs {
    /// Keyring JSON file (takes precedence over the secret).
    #[arg(long, env = "SSM_KEYRING_FILE")]
    pub keyring_file: Option<PathBuf>,
    /// Secrets Manager secret holding the `default` key's keyring (its AWSCURRENT version is
    /// used).
    #[arg(long, env = "SSM_KEY_SECRET_ID")]
    pub key_secret_id: Option<String>,
    /// The other keys' keyring secrets: comma-separated `name=secretId`. Each keyring is loaded
    /// on its key's first request and cached like the default key's.
    #[arg(long, env = "SSM_KEYRINGS", default_value = "")]
    pub keyrings: String,
    /// Another key's keyring file, `name=FILE` (repeatable; comma-separated in the variable).
    #[arg(long = "key", env = "SSM_KEYRING_FILES", value_delimiter = ',')]
    pub key_files: Vec<String>,
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

    /// Where each key other than `default` is (`--key` files, then `SSM_KEYRINGS` secrets),
    /// checked before any client is built: valid names, none twice, none `default`.
    pub fn named_locations(&self) -> Result<Vec<(KeyName, Location)>, String> {
        let files = self.key_files.join(",");
        let files = parse_assignments(&files).map_err(|e| format!("--key: {e}"))?;
        let secrets =
            parse_assignments(&self.keyrings).map_err(|e| format!("SSM_KEYRINGS: {e}"))?;
        let mut out: Vec<(KeyName, Location)> = Vec::new();
        let all = files
            .into_iter()
            .map(|(name, path)| (name, Location::File(PathBuf::from(path))))
            .chain(
                secrets
                    .into_iter()
                    .map(|(name, id)| (name, Location::Secret(id.to_owned()))),
            );
        for (name, location) in all {
            if name.is_default() {
                return Err(
                    "the `default` key's keyring is SSM_KEY_SECRET_ID or SSM_KEYRING_FILE, not a named key"
                        .to_owned(),
                );
            }
            if out.iter().any(|(seen, _)| *seen == name) {
                return Err(format!("key `{name}` is configured twice"));
            }
            out.push((name, location));
        }
        Ok(out)
    }

    /// [`ServiceArgs::named_locations`] as sources for the Lambda function (one Secrets Manager
    /// client, built only if a key needs it).
    pub fn lambda_named_sources(&self) -> Result<Vec<(KeyName, KeySource)>, String> {
        let locations = self.named_locations()?;
        let mut client = None;
        let mut out = Vec::with_capacity(locations.len());
        for (name, location) in locations {
            let source = match location {
                Location::File(path) => KeySource::File(path),
                Location::Secret(secret_id) => {
                    let client = match &client {
                        // Spelled out: the client type comes from the `None` arm below.
                        Some(shared) => Clone::clone(shared),
                        None => client
                            .insert(ssm_keystore::lambda_secrets_client()?)
                            .clone(),
                    };
                    KeySource::SecretsManager { client, secret_id }
                }
            };
            out.push((name, source));
        }
        Ok(out)
    }

    /// [`ServiceArgs::named_locations`] as sources, with the SDK's default configuration.
    pub async fn named_sources(&self) -> Result<Vec<(KeyName, KeySource)>, String> {
        let locations = self.named_locations()?;
        let mut out = Vec::with_capacity(locations.len());
        for (name, location) in locations {
            let source = match location {
                Location::File(path) => KeySource::File(path),
                Location::Secret(secret_id) => KeySource::SecretsManager {
                    client: ssm_keystore::secrets_client().await,
                    secret_id,
                },
            };
            out.push((name, source));
        }
        Ok(out)
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

/// Where a named key's keyring is, before any client is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    Secret(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Args {
        #[command(flatten)]
        service: ServiceArgs,
    }

    fn locations(args: &[&str]) -> Result<Vec<(String, Location)>, String> {
        let args = Args::try_parse_from(std::iter::once("test").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        Ok(args
            .service
            .named_locations()?
            .into_iter()
            .map(|(name, location)| (name.to_string(), location))
            .collect())
    }

    #[test]
    fn named_keys_from_flags() {
        assert_eq!(locations(&[]), Ok(vec![]));
        assert_eq!(
            locations(&[
                "--keyrings",
                "payments=arn:aws:secretsmanager:us-east-1:1:secret:p,orders=o",
                "--key",
                "local=/tmp/k.json",
            ]),
            Ok(vec![
                ("local".into(), Location::File("/tmp/k.json".into())),
                (
                    "payments".into(),
                    Location::Secret("arn:aws:secretsmanager:us-east-1:1:secret:p".into())
                ),
                ("orders".into(), Location::Secret("o".into())),
            ])
        );
        for bad in [
            &["--keyrings", "default=x"][..],
            &["--keyrings", "a=x", "--key", "a=f"],
            &["--keyrings", "Bad=x"],
            &["--key", "nofile"],
        ] {
            assert!(locations(bad).is_err(), "{bad:?}");
        }
    }
}

//! `ssm-keyring`: the operator's keyring commands, on a file or on the secret.
//!
//! Everything that can make data undecryptable is explicit: raising `min_decryption_version`
//! is reversible and says what it retires; `trim` destroys key versions and runs only when the
//! operator repeats the exact version below which keys are destroyed.

use std::path::PathBuf;

use anyhow::{Context, bail};
use aws_sdk_secretsmanager::Client;
use chrono::Utc;
use ssm_core::envelope::KeyVersion;
use ssm_core::keyring::{Keyring, KeyringInfo};
use ssm_keystore::{AWSCURRENT, read_secret_string, write_keyring_file};

/// Where the keyring is.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// A keyring JSON file.
    #[arg(long, env = "SSM_KEYRING_FILE")]
    pub file: Option<PathBuf>,
    /// A Secrets Manager secret (id or ARN); reads and writes its AWSCURRENT version.
    #[arg(long, env = "SSM_KEY_SECRET_ID")]
    pub secret_id: Option<String>,
}

/// The commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Create a new keyring file with one fresh random key (version 1).
    New {
        #[arg(long)]
        file: PathBuf,
        /// Replace an existing file (its keys are lost).
        #[arg(long)]
        force: bool,
    },
    /// Show versions, primary and min_decryption_version (never key material).
    Show {
        #[command(flatten)]
        target: Target,
    },
    /// Add a fresh key version and make it primary.
    Rotate {
        #[command(flatten)]
        target: Target,
    },
    /// Set min_decryption_version (never above the primary). Reversible until trimmed.
    SetMinDecryptionVersion {
        version: u32,
        #[command(flatten)]
        target: Target,
    },
    /// Destroy every key version below min_decryption_version. Irreversible.
    Trim {
        /// Must equal the current min_decryption_version: confirms what is destroyed.
        #[arg(long, value_name = "VERSION")]
        confirm_destroy_below: Option<u32>,
        #[command(flatten)]
        target: Target,
    },
}

/// Runs a command; returns the text to print.
pub async fn run(command: Command, client: impl AsyncFnOnce() -> Client) -> anyhow::Result<String> {
    match command {
        Command::New { file, force } => {
            if !force && tokio::fs::try_exists(&file).await.unwrap_or(false) {
                bail!(
                    "{} exists; pass --force to replace it (its keys would be lost)",
                    file.display()
                );
            }
            let ring = Keyring::generate(Utc::now())?;
            write_keyring_file(&file, &ring)
                .await
                .with_context(|| format!("writing {}", file.display()))?;
            Ok(format!("created {} with key version 1\n", file.display()))
        }
        Command::Show { target } => {
            let store = Store::open(target, client).await?;
            let ring = store.load().await?;
            Ok(render(&ring.info()))
        }
        Command::Rotate { target } => {
            let store = Store::open(target, client).await?;
            let mut ring = store.load().await?;
            let version = ring.rotate(Utc::now())?;
            store.save(&ring).await?;
            Ok(format!(
                "rotated: version {version} is now primary\n{}",
                render(&ring.info())
            ))
        }
        Command::SetMinDecryptionVersion { version, target } => {
            let min = KeyVersion::new(version).context("versions start at 1")?;
            let store = Store::open(target, client).await?;
            let mut ring = store.load().await?;
            let before = ring.min_decryption_version();
            ring.set_min_decryption_version(min)?;
            store.save(&ring).await?;
            let retired: Vec<String> = ring
                .versions()
                .filter(|v| *v < min && *v >= before)
                .map(|v| v.to_string())
                .collect();
            let note = if retired.is_empty() {
                String::new()
            } else {
                format!(
                    "ciphertexts under version(s) {} no longer decrypt (reversible until `trim`)\n",
                    retired.join(", ")
                )
            };
            Ok(format!("min_decryption_version: {before} -> {min}\n{note}"))
        }
        Command::Trim {
            confirm_destroy_below,
            target,
        } => {
            let store = Store::open(target, client).await?;
            let mut ring = store.load().await?;
            let min = ring.min_decryption_version();
            let doomed = ring.trimmable();
            if doomed.is_empty() {
                return Ok(format!(
                    "nothing to trim: no version is below min_decryption_version {min}\n"
                ));
            }
            let list = doomed
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            if confirm_destroy_below != Some(min.get()) {
                bail!(
                    "trim would destroy key version(s) {list}: every ciphertext under them becomes undecryptable forever. \
                     Re-run with --confirm-destroy-below {min} to do it."
                );
            }
            let removed = ring.trim();
            store.save(&ring).await?;
            Ok(format!(
                "destroyed key version(s) {}\n",
                removed
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }
}

fn render(info: &KeyringInfo) -> String {
    let mut out = String::new();
    let primary = info
        .primary_version
        .map_or("none (uninitialised)".to_owned(), |v| v.to_string());
    out.push_str(&format!(
        "primary_version: {primary}\nmin_decryption_version: {}\n",
        info.min_decryption_version
    ));
    out.push_str(&format!(
        "legacy key: {}\n",
        if info.legacy_key { "present" } else { "absent" }
    ));
    out.push_str("version  created_at                 decrypts  primary\n");
    for v in &info.versions {
        out.push_str(&format!(
            "{:<8} {:<26} {:<9} {}\n",
            v.version,
            v.created_at.to_rfc3339(),
            if v.decrypts { "yes" } else { "no" },
            if v.primary { "*" } else { "" }
        ));
    }
    out
}

enum Store {
    File(PathBuf),
    Secret { client: Client, secret_id: String },
}

impl Store {
    async fn open(target: Target, client: impl AsyncFnOnce() -> Client) -> anyhow::Result<Self> {
        match (target.file, target.secret_id) {
            (Some(file), _) => Ok(Store::File(file)),
            (None, Some(secret_id)) => Ok(Store::Secret {
                client: client().await,
                secret_id,
            }),
            (None, None) => bail!("give --file or --secret-id"),
        }
    }

    async fn load(&self) -> anyhow::Result<Keyring> {
        let text = match self {
            Store::File(path) => tokio::fs::read_to_string(path)
                .await
                .with_context(|| format!("reading {}", path.display()))?,
            Store::Secret { client, secret_id } => {
                read_secret_string(client, secret_id, None, Some(AWSCURRENT)).await?
            }
        };
        Ok(Keyring::from_json(&text)?)
    }

    async fn save(&self, ring: &Keyring) -> anyhow::Result<()> {
        match self {
            Store::File(path) => write_keyring_file(path, ring)
                .await
                .with_context(|| format!("writing {}", path.display())),
            Store::Secret { client, secret_id } => {
                // A new version staged AWSCURRENT (Secrets Manager moves AWSPREVIOUS).
                client
                    .put_secret_value()
                    .secret_id(secret_id)
                    .client_request_token(uuid::Uuid::new_v4().to_string())
                    .secret_string(ring.to_json().as_str())
                    .send()
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "PutSecretValue on {secret_id}: {}",
                            ssm_keystore::aws_error_message(&e)
                        )
                    })?;
                Ok(())
            }
        }
    }
}

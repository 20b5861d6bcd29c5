//! `ssm-keyring`: the operator's keyring commands, on a file or on the secret.
//!
//! **The operator's path** (README, "Keyring operations"). `rotate` on a secret asks Secrets
//! Manager to rotate (`RotateSecret`) and waits for the rotation function to promote the new
//! version: the function checks every invariant, its writes are expected, and the integrity
//! function reports nothing. `set-min-decryption-version`, `trim` and `rotate --put` write the
//! secret themselves (`PutSecretValue`): run them as the stack's keyring operator role
//! (`-c keyringOperatorRoleName=…`), the only identity besides the rotation function that the
//! keyring's resource policy lets write and whose writes are expected; from any other identity
//! the write is refused or reported as drift.
//!
//! Everything that can make data undecryptable is explicit: raising `min_decryption_version`
//! is reversible and says what it retires; `trim` destroys key versions and runs only when the
//! operator repeats the exact version below which keys are destroyed, then takes every staging
//! label off older secret versions that still hold a destroyed key and says where copies of it
//! may remain.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_secretsmanager::Client;
use chrono::{SecondsFormat, Utc};
use ssm_core::envelope::KeyVersion;
use ssm_core::keyring::{Keyring, KeyringInfo};
use ssm_keystore::{AWSCURRENT, aws_error_message, read_secret_string, write_keyring_file};

/// Where the keyring is: `--file` or `--secret-id`, else `SSM_KEYRING_FILE` or
/// `SSM_KEY_SECRET_ID`. A flag always wins over the environment, so an exported variable never
/// conflicts with the other flag.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TargetArgs {
    /// A keyring JSON file [env: SSM_KEYRING_FILE].
    #[arg(long, conflicts_with = "secret_id")]
    pub file: Option<PathBuf>,
    /// A Secrets Manager secret (id or ARN); reads and writes its AWSCURRENT version
    /// [env: SSM_KEY_SECRET_ID].
    #[arg(long)]
    pub secret_id: Option<String>,
    #[arg(long = "env-keyring-file", env = "SSM_KEYRING_FILE", hide = true)]
    pub env_file: Option<PathBuf>,
    #[arg(long = "env-key-secret-id", env = "SSM_KEY_SECRET_ID", hide = true)]
    pub env_secret_id: Option<String>,
}

impl TargetArgs {
    /// A keyring file, as `--file` gives it.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            file: Some(path.into()),
            ..Self::default()
        }
    }

    /// A secret, as `--secret-id` gives it.
    pub fn secret(secret_id: impl Into<String>) -> Self {
        Self {
            secret_id: Some(secret_id.into()),
            ..Self::default()
        }
    }

    /// Flags first, then the environment; both variables and no flag is ambiguous.
    pub fn resolve(self) -> anyhow::Result<Target> {
        match (self.file, self.secret_id, self.env_file, self.env_secret_id) {
            (Some(file), _, _, _) => Ok(Target::File(file)),
            (None, Some(secret_id), _, _) => Ok(Target::Secret(secret_id)),
            (None, None, Some(_), Some(_)) => bail!(
                "both SSM_KEYRING_FILE and SSM_KEY_SECRET_ID are set; pass --file or --secret-id to choose"
            ),
            (None, None, Some(file), None) => Ok(Target::File(file)),
            (None, None, None, Some(secret_id)) => Ok(Target::Secret(secret_id)),
            (None, None, None, None) => {
                bail!("give --file or --secret-id (or set SSM_KEYRING_FILE or SSM_KEY_SECRET_ID)")
            }
        }
    }
}

/// A resolved keyring location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    File(PathBuf),
    Secret(String),
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
        target: TargetArgs,
    },
    /// Add a fresh key version and make it primary: on a secret, through the rotation function
    /// (RotateSecret), waiting for it to finish.
    Rotate {
        #[command(flatten)]
        target: TargetArgs,
        /// Write the new version directly (PutSecretValue) instead; needs the keyring operator role.
        #[arg(long)]
        put: bool,
        /// How long to wait for the rotation function, in seconds.
        #[arg(long, default_value_t = 120)]
        wait_secs: u64,
    },
    /// Set min_decryption_version (never above the primary). Reversible until trimmed.
    SetMinDecryptionVersion {
        version: u32,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Destroy every key version below min_decryption_version. Irreversible.
    Trim {
        /// Must equal the current min_decryption_version: confirms what is destroyed.
        #[arg(long, value_name = "VERSION")]
        confirm_destroy_below: Option<u32>,
        #[command(flatten)]
        target: TargetArgs,
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
            let loaded = store.load().await?;
            Ok(render(&loaded.ring.info()))
        }
        Command::Rotate {
            target,
            put,
            wait_secs,
        } => {
            let store = Store::open(target, client).await?;
            if let (Store::Secret { client, secret_id }, false) = (&store, put) {
                let version =
                    rotate_secret(client, secret_id, Duration::from_secs(wait_secs)).await?;
                let loaded = store.load().await?;
                return Ok(format!(
                    "rotated by the rotation function (secret version {version}): version {} is now primary\n{}",
                    loaded
                        .ring
                        .primary()
                        .map_or("none".to_owned(), |v| v.to_string()),
                    render(&loaded.ring.info())
                ));
            }
            let mut loaded = store.load().await?;
            let version = loaded.ring.rotate(Utc::now())?;
            store.save(&loaded).await?;
            Ok(format!(
                "rotated: version {version} is now primary\n{}",
                render(&loaded.ring.info())
            ))
        }
        Command::SetMinDecryptionVersion { version, target } => {
            let min = KeyVersion::new(version).context("versions start at 1")?;
            let store = Store::open(target, client).await?;
            let mut loaded = store.load().await?;
            let before = loaded.ring.min_decryption_version();
            loaded.ring.set_min_decryption_version(min)?;
            if min == before {
                // Writing would add a secret version and shift AWSPREVIOUS for nothing.
                return Ok(format!(
                    "min_decryption_version is already {min}; nothing changed\n"
                ));
            }
            store.save(&loaded).await?;
            let retired: Vec<String> = loaded
                .ring
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
            let mut loaded = store.load().await?;
            let min = loaded.ring.min_decryption_version();
            let doomed = loaded.ring.trimmable();
            if doomed.is_empty() {
                return Ok(format!(
                    "nothing to trim: no version is below min_decryption_version {min}\n"
                ));
            }
            if confirm_destroy_below != Some(min.get()) {
                bail!(
                    "trim would destroy key version(s) {}: every ciphertext under them becomes undecryptable forever. \
                     Re-run with --confirm-destroy-below {min} to do it.",
                    join(&doomed)
                );
            }
            let removed = loaded.ring.trim();
            let written = store.save(&loaded).await?;
            let mut out = format!(
                "removed key version(s) {} from the keyring\n",
                join(&removed)
            );
            match (&store, written) {
                (Store::Secret { client, secret_id }, Some(current)) => {
                    let cleanup = unlabel_trimmed(client, secret_id, &current, &removed).await?;
                    out.push_str(&cleanup.report(secret_id));
                }
                _ => out.push_str(
                    "the file was replaced; copies of the old file (backups, other checkouts) \
                     still hold those keys: delete them to destroy the keys\n",
                ),
            }
            Ok(out)
        }
    }
}

/// `RotateSecret` with nothing but the secret (the documented operator path: no rotation setting
/// changes), then waits until Secrets Manager's rotation function has made the new version
/// AWSCURRENT. Returns its version id.
async fn rotate_secret(client: &Client, secret_id: &str, wait: Duration) -> anyhow::Result<String> {
    const POLL: Duration = Duration::from_millis(500);
    let failed =
        |operation: &str, message: String| anyhow::anyhow!("{operation} on {secret_id}: {message}");
    let started = client.rotate_secret().secret_id(secret_id).send().await;
    let version = started
        .map_err(|e| failed("RotateSecret", aws_error_message(&e)))?
        .version_id
        .ok_or_else(|| failed("RotateSecret", "no version id returned".into()))?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let described = client.describe_secret().secret_id(secret_id).send().await;
        let labels = described
            .map_err(|e| failed("DescribeSecret", aws_error_message(&e)))?
            .version_ids_to_stages
            .and_then(|mut stages| stages.remove(&version))
            .unwrap_or_default();
        if labels.iter().any(|l| l == AWSCURRENT) {
            return Ok(version);
        }
        if !labels.iter().any(|l| l == "AWSPENDING") {
            bail!(
                "the rotation of {secret_id} (version {version}) failed: the rotation function's log says why; \
                 AWSCURRENT is unchanged"
            );
        }
        if tokio::time::Instant::now() + POLL > deadline {
            bail!(
                "the rotation of {secret_id} (version {version}) has not finished after {} s; it may still \
                 complete (ssm-keyring show), or the rotation function's log says why not",
                wait.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

fn join(versions: &[KeyVersion]) -> String {
    versions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The summary as aligned `name: value` lines, then a table whose columns are as wide as their
/// widest cell.
fn render(info: &KeyringInfo) -> String {
    let primary = info
        .primary_version
        .map_or("none (uninitialised)".to_owned(), |v| v.to_string());
    let summary = [
        ("primary_version", primary),
        (
            "min_decryption_version",
            info.min_decryption_version.to_string(),
        ),
        (
            "legacy key",
            (if info.legacy_key { "present" } else { "absent" }).to_owned(),
        ),
    ];
    let width = summary.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    let mut out = String::new();
    for (name, value) in &summary {
        let _ = writeln!(out, "{:<width$} {value}", format!("{name}:"));
    }
    let mut rows = vec![[
        "version".to_owned(),
        "created_at".to_owned(),
        "decrypts".to_owned(),
        "primary".to_owned(),
    ]];
    rows.extend(info.versions.iter().map(|v| {
        [
            v.version.to_string(),
            v.created_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            (if v.decrypts { "yes" } else { "no" }).to_owned(),
            (if v.primary { "*" } else { "" }).to_owned(),
        ]
    }));
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let line = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One version of the secret, for the post-trim clean-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersion {
    pub id: String,
    pub labels: Vec<String>,
    /// The key versions its keyring holds, or `None` if it holds no readable keyring.
    pub key_versions: Option<BTreeSet<KeyVersion>>,
}

/// What to do after a trim wrote `current`: which labels to take off, and what stays behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleanup {
    /// (version id, label) pairs to remove: every label on a version holding a destroyed key.
    pub unlabel: Vec<(String, String)>,
    /// Versions, unlabelled once done, that still hold a destroyed key.
    pub still_holding: Vec<String>,
    /// Versions whose value could not be read as a keyring.
    pub unchecked: Vec<String>,
}

/// Decides the clean-up: pure, so the plan is tested without a secret.
pub fn plan_cleanup(current: &str, versions: &[SecretVersion], removed: &[KeyVersion]) -> Cleanup {
    let mut plan = Cleanup::default();
    for version in versions.iter().filter(|v| v.id != current) {
        match &version.key_versions {
            Some(held) if removed.iter().any(|r| held.contains(r)) => {
                for label in &version.labels {
                    plan.unlabel.push((version.id.clone(), label.clone()));
                }
                plan.still_holding.push(version.id.clone());
            }
            Some(_) => {}
            None => plan.unchecked.push(version.id.clone()),
        }
    }
    plan
}

impl Cleanup {
    /// Where the destroyed keys may still live, and how to destroy them for real.
    fn report(&self, secret_id: &str) -> String {
        let mut out = String::new();
        for (id, label) in &self.unlabel {
            let _ = writeln!(out, "took label {label} off secret version {id}");
        }
        if !self.still_holding.is_empty() {
            let _ = writeln!(
                out,
                "the destroyed keys are still stored in unlabelled version(s) {} of secret {secret_id}: \
                 anyone allowed secretsmanager:GetSecretValue can read them by version id until Secrets \
                 Manager deletes deprecated versions (see docs/envelope.md, \"Destroying key material\")",
                self.still_holding.join(", ")
            );
        }
        if !self.unchecked.is_empty() {
            let _ = writeln!(
                out,
                "secret version(s) {} hold no readable keyring and were not checked",
                self.unchecked.join(", ")
            );
        }
        out.push_str(
            "copies outside the secret are not touched: keyring files, backups, replica regions, \
             and running Crypto API instances until their keyring cache expires\n",
        );
        out
    }
}

/// Takes every staging label off the secret's versions that still hold a removed key, so that
/// no labelled version (AWSPREVIOUS, AWSPENDING, custom labels) does.
async fn unlabel_trimmed(
    client: &Client,
    secret_id: &str,
    current: &str,
    removed: &[KeyVersion],
) -> anyhow::Result<Cleanup> {
    let mut versions = Vec::new();
    let mut next_token = None;
    loop {
        let page = client
            .list_secret_version_ids()
            .secret_id(secret_id)
            .include_deprecated(true)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "ListSecretVersionIds on {secret_id}: {}",
                    aws_error_message(&e)
                )
            })?;
        for entry in page.versions.unwrap_or_default() {
            let Some(id) = entry.version_id else { continue };
            let key_versions = read_secret_string(client, secret_id, Some(&id), None)
                .await
                .ok()
                .and_then(|text| Keyring::from_json(&text).ok())
                .map(|ring| ring.versions().collect());
            versions.push(SecretVersion {
                id,
                labels: entry.version_stages.unwrap_or_default(),
                key_versions,
            });
        }
        next_token = page.next_token.filter(|t| !t.is_empty());
        if next_token.is_none() {
            break;
        }
    }
    let plan = plan_cleanup(current, &versions, removed);
    for (id, label) in &plan.unlabel {
        client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(label)
            .remove_from_version_id(id)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "UpdateSecretVersionStage ({label} off {id}) on {secret_id}: {}",
                    aws_error_message(&e)
                )
            })?;
    }
    Ok(plan)
}

enum Store {
    File(PathBuf),
    Secret { client: Client, secret_id: String },
}

/// The label a new secret version carries between its write and its promotion to AWSCURRENT.
const WRITE_LABEL: &str = "ssm-keyring-write";

/// What was loaded, and from which secret version (`None` for a file).
struct Loaded {
    ring: Keyring,
    version_id: Option<String>,
}

impl Store {
    async fn open(
        target: TargetArgs,
        client: impl AsyncFnOnce() -> Client,
    ) -> anyhow::Result<Self> {
        match target.resolve()? {
            Target::File(file) => Ok(Store::File(file)),
            Target::Secret(secret_id) => {
                let client = client().await;
                if client.config().region().is_none() {
                    bail!(
                        "no AWS region is configured: set AWS_REGION (or a region in your AWS profile)"
                    );
                }
                Ok(Store::Secret { client, secret_id })
            }
        }
    }

    async fn load(&self) -> anyhow::Result<Loaded> {
        match self {
            Store::File(path) => {
                let text = tokio::fs::read_to_string(path)
                    .await
                    .with_context(|| format!("reading {}", path.display()))?;
                Ok(Loaded {
                    ring: Keyring::from_json(&text)?,
                    version_id: None,
                })
            }
            Store::Secret { client, secret_id } => {
                let out = client
                    .get_secret_value()
                    .secret_id(secret_id)
                    .version_stage(AWSCURRENT)
                    .send()
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!("GetSecretValue on {secret_id}: {}", aws_error_message(&e))
                    })?;
                let text = out
                    .secret_string
                    .with_context(|| format!("secret {secret_id} has no SecretString"))?;
                Ok(Loaded {
                    ring: Keyring::from_json(&text)?,
                    version_id: out.version_id,
                })
            }
        }
    }

    /// Writes the keyring; for a secret, returns the new AWSCURRENT version's id. The new
    /// version becomes AWSCURRENT only if AWSCURRENT is still the version loaded: a rotation
    /// that finished meanwhile is never overwritten (Secrets Manager moves AWSPREVIOUS).
    async fn save(&self, loaded: &Loaded) -> anyhow::Result<Option<String>> {
        let (client, secret_id) = match self {
            Store::File(path) => {
                write_keyring_file(path, &loaded.ring)
                    .await
                    .with_context(|| format!("writing {}", path.display()))?;
                return Ok(None);
            }
            Store::Secret { client, secret_id } => (client, secret_id),
        };
        let failed = |operation: &str, message: String| {
            anyhow::anyhow!("{operation} on {secret_id}: {message}")
        };
        let token = uuid::Uuid::new_v4().to_string();
        let out = client
            .put_secret_value()
            .secret_id(secret_id)
            .client_request_token(&token)
            .secret_string(loaded.ring.to_json().as_str())
            .version_stages(WRITE_LABEL)
            .send()
            .await
            .map_err(|e| failed("PutSecretValue", aws_error_message(&e)))?;
        let written = out.version_id.unwrap_or(token);
        let promoted = client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(AWSCURRENT)
            .move_to_version_id(&written)
            .set_remove_from_version_id(loaded.version_id.clone())
            .send()
            .await;
        let unlabel = client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(WRITE_LABEL)
            .remove_from_version_id(&written)
            .send()
            .await
            .map_err(|e| failed("UpdateSecretVersionStage", aws_error_message(&e)));
        if let Err(e) = promoted {
            bail!(
                "AWSCURRENT of secret {secret_id} could not be moved ({}): if a rotation or \
                 another operator changed it since it was read, nothing was changed; re-run",
                aws_error_message(&e)
            );
        }
        unlabel?;
        Ok(Some(written))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: u32) -> KeyVersion {
        KeyVersion::new(n).unwrap()
    }

    fn version(id: &str, labels: &[&str], keys: Option<&[u32]>) -> SecretVersion {
        SecretVersion {
            id: id.to_owned(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            key_versions: keys.map(|k| k.iter().map(|n| v(*n)).collect()),
        }
    }

    #[test]
    fn cleanup_unlabels_every_version_holding_a_trimmed_key() {
        let versions = [
            version("new", &["AWSCURRENT"], Some(&[3])),
            version("prev", &["AWSPREVIOUS"], Some(&[1, 2, 3])),
            version("pending", &["AWSPENDING", "mine"], Some(&[2, 3, 4])),
            version("old", &[], Some(&[1])),
            version("clean", &["kept"], Some(&[3, 4])),
            version("init", &[], Some(&[])),
            version("junk", &[], None),
        ];
        let plan = plan_cleanup("new", &versions, &[v(1), v(2)]);
        assert_eq!(
            plan.unlabel,
            [
                ("prev".to_owned(), "AWSPREVIOUS".to_owned()),
                ("pending".to_owned(), "AWSPENDING".to_owned()),
                ("pending".to_owned(), "mine".to_owned()),
            ]
        );
        assert_eq!(plan.still_holding, ["prev", "pending", "old"]);
        assert_eq!(plan.unchecked, ["junk"]);
    }

    #[test]
    fn flags_win_over_the_environment() {
        let env = |file: Option<&str>, secret: Option<&str>| TargetArgs {
            env_file: file.map(PathBuf::from),
            env_secret_id: secret.map(str::to_owned),
            ..TargetArgs::default()
        };
        let with_secret_flag = TargetArgs {
            secret_id: Some("flag".into()),
            ..env(Some("env.json"), None)
        };
        assert_eq!(
            with_secret_flag.resolve().unwrap(),
            Target::Secret("flag".into())
        );
        let with_file_flag = TargetArgs {
            file: Some("flag.json".into()),
            ..env(None, Some("env"))
        };
        assert_eq!(
            with_file_flag.resolve().unwrap(),
            Target::File("flag.json".into())
        );
        assert_eq!(
            env(Some("env.json"), None).resolve().unwrap(),
            Target::File("env.json".into())
        );
        assert_eq!(
            env(None, Some("env")).resolve().unwrap(),
            Target::Secret("env".into())
        );
        let both = env(Some("env.json"), Some("env")).resolve().unwrap_err();
        assert!(
            both.to_string().contains("pass --file or --secret-id"),
            "{both}"
        );
        assert!(TargetArgs::default().resolve().is_err());
    }
}

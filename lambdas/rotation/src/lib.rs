//! Keyring rotation with the Secrets Manager rotation protocol.
//!
//! Secrets Manager starts a rotation by staging an empty version (the `ClientRequestToken`) as
//! AWSPENDING, then invokes this Lambda four times:
//!
//! - `createSecret`: read the AWSCURRENT keyring, append a fresh 256-bit key version, make it
//!   primary, put the result as AWSPENDING under the token (nothing if already there).
//! - `setSecret`: nothing downstream holds the key; logged.
//! - `testSecret`: the AWSPENDING keyring is a successor of the AWSCURRENT one (every version
//!   kept with its material, one new primary, same policy and legacy key), its primary
//!   round-trips, and every version the AWSCURRENT keyring could decrypt still decrypts.
//! - `finishSecret`: the same checks again, against AWSCURRENT as it is *now*, then move
//!   AWSCURRENT to the token's version (only from the version just checked) and clear
//!   AWSPENDING.
//!
//! A pending version with no value yet (`finishSecret` before `createSecret`) is refused and
//! left for `createSecret`. A pending keyring that is no longer a successor of AWSCURRENT (an
//! operator rotated, retired or trimmed after `createSecret`) can never be promoted, and a
//! version's value cannot change: `createSecret` and `finishSecret` refuse it, take the
//! AWSPENDING label off it so the next rotation can start, and leave AWSCURRENT alone. The next
//! rotation (a new token) builds its pending keyring from AWSCURRENT again.
//!
//! Every step is idempotent, and every step first makes the checks AWS's rotation templates
//! make. Older versions stay in the keyring: rotation never removes a key.
//!
//! **The keyring never goes backwards.** Every step builds on AWSCURRENT only when it holds
//! keys. When it does not (the stack's initial value re-sent by a template change, a replaced
//! value), rotation reads every stored version of the secret, deprecated ones included, and if
//! any holds keys it continues the most advanced of them ([`Keyring::most_advanced`]): same
//! lineage, every old version kept, so every old ciphertext decrypts again once AWSCURRENT
//! moves. A new lineage starts only when no version of the secret ever held a key.

pub mod keyring_cli;

use std::collections::HashMap;

use aws_sdk_secretsmanager::Client;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use ssm_core::envelope::KeyVersion;
use ssm_core::keyring::{Keyring, KeyringError, OpenError};
use ssm_keystore::aws_error_message;

pub const AWSCURRENT: &str = "AWSCURRENT";
pub const AWSPENDING: &str = "AWSPENDING";

/// The event Secrets Manager sends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RotationEvent {
    #[serde(rename = "SecretId")]
    pub secret_id: String,
    #[serde(rename = "ClientRequestToken")]
    pub token: String,
    #[serde(rename = "Step")]
    pub step: Step,
}

/// The four steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Step {
    #[serde(rename = "createSecret")]
    Create,
    #[serde(rename = "setSecret")]
    Set,
    #[serde(rename = "testSecret")]
    Test,
    #[serde(rename = "finishSecret")]
    Finish,
}

/// Why a step failed. The message is what Secrets Manager records for the failed rotation;
/// [`RotationError::error_type`] is the Lambda `errorType`.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("secret {0} was not found")]
    SecretNotFound(String),
    #[error("secret {0} does not have rotation enabled")]
    RotationDisabled(String),
    #[error("secret version {token} is not a version of secret {secret_id}")]
    UnknownVersion { secret_id: String, token: String },
    #[error("secret version {token} is not staged AWSPENDING for rotation of secret {secret_id}")]
    NotPending { secret_id: String, token: String },
    #[error("secret {secret_id} ({stage}) does not hold a valid keyring: {source}")]
    Malformed {
        secret_id: String,
        stage: &'static str,
        source: KeyringError,
    },
    #[error("secret {0} has no AWSCURRENT version")]
    NoCurrent(String),
    #[error(
        "secret version {token} of {secret_id} has no value: createSecret has not run for it; \
         AWSCURRENT is unchanged"
    )]
    PendingEmpty { secret_id: String, token: String },
    #[error(
        "the pending keyring {token} of secret {secret_id} is not a valid successor of its \
         AWSCURRENT keyring: {reason}; AWSCURRENT is unchanged{}",
        if *released { "; AWSPENDING was taken off this version so the next rotation rebuilds it" } else { "" }
    )]
    InvariantViolated {
        secret_id: String,
        token: String,
        reason: String,
        /// Whether the AWSPENDING label was removed from the version.
        released: bool,
    },
    #[error("Secrets Manager {operation} on {secret_id}: {message}")]
    Aws {
        operation: &'static str,
        secret_id: String,
        message: String,
    },
    #[error(transparent)]
    Rotate(#[from] ssm_core::keyring::RotateError),
}

impl RotationError {
    /// The Lambda `errorType` Secrets Manager records: one per failure class.
    pub fn error_type(&self) -> &'static str {
        match self {
            RotationError::SecretNotFound(_) => "SecretNotFound",
            RotationError::RotationDisabled(_) => "RotationNotEnabled",
            RotationError::UnknownVersion { .. } => "VersionNotFound",
            RotationError::NotPending { .. } => "VersionNotPending",
            RotationError::Malformed { .. } => "MalformedKeyring",
            RotationError::NoCurrent(_) => "NoCurrentVersion",
            RotationError::PendingEmpty { .. } => "PendingVersionEmpty",
            RotationError::InvariantViolated { .. } => "RotationInvariantViolated",
            RotationError::Aws { .. } => "SecretsManagerError",
            RotationError::Rotate(_) => "KeyGenerationFailed",
        }
    }
}

impl From<RotationError> for lambda_runtime::Diagnostic {
    fn from(error: RotationError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// What a step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The token's version is already AWSCURRENT: this rotation is done.
    AlreadyCurrent,
    /// `createSecret` found the pending version already there.
    PendingExists,
    /// `createSecret` put a keyring whose new primary is this version.
    Created { version: u32 },
    /// `setSecret`: nothing to do.
    NothingToSet,
    /// `testSecret` passed, having probed these versions.
    Tested { versions: Vec<u32> },
    /// `finishSecret` moved AWSCURRENT to the token's version from `from` (if any).
    Finished { from: Option<String> },
}

/// The rotation handler, bound to a Secrets Manager client.
#[derive(Debug, Clone)]
pub struct Rotator {
    client: Client,
}

struct Versions {
    stages: HashMap<String, Vec<String>>,
}

impl Versions {
    fn has(&self, version: &str, stage: &str) -> bool {
        self.stages
            .get(version)
            .is_some_and(|s| s.iter().any(|x| x == stage))
    }
}

/// The keyring a rotation builds on, and the AWSCURRENT version that `finishSecret` moves the
/// label from. `ring` is AWSCURRENT's keyring, or an older version's when AWSCURRENT holds no
/// keys (`continued` names that version).
struct Current {
    ring: Keyring,
    version_id: Option<String>,
    continued: Option<String>,
}

/// What the token's pending version holds, judged against AWSCURRENT.
enum Pending {
    /// No value yet: `createSecret` has not run for this token.
    Empty,
    /// A successor of AWSCURRENT; the versions probed.
    Valid(Vec<KeyVersion>),
    /// Not a successor of AWSCURRENT, and since a version's value never changes, never will be.
    Invalid(String),
}

impl Rotator {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Runs one step, after the checks every step makes.
    #[tracing::instrument(skip(self), fields(secret_id = %event.secret_id, token = %event.token, step = ?event.step))]
    pub async fn handle(&self, event: &RotationEvent) -> Result<Outcome, RotationError> {
        self.handle_at(event, Utc::now()).await
    }

    /// [`Rotator::handle`] with the creation time for a new key version.
    pub async fn handle_at(
        &self,
        event: &RotationEvent,
        now: DateTime<Utc>,
    ) -> Result<Outcome, RotationError> {
        let RotationEvent {
            secret_id, token, ..
        } = event;
        let versions = self.versions(secret_id).await?;
        if !versions.stages.contains_key(token) {
            return Err(RotationError::UnknownVersion {
                secret_id: secret_id.clone(),
                token: token.clone(),
            });
        }
        if versions.has(token, AWSCURRENT) {
            if event.step == Step::Finish && versions.has(token, AWSPENDING) {
                self.clear_pending(secret_id, token).await?;
            }
            tracing::info!("version is already AWSCURRENT; nothing to do");
            return Ok(Outcome::AlreadyCurrent);
        }
        if !versions.has(token, AWSPENDING) {
            return Err(RotationError::NotPending {
                secret_id: secret_id.clone(),
                token: token.clone(),
            });
        }
        let outcome = match event.step {
            Step::Create => self.create(secret_id, token, now).await?,
            Step::Set => {
                tracing::info!(
                    "setSecret: the keyring lives only in this secret; nothing downstream to update"
                );
                Outcome::NothingToSet
            }
            Step::Test => self.test(secret_id, token).await?,
            Step::Finish => self.finish(secret_id, token).await?,
        };
        tracing::info!(?outcome, "rotation step done");
        Ok(outcome)
    }

    async fn versions(&self, secret_id: &str) -> Result<Versions, RotationError> {
        let described = self
            .client
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(s) if s.is_resource_not_found_exception() => {
                    RotationError::SecretNotFound(secret_id.to_owned())
                }
                _ => aws("DescribeSecret", secret_id, &e),
            })?;
        if described.rotation_enabled != Some(true) {
            return Err(RotationError::RotationDisabled(secret_id.to_owned()));
        }
        Ok(Versions {
            stages: described.version_ids_to_stages.unwrap_or_default(),
        })
    }

    async fn create(
        &self,
        secret_id: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Outcome, RotationError> {
        let Current {
            mut ring,
            continued,
            ..
        } = self.base(secret_id, token).await?;
        match self.pending(secret_id, token, &ring).await? {
            Pending::Valid(_) => {
                tracing::info!("createSecret: the pending version already exists");
                return Ok(Outcome::PendingExists);
            }
            Pending::Invalid(reason) => return Err(self.release(secret_id, token, reason).await),
            Pending::Empty => {}
        }
        let version = ring.rotate(now)?;
        self.client
            .put_secret_value()
            .secret_id(secret_id)
            .client_request_token(token)
            .secret_string(ring.to_json().as_str())
            .version_stages(AWSPENDING)
            .send()
            .await
            .map_err(|e| aws("PutSecretValue", secret_id, &e))?;
        tracing::info!(
            new_version = version.get(),
            versions = ring.versions().count(),
            continued_from = continued.as_deref(),
            "createSecret: pending keyring put"
        );
        Ok(Outcome::Created {
            version: version.get(),
        })
    }

    async fn test(&self, secret_id: &str, token: &str) -> Result<Outcome, RotationError> {
        let current = self.base(secret_id, token).await?;
        match self.pending(secret_id, token, &current.ring).await? {
            Pending::Valid(probed) => Ok(Outcome::Tested {
                versions: probed.iter().map(|v| v.get()).collect(),
            }),
            Pending::Empty => Err(RotationError::PendingEmpty {
                secret_id: secret_id.to_owned(),
                token: token.to_owned(),
            }),
            // Reported only: a retried createSecret or finishSecret releases it.
            Pending::Invalid(reason) => Err(RotationError::InvariantViolated {
                secret_id: secret_id.to_owned(),
                token: token.to_owned(),
                reason,
                released: false,
            }),
        }
    }

    /// Re-checks the pending keyring against AWSCURRENT as it is now (an operator may have
    /// changed it since `testSecret`), then moves AWSCURRENT from exactly the version checked:
    /// Secrets Manager refuses the move if AWSCURRENT has moved meanwhile.
    async fn finish(&self, secret_id: &str, token: &str) -> Result<Outcome, RotationError> {
        let current = self.base(secret_id, token).await?;
        match self.pending(secret_id, token, &current.ring).await? {
            Pending::Valid(_) => {}
            Pending::Empty => {
                return Err(RotationError::PendingEmpty {
                    secret_id: secret_id.to_owned(),
                    token: token.to_owned(),
                });
            }
            Pending::Invalid(reason) => return Err(self.release(secret_id, token, reason).await),
        }
        let from = current.version_id;
        self.client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(AWSCURRENT)
            .move_to_version_id(token)
            .set_remove_from_version_id(from.clone())
            .send()
            .await
            .map_err(|e| aws("UpdateSecretVersionStage", secret_id, &e))?;
        self.clear_pending(secret_id, token).await?;
        Ok(Outcome::Finished { from })
    }

    /// Takes AWSPENDING off a pending version that can never be promoted, so that the next
    /// RotateSecret (which Secrets Manager refuses while AWSPENDING sits on a version other than
    /// AWSCURRENT) starts afresh. Returns the error to report.
    async fn release(&self, secret_id: &str, token: &str, reason: String) -> RotationError {
        tracing::warn!(%reason, "the pending keyring is not a successor of AWSCURRENT; releasing it");
        if let Err(error) = self.clear_pending(secret_id, token).await {
            return error;
        }
        RotationError::InvariantViolated {
            secret_id: secret_id.to_owned(),
            token: token.to_owned(),
            reason,
            released: true,
        }
    }

    async fn clear_pending(&self, secret_id: &str, token: &str) -> Result<(), RotationError> {
        self.client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(AWSPENDING)
            .remove_from_version_id(token)
            .send()
            .await
            .map_err(|e| aws("UpdateSecretVersionStage", secret_id, &e))?;
        Ok(())
    }

    async fn current(&self, secret_id: &str) -> Result<Current, RotationError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .version_stage(AWSCURRENT)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(s) if s.is_resource_not_found_exception() => {
                    RotationError::NoCurrent(secret_id.to_owned())
                }
                _ => aws("GetSecretValue", secret_id, &e),
            })?;
        let text = out
            .secret_string
            .ok_or_else(|| RotationError::NoCurrent(secret_id.to_owned()))?;
        let ring = Keyring::from_json(&text).map_err(|source| RotationError::Malformed {
            secret_id: secret_id.to_owned(),
            stage: AWSCURRENT,
            source,
        })?;
        Ok(Current {
            ring,
            version_id: out.version_id,
            continued: None,
        })
    }

    /// AWSCURRENT when it holds keys; otherwise the most advanced keyed version stored (the
    /// rotation's own `token` aside), so a reset never starts a second lineage over keys.
    async fn base(&self, secret_id: &str, token: &str) -> Result<Current, RotationError> {
        let current = self.current(secret_id).await?;
        if current.ring.holds_keys() {
            return Ok(current);
        }
        let mut stored = Vec::new();
        for version_id in self.version_ids(secret_id).await? {
            if version_id == token || Some(&version_id) == current.version_id.as_ref() {
                continue;
            }
            let out = self
                .client
                .get_secret_value()
                .secret_id(secret_id)
                .version_id(&version_id)
                .send()
                .await
                .map_err(|e| aws("GetSecretValue", secret_id, &e))?;
            match out.secret_string.as_deref().map(Keyring::from_json) {
                Some(Ok(ring)) => stored.push((version_id, ring)),
                // A damaged old version is not a keyring to continue; say so and go on.
                Some(Err(error)) => {
                    tracing::warn!(%version_id, %error, "a stored version is not a keyring")
                }
                None => {}
            }
        }
        let Some((continued, ring)) = Keyring::most_advanced(stored) else {
            return Ok(current);
        };
        tracing::warn!(
            continued_from = %continued,
            "AWSCURRENT holds no keys but an older version does: continuing that keyring"
        );
        Ok(Current {
            ring,
            version_id: current.version_id,
            continued: Some(continued),
        })
    }

    /// Every version id of the secret, deprecated ones (no staging label) included.
    async fn version_ids(&self, secret_id: &str) -> Result<Vec<String>, RotationError> {
        let mut ids = Vec::new();
        let mut pages = self
            .client
            .list_secret_version_ids()
            .secret_id(secret_id)
            .include_deprecated(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws("ListSecretVersionIds", secret_id, &e))?;
            ids.extend(
                page.versions
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|v| v.version_id),
            );
        }
        Ok(ids)
    }

    /// The token's pending version, judged against the `current` keyring.
    async fn pending(
        &self,
        secret_id: &str,
        token: &str,
        current: &Keyring,
    ) -> Result<Pending, RotationError> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .version_id(token)
            .version_stage(AWSPENDING)
            .send()
            .await;
        let text = match result {
            Ok(out) => match out.secret_string {
                Some(text) => text,
                None => return Ok(Pending::Empty),
            },
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(Pending::Empty);
            }
            Err(e) => return Err(aws("GetSecretValue", secret_id, &e)),
        };
        Ok(match Keyring::from_json(&text) {
            Ok(pending) => match check_pending(current, &pending) {
                Ok(probed) => Pending::Valid(probed),
                Err(reason) => Pending::Invalid(reason),
            },
            Err(e) => Pending::Invalid(format!("it does not hold a valid keyring: {e}")),
        })
    }
}

/// The pure part of `testSecret` and `finishSecret`: the pending keyring must be a successor of
/// the current one ([`Keyring::check_successor`]), its primary must round-trip, and it must
/// decrypt a probe from every version the current keyring could decrypt. Returns the versions
/// probed.
pub fn check_pending(current: &Keyring, pending: &Keyring) -> Result<Vec<KeyVersion>, String> {
    const PROBE: &[u8] = b"ssm-rotation-probe";
    let primary = current
        .check_successor(pending)
        .map_err(|e| e.to_string())?;
    let sealed = pending
        .encrypt(PROBE, b"rotation-test")
        .map_err(|e| format!("the pending primary cannot encrypt: {e}"))?;
    match pending.decrypt(&sealed.ciphertext, b"rotation-test") {
        Ok((plain, _)) if plain.expose() == PROBE => {}
        _ => {
            return Err(format!(
                "the pending primary version {primary} does not round-trip"
            ));
        }
    }
    let mut probed = vec![primary];
    for version in current.versions() {
        if version < current.min_decryption_version() {
            continue;
        }
        let Some(Ok(probe)) = current.seal_with(version, PROBE, b"rotation-test") else {
            return Err(format!(
                "the current keyring cannot seal with version {version}"
            ));
        };
        match pending.decrypt(&probe, b"rotation-test") {
            Ok((plain, _)) if plain.expose() == PROBE => probed.push(version),
            Ok(_) | Err(OpenError::Invalid(_)) => {
                return Err(format!(
                    "version {version} no longer decrypts its ciphertexts"
                ));
            }
            Err(e) => return Err(format!("version {version} no longer decrypts: {e}")),
        }
    }
    Ok(probed)
}

fn aws<E, R>(
    operation: &'static str,
    secret_id: &str,
    error: &aws_sdk_secretsmanager::error::SdkError<E, R>,
) -> RotationError
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    RotationError::Aws {
        operation,
        secret_id: secret_id.to_owned(),
        message: aws_error_message(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-28T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn events_parse_as_secrets_manager_sends_them() {
        let event: RotationEvent = serde_json::from_str(
            r#"{"SecretId": "arn:aws:secretsmanager:us-east-1:1:secret:k", "ClientRequestToken": "t", "Step": "testSecret"}"#,
        )
        .unwrap();
        assert_eq!(event.step, Step::Test);
        assert!(
            serde_json::from_str::<RotationEvent>(
                r#"{"SecretId": "s", "ClientRequestToken": "t", "Step": "bogus"}"#
            )
            .is_err()
        );
    }

    #[test]
    fn check_pending_accepts_a_proper_rotation() {
        let current = Keyring::generate(now()).unwrap();
        let mut pending = current.clone();
        pending.rotate(now()).unwrap();
        let probed = check_pending(&current, &pending).unwrap();
        assert_eq!(
            probed.iter().map(|v| v.get()).collect::<Vec<_>>(),
            vec![2, 1]
        );
    }

    #[test]
    fn check_pending_refuses_lost_or_changed_keys() {
        let current = Keyring::generate(now()).unwrap();
        // A keyring with a fresh version 1 and 2: version 1's material changed.
        let mut replaced = Keyring::generate(now()).unwrap();
        replaced.rotate(now()).unwrap();
        let err = check_pending(&current, &replaced).unwrap_err();
        assert!(err.contains("key version 1 differs"), "{err}");
        // No new version.
        let err = check_pending(&current, &current).unwrap_err();
        assert!(err.contains("not newer"), "{err}");
        // Raised (or lowered) min_decryption_version.
        let mut raised = current.clone();
        raised.rotate(now()).unwrap();
        raised
            .set_min_decryption_version(KeyVersion::new(2).unwrap())
            .unwrap();
        let err = check_pending(&current, &raised).unwrap_err();
        assert!(err.contains("min_decryption_version differs"), "{err}");
    }

    #[test]
    fn every_failure_class_has_its_own_lambda_error_type() {
        let s = || "s".to_owned();
        let t = || "t".to_owned();
        let errors = [
            RotationError::SecretNotFound(s()),
            RotationError::RotationDisabled(s()),
            RotationError::UnknownVersion {
                secret_id: s(),
                token: t(),
            },
            RotationError::NotPending {
                secret_id: s(),
                token: t(),
            },
            RotationError::Malformed {
                secret_id: s(),
                stage: AWSCURRENT,
                source: KeyringError::NotUninitialised,
            },
            RotationError::NoCurrent(s()),
            RotationError::PendingEmpty {
                secret_id: s(),
                token: t(),
            },
            RotationError::InvariantViolated {
                secret_id: s(),
                token: t(),
                reason: "r".into(),
                released: true,
            },
            RotationError::Aws {
                operation: "GetSecretValue",
                secret_id: s(),
                message: "m".into(),
            },
            RotationError::Rotate(ssm_core::keyring::RotateError::Keyring(
                KeyringError::VersionsExhausted,
            )),
        ];
        let mut types = std::collections::BTreeSet::new();
        for error in errors {
            let message = error.to_string();
            let diagnostic = lambda_runtime::Diagnostic::from(error);
            assert_eq!(diagnostic.error_message, message);
            assert!(
                diagnostic
                    .error_type
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric()),
                "{}",
                diagnostic.error_type
            );
            assert!(types.insert(diagnostic.error_type), "error types repeat");
        }
        assert!(types.contains("RotationInvariantViolated") && types.contains("SecretNotFound"));
    }
}

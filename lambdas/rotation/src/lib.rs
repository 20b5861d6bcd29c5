//! Keyring rotation with the Secrets Manager rotation protocol.
//!
//! Secrets Manager starts a rotation by staging an empty version (the `ClientRequestToken`) as
//! AWSPENDING, then invokes this Lambda four times:
//!
//! - `createSecret`: read the AWSCURRENT keyring, append a fresh 256-bit key version, make it
//!   primary, put the result as AWSPENDING under the token (nothing if already there).
//! - `setSecret`: nothing downstream holds the key; logged.
//! - `testSecret`: the AWSPENDING keyring parses, its primary round-trips, and every version the
//!   AWSCURRENT keyring could decrypt still decrypts a probe sealed by the current keyring.
//! - `finishSecret`: move AWSCURRENT to the token's version and clear AWSPENDING.
//!
//! Every step is idempotent, and every step first makes the checks AWS's rotation templates
//! make. Older versions stay in the keyring: rotation never removes a key.

pub mod keyring_cli;

use std::collections::HashMap;

use aws_sdk_secretsmanager::Client;
use chrono::{DateTime, Utc};
use serde::Deserialize;
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

/// Why a step failed. The message is what Secrets Manager records for the failed rotation.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
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
    #[error("pending keyring failed its test: {0}")]
    TestFailed(String),
    #[error("Secrets Manager {operation} on {secret_id}: {message}")]
    Aws {
        operation: &'static str,
        secret_id: String,
        message: String,
    },
    #[error(transparent)]
    Rotate(#[from] ssm_core::keyring::RotateError),
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

    fn holding(&self, stage: &str) -> Option<&str> {
        self.stages
            .iter()
            .find(|(_, s)| s.iter().any(|x| x == stage))
            .map(|(v, _)| v.as_str())
    }
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
            Step::Finish => self.finish(secret_id, token, &versions).await?,
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
            .map_err(|e| aws("DescribeSecret", secret_id, &e))?;
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
        let mut ring = self.current(secret_id).await?;
        if self.pending_text(secret_id, token).await?.is_some() {
            tracing::info!("createSecret: the pending version already exists");
            return Ok(Outcome::PendingExists);
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
            "createSecret: pending keyring put"
        );
        Ok(Outcome::Created {
            version: version.get(),
        })
    }

    async fn test(&self, secret_id: &str, token: &str) -> Result<Outcome, RotationError> {
        let current = self.current(secret_id).await?;
        let text = self
            .pending_text(secret_id, token)
            .await?
            .ok_or_else(|| RotationError::TestFailed("the pending version has no value".into()))?;
        let pending = Keyring::from_json(&text).map_err(|source| RotationError::Malformed {
            secret_id: secret_id.to_owned(),
            stage: AWSPENDING,
            source,
        })?;
        let probed = check_pending(&current, &pending).map_err(RotationError::TestFailed)?;
        Ok(Outcome::Tested {
            versions: probed.iter().map(|v| v.get()).collect(),
        })
    }

    async fn finish(
        &self,
        secret_id: &str,
        token: &str,
        versions: &Versions,
    ) -> Result<Outcome, RotationError> {
        let from = versions.holding(AWSCURRENT).map(str::to_owned);
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

    async fn current(&self, secret_id: &str) -> Result<Keyring, RotationError> {
        let text =
            ssm_keystore::read_secret_string(&self.client, secret_id, None, Some(AWSCURRENT))
                .await
                .map_err(|e| match e {
                    ssm_keystore::LoadError::NotAString(_) => {
                        RotationError::NoCurrent(secret_id.to_owned())
                    }
                    other => RotationError::Aws {
                        operation: "GetSecretValue",
                        secret_id: secret_id.to_owned(),
                        message: other.to_string(),
                    },
                })?;
        Keyring::from_json(&text).map_err(|source| RotationError::Malformed {
            secret_id: secret_id.to_owned(),
            stage: AWSCURRENT,
            source,
        })
    }

    /// The pending version's value, or `None` while it is still the empty stub.
    async fn pending_text(
        &self,
        secret_id: &str,
        token: &str,
    ) -> Result<Option<String>, RotationError> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .version_id(token)
            .version_stage(AWSPENDING)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.secret_string),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws("GetSecretValue", secret_id, &e)),
        }
    }
}

/// The pure part of `testSecret`: the pending keyring must have a primary newer than every
/// current version, round-trip with it, and decrypt a probe from every version the current
/// keyring could decrypt. Returns the versions probed.
pub fn check_pending(
    current: &Keyring,
    pending: &Keyring,
) -> Result<Vec<ssm_core::envelope::KeyVersion>, String> {
    const PROBE: &[u8] = b"ssm-rotation-probe";
    let primary = pending
        .primary()
        .ok_or("the pending keyring has no primary version")?;
    if current.latest().is_some_and(|latest| primary <= latest) {
        return Err(format!(
            "the pending primary version {primary} is not newer than the current keyring's versions"
        ));
    }
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
    if pending.min_decryption_version() > current.min_decryption_version() {
        return Err("the pending keyring raised min_decryption_version".into());
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
    if current.has_legacy_key() && !pending.has_legacy_key() {
        return Err("the pending keyring lost the legacy key".into());
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
        assert!(err.contains("version 1 no longer decrypts"), "{err}");
        // No new version.
        let err = check_pending(&current, &current).unwrap_err();
        assert!(err.contains("not newer"), "{err}");
        // Raised min_decryption_version.
        let mut raised = current.clone();
        raised.rotate(now()).unwrap();
        raised
            .set_min_decryption_version(ssm_core::envelope::KeyVersion::new(2).unwrap())
            .unwrap();
        assert!(
            check_pending(&current, &raised)
                .unwrap_err()
                .contains("raised")
        );
    }
}

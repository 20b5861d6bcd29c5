//! How each key's keyring gets its first version: Secrets Manager's `RotateSecret` and the
//! rotation function's four steps, for `default` and every named key.

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

use super::{Sandbox, aws_error};
use crate::Invoker;

impl Sandbox {
    /// What Secrets Manager does on `RotateSecret`: stage a pending version under a new token,
    /// then call the rotation function's four steps in order.
    /// Every key's keyring secret, `default` first: `KeyringSecretArn` and the named keys'
    /// `KeyringSecretArns` (`name=ARN,...`).
    pub fn keyring_secrets(&self) -> anyhow::Result<Vec<(String, String)>> {
        let default = self
            .outputs
            .get("KeyringSecretArn")
            .cloned()
            .context("the stack has no KeyringSecretArn output")?;
        let mut secrets = vec![("default".to_owned(), default)];
        if let Some(named) = self.outputs.get("KeyringSecretArns") {
            for (name, arn) in ssm_core::keyname::parse_assignments(named)
                .map_err(|e| anyhow!("the KeyringSecretArns output: {e}"))?
            {
                secrets.push((name.as_str().to_owned(), arn.to_owned()));
            }
        }
        Ok(secrets)
    }

    /// Each key's first version, by Secrets Manager's `RotateSecret` and the rotation function's
    /// four steps, as the stack's rotation schedule would.
    pub(super) async fn initialise_keyring(&self) -> anyhow::Result<()> {
        let rotation = self.function("RotationFunction")?;
        let arn = rotation
            .deployed()
            .map(|d| d.arn)
            .context("the rotation function is not running")?;
        let sm = aws_sdk_secretsmanager::Client::new(&self.aws);
        for (name, secret) in self.keyring_secrets()? {
            ssm_testkit::rotation::rotate(&sm, &secret, &arn, |token, step| {
                rotation
                    .invoke(json!({"SecretId": secret, "ClientRequestToken": token, "Step": step}))
            })
            .await
            .map_err(|e| anyhow!("key {name}: {e}"))?;
            let current = sm
                .get_secret_value()
                .secret_id(&secret)
                .send()
                .await
                .map_err(|e| anyhow!("GetSecretValue ({name}): {}", aws_error(&e)))?;
            let keys = current
                .secret_string()
                .and_then(|s| serde_json::from_str::<Value>(s).ok())
                .and_then(|v| v.get("keys").and_then(Value::as_array).map(Vec::len))
                .unwrap_or(0);
            if keys != 1 {
                bail!("after rotation the keyring of key {name} holds {keys} keys, expected 1");
            }
        }
        Ok(())
    }
}

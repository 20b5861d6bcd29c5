//! What the sandbox runs for each deployed function: the configuration Lambda holds, the slot
//! that invokes the current process, the code by its hash, the role's credentials, and keeping
//! them in step with moto.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context, anyhow};
use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Sandbox, aws_error};
use crate::runtime::LocalFunction;
use crate::watch::Follower;
use crate::{InvokeError, InvokeFuture, Invoker};

/// A deployed function's configuration as Lambda holds it (what the sandbox runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub name: String,
    pub arn: String,
    pub role: String,
    pub code_sha256: String,
    pub env: BTreeMap<String, String>,
    pub timeout_secs: i32,
    pub memory_mb: i32,
    pub handler: String,
    pub architectures: Vec<String>,
}

/// One deployed function, as an [`Invoker`] whose process follows the deployed code and
/// configuration: when either changes in moto, the function watcher ([`crate::watch`]) replaces it.
#[derive(Debug)]
pub struct FunctionSlot {
    pub logical_id: String,
    pub(super) running: RwLock<Option<(Deployed, Arc<LocalFunction>)>>,
}

impl Invoker for FunctionSlot {
    fn invoke(&self, event: Value) -> InvokeFuture {
        let current = self
            .running
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(_, f)| f.clone());
        match current {
            Some(f) => f.invoke(event),
            None => Box::pin(async move {
                Err(InvokeError::Unavailable(
                    "the deployed code is not a build the sandbox knows".into(),
                ))
            }),
        }
    }
}

impl FunctionSlot {
    /// Puts `next` in place and returns what ran before.
    pub(crate) fn replace(
        &self,
        next: Option<(Deployed, Arc<LocalFunction>)>,
    ) -> Option<(Deployed, Arc<LocalFunction>)> {
        let mut running = self.running.write().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *running, next)
    }

    pub fn deployed(&self) -> Option<Deployed> {
        self.running
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(d, _)| d.clone())
    }
}

/// The `AWS::Lambda::Function` code hash Lambda reports: base64 of the zip's SHA-256.
pub fn code_sha256(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

impl Sandbox {
    /// Reads every function's configuration from moto and (re)starts those whose code or
    /// configuration changed. Returns a line per function that was (re)started or stopped.
    /// Once the sandbox is up, its function watcher does this every [`watch::EVERY`].
    pub async fn sync_functions(&self) -> anyhow::Result<Vec<String>> {
        self.sync_functions_where(|_| true).await
    }

    /// [`Sandbox::sync_functions`] for the functions whose logical id `select` accepts.
    pub async fn sync_functions_where(
        &self,
        select: impl Fn(&str) -> bool,
    ) -> anyhow::Result<Vec<String>> {
        let followed = Follower::of(self).sync(select).await?;
        Ok(followed.iter().map(ToString::to_string).collect())
    }

    pub(super) fn function(&self, prefix: &str) -> anyhow::Result<Arc<FunctionSlot>> {
        self.functions
            .iter()
            .find(|(id, _)| id.starts_with(prefix))
            .map(|(_, f)| f.clone())
            .ok_or_else(|| anyhow!("the stack has no {prefix} function"))
    }

    /// Lambda follows what moto holds, whoever changes it ([`crate::watch`]).
    pub(super) fn start_function_watcher(&mut self) {
        let follower = Follower::of(self);
        self.tasks
            .push(tokio::spawn(follower.watch(self.journal.clone())));
    }
}

/// The deployed functions: logical id → configuration.
pub async fn deployed_functions(
    aws: &SdkConfig,
    stack: &str,
) -> anyhow::Result<BTreeMap<String, Deployed>> {
    let cfn = aws_sdk_cloudformation::Client::new(aws);
    let lambda = aws_sdk_lambda::Client::new(aws);
    let resources = cfn
        .list_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| anyhow!("ListStackResources {stack}: {}", aws_error(&e)))?;
    let mut out = BTreeMap::new();
    for r in resources.stack_resource_summaries() {
        if r.resource_type() != Some("AWS::Lambda::Function") {
            continue;
        }
        let (Some(id), Some(name)) = (r.logical_resource_id(), r.physical_resource_id()) else {
            continue;
        };
        let f = lambda
            .get_function()
            .function_name(name)
            .send()
            .await
            .map_err(|e| anyhow!("GetFunction {name}: {}", aws_error(&e)))?;
        let c = f
            .configuration()
            .context("GetFunction without configuration")?;
        out.insert(
            id.to_owned(),
            Deployed {
                name: c.function_name().unwrap_or(name).to_owned(),
                arn: c.function_arn().unwrap_or_default().to_owned(),
                role: c.role().unwrap_or_default().to_owned(),
                code_sha256: c.code_sha256().unwrap_or_default().to_owned(),
                env: c
                    .environment()
                    .and_then(|e| e.variables())
                    .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
                timeout_secs: c.timeout().unwrap_or(3),
                memory_mb: c.memory_size().unwrap_or(128),
                handler: c.handler().unwrap_or_default().to_owned(),
                architectures: c
                    .architectures()
                    .iter()
                    .map(|a| a.as_str().to_owned())
                    .collect(),
            },
        );
    }
    Ok(out)
}

/// Credentials of `role`, as Lambda hands them to the function.
pub(crate) async fn assume(
    aws: &SdkConfig,
    role: &str,
    session: &str,
) -> anyhow::Result<Credentials> {
    let out = aws_sdk_sts::Client::new(aws)
        .assume_role()
        .role_arn(role)
        .role_session_name(session.chars().take(64).collect::<String>())
        .send()
        .await
        .map_err(|e| anyhow!("AssumeRole {role}: {}", aws_error(&e)))?;
    let c = out
        .credentials()
        .context("AssumeRole without credentials")?;
    Ok(Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "sandbox-lambda",
    ))
}

/// `CodeSha256` → zip, for every zip asset in the assembly.
pub(crate) fn asset_zips(assembly: &Path) -> anyhow::Result<HashMap<String, PathBuf>> {
    let mut out = HashMap::new();
    for entry in
        std::fs::read_dir(assembly).with_context(|| format!("reading {}", assembly.display()))?
    {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("asset.") && name.ends_with(".zip") && path.is_file() {
            let bytes = std::fs::read(&path)?;
            out.insert(code_sha256(&bytes), path);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_sha_is_base64_sha256() {
        assert_eq!(
            code_sha256(b""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }
}

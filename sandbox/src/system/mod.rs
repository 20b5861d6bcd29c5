//! Bringing the whole system up on loopback, keeping the deployed functions in step with what
//! moto holds, and closing the drift loop.
//!
//! This module holds what the sandbox is set up with ([`Options`]), what it holds once up
//! ([`Sandbox`]) and how it stops; each step of its life is in its own file:
//!
//! - `start`: how the whole system comes up, in order;
//! - `moto`: how moto is started and given the part of `cdk bootstrap` the Action needs;
//! - `stack`: what the deployed stack says (outputs, template, references);
//! - `functions`: what runs for each deployed function, and keeping it in step with moto;
//! - `keyring`: how each key's keyring gets its first version;
//! - `http_api`: how the deployed HTTP API is served;
//! - `event_source`: how the integrity queue feeds the integrity function;
//! - `reconcile`: how a repository dispatch triggers a reconcile run;
//! - `action`: how a deploy (one `ssm-action` run) is run.

mod action;
mod event_source;
mod functions;
mod http_api;
mod keyring;
mod moto;
mod reconcile;
mod stack;
mod start;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use serde_json::Value;
use tokio::task::JoinHandle;

pub use self::action::ActionRun;
pub use self::functions::{Deployed, FunctionSlot, code_sha256, deployed_functions};
pub(crate) use self::functions::{asset_zips, assume};
pub use self::moto::assets_bucket;
pub use self::stack::stack_outputs;
use crate::callers::{CallerCredentials, IamCallers};
use crate::gateway::GatewayHandle;
pub use crate::journal::{Event, Journal, Mark};
use crate::oidc::OidcIssuer;
use crate::procs::Proc;

/// moto's account.
pub const ACCOUNT: &str = "123456789012";

/// How the sandbox is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// The synthesized cloud assembly (`cdk.out`) with `stack` in it.
    pub assembly: PathBuf,
    /// Scratch directory: logs, extracted functions, Action outputs, the state file.
    pub work: PathBuf,
    /// Where `ssm-action`, `ssm-install` and `ssm-github-emulator` are.
    pub bin_dir: PathBuf,
    /// The Python with moto (the project's venv).
    pub python: PathBuf,
    /// `sandbox/moto/ssm_moto.py`.
    pub moto_launcher: PathBuf,
    /// Use this moto instead of starting one (`AWS_ENDPOINT_URL`).
    pub moto_endpoint: Option<String>,
    pub moto_port: u16,
    pub gateway_port: u16,
    pub control_port: u16,
    pub stack: String,
    pub region: String,
    /// `owner/name`: the repository the stack was synthesized for (the OIDC subject).
    pub repository: String,
    /// Replaces the SQS event source's batching window (the deployed mapping's
    /// `MaximumBatchingWindowInSeconds` when `None`): an emulation speed-up for tests, not AWS.
    pub sqs_batching_window: Option<Duration>,
}

/// The running system.
#[derive(Debug)]
pub struct Sandbox {
    pub opts: Options,
    pub moto_url: String,
    pub aws: SdkConfig,
    pub github_url: String,
    pub app_url: String,
    pub gateway_url: String,
    /// The HTTP API's id, as its route ARNs name it.
    pub api_id: String,
    /// The callers of the HTTP API, issued through moto's IAM.
    pub callers: Option<Arc<IamCallers>>,
    /// A caller allowed on every route, issued at start-up (the e2e checks sign with it).
    pub operator: Option<CallerCredentials>,
    pub outputs: BTreeMap<String, String>,
    pub journal: Arc<Journal>,
    pub functions: BTreeMap<String, Arc<FunctionSlot>>,
    /// Lambda zips by their `CodeSha256`: the assembly's assets and what drift uploaded.
    pub code: Arc<Mutex<HashMap<String, PathBuf>>>,
    /// Loopback replacements for endpoints the template points at AWS or GitHub.
    pub overrides: BTreeMap<String, String>,
    /// The STS endpoint the integrity function signs for (mapped to moto in `overrides`).
    pub sts_endpoint: String,
    pub deploy_ms: u128,
    pub keyring_ms: u128,
    oidc: OidcIssuer,
    procs: Vec<Proc>,
    gateway: Option<GatewayHandle>,
    tasks: Vec<JoinHandle<()>>,
    reconcile_lock: Arc<tokio::sync::Mutex<()>>,
}

impl Sandbox {
    /// Dispatches the GitHub emulator accepted so far.
    pub async fn dispatches(&self) -> anyhow::Result<Vec<Value>> {
        Ok(
            reqwest::get(format!("{}/_emulator/dispatches", self.github_url))
                .await?
                .json()
                .await?,
        )
    }

    /// Stops everything it started.
    pub async fn stop(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        if let Some(g) = self.gateway.take() {
            g.shutdown().await;
        }
        for slot in self.functions.values() {
            let running = slot
                .running
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some((_, f)) = running {
                f.stop().await;
            }
        }
        for p in self.procs.iter_mut().rev() {
            p.stop().await;
        }
    }
}

impl Drop for Sandbox {
    /// The background loops hold the function slots: stop them, so dropping the sandbox (an
    /// error, an interrupted start) stops every function process too.
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// An SDK error with its service code and message.
pub fn aws_error<E: std::error::Error + 'static>(e: &E) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s = format!("{s}: {inner}");
        source = inner.source();
    }
    s
}

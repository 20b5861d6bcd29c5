//! Lambda runs what Lambda holds, whoever changed it: the function watcher reads every deployed
//! function's configuration from moto about every [`EVERY`] and replaces a function's process
//! when its code (`CodeSha256`) or configuration (environment, handler, memory, timeout,
//! architecture, role) changed, so an `UpdateFunctionCode` or `UpdateFunctionConfiguration` made
//! in moto by anyone is followed within about a second.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use aws_config::SdkConfig;

use crate::journal::{Event, Followed, Journal};
use crate::runtime::{self, FunctionSpec, LocalFunction};
use crate::system::{Deployed, FunctionSlot, Sandbox, assume, deployed_functions};

/// How often the watcher reads the functions' configuration.
pub const EVERY: Duration = Duration::from_millis(500);

/// The functions' environment variables that name an endpoint the sandbox serves on loopback.
const ENDPOINT_VARIABLES: [&str; 3] = ["SSM_BROKER_URL", "SSM_GITHUB_API_URL", "SSM_STS_ENDPOINT"];

/// What (re)starting the stack's functions needs, owned, so a background task can hold it.
#[derive(Debug, Clone)]
pub struct Follower {
    aws: SdkConfig,
    stack: String,
    region: String,
    moto_url: String,
    work: PathBuf,
    functions: BTreeMap<String, Arc<FunctionSlot>>,
    code: Arc<Mutex<HashMap<String, PathBuf>>>,
    overrides: BTreeMap<String, String>,
    sts_endpoint: String,
    /// Configurations whose code is no build the sandbox knows, by logical id: followed once (the
    /// function stopped), not again at every pass.
    unrunnable: Arc<Mutex<HashMap<String, Deployed>>>,
}

impl Follower {
    pub fn of(sandbox: &Sandbox) -> Follower {
        Follower {
            aws: sandbox.aws.clone(),
            stack: sandbox.opts.stack.clone(),
            region: sandbox.opts.region.clone(),
            moto_url: sandbox.moto_url.clone(),
            work: sandbox.opts.work.clone(),
            functions: sandbox.functions.clone(),
            code: sandbox.code.clone(),
            overrides: sandbox.overrides.clone(),
            sts_endpoint: sandbox.sts_endpoint.clone(),
            unrunnable: Arc::default(),
        }
    }

    /// Follows moto for ever, every [`EVERY`], recording each replacement in `journal`.
    pub async fn watch(self, journal: Arc<Journal>) {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.sync(|_| true).await {
                Ok(followed) => followed
                    .into_iter()
                    .for_each(|f| journal.record(Event::FunctionFollowed(f))),
                // moto busy or the stack mid-update: the next tick tries again.
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "reading the functions"),
            }
        }
    }

    /// Reads every function's configuration from moto and (re)starts those of the functions
    /// `select` accepts whose code or configuration changed.
    pub async fn sync(&self, select: impl Fn(&str) -> bool) -> anyhow::Result<Vec<Followed>> {
        let deployed = deployed_functions(&self.aws, &self.stack).await?;
        let mut changed = Vec::new();
        for (logical_id, d) in deployed {
            if !select(&logical_id) {
                continue;
            }
            let Some(slot) = self.functions.get(&logical_id) else {
                continue;
            };
            let current = slot.deployed();
            let known_unrunnable = || {
                self.unrunnable
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&logical_id)
                    == Some(&d)
            };
            if current.as_ref() == Some(&d) || current.is_none() && known_unrunnable() {
                continue;
            }
            let zip = self
                .code
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&d.code_sha256)
                .cloned();
            let replacement = match zip {
                Some(zip) => Some(self.start(&logical_id, &d, &zip).await?),
                None => None,
            };
            let running = replacement.is_some();
            {
                let mut unrunnable = self.unrunnable.lock().unwrap_or_else(|p| p.into_inner());
                if running {
                    unrunnable.remove(&logical_id);
                } else {
                    unrunnable.insert(logical_id.clone(), d.clone());
                }
            }
            if let Some((_, old)) = slot.replace(replacement.map(|f| (d.clone(), f))) {
                // As Lambda, the old environment finishes the invocations it took.
                tokio::spawn(async move { old.stop_when_idle().await });
            }
            changed.push(Followed {
                name: d.name,
                logical_id,
                code_sha256: d.code_sha256,
                running,
            });
        }
        Ok(changed)
    }

    /// Whether every function runs what moto holds: the deployed configuration, or nothing when
    /// its code is no build the sandbox knows.
    pub async fn in_step(&self) -> anyhow::Result<bool> {
        let deployed = deployed_functions(&self.aws, &self.stack).await?;
        let known = self.code.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ok(deployed.iter().all(|(logical_id, d)| {
            self.functions
                .get(logical_id)
                .is_none_or(|slot| match slot.deployed() {
                    Some(running) => running == *d,
                    None => !known.contains_key(&d.code_sha256),
                })
        }))
    }

    async fn start(
        &self,
        logical_id: &str,
        d: &Deployed,
        zip: &Path,
    ) -> anyhow::Result<Arc<LocalFunction>> {
        let dir = self
            .work
            .join("functions")
            .join(logical_id)
            .join(d.code_sha256.replace(['/', '+', '='], "_"));
        std::fs::create_dir_all(&dir)?;
        let bytes = std::fs::read(zip).with_context(|| format!("reading {}", zip.display()))?;
        let bootstrap = runtime::extract_bootstrap(&bytes, &dir)?;
        // Lambda gives the function its execution role's credentials.
        let creds = assume(&self.aws, &d.role, &d.name).await?;
        let mut env = d.env.clone();
        if env.contains_key("SSM_BROKER_URL") && !env.contains_key("SSM_STS_ENDPOINT") {
            // The integrity function's default, made explicit so the override below applies.
            env.insert("SSM_STS_ENDPOINT".into(), self.sts_endpoint.clone());
        }
        // Only the endpoint variables are rewritten: the broker audience may be the same string
        // as the broker URL, and it must stay what the broker expects.
        let mut env: BTreeMap<String, String> = env
            .into_iter()
            .map(|(k, v)| {
                let v = if ENDPOINT_VARIABLES.contains(&k.as_str()) {
                    self.overrides.get(&v).cloned().unwrap_or(v)
                } else {
                    v
                };
                (k, v)
            })
            .collect();
        env.extend([
            ("AWS_REGION".into(), self.region.clone()),
            ("AWS_DEFAULT_REGION".into(), self.region.clone()),
            ("AWS_ENDPOINT_URL".into(), self.moto_url.clone()),
            ("AWS_ACCESS_KEY_ID".into(), creds.access_key_id().to_owned()),
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                creds.secret_access_key().to_owned(),
            ),
            (
                "AWS_SESSION_TOKEN".into(),
                creds.session_token().unwrap_or_default().to_owned(),
            ),
        ]);
        let spec = FunctionSpec {
            name: d.name.clone(),
            bootstrap,
            env,
            timeout: Duration::from_secs(u64::try_from(d.timeout_secs.max(1)).unwrap_or(3)),
            memory_mb: u32::try_from(d.memory_mb.max(128)).unwrap_or(128),
            handler: d.handler.clone(),
            log_file: Some(self.work.join("logs").join(format!("{logical_id}.log"))),
        };
        LocalFunction::start(spec).await
    }
}

//! Bringing the whole system up on loopback, keeping the deployed functions in step with what
//! moto holds, and closing the drift loop.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::process::Command;
use tokio::task::JoinHandle;

use crate::callers::{self, CallerCredentials, IamCallers};
use crate::concurrency;
use crate::gateway::{self, GatewayConfig, GatewayHandle, Route};
pub use crate::journal::{Event, Journal, Mark};
use crate::oidc::OidcIssuer;
use crate::poller;
use crate::procs::{self, Proc};
use crate::runtime::LocalFunction;
use crate::watch::Follower;
use crate::{InvokeError, InvokeFuture, Invoker};

/// moto's account.
pub const ACCOUNT: &str = "123456789012";
/// The App id the emulator and the App agree on.
const APP_ID: u64 = 5150;
/// The installation id of the App on the repository.
const INSTALLATION_ID: u64 = 77;
/// The CDK bootstrap qualifier the assembly's asset manifest names.
const QUALIFIER: &str = "hnb659fds";

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
    running: RwLock<Option<(Deployed, Arc<LocalFunction>)>>,
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

/// The `AWS::Lambda::Function` code hash Lambda reports: base64 of the zip's SHA-256.
pub fn code_sha256(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

impl Sandbox {
    /// Starts everything; on any error, what was started is stopped (dropped) before returning.
    pub async fn start(opts: Options) -> anyhow::Result<Sandbox> {
        let started = Instant::now();
        let journal = Arc::new(Journal::default());
        // A fresh scratch area per run (the assembly may live under it: keep that).
        for stale in ["logs", "functions", "action"] {
            let _ = std::fs::remove_dir_all(opts.work.join(stale));
        }
        std::fs::create_dir_all(opts.work.join("logs"))
            .with_context(|| format!("creating {}", opts.work.display()))?;
        check_assembly(&opts)?;
        for bin in ["ssm-action", "ssm-github-emulator", "ssm-install"] {
            let path = opts.bin_dir.join(bin);
            if !path.is_file() {
                bail!(
                    "{} is missing: build it with `cargo build -p ssm-action -p ssm-install -p ssm-testkit --features ssm-testkit/github --bins` (or run bash scripts/sandbox.sh)",
                    path.display()
                );
            }
        }
        let gateway_port = procs::port_or_free(opts.gateway_port, "the HTTP API")?;
        // Checked before anything starts, so a taken port costs nothing to undo.
        if opts.control_port != 0 {
            procs::port_or_free(opts.control_port, "the control endpoint")?;
        }
        let mut procs_started = Vec::new();

        // 1. moto.
        let moto_url = match &opts.moto_endpoint {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let (proc, url) = start_moto(&opts).await?;
                procs_started.push(proc);
                url
            }
        };
        journal.mark(format!("moto ready at {moto_url}"));
        let aws = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&moto_url)
            .region(Region::new(opts.region.clone()))
            .credentials_provider(Credentials::new(
                "testing", "testing", None, None, "sandbox",
            ))
            .load()
            .await;
        moto_config(&moto_url).await?;
        bootstrap(&aws, &opts.region).await?;
        journal.mark("CDK bootstrap bucket and version parameter in place");

        // 2. The OIDC issuer and the GitHub emulator.
        let oidc = OidcIssuer::start(&opts.repository, "main").await?;
        let mut cmd = Command::new(opts.bin_dir.join("ssm-github-emulator"));
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--app-id",
            &APP_ID.to_string(),
            "--install",
            &format!("{}={INSTALLATION_ID}", opts.repository),
            "--exit-on-stdin-eof",
        ]);
        let (emulator, github_url) = Proc::spawn_announcing(
            "ssm-github-emulator",
            cmd,
            &opts.work.join("logs/github-emulator.log"),
            "listening on ",
            Duration::from_secs(10),
        )
        .await?;
        procs_started.push(emulator);
        journal.mark(format!("GitHub emulator at {github_url}"));

        // 3. The first install, as a user runs it: ssm-install deploys the three stacks through
        // the Action's library and registers the App through the emulator's manifest flow.
        let deploy_start = Instant::now();
        crate::install::run(&opts, &moto_url, &github_url, &journal).await?;
        let deploy_ms = deploy_start.elapsed().as_millis();
        journal.mark(format!("installed by ssm-install in {deploy_ms} ms"));
        let outputs = stack_outputs(&aws, &opts.stack).await?;
        let template = deployed_template(&aws, &opts.stack).await?;

        // 4. The App (token broker) from its deployed stack.
        let integrity_role = outputs
            .get("IntegrityRoleArn")
            .cloned()
            .context("the stack has no IntegrityRoleArn output")?;
        let mut functions_cfg = deployed_functions(&aws, &opts.stack).await?;
        let integrity_env = functions_cfg
            .iter()
            .find(|(id, _)| id.starts_with("IntegrityFunction"))
            .map(|(_, d)| d.env.clone())
            .context("the stack has no integrity function")?;
        let (app, app_url) = crate::install::start_app(&opts, &aws, &moto_url, &github_url).await?;
        procs_started.push(app);
        journal.mark(format!(
            "ssm-app (token broker) at {app_url}: {}'s deployed bootstrap, environment and secrets; its policy names {integrity_role}",
            crate::install::APP_STACK
        ));

        // 5. The functions, as Lambda runs them.
        let mut overrides = BTreeMap::new();
        if let Some(url) = integrity_env.get("SSM_BROKER_URL") {
            overrides.insert(url.clone(), app_url.clone());
        }
        // The STS endpoint the integrity function signs its broker identity for: its
        // SSM_STS_ENDPOINT, else its region's default, which the stack outputs.
        let sts_endpoint = integrity_env
            .get("SSM_STS_ENDPOINT")
            .or_else(|| outputs.get("IntegrityStsEndpoint"))
            .cloned()
            .unwrap_or_else(|| format!("https://sts.{}.amazonaws.com/", opts.region));
        overrides.insert(sts_endpoint.clone(), moto_url.clone());
        overrides.insert(
            integrity_env
                .get("SSM_GITHUB_API_URL")
                .cloned()
                .unwrap_or_else(|| "https://api.github.com".into()),
            github_url.clone(),
        );
        let code = Arc::new(Mutex::new(asset_zips(&opts.assembly)?));
        let mut sandbox = Sandbox {
            opts,
            moto_url,
            aws,
            github_url,
            app_url,
            gateway_url: String::new(),
            api_id: String::new(),
            callers: None,
            operator: None,
            outputs,
            journal: journal.clone(),
            functions: BTreeMap::new(),
            code,
            overrides,
            sts_endpoint: String::new(),
            deploy_ms,
            keyring_ms: 0,
            oidc,
            procs: procs_started,
            gateway: None,
            tasks: Vec::new(),
            reconcile_lock: Arc::new(tokio::sync::Mutex::new(())),
        };
        sandbox.sts_endpoint = sts_endpoint;
        for (logical_id, _) in std::mem::take(&mut functions_cfg) {
            sandbox.functions.insert(
                logical_id.clone(),
                Arc::new(FunctionSlot {
                    logical_id,
                    running: RwLock::new(None),
                }),
            );
        }
        // 6. The keyring first, as the RotationSchedule's immediate rotation does on AWS before
        // anyone can call the API: Secrets Manager's part, then the rotation function's steps.
        let changed = sandbox
            .sync_functions_where(|id| id.starts_with("RotationFunction"))
            .await?;
        journal.mark(format!(
            "function running under a local Runtime API: {}",
            changed.join(", ")
        ));
        let keyring_start = Instant::now();
        sandbox.initialise_keyring().await?;
        sandbox.keyring_ms = keyring_start.elapsed().as_millis();
        journal.mark(format!(
            "keyring initialised by the rotation function's four steps in {} ms",
            sandbox.keyring_ms
        ));
        let changed = sandbox.sync_functions().await?;
        journal.mark(format!(
            "functions running under local Runtime APIs: {}",
            changed.join(", ")
        ));

        // 7. The HTTP API, the queue's event source mapping, the workflow's dispatch trigger.
        sandbox.start_gateway(&template, gateway_port).await?;
        sandbox.start_event_source_mapping().await?;
        sandbox.start_dispatch_watcher()?;
        sandbox.start_function_watcher();
        journal.mark(format!(
            "sandbox up in {} ms",
            started.elapsed().as_millis()
        ));
        Ok(sandbox)
    }

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

    fn function(&self, prefix: &str) -> anyhow::Result<Arc<FunctionSlot>> {
        self.functions
            .iter()
            .find(|(id, _)| id.starts_with(prefix))
            .map(|(_, f)| f.clone())
            .ok_or_else(|| anyhow!("the stack has no {prefix} function"))
    }

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
    async fn initialise_keyring(&self) -> anyhow::Result<()> {
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

    async fn start_gateway(&mut self, template: &Value, port: u16) -> anyhow::Result<()> {
        let resources = template
            .get("Resources")
            .and_then(Value::as_object)
            .context("deployed template has no Resources")?;
        let mut routes = Vec::new();
        let mut api_id = String::from("sandbox");
        for (id, r) in resources {
            if r.get("Type").and_then(Value::as_str) == Some("AWS::ApiGatewayV2::Api") {
                api_id = id.clone();
            }
            if r.get("Type").and_then(Value::as_str) != Some("AWS::ApiGatewayV2::Route") {
                continue;
            }
            let p = &r["Properties"];
            let route_key = p["RouteKey"].as_str().unwrap_or_default().to_owned();
            let iam = p["AuthorizationType"].as_str() == Some("AWS_IAM");
            let integration = refs(&p["Target"])
                .into_iter()
                .find(|r| resources.contains_key(r))
                .with_context(|| format!("route {route_key} has no integration"))?;
            let function = refs(&resources[&integration]["Properties"])
                .into_iter()
                .find_map(|r| self.functions.get(&r).cloned())
                .with_context(|| format!("route {route_key}: integration {integration} targets no function of the stack"))?;
            routes.push(Route {
                route_key,
                target: function,
                iam,
            });
        }
        if routes.is_empty() {
            bail!("the deployed template has no HTTP API routes");
        }
        let sts = aws_sdk_sts::Client::new(&self.aws);
        let me = sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| anyhow!("GetCallerIdentity: {}", aws_error(&e)))?;
        let api_id: String = api_id.to_lowercase().chars().take(10).collect();
        let callers = Arc::new(IamCallers::open(
            &self.aws,
            self.opts.work.join("callers.json"),
        )?);
        let operator = callers
            .create("ssm-sandbox-operator", &callers::api_policy(&api_id))
            .await?;
        let n = routes.len();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| {
                format!("port {port} on 127.0.0.1 (for the HTTP API) is not available")
            })?;
        let handle = gateway::serve(
            listener,
            GatewayConfig {
                api_id: api_id.clone(),
                stage: "$default".into(),
                routes,
                account_id: me.account().unwrap_or(ACCOUNT).to_owned(),
                region: self.opts.region.clone(),
                principals: callers.clone(),
                max_body: 10 * 1024 * 1024,
            },
        )
        .await;
        self.gateway_url = format!("http://{}", handle.local_addr());
        self.api_id = api_id;
        self.callers = Some(callers);
        self.operator = Some(operator.credentials);
        self.gateway = Some(handle);
        self.journal.mark(format!(
            "HTTP API ({n} routes) served as API Gateway would at {}",
            self.gateway_url
        ));
        Ok(())
    }

    /// Lambda's SQS event source mapping of the integrity queue ([`poller`]), batching as the
    /// deployed mapping says (the window shortened only by [`Options::sqs_batching_window`]).
    async fn start_event_source_mapping(&mut self) -> anyhow::Result<()> {
        let queue_url = self
            .outputs
            .get("IntegrityQueueUrl")
            .cloned()
            .context("the stack has no IntegrityQueueUrl output")?;
        let sqs = aws_sdk_sqs::Client::new(&self.aws);
        let queue_arn = poller::queue_arn(&sqs, &queue_url).await?;
        let integrity = self.function("IntegrityFunction")?;
        let function_name = integrity
            .deployed()
            .map(|d| d.name)
            .context("the integrity function is not running")?;
        let mappings = aws_sdk_lambda::Client::new(&self.aws)
            .list_event_source_mappings()
            .function_name(&function_name)
            .event_source_arn(&queue_arn)
            .send()
            .await
            .map_err(|e| anyhow!("ListEventSourceMappings {function_name}: {}", aws_error(&e)))?;
        let mapping = mappings.event_source_mappings().first().with_context(|| {
            format!("no event source mapping from {queue_arn} to {function_name}")
        })?;
        let mut batching = poller::Batching::of_mapping(
            mapping.batch_size(),
            mapping.maximum_batching_window_in_seconds(),
        );
        let deployed_window = batching.window;
        if let Some(window) = self.opts.sqs_batching_window {
            batching.window = window;
        }
        self.journal.mark(format!(
            "SQS event source: batches of up to {} record(s), batching window {:?}{}",
            batching.batch_size,
            batching.window,
            if batching.window == deployed_window {
                " (the deployed mapping's)".to_owned()
            } else {
                format!(" (shortened from the deployed mapping's {deployed_window:?}: an emulation speed-up)")
            }
        ));
        let source = poller::Source {
            sqs,
            queue_url,
            queue_arn,
            region: self.opts.region.clone(),
            report_item_failures: mapping
                .function_response_types()
                .contains(&aws_sdk_lambda::types::FunctionResponseType::ReportBatchItemFailures),
        };
        self.tasks.push(tokio::spawn(poller::run(
            source,
            batching,
            integrity,
            self.journal.clone(),
        )));
        Ok(())
    }

    /// The workflow's `on: repository_dispatch` trigger: each dispatch the emulator accepted
    /// triggers the deploy job in `reconcile` mode, run as the job's concurrency group in
    /// `deploy.yml` runs it ([`concurrency`]).
    fn start_dispatch_watcher(&mut self) -> anyhow::Result<()> {
        let group =
            concurrency::Group::of_job(concurrency::DEPLOY_WORKFLOW, concurrency::RECONCILE_JOB)?;
        let url = format!("{}/_emulator/dispatches", self.github_url);
        let journal = self.journal.clone();
        let opts = self.opts.clone();
        let moto = self.moto_url.clone();
        let oidc_url = self.oidc.url();
        let oidc_token = self.oidc.request_token.clone();
        let lock = self.reconcile_lock.clone();
        let (trigger, triggers) = tokio::sync::mpsc::unbounded_channel();
        let runs = journal.clone();
        self.tasks.push(tokio::spawn(async move {
            group
                .serve(triggers, runs.clone(), || {
                    let (opts, moto, oidc_url, oidc_token, lock, journal) = (
                        opts.clone(),
                        moto.clone(),
                        oidc_url.clone(),
                        oidc_token.clone(),
                        lock.clone(),
                        runs.clone(),
                    );
                    async move {
                        let _guard = lock.lock().await;
                        journal.record(Event::ReconcileStarted);
                        let run = run_action_with(
                            &opts,
                            &moto,
                            &oidc_url,
                            &oidc_token,
                            "reconcile",
                            "reconcile",
                        )
                        .await;
                        journal.record(match run {
                            Ok(r) => Event::ReconcileDone {
                                exit: r.code,
                                drifted_resources: r
                                    .outputs
                                    .get("drifted-resources")
                                    .cloned()
                                    .unwrap_or_else(|| "?".into()),
                                has_changes: r
                                    .outputs
                                    .get("has-changes")
                                    .cloned()
                                    .unwrap_or_else(|| "?".into()),
                            },
                            Err(e) => Event::ReconcileFailedToRun {
                                error: e.to_string(),
                            },
                        });
                    }
                })
                .await;
        }));
        let http = reqwest::Client::new();
        self.tasks.push(tokio::spawn(async move {
            let mut seen = 0usize;
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Ok(resp) = http.get(&url).send().await else {
                    continue;
                };
                let Ok(all) = resp.json::<Vec<Value>>().await else {
                    continue;
                };
                for d in all.iter().skip(seen) {
                    journal.record(Event::DispatchAccepted {
                        event_type: d["body"]["event_type"].as_str().unwrap_or("?").to_owned(),
                        repository: d["repository"].as_str().unwrap_or("?").to_owned(),
                        resources: d["body"]["client_payload"]["resources"].to_string(),
                    });
                    let _ = trigger.send(());
                }
                seen = all.len();
            }
        }));
        Ok(())
    }

    /// Lambda follows what moto holds, whoever changes it ([`crate::watch`]).
    fn start_function_watcher(&mut self) {
        let follower = Follower::of(self);
        self.tasks
            .push(tokio::spawn(follower.watch(self.journal.clone())));
    }

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

/// The stack's outputs.
pub async fn stack_outputs(
    aws: &SdkConfig,
    stack: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let cfn = aws_sdk_cloudformation::Client::new(aws);
    let d = cfn
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| anyhow!("DescribeStacks {stack}: {}", aws_error(&e)))?;
    Ok(d.stacks()
        .first()
        .map(|s| {
            s.outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
                .collect()
        })
        .unwrap_or_default())
}

async fn deployed_template(aws: &SdkConfig, stack: &str) -> anyhow::Result<Value> {
    let cfn = aws_sdk_cloudformation::Client::new(aws);
    let body = cfn
        .get_template()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| anyhow!("GetTemplate {stack}: {}", aws_error(&e)))?
        .template_body
        .unwrap_or_default();
    serde_json::from_str(&body).context("the deployed template is not JSON")
}

/// Every `Ref` and `Fn::GetAtt` target in `v`.
fn refs(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("Ref") {
                out.push(r.clone());
            }
            if let Some(Value::Array(a)) = m.get("Fn::GetAtt")
                && let Some(Value::String(r)) = a.first()
            {
                out.push(r.clone());
            }
            for v in m.values() {
                out.extend(refs(v));
            }
        }
        Value::Array(a) => a.iter().for_each(|v| out.extend(refs(v))),
        _ => {}
    }
    out
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

fn check_assembly(opts: &Options) -> anyhow::Result<()> {
    let manifest = opts.assembly.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).with_context(|| {
        format!(
            "no cloud assembly at {} (synthesize it: bash scripts/sandbox.sh does)",
            opts.assembly.display()
        )
    })?;
    let v: Value = serde_json::from_str(&text).context("manifest.json is not JSON")?;
    if v["artifacts"].get(&opts.stack).is_none() {
        bail!(
            "the cloud assembly {} has no stack {}",
            opts.assembly.display(),
            opts.stack
        );
    }
    Ok(())
}

async fn start_moto(opts: &Options) -> anyhow::Result<(Proc, String)> {
    if !opts.python.is_file() {
        bail!(
            "moto is not installed: {} is missing (run bash scripts/setup.sh, which makes the venv with moto)",
            opts.python.display()
        );
    }
    let probe = Command::new(&opts.python)
        .args(["-c", "import moto.server"])
        .output()
        .await
        .with_context(|| format!("running {}", opts.python.display()))?;
    if !probe.status.success() {
        bail!(
            "moto is not installed in {} (run bash scripts/setup.sh): {}",
            opts.python.display(),
            String::from_utf8_lossy(&probe.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        );
    }
    if !opts.moto_launcher.is_file() {
        bail!("{} is missing", opts.moto_launcher.display());
    }
    let port = procs::port_or_free(opts.moto_port, "moto")?;
    let mut cmd = Command::new(&opts.python);
    cmd.arg(&opts.moto_launcher)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    let mut proc = Proc::spawn("moto", cmd, &opts.work.join("logs/moto.log"))?;
    let url = format!("http://127.0.0.1:{port}");
    proc.wait_http(&format!("{url}/moto-api/"), Duration::from_secs(60))
        .await?;
    Ok((proc, url))
}

/// moto's Lambda backend must not try to run functions itself (no Docker): the sandbox does.
async fn moto_config(moto: &str) -> anyhow::Result<()> {
    let r = reqwest::Client::new()
        .post(format!("{moto}/moto-api/config"))
        .json(&json!({"lambda": {"use_docker": false}}))
        .send()
        .await
        .with_context(|| format!("configuring moto at {moto}"))?;
    if !r.status().is_success() {
        bail!("moto refused its configuration: {}", r.status());
    }
    Ok(())
}

/// The CDK bootstrap bucket the Action publishes assets to.
pub fn assets_bucket(region: &str) -> String {
    format!("cdk-{QUALIFIER}-assets-{ACCOUNT}-{region}")
}

/// The part of `cdk bootstrap` the Action needs: the assets bucket and the version parameter.
async fn bootstrap(aws: &SdkConfig, region: &str) -> anyhow::Result<()> {
    let bucket = assets_bucket(region);
    let s3 = aws_sdk_s3::Client::new(aws);
    if s3.head_bucket().bucket(&bucket).send().await.is_err() {
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .map_err(|e| anyhow!("CreateBucket {bucket}: {}", aws_error(&e)))?;
    }
    aws_sdk_ssm::Client::new(aws)
        .put_parameter()
        .name(format!("/cdk-bootstrap/{QUALIFIER}/version"))
        .value("21")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .map_err(|e| anyhow!("PutParameter: {}", aws_error(&e)))?;
    Ok(())
}

/// One run of the Action.
#[derive(Debug)]
pub struct ActionRun {
    pub code: Option<i32>,
    pub outputs: BTreeMap<String, String>,
    pub log: PathBuf,
    pub ms: u128,
}

/// Runs `ssm-action` as the runner would for the workflow: only the inputs and the runner's
/// variables, OIDC for credentials (no static keys), AWS endpoints pointed at moto.
async fn run_action_with(
    opts: &Options,
    moto: &str,
    oidc_url: &str,
    oidc_token: &str,
    mode: &str,
    tag: &str,
) -> anyhow::Result<ActionRun> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dir = opts.work.join("action");
    std::fs::create_dir_all(&dir)?;
    let output = dir.join(format!("{tag}-{id}.output"));
    let summary = dir.join(format!("{tag}-{id}.md"));
    let log = opts
        .work
        .join("logs")
        .join(format!("action-{tag}-{}.log", &id[..8]));
    std::fs::write(&output, "")?;
    std::fs::write(&summary, "")?;
    let mut cmd = Command::new(opts.bin_dir.join("ssm-action"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("INPUT_MODE", mode)
        .env("INPUT_AWS-REGION", &opts.region)
        .env("INPUT_CLOUD-ASSEMBLY", &opts.assembly)
        .env("INPUT_STACKS", &opts.stack)
        .env(
            "INPUT_ROLE-TO-ASSUME",
            format!("arn:aws:iam::{ACCOUNT}:role/ssm-github-deploy"),
        )
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", oidc_url)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", oidc_token)
        .env("AWS_ENDPOINT_URL", moto)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_REPOSITORY", &opts.repository)
        .env("GITHUB_RUN_ID", std::process::id().to_string())
        .env("GITHUB_RUN_ATTEMPT", "1")
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", &summary);
    let start = Instant::now();
    let mut proc = Proc::spawn(&format!("ssm-action ({mode})"), cmd, &log)?;
    let status = tokio::time::timeout(Duration::from_secs(300), proc.wait())
        .await
        .map_err(|_| anyhow!("ssm-action ({mode}) did not finish within 5 minutes"))??;
    let text = std::fs::read_to_string(&output).unwrap_or_default();
    Ok(ActionRun {
        code: status.code(),
        outputs: ssm_core::deploy::github::parse_output_file(&text)
            .map_err(|e| anyhow!("ssm-action ({mode}) wrote a malformed GITHUB_OUTPUT: {e}"))?,
        log,
        ms: start.elapsed().as_millis(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_finds_ref_and_getatt_targets() {
        let v = json!({"Fn::Join": ["", ["integrations/", {"Ref": "Integ"}]],
                       "Uri": {"Fn::GetAtt": ["CryptoFn", "Arn"]}});
        let mut r = refs(&v);
        r.sort();
        assert_eq!(r, ["CryptoFn", "Integ"]);
    }

    #[test]
    fn code_sha_is_base64_sha256() {
        assert_eq!(
            code_sha256(b""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }
}

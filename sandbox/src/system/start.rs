//! How the whole system comes up, in order: moto, the OIDC issuer and the GitHub emulator, the
//! first install, the App, the keyring, the functions, then the HTTP API and the drift loop.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_config::Region;
use aws_credential_types::Credentials;
use serde_json::Value;
use tokio::process::Command;

use super::functions::{asset_zips, deployed_functions};
use super::moto::{bootstrap, moto_config, start_moto};
use super::stack::{deployed_template, stack_outputs};
use super::{FunctionSlot, Journal, Options, Sandbox};
use crate::oidc::OidcIssuer;
use crate::procs::{self, Proc};

/// The App id the emulator and the App agree on.
const APP_ID: u64 = 5150;
/// The installation id of the App on the repository.
const INSTALLATION_ID: u64 = 77;

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
        let aws = ssm_sdk_http::sdk_config_loader()
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

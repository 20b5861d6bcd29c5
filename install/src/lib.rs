//! `ssm-install`: takes an account from empty to a running Serverless SSM (INSTALL.md), in six
//! steps, each printed with what it did or why it skipped:
//!
//! 1. check the CDK bootstrap the assembly needs (its version parameter and assets buckets),
//!    refusing with the command that makes it;
//! 2. deploy `SsmGitHubOidc`, 3. deploy `SsmGitHubApp`, 5. deploy `SsmServerless`: change sets
//!    through the deploy Action's library (`ssm-action`), so a stack already up to date is an
//!    empty change set and nothing more;
//! 4. register the GitHub App through GitHub's manifest flow (`ssm-app setup`'s page), writing
//!    its key and webhook secret into the App stack's own secrets, found from its outputs;
//!    skipped once both secrets have been written since the stack created them;
//! 6. print the repository variables deploy.yml reads.
//!
//! Every step reads the state it acts on, so a run that stopped (a failed deploy, a closed
//! browser) resumes where it stopped, and a run after a complete install changes nothing. A
//! first install deploys each stack once: the App takes its id from the key secret, and the
//! broker policy names the integrity role by its derived name, so no stack waits for another's
//! outputs. All AWS endpoints follow `AWS_ENDPOINT_URL` and GitHub's are flags, so the same
//! command runs against moto and the GitHub emulator (the sandbox, the tests).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use anyhow::{Context as _, bail};
use aws_config::SdkConfig;
use ssm_action::clients::{Clients, RoleClients};
use ssm_action::runner::Runner;
use ssm_core::deploy::ActionInputs;
use ssm_core::deploy::assembly::{CloudAssembly, Placeholders};
use ssm_core::install::{self, BootstrapFound, Outcome};

/// Command line of `ssm-install`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "ssm-install",
    version,
    about = "Install Serverless SSM into an AWS account: bootstrap check, the three stacks, the GitHub App"
)]
pub struct InstallOpts {
    /// The synthesized cloud assembly (`bash scripts/synth.sh` writes `cdk/cdk.out`).
    #[arg(long, default_value = "cdk/cdk.out")]
    pub cloud_assembly: PathBuf,
    /// The region to install into.
    #[arg(long, env = "AWS_REGION")]
    pub region: String,
    /// The OIDC stack's name (cdk.json `oidcStackName`).
    #[arg(long, default_value = "SsmGitHubOidc")]
    pub oidc_stack: String,
    /// The GitHub App stack's name (cdk.json `appStackName`).
    #[arg(long, default_value = "SsmGitHubApp")]
    pub app_stack: String,
    /// The Serverless SSM stack's name (cdk.json `stackName`).
    #[arg(long, default_value = "SsmServerless")]
    pub serverless_stack: String,
    /// Where and as whom the App is registered.
    #[command(flatten)]
    pub github: ssm_app::setup::GitHubTarget,
    /// Local address of the registration page (GitHub redirects the browser back to it).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// How long to wait for the registration in the browser, in seconds.
    #[arg(long, default_value_t = 1800)]
    pub registration_timeout_secs: u64,
}

/// Who confirms the App's manifest on GitHub, given the registration page's URL: a person (the
/// binary prints the URL and waits) or, in tests and the sandbox, a scripted browser.
pub type Confirm =
    dyn Fn(String) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send + Sync;

/// The install's steps, in order, as printed.
pub const STEPS: [&str; 6] = [
    "CDK bootstrap",
    "deploy the OIDC stack",
    "deploy the GitHub App stack",
    "register the GitHub App",
    "deploy the Serverless SSM stack",
    "repository variables",
];

/// One install run against one account and region.
pub struct Installer<'a> {
    pub opts: &'a InstallOpts,
    pub clients: Clients,
    pub ssm: aws_sdk_ssm::Client,
    pub sts: aws_sdk_sts::Client,
    /// Where each line of the install's account goes (stdout in the binary).
    pub say: &'a (dyn Fn(&str) + Send + Sync),
    /// `None`: a person opens the printed URL.
    pub confirm: Option<&'a Confirm>,
}

impl std::fmt::Debug for Installer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Installer")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl<'a> Installer<'a> {
    /// The clients of `aws` (endpoints from its configuration: `AWS_ENDPOINT_URL`).
    pub fn new(
        opts: &'a InstallOpts,
        aws: &SdkConfig,
        say: &'a (dyn Fn(&str) + Send + Sync),
        confirm: Option<&'a Confirm>,
    ) -> Self {
        Installer {
            opts,
            clients: Clients::new(aws),
            ssm: aws_sdk_ssm::Client::new(aws),
            sts: aws_sdk_sts::Client::new(aws),
            say,
            confirm,
        }
    }

    /// Runs every step in order; stops at the first that fails, after printing it.
    pub async fn run(&self) -> anyhow::Result<Vec<Outcome>> {
        // A person's terminal (or a test's), never a workflow: the deploy Action's library must
        // not print `::group::` or `::add-mask::` lines there.
        ssm_action::runner::disable_workflow_commands();
        let account = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "who am I (sts:GetCallerIdentity): {}",
                    ssm_action::aws_error(&e)
                )
            })?
            .account
            .context("STS named no account")?;
        let region = self.opts.region.as_str();
        (self.say)(&format!(
            "Installing Serverless SSM into account {account}, region {region}, from {}",
            self.opts.cloud_assembly.display()
        ));
        let assembly = ssm_action::run::load_assembly(&self.opts.cloud_assembly)?;
        for stack in [
            &self.opts.oidc_stack,
            &self.opts.app_stack,
            &self.opts.serverless_stack,
        ] {
            assembly.select(std::slice::from_ref(stack)).with_context(|| {
                format!("the assembly has no stack {stack}: synthesize with the same settings (cdk.json) or pass its name")
            })?;
        }
        let placeholders = Placeholders::new(&account, region);
        let mut outcomes = Vec::new();
        for (i, title) in STEPS.iter().enumerate() {
            let result = match i {
                0 => self.bootstrap(&assembly, &placeholders, &account).await,
                1 => self.deploy(&self.opts.oidc_stack, &account).await,
                2 => self.deploy(&self.opts.app_stack, &account).await,
                3 => self.register().await,
                4 => self.deploy(&self.opts.serverless_stack, &account).await,
                _ => self.variables().await,
            };
            match result {
                Ok(outcome) => {
                    (self.say)(&format!(
                        "step {}/{} {title}: {outcome}",
                        i + 1,
                        STEPS.len()
                    ));
                    outcomes.push(outcome);
                }
                Err(e) => {
                    (self.say)(&format!(
                        "step {}/{} {title}: failed: {e:#}",
                        i + 1,
                        STEPS.len()
                    ));
                    return Err(e.context(format!("step {} ({title})", i + 1)));
                }
            }
        }
        Ok(outcomes)
    }

    async fn bootstrap(
        &self,
        assembly: &CloudAssembly,
        placeholders: &Placeholders,
        account: &str,
    ) -> anyhow::Result<Outcome> {
        let mut parameter: Option<(String, u32)> = None;
        let mut buckets = std::collections::BTreeSet::new();
        for stack in &assembly.stacks {
            if let Some(name) = &stack.bootstrap_version_parameter {
                let required = stack.requires_bootstrap_version.unwrap_or(1);
                let needed = parameter.as_ref().map_or(0, |(_, r)| *r).max(required);
                parameter = Some((name.clone(), needed));
            }
            for asset in
                ssm_action::assets::load_assets(&self.opts.cloud_assembly, &stack.asset_manifests)?
            {
                buckets.extend(
                    asset
                        .destinations
                        .iter()
                        .map(|d| placeholders.fill(&d.bucket)),
                );
            }
        }
        let parameter = match parameter {
            Some((name, required)) => {
                let value = match self.ssm.get_parameter().name(&name).send().await {
                    Ok(out) => out
                        .parameter
                        .and_then(|p| p.value)
                        .and_then(|v| v.parse().ok()),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_parameter_not_found()) =>
                    {
                        None
                    }
                    Err(e) => bail!("reading {name}: {}", ssm_action::aws_error(&e)),
                };
                Some((name, required, value))
            }
            None => None,
        };
        let mut found = BootstrapFound {
            parameter,
            buckets: Vec::new(),
        };
        for bucket in buckets {
            let exists = self
                .clients
                .s3
                .head_bucket()
                .bucket(&bucket)
                .send()
                .await
                .is_ok();
            found.buckets.push((bucket, exists));
        }
        let what = install::check_bootstrap(&found, account, &self.opts.region)
            .map_err(anyhow::Error::msg)?;
        Ok(Outcome::Skipped(format!("in place ({what})")))
    }

    /// One stack through the deploy Action's change-set deploy, with this run's credentials.
    async fn deploy(&self, stack: &str, account: &str) -> anyhow::Result<Outcome> {
        let assembly = self.opts.cloud_assembly.display().to_string();
        let inputs = ActionInputs::from_env([
            ("INPUT_MODE", "apply"),
            ("INPUT_AWS-REGION", self.opts.region.as_str()),
            ("INPUT_CLOUD-ASSEMBLY", assembly.as_str()),
            ("INPUT_STACKS", stack),
            ("INPUT_ROLE-SESSION-NAME", "ssm-install"),
            // A stack whose first creation failed (ROLLBACK_COMPLETE) can only be deleted: the
            // install deletes it and creates it again, so a fixed cause is one more run away.
            ("INPUT_ALLOW-RECREATE", "true"),
        ])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let roles = RoleClients::fixed(self.clients.clone());
        let summary = ssm_action::run::run(&inputs, &Runner::default(), &roles, account).await?;
        let report = &summary
            .stacks
            .first()
            .with_context(|| format!("the deploy of {stack} reported nothing"))?
            .report;
        Ok(
            if report.changes.is_empty() && report.change_set_type == "UPDATE" {
                Outcome::Skipped(format!("{stack} is up to date (empty change set)"))
            } else {
                let verb = if report.change_set_type == "CREATE" {
                    "created"
                } else {
                    "updated"
                };
                Outcome::Done(format!(
                    "{stack} {verb} ({} change(s)), {}",
                    report.changes.len(),
                    report.status
                ))
            },
        )
    }

    async fn outputs(&self, stack: &str) -> anyhow::Result<BTreeMap<String, String>> {
        let found = ssm_action::deploy::describe_stack(&self.clients.cloudformation, stack)
            .await?
            .with_context(|| format!("stack {stack} does not exist"))?;
        Ok(found
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key.clone()?, o.output_value.clone()?)))
            .collect())
    }

    /// Whether the secret `id` has been written since the App stack created it.
    async fn written(&self, id: &str) -> anyhow::Result<bool> {
        let described = self
            .clients
            .secretsmanager
            .describe_secret()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("DescribeSecret {id}: {}", ssm_action::aws_error(&e)))?;
        let versions: BTreeMap<String, Vec<String>> = described
            .version_ids_to_stages
            .unwrap_or_default()
            .into_iter()
            .collect();
        Ok(install::written_since_creation(&versions))
    }

    async fn register(&self) -> anyhow::Result<Outcome> {
        let stack = &self.opts.app_stack;
        let outputs = self.outputs(stack).await?;
        let output = |key: &str| {
            outputs
                .get(key)
                .cloned()
                .with_context(|| format!("stack {stack} has no output {key}"))
        };
        let (key_secret, hook_secret) =
            (output("PrivateKeySecretArn")?, output("WebhookSecretArn")?);
        if self.written(&key_secret).await? && self.written(&hook_secret).await? {
            return Ok(Outcome::Skipped(format!(
                "already registered (both secrets of {stack} were written after the stack created them)"
            )));
        }
        let webhook_url =
            url::Url::parse(&output("WebhookUrl")?).context("the WebhookUrl output")?;
        let setup = ssm_app::setup::SetupOpts {
            github: self.opts.github.clone(),
            webhook_url,
            secret_prefix: String::new(),
            private_key_secret_id: Some(key_secret),
            webhook_secret_id: Some(hook_secret),
            listen: self.opts.listen,
        };
        let server =
            ssm_app::setup::SetupServer::build(&setup, self.clients.secretsmanager.clone())?;
        let handle = server.server.handle();
        let serving = tokio::spawn(server.server);
        let page = format!("http://127.0.0.1:{}/", server.port);
        (self.say)(&format!(
            "Open {page} in a browser signed in to GitHub (the account or organization that will own the App) and confirm the App."
        ));
        let registered = async {
            if let Some(confirm) = self.confirm {
                confirm(page.clone()).await?;
            }
            tokio::time::timeout(
                Duration::from_secs(self.opts.registration_timeout_secs),
                server.registered,
            )
            .await
            .context("no registration within the timeout; run the install again to resume")?
            .context("the registration page stopped before a registration")
        }
        .await;
        // Let the browser receive its answer before stopping.
        tokio::time::sleep(Duration::from_millis(200)).await;
        handle.stop(true).await;
        drop(serving);
        let app = registered?;
        Ok(Outcome::Done(format!(
            "registered App {} (id {}), its key and webhook secret stored in {stack}'s secrets; \
             now install it on the repository: {}/installations/new",
            app.slug, app.app_id, app.html_url
        )))
    }

    async fn variables(&self) -> anyhow::Result<Outcome> {
        let outputs = self.outputs(&self.opts.oidc_stack).await?;
        let vars = install::repository_variables(&outputs, &self.opts.region)
            .map_err(anyhow::Error::msg)?;
        (self.say)(
            "Set these repository variables (Settings → Secrets and variables → Actions → Variables, or `gh variable set NAME --body VALUE`):",
        );
        for (name, value) in &vars {
            (self.say)(&format!("  {name}={value}"));
        }
        Ok(Outcome::Done(format!(
            "{} repository variables printed",
            vars.len()
        )))
    }
}

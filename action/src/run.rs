//! A whole run: each selected stack in dependency order — publish its assets, deploy its change
//! set, check Lambda code when reconciling — then the outputs and the job summary.

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use ssm_core::deploy::assembly::{CloudAssembly, Placeholders};
use ssm_core::deploy::report::{METRIC_ASSET_TAMPERED, METRIC_UNREVERTABLE_DRIFT, StackReport};
use ssm_core::deploy::stack::change_set_name;
use ssm_core::deploy::{ActionInputs, Mode};

use crate::assets;
use crate::clients::RoleClients;
use crate::deploy::{self, StackOutcome, Template};
use crate::metrics;
use crate::reconcile;
use crate::runner::{self, Runner};
use crate::undeclared;

/// What the run did, stack by stack.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub stacks: Vec<StackOutcome>,
}

impl RunSummary {
    /// Whether any stack failed to deploy.
    pub fn failed(&self) -> bool {
        self.stacks.iter().any(|s| s.failed)
    }

    /// Asset objects found overwritten, over all stacks.
    pub fn tampered(&self) -> usize {
        self.stacks.iter().map(|s| s.report.tampered.len()).sum()
    }

    /// Undeclared additions left in place, over all stacks.
    pub fn unrevertable(&self) -> usize {
        self.stacks
            .iter()
            .map(|s| s.report.unrevertable.len())
            .sum()
    }

    /// Emits the alarm metrics of what the run found, per stack.
    pub async fn emit_metrics(&self, cloudwatch: &aws_sdk_cloudwatch::Client) {
        for s in &self.stacks {
            if !s.report.unrevertable.is_empty() {
                metrics::put(
                    cloudwatch,
                    METRIC_UNREVERTABLE_DRIFT,
                    &s.report.stack_name,
                    s.report.unrevertable.len(),
                )
                .await;
            }
            if !s.report.tampered.is_empty() {
                metrics::put(
                    cloudwatch,
                    METRIC_ASSET_TAMPERED,
                    &s.report.stack_name,
                    s.report.tampered.len(),
                )
                .await;
            }
        }
    }

    /// The Action's outputs.
    pub fn outputs(&self) -> Vec<(String, String)> {
        let last = self.stacks.last();
        let has_changes = self.stacks.iter().any(|s| s.report.has_changes());
        let count: usize = self.stacks.iter().map(|s| s.report.changes.len()).sum();
        let markdown: String = self
            .stacks
            .iter()
            .map(|s| s.report.changes_markdown())
            .collect::<Vec<_>>()
            .join("\n");
        let mut drifted: Vec<String> = Vec::new();
        for s in &self.stacks {
            for d in &s.report.drift {
                let id = format!("{}/{}", s.report.stack_name, d.logical_id);
                if !drifted.contains(&id) {
                    drifted.push(id);
                }
            }
        }
        let mut out = vec![
            (
                "stack-id".to_owned(),
                last.and_then(|s| s.stack_id.clone()).unwrap_or_default(),
            ),
            (
                "change-set-id".to_owned(),
                last.and_then(|s| s.change_set_id.clone())
                    .unwrap_or_default(),
            ),
            ("has-changes".to_owned(), has_changes.to_string()),
            ("changes-count".to_owned(), count.to_string()),
            ("changes-markdown".to_owned(), markdown),
            (
                "drifted-resources".to_owned(),
                serde_json::Value::from(drifted).to_string(),
            ),
            (
                "unrevertable-drift".to_owned(),
                serde_json::to_string(
                    &self
                        .stacks
                        .iter()
                        .flat_map(|s| &s.report.unrevertable)
                        .collect::<Vec<_>>(),
                )
                .unwrap_or_else(|_| "[]".into()),
            ),
        ];
        for s in &self.stacks {
            for (k, v) in &s.report.outputs {
                out.push((ssm_core::deploy::github::output_name(k), v.clone()));
            }
        }
        out
    }

    /// The job summary.
    pub fn markdown(&self, mode: Mode, error: Option<&str>) -> String {
        let mut md = format!("## Serverless SSM deploy — `{mode}`\n\n");
        for s in &self.stacks {
            md.push_str(&s.report.markdown());
            md.push('\n');
        }
        if let Some(e) = error {
            md.push_str(&format!(
                "> [!CAUTION]\n> The run failed: {}\n",
                ssm_core::deploy::report::cell(e)
            ));
        }
        md
    }
}

/// The cloud assembly in `dir` (its `manifest.json`).
pub fn load_assembly(dir: &Path) -> anyhow::Result<CloudAssembly> {
    let path = dir.join("manifest.json");
    let manifest = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (synthesize first: `cdk synth`, bash scripts/synth.sh; or set `cloud-assembly`)",
            path.display()
        )
    })?;
    Ok(CloudAssembly::parse(&manifest)?)
}

/// Deploys the assembly. Outputs and the summary are written even when a stack fails.
pub async fn run(
    inputs: &ActionInputs,
    runner: &Runner,
    roles: &RoleClients,
    account: &str,
) -> anyhow::Result<RunSummary> {
    let mut summary = RunSummary::default();
    let result = run_stacks(inputs, runner, roles, account, &mut summary).await;
    let error = result.as_ref().err().map(|e| format!("{e:#}"));
    let failed = summary.failed();
    runner::write_outputs(runner, &summary.outputs())?;
    runner::write_summary(runner, &summary.markdown(inputs.mode, error.as_deref()))?;
    summary
        .emit_metrics(&roles.for_role(None).await.cloudwatch)
        .await;
    result?;
    if failed {
        anyhow::bail!(
            "the deployment failed; the failing resources are listed above and in the job summary"
        );
    }
    let unrevertable = summary.unrevertable();
    if unrevertable > 0 {
        anyhow::bail!(
            "{unrevertable} change(s) CloudFormation cannot revert are in place (output `unrevertable-drift`); \
             remove them by hand: see the annotations and the job summary"
        );
    }
    let tampered = summary.tampered();
    if tampered > 0 {
        anyhow::bail!(
            "{tampered} asset object(s) in the bucket held other bytes than this commit builds; they were restored, \
             but someone wrote to the assets bucket: see the annotations and the job summary"
        );
    }
    Ok(summary)
}

async fn run_stacks(
    inputs: &ActionInputs,
    runner: &Runner,
    roles: &RoleClients,
    account: &str,
    summary: &mut RunSummary,
) -> anyhow::Result<()> {
    let dir = Path::new(&inputs.cloud_assembly);
    let assembly = load_assembly(dir)?;
    let stacks = assembly.select(&inputs.stacks)?;
    let placeholders = Placeholders::new(account, &inputs.aws_region);
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let ctx = deploy::Context {
        inputs,
        assembly_dir: dir,
        placeholders: &placeholders,
        roles,
        change_set_name: change_set_name(
            inputs.mode.as_str(),
            runner.run_id.as_deref(),
            runner.run_attempt.as_deref(),
            &nonce[..8],
        ),
    };
    for artifact in stacks {
        let t0 = Instant::now();
        let file_assets = assets::load_assets(dir, &artifact.asset_manifests)?;
        let packaged = assets::Packaged::build(dir, &file_assets)?;
        // A plan writes nothing: the change set gets the template inline and CloudFormation does
        // not read the code objects until a change set is executed.
        let published = if inputs.mode == Mode::Plan {
            assets::Published::default()
        } else {
            let _g = runner::Group::start(&format!(
                "{}: publishing {} asset(s)",
                artifact.stack_name,
                file_assets.len()
            ));
            assets::publish(&file_assets, &packaged, &placeholders, roles).await?
        };
        let publish_ms = t0.elapsed().as_millis();
        let template = Template::load(dir, artifact)?;
        let mut outcome = match deploy::deploy_stack(&ctx, artifact, &template).await {
            Ok(o) => o,
            Err(e) => {
                // Tampering found while publishing is reported (and its metric emitted) even when
                // the deployment cannot go on.
                summary.stacks.push(StackOutcome {
                    report: StackReport {
                        stack_name: artifact.stack_name.clone(),
                        mode: inputs.mode.to_string(),
                        tampered: published.tampered,
                        ..StackReport::default()
                    },
                    failed: true,
                    ..StackOutcome::default()
                });
                return Err(e);
            }
        };
        outcome.report.assets_uploaded = published.uploaded;
        outcome.report.assets_skipped = published.skipped;
        outcome.report.tampered = published.tampered;
        outcome
            .report
            .timings
            .insert(0, ("publish".into(), publish_ms));
        if inputs.mode == Mode::Reconcile && !outcome.failed {
            let t1 = Instant::now();
            let _g = runner::Group::start(&format!(
                "{}: Lambda code and undeclared additions",
                artifact.stack_name
            ));
            let sources = reconcile::code_sources(&template.json, &file_assets, &placeholders);
            let role = artifact
                .assume_role_arn
                .as_deref()
                .map(|r| placeholders.fill(r));
            let cfn = roles.for_role(role.as_deref()).await.cloudformation;
            let lambda = roles.for_role(None).await.lambda;
            let restored = reconcile::restore_lambda_code(
                &artifact.stack_name,
                &sources,
                &packaged,
                &cfn,
                &lambda,
            )
            .await?;
            outcome.report.drift.extend(restored);
            let base = roles.for_role(None).await;
            let findings = undeclared::check(
                &artifact.stack_name,
                &template.json,
                &placeholders,
                &undeclared::CheckClients {
                    cloudformation: &cfn,
                    secretsmanager: &base.secretsmanager,
                    lambda: &base.lambda,
                },
            )
            .await?;
            outcome.report.drift.extend(findings.reverted);
            outcome.report.unrevertable = findings.unrevertable;
            outcome
                .report
                .timings
                .push(("code check".into(), t1.elapsed().as_millis()));
        }
        outcome
            .report
            .timings
            .push(("total".into(), t0.elapsed().as_millis()));
        let failed = outcome.failed;
        summary.stacks.push(outcome);
        if failed {
            // Later stacks may depend on this one; stop here.
            break;
        }
    }
    Ok(())
}

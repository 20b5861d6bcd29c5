//! How a deploy is run: `ssm-action` as the runner would start it for the workflow, with OIDC
//! for credentials and AWS pointed at moto, and what the run left behind.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use tokio::process::Command;

use super::{ACCOUNT, Options};
use crate::procs::Proc;

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
pub(super) async fn run_action_with(
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

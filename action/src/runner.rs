//! The GitHub runner's side of the protocol: the environment it gives the Action, the files it
//! reads back (`$GITHUB_OUTPUT`, `$GITHUB_STEP_SUMMARY`) and workflow commands on stdout.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use secrecy::SecretString;
use ssm_core::deploy::github;

/// Where to ask for an OIDC token (`ACTIONS_ID_TOKEN_REQUEST_URL` / `_TOKEN`).
#[derive(Debug, Clone)]
pub struct OidcRequest {
    pub url: String,
    pub bearer: SecretString,
}

/// What the runner provides besides the inputs.
#[derive(Debug, Clone, Default)]
pub struct Runner {
    pub output_file: Option<PathBuf>,
    pub summary_file: Option<PathBuf>,
    pub run_id: Option<String>,
    pub run_attempt: Option<String>,
    pub oidc: Option<OidcRequest>,
}

impl Runner {
    /// Reads the runner's variables from an environment snapshot.
    pub fn from_env(env: &BTreeMap<String, String>) -> Self {
        let get = |k: &str| env.get(k).filter(|v| !v.trim().is_empty()).cloned();
        let oidc = match (
            get("ACTIONS_ID_TOKEN_REQUEST_URL"),
            get("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
        ) {
            (Some(url), Some(token)) => Some(OidcRequest {
                url,
                bearer: SecretString::from(token),
            }),
            _ => None,
        };
        Runner {
            output_file: get("GITHUB_OUTPUT").map(PathBuf::from),
            summary_file: get("GITHUB_STEP_SUMMARY").map(PathBuf::from),
            run_id: get("GITHUB_RUN_ID"),
            run_attempt: get("GITHUB_RUN_ATTEMPT"),
            oidc,
        }
    }
}

/// Whether workflow commands are written (the default); off for a person's terminal.
static WORKFLOW_COMMANDS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turns workflow commands (groups, masks, annotations) off for the rest of the process: the
/// install command (`ssm-install`) deploys through this crate in a person's terminal, where a
/// `::add-mask::` line would print the very secret it is meant to hide.
pub fn disable_workflow_commands() {
    WORKFLOW_COMMANDS.store(false, std::sync::atomic::Ordering::Relaxed);
}

/// Writes one workflow command line to stdout, where the runner looks for them.
pub fn command(line: &str) {
    if !WORKFLOW_COMMANDS.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    // A closed stdout leaves nothing to report to; the run itself goes on.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Asks the runner to mask a secret in every later log line.
pub fn mask(secret: &str) {
    if !secret.is_empty() {
        command(&github::mask_command(secret));
    }
}

/// An `::error::` annotation.
pub fn error(title: &str, message: &str) {
    command(&github::error_command(title, message));
}

/// A `::warning::` annotation.
pub fn warning(title: &str, message: &str) {
    command(&github::warning_command(title, message));
}

/// A collapsible log section; ends when dropped.
#[derive(Debug)]
pub struct Group;

impl Group {
    pub fn start(title: &str) -> Self {
        command(&format!("::group::{}", github::escape_data(title)));
        Group
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        command("::endgroup::");
    }
}

/// Appends outputs to `$GITHUB_OUTPUT` (heredoc form, multi-line safe). Without the file (local
/// runs) they go to the log instead.
pub fn write_outputs(runner: &Runner, outputs: &[(String, String)]) -> anyhow::Result<()> {
    let mut text = String::new();
    for (name, value) in outputs {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        text.push_str(&github::output_entry(name, value, &nonce));
    }
    match &runner.output_file {
        Some(path) => {
            append(path, &text).with_context(|| format!("writing outputs to {}", path.display()))
        }
        None => {
            for (name, value) in outputs {
                tracing::info!(output = %name, %value, "output (no GITHUB_OUTPUT set)");
            }
            Ok(())
        }
    }
}

/// Appends Markdown to `$GITHUB_STEP_SUMMARY` if the runner gave one.
pub fn write_summary(runner: &Runner, markdown: &str) -> anyhow::Result<()> {
    match &runner.summary_file {
        Some(path) => append(path, markdown)
            .with_context(|| format!("writing the job summary to {}", path.display())),
        None => Ok(()),
    }
}

fn append(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())
}

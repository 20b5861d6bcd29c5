//! The sandbox's first install: the install command (`ssm-install`) a user runs, against moto and
//! the GitHub emulator, each of its steps in the timeline; the App's registration page confirmed
//! as a person would in a browser (the emulator's new-App form, then its conversion endpoint);
//! then `ssm-app` started from its deployed stack: the function's environment as moto holds it
//! and its secrets in moto, with only the public endpoints pointed at loopback.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use aws_config::SdkConfig;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

use crate::procs::{self, Proc};
use crate::runtime::extract_bootstrap;
use crate::system::{Journal, Options, asset_zips, deployed_functions};

/// The GitHub App stack's name (the CDK app's default `appStackName`).
pub const APP_STACK: &str = "SsmGitHubApp";

/// Runs `ssm-install` to completion; every line it prints becomes a timeline mark, and its
/// registration page is confirmed through the emulator. Fails with the install's own words.
pub async fn run(
    opts: &Options,
    moto: &str,
    github: &str,
    journal: &Journal,
) -> anyhow::Result<()> {
    let log = opts.work.join("logs/ssm-install.log");
    let stderr =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut cmd = Command::new(opts.bin_dir.join("ssm-install"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", moto)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", &opts.region)
        .arg(format!("--cloud-assembly={}", opts.assembly.display()))
        .arg(format!("--serverless-stack={}", opts.stack))
        .arg(format!("--app-stack={APP_STACK}"))
        .arg(format!("--github-url={github}"))
        .arg(format!("--github-api-url={github}"))
        .arg("--listen=127.0.0.1:0")
        .arg("--registration-timeout-secs=60")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("starting ssm-install")?;
    let stdout = child.stdout.take().context("ssm-install's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut browser = None;
    let mut said = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await? {
            journal.mark(format!("install: {line}"));
            if let Some(page) = line
                .strip_prefix("Open ")
                .and_then(|r| r.split_whitespace().next())
            {
                let page = page.to_owned();
                browser = Some(tokio::spawn(async move {
                    ssm_testkit::github::confirm_setup_page(&page).await
                }));
            }
            said.push(line);
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(600), read)
        .await
        .context("ssm-install did not finish within 10 minutes")??;
    let status = child.wait().await?;
    if let Some(browser) = browser {
        browser
            .await?
            .map_err(|e| anyhow::anyhow!("confirming the App's registration page: {e}"))?;
    }
    if !status.success() {
        bail!(
            "ssm-install failed ({status}): {}; its log: {}",
            said.last().map_or("", String::as_str),
            log.display()
        );
    }
    Ok(())
}

/// `ssm-app` as its deployed function runs it: the `bootstrap` of the function's code in moto
/// (the Web Adapter, which only forwards HTTP, is left out), the function's environment from
/// moto, its secrets read from moto, and the public GitHub and STS endpoints pointed at the
/// emulator and moto.
pub async fn start_app(
    opts: &Options,
    aws: &SdkConfig,
    moto: &str,
    github: &str,
) -> anyhow::Result<(Proc, String)> {
    let functions = deployed_functions(aws, APP_STACK).await?;
    let app = functions
        .iter()
        .find(|(id, _)| id.starts_with("AppFunction"))
        .map(|(_, d)| d)
        .with_context(|| format!("the stack {APP_STACK} has no App function"))?;
    let env: &BTreeMap<String, String> = &app.env;
    // The bootstrap of the code moto holds for the function: the zip that ships.
    let zip = asset_zips(&opts.assembly)?
        .remove(&app.code_sha256)
        .with_context(|| {
            format!(
                "no asset of the assembly is the App function's code ({})",
                app.code_sha256
            )
        })?;
    let bytes = std::fs::read(&zip).with_context(|| format!("reading {}", zip.display()))?;
    let bootstrap = extract_bootstrap(&bytes, &opts.work.join("functions/app"))?;
    let port = procs::free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(bootstrap);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        // What Lambda gives every function, and what the sandbox serves on loopback.
        .env("AWS_REGION", &opts.region)
        .env("AWS_ENDPOINT_URL", moto)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("SSM_APP_LISTEN", format!("127.0.0.1:{port}"))
        .env("GITHUB_API_URL", github)
        .env("SSM_STS_ENDPOINT", moto);
    let mut app = Proc::spawn("ssm-app", cmd, &opts.work.join("logs/ssm-app.log"))?;
    app.wait_http(&format!("{url}/healthz"), Duration::from_secs(20))
        .await?;
    Ok((app, url))
}

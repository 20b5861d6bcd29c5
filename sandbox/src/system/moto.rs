//! How moto is made ready: started (or found at `AWS_ENDPOINT_URL`), told not to run functions
//! itself, and given the part of `cdk bootstrap` the Action needs.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use aws_config::SdkConfig;
use serde_json::json;
use tokio::process::Command;

use super::{ACCOUNT, Options, aws_error};
use crate::procs::{self, Proc};

/// The CDK bootstrap qualifier the assembly's asset manifest names.
const QUALIFIER: &str = "hnb659fds";

pub(super) async fn start_moto(opts: &Options) -> anyhow::Result<(Proc, String)> {
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
pub(super) async fn moto_config(moto: &str) -> anyhow::Result<()> {
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
pub(super) async fn bootstrap(aws: &SdkConfig, region: &str) -> anyhow::Result<()> {
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

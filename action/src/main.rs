//! `ssm-action`: the container Action's entrypoint. Reads the inputs GitHub passes as `INPUT_*`
//! variables (names keep their dashes, so they are read with `vars_os`, not through a shell),
//! resolves credentials, and deploys.

use std::collections::BTreeMap;
use std::process::ExitCode;

use ssm_action::clients::RoleClients;
use ssm_action::runner::{self, Runner};
use ssm_action::{credentials, run};
use ssm_core::deploy::ActionInputs;

fn environment() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

// One thread: the run is a sequence of AWS calls, so worker threads (one per CPU, each with its
// own stack and malloc arena) would only add memory.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    if std::env::args().skip(1).eq(["--version"]) {
        let line = format!("ssm-action {}\n", env!("CARGO_PKG_VERSION"));
        let _ = std::io::Write::write_all(&mut std::io::stdout(), line.as_bytes());
        return ExitCode::SUCCESS;
    }
    ssm_telemetry::init_cli(
        "SSM_ACTION_LOG",
        "info,aws_config=warn,aws_smithy_runtime=warn",
    );

    let env = environment();
    let inputs = match ActionInputs::from_env(&env) {
        Ok(inputs) => inputs,
        Err(e) => {
            runner::error("ssm-action: inputs", &e.to_string());
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runner = Runner::from_env(&env);
    match deploy(&inputs, &runner).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            runner::error("ssm-action", &format!("{e:#}"));
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn deploy(inputs: &ActionInputs, runner: &Runner) -> anyhow::Result<()> {
    let config = credentials::sdk_config(inputs, runner).await?;
    let account = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("no usable AWS credentials: {}", ssm_action::aws_error(&e)))?
        .account
        .ok_or_else(|| anyhow::anyhow!("GetCallerIdentity returned no account"))?;
    tracing::info!(%account, region = %inputs.aws_region, mode = %inputs.mode, "deploying");
    let roles = RoleClients::assuming(&config, &inputs.role_session_name);
    run::run(inputs, runner, &roles, &account).await?;
    Ok(())
}

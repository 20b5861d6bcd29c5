//! `ssm-app`: parse typed config, set up tracing, build the server, run it.

use anyhow::Context;
use clap::Parser;
use ssm_app::{Application, Opts, secrets, telemetry};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let opts = Opts::parse();
    telemetry::init(opts.log_format);
    let settings = secrets::load_settings(opts)
        .await
        .context("loading configuration")?;
    let app = Application::build(settings).context("starting the server")?;
    app.run_until_stopped().await.context("server failed")
}

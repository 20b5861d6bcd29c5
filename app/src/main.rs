//! `ssm-app`: parse typed config, set up tracing, build the server, run it; `ssm-app setup`
//! registers the GitHub App (see `setup`).

use anyhow::Context;
use clap::Parser;
use ssm_app::config::LogFormat;
use ssm_app::{Application, Opts, secrets, setup, telemetry};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("setup") {
        telemetry::init(LogFormat::Text);
        let opts = setup::SetupOpts::parse_from(std::env::args().skip(1));
        return setup::run(opts).await;
    }
    let opts = Opts::parse();
    telemetry::init(opts.log_format);
    let settings = secrets::load_settings(opts)
        .await
        .context("loading configuration")?;
    let app = Application::build(settings).context("starting the server")?;
    app.run_until_stopped().await.context("server failed")
}

//! `ssm-install`: parse the options, set up logging, build the AWS configuration, run the
//! install (see the library). Exit 0 once every step is done or skipped, 1 otherwise.

use std::io::Write as _;
use std::process::ExitCode;

use aws_config::Region;
use clap::Parser as _;
use ssm_install::{InstallOpts, Installer};

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // A closed stdout leaves no one to tell; the install itself goes on.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> ExitCode {
    let opts = InstallOpts::parse();
    ssm_telemetry::init_cli(
        "SSM_INSTALL_LOG",
        "info,aws_config=warn,aws_smithy_runtime=warn",
    );
    let aws = ssm_sdk_http::sdk_config_loader()
        .region(Region::new(opts.region.clone()))
        .load()
        .await;
    match Installer::new(&opts, &aws, &say, None).run().await {
        Ok(_) => {
            say(
                "Installed. Next: install the App on the repository (if not yet), set the variables above, push to main.",
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            say(&format!(
                "error: {e:#}\nFix the cause and run ssm-install again: it resumes where it stopped."
            ));
            ExitCode::FAILURE
        }
    }
}

//! `ssm-keyring`: show, create, rotate, retire and trim keyring versions.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use ssm_rotation::keyring_cli::{Command, run};

#[derive(Debug, Parser)]
#[command(
    name = "ssm-keyring",
    version,
    about = "Manage the Serverless SSM keyring (file or Secrets Manager secret)"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args.command, ssm_keystore::secrets_client).await {
        Ok(text) => {
            let _ = std::io::stdout().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("ssm-keyring: {error:#}");
            ExitCode::FAILURE
        }
    }
}

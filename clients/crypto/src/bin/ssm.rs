//! `ssm`: the Crypto API from a shell. See `ssm --help` and docs/callers.md.

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    ssm_client::cli::run(ssm_client::cli::Cli::parse()).await
}

//! The Crypto API over plain HTTP on this machine, for development and tests.
//!
//! Keyring: `SSM_KEYRING_FILE` if set; else the secret `SSM_KEY_SECRET_ID` (so
//! `AWS_ENDPOINT_URL` can point at an emulator); else a development keyring created on first
//! run at `--dev-keyring` (default `.dev/keyring.json`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use ssm_crypto::config::ServiceArgs;
use ssm_crypto::{Service, local};
use ssm_keystore::{KeySource, KeyringCache};

#[derive(Debug, Parser)]
#[command(
    name = "ssm-crypto-local",
    version,
    about = "Serve the Serverless SSM Crypto API locally"
)]
struct Args {
    /// Address to listen on (loopback by default).
    #[arg(long, env = "SSM_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Development keyring used when neither a file nor a secret is configured.
    #[arg(long, env = "SSM_DEV_KEYRING", default_value = ".dev/keyring.json")]
    dev_keyring: PathBuf,
    #[command(flatten)]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ssm_telemetry::init_lambda();
    let args = Args::parse();
    let source = match args.service.source().await {
        Some(source) => source,
        None => {
            let created = ssm_keystore::ensure_dev_keyring(&args.dev_keyring).await?;
            let path = std::fs::canonicalize(&args.dev_keyring)?;
            eprintln!(
                "ssm-crypto-local: {} development keyring {} (set SSM_KEYRING_FILE or SSM_KEY_SECRET_ID to use another)",
                if created { "created" } else { "using" },
                path.display()
            );
            KeySource::File(path)
        }
    };
    let cache = Arc::new(KeyringCache::new(source, args.service.cache_policy()));
    cache.get().await.context("loading the keyring")?;
    let service = Arc::new(Service::new(cache, args.service.limits()));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    eprintln!(
        "ssm-crypto-local: listening on http://{}",
        listener.local_addr()?
    );
    local::serve(listener, service, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

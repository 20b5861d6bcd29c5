//! The Crypto API over plain HTTP on this machine, for development and tests.
//!
//! The `default` key's keyring: `SSM_KEYRING_FILE` if set; else the secret `SSM_KEY_SECRET_ID`
//! (so `AWS_ENDPOINT_URL` can point at an emulator); else a development keyring created on first
//! run at `--dev-keyring` (default `.dev/keyring.json`). Other keys: `--key name=FILE`,
//! `SSM_KEYRINGS` (`name=secretId,…`), or `--dev-key name` (`SSM_DEV_KEYS=a,b`): a development
//! keyring per name beside the default one (`.dev/keyring-{name}.json`), created on first run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use ssm_core::keyname::KeyName;
use ssm_crypto::config::ServiceArgs;
use ssm_crypto::{Service, local};
use ssm_keystore::KeySource;

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
    /// Named keys served from development keyrings beside `--dev-keyring`, created on first run
    /// (repeatable; comma-separated in the variable).
    #[arg(long = "dev-key", env = "SSM_DEV_KEYS", value_delimiter = ',')]
    dev_keys: Vec<KeyName>,
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
    let mut named = args
        .service
        .named_sources()
        .await
        .map_err(anyhow::Error::msg)?;
    for name in &args.dev_keys {
        if name.is_default() || named.iter().any(|(seen, _)| seen == name) {
            anyhow::bail!("--dev-key {name}: that key is already configured");
        }
        let path = args
            .dev_keyring
            .with_file_name(format!("keyring-{name}.json"));
        ssm_keystore::ensure_dev_keyring(&path).await?;
        named.push((*name, KeySource::File(std::fs::canonicalize(&path)?)));
    }
    let service = Service::from_sources(
        source,
        named,
        args.service.cache_policy(),
        args.service.limits(),
    );
    service
        .keyring()
        .get()
        .await
        .context("loading the keyring")?;
    eprintln!(
        "ssm-crypto-local: keys {}",
        service
            .key_names()
            .iter()
            .map(KeyName::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let service = Arc::new(service);
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

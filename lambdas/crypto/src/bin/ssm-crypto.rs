//! The Crypto API Lambda (`bootstrap`): API Gateway HTTP API payload v2 events.

use std::convert::Infallible;
use std::sync::Arc;

use clap::Parser;
use ssm_crypto::config::ServiceArgs;
use ssm_crypto::{Service, lambda};

#[derive(Debug, Parser)]
#[command(
    name = "ssm-crypto",
    version,
    about = "Serverless SSM Crypto API Lambda"
)]
struct Args {
    #[command(flatten)]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ssm_telemetry::init_lambda();
    let args = Args::parse();
    let source = args.service.lambda_source()?.ok_or(
        "set SSM_KEY_SECRET_ID (or SSM_KEYRING_FILE) to say where the default key's keyring is",
    )?;
    let named = args.service.lambda_named_sources()?;
    let service = Service::from_sources(
        source,
        named,
        args.service.cache_policy(),
        args.service.limits(),
    );
    // Load the default key during init so its first request doesn't pay for it (a failure
    // here is retried by the first request rather than crashing the environment). Other keys
    // load on their first request: init costs what it cost with one key.
    if let Err(error) = service.keyring().get().await {
        tracing::warn!(%error, "keyring not loaded during init");
    }
    let service = Arc::new(service);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<lambda::HttpApiEvent>| {
            let service = service.clone();
            async move { Ok::<_, Infallible>(lambda::handle(&service, event.payload).await) }
        },
    ))
    .await
}

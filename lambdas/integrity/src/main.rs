//! The integrity Lambda's entry point: typed configuration, clients, then the runtime loop.

use clap::Parser;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use ssm_integrity::Config;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Honours AWS_LAMBDA_LOG_FORMAT=JSON and AWS_LAMBDA_LOG_LEVEL.
    ssm_telemetry::init_lambda();
    let config = Config::parse();
    let aws = ssm_integrity::app::aws_config().await;
    let handler = ssm_integrity::app::build(&config, &aws).await?;
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handler.handle(event.payload).await
    }))
    .await
}

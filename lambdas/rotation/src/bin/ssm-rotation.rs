//! The keyring's Secrets Manager rotation Lambda.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use ssm_rotation::{RotationEvent, Rotator};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // The Lambda runtime starts the bootstrap without arguments.
    if std::env::args().skip(1).eq(["--version"]) {
        let line = format!("ssm-rotation {}\n", env!("CARGO_PKG_VERSION"));
        let _ = std::io::Write::write_all(&mut std::io::stdout(), line.as_bytes());
        return Ok(());
    }
    ssm_telemetry::init_lambda();
    let rotator = Rotator::new(ssm_keystore::lambda_secrets_client()?);
    lambda_runtime::run(service_fn(|event: LambdaEvent<RotationEvent>| {
        let rotator = rotator.clone();
        async move {
            rotator
                .handle(&event.payload)
                .await
                .map(|_| ())
                .inspect_err(|error| tracing::error!(%error, "rotation step failed"))
                .map_err(Diagnostic::from)
        }
    }))
    .await
}

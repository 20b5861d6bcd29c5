//! Secrets Manager's side of a secret rotation, for tests and the sandbox, which call a rotation
//! function's steps themselves (moto's `RotateSecret` without Docker runs no function).

use std::fmt::Display;
use std::future::Future;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use aws_sdk_secretsmanager::types::RotationRulesType;

/// The four steps, by the names the rotation event carries, in the order Secrets Manager calls them.
pub const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];

/// Secrets Manager's start of a rotation: `RotateSecret` under a new client request token with
/// `rotation_lambda_arn` and a 30-day schedule, which enables rotation and stages an empty
/// AWSPENDING version under the token, leaving AWSCURRENT alone. Returns the token.
pub async fn start(
    client: &Client,
    secret: &str,
    rotation_lambda_arn: &str,
) -> Result<String, String> {
    let token = uuid::Uuid::new_v4().to_string();
    client
        .rotate_secret()
        .secret_id(secret)
        .client_request_token(&token)
        .rotation_lambda_arn(rotation_lambda_arn)
        .rotation_rules(
            RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .send()
        .await
        .map_err(|e| format!("RotateSecret {secret}: {}", DisplayErrorContext(&e)))?;
    Ok(token)
}

/// A whole rotation: [`start`], then `step(token, name)` for each of [`STEPS`] in order, as
/// Secrets Manager invokes the function; the first step that fails ends it. Returns the token.
pub async fn rotate<F, Fut, T, E>(
    client: &Client,
    secret: &str,
    rotation_lambda_arn: &str,
    mut step: F,
) -> Result<String, String>
where
    F: FnMut(String, &'static str) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Display,
{
    let token = start(client, secret, rotation_lambda_arn).await?;
    for name in STEPS {
        step(token.clone(), name)
            .await
            .map_err(|e| format!("rotation step {name}: {e}"))?;
    }
    Ok(token)
}

//! The floor for `bench/cold_start.py`: a bare `lambda_runtime` function that answers every
//! API Gateway event with a fixed 200, built with the same profile as the Crypto Lambda. Its
//! cold start is what any Rust function pays before doing its own work.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_event: LambdaEvent<Value>| async {
        Ok::<_, Error>(json!({
            "statusCode": 200,
            "headers": {"content-type": "application/json"},
            "body": "{}",
            "isBase64Encoded": false
        }))
    }))
    .await
}

//! Test support shared by the crates' integration tests.
//!
//! Tests that need an emulator call [`moto_endpoint`]: in a bare `cargo test` without one they
//! print why they skip; under `SSM_REQUIRE_EMULATORS=1` (the README's test command) they fail.

#![expect(clippy::panic, reason = "test support: failing loudly is the point")]

use aws_config::{Region, SdkConfig};
use aws_credential_types::Credentials;

/// The emulator's endpoint (`AWS_ENDPOINT_URL`, set by `scripts/lib.sh: start_moto`), or `None`
/// after printing why `test` is skipped. Panics when `SSM_REQUIRE_EMULATORS=1` and none is set.
pub fn moto_endpoint(test: &str) -> Option<String> {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if emulators_required() => {
            panic!(
                "{test}: SSM_REQUIRE_EMULATORS=1 but AWS_ENDPOINT_URL is not set; run `bash scripts/test.sh`"
            )
        }
        _ => {
            eprintln!(
                "skipping {test}: no AWS emulator (AWS_ENDPOINT_URL unset); `bash scripts/test.sh` runs it"
            );
            None
        }
    }
}

/// Whether the run demands emulators (`SSM_REQUIRE_EMULATORS=1`).
pub fn emulators_required() -> bool {
    std::env::var("SSM_REQUIRE_EMULATORS").as_deref() == Ok("1")
}

/// An SDK config pointed at the emulator with static test credentials.
pub async fn aws_config(endpoint: &str) -> SdkConfig {
    ssm_sdk_http::sdk_config_loader()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::for_tests_with_session_token())
        .load()
        .await
}

/// Credentials of `role_arn` assumed through the emulator's STS (session `session_name`), as an
/// AWS workload would hold them: the identity the broker's tests sign with.
#[cfg(feature = "sts")]
pub async fn assume_role(endpoint: &str, role_arn: &str, session_name: &str) -> Credentials {
    let out = aws_sdk_sts::Client::new(&aws_config(endpoint).await)
        .assume_role()
        .role_arn(role_arn)
        .role_session_name(session_name)
        .send()
        .await
        .expect("the emulator's STS assumes the role");
    let c = out.credentials().expect("AssumeRole returns credentials");
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "emulator-assume-role",
    )
}

#[cfg(feature = "github")]
pub mod github;
pub mod logs;
#[cfg(feature = "rotation")]
pub mod rotation;

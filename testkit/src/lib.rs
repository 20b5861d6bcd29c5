//! Test support shared by the crates' integration tests.
//!
//! Tests that need an emulator call [`moto_endpoint`]: in a bare `cargo test` without one they
//! print why they skip; under `SSM_REQUIRE_EMULATORS=1` (the README's test command) they fail.

#![expect(clippy::panic, reason = "test support: failing loudly is the point")]

use aws_config::{BehaviorVersion, Region, SdkConfig};
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
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::for_tests_with_session_token())
        .load()
        .await
}

#[cfg(feature = "github")]
pub mod github;
pub mod logs;

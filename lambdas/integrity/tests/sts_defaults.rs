//! The seam between the integrity Lambda and the token broker: with both on their DEFAULT
//! configuration, the STS endpoint the Lambda signs its identity for is one the broker accepts,
//! and the broker forwards it to that same host. (Issue 10, point 6: the Lambda signed for the
//! regional endpoint while the broker accepted only the global one, so every dispatch was 401.)

#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail the test"
)]

use std::time::SystemTime;

use aws_credential_types::Credentials;
use clap::Parser;
use ssm_broker_client::BrokerClient;
use ssm_core::broker::{
    ForwardRequest, IdentityError, IdentityExpectations, Policy, SignedIdentityRequest,
    check_identity,
};
use ssm_integrity::Config;
use ssm_testkit::github::TEST_APP_PRIVATE_KEY_PEM;

const AUDIENCE: &str = "ssm-broker.example";

/// The Lambda's configuration as the CDK stack sets it: no `SSM_STS_ENDPOINT`.
fn lambda_config() -> Config {
    Config::try_parse_from([
        "ssm-integrity",
        "--stack-name",
        "SsmServerless",
        "--github-repository",
        "acme/infra",
        "--broker-url",
        "https://broker.example",
        "--broker-audience",
        AUDIENCE,
    ])
    .unwrap()
}

fn contents_write() -> std::collections::BTreeMap<String, String> {
    [("contents".to_owned(), "write".to_owned())].into()
}

/// The Lambda's signed identity request in `region`, from its own factory's settings.
fn lambda_identity(region: &str) -> SignedIdentityRequest {
    let settings = ssm_integrity::app::broker_client_config(&lambda_config(), region);
    let client = BrokerClient::new(settings).unwrap();
    let credentials = Credentials::new("AKIAIOSFODNN7EXAMPLE", "secret", None, None, "test");
    client
        .sign_identity(
            &credentials,
            SystemTime::now(),
            "acme/infra",
            &contents_write(),
        )
        .unwrap()
}

/// The broker's settings with defaults, running in `region`, plus `extra` flags.
fn broker_check(
    region: &str,
    extra: &[&str],
    identity: &SignedIdentityRequest,
) -> Result<ForwardRequest, IdentityError> {
    let args = [
        "ssm-app",
        "--app-id=1",
        "--audience",
        AUDIENCE,
        "--policy-file=unused",
        "--aws-region",
        region,
    ];
    let opts = ssm_app::Opts::try_parse_from(args.iter().chain(extra)).unwrap();
    let policy = Policy::from_json(r#"{"rules": []}"#).unwrap();
    let settings = ssm_app::Settings::new(opts, TEST_APP_PRIVATE_KEY_PEM, policy).unwrap();
    check_identity(
        identity,
        &IdentityExpectations {
            sts: &settings.sts_endpoints,
            audience: AUDIENCE,
            scope: "acme/infra contents=write",
            now: chrono::Utc::now(),
        },
    )
}

#[test]
fn the_lambdas_default_sts_endpoint_is_accepted_by_the_default_broker() {
    for region in ["us-east-1", "eu-west-1", "ap-southeast-2"] {
        let identity = lambda_identity(region);
        let regional = format!("https://sts.{region}.amazonaws.com/");
        assert_eq!(identity.url, regional, "the Lambda signs for its region");
        let forwarded = broker_check(region, &[], &identity)
            .unwrap_or_else(|e| panic!("{region}: the default broker refused it: {e}"));
        assert_eq!(
            forwarded.url, regional,
            "forwarded to the host it was signed for"
        );
    }
}

#[test]
fn a_broker_in_another_region_names_both_endpoints_until_the_region_is_allowed() {
    let identity = lambda_identity("eu-west-1");
    let err = broker_check("us-east-1", &[], &identity).unwrap_err();
    assert_eq!(
        err.to_string(),
        "identity request URL \"https://sts.eu-west-1.amazonaws.com/\" is not an STS endpoint this broker accepts (expected one of: https://sts.amazonaws.com/, https://sts.us-east-1.amazonaws.com/)"
    );
    let allowed = broker_check(
        "us-east-1",
        &["--sts-allowed-regions=us-east-1,eu-west-1"],
        &identity,
    )
    .unwrap();
    assert_eq!(allowed.url, "https://sts.eu-west-1.amazonaws.com/");
}

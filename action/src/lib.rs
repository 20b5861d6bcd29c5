//! Deploy Action: OIDC credentials, CDK asset publishing, CloudFormation change sets.
//!
//! `main` reads the environment into [`ActionInputs`](ssm_core::deploy::ActionInputs) and a
//! [`runner::Runner`], builds the AWS clients ([`credentials`]) and calls [`run::run`]. Decisions
//! (parsing, placeholders, reports) live in `ssm_core::deploy`; this crate does the I/O.

pub mod assets;
pub mod clients;
pub mod credentials;
pub mod deploy;
pub mod metrics;
pub mod reconcile;
pub mod run;
pub mod runner;
pub mod undeclared;

/// An AWS error for people: `Code: message` when the service sent one, else the whole cause
/// chain (connection failures, timeouts). The raw response is never shown.
pub fn aws_error<E, R>(err: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> String
where
    E: aws_sdk_sts::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_sts::error::ProvideErrorMetadata as _;
    match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => aws_sdk_sts::error::DisplayErrorContext(err).to_string(),
    }
}

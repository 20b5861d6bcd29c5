//! Deploy Action: OIDC credentials, CDK asset publishing, CloudFormation change sets.
//!
//! `main` reads the environment into [`ActionInputs`](ssm_core::deploy::ActionInputs) and a
//! [`runner::Runner`], builds the AWS clients ([`credentials`]) and calls [`run::run`]. Decisions
//! (parsing, placeholders, reports) live in `ssm_core::deploy`; this crate does the I/O.

pub mod assets;
pub mod clients;
pub mod credentials;
pub mod deploy;
pub mod reconcile;
pub mod run;
pub mod runner;

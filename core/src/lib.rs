//! Pure logic of Serverless SSM: no network, no files, no clocks it does not take as arguments.
//!
//! Binaries (the Lambdas, the Action, the App) parse input at their edge, call into this crate to
//! decide, and then do the I/O themselves.

pub mod api;
pub mod arn;
pub mod broker;
pub mod deploy;
pub mod envelope;
pub mod iam;
pub mod install;
pub mod integrity;
pub mod keyname;
pub mod keyring;
pub mod legacy;
pub mod mac;
pub mod secret;
pub mod sigv4;
pub mod webhook;

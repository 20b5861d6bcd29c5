//! Deploy Action pure logic: the Action's inputs, cloud assembly manifests, placeholder
//! substitution, change-set and drift reports, GitHub workflow-command formatting.
//!
//! The `ssm-action` binary reads files and calls AWS; everything it decides goes through here so
//! it can be unit-tested without either.

pub mod assembly;
pub mod github;
pub mod inputs;
pub mod keyrings;
pub mod report;
pub mod stack;
pub mod undeclared;

pub use assembly::{
    AssemblyError, CloudAssembly, FileAsset, Packaging, Placeholders, StackArtifact,
};
pub use inputs::{ActionInputs, InputError, Mode};
pub use report::{Change, ChangeAction, DriftedProperty, Replacement, StackReport, TamperedAsset};

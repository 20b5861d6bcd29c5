//! Integrity: is a change to the stack out of band? Pure decisions for the integrity Lambda.
//!
//! - [`cloudtrail`]: typed EventBridge/CloudTrail records and the caller identity.
//! - [`classify()`]: one event against the stack's resources, the ignore policy and the stack's
//!   operations ([`operations`]).
//! - [`refresh`]: when a miss justifies re-reading the stack's resources, bounded.
//! - [`sweep`]: which drift-detection rows and code checks are findings.
//! - [`template`]: the code hash the deployed template records for each function.
//! - [`payload`]: the single `repository_dispatch` per batch or sweep.
//! - [`configuration`]: refusals only an operator can fix, and their CloudWatch metric.

pub use crate::arn;
pub mod classify;
pub mod cloudtrail;
pub mod configuration;
pub mod operations;
pub mod payload;
pub mod refresh;
pub mod resources;
pub mod sweep;
pub mod template;

pub use arn::{Arn, ArnError, RoleArn};
pub use classify::{
    Classification, Drift, IgnorePolicy, Ignored, classify, classify_in, invoked_by_cloudformation,
};
pub use cloudtrail::{Caller, CloudTrailEvent, ParseError};
pub use configuration::{ConfigurationError, configuration_error_metric};
pub use operations::{StackEvent, StackOperations};
pub use payload::{DriftSource, EVENT_TYPE, Finding, build_dispatch};
pub use refresh::{ListAge, Refresh, RefreshPolicy};
pub use resources::{ResourceKind, StackResource, StackResources};
pub use sweep::{CodeCheck, DriftStatus, sweep_findings};
pub use template::{CODE_SHA256_METADATA, recorded_code_sha256};

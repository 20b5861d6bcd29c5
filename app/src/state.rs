//! What the handlers share: configuration they read, the clients they call, the caches and the
//! counters. It imports nothing above it (no routes, no errors), so every layer may depend on it.

use std::sync::Arc;

use secrecy::SecretString;
use ssm_core::broker::Policy;

use crate::cache::{Deliveries, InstallationCache, TokenCache};
use crate::github::GitHubApp;
use crate::metrics::Metrics;
use crate::sts::Sts;

/// Largest webhook body GitHub sends (25 MB); larger ones get 413.
pub const WEBHOOK_BODY_LIMIT: usize = 25 * 1024 * 1024;
/// Largest token request body; a signed identity request is a few KB.
pub const TOKEN_BODY_LIMIT: usize = 64 * 1024;

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    pub audience: String,
    pub policy: Policy,
    pub webhook_secrets: Vec<SecretString>,
    pub token_refresh_margin: chrono::Duration,
    /// Least time between two replacements of one scope's rejected token.
    pub token_replace_min_interval: std::time::Duration,
    pub sts: Sts,
    pub github: GitHubApp,
    pub installations: InstallationCache,
    pub tokens: TokenCache,
    pub deliveries: Deliveries,
    pub metrics: Arc<Metrics>,
}

//! One module per route.

pub mod health;
pub mod tokens;
pub mod webhooks;

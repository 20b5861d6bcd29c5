//! One module per route, and the fallbacks (404, 405).

pub mod extract;
pub mod fallback;
pub mod health;
pub mod tokens;
pub mod webhooks;

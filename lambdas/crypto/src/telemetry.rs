//! Logging: tracing to stdout, JSON when Lambda asks for it (`AWS_LAMBDA_LOG_FORMAT=JSON`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Level from `RUST_LOG` (default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if json {
        builder.json().flatten_event(true).without_time().init();
    } else {
        builder.compact().init();
    }
}

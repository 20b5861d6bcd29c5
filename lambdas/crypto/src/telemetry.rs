//! Logging: tracing to stdout, JSON when Lambda asks for it (`AWS_LAMBDA_LOG_FORMAT=JSON`).

/// Installs the global subscriber. Level from `RUST_LOG` (default `info`).
pub fn init() {
    ssm_telemetry::init_lambda();
}

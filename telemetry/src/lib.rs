//! Logging set-up shared by every binary: the Lambdas, the App and the Action.
//!
//! Filters use `tracing_subscriber`'s [`Targets`] (`info`, `warn,ssm_app=debug`): the usual
//! `RUST_LOG` directives without span or field filters, and without the regex engine that
//! `EnvFilter` compiles into every binary (about a megabyte of each Lambda zip).

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The filter in environment variable `var`, or `default` when it is unset or does not parse.
/// `default` itself must parse; if it does not, `info` is used.
pub fn filter_from_env(var: &str, default: &str) -> Targets {
    std::env::var(var)
        .ok()
        .and_then(|value| value.parse().ok())
        .or_else(|| default.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

/// Whether Lambda asked for JSON logs (`AWS_LAMBDA_LOG_FORMAT=JSON`).
pub fn lambda_wants_json() -> bool {
    std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"))
}

/// Installs the global subscriber for a command-line tool (the Action, the install): compact
/// text on stderr (stdout is the tool's own output), level from `var` (else `default`), colours
/// only on a terminal. Does nothing if a subscriber is already set.
pub fn init_cli(var: &str, default: &str) {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .finish()
        .with(filter_from_env(var, default))
        .try_init();
}

/// Installs the global subscriber for a Lambda function: level from `RUST_LOG` (default `info`),
/// one JSON object per line when Lambda's log format is JSON (Lambda adds the time), otherwise
/// compact text; colours only on a terminal. Does nothing if a subscriber is already set.
pub fn init_lambda() {
    let filter = filter_from_env("RUST_LOG", "info");
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal());
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if lambda_wants_json() {
        registry
            .with(fmt.json().flatten_event(true).without_time())
            .try_init()
    } else {
        registry.with(fmt.compact()).try_init()
    };
}

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing_subscriber::filter::LevelFilter;

    use super::*;

    #[test]
    fn directives_parse_like_rust_log() {
        let filter: Targets = "warn,ssm_app=debug".parse().expect("parses");
        assert!(filter.would_enable("ssm_app::routes", &Level::DEBUG));
        assert!(!filter.would_enable("aws_config", &Level::INFO));
        assert!(filter.would_enable("aws_config", &Level::WARN));
    }

    #[test]
    fn an_unset_or_bad_variable_falls_back_to_the_default() {
        let filter = filter_from_env("SSM_TELEMETRY_TEST_UNSET_VARIABLE", "info,noisy=warn");
        assert!(filter.would_enable("ours", &Level::INFO));
        assert!(!filter.would_enable("noisy", &Level::INFO));
        let fallback = filter_from_env("SSM_TELEMETRY_TEST_UNSET_VARIABLE", "ssm=loud");
        assert_eq!(fallback.default_level(), Some(LevelFilter::INFO));
    }
}

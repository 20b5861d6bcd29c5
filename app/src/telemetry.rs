//! Tracing setup, called once from `main`.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// Installs the global subscriber: `RUST_LOG` filter (default `info`), text or JSON lines.
/// Text has ANSI colours only when stdout is a terminal, so log files and Lambda's log stream
/// never carry escape sequences.
pub fn init(format: LogFormat) {
    subscriber(format, std::io::stdout, std::io::stdout().is_terminal()).init();
}

/// The subscriber [`init`] installs, writing to `writer`; ANSI colours only if `ansi`.
pub fn subscriber<W>(format: LogFormat, writer: W, ansi: bool) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = ssm_telemetry::filter_from_env("RUST_LOG", "info");
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(true)
        .with_writer(writer);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => Box::new(registry.with(fmt.json().flatten_event(true))),
        LogFormat::Text => Box::new(registry.with(fmt.with_ansi(ansi))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssm_core::broker::escaped;
    use ssm_testkit::logs::LogBuffer;

    fn log_one(ansi: bool) -> String {
        let buffer = LogBuffer::default();
        let sink = buffer.clone();
        let subscriber = subscriber(LogFormat::Text, move || sink.clone(), ansi);
        let hostile = "acme/x\n2026-11-28T01:00:00Z  INFO audit: decision=\"issued\" \u{1b}[31mred";
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                target: "audit",
                decision = "refused",
                repository = %escaped(hostile, 200),
                "request refused"
            );
        });
        buffer.text()
    }

    #[test]
    fn text_logs_off_a_terminal_have_no_escapes_and_one_line_per_event() {
        let text = log_one(false);
        assert!(!text.contains('\u{1b}'), "no ESC byte: {text:?}");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("\\n2026-11-28"),
            "the line break is escaped: {text}"
        );
        // The switch is what keeps colours out: on a terminal the level is coloured.
        assert!(log_one(true).contains('\u{1b}'));
    }
}

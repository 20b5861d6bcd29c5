//! Counters and a latency histogram, rendered in the Prometheus text format for `GET /metrics`.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the GitHub call latency buckets.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// The App's metrics; cheap to update from any thread.
#[derive(Debug, Default)]
pub struct Metrics {
    pub tokens_issued: AtomicU64,
    pub tokens_cached: AtomicU64,
    pub tokens_denied: AtomicU64,
    pub identity_rejected: AtomicU64,
    pub tokens_replaced: AtomicU64,
    pub requests_malformed: AtomicU64,
    pub webhooks_accepted: AtomicU64,
    pub webhooks_rejected: AtomicU64,
    pub webhooks_duplicate: AtomicU64,
    github: Mutex<Histogram>,
}

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Adds one to a counter.
pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Records the latency of one GitHub API call.
    pub fn observe_github(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut h = self.github.lock().unwrap_or_else(|p| p.into_inner());
        for (count, bound) in h.counts.iter_mut().zip(BUCKETS) {
            if secs <= bound {
                *count += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, &AtomicU64); 9] = [
            (
                "ssm_app_tokens_issued_total",
                "Installation tokens minted from GitHub.",
                &self.tokens_issued,
            ),
            (
                "ssm_app_tokens_cached_total",
                "Token requests served from the cache.",
                &self.tokens_cached,
            ),
            (
                "ssm_app_tokens_denied_total",
                "Token requests refused by the policy.",
                &self.tokens_denied,
            ),
            (
                "ssm_app_identity_rejected_total",
                "Token requests whose identity was rejected.",
                &self.identity_rejected,
            ),
            (
                "ssm_app_tokens_replaced_total",
                "Cached tokens replaced because a caller showed GitHub rejected them.",
                &self.tokens_replaced,
            ),
            (
                "ssm_app_requests_malformed_total",
                "Token requests refused as malformed or too large (400, 413).",
                &self.requests_malformed,
            ),
            (
                "ssm_app_webhooks_accepted_total",
                "Webhook deliveries accepted.",
                &self.webhooks_accepted,
            ),
            (
                "ssm_app_webhooks_rejected_total",
                "Webhook deliveries rejected (signature, size, shape).",
                &self.webhooks_rejected,
            ),
            (
                "ssm_app_webhooks_duplicate_total",
                "Webhook redeliveries acknowledged without reprocessing.",
                &self.webhooks_duplicate,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let h = self.github.lock().unwrap_or_else(|p| p.into_inner());
        let name = "ssm_app_github_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Latency of GitHub API calls.\n# TYPE {name} histogram"
        );
        for (count, bound) in h.counts.iter().zip(BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}",
            h.count, h.sum, h.count
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        inc(&m.tokens_issued);
        inc(&m.tokens_issued);
        m.observe_github(Duration::from_millis(20));
        m.observe_github(Duration::from_millis(300));
        let text = m.render();
        assert!(text.contains("ssm_app_tokens_issued_total 2\n"), "{text}");
        assert!(text.contains("ssm_app_tokens_denied_total 0\n"));
        assert!(text.contains("ssm_app_github_request_duration_seconds_bucket{le=\"0.025\"} 1\n"));
        assert!(text.contains("ssm_app_github_request_duration_seconds_bucket{le=\"0.5\"} 2\n"));
        assert!(text.contains("ssm_app_github_request_duration_seconds_count 2\n"));
    }
}

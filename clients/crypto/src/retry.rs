//! When to try a request again, and how long to wait first.
//!
//! Every route of the Crypto API is free of side effects (an encrypt that is answered twice
//! only costs a nonce), so a request that got no answer may be sent again as it is.

use std::time::Duration;

/// Bounded exponential backoff with full jitter, for 429, 502, 503, 504 and requests that got
/// no answer. Any other status is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// The ceiling of the first wait; it doubles with each retry.
    pub base_delay: Duration,
    /// No wait is longer, a server's `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait after failed attempt `attempt` (1-based): uniform in
    /// `[0, min(max_delay, base_delay * 2^(attempt-1))]` (`unit` is uniform in `[0, 1)`), or the
    /// server's `Retry-After` if that is longer, never more than `max_delay`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(1 << attempt.saturating_sub(1).min(20))
            .min(self.max_delay);
        let jittered = ceiling.mul_f64(unit.clamp(0.0, 1.0));
        jittered
            .max(retry_after.unwrap_or_default())
            .min(self.max_delay)
    }
}

/// Throttled (429) or a gateway that could not get an answer in time (502, 503, 504).
pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// A request that got no answer: no connection, a reset, a timeout.
pub(crate) fn is_retryable_transport(error: &reqwest::Error) -> bool {
    error.is_connect() || error.is_timeout() || error.is_request()
}

/// `Retry-After` in seconds (the HTTP-date form is not used by API Gateway).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_bounded() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let top = |attempt| policy.delay(attempt, None, 0.999_999);
        assert!(top(1) <= Duration::from_millis(100) && top(1) > Duration::from_millis(99));
        assert!(top(2) > Duration::from_millis(199) && top(2) <= Duration::from_millis(200));
        assert!(top(8) > Duration::from_millis(999) && top(8) < Duration::from_secs(1));
        assert_eq!(policy.delay(3, None, 0.0), Duration::ZERO);
        assert_eq!(policy.delay(u32::MAX, None, 1.0), Duration::from_secs(1));
        assert_eq!(
            policy.delay(1, Some(Duration::from_millis(700)), 0.5),
            Duration::from_millis(700)
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(60)), 0.5),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn only_throttles_and_gateway_failures_are_retried() {
        for status in [429, 502, 503, 504] {
            assert!(is_retryable_status(status));
        }
        for status in [200, 400, 403, 404, 405, 408, 413, 422, 500, 501] {
            assert!(!is_retryable_status(status), "{status}");
        }
    }
}

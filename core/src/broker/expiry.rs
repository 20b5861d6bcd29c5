//! How long the App's JWT and a cached installation token live.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Claims of the App's JWT, as GitHub requires them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppJwtClaims {
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

impl AppJwtClaims {
    /// `iat` 60 s in the past (GitHub's advice against clock drift) and `exp` 9 minutes ahead, so
    /// the whole window stays within GitHub's 10-minute limit. `now` is already skew-corrected.
    pub fn new(issuer: &str, now: DateTime<Utc>) -> Self {
        let now = now.timestamp();
        Self {
            iat: now - 60,
            exp: now + 540,
            iss: issuer.to_owned(),
        }
    }
}

/// Whether a cached token expiring at `expires_at` may still be handed out at `now`.
pub fn still_fresh(expires_at: DateTime<Utc>, now: DateTime<Utc>, margin: Duration) -> bool {
    now + margin < expires_at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::test_support::*;
    use chrono::Duration;

    #[test]
    fn jwt_window_fits_githubs_ten_minutes() {
        let c = AppJwtClaims::new("42", now());
        assert_eq!(c.iat, now().timestamp() - 60);
        assert!(c.exp - c.iat <= 600);
        assert!(c.exp > now().timestamp());
    }

    #[test]
    fn freshness_margin() {
        let exp = now() + Duration::minutes(10);
        assert!(still_fresh(exp, now(), Duration::minutes(5)));
        assert!(!still_fresh(
            exp,
            now() + Duration::minutes(5),
            Duration::minutes(5)
        ));
    }
}

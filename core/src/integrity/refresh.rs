//! When the integrity Lambda re-reads its stack's resource list before calling an event "outside
//! the stack".
//!
//! The list is cached. A resource a deploy added after the list was read is missing from it, so a
//! change to that resource would look like a change to someone else's. Two things justify a
//! re-read: an event that may postdate the list (its `eventTime` is after the list was read, less
//! a skew allowance), and a list old enough that a re-read on any miss is cheap. Both share one
//! floor, so no event stream — however many forged or future `eventTime`s it carries — makes
//! more than one `ListStackResources` call per floor interval. An event that may postdate the list
//! when the floor forbids a re-read is deferred (SQS redelivers it), never dropped.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// The cached list as the decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListAge {
    /// Wall-clock time the read began: everything the stack held then is in the list.
    pub read_at: DateTime<Utc>,
    /// Time since the last read (monotonic), counting a failed re-read: the floor and
    /// `stale_after` count from it.
    pub age: Duration,
}

/// What to do about the events the cached list calls "outside the stack".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// The list is recent enough for every miss: "outside the stack" is final.
    Keep,
    /// Re-read the list and classify again; the second answer is final.
    Reread,
    /// Some misses may postdate the list, but it was read less than the floor ago: redeliver
    /// those instead of deciding them now.
    Defer,
}

/// The bounds of re-reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// A miss on an event older than the list re-reads it once the list is this old.
    pub stale_after: Duration,
    /// The floor: never two reads closer than this, whatever the events say.
    pub min_interval: Duration,
    /// Clock skew, plus CloudTrail's whole-second `eventTime`: an event this much before the
    /// read may still have happened after it.
    pub skew: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            stale_after: Duration::from_secs(30),
            min_interval: Duration::from_secs(10),
            skew: Duration::from_secs(5),
        }
    }
}

impl RefreshPolicy {
    /// Whether a change at `event_time` may be missing from a list read at `read_at`.
    pub fn postdates(&self, event_time: DateTime<Utc>, read_at: DateTime<Utc>) -> bool {
        let skew = TimeDelta::from_std(self.skew).unwrap_or(TimeDelta::MAX);
        event_time
            > read_at
                .checked_sub_signed(skew)
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// Decides from the list's age and the `eventTime`s of the events it calls outside the stack.
    pub fn decide(
        &self,
        list: ListAge,
        misses: impl IntoIterator<Item = DateTime<Utc>>,
    ) -> Refresh {
        let Some(newest) = misses.into_iter().max() else {
            return Refresh::Keep;
        };
        let floor_passed = list.age >= self.min_interval;
        if self.postdates(newest, list.read_at) {
            if floor_passed {
                Refresh::Reread
            } else {
                Refresh::Defer
            }
        } else if floor_passed && list.age >= self.stale_after {
            Refresh::Reread
        } else {
            Refresh::Keep
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    const READ: &str = "2026-12-01T10:00:00Z";

    fn list(age_secs: u64) -> ListAge {
        ListAge {
            read_at: at(READ),
            age: Duration::from_secs(age_secs),
        }
    }

    #[test]
    fn no_miss_keeps_the_list() {
        let p = RefreshPolicy::default();
        assert_eq!(p.decide(list(3600), []), Refresh::Keep);
    }

    #[test]
    fn a_miss_after_the_read_rereads_a_list_younger_than_stale_after() {
        let p = RefreshPolicy::default();
        // Read 12 s ago; the event is 8 s after the read: the resource may be new.
        assert_eq!(
            p.decide(list(12), [at("2026-12-01T10:00:08Z")]),
            Refresh::Reread
        );
        // Within the skew before the read (whole-second eventTime, clocks): still a re-read.
        assert_eq!(
            p.decide(list(12), [at("2026-12-01T09:59:56Z")]),
            Refresh::Reread
        );
    }

    #[test]
    fn a_miss_well_before_the_read_rereads_only_a_stale_list() {
        let p = RefreshPolicy::default();
        let old = [at("2026-12-01T09:59:00Z")];
        assert_eq!(p.decide(list(12), old), Refresh::Keep);
        assert_eq!(p.decide(list(30), old), Refresh::Reread);
    }

    #[test]
    fn the_floor_bounds_every_reread_and_defers_what_may_postdate_the_list() {
        let p = RefreshPolicy::default();
        let future = at("2999-01-01T00:00:00Z");
        assert_eq!(p.decide(list(9), [future]), Refresh::Defer);
        assert_eq!(p.decide(list(10), [future]), Refresh::Reread);
        // A stale_after below the floor does not lower the floor.
        let eager = RefreshPolicy {
            stale_after: Duration::ZERO,
            ..p
        };
        assert_eq!(
            eager.decide(list(9), [at("2026-12-01T09:00:00Z")]),
            Refresh::Keep
        );
    }

    #[test]
    fn the_newest_miss_decides() {
        let p = RefreshPolicy::default();
        let misses = [at("2026-12-01T09:00:00Z"), at("2026-12-01T10:00:20Z")];
        assert_eq!(p.decide(list(12), misses), Refresh::Reread);
        assert_eq!(p.decide(list(1), misses), Refresh::Defer);
    }

    #[test]
    fn postdates_is_strict_at_the_skew_edge() {
        let p = RefreshPolicy::default();
        assert!(!p.postdates(at("2026-12-01T09:59:55Z"), at(READ)));
        assert!(p.postdates(at("2026-12-01T09:59:56Z"), at(READ)));
        assert!(p.postdates(at("2999-01-01T00:00:00Z"), at(READ)));
    }
}

//! When our stack was being deployed: the windows of its CloudFormation operations, from its
//! stack-level `DescribeStackEvents` rows. A call CloudFormation makes is ours only inside one.
//!
//! CloudTrail does not say which stack a CloudFormation call was for: the caller is the
//! execution role (shared by every stack a CDK bootstrap deploys) and `invokedBy` is
//! `cloudformation.amazonaws.com`. So a call made with our execution role while our stack had no
//! operation in progress was made for another stack, and is drift when it touches our resources.

use chrono::{DateTime, TimeDelta, Utc};

/// One `DescribeStackEvents` row, converted at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackEvent {
    pub timestamp: DateTime<Utc>,
    pub physical_id: String,
    pub resource_type: String,
    pub status: String,
}

/// The stack's operations: when each began and, unless still running, ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackOperations {
    windows: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
}

impl StackOperations {
    /// CloudTrail's `eventTime` and CloudFormation's event timestamps come from different
    /// clocks and are rounded to the second: a call this close to a window counts as in it.
    pub const SLACK: TimeDelta = TimeDelta::seconds(60);

    /// The windows of the stack `stack_id` from its events, in any order. Other stacks' rows
    /// (nested stacks) and resource rows are ignored. An operation whose start is older than
    /// the events read is taken to have begun before all of them.
    pub fn from_events<'a>(
        stack_id: &str,
        events: impl IntoIterator<Item = &'a StackEvent>,
    ) -> StackOperations {
        let mut rows: Vec<&StackEvent> = events
            .into_iter()
            .filter(|e| {
                e.resource_type == "AWS::CloudFormation::Stack" && e.physical_id == stack_id
            })
            .collect();
        rows.sort_by_key(|e| e.timestamp);
        let mut windows = Vec::new();
        let mut open = None;
        for row in rows {
            if opens(&row.status) {
                open.get_or_insert(row.timestamp);
            } else if closes(&row.status) {
                let start = open.take().unwrap_or(DateTime::<Utc>::MIN_UTC);
                windows.push((start, Some(row.timestamp)));
            }
        }
        if let Some(start) = open {
            windows.push((start, None));
        }
        StackOperations { windows }
    }

    /// Whether an operation of the stack was in progress at `time` (within [`Self::SLACK`]).
    pub fn covers(&self, time: DateTime<Utc>) -> bool {
        let after_start = |start: &DateTime<Utc>| {
            start
                .checked_sub_signed(Self::SLACK)
                .is_none_or(|start| start <= time)
        };
        let before_end = |end: &DateTime<Utc>| {
            end.checked_add_signed(Self::SLACK)
                .is_none_or(|end| time <= end)
        };
        self.windows
            .iter()
            .any(|(start, end)| after_start(start) && end.as_ref().is_none_or(before_end))
    }
}

/// A status that starts (or continues) an operation that changes resources. A change set under
/// review (`REVIEW_IN_PROGRESS`) changes nothing.
fn opens(status: &str) -> bool {
    status.ends_with("_IN_PROGRESS") && status != "REVIEW_IN_PROGRESS"
}

fn closes(status: &str) -> bool {
    status.ends_with("_COMPLETE") || status.ends_with("_FAILED")
}

#[cfg(test)]
mod tests {
    use super::*;

    const STACK: &str = "arn:aws:cloudformation:us-east-1:111122223333:stack/Ssm/0a1b";

    fn at(time: &str) -> DateTime<Utc> {
        format!("2024-05-01T{time}Z").parse().unwrap()
    }

    fn event(time: &str, status: &str) -> StackEvent {
        StackEvent {
            timestamp: at(time),
            physical_id: STACK.into(),
            resource_type: "AWS::CloudFormation::Stack".into(),
            status: status.into(),
        }
    }

    #[test]
    fn windows_from_stack_level_events() {
        let mut events = vec![
            event("10:00:00", "UPDATE_IN_PROGRESS"),
            event("10:04:00", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"),
            event("10:05:00", "UPDATE_COMPLETE"),
            event("11:00:00", "REVIEW_IN_PROGRESS"),
            event("12:00:00", "UPDATE_IN_PROGRESS"),
            event("12:03:00", "UPDATE_ROLLBACK_IN_PROGRESS"),
            event("12:06:00", "UPDATE_ROLLBACK_COMPLETE"),
            event("13:00:00", "UPDATE_IN_PROGRESS"),
            // A resource row and a nested stack's row change nothing.
            StackEvent {
                resource_type: "AWS::Lambda::Function".into(),
                ..event("11:30:00", "UPDATE_IN_PROGRESS")
            },
            StackEvent {
                physical_id: "arn:aws:cloudformation:us-east-1:111122223333:stack/Other/9".into(),
                ..event("11:40:00", "UPDATE_IN_PROGRESS")
            },
        ];
        events.reverse(); // DescribeStackEvents lists newest first.
        let ops = StackOperations::from_events(STACK, &events);
        for (time, covered) in [
            ("09:58:00", false),
            ("09:59:30", true),
            ("10:02:00", true),
            ("10:05:59", true),
            ("10:07:00", false),
            ("11:00:30", false),
            ("11:35:00", false),
            ("12:04:00", true),
            ("12:30:00", false),
            ("13:30:00", true),
        ] {
            assert_eq!(ops.covers(at(time)), covered, "{time}");
        }
    }

    #[test]
    fn an_operation_begun_before_the_events_read_covers_up_to_its_end() {
        let ops = StackOperations::from_events(STACK, &[event("10:05:00", "UPDATE_COMPLETE")]);
        assert!(ops.covers(at("08:00:00")));
        assert!(!ops.covers(at("10:07:00")));
        assert!(!StackOperations::default().covers(at("10:00:00")));
    }
}

//! Decisions about a stack's lifecycle: what its status means for the next step, whether a failed
//! change set only means "no changes", which events explain a failure, and how long to wait.

/// What the Action does with a stack given its current status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackState {
    /// No such stack (or only a deleted one): `CREATE` change set.
    Absent,
    /// `REVIEW_IN_PROGRESS`: a stack created by a change set never executed; `CREATE` again.
    Review,
    /// A stable stack: `UPDATE` change set.
    Stable,
    /// `ROLLBACK_COMPLETE` (a failed create): it can only be deleted.
    RollbackComplete,
    /// An operation is running: wait for it.
    InProgress,
    /// A state that needs a human (`*_FAILED`).
    Failed(String),
}

impl StackState {
    /// Classifies a `StackStatus`.
    pub fn from_status(status: &str) -> Self {
        match status {
            "DELETE_COMPLETE" => Self::Absent,
            "REVIEW_IN_PROGRESS" => Self::Review,
            "ROLLBACK_COMPLETE" => Self::RollbackComplete,
            s if s.ends_with("_IN_PROGRESS") => Self::InProgress,
            s if s.ends_with("_FAILED") => Self::Failed(s.to_owned()),
            _ => Self::Stable,
        }
    }
}

/// Whether a stack status is terminal after an execution, and whether it means success.
pub fn execution_outcome(status: &str) -> Option<bool> {
    if status.ends_with("_IN_PROGRESS") {
        return None;
    }
    Some(matches!(
        status,
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE"
    ))
}

/// Whether a FAILED change set's status reason, or a ValidationError message, only says the
/// template and parameters match the stack. AWS uses both forms.
pub fn means_no_changes(reason: &str) -> bool {
    reason.contains("didn't contain changes")
        || reason.contains("No updates are to be performed")
        || reason.contains("does not contain changes")
}

/// A stack event, converted from the API at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
}

/// The resources that failed, with their reasons, from events oldest first. The stack's own
/// rollback events and the generic "Resource creation cancelled" noise come after the real causes,
/// so the first failures are the ones worth showing.
pub fn failures(events: &[Event], stack_name: &str) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for e in events.iter().filter(|e| e.status.ends_with("_FAILED")) {
        let reason = e
            .reason
            .clone()
            .unwrap_or_else(|| "no reason given".to_owned());
        let noise = reason.contains("Resource creation cancelled")
            || reason.contains("Resource update cancelled");
        if !out.is_empty() && (e.logical_id == stack_name || noise) {
            continue;
        }
        if !out
            .iter()
            .any(|(id, _, r)| id == &e.logical_id && r == &reason)
        {
            out.push((e.logical_id.clone(), e.resource_type.clone(), reason));
        }
    }
    out
}

/// A change-set name unique to this run: `ssm-<mode>-<run id>-<attempt>-<nonce>`
/// (CloudFormation wants `[a-zA-Z][-a-zA-Z0-9]*`, at most 128 characters).
pub fn change_set_name(
    mode: &str,
    run_id: Option<&str>,
    attempt: Option<&str>,
    nonce: &str,
) -> String {
    let clean = |s: &str| {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
    };
    let mut name = format!("ssm-{}", clean(mode));
    for part in [run_id, attempt].into_iter().flatten() {
        name.push('-');
        name.push_str(&clean(part));
    }
    name.push('-');
    name.push_str(&clean(nonce));
    name.chars().take(128).collect()
}

/// Bounded exponential backoff with full jitter: attempt `n` (0-based) waits a uniformly random
/// time in `[0, min(cap, base * 2^n)]`. `unit` is a uniform random number in `[0, 1)`.
pub fn backoff_ms(attempt: u32, base_ms: u64, cap_ms: u64, unit: f64) -> u64 {
    let ceiling = base_ms.saturating_mul(1u64 << attempt.min(20)).min(cap_ms);
    (ceiling as f64 * unit.clamp(0.0, 1.0)) as u64
}

/// The poll interval while waiting on CloudFormation: quick first, then at most every 5 s.
pub fn poll_interval_ms(polls: u32) -> u64 {
    (250u64 << polls.min(5)).min(5000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classification() {
        assert_eq!(
            StackState::from_status("REVIEW_IN_PROGRESS"),
            StackState::Review
        );
        assert_eq!(
            StackState::from_status("ROLLBACK_COMPLETE"),
            StackState::RollbackComplete
        );
        assert_eq!(
            StackState::from_status("UPDATE_ROLLBACK_COMPLETE"),
            StackState::Stable
        );
        assert_eq!(
            StackState::from_status("UPDATE_IN_PROGRESS"),
            StackState::InProgress
        );
        assert_eq!(
            StackState::from_status("DELETE_FAILED"),
            StackState::Failed("DELETE_FAILED".into())
        );
        assert_eq!(execution_outcome("UPDATE_COMPLETE"), Some(true));
        assert_eq!(execution_outcome("UPDATE_ROLLBACK_COMPLETE"), Some(false));
        assert_eq!(execution_outcome("ROLLBACK_COMPLETE"), Some(false));
        assert_eq!(execution_outcome("UPDATE_ROLLBACK_IN_PROGRESS"), None);
    }

    #[test]
    fn both_no_change_forms() {
        assert!(means_no_changes(
            "The submitted information didn't contain changes. Submit different information to create a change set."
        ));
        assert!(means_no_changes("No updates are to be performed."));
        assert!(!means_no_changes(
            "Template format error: unsupported structure."
        ));
    }

    #[test]
    fn failures_keep_root_causes() {
        let ev = |id: &str, status: &str, reason: &str| Event {
            id: format!("{id}-{status}"),
            logical_id: id.into(),
            resource_type: if id == "S" {
                "AWS::CloudFormation::Stack".into()
            } else {
                "AWS::Lambda::Function".into()
            },
            status: status.into(),
            reason: Some(reason.into()),
        };
        let events = vec![
            ev("S", "UPDATE_IN_PROGRESS", "User Initiated"),
            ev(
                "Fn",
                "UPDATE_FAILED",
                "Resource handler returned message: \"Memory size 1 is invalid\"",
            ),
            ev("Other", "UPDATE_FAILED", "Resource update cancelled"),
            ev(
                "S",
                "UPDATE_ROLLBACK_IN_PROGRESS",
                "The following resource(s) failed to update: [Fn].",
            ),
            ev(
                "Fn",
                "UPDATE_FAILED",
                "Resource handler returned message: \"Memory size 1 is invalid\"",
            ),
        ];
        let f = failures(&events, "S");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, "Fn");
        assert!(f[0].2.contains("Memory size"));
    }

    #[test]
    fn names_and_backoff() {
        assert_eq!(
            change_set_name("apply", Some("123"), Some("2"), "ab-cd"),
            "ssm-apply-123-2-abcd"
        );
        assert_eq!(change_set_name("plan", None, None, "x1"), "ssm-plan-x1");
        assert_eq!(backoff_ms(0, 200, 5000, 0.5), 100);
        assert_eq!(backoff_ms(10, 200, 5000, 0.999_999), 4999);
        assert_eq!(backoff_ms(63, 200, 5000, 1.0), 5000);
        assert_eq!(poll_interval_ms(0), 250);
        assert_eq!(poll_interval_ms(30), 5000);
    }
}

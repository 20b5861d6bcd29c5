//! Classifying an SQS batch: pure, so the handler's decision can be tested and benchmarked
//! without AWS or GitHub.

use chrono::{DateTime, Utc};
use ssm_core::integrity::{
    Classification, CloudTrailEvent, Finding, IgnorePolicy, Ignored, ParseError, RefreshPolicy,
    StackOperations, StackResources, classify_in, invoked_by_cloudformation,
};

use crate::input::Message;

/// One message's outcome.
#[derive(Debug)]
pub struct Classified {
    pub message_id: String,
    pub outcome: Result<(CloudTrailEvent, Classification), ParseError>,
}

impl Classified {
    pub fn is_drift(&self) -> bool {
        matches!(self.outcome, Ok((_, Classification::Drift(_))))
    }

    /// Outside the stack as we knew it: the `eventTime`, which decides whether a fresher
    /// resource list is worth a look.
    pub fn outside_stack_at(&self) -> Option<DateTime<Utc>> {
        match &self.outcome {
            Ok((event, Classification::Ignored(Ignored::OutsideStack { .. }))) => {
                Some(event.detail.event_time)
            }
            _ => None,
        }
    }
}

/// Classifies every message of a batch, given the stack's recent operations.
pub fn classify_batch(
    messages: &[Message],
    stack: &StackResources,
    policy: &IgnorePolicy,
    operations: &StackOperations,
) -> Vec<Classified> {
    messages
        .iter()
        .map(|m| Classified {
            message_id: m.id.clone(),
            outcome: CloudTrailEvent::from_json(&m.body).map(|event| {
                let classification = classify_in(&event, stack, policy, operations);
                (event, classification)
            }),
        })
        .collect()
}

/// The earliest `eventTime` of the batch's CloudFormation calls: how far back the stack's
/// operations must be read (`None`: no such call, nothing to read).
pub fn cloudformation_calls_since(messages: &[Message]) -> Option<DateTime<Utc>> {
    messages
        .iter()
        .filter_map(|m| CloudTrailEvent::from_json(&m.body).ok())
        .filter(invoked_by_cloudformation)
        .map(|e| e.detail.event_time)
        .min()
}

/// The messages called outside the stack whose change may postdate the list read at `read_at`:
/// the ones to redeliver when the list cannot be re-read yet.
pub fn postdating(
    classified: &[Classified],
    policy: &RefreshPolicy,
    read_at: DateTime<Utc>,
) -> Vec<String> {
    classified
        .iter()
        .filter(|c| {
            c.outside_stack_at()
                .is_some_and(|at| policy.postdates(at, read_at))
        })
        .map(|c| c.message_id.clone())
        .collect()
}

/// The findings of a classified batch, and the ids of the messages that carried them (the ones
/// SQS must redeliver if the dispatch fails).
pub fn findings(classified: &[Classified]) -> (Vec<Finding>, Vec<String>) {
    let mut findings = Vec::new();
    let mut ids = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for c in classified {
        if let Ok((_, Classification::Drift(drift))) = &c.outcome {
            // SQS delivers at least once: a duplicate CloudTrail event is one finding.
            if seen.insert(drift.event_id.as_str()) {
                findings.extend(Finding::from_drift(drift));
            }
            ids.push(c.message_id.clone());
        }
    }
    (findings, ids)
}

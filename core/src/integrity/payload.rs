//! The `repository_dispatch` request sent once per SQS batch or sweep.
//!
//! GitHub accepts at most 10 top-level keys in `client_payload`; we send nine, each list capped
//! and de-duplicated, so a storm of a thousand events still makes one small, valid request:
//!
//! ```json
//! {"event_type": "ssm-drift",
//!  "client_payload": {"source": "event", "stack": "Ssm", "count": 3,
//!    "resources": ["CryptoFn (AWS::Lambda::Function ssm-crypto)"],
//!    "calls": ["lambda.amazonaws.com:UpdateFunctionCode20150331v2"],
//!    "callers": ["arn:aws:iam::111122223333:role/Admin (session alice)"],
//!    "times": ["2024-05-01T12:00:00Z"], "event_ids": ["…"], "truncated": false}}
//! ```

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::classify::Drift;
use super::resources::StackResource;

/// The dispatch's `event_type`; the reconcile workflow listens for it.
pub const EVENT_TYPE: &str = "ssm-drift";
/// Most entries kept per list in the payload.
pub const MAX_LIST: usize = 25;
/// Longest string kept in a list entry (ARNs and names are far shorter).
pub const MAX_ENTRY_CHARS: usize = 300;
/// GitHub's limit on `client_payload` keys.
pub const MAX_PAYLOAD_KEYS: usize = 10;

/// What found the drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftSource {
    /// CloudTrail events delivered through SQS.
    Event,
    /// The scheduled sweep (CloudFormation drift detection and the Lambda code check).
    Sweep,
}

/// One drifted resource, from an event or from the sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub resource: StackResource,
    /// `service:Call` for events; `drift:MODIFIED`, `drift:DELETED` or `code:CodeSha256` for sweeps.
    pub call: String,
    pub caller: Option<String>,
    pub time: Option<DateTime<Utc>>,
    pub event_id: Option<String>,
}

impl Finding {
    /// One finding per stack resource the call touched.
    pub fn from_drift(drift: &Drift) -> Vec<Finding> {
        drift
            .resources
            .iter()
            .map(|resource| Finding {
                resource: resource.clone(),
                call: format!("{}:{}", drift.event_source, drift.event_name),
                caller: Some(drift.caller.to_string()),
                time: Some(drift.event_time),
                event_id: Some(drift.event_id.clone()),
            })
            .collect()
    }
}

/// Builds the dispatch body. `None` when there is nothing to report.
pub fn build_dispatch(stack: &str, source: DriftSource, findings: &[Finding]) -> Option<Value> {
    if findings.is_empty() {
        return None;
    }
    let mut truncated = false;
    let mut list = |items: BTreeSet<String>| -> Value {
        truncated |= items.len() > MAX_LIST;
        Value::Array(
            items
                .into_iter()
                .take(MAX_LIST)
                .map(|s| Value::String(clip(s, &mut truncated)))
                .collect(),
        )
    };
    let resources = list(
        findings
            .iter()
            .map(|f| {
                format!(
                    "{} ({} {})",
                    f.resource.logical_id, f.resource.resource_type, f.resource.physical_id
                )
            })
            .collect(),
    );
    let calls = list(findings.iter().map(|f| f.call.clone()).collect());
    let callers = list(findings.iter().filter_map(|f| f.caller.clone()).collect());
    let times = list(
        findings
            .iter()
            .filter_map(|f| f.time)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
            .collect(),
    );
    let event_ids = list(findings.iter().filter_map(|f| f.event_id.clone()).collect());

    let mut payload = Map::new();
    payload.insert("source".into(), json!(source));
    payload.insert("stack".into(), json!(stack));
    payload.insert("count".into(), json!(findings.len()));
    payload.insert("resources".into(), resources);
    payload.insert("calls".into(), calls);
    payload.insert("callers".into(), callers);
    payload.insert("times".into(), times);
    payload.insert("event_ids".into(), event_ids);
    payload.insert("truncated".into(), json!(truncated));
    debug_assert!(payload.len() <= MAX_PAYLOAD_KEYS);
    Some(json!({ "event_type": EVENT_TYPE, "client_payload": payload }))
}

fn clip(s: String, truncated: &mut bool) -> String {
    if s.chars().count() <= MAX_ENTRY_CHARS {
        return s;
    }
    *truncated = true;
    s.chars().take(MAX_ENTRY_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(i: usize) -> Finding {
        Finding {
            resource: StackResource {
                logical_id: format!("Fn{i}"),
                physical_id: format!("fn-{i}"),
                resource_type: "AWS::Lambda::Function".into(),
            },
            call: "lambda.amazonaws.com:UpdateFunctionCode20150331v2".into(),
            caller: Some("arn:aws:iam::111122223333:user/bob".into()),
            time: Some("2024-05-01T12:00:00Z".parse().unwrap()),
            event_id: Some(format!("ev-{i}")),
        }
    }

    #[test]
    fn nothing_to_report_is_none() {
        assert_eq!(build_dispatch("Ssm", DriftSource::Event, &[]), None);
    }

    #[test]
    fn deduplicates_and_stays_within_github_limits() {
        let findings: Vec<Finding> = (0..100).map(finding).collect();
        let body = build_dispatch("Ssm", DriftSource::Event, &findings).unwrap();
        assert_eq!(body["event_type"], "ssm-drift");
        let payload = body["client_payload"].as_object().unwrap();
        assert!(payload.len() <= MAX_PAYLOAD_KEYS);
        assert_eq!(payload["count"], 100);
        assert_eq!(
            payload["calls"].as_array().unwrap().len(),
            1,
            "same call de-duplicated"
        );
        assert_eq!(payload["times"], json!(["2024-05-01T12:00:00Z"]));
        assert_eq!(payload["resources"].as_array().unwrap().len(), MAX_LIST);
        assert_eq!(payload["truncated"], true);
        assert_eq!(payload["source"], "event");
    }

    #[test]
    fn small_sweep_payload_is_complete() {
        let mut f = finding(1);
        f.call = "drift:MODIFIED".into();
        f.caller = None;
        f.event_id = None;
        f.time = None;
        let body = build_dispatch("Ssm", DriftSource::Sweep, &[f]).unwrap();
        assert_eq!(
            body["client_payload"],
            json!({"source": "sweep", "stack": "Ssm", "count": 1,
                   "resources": ["Fn1 (AWS::Lambda::Function fn-1)"], "calls": ["drift:MODIFIED"],
                   "callers": [], "times": [], "event_ids": [], "truncated": false})
        );
    }

    #[test]
    fn long_entries_are_clipped() {
        let mut f = finding(1);
        f.caller = Some("x".repeat(5000));
        let body = build_dispatch("Ssm", DriftSource::Event, &[f]).unwrap();
        assert_eq!(
            body["client_payload"]["callers"][0].as_str().unwrap().len(),
            MAX_ENTRY_CHARS
        );
        assert_eq!(body["client_payload"]["truncated"], true);
    }
}

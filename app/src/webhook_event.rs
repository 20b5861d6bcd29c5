//! GitHub's webhook payloads, converted into our own [`WebhookEvent`] at the edge. Only the events
//! the App acts on are parsed at all; every other event name is [`WebhookEvent::Ignored`] without
//! reading the body, so an event octocrab does not know (or a `test` delivery) is still a 200.
//!
//! `installation`, `installation_repositories`, `repository_dispatch` and `ping` are parsed with
//! octocrab's `webhook_events` types. `workflow_run`, the one event a busy repository sends by the
//! hundred (each run's requested, in_progress and completed), is read in one pass into the borrowed
//! [`WorkflowRunDelivery`] instead: octocrab types the run itself as a `serde_json::Value` (a tree
//! of the whole 5 KB object, to read five fields from) and its envelope builds the full repository
//! and sender models (dozens of owned strings and parsed URLs) that the App never reads. Profiled
//! under `bench/load.sh`, that envelope parse was about 30 % of the webhook route's CPU.

use octocrab::models::webhook_events::payload::{
    InstallationWebhookEventPayload, RepositoryDispatchWebhookEventPayload,
};
use octocrab::models::webhook_events::{
    InstallationEventRepository, WebhookEvent as GitHubEvent, WebhookEventPayload,
};
use serde::{Deserialize, Serialize};
use ssm_core::webhook::WebhookEvent;
use std::borrow::Cow;

/// The events the App subscribes to (also the manifest's `default_events`, where GitHub allows).
pub const HANDLED_EVENTS: [&str; 5] = [
    "ping",
    "installation",
    "installation_repositories",
    "repository_dispatch",
    "workflow_run",
];

/// Why a signed payload could not be understood (400).
#[derive(Debug, thiserror::Error)]
#[error("{event} payload does not have the expected shape: {reason}")]
pub struct EventError {
    pub event: String,
    pub reason: String,
}

/// Converts a (verified) payload of event `event` into our enum.
pub fn parse(event: &str, body: &[u8]) -> Result<WebhookEvent, EventError> {
    if !HANDLED_EVENTS.contains(&event) {
        return Ok(WebhookEvent::Ignored {
            event: event.to_owned(),
        });
    }
    let err = |reason: String| EventError {
        event: event.to_owned(),
        reason,
    };
    if event == "workflow_run" {
        return workflow_run(body).map_err(err);
    }
    let parsed =
        GitHubEvent::try_from_header_and_body(event, body).map_err(|e| err(e.to_string()))?;
    let installation_id = parsed.installation.as_ref().map(|i| i.id().into_inner());
    let repository = parsed
        .repository
        .as_ref()
        .and_then(|r| r.full_name.clone())
        .unwrap_or_default();
    Ok(match parsed.specific {
        WebhookEventPayload::Ping(p) => WebhookEvent::Ping {
            hook_id: p.hook_id.map(|h| h.into_inner()),
        },
        WebhookEventPayload::Installation(p) => {
            installation(*p, installation_id).ok_or_else(|| err("no installation".into()))?
        }
        WebhookEventPayload::InstallationRepositories(p) => {
            WebhookEvent::InstallationRepositories {
                action: wire(&p.action),
                installation_id: installation_id.ok_or_else(|| err("no installation".into()))?,
                added: names(&p.repositories_added),
                removed: names(&p.repositories_removed),
            }
        }
        WebhookEventPayload::RepositoryDispatch(p) => dispatch(*p, repository, installation_id),
        _ => WebhookEvent::Ignored {
            event: event.to_owned(),
        },
    })
}

fn installation(p: InstallationWebhookEventPayload, id: Option<u64>) -> Option<WebhookEvent> {
    Some(WebhookEvent::Installation {
        action: wire(&p.action),
        installation_id: id?,
        repositories: names(p.repositories.as_deref().unwrap_or_default()),
    })
}

fn dispatch(
    p: RepositoryDispatchWebhookEventPayload,
    repository: String,
    installation_id: Option<u64>,
) -> WebhookEvent {
    // GitHub puts the dispatch's `event_type` in `action`.
    WebhookEvent::RepositoryDispatch {
        event_type: p.action,
        repository,
        installation_id,
    }
}

/// A `workflow_run` delivery: the fields the App logs, borrowed from the body where GitHub did not
/// escape them; every other field is skipped without being built. Field names are GitHub's.
#[derive(Deserialize)]
struct WorkflowRunDelivery<'a> {
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow)]
    workflow_run: RunFields<'a>,
    #[serde(borrow, default)]
    repository: Option<RepositoryFields<'a>>,
}

#[derive(Deserialize)]
struct RunFields<'a> {
    id: u64,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(borrow, default)]
    conclusion: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RepositoryFields<'a> {
    #[serde(borrow, default)]
    full_name: Option<Cow<'a, str>>,
}

fn workflow_run(body: &[u8]) -> Result<WebhookEvent, String> {
    let d: WorkflowRunDelivery = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let run = d.workflow_run;
    Ok(WebhookEvent::WorkflowRun {
        action: d.action.into_owned(),
        repository: d
            .repository
            .and_then(|r| r.full_name)
            .map(Cow::into_owned)
            .unwrap_or_default(),
        run_id: run.id,
        name: run.name.map(Cow::into_owned).unwrap_or_default(),
        event: run.event.into_owned(),
        status: run.status.into_owned(),
        conclusion: run.conclusion.map(Cow::into_owned),
    })
}

fn names(repos: &[InstallationEventRepository]) -> Vec<String> {
    repos.iter().map(|r| r.full_name.clone()).collect()
}

/// An octocrab action enum as GitHub spells it (`created`, `in_progress`...).
fn wire<T: Serialize>(action: &T) -> String {
    match serde_json::to_value(action) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../testkit/fixtures/webhooks/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn parses_fixtures() {
        assert_eq!(
            parse("ping", &fixture("ping")).expect("ping"),
            WebhookEvent::Ping { hook_id: Some(30) }
        );
        assert_eq!(
            parse("installation", &fixture("installation")).expect("installation"),
            WebhookEvent::Installation {
                action: "created".into(),
                installation_id: 2,
                repositories: vec!["octo-org/infra".into()],
            }
        );
        assert_eq!(
            parse(
                "installation_repositories",
                &fixture("installation_repositories")
            )
            .expect("installation_repositories"),
            WebhookEvent::InstallationRepositories {
                action: "added".into(),
                installation_id: 2,
                added: vec!["octo-org/web".into()],
                removed: vec![],
            }
        );
        assert_eq!(
            parse("repository_dispatch", &fixture("repository_dispatch"))
                .expect("repository_dispatch"),
            WebhookEvent::RepositoryDispatch {
                event_type: "ssm-drift".into(),
                repository: "octo-org/infra".into(),
                installation_id: Some(2),
            }
        );
        assert_eq!(
            parse("workflow_run", &fixture("workflow_run")).expect("workflow_run"),
            WebhookEvent::WorkflowRun {
                action: "completed".into(),
                repository: "octo-org/infra".into(),
                run_id: 30433642,
                name: "reconcile".into(),
                event: "repository_dispatch".into(),
                status: "completed".into(),
                conclusion: Some("success".into()),
            }
        );
    }

    #[test]
    fn other_events_are_ignored_without_reading_the_body() {
        for event in ["star", "test", "push", ""] {
            assert_eq!(
                parse(event, b"not json").expect("ignored"),
                WebhookEvent::Ignored {
                    event: event.into()
                }
            );
        }
    }

    #[test]
    fn wrong_shape_is_an_error_not_a_panic() {
        assert!(parse("installation", b"{\"action\": 1}").is_err());
        assert!(parse("installation", b"{\"action\": \"created\"}").is_err());
        assert!(parse("workflow_run", b"not json").is_err());
        assert!(
            parse(
                "workflow_run",
                br#"{"action": "completed", "workflow_run": {}}"#
            )
            .is_err()
        );
        assert!(parse("ping", b"[]").is_err());
    }

    #[test]
    fn workflow_run_reads_escaped_missing_and_null_fields() {
        let body = br#"{"action": "in_progress", "sender": {"login": "x"},
            "workflow_run": {"id": 7, "name": "re\u0063oncile \"drift\"", "event": "push",
                             "status": "in_progress", "conclusion": null, "extra": [1, {"a": 2}]},
            "repository": {"full_name": "octo-org/infra", "owner": {"login": "octo-org"}}}"#;
        assert_eq!(
            parse("workflow_run", body).expect("workflow_run"),
            WebhookEvent::WorkflowRun {
                action: "in_progress".into(),
                repository: "octo-org/infra".into(),
                run_id: 7,
                name: "reconcile \"drift\"".into(),
                event: "push".into(),
                status: "in_progress".into(),
                conclusion: None,
            }
        );
        let no_repo = br#"{"action": "requested", "workflow_run": {"id": 8, "event": "push", "status": "queued"}}"#;
        match parse("workflow_run", no_repo).expect("no repository") {
            WebhookEvent::WorkflowRun {
                repository, name, ..
            } => {
                assert_eq!((repository.as_str(), name.as_str()), ("", ""));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn workflow_run_refuses_duplicate_fields_and_wrong_types() {
        // Two `status` keys: which one a reader takes differs between parsers, so neither is taken.
        let dup = br#"{"action": "completed", "workflow_run": {"id": 1, "event": "push",
                       "status": "completed", "status": "queued"}}"#;
        let err = parse("workflow_run", dup).expect_err("duplicate field");
        assert!(err.reason.contains("duplicate field"), "{err}");
        for body in [
            &br#"{"action": "completed", "workflow_run": {"id": "1", "event": "push", "status": "x"}}"#[..],
            br#"{"action": "completed", "workflow_run": {"id": -1, "event": "push", "status": "x"}}"#,
            br#"{"action": 3, "workflow_run": {"id": 1, "event": "push", "status": "x"}}"#,
            br#"{"workflow_run": {"id": 1, "event": "push", "status": "x"}}"#,
            br#"{"action": "completed", "workflow_run": {"id": 1, "event": "push", "status": "x"}} trailing"#,
        ] {
            assert!(parse("workflow_run", body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}

//! GitHub's webhook payloads, parsed with octocrab's `webhook_events` types at the edge and
//! converted into our own [`WebhookEvent`]. Only the events the App acts on are parsed at all;
//! every other event name is [`WebhookEvent::Ignored`] without reading the body, so an event
//! octocrab does not know (or a `test` delivery) is still a 200.

use octocrab::models::webhook_events::payload::{
    InstallationWebhookEventPayload, RepositoryDispatchWebhookEventPayload,
    WorkflowRunWebhookEventPayload,
};
use octocrab::models::webhook_events::{
    InstallationEventRepository, WebhookEvent as GitHubEvent, WebhookEventPayload,
};
use serde::Serialize;
use ssm_core::webhook::WebhookEvent;

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
        WebhookEventPayload::WorkflowRun(p) => {
            workflow_run(*p, repository).map_err(|reason| err(reason.into()))?
        }
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

/// Octocrab leaves `workflow_run` itself as JSON; the fields we log are read from it here.
fn workflow_run(
    p: WorkflowRunWebhookEventPayload,
    repository: String,
) -> Result<WebhookEvent, &'static str> {
    let run = &p.workflow_run;
    let text = |field: &str| run.get(field).and_then(|v| v.as_str()).map(str::to_owned);
    Ok(WebhookEvent::WorkflowRun {
        action: wire(&p.action),
        repository,
        run_id: run
            .get("id")
            .and_then(|v| v.as_u64())
            .ok_or("workflow_run.id is missing")?,
        name: text("name").unwrap_or_default(),
        event: text("event").ok_or("workflow_run.event is missing")?,
        status: text("status").ok_or("workflow_run.status is missing")?,
        conclusion: text("conclusion"),
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
}

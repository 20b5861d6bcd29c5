//! GitHub's webhook payloads, converted into our own [`WebhookEvent`] at the edge. Only the events
//! the App acts on are parsed at all; every other event name is [`WebhookEvent::Ignored`] without
//! reading the body, so an event the App does not know (or a `test` delivery) is still a 200.
//!
//! Each handled event is read in one pass into a small struct of the fields the App uses, borrowed
//! from the body where GitHub did not escape them; every other field is skipped without being
//! built. Field names are GitHub's ("Webhook events and payloads").
//!
//! octocrab's `webhook_events` models are not used here (octocrab stays the App's REST client):
//! - parsing any event with them links the deserializers of every event GitHub has, about 0.6 MB
//!   of the App's binary, to read at most four fields;
//! - they type a workflow run as a `serde_json::Value` and build the full repository and sender
//!   models (dozens of owned strings and parsed URLs) that the App never reads. Profiled under
//!   `bench/load.sh`, that parse was about 30 % of the webhook route's CPU;
//! - their action enums refuse an action GitHub adds later with a 400, which makes GitHub mark the
//!   delivery failed; here an action is its string, and the App acts on the ones it knows.

use serde::Deserialize;
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
    let parsed = match event {
        "ping" => from_object(body).map(ping),
        "installation" => from_object(body).map(installation),
        "installation_repositories" => from_object(body).map(installation_repositories),
        "repository_dispatch" => from_object(body).map(dispatch),
        "workflow_run" => from_object(body).map(workflow_run),
        _ => {
            return Ok(WebhookEvent::Ignored {
                event: event.to_owned(),
            });
        }
    };
    parsed.map_err(|reason| EventError {
        event: event.to_owned(),
        reason,
    })
}

/// Parses a payload that must be one JSON object (serde's derived structs would also take an
/// array of the fields in order, which GitHub never sends).
fn from_object<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, String> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => serde_json::from_slice(body).map_err(|e| e.to_string()),
        _ => Err("the payload is not a JSON object".into()),
    }
}

#[derive(Deserialize)]
struct PingDelivery {
    #[serde(default)]
    hook_id: Option<u64>,
}

fn ping(d: PingDelivery) -> WebhookEvent {
    WebhookEvent::Ping { hook_id: d.hook_id }
}

/// `installation.id`: present on every event an App receives, and the only field of it we read.
#[derive(Deserialize)]
struct InstallationRef {
    id: u64,
}

#[derive(Deserialize)]
struct RepositoryRef<'a> {
    #[serde(borrow)]
    full_name: Cow<'a, str>,
}

#[derive(Deserialize)]
struct InstallationDelivery<'a> {
    #[serde(borrow)]
    action: Cow<'a, str>,
    installation: InstallationRef,
    /// Absent when the installation covers every repository of the account.
    #[serde(borrow, default)]
    repositories: Option<Vec<RepositoryRef<'a>>>,
}

fn installation(d: InstallationDelivery) -> WebhookEvent {
    WebhookEvent::Installation {
        action: d.action.into_owned(),
        installation_id: d.installation.id,
        repositories: names(d.repositories.unwrap_or_default()),
    }
}

#[derive(Deserialize)]
struct InstallationRepositoriesDelivery<'a> {
    #[serde(borrow)]
    action: Cow<'a, str>,
    installation: InstallationRef,
    #[serde(borrow)]
    repositories_added: Vec<RepositoryRef<'a>>,
    #[serde(borrow)]
    repositories_removed: Vec<RepositoryRef<'a>>,
}

fn installation_repositories(d: InstallationRepositoriesDelivery) -> WebhookEvent {
    WebhookEvent::InstallationRepositories {
        action: d.action.into_owned(),
        installation_id: d.installation.id,
        added: names(d.repositories_added),
        removed: names(d.repositories_removed),
    }
}

#[derive(Deserialize)]
struct DispatchDelivery<'a> {
    /// GitHub puts the dispatch's `event_type` in `action`.
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow, default)]
    repository: Option<RepositoryFields<'a>>,
    #[serde(default)]
    installation: Option<InstallationRef>,
}

fn dispatch(d: DispatchDelivery) -> WebhookEvent {
    WebhookEvent::RepositoryDispatch {
        event_type: d.action.into_owned(),
        repository: full_name(d.repository),
        installation_id: d.installation.map(|i| i.id),
    }
}

fn names(repos: Vec<RepositoryRef>) -> Vec<String> {
    repos
        .into_iter()
        .map(|r| r.full_name.into_owned())
        .collect()
}

fn full_name(repository: Option<RepositoryFields>) -> String {
    repository
        .and_then(|r| r.full_name)
        .map(Cow::into_owned)
        .unwrap_or_default()
}

/// A `workflow_run` delivery, the one event a busy repository sends by the hundred (each run's
/// requested, in_progress and completed): the fields the App logs.
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

fn workflow_run(d: WorkflowRunDelivery) -> WebhookEvent {
    let run = d.workflow_run;
    WebhookEvent::WorkflowRun {
        action: d.action.into_owned(),
        repository: full_name(d.repository),
        run_id: run.id,
        name: run.name.map(Cow::into_owned).unwrap_or_default(),
        event: run.event.into_owned(),
        status: run.status.into_owned(),
        conclusion: run.conclusion.map(Cow::into_owned),
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
    fn every_subscribed_event_is_parsed_not_ignored() {
        // Each handled event must reach its parser (a body that is not JSON is then an error),
        // none may fall through to Ignored.
        for event in HANDLED_EVENTS {
            assert!(parse(event, b"not json").is_err(), "{event} was ignored");
        }
        // And the manifest subscribes to none the App would drop.
        let path = format!("{}/manifest.json", env!("CARGO_MANIFEST_DIR"));
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("manifest")).expect("json");
        let subscribed = manifest["default_events"]
            .as_array()
            .expect("default_events");
        assert!(!subscribed.is_empty());
        for event in subscribed {
            let event = event.as_str().expect("an event name");
            assert!(HANDLED_EVENTS.contains(&event), "{event} is not handled");
        }
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
    fn installation_events_read_ids_names_and_new_actions() {
        // An action GitHub adds later is passed on as its string (the App acts on the ones it
        // knows); an installation of every repository lists none.
        let body = br#"{"action": "new_permissions_accepted", "installation": {"id": 9,
            "account": {"login": "o"}}, "sender": {"login": "x"}}"#;
        assert_eq!(
            parse("installation", body).expect("installation"),
            WebhookEvent::Installation {
                action: "new_permissions_accepted".into(),
                installation_id: 9,
                repositories: vec![],
            }
        );
        let body = br#"{"action": "removed", "installation": {"id": 9},
            "repositories_added": [], "repositories_removed": [{"id": 1, "full_name": "o/\u0061"}]}"#;
        assert_eq!(
            parse("installation_repositories", body).expect("installation_repositories"),
            WebhookEvent::InstallationRepositories {
                action: "removed".into(),
                installation_id: 9,
                added: vec![],
                removed: vec!["o/a".into()],
            }
        );
        let dispatch = br#"{"action": "ssm-drift", "client_payload": {"a": [1]}}"#;
        assert_eq!(
            parse("repository_dispatch", dispatch).expect("repository_dispatch"),
            WebhookEvent::RepositoryDispatch {
                event_type: "ssm-drift".into(),
                repository: String::new(),
                installation_id: None,
            }
        );
    }

    #[test]
    fn installation_events_refuse_missing_ids_lists_and_non_objects() {
        for (event, body) in [
            (
                "installation",
                &br#"{"action": "created", "installation": {}}"#[..],
            ),
            (
                "installation",
                br#"{"action": "created", "installation": {"id": "9"}}"#,
            ),
            (
                "installation",
                br#"{"action": "created", "installation": {"id": 9}, "repositories": [{}]}"#,
            ),
            (
                "installation_repositories",
                br#"{"action": "added", "installation": {"id": 9}, "repositories_added": []}"#,
            ),
            (
                "installation_repositories",
                br#"["added", {"id": 9}, [], []]"#,
            ),
            ("repository_dispatch", br#"{"client_payload": {}}"#),
            ("repository_dispatch", br#"{"action": "a", "action": "b"}"#),
            ("ping", b""),
            ("ping", b"  null"),
        ] {
            assert!(
                parse(event, body).is_err(),
                "{event}: {}",
                String::from_utf8_lossy(body)
            );
        }
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

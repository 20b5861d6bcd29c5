//! `POST /webhooks`: signature, size cap, dedupe, installation cache upkeep.

use ssm_core::broker::RepoName;
use ssm_core::webhook::sign;

use crate::helpers::{ROTATED_SECRET, WEBHOOK_SECRET, fixture, spawn_app};

const VECTOR_SIGNATURE: &str =
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

#[tokio::test]
async fn githubs_test_vector_is_accepted_and_one_flipped_byte_is_401() {
    let Some(app) = spawn_app("githubs_test_vector_is_accepted_and_one_flipped_byte_is_401").await
    else {
        return;
    };
    let body = b"Hello, World!".to_vec();
    let resp = app
        .post_webhook("test", "d-1", Some(VECTOR_SIGNATURE), body.clone())
        .await;
    assert_eq!(resp.status(), 200);
    let mut flipped = body;
    flipped[7] ^= 0x01;
    let resp = app
        .post_webhook("test", "d-2", Some(VECTOR_SIGNATURE), flipped)
        .await;
    assert_eq!(resp.status(), 401);
    let err: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(err["error"]["code"], "bad_signature");
    let resp = app
        .post_webhook("test", "d-3", None, b"Hello, World!".to_vec())
        .await;
    assert_eq!(resp.status(), 401);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("ssm_app_webhooks_accepted_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ssm_app_webhooks_rejected_total 2\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn rotated_secret_is_accepted_and_redeliveries_are_not_reprocessed() {
    let Some(app) =
        spawn_app("rotated_secret_is_accepted_and_redeliveries_are_not_reprocessed").await
    else {
        return;
    };
    let body = fixture("ping");
    let sig = sign(ROTATED_SECRET.as_bytes(), &body);
    let first = app
        .post_webhook(
            "ping",
            "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            Some(&sig),
            body.clone(),
        )
        .await;
    assert_eq!(first.status(), 200);
    let first: serde_json::Value = first.json().await.expect("json");
    assert_eq!(first["status"], "accepted");
    let again = app
        .post_webhook(
            "ping",
            "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            Some(&sig),
            body,
        )
        .await;
    assert_eq!(again.status(), 200);
    let again: serde_json::Value = again.json().await.expect("json");
    assert_eq!(again["status"], "duplicate");
    assert!(
        app.metrics()
            .await
            .contains("ssm_app_webhooks_duplicate_total 1\n")
    );
}

#[tokio::test]
async fn installation_events_keep_the_installation_cache_current() {
    let Some(app) = spawn_app("installation_events_keep_the_installation_cache_current").await
    else {
        return;
    };
    let web = RepoName::parse("octo-org/web").expect("repo");
    let infra = RepoName::parse("octo-org/infra").expect("repo");
    let post = async |event: &str, delivery: &str| {
        let body = fixture(event);
        let sig = sign(WEBHOOK_SECRET.as_bytes(), &body);
        app.post_webhook(event, delivery, Some(&sig), body).await
    };
    // Signature is checked before anything: a correctly signed unknown event is 200 and ignored.
    assert_eq!(post("installation", "i-1").await.status(), 200);
    assert_eq!(app.state.installations.get(&infra), Some(2));
    assert_eq!(post("installation_repositories", "i-2").await.status(), 200);
    assert_eq!(app.state.installations.get(&web), Some(2));
    for event in ["repository_dispatch", "workflow_run"] {
        assert_eq!(post(event, event).await.status(), 200);
    }
    assert!(crate::helpers::logs().contains("reconcile requested"));

    // The cached installation serves token requests without a lookup.
    app.github.install("octo-org/web", 2);
    let creds = app.assume(crate::helpers::ALLOWED_ROLE).await;
    app.client()
        .token(
            &creds,
            "octo-org/web",
            &crate::helpers::perms(&[("contents", "write")]),
        )
        .await
        .expect("token");
    assert_eq!(app.github.installation_lookups(), 0);

    // Uninstalling forgets it.
    let deleted = String::from_utf8(fixture("installation"))
        .expect("utf8")
        .replacen("\"created\"", "\"deleted\"", 1)
        .into_bytes();
    let sig = sign(WEBHOOK_SECRET.as_bytes(), &deleted);
    assert_eq!(
        app.post_webhook("installation", "i-3", Some(&sig), deleted)
            .await
            .status(),
        200
    );
    assert_eq!(app.state.installations.get(&web), None);
    assert!(app.state.tokens.is_empty());

    // A signed payload of the wrong shape is 400, not a panic.
    let bad = b"{\"action\": 1}".to_vec();
    let sig = sign(WEBHOOK_SECRET.as_bytes(), &bad);
    assert_eq!(
        app.post_webhook("installation", "i-4", Some(&sig), bad)
            .await
            .status(),
        400
    );
}

#[tokio::test]
async fn bodies_over_25_mb_are_413() {
    let Some(app) = spawn_app("bodies_over_25_mb_are_413").await else {
        return;
    };
    let body = vec![b' '; 25 * 1024 * 1024 + 1];
    let sig = sign(WEBHOOK_SECRET.as_bytes(), &body);
    let resp = app
        .http
        .post(format!("{}/webhooks", app.address))
        .header("x-github-event", "push")
        .header("x-hub-signature-256", sig)
        .body(body)
        .send()
        .await;
    match resp {
        Ok(resp) => assert_eq!(resp.status(), 413),
        // The server may close the connection after answering 413 before the upload finished.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e:?}"),
    }
    assert!(
        app.metrics()
            .await
            .contains("ssm_app_webhooks_rejected_total 1\n")
    );
}

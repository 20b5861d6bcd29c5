//! What an anonymous flood of `POST /v1/tokens` costs: STS calls per 1000 junk requests of each
//! kind, and requests per second, against the App on 127.0.0.1 with a counting fake STS.
//!
//! Every kind the broker can refuse without STS (malformed, unsigned, stale, dated ahead, for
//! another audience, signed for another repository) must cost no STS call; a replayed forged
//! request costs one (one per sender racing for it); only freshly forged requests (signed with
//! made-up keys, well-formed) reach STS every time, which reserved concurrency bounds. Run with
//! `--nocapture` for the figures.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use actix_web::{App, HttpResponse, HttpServer, web};
use aws_credential_types::Credentials;
use ssm_core::broker::{SCOPE_HEADER, TokenRequest};

use crate::helpers::{TestApp, perms, spawn_app_with};

/// Requests of each kind.
const REQUESTS: usize = 1000;
/// Concurrent senders.
const SENDERS: usize = 16;

/// An STS that counts calls and refuses every one, as STS does a forged signature.
fn counting_sts() -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let counter = calls.clone();
    let server = HttpServer::new(move || {
        let counter = counter.clone();
        App::new().default_service(web::to(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            async {
                HttpResponse::Forbidden()
                    .content_type("text/xml")
                    .body("<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code></Error></ErrorResponse>")
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}/"), calls)
}

fn forged_credentials(n: usize) -> Credentials {
    Credentials::new(format!("AKIAFLOOD{n:08}"), "made-up", None, None, "flood")
}

/// A token request for acme/infra whose identity is signed with made-up keys at `at`, for
/// `repository` (the scope) by `app`'s client (or one for another audience).
fn junk(
    app: &TestApp,
    audience: Option<&str>,
    at: SystemTime,
    repository: &str,
    n: usize,
) -> String {
    let want = perms(&[("contents", "write")]);
    let client = audience.map_or_else(|| app.client(), |a| app.client_for(a));
    let identity = client
        .sign_identity(&forged_credentials(n), at, repository, &want)
        .expect("sign");
    serde_json::to_string(&TokenRequest {
        repository: "acme/infra".into(),
        permissions: want,
        identity,
        rejected_token_sha256: None,
    })
    .expect("json")
}

/// Sends `bodies` (cycled to [`REQUESTS`]) from [`SENDERS`] tasks; returns (statuses, req/s).
async fn flood(app: &TestApp, bodies: Vec<String>) -> (BTreeMap<u16, usize>, f64) {
    let bodies = Arc::new(bodies);
    let url = format!("{}/v1/tokens", app.address);
    let started = Instant::now();
    let tasks: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let (http, url, bodies) = (app.http.clone(), url.clone(), bodies.clone());
            tokio::spawn(async move {
                let mut statuses = BTreeMap::new();
                for i in (sender..REQUESTS).step_by(SENDERS) {
                    let status = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(bodies[i % bodies.len()].clone())
                        .send()
                        .await
                        .expect("send")
                        .status()
                        .as_u16();
                    *statuses.entry(status).or_insert(0) += 1;
                }
                statuses
            })
        })
        .collect();
    let mut statuses = BTreeMap::new();
    for task in tasks {
        for (status, n) in task.await.expect("sender") {
            *statuses.entry(status).or_insert(0) += n;
        }
    }
    (statuses, REQUESTS as f64 / started.elapsed().as_secs_f64())
}

#[tokio::test]
async fn junk_token_requests_are_refused_before_sts() {
    let (sts, calls) = counting_sts();
    let Some(app) = spawn_app_with("junk_token_requests_are_refused_before_sts", |o| {
        o.sts_endpoint = Some(sts.parse().expect("url"));
    })
    .await
    else {
        return;
    };
    let now = SystemTime::now();
    let minutes = |m: u64| Duration::from_secs(60 * m);
    let one = |audience, at, repo| vec![junk(&app, audience, at, repo, 0)];
    let unsigned = {
        let mut req: TokenRequest =
            serde_json::from_str(&junk(&app, None, now, "acme/infra", 0)).expect("json");
        req.identity.headers.remove("authorization");
        vec![serde_json::to_string(&req).expect("json")]
    };
    let unscoped = {
        let mut req: TokenRequest =
            serde_json::from_str(&junk(&app, None, now, "acme/infra", 0)).expect("json");
        req.identity.headers.remove(SCOPE_HEADER);
        vec![serde_json::to_string(&req).expect("json")]
    };
    let kinds: Vec<(&str, Vec<String>, usize)> = vec![
        ("malformed JSON", vec![r#"{"repository": "#.to_owned()], 0),
        ("no Authorization", unsigned, 0),
        ("no scope header", unscoped, 0),
        (
            "signed 6 minutes ago",
            one(None, now - minutes(6), "acme/infra"),
            0,
        ),
        (
            "dated 2 minutes ahead",
            one(None, now + minutes(2), "acme/infra"),
            0,
        ),
        (
            "for another audience",
            one(Some("another-broker"), now, "acme/infra"),
            0,
        ),
        (
            "signed for another repository",
            one(None, now, "acme/web"),
            0,
        ),
        (
            // Concurrent first sends may each miss the remembered refusal: one per sender.
            "one forged request, replayed",
            one(None, now, "acme/infra"),
            SENDERS,
        ),
        (
            "forged, each freshly signed",
            (0..REQUESTS)
                .map(|n| junk(&app, None, now, "acme/infra", n))
                .collect(),
            REQUESTS,
        ),
    ];
    println!("anonymous flood of POST /v1/tokens: {REQUESTS} requests per kind, {SENDERS} senders");
    println!("| junk kind | status | STS calls | req/s |");
    println!("|---|---|---|---|");
    for (kind, bodies, most_calls) in kinds {
        let before = calls.load(Ordering::Relaxed);
        let (statuses, rate) = flood(&app, bodies).await;
        let made = calls.load(Ordering::Relaxed) - before;
        println!("| {kind} | {statuses:?} | {made} | {rate:.0} |");
        assert!(made <= most_calls, "{kind}: {made} STS calls");
        assert!(
            statuses.keys().all(|s| matches!(s, 400 | 401)),
            "{kind}: {statuses:?}"
        );
    }
    assert_eq!(app.github.access_token_requests(), 0);
}

//! `POST /v1/tokens` end to end: broker client → App → moto STS → GitHub emulator.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use ssm_broker_client::BrokerClientError;
use ssm_core::broker::{AUDIENCE_HEADER, ErrorBody, SCOPE_HEADER, TokenDigest, TokenRequest};

use crate::helpers::{
    ALLOWED_ROLE, AUDIENCE, INSTALLATION, TestApp, logs, perms, spawn_app, spawn_app_with,
};

async fn request_body(app: &TestApp, repo: &str, permissions: &[(&str, &str)]) -> TokenRequest {
    let creds = app.assume(ALLOWED_ROLE).await;
    TokenRequest {
        repository: repo.into(),
        permissions: perms(permissions),
        identity: app
            .client()
            .sign_identity(&creds, SystemTime::now(), repo, &perms(permissions))
            .expect("sign"),
        rejected_token_sha256: None,
    }
}

async fn error_of(resp: reqwest::Response) -> (u16, ErrorBody) {
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("error body"))
}

#[tokio::test]
async fn allowed_role_gets_a_token_scoped_to_one_repository() {
    let Some(app) = spawn_app("allowed_role_gets_a_token_scoped_to_one_repository").await else {
        return;
    };
    let creds = app.assume(ALLOWED_ROLE).await;
    let resp = app
        .client()
        .token(&creds, "acme/infra", &perms(&[("contents", "write")]))
        .await
        .expect("token");
    assert_eq!(resp.repository, "acme/infra");
    assert_eq!(resp.permissions, perms(&[("contents", "write")]));
    assert_eq!(
        resp.token.expose().len(),
        520,
        "long opaque tokens pass through intact"
    );
    assert!(resp.expires_at > chrono::Utc::now() + chrono::Duration::minutes(50));
    assert_eq!(
        app.github.access_token_bodies(),
        [json!({"repositories": ["infra"], "permissions": {"contents": "write"}})]
    );

    // The token works for exactly that repository, as GitHub enforces it.
    let dispatch = |repo: &str| {
        app.http
            .post(format!("{}/repos/{repo}/dispatches", app.github.base_url()))
            .header("authorization", format!("token {}", resp.token.expose()))
            .json(&json!({"event_type": "ssm-drift", "client_payload": {"stack": "S"}}))
            .send()
    };
    assert_eq!(dispatch("acme/infra").await.expect("send").status(), 204);
    assert_eq!(dispatch("acme/other").await.expect("send").status(), 404);
    let d = app.github.dispatches();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].scope.installation_id, INSTALLATION);
    assert_eq!(d[0].scope.repositories, ["acme/infra"]);
}

#[tokio::test]
async fn second_request_for_the_same_scope_is_served_from_the_cache() {
    let Some(app) = spawn_app("second_request_for_the_same_scope_is_served_from_the_cache").await
    else {
        return;
    };
    let creds = app.assume(ALLOWED_ROLE).await;
    let client = app.client();
    let want = perms(&[("contents", "write")]);
    let first = client
        .token(&creds, "acme/infra", &want)
        .await
        .expect("first");
    let second = client
        .token(&creds, "acme/infra", &want)
        .await
        .expect("second");
    assert_eq!(first.token, second.token);
    assert_eq!(app.github.access_token_requests(), 1);
    assert_eq!(app.github.installation_lookups(), 1);
    // Another scope is another token.
    let read = client
        .token(&creds, "acme/infra", &perms(&[("contents", "read")]))
        .await
        .expect("read");
    assert_ne!(read.token, first.token);
    assert_eq!(app.github.access_token_requests(), 2);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("ssm_app_tokens_issued_total 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ssm_app_tokens_cached_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ssm_app_github_request_duration_seconds_count 3\n"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_for_one_scope_mint_once() {
    let Some(app) = spawn_app("concurrent_misses_for_one_scope_mint_once").await else {
        return;
    };
    let creds = app.assume(ALLOWED_ROLE).await;
    let client = app.client();
    let want = perms(&[("contents", "write")]);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (client, creds, want) = (client.clone(), creds.clone(), want.clone());
            tokio::spawn(async move { client.token(&creds, "acme/infra", &want).await })
        })
        .collect();
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.expect("join").expect("token").token);
    }
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_eq!(app.github.access_token_requests(), 1);
}

#[tokio::test]
async fn policy_refusals_are_403_and_say_which_part() {
    let Some(app) = spawn_app("policy_refusals_are_403_and_say_which_part").await else {
        return;
    };
    let stranger = app.assume("arn:aws:iam::123456789012:role/stranger").await;
    let err = app
        .client()
        .token(&stranger, "acme/infra", &perms(&[("contents", "write")]))
        .await
        .expect_err("unknown role");
    assert!(!err.is_retryable());
    assert!(
        matches!(&err, BrokerClientError::Status { status: 403, code, message }
            if code == "unknown_principal" && message.contains("role/stranger")),
        "{err:?}"
    );

    let creds = app.assume(ALLOWED_ROLE).await;
    for (repo, p, code) in [
        (
            "acme/infra",
            [("contents", "admin")],
            "permission_not_allowed",
        ),
        (
            "acme/infra",
            [("issues", "write")],
            "permission_not_allowed",
        ),
        (
            "evil/infra",
            [("contents", "read")],
            "repository_not_allowed",
        ),
    ] {
        let err = app
            .client()
            .token(&creds, repo, &perms(&p))
            .await
            .expect_err("beyond policy");
        assert!(
            matches!(&err, BrokerClientError::Status { status: 403, code: c, .. } if c == code),
            "{repo} {p:?}: {err:?}"
        );
    }
    assert_eq!(
        app.github.access_token_requests(),
        0,
        "GitHub is not asked for refused scopes"
    );
    assert!(
        app.metrics()
            .await
            .contains("ssm_app_tokens_denied_total 4\n")
    );
}

#[tokio::test]
async fn identity_requests_that_do_not_bind_to_this_broker_are_401() {
    let Some(app) = spawn_app("identity_requests_that_do_not_bind_to_this_broker_are_401").await
    else {
        return;
    };
    let good = request_body(&app, "acme/infra", &[("contents", "write")]).await;
    let mutate = |f: &dyn Fn(&mut TokenRequest)| {
        let mut r = good.clone();
        f(&mut r);
        r
    };
    let auth_without_audience = |r: &mut TokenRequest| {
        let auth = r.identity.headers["authorization"].replace(&format!(";{AUDIENCE_HEADER}"), "");
        r.identity.headers.insert("authorization".into(), auth);
    };
    let creds = app.assume(ALLOWED_ROLE).await;
    let sign = |at: SystemTime, repo: &str, level: &str| {
        app.client()
            .sign_identity(&creds, at, repo, &perms(&[("contents", level)]))
            .expect("sign")
    };
    let now = SystemTime::now();
    let minutes = |m: u64| Duration::from_secs(60 * m);
    let stale = sign(now - minutes(6), "acme/infra", "write");
    let future = sign(now + minutes(2), "acme/infra", "write");
    let other_scope = sign(now, "acme/web", "write");
    let other_permissions = sign(now, "acme/infra", "read");
    let other_audience = app
        .client_for("another-broker")
        .sign_identity(
            &creds,
            SystemTime::now(),
            "acme/infra",
            &perms(&[("contents", "write")]),
        )
        .expect("sign");
    let cases: Vec<(&str, TokenRequest)> = vec![
        (
            "missing audience header",
            mutate(&|r| {
                r.identity.headers.remove(AUDIENCE_HEADER);
            }),
        ),
        ("audience not signed", mutate(&auth_without_audience)),
        (
            "audience of another broker",
            mutate(&|r| r.identity = other_audience.clone()),
        ),
        ("stale date", mutate(&|r| r.identity = stale.clone())),
        (
            "dated two minutes ahead",
            mutate(&|r| r.identity = future.clone()),
        ),
        (
            "signed for another repository",
            mutate(&|r| r.identity = other_scope.clone()),
        ),
        (
            "signed for other permissions",
            mutate(&|r| r.identity = other_permissions.clone()),
        ),
        (
            "no scope header",
            mutate(&|r| {
                r.identity.headers.remove(SCOPE_HEADER);
            }),
        ),
        (
            "wrong body",
            mutate(&|r| r.identity.body = "Action=GetSessionToken&Version=2011-06-15".into()),
        ),
        (
            "other host",
            mutate(&|r| r.identity.url = "https://sts.evil.example/".into()),
        ),
        (
            "query string",
            mutate(&|r| r.identity.url.push_str("?Action=GetCallerIdentity")),
        ),
        ("GET", mutate(&|r| r.identity.method = "GET".into())),
        (
            "no signature",
            mutate(&|r| {
                r.identity.headers.remove("authorization");
            }),
        ),
    ];
    for (name, body) in cases {
        let (status, err) = error_of(
            app.post_token(&serde_json::to_value(&body).expect("json"))
                .await,
        )
        .await;
        assert_eq!(status, 401, "{name}");
        assert_eq!(err.error.code, "identity_rejected", "{name}");
    }
    assert_eq!(app.github.access_token_requests(), 0);
    // The unmodified request still works.
    let resp = app
        .post_token(&serde_json::to_value(&good).expect("json"))
        .await;
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn malformed_requests_are_400_and_oversized_413() {
    let Some(app) = spawn_app("malformed_requests_are_400_and_oversized_413").await else {
        return;
    };
    let good = request_body(&app, "acme/infra", &[("contents", "write")]).await;
    let mut bad_repo = serde_json::to_value(&good).expect("json");
    bad_repo["repository"] = json!("not-a-repo");
    let mut no_perms = serde_json::to_value(&good).expect("json");
    no_perms["permissions"] = json!({});
    let mut bad_level = serde_json::to_value(&good).expect("json");
    bad_level["permissions"] = json!({"contents": "owner"});
    for body in [
        bad_repo,
        no_perms,
        bad_level,
        json!({"repository": "acme/infra"}),
        json!([1, 2]),
    ] {
        let (status, err) = error_of(app.post_token(&body).await).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(err.error.code, "bad_request");
    }
    let resp = app
        .http
        .post(format!("{}/v1/tokens", app.address))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 400);
    let mut huge = serde_json::to_value(&good).expect("json");
    huge["identity"]["body"] = json!("x".repeat(100 * 1024));
    assert_eq!(app.post_token(&huge).await.status(), 413);
}

#[tokio::test]
async fn app_not_installed_is_404() {
    let Some(app) = spawn_app("app_not_installed_is_404").await else {
        return;
    };
    let creds = app.assume(ALLOWED_ROLE).await;
    let err = app
        .client()
        .token(
            &creds,
            "acme/not-installed",
            &perms(&[("contents", "write")]),
        )
        .await
        .expect_err("not installed");
    assert!(
        matches!(&err, BrokerClientError::Status { status: 404, code, .. } if code == "not_installed"),
        "{err:?}"
    );
}

#[tokio::test]
async fn github_5xx_and_rate_limits_are_retried() {
    let Some(app) = spawn_app("github_5xx_and_rate_limits_are_retried").await else {
        return;
    };
    let creds = app.assume(ALLOWED_ROLE).await;
    app.github
        .fail_next("GET", "/repos/acme/infra/installation", 503, 1);
    app.github
        .fail_next("POST", "/app/installations/7/access_tokens", 502, 1);
    app.github
        .fail_next("POST", "/app/installations/7/access_tokens", 429, 1);
    let started = std::time::Instant::now();
    let resp = app
        .client()
        .token(&creds, "acme/infra", &perms(&[("contents", "write")]))
        .await
        .expect("token after retries");
    assert_eq!(resp.permissions, perms(&[("contents", "write")]));
    assert_eq!(app.github.installation_lookups(), 2);
    assert_eq!(app.github.access_token_requests(), 3);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
}

#[tokio::test]
async fn persistent_github_failure_is_502_and_bounded() {
    let Some(app) = spawn_app("persistent_github_failure_is_502_and_bounded").await else {
        return;
    };
    let creds = app.assume(ALLOWED_ROLE).await;
    app.github
        .fail_next("POST", "/app/installations/7/access_tokens", 500, 100);
    let err = app
        .client()
        .token(&creds, "acme/infra", &perms(&[("contents", "write")]))
        .await
        .expect_err("GitHub down");
    assert!(
        matches!(&err, BrokerClientError::Status { status: 502, code, .. } if code == "github_error"),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(
        app.github.access_token_requests(),
        4,
        "one try and three retries"
    );
}

#[tokio::test]
async fn clock_skew_is_corrected_from_githubs_date_header() {
    let Some(app) = spawn_app("clock_skew_is_corrected_from_githubs_date_header").await else {
        return;
    };
    app.github.set_clock_skew(chrono::Duration::minutes(-5));
    let creds = app.assume(ALLOWED_ROLE).await;
    let resp = app
        .client()
        .token(&creds, "acme/infra", &perms(&[("contents", "write")]))
        .await
        .expect("token after skew correction");
    assert_eq!(resp.repository, "acme/infra");
    let skew = app.state.github.skew_secs();
    assert!((-302..=-298).contains(&skew), "learnt skew {skew}");
    assert!(logs().contains("correcting the clock skew"));
}

#[tokio::test]
async fn no_token_key_or_jwt_is_ever_logged() {
    let Some(app) = spawn_app("no_token_key_or_jwt_is_ever_logged").await else {
        return;
    };
    let creds = app.assume(ALLOWED_ROLE).await;
    let client = app.client();
    let want = perms(&[("contents", "write")]);
    app.github
        .fail_next("POST", "/app/installations/7/access_tokens", 401, 1);
    let a = client
        .token(&creds, "acme/infra", &want)
        .await
        .expect("token");
    let b = client
        .token(&creds, "acme/infra", &want)
        .await
        .expect("cached");
    let _refused = client
        .token(&creds, "acme/infra", &perms(&[("contents", "admin")]))
        .await;
    let log = logs();
    assert!(
        log.contains("installation token issued"),
        "audit lines are there"
    );
    assert!(log.contains("arn:aws:sts::123456789012:assumed-role/integrity/integrity-test"));
    assert!(
        log.contains("decision=\"refused\"") || log.contains("decision=refused"),
        "refusals are audited"
    );
    for secret in [
        a.token.expose(),
        b.token.expose(),
        creds.secret_access_key(),
    ] {
        assert!(!log.contains(secret), "a secret leaked into the logs");
    }
    for secret in [
        crate::helpers::WEBHOOK_SECRET,
        crate::helpers::ROTATED_SECRET,
    ] {
        assert!(
            !log.contains(secret),
            "a webhook secret leaked into the logs"
        );
    }
    let session = creds.session_token().expect("session token");
    assert!(
        !log.contains(session),
        "the session token leaked into the logs"
    );
    assert!(!log.contains("eyJ"), "a JWT leaked into the logs");
    assert!(
        !log.contains("PRIVATE KEY"),
        "the App key leaked into the logs"
    );
    assert!(
        !log.contains("Signature="),
        "a SigV4 signature leaked into the logs"
    );
}

#[tokio::test]
async fn health_and_metrics() {
    let Some(app) = spawn_app("health_and_metrics").await else {
        return;
    };
    let get = |url: String| app.http.get(url).send();
    let resp = get(format!("{}/healthz", app.address)).await.expect("send");
    assert_eq!(resp.status(), 200);
    // Metrics are not on the public listener (the Function URL): only on their own.
    let public = get(format!("{}/metrics", app.address)).await.expect("send");
    assert_eq!(public.status(), 404);
    let resp = get(format!("{}/metrics", app.metrics_address))
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain; version=0.0.4")
    );
    let text = resp.text().await.expect("text");
    for name in [
        "ssm_app_tokens_issued_total",
        "ssm_app_tokens_denied_total",
        "ssm_app_tokens_cached_total",
        "ssm_app_webhooks_accepted_total",
        "ssm_app_webhooks_rejected_total",
        "ssm_app_github_request_duration_seconds_bucket",
    ] {
        assert!(
            text.contains(&format!("# TYPE {}", name.trim_end_matches("_bucket"))),
            "{name}"
        );
    }
}

#[tokio::test]
async fn sts_unreachable_is_502_and_retryable() {
    let Some(app) = spawn_app_with("sts_unreachable_is_502_and_retryable", |o| {
        o.sts_endpoint = Some("http://127.0.0.1:1/".parse().expect("url"));
    })
    .await
    else {
        return;
    };
    let creds = app.assume(ALLOWED_ROLE).await;
    let err = app
        .client()
        .token(&creds, "acme/infra", &perms(&[("contents", "write")]))
        .await
        .expect_err("STS down");
    assert!(
        matches!(&err, BrokerClientError::Status { status: 502, code, .. } if code == "sts_unavailable"),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn an_sts_that_does_not_confirm_the_identity_is_401() {
    // Anything but a 2xx GetCallerIdentityResponse from the STS endpoint rejects the caller.
    let Some(app) = spawn_app_with("an_sts_that_does_not_confirm_the_identity_is_401", |o| {
        // The GitHub emulator answers POST / with 404 JSON: not STS.
        o.sts_endpoint = Some(o.github_api_url.clone());
    })
    .await
    else {
        return;
    };
    let creds = app.assume(ALLOWED_ROLE).await;
    let err = app
        .client()
        .token(&creds, "acme/infra", &perms(&[("contents", "write")]))
        .await
        .expect_err("not STS");
    assert!(
        matches!(&err, BrokerClientError::Status { status: 401, code, .. } if code == "identity_rejected"),
        "{err:?}"
    );
    assert_eq!(app.github.access_token_requests(), 0);
}

/// A string no other test logs.
fn marker(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{what}{nanos}")
}

/// Lines of the shared log that contain `needle`.
fn lines_with(needle: &str) -> Vec<String> {
    logs()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

// ---- Issue 10, point 1 ------------------------------------------------------------------------

/// The attack from the issue: sign without the audience header, then add the header and append a
/// second `SignedHeaders` naming it. The old checker read the last `SignedHeaders` and moto (which
/// does not verify signatures) answered, so this was 201.
#[tokio::test]
async fn an_audience_header_added_after_signing_is_refused() {
    let Some(app) = spawn_app("an_audience_header_added_after_signing_is_refused").await else {
        return;
    };
    let creds = app.assume(ALLOWED_ROLE).await;
    let unbound = app
        .client()
        .sign_identity_with_headers(
            &creds,
            SystemTime::now(),
            BTreeMap::from([(
                "content-type".to_owned(),
                "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
            )]),
        )
        .expect("sign");
    let auth = unbound.headers["authorization"].to_owned();
    assert!(!auth.contains(AUDIENCE_HEADER), "{auth}");
    let signed = auth
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("SignedHeaders")
        .to_owned();
    let mut attack = TokenRequest {
        repository: "acme/infra".into(),
        permissions: perms(&[("contents", "write")]),
        identity: unbound,
        rejected_token_sha256: None,
    };
    attack
        .identity
        .headers
        .insert(AUDIENCE_HEADER.to_owned(), AUDIENCE.to_owned());
    attack.identity.headers.insert(
        "authorization".to_owned(),
        format!("{auth}, SignedHeaders={signed};{AUDIENCE_HEADER}"),
    );
    let (status, err) = error_of(
        app.post_token(&serde_json::to_value(&attack).expect("json"))
            .await,
    )
    .await;
    assert_eq!(status, 401, "{err:?}");
    assert_eq!(err.error.code, "identity_rejected");
    assert!(err.error.message.contains("exactly once"), "{err:?}");

    // A repeated security header, in another case or as a byte-identical JSON key, is refused
    // and named.
    let good = request_body(&app, "acme/infra", &[("contents", "write")]).await;
    let mut twice = good.clone();
    let date = twice.identity.headers["x-amz-date"].to_owned();
    twice.identity.headers.append("X-Amz-Date", date.clone());
    let (status, err) = error_of(
        app.post_token(&serde_json::to_value(&twice).expect("json"))
            .await,
    )
    .await;
    assert_eq!(
        (status, err.error.code.as_str()),
        (401, "identity_rejected")
    );
    assert!(err.error.message.contains("\"x-amz-date\""), "{err:?}");
    let text = serde_json::to_string(&good).expect("json").replacen(
        "\"headers\":{",
        &format!("\"headers\":{{\"x-amz-date\":\"{date}\","),
        1,
    );
    let resp = app
        .http
        .post(format!("{}/v1/tokens", app.address))
        .header("content-type", "application/json")
        .body(text)
        .send()
        .await
        .expect("send");
    let (status, err) = error_of(resp).await;
    assert_eq!(
        (status, err.error.code.as_str()),
        (401, "identity_rejected")
    );
    assert!(err.error.message.contains("\"x-amz-date\""), "{err:?}");
    assert_eq!(app.github.access_token_requests(), 0);

    // The genuine request, forwarded with the Authorization rebuilt from its parts, still works.
    let resp = app
        .post_token(&serde_json::to_value(&good).expect("json"))
        .await;
    assert_eq!(resp.status(), 201);
}

// ---- Issue 10, point 2 ------------------------------------------------------------------------

#[tokio::test]
async fn caller_strings_cannot_forge_audit_lines_or_colour_the_log() {
    let Some(app) = spawn_app("caller_strings_cannot_forge_audit_lines_or_colour_the_log").await
    else {
        return;
    };
    let mark = marker("FORGED");
    let good =
        serde_json::to_value(request_body(&app, "acme/infra", &[("contents", "write")]).await)
            .expect("json");
    let forged_line = format!(
        "acme/x\n2026-11-28T01:00:00Z  INFO audit: {mark} decision=\"issued\" caller=\"admin\""
    );
    let mut bad_repo = good.clone();
    bad_repo["repository"] = json!(forged_line);
    let mut coloured = good.clone();
    coloured["permissions"] = json!({format!("\u{1b}[31m{mark}\nWARN audit:"): "write"});
    let mut coloured_level = good.clone();
    coloured_level["permissions"] = json!({"contents": format!("\u{1b}[2J{mark}")});
    let mut field = good;
    field[format!("x\n{mark} INFO audit: decision=\"issued\"")] = json!(1);
    for body in [bad_repo, coloured, coloured_level, field] {
        let (status, err) = error_of(app.post_token(&body).await).await;
        assert_eq!((status, err.error.code.as_str()), (400, "bad_request"));
    }
    let lines = lines_with(&mark);
    assert_eq!(lines.len(), 4, "one line per request: {lines:#?}");
    for line in &lines {
        assert!(
            line.contains("request refused") && line.contains("decision=\"refused\""),
            "the marker appears only inside the real audit line: {line}"
        );
        assert!(!line.contains('\u{1b}'), "no ESC byte: {line:?}");
    }
    assert!(
        !logs().contains('\u{1b}'),
        "no ESC byte anywhere in the log"
    );
}

// ---- Issue 10, point 3 ------------------------------------------------------------------------

#[tokio::test]
async fn unknown_request_fields_are_400() {
    let Some(app) = spawn_app("unknown_request_fields_are_400").await else {
        return;
    };
    let good =
        serde_json::to_value(request_body(&app, "acme/infra", &[("contents", "write")]).await)
            .expect("json");
    let mut repositories = good.clone();
    repositories["repositories"] = json!(["acme/infra", "acme/other"]);
    let mut query = good.clone();
    query["identity"]["query"] = json!("Action=GetCallerIdentity");
    for (field, body) in [("repositories", repositories), ("query", query)] {
        let (status, err) = error_of(app.post_token(&body).await).await;
        assert_eq!((status, err.error.code.as_str()), (400, "bad_request"));
        assert!(err.error.message.contains(field), "{err:?}");
    }
    assert_eq!(app.github.access_token_requests(), 0);
    assert_eq!(app.post_token(&good).await.status(), 201);
}

// ---- Issue 10, point 4 ------------------------------------------------------------------------

#[tokio::test]
async fn every_refusal_is_audited_and_unknown_routes_answer_json() {
    let Some(app) = spawn_app("every_refusal_is_audited_and_unknown_routes_answer_json").await
    else {
        return;
    };
    let mark = marker("ua-");
    let send = |method: reqwest::Method, path: &str, ua: String, body: Vec<u8>, ct: &str| {
        app.http
            .request(method, format!("{}{path}", app.address))
            .header("user-agent", ua)
            .header("content-type", ct.to_owned())
            .body(body)
            .send()
    };
    let json_ct = "application/json";
    let cases = [
        (
            reqwest::Method::POST,
            "/v1/tokens",
            b"{not json".to_vec(),
            json_ct,
            400,
            "bad_request",
        ),
        (
            reqwest::Method::POST,
            "/v1/tokens",
            b"{}".to_vec(),
            "text/plain",
            400,
            "bad_request",
        ),
        (
            reqwest::Method::POST,
            "/v1/tokens",
            vec![b' '; 100 * 1024],
            json_ct,
            413,
            "payload_too_large",
        ),
        (
            reqwest::Method::GET,
            "/v1/tokens",
            Vec::new(),
            json_ct,
            405,
            "method_not_allowed",
        ),
        (
            reqwest::Method::DELETE,
            "/healthz",
            Vec::new(),
            json_ct,
            405,
            "method_not_allowed",
        ),
        (
            reqwest::Method::GET,
            "/v1/nothing-here",
            Vec::new(),
            json_ct,
            404,
            "not_found",
        ),
        (
            reqwest::Method::POST,
            "/",
            Vec::new(),
            json_ct,
            404,
            "not_found",
        ),
    ];
    for (i, (method, path, body, ct, want_status, want_code)) in cases.into_iter().enumerate() {
        let ua = format!("{mark}-{i}");
        let resp = send(method.clone(), path, ua.clone(), body, ct)
            .await
            .expect("send");
        let allow = resp
            .headers()
            .get("allow")
            .map(|v| v.to_str().expect("ascii").to_owned());
        let (status, err) = error_of(resp).await;
        assert_eq!(
            (status, err.error.code.as_str()),
            (want_status, want_code),
            "{method} {path}"
        );
        if want_status == 405 {
            let want = if path == "/healthz" { "GET" } else { "POST" };
            assert_eq!(allow.as_deref(), Some(want), "{method} {path}");
        }
        let lines = lines_with(&format!("user_agent=\"{ua}\""));
        assert_eq!(lines.len(), 1, "{method} {path}: {lines:#?}");
        assert!(
            lines[0].contains(" audit:")
                && lines[0].contains("decision=\"refused\"")
                && lines[0].contains(&format!("status={want_status}"))
                && lines[0].contains(&format!("code=\"{want_code}\"")),
            "{}",
            lines[0]
        );
    }
    assert!(
        app.metrics()
            .await
            .contains("ssm_app_requests_malformed_total 3\n")
    );
}

// ---- Issue 10, point 5 ------------------------------------------------------------------------

#[tokio::test]
async fn a_rejected_token_is_replaced_once_and_only_when_its_hash_matches() {
    let Some(app) =
        spawn_app("a_rejected_token_is_replaced_once_and_only_when_its_hash_matches").await
    else {
        return;
    };
    let creds = app.assume(ALLOWED_ROLE).await;
    let client = app.client();
    let want = perms(&[("contents", "write")]);
    let dispatch = |token: String| {
        app.http
            .post(format!(
                "{}/repos/acme/infra/dispatches",
                app.github.base_url()
            ))
            .header("authorization", format!("token {token}"))
            .json(&json!({"event_type": "ssm-drift"}))
            .send()
    };
    let a = client
        .token(&creds, "acme/infra", &want)
        .await
        .expect("first");
    assert!(app.github.revoke_token(a.token.expose()));
    assert_eq!(
        dispatch(a.token.expose().to_owned())
            .await
            .expect("send")
            .status(),
        401,
        "GitHub rejects the revoked token"
    );

    // The digest of any other token evicts nothing: no caller can force a mint with it.
    let unrelated = client
        .replace_token(
            &creds,
            "acme/infra",
            &want,
            &TokenDigest::of("ghs_not_ours"),
        )
        .await
        .expect("cached");
    assert_eq!(unrelated.token, a.token);
    assert_eq!(app.github.access_token_requests(), 1);
    let mut malformed =
        serde_json::to_value(request_body(&app, "acme/infra", &[("contents", "write")]).await)
            .expect("json");
    malformed["rejected_token_sha256"] = json!("not-a-digest");
    let (status, err) = error_of(app.post_token(&malformed).await).await;
    assert_eq!((status, err.error.code.as_str()), (400, "bad_request"));

    // The digest of the cached token replaces it, and the new one works.
    let b = client
        .replace_token(
            &creds,
            "acme/infra",
            &want,
            &TokenDigest::of(a.token.expose()),
        )
        .await
        .expect("replaced");
    assert_ne!(b.token, a.token);
    assert_eq!(app.github.access_token_requests(), 2);
    assert_eq!(
        dispatch(b.token.expose().to_owned())
            .await
            .expect("send")
            .status(),
        204
    );

    // Another caller reporting the old token gets the new one, without a mint.
    let c = client
        .replace_token(
            &creds,
            "acme/infra",
            &want,
            &TokenDigest::of(a.token.expose()),
        )
        .await
        .expect("the replacement");
    assert_eq!(c.token, b.token);
    assert_eq!(app.github.access_token_requests(), 2);

    // Reporting the fresh one at once is rate limited (429, retryable, Retry-After).
    let err = client
        .replace_token(
            &creds,
            "acme/infra",
            &want,
            &TokenDigest::of(b.token.expose()),
        )
        .await
        .expect_err("rate limited");
    assert!(
        matches!(&err, BrokerClientError::Status { status: 429, code, .. } if code == "token_replace_rate_limited"),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(app.github.access_token_requests(), 2);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("ssm_app_tokens_replaced_total 1\n"),
        "{metrics}"
    );
    let log = logs();
    assert!(log.contains("source=Replaced") && log.contains("rejected_token=Unmatched"));
    for t in [&a.token, &b.token] {
        assert!(!log.contains(t.expose()), "a token leaked into the logs");
    }
}

// ---- Issue 10, point 6 ------------------------------------------------------------------------

#[tokio::test]
async fn an_sts_endpoint_outside_the_allowlist_names_expected_and_received() {
    // The default broker: no override, its region's endpoint and the global one accepted.
    let Some(app) = spawn_app_with(
        "an_sts_endpoint_outside_the_allowlist_names_expected_and_received",
        |o| {
            o.sts_endpoint = None;
            o.aws_region = Some("eu-west-1".into());
        },
    )
    .await
    else {
        return;
    };
    let creds = app.assume(ALLOWED_ROLE).await;
    // Signed for another endpoint (here moto's): refused before anything is sent anywhere.
    let err = app
        .client()
        .token(&creds, "acme/infra", &perms(&[("contents", "write")]))
        .await
        .expect_err("not an accepted endpoint");
    let BrokerClientError::Status {
        status: 401,
        code,
        message,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(code, "identity_rejected");
    assert!(
        message.contains(&format!(
            "{:?}",
            app.moto.trim_end_matches('/').to_owned() + "/"
        )) && message.contains("https://sts.amazonaws.com/, https://sts.eu-west-1.amazonaws.com/"),
        "{message}"
    );
}

//! Load test of `POST /v1/tokens` on cache hits against the real `ssm-app` binary.
//!
//! Starts the GitHub emulator in-process and `ssm-app` (built by cargo with the bench profile) as a
//! child process pointed at it and at moto (`AWS_ENDPOINT_URL`), then measures, in one run:
//! - `GET /healthz`: the HTTP stack's floor, the peer every other figure is compared with;
//! - `POST /v1/tokens`, token cached, the same signed identity reused (identity remembered);
//! - `POST /v1/tokens`, token cached, a fresh signed identity each time (an STS round trip to moto);
//! - the child's resident memory at rest and after load.
//!
//! `ssm-app` logs as in production: `RUST_LOG` at its default (`info`, so every token issued writes
//! its audit line) and JSON lines, to a file; the run fails if the audit lines are missing.
//!
//! Run with `bash bench/app-tokens.sh` (starts moto). Knobs: `BENCH_SECS` (default 10),
//! `BENCH_CONCURRENCY` (default 16), `BENCH_FRESH` (signed identities for the STS scenario, 200).
//! With `SSM_BENCH_OUT` set (the script sets it), the figures also go to `app-tokens.json` there,
//! for `bench/report.py`.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use ssm_broker_client::{BrokerClient, BrokerClientConfig};
use ssm_core::broker::TokenRequest;
use ssm_testkit::github::{GitHubEmulator, TEST_APP_PRIVATE_KEY_PEM, TEST_APP_PUBLIC_KEY_PEM};

const ROLE: &str = "arn:aws:iam::123456789012:role/integrity";
const AUDIENCE: &str = "ssm-broker.bench";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Stats {
    requests: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl Stats {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "requests": self.requests,
            "rps": self.rps(),
            "p50_ms": self.p50.as_secs_f64() * 1e3,
            "p99_ms": self.p99.as_secs_f64() * 1e3,
        })
    }

    fn print(&self, name: &str) {
        println!(
            "{name:<44} {:>9.0} req/s   p50 {:>8.3} ms   p99 {:>8.3} ms   ({} requests)",
            self.rps(),
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.requests
        );
    }
}

fn stats(mut latencies: Vec<Duration>, elapsed: Duration) -> Stats {
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(i).copied().unwrap_or_default()
    };
    Stats {
        requests: latencies.len(),
        elapsed,
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// `concurrency` workers, each sending `make(i)` requests until `deadline` (or until `limit`
/// requests in all); every response must have status `expect`.
async fn load<F>(
    concurrency: usize,
    duration: Duration,
    limit: usize,
    expect: u16,
    make: F,
) -> Stats
where
    F: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let make = Arc::new(make);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, make, next) = (http.clone(), make.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= limit {
                        break;
                    }
                    let t = Instant::now();
                    let resp = make(&http, i).send().await.expect("request");
                    let status = resp.status().as_u16();
                    let _ = resp.bytes().await.expect("body");
                    latencies.push(t.elapsed());
                    assert_eq!(status, expect, "unexpected status");
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    stats(all, started.elapsed())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn assume(moto: &str) -> Credentials {
    ssm_testkit::assume_role(moto, ROLE, "bench").await
}

#[tokio::main]
async fn main() {
    let Some(moto) = ssm_testkit::moto_endpoint("app tokens benchmark") else {
        return;
    };
    let secs: u64 = env_or("BENCH_SECS", 10);
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 16);
    let fresh_count: usize = env_or("BENCH_FRESH", 200);
    let duration = Duration::from_secs(secs);

    let github = GitHubEmulator::start(1, TEST_APP_PUBLIC_KEY_PEM).await;
    github.install("acme/infra", 7);
    let dir = tempfile::tempdir().expect("tempdir");
    let key_path = dir.path().join("app-key.pem");
    let policy_path = dir.path().join("policy.json");
    std::fs::write(&key_path, TEST_APP_PRIVATE_KEY_PEM).expect("key file");
    std::fs::write(
        &policy_path,
        format!(
            r#"{{"rules": [{{"principal": "{ROLE}", "repositories": ["acme/infra"], "permissions": {{"contents": "write"}}}}]}}"#
        ),
    )
    .expect("policy file");
    let log_path = dir.path().join("ssm-app.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_ssm-app"))
        .env("SSM_APP_LISTEN", format!("127.0.0.1:{port}"))
        .env("GITHUB_APP_ID", "1")
        .env("GITHUB_APP_PRIVATE_KEY_FILE", &key_path)
        .env("GITHUB_WEBHOOK_SECRETS", "bench-secret")
        .env("GITHUB_API_URL", github.base_url())
        .env("SSM_STS_ENDPOINT", &moto)
        .env("SSM_BROKER_AUDIENCE", AUDIENCE)
        .env("SSM_BROKER_POLICY_FILE", &policy_path)
        // Production's logging (the App stack sets SSM_LOG_FORMAT=json and leaves RUST_LOG at its
        // default, info): an access-free but audited route, one JSON audit line per token issued,
        // written to a file as Lambda's stdout is written to its log stream.
        .env("RUST_LOG", "info")
        .env("SSM_LOG_FORMAT", "json")
        .stdout(Stdio::from(
            std::fs::File::create(&log_path).expect("ssm-app log file"),
        ))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ssm-app");
    let child = KillOnDrop(child);
    let base = format!("http://127.0.0.1:{port}");
    let probe = reqwest::Client::new();
    let up = Instant::now();
    while probe.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            up.elapsed() < Duration::from_secs(20),
            "ssm-app did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_rest = rss_kib(child.0.id());

    let client = BrokerClient::new(BrokerClientConfig {
        broker_url: base.clone(),
        audience: AUDIENCE.into(),
        sts_endpoint: moto.clone(),
        region: "us-east-1".into(),
        timeout: Duration::from_secs(10),
    })
    .expect("broker client");
    let creds = assume(&moto).await;
    let permissions = BTreeMap::from([("contents".to_owned(), "write".to_owned())]);
    client
        .token(&creds, "acme/infra", &permissions)
        .await
        .expect("first token (mint)");
    let reused = TokenRequest {
        repository: "acme/infra".into(),
        permissions: permissions.clone(),
        identity: client
            .sign_identity(&creds, SystemTime::now(), "acme/infra", &permissions)
            .expect("sign"),
        rejected_token_sha256: None,
    };
    let mut fresh = Vec::with_capacity(fresh_count);
    for _ in 0..fresh_count {
        let c = assume(&moto).await;
        fresh.push(TokenRequest {
            repository: "acme/infra".into(),
            permissions: permissions.clone(),
            identity: client
                .sign_identity(&c, SystemTime::now(), "acme/infra", &permissions)
                .expect("sign"),
            rejected_token_sha256: None,
        });
    }

    println!(
        "ssm-app /v1/tokens benchmark: {concurrency} concurrent clients, {secs} s per scenario, 2 shared cores"
    );
    let healthz_url = format!("{base}/healthz");
    let health = load(concurrency, duration, usize::MAX, 200, move |h, _| {
        h.get(&healthz_url)
    })
    .await;
    health.print("GET /healthz (peer: HTTP floor)");

    let tokens_url = format!("{base}/v1/tokens");
    let body = Arc::new(serde_json::to_vec(&reused).expect("json"));
    let url = tokens_url.clone();
    let hot = load(concurrency, duration, usize::MAX, 201, move |h, _| {
        h.post(&url)
            .header("content-type", "application/json")
            .body(body.as_ref().clone())
    })
    .await;
    hot.print("POST /v1/tokens cached, identity remembered");

    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        fresh
            .iter()
            .map(|r| serde_json::to_vec(r).expect("json"))
            .collect(),
    );
    let url = tokens_url.clone();
    let sts = load(
        concurrency.min(8),
        duration,
        bodies.len(),
        201,
        move |h, i| {
            h.post(&url)
                .header("content-type", "application/json")
                .body(bodies[i].clone())
        },
    )
    .await;
    sts.print("POST /v1/tokens cached, fresh identity (STS)");
    let rss_after = rss_kib(child.0.id());

    // The figures are worth quoting only if the audit trail was on: one line per token issued.
    let audit_lines = std::fs::read_to_string(&log_path)
        .expect("ssm-app log")
        .lines()
        .filter(|l| l.contains("\"installation token issued\""))
        .count();
    assert!(
        audit_lines >= hot.requests + sts.requests,
        "{audit_lines} audit lines for {} tokens issued: the audit trail was not on",
        hot.requests + sts.requests
    );
    println!("audit lines written (RUST_LOG=info, JSON): {audit_lines}");
    println!(
        "ratio tokens(cached, remembered) / healthz throughput: {:.2}",
        hot.rps() / health.rps()
    );
    println!(
        "ratio tokens(fresh identity via moto STS) / tokens(remembered) throughput: {:.3}",
        sts.rps() / hot.rps()
    );
    println!(
        "GitHub access-token mints during the run: {}",
        github.access_token_requests()
    );
    println!(
        "ssm-app resident memory: {:.1} MiB at rest, {:.1} MiB after load",
        rss_rest as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
    if let Some(dir) = std::env::var_os("SSM_BENCH_OUT") {
        let record = serde_json::json!({
            "concurrency": concurrency,
            "seconds": secs,
            "healthz": health.json(),
            "tokens_cached": hot.json(),
            "tokens_fresh_identity": sts.json(),
            "github_mints": github.access_token_requests(),
            "log": {"rust_log": "info", "format": "json", "audit_lines": audit_lines},
            "rss_kib": {"rest": rss_rest, "after": rss_after},
        });
        std::fs::create_dir_all(&dir).expect("bench output directory");
        let json = serde_json::to_vec_pretty(&record).expect("json");
        std::fs::write(std::path::Path::new(&dir).join("app-tokens.json"), json)
            .expect("write the bench record");
    }
}

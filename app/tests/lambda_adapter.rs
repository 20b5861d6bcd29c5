//! `ssm-app` as Lambda runs it: the AWS Lambda Web Adapter (`lambda-adapter`, an external
//! extension) and `ssm-app` (the `bootstrap`) as two processes against a local Lambda Runtime API
//! (this test), which hands them Function URL events (payload 2.0) and reads their answers:
//! `GET /healthz`, a signed webhook and a tampered one, a token request that gets a token (moto as
//! STS, the GitHub emulator as GitHub) and one the policy refuses. The first answer after spawning
//! is the cold start; `SSM_COLD_STARTS=N` measures N spawns and prints the median.
//!
//! Needs the adapter binary: `SSM_LAMBDA_ADAPTER=<path>`. `scripts/ci.d/22-app-lambda.sh` passes
//! the files of the Lambda zips (`extensions/lambda-adapter` from the layer, and `bootstrap` as
//! `SSM_APP_BOOTSTRAP`, else this crate's debug `ssm-app`). Without it the test is skipped, unless
//! `SSM_REQUIRE_LAMBDA_ADAPTER=1`.

#![expect(clippy::panic, reason = "test: failing loudly is the point")]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use aws_credential_types::Credentials;
use serde_json::{Value, json};
use ssm_broker_client::{BrokerClient, BrokerClientConfig};
use ssm_core::broker::TokenRequest;
use ssm_testkit::github::{GitHubEmulator, TEST_APP_PRIVATE_KEY_PEM, TEST_APP_PUBLIC_KEY_PEM};
use tokio::sync::{Notify, oneshot};

const APP_ID: u64 = 4242;
const AUDIENCE: &str = "ssm-broker:lambda-test";
const WEBHOOK_SECRET: &str = "It's a Secret to Everybody";
const ALLOWED_ROLE: &str = "arn:aws:iam::123456789012:role/integrity";
const OTHER_ROLE: &str = "arn:aws:iam::123456789012:role/stranger";
const POLICY: &str = r#"{"rules": [{"principal": "arn:aws:iam::123456789012:role/integrity",
  "repositories": ["acme/infra"], "permissions": {"contents": "write"}}]}"#;
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the Lambda service does for one execution environment, reduced to what the adapter uses.
#[derive(Default)]
struct RuntimeState {
    queue: Mutex<VecDeque<(String, Vec<u8>)>>,
    queued: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    extensions: Mutex<Vec<String>>,
    init_errors: Mutex<Vec<String>>,
}

#[derive(Debug)]
enum Answer {
    Response(Value),
    Error(String),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn register(req: HttpRequest, state: web::Data<RuntimeState>) -> HttpResponse {
    let name = req
        .headers()
        .get("lambda-extension-name")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    lock(&state.extensions).push(name.clone());
    HttpResponse::Ok()
        .insert_header(("Lambda-Extension-Identifier", format!("ext-{name}")))
        .json(json!({"functionName": "ssm-app", "functionVersion": "$LATEST", "handler": "bootstrap"}))
}

/// An extension waits here for INVOKE/SHUTDOWN; the adapter registers for neither.
async fn extension_next() -> HttpResponse {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    HttpResponse::Ok().json(json!({"eventType": "SHUTDOWN"}))
}

async fn invocation_next(state: web::Data<RuntimeState>) -> HttpResponse {
    loop {
        let notified = state.queued.notified();
        if let Some((id, event)) = lock(&state.queue).pop_front() {
            let deadline = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                + INVOKE_TIMEOUT;
            return HttpResponse::Ok()
                .insert_header(("Lambda-Runtime-Aws-Request-Id", id))
                .insert_header((
                    "Lambda-Runtime-Deadline-Ms",
                    deadline.as_millis().to_string(),
                ))
                .insert_header((
                    "Lambda-Runtime-Invoked-Function-Arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:ssm-app",
                ))
                .insert_header((
                    "Lambda-Runtime-Trace-Id",
                    "Root=1-00000000-000000000000000000000000",
                ))
                .content_type("application/json")
                .body(event);
        }
        notified.await;
    }
}

async fn invocation_answer(
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<RuntimeState>,
) -> HttpResponse {
    let (id, kind) = path.into_inner();
    let answer = match kind.as_str() {
        "response" => match serde_json::from_slice(&body) {
            Ok(v) => Answer::Response(v),
            Err(e) => Answer::Error(format!("response is not JSON: {e}")),
        },
        _ => Answer::Error(String::from_utf8_lossy(&body).into_owned()),
    };
    if let Some(tx) = lock(&state.waiting).remove(&id) {
        let _ = tx.send(answer);
    }
    HttpResponse::Accepted().finish()
}

async fn init_error(body: web::Bytes, state: web::Data<RuntimeState>) -> HttpResponse {
    lock(&state.init_errors).push(String::from_utf8_lossy(&body).into_owned());
    HttpResponse::Accepted().finish()
}

struct RuntimeApi {
    address: String,
    state: web::Data<RuntimeState>,
    next_id: Mutex<u64>,
}

impl RuntimeApi {
    fn start() -> RuntimeApi {
        let state = web::Data::new(RuntimeState::default());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind runtime API");
        let address = listener.local_addr().expect("addr").to_string();
        let data = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(8 << 20))
                .route("/2020-01-01/extension/register", web::post().to(register))
                .route(
                    "/2020-01-01/extension/event/next",
                    web::get().to(extension_next),
                )
                .route(
                    "/2018-06-01/runtime/invocation/next",
                    web::get().to(invocation_next),
                )
                .route(
                    "/2018-06-01/runtime/invocation/{id}/{kind}",
                    web::post().to(invocation_answer),
                )
                .route("/2018-06-01/runtime/init/error", web::post().to(init_error))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        RuntimeApi {
            address,
            state,
            next_id: Mutex::new(0),
        }
    }

    /// Queues one event; the answer arrives on the returned channel.
    fn enqueue(&self, event: &Value) -> oneshot::Receiver<Answer> {
        let id = {
            let mut n = lock(&self.next_id);
            *n += 1;
            format!("req-{n}")
        };
        let (tx, rx) = oneshot::channel();
        lock(&self.state.waiting).insert(id.clone(), tx);
        let body = serde_json::to_vec(event).expect("event");
        lock(&self.state.queue).push_back((id, body));
        self.state.queued.notify_waiters();
        rx
    }
}

/// A Function URL request (payload format 2.0, as Lambda sends it).
fn url_event(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Value {
    let mut hdrs: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    hdrs.insert("host".into(), "abc123.lambda-url.us-east-1.on.aws".into());
    hdrs.insert("x-forwarded-proto".into(), "https".into());
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": hdrs,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abc123",
            "domainName": "abc123.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "192.0.2.1", "userAgent": "lambda-adapter-test"},
            "requestId": "r",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Dec/2026:00:00:00 +0000",
            "timeEpoch": 0
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// Status and decoded JSON body of a Function URL answer.
fn url_answer(answer: Answer) -> (u16, Value) {
    let reply = match answer {
        Answer::Response(v) => v,
        Answer::Error(e) => panic!("the adapter reported an invocation error: {e}"),
    };
    let status = reply["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .expect("statusCode");
    assert_eq!(
        reply["isBase64Encoded"],
        json!(false),
        "JSON answers travel as text: {reply}"
    );
    let body = reply["body"].as_str().unwrap_or_default();
    (
        status,
        serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned())),
    )
}

/// One execution environment: its Runtime API and its two processes (killed on drop).
struct Environment {
    runtime: RuntimeApi,
    children: Vec<Child>,
    logs: PathBuf,
}

impl Environment {
    fn log_text(&self) -> String {
        ["adapter.log", "app.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.logs.join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Setup {
    adapter: PathBuf,
    bootstrap: PathBuf,
    dir: tempfile::TempDir,
    github: GitHubEmulator,
    moto: String,
    app_port: u16,
}

impl Setup {
    /// Spawns the adapter then the App, as Lambda starts extensions before the runtime.
    fn spawn(&self, run: &str) -> Environment {
        let runtime = RuntimeApi::start();
        let logs = self.dir.path().join(run);
        std::fs::create_dir_all(&logs).expect("log dir");
        let lambda_env = [
            ("AWS_LAMBDA_RUNTIME_API", runtime.address.clone()),
            ("AWS_LAMBDA_FUNCTION_NAME", "ssm-app".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/ssm-app".into()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            // The function's configuration (cdk/lib/github-app-stack.ts).
            ("AWS_LWA_PORT", self.app_port.to_string()),
            ("AWS_LWA_READINESS_CHECK_PATH", "/healthz".into()),
            ("SSM_APP_LISTEN", format!("127.0.0.1:{}", self.app_port)),
            ("GITHUB_APP_ID", APP_ID.to_string()),
            ("GITHUB_API_URL", self.github.base_url()),
            (
                "GITHUB_APP_PRIVATE_KEY_FILE",
                self.dir.path().join("key.pem").display().to_string(),
            ),
            ("GITHUB_WEBHOOK_SECRETS", WEBHOOK_SECRET.into()),
            ("SSM_STS_ENDPOINT", self.moto.clone()),
            ("SSM_BROKER_AUDIENCE", AUDIENCE.into()),
            ("SSM_BROKER_POLICY", POLICY.into()),
            ("SSM_LOG_FORMAT", "json".into()),
            ("RUST_LOG", "info".into()),
        ];
        let start = |bin: &Path, log: &str| -> Child {
            let out = std::fs::File::create(logs.join(log)).expect("log file");
            Command::new(bin)
                .env_clear()
                .envs(lambda_env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("log file"))
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()))
        };
        let adapter = start(&self.adapter, "adapter.log");
        let app = start(&self.bootstrap, "app.log");
        Environment {
            runtime,
            children: vec![adapter, app],
            logs,
        }
    }

    async fn invoke(&self, env: &Environment, event: &Value) -> (u16, Value) {
        let rx = env.runtime.enqueue(event);
        match tokio::time::timeout(INVOKE_TIMEOUT, rx).await {
            Ok(Ok(answer)) => url_answer(answer),
            _ => panic!(
                "no answer within {INVOKE_TIMEOUT:?}; init errors: {:?}\n{}",
                lock(&env.runtime.state.init_errors),
                env.log_text()
            ),
        }
    }
}

fn adapter_binary() -> Option<PathBuf> {
    match std::env::var_os("SSM_LAMBDA_ADAPTER") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ if std::env::var("SSM_REQUIRE_LAMBDA_ADAPTER").as_deref() == Ok("1") => {
            panic!("SSM_REQUIRE_LAMBDA_ADAPTER=1 but SSM_LAMBDA_ADAPTER is not set")
        }
        _ => {
            eprintln!(
                "skipping: SSM_LAMBDA_ADAPTER is not set; `bash scripts/ci.d/22-app-lambda.sh` runs this test"
            );
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_behind_the_web_adapter_answers_function_url_events() {
    let Some(adapter) = adapter_binary() else {
        return;
    };
    let Some(moto) =
        ssm_testkit::moto_endpoint("app_behind_the_web_adapter_answers_function_url_events")
    else {
        return;
    };
    let bootstrap = std::env::var_os("SSM_APP_BOOTSTRAP")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ssm-app")));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("key.pem"), TEST_APP_PRIVATE_KEY_PEM).expect("key");
    let github = GitHubEmulator::start(APP_ID, TEST_APP_PUBLIC_KEY_PEM).await;
    github.install("acme/infra", 7);
    let setup = Setup {
        adapter,
        bootstrap,
        dir,
        github,
        moto: moto.clone(),
        app_port: free_port(),
    };
    let healthz = url_event("GET", "/healthz", &[], None);

    // Cold starts: spawn → first answer, each in a fresh pair of processes.
    let spawns: usize = std::env::var("SSM_COLD_STARTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut cold = Vec::with_capacity(spawns);
    let mut env = None;
    for i in 0..spawns {
        drop(env.take());
        let started = Instant::now();
        let spawned = setup.spawn(&format!("run-{i}"));
        let (status, body) = setup.invoke(&spawned, &healthz).await;
        cold.push(started.elapsed());
        assert_eq!(
            (status, &body),
            (200, &json!({"status": "ok"})),
            "{}",
            spawned.log_text()
        );
        assert_eq!(
            *lock(&spawned.runtime.state.extensions),
            ["lambda-adapter"],
            "the adapter registers as the extension its file in /opt/extensions names"
        );
        env = Some(spawned);
    }
    let env = env.expect("one environment");
    cold.sort();
    eprintln!(
        "cold start (spawn adapter + ssm-app -> first /healthz answer), {spawns} spawn(s): median {:.1} ms, min {:.1} ms, max {:.1} ms",
        cold[spawns / 2].as_secs_f64() * 1e3,
        cold[0].as_secs_f64() * 1e3,
        cold[spawns - 1].as_secs_f64() * 1e3,
    );

    // A webhook: the raw body reaches the App unchanged (the HMAC verifies); a tampered one does not.
    let ping = include_str!("../../testkit/fixtures/webhooks/ping.json");
    let signature = ssm_core::webhook::sign(WEBHOOK_SECRET.as_bytes(), ping.as_bytes());
    let webhook = |sig: &str| {
        url_event(
            "POST",
            "/webhooks",
            &[
                ("content-type", "application/json"),
                ("x-github-event", "ping"),
                ("x-github-delivery", "d-1"),
                ("x-hub-signature-256", sig),
            ],
            Some(ping),
        )
    };
    let (status, body) = setup.invoke(&env, &webhook(&signature)).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("accepted")),
        "{body}"
    );
    let mut tampered = signature.clone();
    let last = tampered.pop().expect("a signature");
    tampered.push(if last == '0' { '1' } else { '0' });
    let (status, body) = setup.invoke(&env, &webhook(&tampered)).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("bad_signature")),
        "{body}"
    );

    // A token for the allowed role: signed identity → moto STS → policy → GitHub emulator.
    let client = BrokerClient::new(BrokerClientConfig {
        broker_url: "https://abc123.lambda-url.us-east-1.on.aws".into(),
        audience: AUDIENCE.into(),
        sts_endpoint: moto.clone(),
        region: "us-east-1".into(),
        timeout: Duration::from_secs(20),
    })
    .expect("client");
    let token_event = |creds: &Credentials| {
        let permissions = BTreeMap::from([("contents".to_owned(), "write".to_owned())]);
        let request = TokenRequest {
            repository: "acme/infra".into(),
            identity: client
                .sign_identity(creds, SystemTime::now(), "acme/infra", &permissions)
                .expect("sign"),
            permissions,
            rejected_token_sha256: None,
        };
        let body = serde_json::to_string(&request).expect("request");
        url_event(
            "POST",
            "/v1/tokens",
            &[("content-type", "application/json")],
            Some(&body),
        )
    };
    let allowed = ssm_testkit::assume_role(&moto, ALLOWED_ROLE, "lambda-adapter-test").await;
    let started = Instant::now();
    let (status, body) = setup.invoke(&env, &token_event(&allowed)).await;
    let first_token = started.elapsed();
    assert_eq!(status, 201, "{body}\n{}", env.log_text());
    let token = body["token"].as_str().expect("token");
    assert!(!token.is_empty());
    assert_eq!(body["repository"], json!("acme/infra"));
    assert_eq!(body["permissions"]["contents"], json!("write"));
    assert_eq!(setup.github.access_token_requests(), 1);
    eprintln!(
        "first token through the adapter (STS + GitHub, warm environment): {:.1} ms",
        first_token.as_secs_f64() * 1e3
    );

    // The policy refuses a role it does not name, through the same path.
    let stranger = ssm_testkit::assume_role(&moto, OTHER_ROLE, "lambda-adapter-test").await;
    let (status, body) = setup.invoke(&env, &token_event(&stranger)).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("unknown_principal")),
        "{body}"
    );
    assert_eq!(
        setup.github.access_token_requests(),
        1,
        "no token minted for a refused caller"
    );

    assert!(lock(&env.runtime.state.init_errors).is_empty());
    let logs = env.log_text();
    assert!(!logs.contains(token), "the token is never logged");
    assert!(!logs.contains("PRIVATE KEY") && !logs.contains(WEBHOOK_SECRET));
}

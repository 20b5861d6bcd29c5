//! `LocalFunction` against a real `lambda_runtime` function (the workspace's `bare-lambda`
//! example) and against a fake runtime driven from the test with reqwest.
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use ssm_sandbox::runtime::{
    FunctionSpec, LocalFunction, MAX_RESPONSE_BYTES, RESPONSE_TOO_LARGE, extract_bootstrap,
};
use ssm_sandbox::{InvokeError, Invoker as _};
use tokio::io::AsyncWriteExt as _;

/// What `bare-lambda` answers to every event.
fn bare_lambda_answer() -> Value {
    json!({
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": "{}",
        "isBase64Encoded": false
    })
}

/// Builds `ssm-crypto`'s `bare-lambda` example (debug) once, in this test binary's target dir.
/// As `cargo test --workspace` builds it (`--workspace --tests`: the same features for every
/// dependency), so under the suite it is fresh; `-p ssm-crypto` alone would recompile some 60
/// dependencies with other features (a minute and a half from an empty cache).
fn bare_lambda() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // This binary is <target>/debug/deps/runtime-<hash>.
        let exe = std::env::current_exe().unwrap();
        let target_dir = exe.ancestors().nth(3).unwrap();
        let output = std::process::Command::new(env!("CARGO"))
            .args([
                "build",
                "--workspace",
                "--tests",
                "--example",
                "bare-lambda",
            ])
            .args(["--message-format", "json-render-diagnostics"])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap();
        assert!(output.status.success(), "building bare-lambda failed");
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "bare-lambda")
            .and_then(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported no bare-lambda executable")
    })
    .clone()
}

fn spec(name: &str, bootstrap: PathBuf, timeout: Duration) -> FunctionSpec {
    FunctionSpec {
        name: name.to_owned(),
        bootstrap,
        env: BTreeMap::from([("AWS_REGION".to_owned(), "eu-west-1".to_owned())]),
        timeout,
        memory_mb: 128,
        handler: "bootstrap".to_owned(),
        log_file: None,
    }
}

/// A bootstrap that records its pid in `dir/pids` and never polls the Runtime API: the test
/// plays the runtime instead.
fn idle_bootstrap(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("bootstrap");
    let script = format!(
        "#!/bin/sh\necho $$ >> '{}'\nexec /bin/sleep 30\n",
        dir.join("pids").display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn pids(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("pids"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn is_running(pid: u32) -> bool {
    // A killed child is reaped by `LocalFunction`, so its /proc entry goes away.
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A fake runtime: a client of the function's Runtime API.
struct Runtime {
    http: reqwest::Client,
    base: String,
}

impl Runtime {
    fn new(function: &LocalFunction) -> Self {
        Runtime {
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            base: format!("http://127.0.0.1:{}/2018-06-01/runtime", function.port()),
        }
    }

    async fn next(&self) -> reqwest::Response {
        let response = self
            .http
            .get(format!("{}/invocation/next", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response
    }

    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/{path}", self.base))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// A function whose process never polls (30 s timeout), and the test as its runtime.
async fn driven(name: &str, dir: &Path) -> (Arc<LocalFunction>, Runtime) {
    let function = LocalFunction::start(spec(name, idle_bootstrap(dir), Duration::from_secs(30)))
        .await
        .unwrap();
    let runtime = Runtime::new(&function);
    (function, runtime)
}

/// The status line and headers of a `/next` answer, read from the socket.
async fn raw_next_head(port: u16) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut buf = [0; 4096];
    while !received.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::io::AsyncReadExt::read(&mut stream, &mut buf)
            .await
            .unwrap();
        assert!(n > 0, "connection closed mid-answer");
        received.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(received).unwrap()
}

fn request_id(response: &reqwest::Response) -> String {
    header(response, "Lambda-Runtime-Aws-Request-Id")
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

fn spawn_invoke(
    function: &Arc<LocalFunction>,
    event: Value,
) -> tokio::task::JoinHandle<Result<Value, InvokeError>> {
    let function = Arc::clone(function);
    tokio::spawn(async move { function.invoke(event).await })
}

#[tokio::test]
async fn bare_lambda_answers_invocations_from_one_warm_process() {
    let function = LocalFunction::start(spec("bare", bare_lambda(), Duration::from_secs(30)))
        .await
        .unwrap();
    for n in 0..3 {
        let answer = function.invoke(json!({"n": n})).await.unwrap();
        assert_eq!(answer, bare_lambda_answer());
    }
    assert_eq!(function.invocations(), 3);
    assert_eq!(function.cold_starts(), 1);
    function.stop().await;
}

#[tokio::test]
async fn concurrent_invocations_queue_and_all_complete() {
    let function = LocalFunction::start(spec("queued", bare_lambda(), Duration::from_secs(30)))
        .await
        .unwrap();
    let (a, b, c) = tokio::join!(
        function.invoke(json!({"n": 1})),
        function.invoke(json!({"n": 2})),
        function.invoke(json!({"n": 3})),
    );
    for answer in [a, b, c] {
        assert_eq!(answer.unwrap(), bare_lambda_answer());
    }
    assert_eq!(function.invocations(), 3);
    assert_eq!(function.cold_starts(), 1);
}

#[tokio::test]
async fn invocations_are_served_in_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let (function, runtime) = driven("ordered", dir.path()).await;
    let mut invocations = Vec::new();
    for n in 0..3 {
        invocations.push(spawn_invoke(&function, json!({"n": n})));
        // Each invoke reaches the queue before the next one is made.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for n in 0..3 {
        let next = runtime.next().await;
        let id = request_id(&next);
        assert_eq!(next.json::<Value>().await.unwrap(), json!({"n": n}));
        let (status, _) = runtime
            .post(
                &format!("invocation/{id}/response"),
                json!({"done": n}).to_string(),
            )
            .await;
        assert_eq!(status, 202);
    }
    for (n, invocation) in invocations.into_iter().enumerate() {
        assert_eq!(invocation.await.unwrap().unwrap(), json!({"done": n}));
    }
}

#[tokio::test]
async fn the_process_sees_lambdas_environment_and_not_ours() {
    // `env` as the bootstrap prints its environment to the log and exits.
    assert!(
        std::env::var_os("CARGO_MANIFEST_DIR").is_some(),
        "cargo test sets CARGO_MANIFEST_DIR for the test process"
    );
    let dir = tempfile::tempdir().unwrap();
    let zip = zip_with("bootstrap", &std::fs::read("/usr/bin/env").unwrap());
    let bootstrap = extract_bootstrap(&zip, &dir.path().join("task")).unwrap();
    let log = dir.path().join("function.log");
    let mut spec = spec("env-dump", bootstrap, Duration::from_secs(10));
    spec.env
        .insert("SSM_TABLE".to_owned(), "keys-table".to_owned());
    spec.log_file = Some(log.clone());
    spec.handler = "crypto.handler".to_owned();
    let function = LocalFunction::start(spec).await.unwrap();

    let error = function.invoke(json!({})).await.unwrap_err();
    assert!(
        matches!(&error, InvokeError::Unavailable(m) if m.contains("exit status: 0")),
        "{error}"
    );

    let dump = std::fs::read_to_string(&log).unwrap();
    let env: BTreeMap<&str, &str> = dump
        .lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once('='))
        .collect();
    let task_root = dir.path().join("task");
    let expected = [
        ("AWS_LAMBDA_FUNCTION_NAME", "env-dump".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            "/aws/lambda/env-dump".to_owned(),
        ),
        (
            "AWS_LAMBDA_RUNTIME_API",
            format!("127.0.0.1:{}", function.port()),
        ),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".to_owned()),
        ("_HANDLER", "crypto.handler".to_owned()),
        ("LAMBDA_TASK_ROOT", task_root.display().to_string()),
        ("TZ", ":UTC".to_owned()),
        ("SSM_TABLE", "keys-table".to_owned()),
    ];
    for (key, value) in expected {
        assert_eq!(env.get(key).copied(), Some(value.as_str()), "{key}");
    }
    assert!(env.contains_key("AWS_LAMBDA_LOG_STREAM_NAME"));
    assert!(env.contains_key("PATH"));
    for inherited in ["CARGO_MANIFEST_DIR", "HOME", "RUST_TEST_THREADS"] {
        assert!(
            !env.contains_key(inherited),
            "{inherited} leaked into the function"
        );
    }
}

fn zip_with(name: &str, content: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    zip.start_file(name, options).unwrap();
    zip.write_all(content).unwrap();
    zip.finish().unwrap().into_inner()
}

#[test]
fn extract_bootstrap_writes_an_executable_and_rejects_bad_zips() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let code = b"#!/bin/sh\nexit 0\n".repeat(1000);
    let path = extract_bootstrap(&zip_with("bootstrap", &code), dir.path()).unwrap();
    assert_eq!(path, dir.path().join("bootstrap"));
    let mut written = Vec::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_end(&mut written)
        .unwrap();
    assert_eq!(written, code);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);

    // Replacing it leaves no partial files behind.
    extract_bootstrap(&zip_with("bootstrap", b"v2"), dir.path()).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"v2");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let not_zip = extract_bootstrap(b"ELF, not a zip", dir.path()).unwrap_err();
    assert!(
        format!("{not_zip:#}").contains("not a readable zip"),
        "{not_zip:#}"
    );
    let missing = extract_bootstrap(&zip_with("handler.py", b"x"), dir.path()).unwrap_err();
    let missing = format!("{missing:#}");
    assert!(
        missing.contains("no `bootstrap`") && missing.contains("handler.py"),
        "{missing}"
    );
}

#[tokio::test]
async fn runtime_api_answers_as_lambda_does() {
    let dir = tempfile::tempdir().unwrap();
    let timeout = Duration::from_secs(30);
    let function = LocalFunction::start(spec("api", idle_bootstrap(dir.path()), timeout))
        .await
        .unwrap();
    let runtime = Runtime::new(&function);

    // Paths and methods the API does not have.
    let missing = runtime
        .http
        .get(format!("{}/invocation/next/extra", runtime.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let (status, _) = runtime.post("invocation/next", "").await;
    assert_eq!(status, 405);
    let (status, body) = runtime.post("invocation/no-such-id/response", "{}").await;
    assert_eq!(status, 400);
    assert_eq!(body["errorType"], "InvalidRequestID");

    // A response.
    let before = SystemTime::now();
    let invocation = spawn_invoke(&function, json!({"path": "/v1/encrypt"}));
    let next = runtime.next().await;
    let id = request_id(&next);
    assert_eq!(id.len(), 36);
    assert_eq!(
        header(&next, "Lambda-Runtime-Invoked-Function-Arn"),
        "arn:aws:lambda:eu-west-1:123456789012:function:api"
    );
    assert!(header(&next, "Lambda-Runtime-Trace-Id").starts_with("Root=1-"));
    let deadline: u128 = header(&next, "Lambda-Runtime-Deadline-Ms").parse().unwrap();
    let earliest = (before + timeout)
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(
        (earliest..earliest + 5_000).contains(&deadline),
        "deadline {deadline} vs {earliest}"
    );
    assert_eq!(
        next.json::<Value>().await.unwrap(),
        json!({"path": "/v1/encrypt"})
    );
    let (status, _) = runtime
        .post(
            &format!("invocation/{id}/response"),
            r#"{"statusCode":200}"#,
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(
        invocation.await.unwrap().unwrap(),
        json!({"statusCode": 200})
    );
    // The invocation is over: its id is no longer valid.
    let (status, _) = runtime
        .post(&format!("invocation/{id}/response"), "{}")
        .await;
    assert_eq!(status, 400);

    // A function error; the process stays. This /next is read raw, to see the headers as sent.
    let invocation = spawn_invoke(&function, json!({}));
    let head = raw_next_head(function.port()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let id = head
        .lines()
        .find_map(|l| l.strip_prefix("Lambda-Runtime-Aws-Request-Id: "))
        .unwrap_or_else(|| panic!("no title-case request id header in {head}"))
        .to_owned();
    let response = runtime
        .http
        .post(format!("{}/invocation/{id}/error", runtime.base))
        .header("Lambda-Runtime-Function-Error-Type", "unhandled")
        .body(r#"{"errorType":"KeyNotFound","errorMessage":"no key k9","stackTrace":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    match invocation.await.unwrap() {
        Err(InvokeError::Function {
            error_type,
            message,
        }) => {
            assert_eq!(
                (error_type.as_str(), message.as_str()),
                ("KeyNotFound", "no key k9")
            );
        }
        other => panic!("expected a function error, got {other:?}"),
    }

    // init/error once the runtime has polled /next.
    let (status, body) = runtime
        .post("init/error", r#"{"errorType":"Late","errorMessage":"x"}"#)
        .await;
    assert_eq!(status, 403, "{body}");

    // A response over 6 MiB: 413 to the runtime, ResponseSizeTooLarge to the caller.
    let invocation = spawn_invoke(&function, json!({}));
    let id = request_id(&runtime.next().await);
    let too_large = format!("\"{}\"", "a".repeat(MAX_RESPONSE_BYTES));
    let (status, _) = runtime
        .post(&format!("invocation/{id}/response"), too_large)
        .await;
    assert_eq!(status, 413);
    match invocation.await.unwrap() {
        Err(InvokeError::Function { error_type, .. }) => {
            assert_eq!(error_type, RESPONSE_TOO_LARGE);
        }
        other => panic!("expected ResponseSizeTooLarge, got {other:?}"),
    }

    // The same process served all of it.
    assert_eq!(function.cold_starts(), 1);
    assert_eq!(function.invocations(), 3);
    assert_eq!(pids(dir.path()).len(), 1);
}

#[tokio::test]
async fn an_init_error_fails_the_invocation_and_the_next_one_starts_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let function = LocalFunction::start(spec(
        "init",
        idle_bootstrap(dir.path()),
        Duration::from_secs(30),
    ))
    .await
    .unwrap();
    // A connection of the first process, kept open to ask /next after it is gone.
    let mut stale = tokio::net::TcpStream::connect(("127.0.0.1", function.port()))
        .await
        .unwrap();
    let runtime = Runtime::new(&function);
    let invocation = spawn_invoke(&function, json!({}));
    let (status, _) = runtime
        .post(
            "init/error",
            r#"{"errorType":"Runtime.ConfigError","errorMessage":"KEY_TABLE is not set"}"#,
        )
        .await;
    assert_eq!(status, 202);
    match invocation.await.unwrap() {
        Err(InvokeError::Function {
            error_type,
            message,
        }) => {
            assert_eq!(error_type, "Runtime.ConfigError");
            assert_eq!(message, "KEY_TABLE is not set");
        }
        other => panic!("expected the init error, got {other:?}"),
    }
    let first = pids(dir.path())[0];
    assert!(
        !is_running(first),
        "the failed environment's process was not stopped"
    );

    // The next invocation gets a new process, which polls on new connections.
    let invocation = spawn_invoke(&function, json!({"again": true}));
    eventually("a second cold start", || function.cold_starts() == 2).await;
    let runtime = Runtime::new(&function);
    let next = runtime.next().await;
    let id = request_id(&next);
    runtime
        .post(&format!("invocation/{id}/response"), "\"ok\"")
        .await;
    assert_eq!(invocation.await.unwrap().unwrap(), json!("ok"));

    // The first process's connection gets no more events.
    stale
        .write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0; 12];
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_exact(&mut stale, &mut head),
    )
    .await
    .expect("a stale /next was left waiting for events")
    .unwrap();
    assert_eq!(&head, b"HTTP/1.1 500");
}

#[tokio::test]
async fn a_timeout_kills_the_process_and_the_next_invocation_cold_starts() {
    let dir = tempfile::tempdir().unwrap();
    let timeout = Duration::from_millis(300);
    let function = LocalFunction::start(spec("slow", idle_bootstrap(dir.path()), timeout))
        .await
        .unwrap();
    eventually("the first process", || pids(dir.path()).len() == 1).await;

    let started = Instant::now();
    let error = function.invoke(json!({})).await.unwrap_err();
    assert!(
        matches!(error, InvokeError::Timeout(t) if t == timeout),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        !is_running(pids(dir.path())[0]),
        "the timed-out process still runs"
    );

    let error = function.invoke(json!({})).await.unwrap_err();
    assert!(matches!(error, InvokeError::Timeout(_)), "{error}");
    assert_eq!(function.cold_starts(), 2);
    assert_eq!(function.invocations(), 2);
    assert_eq!(pids(dir.path()).len(), 2);
}

#[tokio::test]
async fn a_crash_fails_the_invocation_with_its_exit_status() {
    let function = LocalFunction::start(spec(
        "crash",
        PathBuf::from("/bin/false"),
        Duration::from_secs(10),
    ))
    .await
    .unwrap();
    let crash = |error: &InvokeError| matches!(error, InvokeError::Unavailable(m) if m.contains("exit status: 1"));
    let error = function.invoke(json!({})).await.unwrap_err();
    assert!(crash(&error), "{error}");
    let before = function.cold_starts();
    // The crashed environment is gone: the next invocation starts a new process.
    let error = function.invoke(json!({})).await.unwrap_err();
    assert!(crash(&error), "{error}");
    assert_eq!(function.cold_starts(), before + 1);
    assert_eq!(function.invocations(), 2);
}

#[tokio::test]
async fn stop_ends_the_invocation_in_flight_and_refuses_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let function = LocalFunction::start(spec(
        "stopped",
        idle_bootstrap(dir.path()),
        Duration::from_secs(60),
    ))
    .await
    .unwrap();
    let in_flight = spawn_invoke(&function, json!({}));
    let queued = spawn_invoke(&function, json!({}));
    eventually("the process", || pids(dir.path()).len() == 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let started = Instant::now();
    function.stop().await;
    for invocation in [in_flight, queued] {
        let error = invocation.await.unwrap().unwrap_err();
        assert!(
            matches!(&error, InvokeError::Unavailable(m) if m == "stopped"),
            "{error}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let error = function.invoke(json!({})).await.unwrap_err();
    assert!(
        matches!(&error, InvokeError::Unavailable(m) if m == "stopped"),
        "{error}"
    );
    assert!(!is_running(pids(dir.path())[0]));
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", function.port()))
            .await
            .is_err(),
        "the Runtime API still listens"
    );
}

#[tokio::test]
async fn replaced_code_runs_from_the_next_invocation() {
    let dir = tempfile::tempdir().unwrap();
    let function = LocalFunction::start(spec(
        "deployed",
        idle_bootstrap(dir.path()),
        Duration::from_secs(30),
    ))
    .await
    .unwrap();
    eventually("the first process", || pids(dir.path()).len() == 1).await;

    function.replace_bootstrap(bare_lambda()).await;
    assert!(!is_running(pids(dir.path())[0]), "the old code still runs");
    assert_eq!(
        function.invoke(json!({})).await.unwrap(),
        bare_lambda_answer()
    );
    assert_eq!(function.cold_starts(), 2);
}

/// How the sandbox retires a function after an update, as Lambda does: the invocation in flight
/// finishes on the old environment; then the process is gone and later invocations are refused.
#[tokio::test]
async fn stop_when_idle_lets_the_invocation_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let (function, runtime) = driven("retired", dir.path()).await;
    let in_flight = spawn_invoke(&function, json!({"n": 1}));
    let next = runtime.next().await;
    let id = request_id(&next);

    let retiring = {
        let function = Arc::clone(&function);
        tokio::spawn(async move { function.stop_when_idle().await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !retiring.is_finished(),
        "stopped with an invocation in flight"
    );
    let (status, _) = runtime
        .post(&format!("invocation/{id}/response"), r#"{"done":1}"#)
        .await;
    assert_eq!(status, 202);
    assert_eq!(in_flight.await.unwrap().unwrap(), json!({"done": 1}));
    tokio::time::timeout(Duration::from_secs(5), retiring)
        .await
        .expect("stopped once idle")
        .unwrap();
    assert!(!is_running(pids(dir.path())[0]));
    let error = function.invoke(json!({})).await.unwrap_err();
    assert!(
        matches!(&error, InvokeError::Unavailable(m) if m == "stopped"),
        "{error}"
    );
}

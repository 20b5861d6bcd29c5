//! A Lambda function run on this machine as Lambda runs it: the function's `bootstrap` as a child
//! process, fed one invocation at a time through its own Lambda Runtime API.
//!
//! The Runtime API (version 2018-06-01) that the bootstrap finds at `AWS_LAMBDA_RUNTIME_API`:
//!
//! | request                                             | answer                                       |
//! |-----------------------------------------------------|----------------------------------------------|
//! | `GET  /2018-06-01/runtime/invocation/next`          | 200 with the event, once there is one        |
//! | `POST /2018-06-01/runtime/invocation/{id}/response` | 202; 400 unknown id; 413 past 6 MiB          |
//! | `POST /2018-06-01/runtime/invocation/{id}/error`    | 202; 400 unknown id                          |
//! | `POST /2018-06-01/runtime/init/error`               | 202; 403 once the runtime has polled `/next` |
//! | another method on those paths; any other path      | 405; 404                                     |
//!
//! `/next` answers with the headers `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`
//! (Unix epoch milliseconds), `Lambda-Runtime-Invoked-Function-Arn` and `Lambda-Runtime-Trace-Id`.
//! Error bodies are `{"errorType": ..., "errorMessage": ...}`, the error type falling back to the
//! `Lambda-Runtime-Function-Error-Type` header. A `/next` from a process that has since been
//! stopped gets 500, as Lambda answers a runtime whose environment is gone.
//!
//! A [`LocalFunction`] is one execution environment: invocations run one at a time, in the order
//! they arrive. A timeout, a crash or an init error ends the environment; the next invocation
//! starts a fresh process (a cold start, with init run again), as Lambda would.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::{InvokeError, InvokeFuture, Invoker};

/// Lambda's limit on a synchronous response payload.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

/// Lambda's limit on the unzipped size of a function's code.
const MAX_UNZIPPED_BYTES: u64 = 250 * 1024 * 1024;

/// The error type of an invocation whose response exceeded [`MAX_RESPONSE_BYTES`], as Lambda names it.
pub const RESPONSE_TOO_LARGE: &str = "Function.ResponseSizeTooLarge";

/// The error type of a response payload that is not JSON. Ours: Lambda would pass the bytes on,
/// but [`Invoker`] returns JSON.
pub const INVALID_RESPONSE_PAYLOAD: &str = "Sandbox.InvalidResponsePayload";

/// The account in the ARN a function sees as `Lambda-Runtime-Invoked-Function-Arn` (moto's default).
const ACCOUNT_ID: &str = "123456789012";

const API_PREFIX: &str = "/2018-06-01/runtime/";

/// Extracts the `bootstrap` entry of a Lambda zip to `dir/bootstrap`, mode 0755.
///
/// The file is written beside and renamed into place, so a process still running the previous
/// `dir/bootstrap` keeps its code.
pub fn extract_bootstrap(zip: &[u8], dir: &Path) -> anyhow::Result<PathBuf> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip))
        .context("the Lambda code is not a readable zip archive")?;
    if archive.index_for_name("bootstrap").is_none() {
        let names: Vec<String> = archive
            .file_names_raw()
            .map(|name| String::from_utf8_lossy(name).into_owned())
            .collect();
        anyhow::bail!("the Lambda zip has no `bootstrap` entry (entries: {names:?})");
    }
    let mut entry = archive
        .by_name("bootstrap")
        .context("reading `bootstrap` from the Lambda zip")?;
    anyhow::ensure!(
        entry.is_file(),
        "`bootstrap` in the Lambda zip is not a regular file"
    );
    anyhow::ensure!(
        entry.size() <= MAX_UNZIPPED_BYTES,
        "`bootstrap` unzips to {} bytes, over Lambda's {MAX_UNZIPPED_BYTES}",
        entry.size()
    );
    let mut code = Vec::new();
    entry
        .by_ref()
        .take(MAX_UNZIPPED_BYTES + 1)
        .read_to_end(&mut code)
        .context("inflating `bootstrap` from the Lambda zip")?;
    anyhow::ensure!(
        code.len() as u64 <= MAX_UNZIPPED_BYTES,
        "`bootstrap` unzips to more than Lambda's {MAX_UNZIPPED_BYTES} bytes"
    );

    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let target = dir.join("bootstrap");
    let partial = dir.join(format!(".bootstrap.{}", uuid::Uuid::new_v4().simple()));
    write_executable(&partial, &code)
        .and_then(|()| std::fs::rename(&partial, &target))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&partial);
        })
        .with_context(|| format!("writing {}", target.display()))?;
    Ok(target)
}

fn write_executable(path: &Path, code: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(path)?;
    file.write_all(code)?;
    // The mode given at creation is filtered by the umask.
    file.set_permissions(std::fs::Permissions::from_mode(0o755))?;
    file.sync_all()
}

/// What Lambda knows about a function when it creates an execution environment for it.
#[derive(Clone)]
pub struct FunctionSpec {
    pub name: String,
    /// The executable to run; its directory is `LAMBDA_TASK_ROOT` and the working directory.
    pub bootstrap: PathBuf,
    /// The function's configured environment (and, here, the AWS credentials and region Lambda
    /// would give it). Lambda's reserved variables override keys of the same name.
    pub env: BTreeMap<String, String>,
    pub timeout: Duration,
    pub memory_mb: u32,
    /// The configured handler, which a custom runtime reads from `_HANDLER`.
    pub handler: String,
    /// Where the process's stdout and stderr are appended; discarded when `None`.
    pub log_file: Option<PathBuf>,
}

impl fmt::Debug for FunctionSpec {
    // The environment holds credentials: show its keys only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionSpec")
            .field("name", &self.name)
            .field("bootstrap", &self.bootstrap)
            .field("env_keys", &self.env.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("memory_mb", &self.memory_mb)
            .field("handler", &self.handler)
            .field("log_file", &self.log_file)
            .finish()
    }
}

/// The environment the bootstrap runs with: nothing inherited; Lambda's defaults, then the
/// function's variables, then the variables Lambda reserves.
fn process_env(
    spec: &FunctionSpec,
    bootstrap: &Path,
    port: u16,
    log_stream: &str,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([
        (
            "PATH".to_owned(),
            "/usr/local/bin:/usr/bin/:/bin:/opt/bin".to_owned(),
        ),
        ("LANG".to_owned(), "en_US.UTF-8".to_owned()),
    ]);
    env.extend(spec.env.clone());
    let task_root = bootstrap.parent().unwrap_or(Path::new("/"));
    env.extend([
        (
            "AWS_LAMBDA_RUNTIME_API".to_owned(),
            format!("127.0.0.1:{port}"),
        ),
        ("AWS_LAMBDA_FUNCTION_NAME".to_owned(), spec.name.clone()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".to_owned(),
            spec.memory_mb.to_string(),
        ),
        (
            "AWS_LAMBDA_FUNCTION_VERSION".to_owned(),
            "$LATEST".to_owned(),
        ),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME".to_owned(),
            format!("/aws/lambda/{}", spec.name),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME".to_owned(),
            log_stream.to_owned(),
        ),
        (
            "AWS_LAMBDA_INITIALIZATION_TYPE".to_owned(),
            "on-demand".to_owned(),
        ),
        ("_HANDLER".to_owned(), spec.handler.clone()),
        (
            "LAMBDA_TASK_ROOT".to_owned(),
            task_root.display().to_string(),
        ),
        (
            "AWS_EXECUTION_ENV".to_owned(),
            "AWS_Lambda_provided.al2023".to_owned(),
        ),
        ("TZ".to_owned(), ":UTC".to_owned()),
    ]);
    env
}

fn function_arn(spec: &FunctionSpec) -> String {
    let region = spec
        .env
        .get("AWS_REGION")
        .or_else(|| spec.env.get("AWS_DEFAULT_REGION"))
        .map_or("us-east-1", String::as_str);
    format!(
        "arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{}",
        spec.name
    )
}

/// A Lambda function in one local execution environment, behind its own Runtime API.
pub struct LocalFunction {
    inner: Arc<Inner>,
}

impl fmt::Debug for LocalFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalFunction")
            .field("name", &self.inner.spec.name)
            .field("port", &self.inner.port)
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// `spec.bootstrap` is the code at start; [`Code`] holds the current one.
    spec: FunctionSpec,
    port: u16,
    api: Arc<Api>,
    code: Mutex<Code>,
    /// The running process, if any. Held for the whole of an invocation: invocations queue on it
    /// in arrival order (tokio's mutex is fair).
    environment: tokio::sync::Mutex<Option<Environment>>,
    stop: watch::Sender<bool>,
    server: Mutex<Option<JoinHandle<()>>>,
    invocations: AtomicU64,
    cold_starts: AtomicU64,
}

struct Code {
    bootstrap: PathBuf,
    /// Bumped by [`LocalFunction::replace_bootstrap`]; an environment running older code is replaced.
    version: u64,
}

/// One bootstrap process.
struct Environment {
    child: Child,
    code_version: u64,
}

impl Environment {
    /// Whether the process can take an invocation: still running, and running the current code.
    fn can_serve(&mut self, code_version: u64) -> bool {
        self.code_version == code_version && matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(server) = lock(&self.server).take() {
            server.abort();
        }
    }
}

impl LocalFunction {
    /// Binds the Runtime API on 127.0.0.1 (a free port) and starts the bootstrap, whose init runs
    /// before the first invocation arrives.
    pub async fn start(spec: FunctionSpec) -> anyhow::Result<Arc<LocalFunction>> {
        let mut spec = spec;
        spec.bootstrap = std::path::absolute(&spec.bootstrap)
            .with_context(|| format!("resolving {}", spec.bootstrap.display()))?;
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding the Runtime API")?;
        let port = listener.local_addr()?.port();
        let api = Arc::new(Api {
            arn: function_arn(&spec),
            state: Mutex::new(ApiState::default()),
            changed: Notify::new(),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&api)));
        let inner = Inner {
            code: Mutex::new(Code {
                bootstrap: spec.bootstrap.clone(),
                version: 0,
            }),
            spec,
            port,
            api,
            environment: tokio::sync::Mutex::new(None),
            stop: watch::Sender::new(false),
            server: Mutex::new(Some(server)),
            invocations: AtomicU64::new(0),
            cold_starts: AtomicU64::new(0),
        };
        let first = inner
            .spawn(&inner.spec.bootstrap, 0)
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", inner.spec.name))?;
        *inner.environment.lock().await = Some(first);
        tracing::info!(function = %inner.spec.name, port, "function started");
        Ok(Arc::new(LocalFunction {
            inner: Arc::new(inner),
        }))
    }

    /// The port of this function's Runtime API on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// Invocations handed to a process (not those refused because the function is stopped).
    pub fn invocations(&self) -> u64 {
        self.inner.invocations.load(Ordering::Relaxed)
    }

    /// Processes started: one at start, one more for each invocation after a timeout, a crash, an
    /// init error or new code.
    pub fn cold_starts(&self) -> u64 {
        self.inner.cold_starts.load(Ordering::Relaxed)
    }

    /// Kills the process and closes the Runtime API. An invocation in flight and every later one
    /// fail with [`InvokeError::Unavailable`]`("stopped")`.
    pub async fn stop(&self) {
        self.inner.stop.send_replace(true);
        self.inner.api.stop();
        let server = lock(&self.inner.server).take();
        if let Some(server) = server {
            server.abort();
            // Resolves once the task, and with it the listener, is dropped.
            let _ = server.await;
        }
        let mut environment = self.inner.environment.lock().await;
        if let Some(old) = environment.take() {
            self.inner.retire(old).await;
        }
        tracing::info!(function = %self.inner.spec.name, "function stopped");
    }

    /// [`LocalFunction::stop`] once the invocations already handed to it have ended: how Lambda
    /// retires an execution environment after an update, letting its invocation finish.
    pub async fn stop_when_idle(&self) {
        drop(self.inner.environment.lock().await);
        self.stop().await;
    }

    /// Deploys new code: an idle process is stopped now, a busy one once its invocation ends; the
    /// next invocation starts `bootstrap`.
    pub async fn replace_bootstrap(&self, bootstrap: PathBuf) {
        let bootstrap = std::path::absolute(&bootstrap).unwrap_or(bootstrap);
        {
            let mut code = lock(&self.inner.code);
            code.bootstrap = bootstrap;
            code.version += 1;
        }
        if let Ok(mut environment) = self.inner.environment.try_lock()
            && let Some(old) = environment.take()
        {
            self.inner.retire(old).await;
        }
    }
}

impl Invoker for LocalFunction {
    fn invoke(&self, event: serde_json::Value) -> InvokeFuture {
        Box::pin(Arc::clone(&self.inner).invoke(event))
    }
}

/// How an invocation ended, before it is turned into a result.
#[derive(Debug)]
enum Ending {
    Reported(Outcome),
    Exited(std::io::Result<ExitStatus>),
    TimedOut,
    Stopped,
}

/// What the runtime reported through the Runtime API.
#[derive(Debug)]
enum Outcome {
    Response(Bytes),
    TooLarge,
    Error(FunctionError),
    InitError(FunctionError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FunctionError {
    error_type: String,
    message: String,
}

/// The invocation's result, and whether its process may serve the next one.
fn settle(ending: Ending, timeout: Duration) -> (Result<serde_json::Value, InvokeError>, bool) {
    match ending {
        Ending::Reported(Outcome::Response(body)) => (parse_payload(&body), true),
        Ending::Reported(Outcome::TooLarge) => (
            Err(InvokeError::Function {
                error_type: RESPONSE_TOO_LARGE.to_owned(),
                message: format!(
                    "Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
                ),
            }),
            true,
        ),
        Ending::Reported(Outcome::Error(e)) => (Err(e.into()), true),
        Ending::Reported(Outcome::InitError(e)) => (Err(e.into()), false),
        Ending::Exited(Ok(status)) => (
            Err(InvokeError::Unavailable(format!(
                "the function's process exited during the invocation ({status})"
            ))),
            false,
        ),
        Ending::Exited(Err(e)) => (
            Err(InvokeError::Unavailable(format!(
                "waiting for the function's process: {e}"
            ))),
            false,
        ),
        Ending::TimedOut => (Err(InvokeError::Timeout(timeout)), false),
        Ending::Stopped => (Err(InvokeError::Unavailable("stopped".to_owned())), false),
    }
}

impl From<FunctionError> for InvokeError {
    fn from(e: FunctionError) -> Self {
        InvokeError::Function {
            error_type: e.error_type,
            message: e.message,
        }
    }
}

/// A response payload as JSON; an empty one is `null`.
fn parse_payload(body: &[u8]) -> Result<serde_json::Value, InvokeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_slice(body).map_err(|e| InvokeError::Function {
        error_type: INVALID_RESPONSE_PAYLOAD.to_owned(),
        message: format!("the response payload is not JSON: {e}"),
    })
}

impl Inner {
    async fn invoke(
        self: Arc<Self>,
        event: serde_json::Value,
    ) -> Result<serde_json::Value, InvokeError> {
        let mut environment = self.environment.lock().await;
        if *self.stop.borrow() {
            return Err(InvokeError::Unavailable("stopped".to_owned()));
        }
        let (bootstrap, code_version) = {
            let code = lock(&self.code);
            (code.bootstrap.clone(), code.version)
        };
        if let Some(mut old) = environment.take() {
            if old.can_serve(code_version) {
                *environment = Some(old);
            } else {
                self.retire(old).await;
            }
        }
        if environment.is_none() {
            *environment = Some(self.spawn(&bootstrap, code_version)?);
        }
        let Some(process) = environment.as_mut() else {
            return Err(InvokeError::Unavailable("no process".to_owned()));
        };
        self.invocations.fetch_add(1, Ordering::Relaxed);

        let request_id = uuid::Uuid::new_v4().to_string();
        let deadline = Instant::now() + self.spec.timeout;
        let deadline_ms = epoch_ms(SystemTime::now() + self.spec.timeout);
        let (done, mut reported) = oneshot::channel();
        let published = self.api.publish(Invocation {
            request_id: request_id.clone(),
            event: Bytes::from(event.to_string()),
            deadline_ms,
            trace_id: trace_id(),
            delivered: false,
            done,
        });
        let ending = match published {
            Err(init_error) => Ending::Reported(Outcome::InitError(init_error)),
            Ok(()) => {
                let mut stop = self.stop.subscribe();
                tokio::select! {
                    biased;
                    outcome = &mut reported => match outcome {
                        Ok(outcome) => Ending::Reported(outcome),
                        Err(_) => Ending::Stopped,
                    },
                    _ = stop.wait_for(|stopped| *stopped) => Ending::Stopped,
                    status = process.child.wait() => match reported.try_recv() {
                        // Reported just before exiting (an init error, typically).
                        Ok(outcome) => Ending::Reported(outcome),
                        Err(_) => Ending::Exited(status),
                    },
                    () = tokio::time::sleep_until(deadline) => Ending::TimedOut,
                }
            }
        };
        self.api.withdraw(&request_id);
        tracing::debug!(function = %self.spec.name, %request_id, ?ending, "invocation ended");
        let (result, keep) = settle(ending, self.spec.timeout);
        if !keep && let Some(old) = environment.take() {
            self.retire(old).await;
        }
        result
    }

    /// Starts a process running `bootstrap`; its Runtime API connections belong to a new epoch.
    fn spawn(&self, bootstrap: &Path, code_version: u64) -> Result<Environment, InvokeError> {
        let unavailable =
            |what: &str, e: std::io::Error| InvokeError::Unavailable(format!("{what}: {e}"));
        let (stdout, stderr) = match &self.spec.log_file {
            Some(path) => {
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| unavailable(&format!("opening {}", path.display()), e))?;
                let copy = log
                    .try_clone()
                    .map_err(|e| unavailable("duplicating the log file", e))?;
                (Stdio::from(log), Stdio::from(copy))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let log_stream = format!(
            "{}/[$LATEST]{}",
            chrono::Utc::now().format("%Y/%m/%d"),
            uuid::Uuid::new_v4().simple()
        );
        let env = process_env(&self.spec, bootstrap, self.port, &log_stream);
        self.api.begin_epoch();
        let child = Command::new(bootstrap)
            .env_clear()
            .envs(env)
            .current_dir(bootstrap.parent().unwrap_or(Path::new("/")))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| unavailable(&format!("starting {}", bootstrap.display()), e))?;
        self.cold_starts.fetch_add(1, Ordering::Relaxed);
        tracing::info!(function = %self.spec.name, pid = child.id(), %log_stream, "cold start");
        Ok(Environment {
            child,
            code_version,
        })
    }

    /// Kills the process (if still running) and turns away whatever it still asks of the API.
    async fn retire(&self, mut old: Environment) {
        if let Err(e) = old.child.kill().await {
            tracing::warn!(function = %self.spec.name, error = %e, "killing the function's process");
        }
        self.api.begin_epoch();
    }
}

/// The Runtime API's view of the function: the one invocation there can be, and which
/// connections belong to the running process.
struct Api {
    arn: String,
    state: Mutex<ApiState>,
    /// Wakes `/next` waiters when an invocation is published, the process changes or the API stops.
    changed: Notify,
}

#[derive(Default)]
struct ApiState {
    /// Counts process changes; a connection accepted in an earlier epoch came from a process since
    /// killed (or from before the current one started) and gets no events.
    epoch: u64,
    /// The current process has polled `/next`, which ends its init phase.
    initialized: bool,
    /// Reported by the current process before any invocation was waiting for it.
    init_error: Option<FunctionError>,
    invocation: Option<Invocation>,
    stopped: bool,
}

struct Invocation {
    request_id: String,
    event: Bytes,
    deadline_ms: u64,
    trace_id: String,
    delivered: bool,
    done: oneshot::Sender<Outcome>,
}

impl Api {
    fn epoch(&self) -> u64 {
        lock(&self.state).epoch
    }

    fn begin_epoch(&self) {
        {
            let mut state = lock(&self.state);
            state.epoch += 1;
            state.initialized = false;
            state.init_error = None;
        }
        self.changed.notify_waiters();
    }

    fn stop(&self) {
        lock(&self.state).stopped = true;
        self.changed.notify_waiters();
    }

    /// Offers `invocation` to the next `/next`, unless the process already failed its init.
    fn publish(&self, invocation: Invocation) -> Result<(), FunctionError> {
        {
            let mut state = lock(&self.state);
            if let Some(init_error) = state.init_error.clone() {
                return Err(init_error);
            }
            state.invocation = Some(invocation);
        }
        self.changed.notify_waiters();
        Ok(())
    }

    fn withdraw(&self, request_id: &str) {
        let mut state = lock(&self.state);
        if state
            .invocation
            .as_ref()
            .is_some_and(|i| i.request_id == request_id)
        {
            state.invocation = None;
        }
    }

    fn is_delivered(&self, request_id: &str) -> bool {
        lock(&self.state)
            .invocation
            .as_ref()
            .is_some_and(|i| i.delivered && i.request_id == request_id)
    }

    /// Ends the delivered invocation `request_id` with `outcome`; false if there is no such one.
    fn finish(&self, request_id: &str, outcome: Outcome) -> bool {
        let mut state = lock(&self.state);
        match state.invocation.take() {
            Some(invocation) if invocation.delivered && invocation.request_id == request_id => {
                // The invoker may have just given up (timeout, stop); nothing to tell it then.
                let _ = invocation.done.send(outcome);
                true
            }
            other => {
                state.invocation = other;
                false
            }
        }
    }

    async fn handle(&self, epoch: u64, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let route = route(request.method(), request.uri().path());
        match route {
            Route::Next => self.next(epoch).await,
            Route::Response(id) => {
                if !self.is_delivered(&id) {
                    return invalid_request_id(&id);
                }
                match read_body(request).await {
                    Ok(body) => {
                        if self.finish(&id, Outcome::Response(body)) {
                            accepted()
                        } else {
                            invalid_request_id(&id)
                        }
                    }
                    Err(BodyError::TooLarge) => {
                        self.finish(&id, Outcome::TooLarge);
                        error_response(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "RequestEntityTooLarge",
                            &format!(
                                "Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
                            ),
                        )
                    }
                    Err(BodyError::Read(e)) => {
                        error_response(StatusCode::BAD_REQUEST, "InvalidRequest", &e)
                    }
                }
            }
            Route::Error(id) => {
                if !self.is_delivered(&id) {
                    return invalid_request_id(&id);
                }
                let headers = request.headers().clone();
                match read_body(request).await {
                    Ok(body) => {
                        let error = function_error(&headers, &body);
                        if self.finish(&id, Outcome::Error(error)) {
                            accepted()
                        } else {
                            invalid_request_id(&id)
                        }
                    }
                    Err(BodyError::TooLarge) => error_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "RequestEntityTooLarge",
                        "error body too large",
                    ),
                    Err(BodyError::Read(e)) => {
                        error_response(StatusCode::BAD_REQUEST, "InvalidRequest", &e)
                    }
                }
            }
            Route::InitError => {
                let headers = request.headers().clone();
                let body = match read_body(request).await {
                    Ok(body) => body,
                    Err(BodyError::TooLarge) => Bytes::new(),
                    Err(BodyError::Read(e)) => {
                        return error_response(StatusCode::BAD_REQUEST, "InvalidRequest", &e);
                    }
                };
                self.init_error(epoch, function_error(&headers, &body))
            }
            Route::MethodNotAllowed => error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "method not allowed on this path",
            ),
            Route::NotFound => error_response(
                StatusCode::NOT_FOUND,
                "NotFound",
                "no such Runtime API path",
            ),
        }
    }

    /// Long-polls for the invocation; a process of an earlier epoch, or any once stopped, gets 500.
    async fn next(&self, epoch: u64) -> Response<Full<Bytes>> {
        loop {
            let mut changed = pin!(self.changed.notified());
            changed.as_mut().enable();
            {
                let mut state = lock(&self.state);
                if state.stopped || state.epoch != epoch {
                    return container_error();
                }
                state.initialized = true;
                if let Some(invocation) = state.invocation.as_mut().filter(|i| !i.delivered) {
                    invocation.delivered = true;
                    return event_response(invocation, &self.arn);
                }
            }
            changed.await;
        }
    }

    fn init_error(&self, epoch: u64, error: FunctionError) -> Response<Full<Bytes>> {
        let mut state = lock(&self.state);
        if state.stopped || state.epoch != epoch {
            return container_error();
        }
        if state.initialized {
            return error_response(
                StatusCode::FORBIDDEN,
                "InvalidStateTransition",
                "init/error after the runtime polled /next",
            );
        }
        tracing::debug!(error_type = %error.error_type, "init error");
        match state.invocation.take() {
            Some(invocation) => {
                let _ = invocation.done.send(Outcome::InitError(error));
            }
            None => state.init_error = Some(error),
        }
        accepted()
    }
}

/// A Runtime API request, from its method and path.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Next,
    Response(String),
    Error(String),
    InitError,
    MethodNotAllowed,
    NotFound,
}

fn route(method: &Method, path: &str) -> Route {
    let Some(rest) = path.strip_prefix(API_PREFIX) else {
        return Route::NotFound;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let (route, allowed) = match segments.as_slice() {
        ["invocation", "next"] => (Route::Next, Method::GET),
        ["invocation", id, "response"] if !id.is_empty() => {
            (Route::Response((*id).to_owned()), Method::POST)
        }
        ["invocation", id, "error"] if !id.is_empty() => {
            (Route::Error((*id).to_owned()), Method::POST)
        }
        ["init", "error"] => (Route::InitError, Method::POST),
        _ => return Route::NotFound,
    };
    if *method == allowed {
        route
    } else {
        Route::MethodNotAllowed
    }
}

/// The error a runtime reported: type and message from the body, the type falling back to the
/// `Lambda-Runtime-Function-Error-Type` header, then to Lambda's `Unhandled`.
fn function_error(headers: &HeaderMap, body: &[u8]) -> FunctionError {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ErrorBody {
        error_type: Option<String>,
        error_message: Option<String>,
    }
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let from_header = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let (body_type, body_message) =
        parsed.map_or((None, None), |b| (b.error_type, b.error_message));
    FunctionError {
        error_type: body_type
            .filter(|t| !t.is_empty())
            .or(from_header)
            .unwrap_or_else(|| "Unhandled".to_owned()),
        message: body_message.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
    }
}

enum BodyError {
    TooLarge,
    Read(String),
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, BodyError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
        return Err(BodyError::TooLarge);
    }
    match Limited::new(request.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Read(e.to_string())),
    }
}

fn event_response(invocation: &Invocation, arn: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header("Lambda-Runtime-Aws-Request-Id", &invocation.request_id)
        .header("Lambda-Runtime-Deadline-Ms", invocation.deadline_ms)
        .header("Lambda-Runtime-Invoked-Function-Arn", arn)
        .header("Lambda-Runtime-Trace-Id", &invocation.trace_id)
        .body(Full::new(invocation.event.clone()))
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR))
}

fn accepted() -> Response<Full<Bytes>> {
    let body = serde_json::json!({"status": "OK"}).to_string();
    json_response(StatusCode::ACCEPTED, body)
}

fn invalid_request_id(id: &str) -> Response<Full<Bytes>> {
    error_response(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        &format!("Invalid request ID: {id}"),
    )
}

fn container_error() -> Response<Full<Bytes>> {
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Runtime.ContainerError",
        "Container error. Non-recoverable state. The runtime should exit promptly.",
    )
}

fn error_response(status: StatusCode, error_type: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"errorMessage": message, "errorType": error_type}).to_string();
    json_response(status, body)
}

fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| plain(status))
}

fn plain(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// Accepts Runtime API connections until aborted; each belongs to the epoch it was accepted in.
async fn serve(listener: TcpListener, api: Arc<Api>) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, typically: wait instead of spinning.
                tracing::warn!(error = %e, "accepting a Runtime API connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let epoch = api.epoch();
        connections.spawn(serve_connection(stream, Arc::clone(&api), epoch));
    }
}

async fn serve_connection(stream: TcpStream, api: Arc<Api>, epoch: u64) {
    let service = hyper::service::service_fn(move |request| {
        let api = Arc::clone(&api);
        async move { Ok::<_, Infallible>(api.handle(epoch, request).await) }
    });
    // Header names as Lambda writes them, for runtimes that match them case-sensitively.
    if let Err(e) = http1::Builder::new()
        .title_case_headers(true)
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(error = %e, "Runtime API connection");
    }
}

/// An X-Ray trace header: `Root=1-{epoch seconds}-{96 random bits};Parent={64 random bits};Sampled=0`.
fn trace_id() -> String {
    let root = uuid::Uuid::new_v4().simple().to_string();
    let parent = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        epoch_ms(SystemTime::now()) / 1000,
        &root[..24],
        &parent[..16]
    )
}

fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_the_runtime_api() {
        let id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";
        assert_eq!(
            route(&Method::GET, "/2018-06-01/runtime/invocation/next"),
            Route::Next
        );
        assert_eq!(
            route(
                &Method::POST,
                &format!("/2018-06-01/runtime/invocation/{id}/response")
            ),
            Route::Response(id.to_owned())
        );
        assert_eq!(
            route(
                &Method::POST,
                &format!("/2018-06-01/runtime/invocation/{id}/error")
            ),
            Route::Error(id.to_owned())
        );
        assert_eq!(
            route(&Method::POST, "/2018-06-01/runtime/init/error"),
            Route::InitError
        );
        assert_eq!(
            route(&Method::POST, "/2018-06-01/runtime/invocation/next"),
            Route::MethodNotAllowed
        );
        assert_eq!(
            route(
                &Method::GET,
                &format!("/2018-06-01/runtime/invocation/{id}/response")
            ),
            Route::MethodNotAllowed
        );
        for path in [
            "/2018-06-01/runtime/invocation//response",
            "/2018-06-01/runtime/invocation/next/",
            "/2020-01-01/runtime/invocation/next",
            "/2018-06-01/runtime/invocation/a/b/response",
            "/",
        ] {
            assert_eq!(route(&Method::GET, path), Route::NotFound, "{path}");
        }
    }

    #[test]
    fn error_type_comes_from_the_body_then_the_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "lambda-runtime-function-error-type",
            "unhandled".parse().unwrap(),
        );
        let body = br#"{"errorType":"MyError","errorMessage":"boom","stackTrace":[]}"#;
        assert_eq!(
            function_error(&headers, body),
            FunctionError {
                error_type: "MyError".to_owned(),
                message: "boom".to_owned()
            }
        );
        assert_eq!(
            function_error(&headers, b"not json"),
            FunctionError {
                error_type: "unhandled".to_owned(),
                message: "not json".to_owned()
            }
        );
        assert_eq!(
            function_error(&HeaderMap::new(), b"{}").error_type,
            "Unhandled"
        );
    }

    #[test]
    fn settles_each_ending() {
        let timeout = Duration::from_secs(3);
        let (ok, keep) = settle(
            Ending::Reported(Outcome::Response(Bytes::from_static(b"{\"a\":1}"))),
            timeout,
        );
        assert_eq!(ok.unwrap(), serde_json::json!({"a": 1}));
        assert!(keep);

        let (empty, _) = settle(Ending::Reported(Outcome::Response(Bytes::new())), timeout);
        assert_eq!(empty.unwrap(), serde_json::Value::Null);

        let (bad, keep) = settle(
            Ending::Reported(Outcome::Response(Bytes::from_static(b"<html>"))),
            timeout,
        );
        assert!(
            matches!(bad, Err(InvokeError::Function { ref error_type, .. }) if error_type == INVALID_RESPONSE_PAYLOAD)
        );
        assert!(keep);

        let (large, keep) = settle(Ending::Reported(Outcome::TooLarge), timeout);
        assert!(
            matches!(large, Err(InvokeError::Function { ref error_type, .. }) if error_type == RESPONSE_TOO_LARGE)
        );
        assert!(keep);

        let init = FunctionError {
            error_type: "Runtime.InitError".to_owned(),
            message: "no config".to_owned(),
        };
        let (init, keep) = settle(Ending::Reported(Outcome::InitError(init)), timeout);
        assert!(
            matches!(init, Err(InvokeError::Function { ref error_type, .. }) if error_type == "Runtime.InitError")
        );
        assert!(!keep);

        let (timed_out, keep) = settle(Ending::TimedOut, timeout);
        assert!(matches!(timed_out, Err(InvokeError::Timeout(t)) if t == timeout));
        assert!(!keep);

        let (stopped, keep) = settle(Ending::Stopped, timeout);
        assert!(matches!(stopped, Err(InvokeError::Unavailable(ref m)) if m == "stopped"));
        assert!(!keep);
    }

    #[test]
    fn reserved_variables_win_over_the_functions_own() {
        let spec = FunctionSpec {
            name: "crypto".to_owned(),
            bootstrap: PathBuf::from("/var/task/bootstrap"),
            env: BTreeMap::from([
                ("AWS_LAMBDA_FUNCTION_NAME".to_owned(), "spoofed".to_owned()),
                ("TZ".to_owned(), "Europe/Paris".to_owned()),
                ("LANG".to_owned(), "C.UTF-8".to_owned()),
                ("KEY_ID".to_owned(), "k1".to_owned()),
            ]),
            timeout: Duration::from_secs(3),
            memory_mb: 256,
            handler: "main.handler".to_owned(),
            log_file: None,
        };
        let env = process_env(&spec, &spec.bootstrap, 4321, "stream");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "crypto");
        assert_eq!(env["TZ"], ":UTC");
        assert_eq!(env["LANG"], "C.UTF-8");
        assert_eq!(env["KEY_ID"], "k1");
        assert_eq!(env["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:4321");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
        assert_eq!(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/crypto");
        assert_eq!(env["LAMBDA_TASK_ROOT"], "/var/task");
        assert_eq!(env["_HANDLER"], "main.handler");
    }

    #[test]
    fn arn_uses_the_functions_region() {
        let mut spec = FunctionSpec {
            name: "f".to_owned(),
            bootstrap: PathBuf::from("/b"),
            env: BTreeMap::new(),
            timeout: Duration::from_secs(1),
            memory_mb: 128,
            handler: "bootstrap".to_owned(),
            log_file: None,
        };
        assert_eq!(
            function_arn(&spec),
            "arn:aws:lambda:us-east-1:123456789012:function:f"
        );
        spec.env
            .insert("AWS_REGION".to_owned(), "eu-west-3".to_owned());
        assert_eq!(
            function_arn(&spec),
            "arn:aws:lambda:eu-west-3:123456789012:function:f"
        );
    }

    #[test]
    fn trace_ids_look_like_x_ray_ones() {
        let id = trace_id();
        let root = id.strip_prefix("Root=1-").unwrap();
        let (time, rest) = root.split_once('-').unwrap();
        assert_eq!(time.len(), 8);
        let (random, rest) = rest.split_once(";Parent=").unwrap();
        assert_eq!(random.len(), 24);
        let (parent, sampled) = rest.split_once(';').unwrap();
        assert_eq!(parent.len(), 16);
        assert_eq!(sampled, "Sampled=0");
    }
}

//! One execution environment's handle: how a function is started behind its own Runtime API,
//! stopped, given new code, and counted.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::api::{Api, ApiState};
use super::lock;
use super::process::Environment;
use super::spec::{FunctionSpec, function_arn};
use super::wire::serve;
use crate::{InvokeFuture, Invoker};

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

pub(super) struct Inner {
    /// `spec.bootstrap` is the code at start; [`Code`] holds the current one.
    pub(super) spec: FunctionSpec,
    pub(super) port: u16,
    pub(super) api: Arc<Api>,
    pub(super) code: Mutex<Code>,
    /// The running process, if any. Held for the whole of an invocation: invocations queue on it
    /// in arrival order (tokio's mutex is fair).
    pub(super) environment: tokio::sync::Mutex<Option<Environment>>,
    pub(super) stop: watch::Sender<bool>,
    server: Mutex<Option<JoinHandle<()>>>,
    pub(super) invocations: AtomicU64,
    pub(super) cold_starts: AtomicU64,
}

pub(super) struct Code {
    pub(super) bootstrap: PathBuf,
    /// Bumped by [`LocalFunction::replace_bootstrap`]; an environment running older code is replaced.
    pub(super) version: u64,
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

//! How the gateway listens: accepting connections, serving each over HTTP/1, and draining the
//! requests in flight when it is shut down.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::dispatch::Gateway;
use super::{GatewayConfig, INTEGRATION_TIMEOUT};

/// How long a client may take to send its request line and headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`GatewayHandle::shutdown`] lets requests in flight finish before dropping them.
const DRAIN_TIMEOUT: Duration = INTEGRATION_TIMEOUT;

/// A running gateway. Dropping it stops accepting connections and lets requests in flight finish.
#[derive(Debug)]
pub struct GatewayHandle {
    local_addr: SocketAddr,
    requests: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl GatewayHandle {
    /// The address the gateway listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://127.0.0.1:PORT`, the API's invoke URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// How many requests have been received, answered or not.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Stops accepting connections and waits for requests in flight (at most 30 s).
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::warn!(%error, "the gateway's accept loop failed");
        }
    }
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Serves `config` on `listener` until the returned handle is shut down or dropped.
pub async fn serve(listener: TcpListener, config: GatewayConfig) -> GatewayHandle {
    let local_addr = listener.local_addr().unwrap_or_else(|error| {
        tracing::warn!(%error, "the gateway's listener has no local address");
        SocketAddr::from(([127, 0, 0, 1], 0))
    });
    let requests = Arc::new(AtomicU64::new(0));
    let gateway = Arc::new(Gateway::new(config, local_addr, Arc::clone(&requests)));
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, gateway, stopped));
    tracing::info!(%local_addr, "API Gateway emulation listening");
    GatewayHandle {
        local_addr,
        requests,
        stop,
        task: Some(task),
    }
}

async fn accept_loop(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // A send or the handle's drop (Err) both mean stop.
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, Arc::clone(&gateway), stop.clone()));
                }
                Err(error) => {
                    // EMFILE and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; dropping them");
        connections.abort_all();
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    gateway: Arc<Gateway>,
    mut stop: watch::Receiver<bool>,
) {
    let service = service_fn(move |request| {
        let gateway = Arc::clone(&gateway);
        async move { Ok::<_, Infallible>(gateway.handle(request, peer).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

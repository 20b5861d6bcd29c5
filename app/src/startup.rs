//! Builds the server from [`Settings`]: shared state, routes, listener on the configured address
//! (port 0 in tests), and the optional metrics listener (`GET /metrics` only, never on the
//! public listener).

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};

use crate::cache::{Deliveries, InstallationCache, TokenCache};
use crate::config::Settings;
use crate::github::{GitHubApp, RetryPolicy};
use crate::metrics::Metrics;
use crate::routes;
use crate::routes::fallback::method_not_allowed;
use crate::state::{AppState, TOKEN_BODY_LIMIT, WEBHOOK_BODY_LIMIT};
use crate::sts::Sts;

/// A built, not yet running, server.
pub struct Application {
    port: u16,
    metrics: Option<(u16, Server)>,
    state: web::Data<AppState>,
    server: Server,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Binds the listener and builds the clients (one factory each).
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.listen)?;
        let port = listener.local_addr()?.port();
        let metrics = Arc::new(Metrics::default());
        let github = GitHubApp::new(
            &settings.github_api_url,
            settings.app_id,
            settings.app_key,
            settings.github_timeout,
            RetryPolicy {
                max_retries: settings.github_max_retries,
                max_backoff: settings.github_max_backoff,
            },
            metrics.clone(),
        )?;
        let state = web::Data::new(AppState {
            audience: settings.audience,
            policy: settings.policy,
            webhook_secrets: settings.webhook_secrets,
            token_refresh_margin: chrono::Duration::from_std(settings.token_refresh_margin)?,
            token_replace_min_interval: settings.token_replace_min_interval,
            sts: Sts::new(settings.sts_endpoints, settings.sts_timeout)?,
            github,
            installations: InstallationCache::default(),
            tokens: TokenCache::default(),
            deliveries: Deliveries::new(10_000),
            metrics,
        });
        let data = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(TOKEN_BODY_LIMIT)
                        .error_handler(routes::extract::json_error),
                )
                .service(
                    web::resource("/healthz")
                        .route(web::get().to(routes::health::healthz))
                        .default_service(web::to(method_not_allowed("GET"))),
                )
                .service(
                    web::resource("/v1/tokens")
                        .route(web::post().to(routes::tokens::issue))
                        .default_service(web::to(method_not_allowed("POST"))),
                )
                .service(
                    web::resource("/webhooks")
                        .app_data(web::PayloadConfig::new(WEBHOOK_BODY_LIMIT))
                        .route(web::post().to(routes::webhooks::receive))
                        .default_service(web::to(method_not_allowed("POST"))),
                )
                .default_service(web::to(routes::fallback::not_found))
        })
        .listen(listener)?
        .run();
        let metrics_server = match settings.metrics_listen {
            Some(addr) => Some(metrics_server(addr, state.clone())?),
            None => None,
        };
        tracing::info!(
            port,
            sts_endpoints = %state.sts.endpoints().describe(),
            "ssm-app listening"
        );
        Ok(Self {
            port,
            metrics: metrics_server,
            state,
            server,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The metrics listener's port, when one is configured.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    /// The shared state (tests read caches and metrics through it).
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Some((_, metrics)) = self.metrics else {
            return self.server.await;
        };
        let handle = metrics.handle();
        let metrics = tokio::spawn(metrics);
        let served = self.server.await;
        handle.stop(true).await;
        drop(metrics.await);
        served
    }
}

/// `GET /metrics` on its own listener, with the shared state; every other path is 404.
fn metrics_server(
    addr: std::net::SocketAddr,
    state: web::Data<AppState>,
) -> anyhow::Result<(u16, Server)> {
    let listener = TcpListener::bind(addr)?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .service(
                web::resource("/metrics")
                    .route(web::get().to(routes::health::metrics))
                    .default_service(web::to(method_not_allowed("GET"))),
            )
            .default_service(web::to(routes::fallback::not_found))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    tracing::info!(port, "ssm-app metrics listening");
    Ok((port, server))
}

//! The Crypto API service: one router shared by the Lambda (API Gateway HTTP API, payload v2)
//! and the local HTTP server. Each request is matched and parsed by `ssm_core::api`, the keyring
//! is fetched from the cache (refreshed early when a ciphertext names a newer version), and the
//! operation runs. The access log carries caller, route, status, key versions and sizes only.

pub mod config;
pub mod lambda;
pub mod local;

use std::sync::Arc;
use std::time::Instant;

use ssm_core::api::{self, ApiError, Limits, Request, Route};
use ssm_keystore::KeyringCache;

/// A response ready for either front end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The service: the keyring cache and the limits.
#[derive(Debug)]
pub struct Service {
    keyring: Arc<KeyringCache>,
    limits: Limits,
}

impl Service {
    pub fn new(keyring: Arc<KeyringCache>, limits: Limits) -> Self {
        Self { keyring, limits }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn keyring(&self) -> &KeyringCache {
        &self.keyring
    }

    /// Handles one request. Never panics on input; every failure is a JSON error response.
    pub async fn handle(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        caller: Option<&str>,
    ) -> HttpResponse {
        let started = Instant::now();
        let response = match self.respond(method, path, body).await {
            Ok(response) => response,
            Err(error) => api::Response::error(&error),
        };
        self.finish(started, method, path, body.len(), caller, response)
    }

    /// Answers a request a front end refused before the service could read it (for example a
    /// body that is not valid base64), with the same access log line as every other request.
    pub fn reject(
        &self,
        method: &str,
        path: &str,
        request_bytes: usize,
        caller: Option<&str>,
        error: ApiError,
    ) -> HttpResponse {
        let response = api::Response::error(&error);
        self.finish(
            Instant::now(),
            method,
            path,
            request_bytes,
            caller,
            response,
        )
    }

    /// Logs the access line (caller, route, status, versions, sizes; never data) and renders
    /// the body.
    fn finish(
        &self,
        started: Instant,
        method: &str,
        path: &str,
        request_bytes: usize,
        caller: Option<&str>,
        response: api::Response,
    ) -> HttpResponse {
        let summary = &response.summary;
        let versions: Vec<u32> = summary.key_versions.iter().map(|v| v.get()).collect();
        tracing::info!(
            caller = caller.unwrap_or("-"),
            method,
            route = Route::from_request(method, path).map(Route::path).unwrap_or("-"),
            status = response.status,
            error_code = response.error_code.as_deref(),
            items = summary.items,
            failed_items = summary.failed_items,
            bytes_in = summary.bytes_in,
            bytes_out = summary.bytes_out,
            key_versions = ?versions,
            legacy_items = summary.legacy_items,
            request_bytes,
            elapsed_us = started.elapsed().as_micros() as u64,
            "request"
        );
        HttpResponse {
            status: response.status,
            body: response.body,
        }
    }

    async fn respond(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<api::Response, ApiError> {
        let route = Route::from_request(method, path)?;
        if body.len() > self.limits.max_body() {
            return Err(ApiError::body_too_large(self.limits.max_body()));
        }
        let request = Request::parse(route, body, &self.limits)?;
        if !request.needs_keyring() {
            return Ok(api::execute(&request, None, &self.limits));
        }
        let ring = self
            .keyring
            .get_knowing(request.newest_named_version())
            .await
            .map_err(|_| ApiError::keyring_unavailable())?;
        Ok(api::execute(&request, Some(&ring), &self.limits))
    }
}

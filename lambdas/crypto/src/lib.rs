//! The Crypto API service: one router shared by the Lambda (API Gateway HTTP API, payload v2)
//! and the local HTTP server. Each request is matched and parsed by `ssm_core::api`, the keyring
//! of the key it names is fetched from that key's cache (loaded on the key's first request,
//! refreshed early when a ciphertext names a newer version), and the operation runs. The access
//! log carries caller, route, key, status, key versions and sizes only.

pub mod config;
pub mod lambda;
pub mod local;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ssm_core::api::{self, ApiError, Limits, Request, Route};
use ssm_core::keyname::KeyName;
use ssm_keystore::{CachePolicy, KeySource, KeyringCache};

/// A response ready for either front end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The service: one keyring cache per key (`default` always) and the limits.
#[derive(Debug)]
pub struct Service {
    default: Arc<KeyringCache>,
    named: HashMap<KeyName, Arc<KeyringCache>>,
    limits: Limits,
}

impl Service {
    /// A service with the `default` key only.
    pub fn new(keyring: Arc<KeyringCache>, limits: Limits) -> Self {
        Self {
            default: keyring,
            named: HashMap::new(),
            limits,
        }
    }

    /// Adds key `name` (not `default`, which [`Service::new`] sets) with its own cache. A
    /// cache loads nothing until its key's first request.
    pub fn with_key(mut self, name: KeyName, keyring: Arc<KeyringCache>) -> Self {
        if name.is_default() {
            self.default = keyring;
        } else {
            self.named.insert(name, keyring);
        }
        self
    }

    /// The service for `default` and `named` keys, each with a cache of `policy`.
    pub fn from_sources(
        default: KeySource,
        named: Vec<(KeyName, KeySource)>,
        policy: CachePolicy,
        limits: Limits,
    ) -> Self {
        let service = Self::new(Arc::new(KeyringCache::new(default, policy)), limits);
        named.into_iter().fold(service, |service, (name, source)| {
            service.with_key(name, Arc::new(KeyringCache::new(source, policy)))
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The `default` key's cache.
    pub fn keyring(&self) -> &KeyringCache {
        &self.default
    }

    /// The cache of key `name`, if the service has that key.
    pub fn keyring_of(&self, name: &KeyName) -> Option<&KeyringCache> {
        if name.is_default() {
            Some(&self.default)
        } else {
            self.named.get(name).map(Arc::as_ref)
        }
    }

    /// Every key the service has, `default` first, then by name.
    pub fn key_names(&self) -> Vec<KeyName> {
        let mut names: Vec<KeyName> = self.named.keys().copied().collect();
        names.sort();
        names.insert(0, KeyName::DEFAULT);
        names
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
        let route = Route::from_request(method, path).ok();
        // The key the route names (a name that passed validation, never request data).
        let key = route
            .filter(|route| *route != Route::Version)
            .map(|route| route.target().name);
        tracing::info!(
            caller = caller.unwrap_or("-"),
            method,
            route = route.map(Route::path).unwrap_or("-"),
            key = key.as_ref().map(KeyName::as_str).unwrap_or("-"),
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
        let target = route.target();
        let cache = self
            .keyring_of(&target.name)
            .ok_or_else(|| ApiError::unknown_key(&target.name))?;
        if body.len() > self.limits.max_body() {
            return Err(ApiError::body_too_large(self.limits.max_body()));
        }
        let request = Request::parse(route, body, &self.limits)?;
        if !request.needs_keyring() {
            return Ok(api::execute_as(target, &request, None, &self.limits));
        }
        let ring = cache
            .get_knowing(request.newest_named_version())
            .await
            .map_err(|_| ApiError::keyring_unavailable())?;
        Ok(api::execute_as(target, &request, Some(&ring), &self.limits))
    }
}

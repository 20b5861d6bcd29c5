//! Forwards a caller's signed `sts:GetCallerIdentity` request to the configured STS endpoint and
//! reads the caller's ARN from the answer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use ssm_core::broker::{ForwardRequest, IdentityError, MAX_IDENTITY_AGE, parse_caller_identity};

use crate::error::ApiError;

/// Byte-identical signed requests get the same answer from STS; remembering it until the request
/// leaves the freshness window saves a round trip when a caller reuses its signed request.
const MAX_REMEMBERED: usize = 10_000;

/// Digest of a forwarded request → (caller ARN, end of its freshness window).
type Remembered = HashMap<[u8; 32], (String, DateTime<Utc>)>;

/// The STS side of the broker: one HTTP client (redirects off, timeouts) and its endpoint.
#[derive(Debug)]
pub struct Sts {
    http: reqwest::Client,
    endpoint: url::Url,
    remembered: Mutex<Remembered>,
}

impl Sts {
    /// The factory: base URL and timeout from configuration.
    pub fn new(endpoint: url::Url, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .build()?;
        Ok(Self {
            http,
            endpoint,
            remembered: Mutex::new(HashMap::new()),
        })
    }

    pub fn endpoint(&self) -> &url::Url {
        &self.endpoint
    }

    /// Sends the checked request to STS and returns the caller's ARN.
    pub async fn caller_arn(&self, req: &ForwardRequest) -> Result<String, ApiError> {
        let key = digest(req);
        let now = Utc::now();
        if let Some((arn, until)) = self.remembered_lock().get(&key)
            && now < *until
        {
            return Ok(arn.clone());
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &req.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ApiError::Malformed(format!("identity header name {name:?} is invalid"))
            })?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                ApiError::Malformed(format!("identity header {name} has an invalid value"))
            })?;
            headers.insert(name, value);
        }
        let resp = self
            .http
            .post(self.endpoint.clone())
            .headers(headers)
            .body(req.body.clone())
            .send()
            .await
            .map_err(|e| ApiError::StsUnavailable(e.without_url().to_string()))?;
        let status = resp.status();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(ApiError::StsUnavailable(format!(
                "HTTP {}",
                status.as_u16()
            )));
        }
        if !status.is_success() {
            return Err(ApiError::StsRejected(status.as_u16()));
        }
        let body = resp
            .text()
            .await
            .map_err(|e| ApiError::StsUnavailable(e.without_url().to_string()))?;
        let arn = parse_caller_identity(&body).map_err(ApiError::Identity)?;
        let signed_at = req
            .headers
            .iter()
            .find(|(n, _)| n == "x-amz-date")
            .and_then(|(_, d)| chrono::NaiveDateTime::parse_from_str(d, "%Y%m%dT%H%M%SZ").ok())
            .map(|d| d.and_utc())
            .ok_or(ApiError::Identity(IdentityError::MissingDate))?;
        let mut remembered = self.remembered_lock();
        if remembered.len() >= MAX_REMEMBERED {
            remembered.retain(|_, (_, until)| now < *until);
        }
        if remembered.len() < MAX_REMEMBERED {
            remembered.insert(key, (arn.clone(), signed_at + MAX_IDENTITY_AGE));
        }
        Ok(arn)
    }

    fn remembered_lock(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.remembered.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn digest(req: &ForwardRequest) -> [u8; 32] {
    let mut h = Sha256::new();
    for (name, value) in &req.headers {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(value.as_bytes());
        h.update([0]);
    }
    h.update(req.body.as_bytes());
    h.finalize().into()
}

//! Forwards a caller's checked `sts:GetCallerIdentity` request to the accepted STS endpoint it
//! was signed for, and reads the caller's ARN from the answer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use ssm_core::broker::{
    ForwardRequest, IdentityError, StsEndpoints, escaped, parse_caller_identity,
};

/// Why no caller ARN came back. The route turns it into its HTTP error.
#[derive(Debug, thiserror::Error)]
pub enum StsError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("STS rejected the signed identity request (HTTP {0})")]
    Rejected(u16),
    #[error("STS is unavailable: {0}")]
    Unavailable(String),
    /// A header the checks let through that the HTTP client cannot send.
    #[error("{0}")]
    Header(String),
}

/// Byte-identical signed requests get the same answer from STS; remembering it until the request
/// stops being valid (its `valid_until`, never later) saves a round trip when a caller reuses its
/// signed request, and makes a replayed refused request (a flood of one forged request) cost one
/// STS call, not one each. The key covers every forwarded header, the signed scope among them,
/// so a remembered identity serves only the repository and permissions it was signed for.
const MAX_REMEMBERED: usize = 10_000;

/// What STS answered for a request: the caller's ARN, or the status it refused it with.
type Answer = Result<String, u16>;

/// Digest of a forwarded request → (STS's answer, end of the request's validity).
type Remembered = HashMap<[u8; 32], (Answer, DateTime<Utc>)>;

/// The STS side of the broker: one HTTP client (redirects off, timeouts) and the endpoints
/// identity requests may be signed for.
#[derive(Debug)]
pub struct Sts {
    http: reqwest::Client,
    endpoints: StsEndpoints,
    remembered: Mutex<Remembered>,
}

impl Sts {
    /// The factory: accepted endpoints and timeout from configuration.
    pub fn new(endpoints: StsEndpoints, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .build()?;
        Ok(Self {
            http,
            endpoints,
            remembered: Mutex::new(HashMap::new()),
        })
    }

    pub fn endpoints(&self) -> &StsEndpoints {
        &self.endpoints
    }

    /// Sends the checked request to the endpoint it was signed for and returns the caller's ARN.
    pub async fn caller_arn(&self, req: &ForwardRequest) -> Result<String, StsError> {
        // `check_identity` only returns accepted endpoints; this keeps it so whatever the caller.
        let Some(endpoint) = self.endpoints.find(&req.url) else {
            return Err(StsError::Identity(IdentityError::Url {
                expected: self.endpoints.describe(),
                received: escaped(&req.url, 200),
            }));
        };
        let key = digest(req);
        let now = Utc::now();
        if let Some((answer, until)) = self.remembered_lock().get(&key)
            && now < *until
        {
            return answer.clone().map_err(StsError::Rejected);
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &req.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                StsError::Header(format!(
                    "identity header name {} is invalid",
                    escaped(name, 64)
                ))
            })?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                StsError::Header(format!("identity header {name} has an invalid value"))
            })?;
            headers.insert(name, value);
        }
        let resp = self
            .http
            .post(endpoint.url())
            .headers(headers)
            .body(req.body.clone())
            .send()
            .await
            .map_err(|e| StsError::Unavailable(e.without_url().to_string()))?;
        let status = resp.status();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(StsError::Unavailable(format!("HTTP {}", status.as_u16())));
        }
        if !status.is_success() {
            self.remember(key, Err(status.as_u16()), req.valid_until, now);
            return Err(StsError::Rejected(status.as_u16()));
        }
        let body = resp
            .text()
            .await
            .map_err(|e| StsError::Unavailable(e.without_url().to_string()))?;
        let arn = parse_caller_identity(&body).map_err(StsError::Identity)?;
        self.remember(key, Ok(arn.clone()), req.valid_until, now);
        Ok(arn)
    }

    /// Keeps `answer` until `until` while there is room (expired entries make room first).
    fn remember(&self, key: [u8; 32], answer: Answer, until: DateTime<Utc>, now: DateTime<Utc>) {
        let mut remembered = self.remembered_lock();
        if remembered.len() >= MAX_REMEMBERED {
            remembered.retain(|_, (_, until)| now < *until);
        }
        if remembered.len() < MAX_REMEMBERED {
            remembered.insert(key, (answer, until));
        }
    }

    fn remembered_lock(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.remembered.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn digest(req: &ForwardRequest) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(req.url.as_bytes());
    h.update([0]);
    for (name, value) in &req.headers {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(value.as_bytes());
        h.update([0]);
    }
    h.update(req.body.as_bytes());
    h.finalize().into()
}

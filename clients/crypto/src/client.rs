//! The client: one HTTP client and credentials provider, a signed and retried call per route.

use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ClientError, error_chain, from_status};
use crate::key_name::KeyName;
use crate::retry::{self, RetryPolicy};
use crate::secret::SecretBytes;
use crate::wire::{
    BatchBody, BatchEntry, BatchResults, CiphertextBody, CiphertextItem, DataKey, DataKeyBody,
    DataKeyBodyOut, EncryptBody, HmacBody, ItemResult, ItemsBody, ItemsResults, KeyInfo, Mac,
    MacItem, Opened, PlaintextItem, Sealed, UnwrapBody, Unwrapped, Verified, VerifyBody, Version,
    WrapBody, Wrapped,
};

/// The SigV4 service name of API Gateway's invoke endpoints.
pub const SIGNING_SERVICE: &str = "execute-api";

/// Where the API is and how patiently to call it.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    endpoint: url::Url,
    region: String,
    retry: RetryPolicy,
    timeout: Duration,
    connect_timeout: Duration,
}

impl ClientConfig {
    /// `endpoint` is the API's base URL (the stack's `ApiUrl` output, e.g.
    /// `https://a1b2c3.execute-api.eu-west-1.amazonaws.com`); `region` the one to sign for.
    pub fn new(endpoint: &str, region: &str) -> Result<Self, ClientError> {
        let endpoint = url::Url::parse(endpoint)
            .map_err(|e| ClientError::Config(format!("endpoint {endpoint:?}: {e}")))?;
        if !matches!(endpoint.scheme(), "https" | "http")
            || endpoint.host_str().is_none()
            || endpoint.query().is_some()
            || endpoint.fragment().is_some()
        {
            return Err(ClientError::Config(format!(
                "endpoint {endpoint} must be an http(s) URL without a query"
            )));
        }
        if region.is_empty() {
            return Err(ClientError::Config("the region must not be empty".into()));
        }
        Ok(Self {
            endpoint,
            region: region.to_owned(),
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
        })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The most one attempt may take, from connecting to the last byte of the answer (API
    /// Gateway gives up on the Lambda after 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub fn endpoint(&self) -> &url::Url {
        &self.endpoint
    }

    pub fn region(&self) -> &str {
        &self.region
    }
}

/// The region in an API Gateway endpoint's host name (`{api}.execute-api.{region}.amazonaws.com`).
pub fn region_of_endpoint(endpoint: &url::Url) -> Option<&str> {
    let (_, rest) = endpoint.host_str()?.split_once(".execute-api.")?;
    rest.split_once('.').map(|(region, _)| region)
}

/// The API id in an API Gateway endpoint's host name.
pub fn api_id_of_endpoint(endpoint: &url::Url) -> Option<&str> {
    let (id, _) = endpoint.host_str()?.split_once(".execute-api.")?;
    Some(id)
}

/// A client of the Crypto API. Cheap to clone; clones share connections.
#[derive(Debug, Clone)]
pub struct CryptoClient {
    http: reqwest::Client,
    endpoint: url::Url,
    /// `host[:port]` as the request sends it, which SigV4 signs.
    host: String,
    region: String,
    retry: RetryPolicy,
    credentials: SharedCredentialsProvider,
}

impl CryptoClient {
    /// A client signing with `credentials` (any provider: static keys, an assumed role, ...).
    pub fn new(
        config: ClientConfig,
        credentials: SharedCredentialsProvider,
    ) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| ClientError::Config(format!("HTTP client: {e}")))?;
        let host = config.endpoint[url::Position::BeforeHost..url::Position::AfterPort].to_owned();
        Ok(Self {
            http,
            endpoint: config.endpoint,
            host,
            region: config.region,
            retry: config.retry,
            credentials,
        })
    }

    /// A client signing with the default AWS credential chain (environment, shared config and
    /// credentials files, web identity, ECS and EC2 roles).
    pub async fn from_default_chain(config: ClientConfig) -> Result<Self, ClientError> {
        let sdk = ssm_sdk_http::sdk_config_loader().load().await;
        Self::from_sdk_config(config, &sdk)
    }

    /// A client signing with the credentials of an SDK configuration already loaded.
    pub fn from_sdk_config(
        config: ClientConfig,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, ClientError> {
        let credentials = sdk.credentials_provider().ok_or_else(|| {
            ClientError::Credentials("the AWS configuration has no credentials provider".into())
        })?;
        Self::new(config, credentials)
    }

    /// The routes of key `name`: `/v1/keys/{name}/...`.
    pub fn key<'a>(&'a self, name: &KeyName) -> Key<'a> {
        Routes::new(self, format!("/v1/keys/{name}"))
    }

    /// The original routes (`/v1/encrypt`, ..., `/wrap`, `/unwrap`, `/version`), on key `default`.
    pub fn legacy(&self) -> Legacy<'_> {
        Routes::new(self, "/v1".to_owned())
    }

    pub fn endpoint(&self) -> &url::Url {
        &self.endpoint
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// `POST path` with `body` as JSON, answered with a `T` on 2xx.
    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        let json = serde_json::to_vec(body)
            .map_err(|e| ClientError::Config(format!("request body: {e}")))?;
        self.call(Method::POST, "POST", path, Some(json)).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, "GET", path, None).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        method_name: &'static str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let (status, bytes, attempts) = self.send(&method, method_name, path, body).await?;
        if (200..300).contains(&status) {
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
                method: method_name,
                path: path.to_owned(),
                status,
                // serde's message names the field or the position, never the value.
                message: e.to_string(),
            })
        } else {
            Err(from_status(method_name, path, status, &bytes, attempts))
        }
    }

    /// Sends the request, signed afresh for each attempt, until it gets an answer that is not
    /// retried or the attempts run out. Logs routes, statuses and timings, never bodies or headers.
    async fn send(
        &self,
        method: &Method,
        method_name: &'static str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, bytes::Bytes, u32), ClientError> {
        let url = self.url(path)?;
        let body = body.map(bytes::Bytes::from);
        let max_attempts = self.retry.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            let headers = self
                .signed_headers(method_name, &url, body.as_deref(), SystemTime::now())
                .await?;
            let mut request = self.http.request(method.clone(), url.clone());
            for (name, value) in &headers {
                request = request.header(name.as_str(), value.as_str());
            }
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            let answer = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = retry::retry_after(response.headers());
                    response
                        .bytes()
                        .await
                        .map(|bytes| (status, bytes, retry_after))
                }
                Err(e) => Err(e),
            };
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let (retry_after, why) = match answer {
                Ok((status, bytes, retry_after)) => {
                    tracing::debug!(
                        method = method_name,
                        path,
                        attempt,
                        status,
                        elapsed_ms,
                        "answered"
                    );
                    if !retry::is_retryable_status(status) || attempt >= max_attempts {
                        return Ok((status, bytes, attempt));
                    }
                    (retry_after, format!("status {status}"))
                }
                Err(e) if retry::is_retryable_transport(&e) && attempt < max_attempts => {
                    (None, format!("no answer ({})", transport_kind(&e)))
                }
                Err(source) => {
                    return Err(ClientError::Transport {
                        method: method_name,
                        path: path.to_owned(),
                        attempts: attempt,
                        source,
                    });
                }
            };
            let wait = self
                .retry
                .delay(attempt, retry_after, rand::random::<f64>());
            tracing::info!(
                method = method_name,
                path,
                attempt,
                wait_ms = wait.as_millis() as u64,
                "{why}; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    fn url(&self, path: &str) -> Result<url::Url, ClientError> {
        let base = self.endpoint.path().trim_end_matches('/');
        let mut url = self.endpoint.clone();
        url.set_path(&format!("{base}{path}"));
        Ok(url)
    }

    /// The headers of a request signed with SigV4 for `execute-api` at `at`: the content type,
    /// `x-amz-date`, `authorization` and, for temporary credentials, `x-amz-security-token`.
    async fn signed_headers(
        &self,
        method: &str,
        url: &url::Url,
        body: Option<&[u8]>,
        at: SystemTime,
    ) -> Result<Vec<(String, String)>, ClientError> {
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| ClientError::Credentials(error_chain(&e)))?;
        let identity: Identity = credentials.into();
        let signing_err = |e: &dyn std::fmt::Display| ClientError::Signing(e.to_string());
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SIGNING_SERVICE)
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| signing_err(&e))?
            .into();
        let mut headers = vec![("host".to_owned(), self.host.clone())];
        if body.is_some() {
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
        }
        let signable = SignableRequest::new(
            method,
            url.as_str(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body.unwrap_or_default()),
        )
        .map_err(|e| signing_err(&e))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| signing_err(&e))?
            .into_parts();
        // reqwest writes `host` itself, from the same URL.
        headers.remove(0);
        headers.extend(
            instructions
                .headers()
                .map(|(name, value)| (name.to_owned(), value.to_owned())),
        );
        Ok(headers)
    }
}

/// The routes of one key. [`Key`] (`/v1/keys/{name}/...`) and [`Legacy`] (the original routes,
/// key `default`) share the operations whose bodies are the same; each has its own others.
#[derive(Debug, Clone)]
pub struct Routes<'a, S> {
    client: &'a CryptoClient,
    /// The path before an operation's name: `/v1/keys/{name}` or `/v1`.
    base: String,
    scope: std::marker::PhantomData<S>,
}

/// Marks the named routes, `/v1/keys/{name}/...` (format 2 envelopes, `ssm2:NAME:vN:`).
#[derive(Debug, Clone, Copy)]
pub enum Named {}

/// Marks the original routes (`/v1/encrypt`, ..., `/wrap`, `/unwrap`, `/version`), all on key
/// `default`, producing `ssm:vN:` envelopes as before named keys.
#[derive(Debug, Clone, Copy)]
pub enum Original {}

/// The routes of one named key.
pub type Key<'a> = Routes<'a, Named>;
/// The original routes, on key `default`.
pub type Legacy<'a> = Routes<'a, Original>;

impl<'a, S> Routes<'a, S> {
    fn new(client: &'a CryptoClient, base: String) -> Self {
        Self {
            client,
            base,
            scope: std::marker::PhantomData,
        }
    }

    fn path(&self, op: &str) -> String {
        format!("{}/{op}", self.base)
    }

    /// Encrypts `plaintext` bound to `context` under the key's primary version.
    pub async fn encrypt(&self, plaintext: &[u8], context: &[u8]) -> Result<Sealed, ClientError> {
        let item = PlaintextItem { plaintext, context };
        self.client
            .post(&self.path("encrypt"), &EncryptBody::from(&item))
            .await
    }

    /// Encrypts each item; the result of each, in order.
    pub async fn encrypt_batch(
        &self,
        items: &[PlaintextItem<'_>],
    ) -> Result<Vec<ItemResult<Sealed>>, ClientError> {
        let body = BatchBody {
            batch: items.iter().map(EncryptBody::from).collect(),
        };
        self.sealed_batch("encrypt", &body).await
    }

    /// Decrypts an envelope of this key (for `default`, also `ssm:vN:` and legacy ones).
    pub async fn decrypt(
        &self,
        ciphertext: &str,
        context: &[u8],
    ) -> Result<SecretBytes, ClientError> {
        let item = CiphertextItem {
            ciphertext,
            context,
        };
        let path = self.path("decrypt");
        let opened: Opened = self
            .client
            .post(&path, &CiphertextBody::from(&item))
            .await?;
        opened
            .decode()
            .map_err(|message| decode_error(&path, message))
    }

    /// Decrypts each item; the plaintext or the error of each, in order.
    pub async fn decrypt_batch(
        &self,
        items: &[CiphertextItem<'_>],
    ) -> Result<Vec<ItemResult<SecretBytes>>, ClientError> {
        let path = self.path("decrypt");
        let body = BatchBody {
            batch: items.iter().map(CiphertextBody::from).collect(),
        };
        let results: BatchResults<Opened> = self.client.post(&path, &body).await?;
        results
            .batch_results
            .into_iter()
            .map(|entry| match item_result(entry) {
                Ok(opened) => opened
                    .decode()
                    .map(Ok)
                    .map_err(|message| decode_error(&path, message)),
                Err(error) => Ok(Err(error)),
            })
            .collect()
    }

    /// Re-encrypts under the primary version; the plaintext never leaves the service.
    pub async fn rewrap(&self, ciphertext: &str, context: &[u8]) -> Result<Sealed, ClientError> {
        let item = CiphertextItem {
            ciphertext,
            context,
        };
        self.client
            .post(&self.path("rewrap"), &CiphertextBody::from(&item))
            .await
    }

    /// Rewraps each item; the result of each, in order.
    pub async fn rewrap_batch(
        &self,
        items: &[CiphertextItem<'_>],
    ) -> Result<Vec<ItemResult<Sealed>>, ClientError> {
        let body = BatchBody {
            batch: items.iter().map(CiphertextBody::from).collect(),
        };
        self.sealed_batch("rewrap", &body).await
    }

    /// A fresh 256-bit data key sealed under this key; `wrapped_only` asks the service not to
    /// send the plaintext key at all.
    pub async fn data_key(
        &self,
        context: &[u8],
        wrapped_only: bool,
    ) -> Result<DataKey, ClientError> {
        let path = self.path("datakey");
        let out: DataKeyBodyOut = self
            .client
            .post(&path, &DataKeyBody::new(context, wrapped_only))
            .await?;
        out.decode().map_err(|message| decode_error(&path, message))
    }

    async fn sealed_batch(
        &self,
        op: &str,
        body: &impl Serialize,
    ) -> Result<Vec<ItemResult<Sealed>>, ClientError> {
        let results: BatchResults<Sealed> = self.client.post(&self.path(op), body).await?;
        Ok(results.batch_results.into_iter().map(item_result).collect())
    }
}

impl Routes<'_, Named> {
    /// An HMAC-SHA256 tag over `input` under the key's primary version.
    pub async fn hmac(&self, input: &[u8]) -> Result<Mac, ClientError> {
        self.client
            .post(&self.path("hmac"), &HmacBody::new(input))
            .await
    }

    /// Whether `mac` is this key's MAC of `input`. A MAC of another key is an error
    /// (`key_mismatch`); a malformed or wrong one is `Ok(false)`.
    pub async fn verify(&self, input: &[u8], mac: &str) -> Result<bool, ClientError> {
        let verified: Verified = self
            .client
            .post(&self.path("verify"), &VerifyBody::new(input, mac))
            .await?;
        Ok(verified.valid)
    }

    /// The MAC of each input, in order (`{"items": [...]}`).
    pub async fn hmac_batch(&self, inputs: &[&[u8]]) -> Result<Vec<ItemResult<Mac>>, ClientError> {
        let body = ItemsBody {
            items: inputs.iter().map(|input| HmacBody::new(input)).collect(),
        };
        let results: ItemsResults<Mac> = self.client.post(&self.path("hmac"), &body).await?;
        Ok(results.items.into_iter().map(item_result).collect())
    }

    /// Whether each MAC is this key's MAC of its input, in order.
    pub async fn verify_batch(
        &self,
        items: &[MacItem<'_>],
    ) -> Result<Vec<ItemResult<bool>>, ClientError> {
        let body = ItemsBody {
            items: items
                .iter()
                .map(|item| VerifyBody::new(item.input, item.mac))
                .collect(),
        };
        let results: ItemsResults<Verified> = self.client.post(&self.path("verify"), &body).await?;
        Ok(results
            .items
            .into_iter()
            .map(|entry| item_result(entry).map(|verified| verified.valid))
            .collect())
    }

    /// `GET /v1/keys/{name}`: the key's versions and policy.
    pub async fn info(&self) -> Result<KeyInfo, ClientError> {
        self.client.get(&self.base).await
    }
}

impl Routes<'_, Original> {
    /// `GET /v1/keys`.
    pub async fn keys(&self) -> Result<KeyInfo, ClientError> {
        self.client.get("/v1/keys").await
    }

    /// `POST /wrap`: encrypts text, no context.
    pub async fn wrap(&self, text: &str) -> Result<String, ClientError> {
        let wrapped: Wrapped = self.client.post("/wrap", &WrapBody { text }).await?;
        Ok(wrapped.cipher)
    }

    /// `POST /unwrap`: decrypts to text (also legacy ciphertexts, where the keyring has a legacy key).
    pub async fn unwrap(&self, cipher: &str) -> Result<String, ClientError> {
        let mut unwrapped: Unwrapped = self.client.post("/unwrap", &UnwrapBody { cipher }).await?;
        Ok(std::mem::take(&mut unwrapped.text))
    }

    /// `GET /version`: the service's version.
    pub async fn version(&self) -> Result<String, ClientError> {
        let version: Version = self.client.get("/version").await?;
        Ok(version.version)
    }
}

fn item_result<T>(entry: BatchEntry<T>) -> ItemResult<T> {
    match entry {
        BatchEntry::Done(value) => Ok(value),
        // A failed item's own status is not sent; 400 is what it would have had alone in most
        // cases, and `code` is what to branch on.
        BatchEntry::Failed(body) => Err(body.into_api_error(400)),
    }
}

fn decode_error(path: &str, message: String) -> ClientError {
    ClientError::Decode {
        method: "POST",
        path: path.to_owned(),
        status: 200,
        message,
    }
}

fn transport_kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "connection failed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked_and_named_parts_found() {
        assert!(ClientConfig::new("ftp://x", "us-east-1").is_err());
        assert!(ClientConfig::new("https://x/?a=b", "us-east-1").is_err());
        assert!(ClientConfig::new("https://x", "").is_err());
        let url = url::Url::parse("https://a1b2c3.execute-api.eu-west-1.amazonaws.com/").unwrap();
        assert_eq!(region_of_endpoint(&url), Some("eu-west-1"));
        assert_eq!(api_id_of_endpoint(&url), Some("a1b2c3"));
        let local = url::Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(region_of_endpoint(&local), None);
    }

    #[test]
    fn paths_keep_the_endpoints_base_path() {
        let credentials = SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
            "AKID", "secret", None, None, "test",
        ));
        let client = |endpoint| {
            CryptoClient::new(
                ClientConfig::new(endpoint, "us-east-1").unwrap(),
                credentials.clone(),
            )
            .unwrap()
        };
        assert_eq!(
            client("https://api.example.com")
                .url("/v1/encrypt")
                .unwrap()
                .as_str(),
            "https://api.example.com/v1/encrypt"
        );
        assert_eq!(
            client("https://api.example.com/prod/")
                .url("/v1/keys/a/encrypt")
                .unwrap()
                .as_str(),
            "https://api.example.com/prod/v1/keys/a/encrypt"
        );
        assert_eq!(client("http://127.0.0.1:9000").host, "127.0.0.1:9000");
        assert_eq!(
            client("https://api.example.com:443").host,
            "api.example.com"
        );
    }
}

//! The HTTP client every AWS SDK client of ours sends its requests with.
//!
//! The SDK's default client (`default-https-client`) is a second hyper client stack beside the
//! reqwest client the Lambdas and the App already use for GitHub, with its own connection pool and
//! an HTTP/2 implementation (`h2`) that AWS's regional endpoints do not need. Building the SDK on
//! reqwest instead leaves one HTTP client and one TLS stack (rustls on aws-lc-rs) in each binary:
//! about 0.5 MB less in each Lambda (`h2` alone was 400–490 kB), which matters because a zip is
//! fetched on every cold start.
//!
//! What the SDK expects of a client, and where this one does it:
//! - connect and read timeouts from [`HttpConnectorSettings`] (one reqwest client per distinct
//!   setting, built once and shared, so the pool is reused);
//! - errors classified for the SDK's retry policy ([`classify`]): a timeout is a timeout, a failed
//!   connect or an I/O error is transient, a request the client could not build is the caller's;
//! - bodies streamed both ways (S3 asset uploads are not read into memory);
//! - no header added that the request was not signed with, except the ones SigV4 leaves unsigned;
//!   reqwest adds none of its own to a request that has its headers set.
//!
//! Every binary gets its SDK configuration from [`sdk_config_loader`]; none of them enables the
//! SDK's `default-https-client` feature, so a client built without this one fails its first call
//! with "no HTTP client" in every test instead of quietly using a second stack.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::{BehaviorVersion, ConfigLoader};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::retries::ErrorKind;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::body::SdkBody;

/// `aws_config::defaults` with our HTTP client: where every SDK configuration starts.
pub fn sdk_config_loader() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client())
}

/// The SDK HTTP client (for a config built without [`sdk_config_loader`]).
pub fn http_client() -> SharedHttpClient {
    SharedHttpClient::new(ReqwestHttpClient::default())
}

/// Connect and read timeouts.
type Timeouts = (Option<Duration>, Option<Duration>);

/// Hands the SDK one connector per distinct timeout setting.
#[derive(Debug, Default)]
struct ReqwestHttpClient {
    connectors: Mutex<HashMap<Timeouts, SharedHttpConnector>>,
}

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        connectors
            .entry(key)
            .or_insert_with(|| SharedHttpConnector::new(ReqwestConnector::new(key.0, key.1)))
            .clone()
    }
}

#[derive(Debug)]
struct ReqwestConnector {
    /// `Err` if reqwest could not be built (no TLS roots...): every call then reports it.
    client: Result<reqwest::Client, String>,
}

impl ReqwestConnector {
    fn new(connect_timeout: Option<Duration>, read_timeout: Option<Duration>) -> Self {
        let mut builder = reqwest::Client::builder()
            // The SDK decides about redirects (it follows none) and retries itself.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(t) = connect_timeout {
            builder = builder.connect_timeout(t);
        }
        if let Some(t) = read_timeout {
            builder = builder.read_timeout(t);
        }
        Self {
            client: builder.build().map_err(|e| e.to_string()),
        }
    }
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = match &self.client {
            Ok(client) => client.clone(),
            Err(e) => {
                let e: Box<dyn StdError + Send + Sync> = e.clone().into();
                return HttpConnectorFuture::ready(Err(ConnectorError::user(e)));
            }
        };
        let request = match request.try_into_http1x() {
            Ok(r) => r.map(reqwest::Body::wrap),
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let request = match reqwest::Request::try_from(request) {
            Ok(r) => r,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        HttpConnectorFuture::new(async move {
            let response = client.execute(request).await.map_err(classify)?;
            let response: http::Response<reqwest::Body> = response.into();
            Response::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// Sorts a reqwest error the way the SDK's retry policy reads connector errors: timeouts and
/// failed connects or I/O are retried, a request reqwest refused to build is not.
fn classify(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_builder() {
        ConnectorError::user(e.into())
    } else if e.is_connect() || has_source::<std::io::Error>(&e) {
        ConnectorError::io(e.into())
    } else if e.is_request() {
        // The connection closed before the response was complete (hyper's IncompleteMessage,
        // which S3 sends now and then): the SDK's own client treats it as transient too.
        ConnectorError::other(e.into(), Some(ErrorKind::TransientError))
    } else {
        ConnectorError::other(e.into(), None)
    }
}

fn has_source<T: StdError + 'static>(e: &(dyn StdError + 'static)) -> bool {
    let mut next = e.source();
    while let Some(err) = next {
        if err.is::<T>() {
            return true;
        }
        next = err.source();
    }
    false
}

//! `spawn_app()` and friends: the App on 127.0.0.1:0 wired to a local GitHub emulator and moto.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::web;
use aws_credential_types::Credentials;
use ssm_app::config::{LogFormat, Redacted};
use ssm_app::state::AppState;
use ssm_app::{Application, Opts, Settings};
use ssm_broker_client::{BrokerClient, BrokerClientConfig};
use ssm_core::broker::Policy;
use ssm_testkit::github::{GitHubEmulator, TEST_APP_PRIVATE_KEY_PEM, TEST_APP_PUBLIC_KEY_PEM};

pub const APP_ID: u64 = 4242;
pub const AUDIENCE: &str = "ssm-broker.test";
pub const WEBHOOK_SECRET: &str = "It's a Secret to Everybody";
pub const ROTATED_SECRET: &str = "the-next-webhook-secret";
pub const ALLOWED_ROLE: &str = "arn:aws:iam::123456789012:role/integrity";
pub const INSTALLATION: u64 = 7;

pub const POLICY: &str = r#"{"rules": [
  {"principal": "arn:aws:iam::123456789012:role/integrity",
   "repositories": ["acme/infra", "acme/not-installed", "octo-org/*"],
   "permissions": {"contents": "write", "metadata": "read"}}
]}"#;

/// Every log line of this test binary, from every thread (actix workers included).
fn init_logs() {
    ssm_testkit::logs::global();
}

/// Everything logged so far.
pub fn logs() -> String {
    ssm_testkit::logs::global().text()
}

pub struct TestApp {
    pub address: String,
    /// The metrics listener (`GET /metrics`), apart from the public one.
    pub metrics_address: String,
    pub github: GitHubEmulator,
    pub state: web::Data<AppState>,
    pub http: reqwest::Client,
    pub moto: String,
    /// The STS endpoint the App is configured with (moto unless tweaked).
    pub sts_endpoint: String,
}

/// The App, or `None` (test skipped) without moto.
pub async fn spawn_app(test: &str) -> Option<TestApp> {
    spawn_app_with(test, |_| {}).await
}

/// The App with `tweak` applied to its options, or `None` (test skipped) without moto.
pub async fn spawn_app_with(test: &str, tweak: impl FnOnce(&mut Opts)) -> Option<TestApp> {
    let moto = ssm_testkit::moto_endpoint(test)?;
    init_logs();
    let github = GitHubEmulator::start(APP_ID, TEST_APP_PUBLIC_KEY_PEM).await;
    github.install("acme/infra", INSTALLATION);
    let mut opts = Opts {
        listen: "127.0.0.1:0".parse().expect("addr"),
        metrics_listen: Some("127.0.0.1:0".parse().expect("addr")),
        app_id: APP_ID.to_string(),
        private_key_secret_id: None,
        webhook_secret_id: None,
        private_key_file: None,
        private_key: None,
        webhook_secrets: vec![
            ROTATED_SECRET.parse::<Redacted>().expect("infallible"),
            WEBHOOK_SECRET.parse::<Redacted>().expect("infallible"),
        ],
        github_api_url: github.base_url().parse().expect("url"),
        sts_endpoint: Some(moto.parse().expect("url")),
        sts_allowed_regions: Vec::new(),
        aws_region: None,
        audience: AUDIENCE.into(),
        policy_file: None,
        policy: None,
        github_timeout_secs: 5,
        sts_timeout_secs: 5,
        github_max_retries: 3,
        github_max_backoff_secs: 1,
        token_refresh_margin_secs: 600,
        token_replace_min_interval_secs: 30,
        log_format: LogFormat::Text,
    };
    tweak(&mut opts);
    let sts_endpoint = opts
        .sts_endpoint
        .as_ref()
        .map_or_else(|| moto.clone(), url::Url::to_string);
    let policy = Policy::from_json(POLICY).expect("policy");
    let settings = Settings::new(opts, TEST_APP_PRIVATE_KEY_PEM, policy).expect("settings");
    let app = Application::build(settings).expect("build");
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_address = format!(
        "http://127.0.0.1:{}",
        app.metrics_port().expect("a metrics listener")
    );
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    Some(TestApp {
        address,
        metrics_address,
        github,
        state,
        http: reqwest::Client::new(),
        moto,
        sts_endpoint,
    })
}

impl TestApp {
    /// Credentials of an assumed role, from moto's STS.
    pub async fn assume(&self, role_arn: &str) -> Credentials {
        ssm_testkit::assume_role(&self.moto, role_arn, "integrity-test").await
    }

    pub fn client(&self) -> BrokerClient {
        self.client_for(AUDIENCE)
    }

    pub fn client_for(&self, audience: &str) -> BrokerClient {
        BrokerClient::new(BrokerClientConfig {
            broker_url: self.address.clone(),
            audience: audience.into(),
            sts_endpoint: self.sts_endpoint.clone(),
            region: "us-east-1".into(),
            timeout: Duration::from_secs(20),
        })
        .expect("client")
    }

    pub async fn post_token(&self, body: &serde_json::Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/tokens", self.address))
            .json(body)
            .send()
            .await
            .expect("send")
    }

    pub async fn post_webhook(
        &self,
        event: &str,
        delivery: &str,
        signature: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/webhooks", self.address))
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("content-type", "application/json")
            .body(body);
        if let Some(sig) = signature {
            req = req.header("x-hub-signature-256", sig);
        }
        req.send().await.expect("send")
    }

    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.metrics_address))
            .send()
            .await
            .expect("send")
            .text()
            .await
            .expect("text")
    }
}

pub fn perms(p: &[(&str, &str)]) -> BTreeMap<String, String> {
    p.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../testkit/fixtures/webhooks/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).expect("webhook fixture")
}

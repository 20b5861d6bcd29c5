//! Typed configuration: flags and environment parsed once by clap, then loaded into [`Settings`]
//! (files read, keys parsed, policy compiled) so the server fails fast on bad configuration.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use jsonwebtoken::EncodingKey;
use secrecy::SecretString;
use ssm_core::broker::{Policy, StsEndpoints};

/// A flag value that must never be printed (private key PEM, webhook secrets).
#[derive(Clone)]
pub struct Redacted(String);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Redacted {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl FromStr for Redacted {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Command line and environment of `ssm-app`.
#[derive(Debug, clap::Parser)]
#[command(name = "ssm-app", version, about)]
pub struct Opts {
    /// Address to listen on.
    #[arg(long, env = "SSM_APP_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Address of a second listener serving only `GET /metrics`; none when unset. The public
    /// listener (behind the Function URL) never serves metrics; on Lambda only the Web
    /// Adapter's port is reachable, so metrics stay off the public face.
    #[arg(long, env = "SSM_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// The App's id or client id (the JWT's `iss`); may instead come from the private key secret.
    #[arg(long, env = "GITHUB_APP_ID", default_value = "")]
    pub app_id: String,
    /// Secrets Manager secret holding the App's private key: the PEM itself, or JSON
    /// `{"app_id": ..., "pem": "..."}` as `ssm-app setup` writes it. Read once at startup.
    #[arg(
        long,
        env = "GITHUB_APP_PRIVATE_KEY_SECRET_ID",
        conflicts_with_all = ["private_key", "private_key_file"]
    )]
    pub private_key_secret_id: Option<String>,
    /// Secrets Manager secret holding the webhook secret: a string, or a JSON list of strings
    /// (every one is accepted, for rotation). Read once at startup.
    #[arg(
        long,
        env = "GITHUB_WEBHOOK_SECRET_ID",
        conflicts_with = "webhook_secrets"
    )]
    pub webhook_secret_id: Option<String>,
    /// File holding the App's private key (PEM).
    #[arg(
        long,
        env = "GITHUB_APP_PRIVATE_KEY_FILE",
        conflicts_with = "private_key"
    )]
    pub private_key_file: Option<PathBuf>,
    /// The App's private key (PEM) itself.
    #[arg(long, env = "GITHUB_APP_PRIVATE_KEY", hide_env_values = true)]
    pub private_key: Option<Redacted>,
    /// Webhook secrets, comma-separated; several are accepted during a rotation.
    #[arg(
        long,
        env = "GITHUB_WEBHOOK_SECRETS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub webhook_secrets: Vec<Redacted>,
    /// GitHub REST API base URL (GitHub Enterprise Server: `https://HOST/api/v3`).
    #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com")]
    pub github_api_url: url::Url,
    /// The one STS endpoint signed identity requests must name and are forwarded to, replacing
    /// the allowlist of AWS endpoints (an emulator in tests, an STS VPC endpoint).
    #[arg(long, env = "SSM_STS_ENDPOINT", conflicts_with = "sts_allowed_regions")]
    pub sts_endpoint: Option<url::Url>,
    /// Regions whose STS endpoint (`https://sts.REGION.amazonaws.com/`) callers may sign for,
    /// comma-separated, besides the global `https://sts.amazonaws.com/`. Default: the region
    /// the broker runs in (`AWS_REGION`).
    #[arg(long, env = "SSM_STS_ALLOWED_REGIONS", value_delimiter = ',')]
    pub sts_allowed_regions: Vec<String>,
    /// The region the broker runs in (Lambda, ECS and the AWS SDKs set it).
    #[arg(long, env = "AWS_REGION")]
    pub aws_region: Option<String>,
    /// This broker's audience: callers sign it in the `x-ssm-broker-audience` header.
    #[arg(long, env = "SSM_BROKER_AUDIENCE")]
    pub audience: String,
    /// Policy file (JSON): role ARN → repositories → permissions.
    #[arg(
        long,
        env = "SSM_BROKER_POLICY_FILE",
        required_unless_present = "policy",
        conflicts_with = "policy"
    )]
    pub policy_file: Option<PathBuf>,
    /// The policy JSON itself, where shipping a file is awkward (Lambda's environment).
    #[arg(long, env = "SSM_BROKER_POLICY")]
    pub policy: Option<String>,
    /// Timeout of each GitHub API call, in seconds.
    #[arg(long, env = "SSM_GITHUB_TIMEOUT_SECS", default_value_t = 10)]
    pub github_timeout_secs: u64,
    /// Timeout of each STS call, in seconds.
    #[arg(long, env = "SSM_STS_TIMEOUT_SECS", default_value_t = 5)]
    pub sts_timeout_secs: u64,
    /// Retries of a GitHub call after 5xx, 429 or a secondary rate limit.
    #[arg(long, env = "SSM_GITHUB_MAX_RETRIES", default_value_t = 3)]
    pub github_max_retries: u32,
    /// Longest wait between GitHub retries (caps `Retry-After`), in seconds.
    #[arg(long, env = "SSM_GITHUB_MAX_BACKOFF_SECS", default_value_t = 10)]
    pub github_max_backoff_secs: u64,
    /// Cached tokens are refreshed this many seconds before they expire.
    #[arg(long, env = "SSM_TOKEN_REFRESH_MARGIN_SECS", default_value_t = 600)]
    pub token_refresh_margin_secs: u64,
    /// Least time between two replacements of one scope's cached token that callers reported
    /// rejected by GitHub (`rejected_token_sha256`); sooner is 429, so no caller can force a
    /// mint storm.
    #[arg(
        long,
        env = "SSM_TOKEN_REPLACE_MIN_INTERVAL_SECS",
        default_value_t = 30
    )]
    pub token_replace_min_interval_secs: u64,
    /// Log format (`json` for log shippers).
    #[arg(long, env = "SSM_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// The App's private key; its `Debug` never shows it.
#[derive(Clone)]
pub struct AppKey(pub EncodingKey);

impl fmt::Debug for AppKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppKey(<redacted>)")
    }
}

/// Everything the server needs, loaded and validated.
#[derive(Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub metrics_listen: Option<SocketAddr>,
    pub app_id: String,
    pub app_key: AppKey,
    pub webhook_secrets: Vec<SecretString>,
    pub github_api_url: url::Url,
    /// The STS endpoints identity requests may be signed for and are forwarded to.
    pub sts_endpoints: StsEndpoints,
    pub audience: String,
    pub policy: Policy,
    pub github_timeout: Duration,
    pub sts_timeout: Duration,
    pub github_max_retries: u32,
    pub github_max_backoff: Duration,
    pub token_refresh_margin: Duration,
    pub token_replace_min_interval: Duration,
}

impl Settings {
    /// Reads the key and policy files and checks everything once, at startup.
    pub fn load(opts: Opts) -> anyhow::Result<Self> {
        let pem = match (&opts.private_key, &opts.private_key_file) {
            (Some(Redacted(pem)), _) => pem.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("reading the App private key {}", path.display()))?,
            (None, None) => bail!(
                "set GITHUB_APP_PRIVATE_KEY_SECRET_ID, GITHUB_APP_PRIVATE_KEY_FILE or GITHUB_APP_PRIVATE_KEY"
            ),
        };
        let policy = match (&opts.policy, &opts.policy_file) {
            (Some(json), _) => Policy::from_json(json).context("loading SSM_BROKER_POLICY")?,
            (None, Some(path)) => {
                let json = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the policy file {}", path.display()))?;
                Policy::from_json(&json)
                    .with_context(|| format!("loading the policy file {}", path.display()))?
            }
            (None, None) => bail!("set SSM_BROKER_POLICY_FILE or SSM_BROKER_POLICY"),
        };
        Self::new(opts, &pem, policy)
    }

    /// Builds settings from already-loaded key and policy (tests use this).
    pub fn new(opts: Opts, pem: &str, policy: Policy) -> anyhow::Result<Self> {
        let key = EncodingKey::from_rsa_pem(pem.as_bytes())
            .context("the App private key is not an RSA PEM key")?;
        if opts.app_id.is_empty() {
            bail!("set GITHUB_APP_ID (or app_id in the private key secret)");
        }
        if opts.audience.is_empty() {
            bail!("the broker audience must not be empty");
        }
        let sts_endpoints = sts_endpoints(&opts)?;
        let webhook_secrets: Vec<SecretString> = opts
            .webhook_secrets
            .into_iter()
            .filter(|s| !s.0.is_empty())
            .map(|s| SecretString::from(s.0))
            .collect();
        Ok(Self {
            listen: opts.listen,
            metrics_listen: opts.metrics_listen,
            app_id: opts.app_id,
            app_key: AppKey(key),
            webhook_secrets,
            github_api_url: opts.github_api_url,
            sts_endpoints,
            audience: opts.audience,
            policy,
            github_timeout: Duration::from_secs(opts.github_timeout_secs),
            sts_timeout: Duration::from_secs(opts.sts_timeout_secs),
            github_max_retries: opts.github_max_retries,
            github_max_backoff: Duration::from_secs(opts.github_max_backoff_secs),
            token_refresh_margin: Duration::from_secs(opts.token_refresh_margin_secs),
            token_replace_min_interval: Duration::from_secs(opts.token_replace_min_interval_secs),
        })
    }
}

/// `SSM_STS_ENDPOINT` alone if set; else the global endpoint and those of
/// `SSM_STS_ALLOWED_REGIONS`, or of the broker's own region when no list is given.
fn sts_endpoints(opts: &Opts) -> anyhow::Result<StsEndpoints> {
    if let Some(url) = &opts.sts_endpoint {
        return StsEndpoints::only(url.as_str()).context("SSM_STS_ENDPOINT");
    }
    let listed: Vec<&str> = opts
        .sts_allowed_regions
        .iter()
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .collect();
    if !listed.is_empty() {
        return StsEndpoints::global_and_regions(&listed).context("SSM_STS_ALLOWED_REGIONS");
    }
    let own: Vec<&str> = opts.aws_region.as_deref().into_iter().collect();
    StsEndpoints::global_and_regions(&own)
        .context("AWS_REGION (the broker's region, whose STS endpoint is accepted by default)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn secrets_are_split_and_never_printed() {
        let opts = Opts::try_parse_from([
            "ssm-app",
            "--app-id",
            "42",
            "--private-key=-----BEGIN RSA PRIVATE KEY-----",
            "--webhook-secrets",
            "old-secret,new-secret",
            "--audience",
            "aud",
            "--policy-file",
            "/dev/null",
        ])
        .expect("parse");
        assert_eq!(opts.webhook_secrets.len(), 2);
        let debug = format!("{opts:?}");
        assert!(
            !debug.contains("old-secret") && !debug.contains("BEGIN RSA"),
            "{debug}"
        );
        assert_eq!(opts.github_api_url.as_str(), "https://api.github.com/");
    }

    #[test]
    fn policy_inline_or_from_a_file_never_both() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("key.pem");
        std::fs::write(&key, ssm_testkit::github::TEST_APP_PRIVATE_KEY_PEM).expect("write");
        let base = [
            "ssm-app".to_owned(),
            "--app-id=42".to_owned(),
            format!("--private-key-file={}", key.display()),
            "--audience=aud".to_owned(),
        ];
        let inline = r#"{"rules": [{"principal": "arn:aws:iam::123456789012:role/integrity",
            "repositories": ["acme/infra"], "permissions": {"contents": "write"}}]}"#;
        let parse = |extra: &[String]| Opts::try_parse_from(base.iter().chain(extra));
        let settings = Settings::load(parse(&[format!("--policy={inline}")]).expect("parse"))
            .expect("inline policy loads");
        assert_eq!(settings.audience, "aud");
        assert!(parse(&[]).is_err(), "a policy is required");
        assert!(
            parse(&[
                format!("--policy={inline}"),
                "--policy-file=/dev/null".to_owned()
            ])
            .is_err(),
            "inline and file conflict"
        );
        let err = Settings::load(parse(&["--policy={}".to_owned()]).expect("parse"))
            .expect_err("bad inline policy");
        assert!(format!("{err:#}").contains("SSM_BROKER_POLICY"), "{err:#}");
    }

    fn opts(dir: &std::path::Path) -> Opts {
        Opts::try_parse_from([
            "ssm-app".to_owned(),
            "--app-id=42".to_owned(),
            format!("--private-key-file={}", dir.join("key.pem").display()),
            "--audience=aud".to_owned(),
            format!("--policy-file={}", dir.join("policy.json").display()),
        ])
        .expect("parse")
    }

    #[test]
    fn load_fails_fast_on_missing_or_bad_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = Settings::load(opts(dir.path())).expect_err("no key file");
        assert!(format!("{err:#}").contains("key.pem"), "{err:#}");

        std::fs::write(dir.path().join("key.pem"), "not a key").expect("write");
        std::fs::write(dir.path().join("policy.json"), r#"{"rules": []}"#).expect("write");
        let err = Settings::load(opts(dir.path())).expect_err("bad key");
        assert!(format!("{err:#}").contains("not an RSA PEM key"), "{err:#}");
        assert!(
            !format!("{err:#}").contains("not a key"),
            "the key's content is not echoed"
        );

        std::fs::write(
            dir.path().join("key.pem"),
            ssm_testkit::github::TEST_APP_PRIVATE_KEY_PEM,
        )
        .expect("write");
        std::fs::write(
            dir.path().join("policy.json"),
            r#"{"rules": [{"principal": "x"}]}"#,
        )
        .expect("write");
        let err = Settings::load(opts(dir.path())).expect_err("bad policy");
        assert!(format!("{err:#}").contains("policy"), "{err:#}");

        std::fs::write(dir.path().join("policy.json"), r#"{"rules": []}"#).expect("write");
        let settings = Settings::load(opts(dir.path())).expect("loads");
        assert!(!format!("{settings:?}").contains("PRIVATE KEY"));
        assert!(
            settings
                .sts_endpoints
                .find(ssm_core::broker::GLOBAL_STS_ENDPOINT)
                .is_some()
        );
    }

    fn parse(extra: &[&str]) -> Opts {
        Opts::try_parse_from(
            [
                "ssm-app",
                "--app-id=42",
                "--private-key=unused",
                "--audience=aud",
                "--policy-file=/dev/null",
            ]
            .iter()
            .chain(extra),
        )
        .expect("parse")
    }

    #[test]
    fn sts_endpoints_default_to_global_and_own_region_or_an_allowlist() {
        let endpoints = |extra: &[&str]| sts_endpoints(&parse(extra));
        assert_eq!(
            endpoints(&["--aws-region=eu-west-1"])
                .expect("default")
                .describe(),
            "https://sts.amazonaws.com/, https://sts.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            endpoints(&[
                "--aws-region=eu-west-1",
                "--sts-allowed-regions=us-east-2, ap-south-1"
            ])
            .expect("list")
            .describe(),
            "https://sts.amazonaws.com/, https://sts.us-east-2.amazonaws.com/, https://sts.ap-south-1.amazonaws.com/"
        );
        assert_eq!(
            endpoints(&["--sts-endpoint=http://127.0.0.1:5000"])
                .expect("override")
                .describe(),
            "http://127.0.0.1:5000/"
        );
        let err = endpoints(&["--sts-allowed-regions=evil.example/x"]).expect_err("not a region");
        assert!(
            format!("{err:#}").contains("SSM_STS_ALLOWED_REGIONS"),
            "{err:#}"
        );
        assert!(
            Opts::try_parse_from([
                "ssm-app",
                "--app-id=42",
                "--audience=aud",
                "--policy-file=/dev/null",
                "--sts-endpoint=http://127.0.0.1:5000",
                "--sts-allowed-regions=eu-west-1",
            ])
            .is_err(),
            "an override and an allowlist conflict"
        );
    }
}

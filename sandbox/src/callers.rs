//! Callers of the HTTP API: IAM users the sandbox issues through moto's IAM, whose requests the
//! gateway verifies and authorizes ([`crate::gateway`]'s IAM authorizer).
//!
//! [`IamCallers::create`] creates a user, puts an inline policy on it and creates an access key.
//! moto, like IAM, returns a secret only once, so the sandbox keeps access key id → user and
//! secret in its state directory (`callers.json`, mode 0600). When a request comes, the user's
//! keys, identity and policies (inline and attached; not its groups') are read from moto again, so
//! a policy changed, a key deactivated or a user deleted in moto takes effect on the next request.
//!
//! [`CallerCredentials::sign`] signs a request for the gateway (what the e2e checks and tests
//! use); [`CallerCredentials::env`] is the environment a CLI signing with the default credential
//! chain runs with.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::{Context, anyhow, bail};
use aws_config::SdkConfig;
use aws_sdk_iam::types::StatusType;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use serde::{Deserialize, Serialize};
use ssm_core::iam;

use crate::gateway::{IamCaller, Principal, PrincipalFuture, Principals, SecretAccessKey};
use crate::system::aws_error;

/// The name of the inline policy [`IamCallers::create`] puts on a caller.
pub const INLINE_POLICY: &str = "ssm-sandbox-invoke";

/// An access key: id, secret and, for temporary credentials, the session token.
#[derive(Clone)]
pub struct CallerCredentials {
    pub access_key_id: String,
    pub secret: SecretAccessKey,
    pub session_token: Option<String>,
}

impl fmt::Debug for CallerCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CallerCredentials({}, <redacted>)", self.access_key_id)
    }
}

impl CallerCredentials {
    /// Signs `request` for `execute-api` in `region` at `at` (SigV4 headers, `host` included).
    pub fn sign(
        &self,
        request: &mut reqwest::Request,
        region: &str,
        at: SystemTime,
    ) -> anyhow::Result<()> {
        let url = request.url().clone();
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => bail!("{url} has no host"),
        };
        request
            .headers_mut()
            .insert(http::header::HOST, host.parse()?);
        let credentials = aws_credential_types::Credentials::new(
            &self.access_key_id,
            self.secret.expose(),
            self.session_token.clone(),
            None,
            "ssm-sandbox",
        );
        let identity: Identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("execute-api")
            .time(at)
            .settings(SigningSettings::default())
            .build()?
            .into();
        let headers: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .map(|(name, value)| Ok((name.as_str(), value.to_str()?)))
            .collect::<Result<_, http::header::ToStrError>>()?;
        let body = request
            .body()
            .map(|body| {
                body.as_bytes()
                    .context("a streamed body cannot be signed here")
            })
            .transpose()?
            .unwrap_or_default();
        let signable = SignableRequest::new(
            request.method().as_str(),
            url.as_str(),
            headers.into_iter(),
            SignableBody::Bytes(body),
        )?;
        let (instructions, _signature) = sign(signable, &params)?.into_parts();
        let mut signed = http::HeaderMap::new();
        for (name, value) in instructions.headers() {
            signed.insert(
                http::HeaderName::from_bytes(name.as_bytes())?,
                value.parse()?,
            );
        }
        request.headers_mut().extend(signed);
        Ok(())
    }

    /// The environment of a process that signs with these credentials (the default chain).
    pub fn env(&self, region: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID".to_owned(), self.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY".to_owned(),
                self.secret.expose().to_owned(),
            ),
            ("AWS_REGION".to_owned(), region.to_owned()),
        ];
        if let Some(token) = &self.session_token {
            env.push(("AWS_SESSION_TOKEN".to_owned(), token.clone()));
        }
        env
    }
}

/// Sends `request`, signed now for `execute-api` in `region` by `credentials` (`None`: unsigned).
pub async fn send_as(
    request: reqwest::RequestBuilder,
    credentials: Option<&CallerCredentials>,
    region: &str,
) -> anyhow::Result<reqwest::Response> {
    let (client, request) = request.build_split();
    let mut request = request?;
    if let Some(credentials) = credentials {
        credentials.sign(&mut request, region, SystemTime::now())?;
    }
    Ok(client.execute(request).await?)
}

/// A caller the sandbox issued.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The IAM user name.
    pub name: String,
    pub user_arn: String,
    pub credentials: CallerCredentials,
}

/// The inline policy of a caller allowed on `keys` of the API `api_id` (the contract's form).
pub fn key_policy(api_id: &str, keys: &[String]) -> String {
    let resources: Vec<String> = keys
        .iter()
        .flat_map(|key| iam::key_invoke_resources(api_id, key))
        .collect();
    iam::invoke_policy(&resources)
}

/// The inline policy of a caller allowed on every route of the API `api_id`.
pub fn api_policy(api_id: &str) -> String {
    iam::invoke_policy(&[format!("arn:aws:execute-api:*:*:{api_id}/*")])
}

/// Principals found by access key id in a fixed table (tests; no IAM behind it).
#[derive(Debug, Default)]
pub struct FixedPrincipals {
    principals: Mutex<HashMap<String, Principal>>,
}

impl FixedPrincipals {
    /// Adds or replaces the principal behind `principal.caller.access_key`.
    pub fn insert(&self, principal: Principal) {
        lock(&self.principals).insert(principal.caller.access_key.clone(), principal);
    }

    /// Replaces the policies of the principal behind `access_key_id`.
    pub fn set_policies(&self, access_key_id: &str, policies: Vec<String>) {
        if let Some(principal) = lock(&self.principals).get_mut(access_key_id) {
            principal.policies = policies;
        }
    }
}

impl Principals for FixedPrincipals {
    fn principal(&self, access_key_id: &str) -> PrincipalFuture {
        let found = lock(&self.principals).get(access_key_id).cloned();
        Box::pin(async move { Ok(found) })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What `callers.json` keeps of a key.
#[derive(Clone, Serialize, Deserialize)]
struct StoredKey {
    user: String,
    secret: String,
}

#[derive(Default, Serialize, Deserialize)]
struct State {
    keys: BTreeMap<String, StoredKey>,
}

/// Callers issued through IAM (moto), their secrets kept in a state file.
#[derive(Debug)]
pub struct IamCallers {
    iam: aws_sdk_iam::Client,
    state_file: PathBuf,
    keys: Mutex<BTreeMap<String, (String, SecretAccessKey)>>,
}

impl IamCallers {
    /// Opens the store at `state_file` (keys issued earlier are kept; moto decides which still
    /// exist) for the IAM endpoint of `aws`.
    pub fn open(aws: &SdkConfig, state_file: PathBuf) -> anyhow::Result<Self> {
        let state: State = match std::fs::read_to_string(&state_file) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{} is not a callers file", state_file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(e).context(format!("reading {}", state_file.display())),
        };
        let keys = state
            .keys
            .into_iter()
            .map(|(id, key)| (id, (key.user, SecretAccessKey::new(key.secret))))
            .collect();
        Ok(Self {
            iam: aws_sdk_iam::Client::new(aws),
            state_file,
            keys: Mutex::new(keys),
        })
    }

    /// Creates the IAM user `name` (or reuses it), puts `policy` as its inline policy
    /// [`INLINE_POLICY`], creates an access key and keeps its secret.
    pub async fn create(&self, name: &str, policy: &str) -> anyhow::Result<Caller> {
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
        if !valid {
            bail!("{name:?} is not an IAM user name (1 to 64 of A-Z a-z 0-9 + = , . @ _ -)");
        }
        iam::PolicyDocument::parse(policy)?;
        match self.iam.create_user().user_name(name).send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_entity_already_exists_exception()) => {}
            Err(e) => bail!("CreateUser {name}: {}", aws_error(&e)),
        }
        self.put_policy(name, policy).await?;
        let iam = &self.iam;
        let created = iam.create_access_key().user_name(name).send().await;
        let created = created.map_err(failed("CreateAccessKey", name))?;
        let key = created.access_key().context("no key created")?;
        let credentials = CallerCredentials {
            access_key_id: key.access_key_id().to_owned(),
            secret: SecretAccessKey::new(key.secret_access_key()),
            session_token: None,
        };
        lock(&self.keys).insert(
            credentials.access_key_id.clone(),
            (name.to_owned(), credentials.secret.clone()),
        );
        self.save()?;
        let user = iam.get_user().user_name(name).send().await;
        let user = user.map_err(failed("GetUser", name))?;
        Ok(Caller {
            name: name.to_owned(),
            user_arn: user.user().map(|u| u.arn().to_owned()).unwrap_or_default(),
            credentials,
        })
    }

    /// Replaces the inline policy [`INLINE_POLICY`] of the user `name`.
    pub async fn put_policy(&self, name: &str, policy: &str) -> anyhow::Result<()> {
        let put = self
            .iam
            .put_user_policy()
            .user_name(name)
            .policy_name(INLINE_POLICY);
        put.policy_document(policy)
            .send()
            .await
            .map_err(failed("PutUserPolicy", name))?;
        Ok(())
    }

    fn save(&self) -> anyhow::Result<()> {
        let state = State {
            keys: lock(&self.keys)
                .iter()
                .map(|(id, (user, secret))| {
                    let key = StoredKey {
                        user: user.clone(),
                        secret: secret.expose().to_owned(),
                    };
                    (id.clone(), key)
                })
                .collect(),
        };
        write_private(&self.state_file, &serde_json::to_vec_pretty(&state)?)
    }
}

/// Writes `bytes` to `path` readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

impl Principals for IamCallers {
    fn principal(&self, access_key_id: &str) -> PrincipalFuture {
        let stored = lock(&self.keys).get(access_key_id).cloned();
        let iam = self.iam.clone();
        let access_key_id = access_key_id.to_owned();
        Box::pin(async move {
            let Some((user, secret)) = stored else {
                return Ok(None);
            };
            let keys = match iam.list_access_keys().user_name(&user).send().await {
                Ok(keys) => keys,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_no_such_entity_exception()) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(failed("ListAccessKeys", &user)(e)),
            };
            let active = keys.access_key_metadata().iter().any(|key| {
                key.access_key_id() == Some(access_key_id.as_str())
                    && key.status() == Some(&StatusType::Active)
            });
            if !active {
                return Ok(None);
            }
            let found = iam.get_user().user_name(&user).send().await;
            let found = found.map_err(failed("GetUser", &user))?;
            let found = found.user().context("GetUser returned no user")?;
            let account_id = found.arn().split(':').nth(4).unwrap_or_default().to_owned();
            Ok(Some(Principal {
                caller: IamCaller {
                    access_key: access_key_id,
                    account_id,
                    caller_id: found.user_id().to_owned(),
                    user_arn: found.arn().to_owned(),
                    user_id: found.user_id().to_owned(),
                },
                secret,
                session_token: None,
                policies: identity_policies(&iam, &user).await?,
            }))
        })
    }
}

/// `Call target: why`, for an IAM call's error.
fn failed<E: std::error::Error + 'static>(
    call: &'static str,
    target: &str,
) -> impl FnOnce(E) -> anyhow::Error + use<E> {
    let target = target.to_owned();
    move |e| anyhow!("{call} {target}: {}", aws_error(&e))
}

/// Every identity policy of `user`: its inline policies and its attached managed policies.
async fn identity_policies(iam: &aws_sdk_iam::Client, user: &str) -> anyhow::Result<Vec<String>> {
    let mut documents = Vec::new();
    let names = iam.list_user_policies().user_name(user).send().await;
    for name in names
        .map_err(failed("ListUserPolicies", user))?
        .policy_names()
    {
        let got = iam.get_user_policy().user_name(user).policy_name(name);
        let got = got.send().await.map_err(failed("GetUserPolicy", name))?;
        documents.push(policy_text(got.policy_document()));
    }
    let attached = iam
        .list_attached_user_policies()
        .user_name(user)
        .send()
        .await;
    let attached = attached.map_err(failed("ListAttachedUserPolicies", user))?;
    for arn in attached
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn())
    {
        documents.push(managed_policy(iam, arn).await?);
    }
    Ok(documents)
}

/// The default version's document of the managed policy `arn`.
async fn managed_policy(iam: &aws_sdk_iam::Client, arn: &str) -> anyhow::Result<String> {
    let policy = iam.get_policy().policy_arn(arn).send().await;
    let policy = policy.map_err(failed("GetPolicy", arn))?;
    let version = policy.policy().and_then(|p| p.default_version_id());
    let version = version.with_context(|| format!("{arn} has no default version"))?;
    let got = iam
        .get_policy_version()
        .policy_arn(arn)
        .version_id(version)
        .send()
        .await;
    let got = got.map_err(failed("GetPolicyVersion", arn))?;
    let text = got.policy_version().and_then(|v| v.document());
    Ok(policy_text(text.with_context(|| {
        format!("{arn} {version} has no document")
    })?))
}

/// A policy document as IAM returns it: URL-encoded JSON (moto may return it decoded).
fn policy_text(document: &str) -> String {
    if document.trim_start().starts_with('{') {
        document.to_owned()
    } else {
        crate::gateway::percent_decode(document)
    }
}

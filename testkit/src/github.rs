//! A local GitHub REST API emulator that enforces the parts of GitHub's contract the App and the
//! integrity Lambda depend on: App JWTs (RS256, `iss`, `iat`/`exp` window), installation lookup,
//! installation access tokens scoped to repositories and permissions, and `repository_dispatch`.
//!
//! It listens on `127.0.0.1:0`; point the code under test at [`GitHubEmulator::base_url`]. Faults
//! are injected with [`GitHubEmulator::fail_next`], clock skew with
//! [`GitHubEmulator::set_clock_skew`] and token revocation with [`GitHubEmulator::revoke_token`]
//! or [`GitHubEmulator::revoke_all_tokens`]; what happened is read back with
//! [`GitHubEmulator::dispatches`] and the request counters.

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::http::{Method, StatusCode, header};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The committed TEST-ONLY App private key (PKCS#1 PEM, as GitHub hands them out).
pub const TEST_APP_PRIVATE_KEY_PEM: &str = include_str!("../fixtures/test-only-github-app-key.pem");
/// The public half of [`TEST_APP_PRIVATE_KEY_PEM`].
pub const TEST_APP_PUBLIC_KEY_PEM: &str =
    include_str!("../fixtures/test-only-github-app-key.pub.pem");

/// Permissions every emulated installation grants unless changed.
const INSTALLATION_PERMISSIONS: [(&str, &str); 4] = [
    ("actions", "read"),
    ("contents", "write"),
    ("metadata", "read"),
    ("pull_requests", "write"),
];

/// What an installation token may do: recorded with each dispatch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenScope {
    pub installation_id: u64,
    /// Full names (`owner/name`) the token is limited to.
    pub repositories: Vec<String>,
    pub permissions: BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
}

/// A `POST /repos/{o}/{r}/dispatches` that GitHub accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedDispatch {
    /// `owner/name` as it appeared in the URL.
    pub repository: String,
    /// The request body (`event_type`, `client_payload`).
    pub body: Value,
    /// The scope of the token that sent it.
    pub scope: TokenScope,
}

#[derive(Debug)]
struct Failure {
    method: String,
    path: String,
    status: u16,
    remaining: usize,
}

#[derive(Debug)]
struct State {
    app_id: u64,
    key: DecodingKey,
    skew: Duration,
    /// Lowercased `owner/name` → installation id.
    installations: HashMap<String, u64>,
    tokens: HashMap<String, TokenScope>,
    failures: Vec<Failure>,
    dispatches: Vec<RecordedDispatch>,
    access_token_bodies: Vec<Value>,
    installation_lookups: usize,
    next_repo_id: u64,
    /// Manifest-flow codes not yet converted → the manifest GitHub was shown.
    manifest_codes: HashMap<String, Value>,
}

/// The running emulator; dropping it stops the server.
#[derive(Debug)]
pub struct GitHubEmulator {
    base_url: String,
    state: Arc<Mutex<State>>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for GitHubEmulator {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl GitHubEmulator {
    /// Starts the emulator for App `app_id` whose JWTs verify with `app_public_key_pem`, on
    /// `127.0.0.1:0`. Panics on a bad key or a failed bind (test support).
    pub async fn start(app_id: u64, app_public_key_pem: &str) -> GitHubEmulator {
        Self::start_on("127.0.0.1:0", app_id, app_public_key_pem)
            .unwrap_or_else(|e| panic!("GitHubEmulator: {e}"))
    }

    /// Starts the emulator on `addr` (the standalone `ssm-github-emulator` binary); errors name
    /// what failed. Must be called within a Tokio runtime.
    pub fn start_on(
        addr: &str,
        app_id: u64,
        app_public_key_pem: &str,
    ) -> Result<GitHubEmulator, String> {
        let key = DecodingKey::from_rsa_pem(app_public_key_pem.as_bytes())
            .map_err(|e| format!("bad App public key: {e}"))?;
        let state = Arc::new(Mutex::new(State {
            app_id,
            key,
            skew: Duration::zero(),
            installations: HashMap::new(),
            tokens: HashMap::new(),
            failures: Vec::new(),
            dispatches: Vec::new(),
            access_token_bodies: Vec::new(),
            installation_lookups: 0,
            next_repo_id: 1_296_269,
            manifest_codes: HashMap::new(),
        }));
        let listener = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
        let local = listener
            .local_addr()
            .map_err(|e| format!("local_addr: {e}"))?;
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .default_service(web::to(handle))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .map_err(|e| format!("listen on {local}: {e}"))?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(GitHubEmulator {
            base_url: format!("http://{local}"),
            state,
            handle,
        })
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Installs the App on `repository` (`owner/name`) under `installation_id`.
    pub fn install(&self, repository: &str, installation_id: u64) {
        lock(&self.state)
            .installations
            .insert(repository.to_ascii_lowercase(), installation_id);
    }

    /// Answers the next `times` requests matching `method` and `path` (no query) with `status`
    /// and GitHub's error body for it: 401 reads as a JWT clock error, 429 and 403 as rate limits
    /// with `Retry-After: 1`, 5xx as a server error.
    pub fn fail_next(&self, method: &str, path: &str, status: u16, times: usize) {
        lock(&self.state).failures.push(Failure {
            method: method.to_ascii_uppercase(),
            path: path.to_owned(),
            status,
            remaining: times,
        });
    }

    /// Moves the emulator's clock (JWT checks, `Date` header, token expiry) by `skew`.
    pub fn set_clock_skew(&self, skew: Duration) {
        lock(&self.state).skew = skew;
    }

    /// Dispatches accepted so far, in order.
    pub fn dispatches(&self) -> Vec<RecordedDispatch> {
        lock(&self.state).dispatches.clone()
    }

    /// How many `POST /app/installations/{id}/access_tokens` requests reached the emulator
    /// (including rejected and fault-injected ones).
    pub fn access_token_requests(&self) -> usize {
        lock(&self.state).access_token_bodies.len()
    }

    /// The JSON bodies of those requests, in order.
    pub fn access_token_bodies(&self) -> Vec<Value> {
        lock(&self.state).access_token_bodies.clone()
    }

    /// How many `GET /repos/{o}/{r}/installation` requests reached the emulator.
    pub fn installation_lookups(&self) -> usize {
        lock(&self.state).installation_lookups
    }

    /// What GitHub does when a user confirms an App manifest (`POST /settings/apps/new`): keeps
    /// the manifest and returns the temporary code it would redirect with. Converting the code
    /// (`POST /app-manifests/{code}/conversions`, once) yields this emulator's App: its id and the
    /// test key, so the new credentials work against it.
    pub fn confirm_manifest(&self, manifest: Value) -> String {
        let code = uuid::Uuid::new_v4().simple().to_string()[..20].to_owned();
        lock(&self.state)
            .manifest_codes
            .insert(code.clone(), manifest);
        code
    }

    /// Revokes `token` as `DELETE /installation/token` does: from now on GitHub answers 401
    /// `Bad credentials` to it. Returns whether it was a live token.
    pub fn revoke_token(&self, token: &str) -> bool {
        lock(&self.state).tokens.remove(token).is_some()
    }

    /// Revokes every installation token issued so far (mid-flight, as an operator or GitHub
    /// would); returns how many.
    pub fn revoke_all_tokens(&self) -> usize {
        let mut st = lock(&self.state);
        let n = st.tokens.len();
        st.tokens.clear();
        n
    }

    /// Mints an installation token directly (for consumers that test only the dispatch side).
    pub fn issue_token(&self, repository: &str, permissions: &[(&str, &str)]) -> String {
        let mut st = lock(&self.state);
        let installation_id = st
            .installations
            .get(&repository.to_ascii_lowercase())
            .copied()
            .unwrap_or(0);
        let expires_at = st.now() + Duration::hours(1);
        let token = new_token();
        st.tokens.insert(
            token.clone(),
            TokenScope {
                installation_id,
                repositories: vec![repository.to_owned()],
                permissions: permissions
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                expires_at,
            },
        );
        token
    }
}

impl State {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.skew
    }

    fn take_failure(&mut self, method: &str, path: &str) -> Option<u16> {
        let f = self
            .failures
            .iter_mut()
            .find(|f| f.remaining > 0 && f.method == method && f.path == path)?;
        f.remaining -= 1;
        Some(f.status)
    }
}

/// A GitHub-style ~520-character opaque token (the new format's length).
fn new_token() -> String {
    let mut t = String::from("ghs_");
    while t.len() < 520 {
        t.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    t.truncate(520);
    t
}

fn respond(st: &State, status: StatusCode, body: Option<Value>) -> HttpResponse {
    let mut resp = HttpResponse::build(status);
    resp.insert_header((
        header::DATE,
        st.now().format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
    ));
    resp.insert_header(("x-github-request-id", "EMU:0001"));
    match body {
        Some(body) => resp.json(body),
        None => resp.finish(),
    }
}

fn error(st: &State, status: u16, message: &str) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    respond(
        st,
        status,
        Some(json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": status.as_str(),
        })),
    )
}

fn injected(st: &State, status: u16) -> HttpResponse {
    match status {
        401 => error(
            st,
            401,
            "'Issued at' claim ('iat') must be an Integer representing a time in the past.",
        ),
        403 | 429 => {
            let mut r = error(
                st,
                status,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            r
        }
        other => error(st, other, "Server Error"),
    }
}

#[derive(Deserialize)]
struct JwtClaims {
    iat: i64,
    exp: i64,
    iss: Value,
}

/// Checks `Authorization: Bearer <App JWT>` as GitHub does.
fn check_app_jwt(st: &State, req: &HttpRequest) -> Result<(), &'static str> {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or("A JSON web token could not be decoded")?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<JwtClaims>(auth, &st.key, &validation)
        .map_err(|_| "A JSON web token could not be decoded")?
        .claims;
    let now = st.now().timestamp();
    let iss_ok = match &claims.iss {
        Value::Number(n) => n.as_u64() == Some(st.app_id),
        Value::String(s) => s == &st.app_id.to_string(),
        _ => false,
    };
    if !iss_ok {
        return Err("'Issuer' claim ('iss') must be an Integer or a String");
    }
    if claims.iat > now {
        return Err(
            "'Issued at' claim ('iat') must be an Integer representing a time in the past.",
        );
    }
    if claims.exp <= now {
        return Err(
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires.",
        );
    }
    if claims.exp > now + 600 || claims.exp - claims.iat > 600 {
        return Err("'Expiration time' claim ('exp') is too far in the future");
    }
    Ok(())
}

async fn handle(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let mut st = lock(&state);
    let path = req.path().to_owned();
    let method = req.method().clone();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if segments.first() == Some(&CONTROL_PREFIX) {
        return control(&mut st, &method, &segments[1..], &body);
    }
    let is_access_tokens = method == Method::POST
        && matches!(
            segments.as_slice(),
            ["app", "installations", _, "access_tokens"]
        );
    if is_access_tokens {
        let parsed = serde_json::from_slice(&body).unwrap_or(Value::Null);
        st.access_token_bodies.push(parsed);
    }
    if matches!(segments.as_slice(), ["repos", _, _, "installation"]) && method == Method::GET {
        st.installation_lookups += 1;
    }
    if let Some(status) = st.take_failure(method.as_str(), &path) {
        return injected(&st, status);
    }
    match (method, segments.as_slice()) {
        (Method::GET, ["app"]) => match check_app_jwt(&st, &req).map_err(|m| error(&st, 401, m)) {
            Ok(()) => {
                let id = st.app_id;
                respond(
                    &st,
                    StatusCode::OK,
                    Some(json!({"id": id, "slug": "serverless-ssm", "name": "Serverless SSM"})),
                )
            }
            Err(resp) => resp,
        },
        (Method::GET, ["repos", owner, repo, "installation"]) => {
            if let Err(message) = check_app_jwt(&st, &req) {
                return error(&st, 401, message);
            }
            let full = format!("{owner}/{repo}").to_ascii_lowercase();
            match st.installations.get(&full).copied() {
                Some(id) => {
                    let app_id = st.app_id;
                    respond(
                        &st,
                        StatusCode::OK,
                        Some(json!({
                            "id": id,
                            "account": {"login": owner, "type": "Organization"},
                            "app_id": app_id,
                            "target_type": "Organization",
                            "repository_selection": "selected",
                            "access_tokens_url": format!("/app/installations/{id}/access_tokens"),
                            "permissions": installation_permissions(),
                            "events": ["repository_dispatch", "workflow_run"],
                        })),
                    )
                }
                None => error(&st, 404, "Not Found"),
            }
        }
        (Method::POST, ["app", "installations", id, "access_tokens"]) => {
            if let Err(message) = check_app_jwt(&st, &req) {
                return error(&st, 401, message);
            }
            let id: u64 = id.parse().unwrap_or(0);
            access_tokens(&mut st, id, &body)
        }
        (Method::POST, ["settings", "apps", "new"])
        | (Method::POST, ["organizations", _, "settings", "apps", "new"]) => {
            new_app_form(&mut st, &req, &body)
        }
        (Method::POST, ["app-manifests", code, "conversions"]) => {
            manifest_conversion(&mut st, code)
        }
        (Method::POST, ["repos", owner, repo, "dispatches"]) => {
            dispatch(&mut st, &req, &format!("{owner}/{repo}"), &body)
        }
        (Method::DELETE, ["installation", "token"]) => {
            let token = installation_token(&req).map(str::to_owned);
            match token.and_then(|t| st.tokens.remove(&t)) {
                Some(_) => respond(&st, StatusCode::NO_CONTENT, None),
                None => error(&st, 401, "Bad credentials"),
            }
        }
        _ => error(&st, 404, "Not Found"),
    }
}

/// The emulator's own control plane, not part of GitHub's API: what the standalone binary's
/// users (the sandbox) need from the in-process methods.
///   GET  /_emulator/dispatches             accepted dispatches, in order
///   POST /_emulator/installations          {"repository": "o/r", "installation_id": 7}
///   POST /_emulator/revoke-all-tokens      {"revoked": n}
const CONTROL_PREFIX: &str = "_emulator";

fn control(st: &mut State, method: &Method, rest: &[&str], body: &[u8]) -> HttpResponse {
    match (method.clone(), rest) {
        (Method::GET, ["dispatches"]) => {
            let all = serde_json::to_value(&st.dispatches).unwrap_or(Value::Null);
            respond(st, StatusCode::OK, Some(all))
        }
        (Method::POST, ["installations"]) => {
            #[derive(Deserialize)]
            struct Install {
                repository: String,
                installation_id: u64,
            }
            match serde_json::from_slice::<Install>(body) {
                Ok(i) => {
                    st.installations
                        .insert(i.repository.to_ascii_lowercase(), i.installation_id);
                    respond(st, StatusCode::NO_CONTENT, None)
                }
                Err(e) => error(st, 400, &format!("bad installation: {e}")),
            }
        }
        (Method::POST, ["revoke-all-tokens"]) => {
            let n = st.tokens.len();
            st.tokens.clear();
            respond(st, StatusCode::OK, Some(json!({"revoked": n})))
        }
        _ => error(st, 404, "Not Found"),
    }
}

fn installation_permissions() -> BTreeMap<String, String> {
    INSTALLATION_PERMISSIONS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn level(l: &str) -> u8 {
    match l {
        "read" => 1,
        "write" => 2,
        "admin" => 3,
        _ => 0,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessTokensBody {
    repositories: Option<Vec<String>>,
    repository_ids: Option<Vec<u64>>,
    permissions: Option<BTreeMap<String, String>>,
}

fn access_tokens(st: &mut State, id: u64, body: &[u8]) -> HttpResponse {
    let mine: Vec<String> = st
        .installations
        .iter()
        .filter(|(_, i)| **i == id)
        .map(|(r, _)| r.clone())
        .collect();
    if mine.is_empty() {
        return error(st, 404, "Not Found");
    }
    let req: AccessTokensBody = if body.is_empty() {
        AccessTokensBody {
            repositories: None,
            repository_ids: None,
            permissions: None,
        }
    } else {
        match serde_json::from_slice(body) {
            Ok(b) => b,
            Err(_) => return error(st, 400, "Problems parsing JSON"),
        }
    };
    if req.repository_ids.is_some() {
        return error(st, 422, "repository_ids are not supported by this emulator");
    }
    let repositories: Vec<String> = match req.repositories {
        None => mine.clone(),
        Some(names) => {
            let mut full = Vec::new();
            for name in names {
                match mine.iter().find(|r| {
                    r.split_once('/')
                        .is_some_and(|(_, n)| n == name.to_ascii_lowercase())
                }) {
                    Some(r) => full.push(r.clone()),
                    None => {
                        return error(
                            st,
                            422,
                            "There is at least one repository that does not exist or is not accessible to the parent installation.",
                        );
                    }
                }
            }
            full
        }
    };
    let granted = installation_permissions();
    let permissions = match req.permissions {
        None => granted,
        Some(asked) => {
            let ok = asked.iter().all(|(name, lvl)| {
                level(lvl) > 0 && granted.get(name).is_some_and(|g| level(g) >= level(lvl))
            });
            if !ok {
                return error(
                    st,
                    422,
                    "The permissions requested are not granted to this installation.",
                );
            }
            asked
        }
    };
    let expires_at = st.now() + Duration::hours(1);
    let token = new_token();
    let repo_json: Vec<Value> = repositories
        .iter()
        .map(|full| {
            st.next_repo_id += 1;
            let name = full.split_once('/').map_or(full.as_str(), |(_, n)| n);
            json!({"id": st.next_repo_id, "name": name, "full_name": full, "private": true})
        })
        .collect();
    st.tokens.insert(
        token.clone(),
        TokenScope {
            installation_id: id,
            repositories,
            permissions: permissions.clone(),
            expires_at,
        },
    );
    respond(
        st,
        StatusCode::CREATED,
        Some(json!({
            "token": token,
            "expires_at": expires_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "permissions": permissions,
            "repository_selection": "selected",
            "repositories": repo_json,
        })),
    )
}

/// `POST /settings/apps/new?state=…` with the form field `manifest`, as a person confirming the
/// App on GitHub's page: GitHub keeps the manifest and redirects the browser to the manifest's
/// `redirect_url` with a temporary `code` and the form's `state`.
fn new_app_form(st: &mut State, req: &HttpRequest, body: &[u8]) -> HttpResponse {
    let form = std::str::from_utf8(body)
        .ok()
        .and_then(|b| web::Query::<HashMap<String, String>>::from_query(b).ok());
    let manifest = form
        .as_ref()
        .and_then(|f| f.get("manifest"))
        .and_then(|m| serde_json::from_str::<Value>(m).ok());
    let redirect = manifest
        .as_ref()
        .and_then(|m| m.get("redirect_url"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (Some(manifest), Some(redirect)) = (manifest, redirect) else {
        return error(
            st,
            422,
            "Invalid manifest: a JSON manifest with a redirect_url",
        );
    };
    let state = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("state").cloned())
        .unwrap_or_default();
    let code = uuid::Uuid::new_v4().simple().to_string()[..20].to_owned();
    st.manifest_codes.insert(code.clone(), manifest);
    let sep = if redirect.contains('?') { '&' } else { '?' };
    HttpResponse::Found()
        .insert_header((
            header::LOCATION,
            format!("{redirect}{sep}code={code}&state={}", form_escape(&state)),
        ))
        .finish()
}

/// Percent-encodes what is not unreserved in a query value.
fn form_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a person does with `ssm-app setup`'s page (`page_url`, e.g. `http://127.0.0.1:3000/`):
/// the browser loads it, its form posts the manifest to GitHub (here the emulator, which must be
/// the page's GitHub URL), the person confirms, and GitHub redirects the browser back to the
/// page's callback. Returns the callback's answer, or why a step failed.
pub async fn confirm_setup_page(page_url: &str) -> Result<String, String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    let html = http
        .get(page_url)
        .send()
        .await
        .map_err(|e| format!("GET {page_url}: {e}"))?
        .text()
        .await
        .map_err(|e| format!("reading {page_url}: {e}"))?;
    let action = html_attr(&html, "action").ok_or("the page has no form action")?;
    let manifest = html_attr(&html, "value").ok_or("the page has no manifest field")?;
    let confirmed = http
        .post(&action)
        .header(
            header::CONTENT_TYPE.as_str(),
            "application/x-www-form-urlencoded",
        )
        .body(format!("manifest={}", form_escape(&manifest)))
        .send()
        .await
        .map_err(|e| format!("POST {action}: {e}"))?;
    let location = confirmed
        .headers()
        .get(header::LOCATION.as_str())
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| format!("GitHub answered {} without a redirect", confirmed.status()))?;
    let back = http
        .get(&location)
        .send()
        .await
        .map_err(|e| format!("GET {location}: {e}"))?;
    let status = back.status();
    let text = back.text().await.unwrap_or_default();
    if status.is_success() {
        Ok(text)
    } else {
        Err(format!(
            "the setup page's callback answered {status}: {text}"
        ))
    }
}

/// The first `name="…"` attribute value of `html`, HTML entities undone.
fn html_attr(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("{name}=\""))? + name.len() + 2;
    let len = html[start..].find('"')?;
    Some(
        html[start..start + len]
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// `POST /app-manifests/{code}/conversions`: no authentication, each code converts once.
fn manifest_conversion(st: &mut State, code: &str) -> HttpResponse {
    let Some(manifest) = st.manifest_codes.remove(code) else {
        return error(st, 404, "Not Found");
    };
    let name = manifest
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("app")
        .to_owned();
    let slug = name.to_ascii_lowercase().replace(' ', "-");
    let id = st.app_id;
    respond(
        st,
        StatusCode::CREATED,
        Some(json!({
            "id": id,
            "slug": slug,
            "node_id": "MDM6QXBwNTk=",
            "owner": {"login": "octo-org", "id": 6, "type": "Organization"},
            "name": name,
            "description": manifest.get("description").cloned().unwrap_or(Value::Null),
            "external_url": manifest.get("url").cloned().unwrap_or(Value::Null),
            "html_url": format!("https://github.com/apps/{slug}"),
            "permissions": manifest.get("default_permissions").cloned().unwrap_or(json!({})),
            "events": manifest.get("default_events").cloned().unwrap_or(json!([])),
            "client_id": "Iv1.8a61f9b3a7aba766",
            "client_secret": format!("emu-client-secret-{}", uuid::Uuid::new_v4().simple()),
            "webhook_secret": format!("emu-webhook-secret-{}", uuid::Uuid::new_v4().simple()),
            "pem": TEST_APP_PRIVATE_KEY_PEM,
        })),
    )
}

/// The installation token of `Authorization: token …` or `Bearer …`.
fn installation_token(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("token ")
                .or_else(|| v.strip_prefix("Bearer "))
        })
}

fn dispatch(st: &mut State, req: &HttpRequest, repository: &str, body: &[u8]) -> HttpResponse {
    let token = installation_token(req);
    let Some(scope) = token.and_then(|t| st.tokens.get(t)).cloned() else {
        return error(st, 401, "Bad credentials");
    };
    if scope.expires_at <= st.now() {
        return error(st, 401, "Bad credentials");
    }
    let lower = repository.to_ascii_lowercase();
    if !scope
        .repositories
        .iter()
        .any(|r| r.to_ascii_lowercase() == lower)
    {
        return error(st, 404, "Not Found");
    }
    if scope.permissions.get("contents").map(String::as_str) != Some("write") {
        return error(st, 403, "Resource not accessible by integration");
    }
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return error(st, 400, "Problems parsing JSON");
    };
    let event_ok = parsed
        .get("event_type")
        .and_then(Value::as_str)
        .is_some_and(|e| !e.is_empty() && e.chars().count() <= 100);
    if !event_ok {
        return error(
            st,
            422,
            "Invalid request.\n\n\"event_type\" wasn't supplied.",
        );
    }
    match parsed.get("client_payload") {
        None => {}
        Some(Value::Object(map)) if map.len() <= 10 => {}
        Some(Value::Object(_)) => {
            return error(
                st,
                422,
                "Invalid request.\n\nNo more than 10 properties are allowed; 11 were supplied.",
            );
        }
        Some(_) => {
            return error(
                st,
                422,
                "Invalid request.\n\nFor 'properties/client_payload', is not an object.",
            );
        }
    }
    if parsed
        .as_object()
        .is_some_and(|o| o.keys().any(|k| k != "event_type" && k != "client_payload"))
    {
        return error(st, 422, "Invalid request.\n\nUnknown property.");
    }
    st.dispatches.push(RecordedDispatch {
        repository: repository.to_owned(),
        body: parsed,
        scope,
    });
    respond(st, StatusCode::NO_CONTENT, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    fn jwt(iss: u64, iat: i64, exp: i64) -> String {
        let key = EncodingKey::from_rsa_pem(TEST_APP_PRIVATE_KEY_PEM.as_bytes()).expect("test key");
        jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &json!({"iss": iss.to_string(), "iat": iat, "exp": exp}),
            &key,
        )
        .expect("jwt")
    }

    #[tokio::test]
    async fn the_control_plane_installs_lists_dispatches_and_revokes() {
        let gh = GitHubEmulator::start(42, TEST_APP_PUBLIC_KEY_PEM).await;
        let http = reqwest::Client::new();
        let url = |p: &str| format!("{}/_emulator/{p}", gh.base_url());
        let r = http
            .post(url("installations"))
            .json(&json!({"repository": "Acme/Infra", "installation_id": 9}))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 204);
        let bad = http
            .post(url("installations"))
            .json(&json!({"repository": "acme/infra"}))
            .send()
            .await
            .expect("send");
        assert_eq!(bad.status(), 400);
        let token = gh.issue_token("acme/infra", &[("contents", "write")]);
        let d = http
            .post(format!("{}/repos/acme/infra/dispatches", gh.base_url()))
            .bearer_auth(&token)
            .json(&json!({"event_type": "drift", "client_payload": {"n": 1}}))
            .send()
            .await
            .expect("send");
        assert_eq!(d.status(), 204);
        let listed: Value = http
            .get(url("dispatches"))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        assert_eq!(listed[0]["repository"], "acme/infra");
        assert_eq!(listed[0]["body"]["client_payload"]["n"], 1);
        assert_eq!(listed[0]["scope"]["installation_id"], 9);
        let revoked: Value = http
            .post(url("revoke-all-tokens"))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        assert_eq!(revoked["revoked"], 1);
        let again = http
            .post(format!("{}/repos/acme/infra/dispatches", gh.base_url()))
            .bearer_auth(&token)
            .json(&json!({"event_type": "drift"}))
            .send()
            .await
            .expect("send");
        assert_eq!(again.status(), 401, "a revoked token no longer dispatches");
        assert_eq!(
            http.get(url("nothing"))
                .send()
                .await
                .expect("send")
                .status(),
            404
        );
        assert!(GitHubEmulator::start_on("256.0.0.1:1", 42, TEST_APP_PUBLIC_KEY_PEM).is_err());
        assert!(GitHubEmulator::start_on("127.0.0.1:0", 42, "not a key").is_err());
    }

    #[tokio::test]
    async fn enforces_the_app_token_and_dispatch_contract() {
        let gh = GitHubEmulator::start(42, TEST_APP_PUBLIC_KEY_PEM).await;
        gh.install("Acme/Infra", 7);
        let http = reqwest::Client::new();
        let now = Utc::now().timestamp();
        let get = |path: &str, token: String| {
            http.get(format!("{}{path}", gh.base_url()))
                .bearer_auth(token)
                .send()
        };
        let good = jwt(42, now - 60, now + 540);
        let r = get("/repos/acme/infra/installation", good.clone())
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["id"], 7);
        assert_eq!(
            get("/repos/acme/web/installation", good.clone())
                .await
                .expect("send")
                .status(),
            404
        );
        for bad in [
            jwt(43, now - 60, now + 540),
            jwt(42, now + 30, now + 540),
            jwt(42, now - 60, now + 700),
            jwt(42, now - 700, now - 10),
            "not.a.jwt".to_owned(),
        ] {
            assert_eq!(
                get("/repos/acme/infra/installation", bad)
                    .await
                    .expect("send")
                    .status(),
                401
            );
        }
        assert_eq!(gh.installation_lookups(), 7);

        let mint = |perms: Value, repos: Value| {
            http.post(format!(
                "{}/app/installations/7/access_tokens",
                gh.base_url()
            ))
            .bearer_auth(good.clone())
            .json(&json!({"repositories": repos, "permissions": perms}))
            .send()
        };
        let r = mint(json!({"administration": "write"}), json!(["infra"]))
            .await
            .expect("send");
        assert_eq!(r.status(), 422);
        let r = mint(json!({"contents": "write"}), json!(["web"]))
            .await
            .expect("send");
        assert_eq!(r.status(), 422);
        let r = mint(json!({"contents": "read"}), json!(["infra"]))
            .await
            .expect("send");
        assert_eq!(r.status(), 201);
        let read_only: Value = r.json().await.expect("json");
        let r = mint(json!({"contents": "write"}), json!(["infra"]))
            .await
            .expect("send");
        let minted: Value = r.json().await.expect("json");
        assert_eq!(minted["permissions"], json!({"contents": "write"}));
        assert_eq!(minted["repositories"][0]["full_name"], "acme/infra");
        let token = minted["token"].as_str().expect("token").to_owned();
        assert_eq!(token.len(), 520);
        assert_eq!(gh.access_token_requests(), 4);

        let dispatch = |token: &str, repo: &str, body: Value| {
            http.post(format!("{}/repos/{repo}/dispatches", gh.base_url()))
                .header("authorization", format!("token {token}"))
                .json(&body)
                .send()
        };
        let ok = json!({"event_type": "ssm-drift", "client_payload": {"stack": "S"}});
        let read_token = read_only["token"].as_str().expect("token");
        assert_eq!(
            dispatch(read_token, "acme/infra", ok.clone())
                .await
                .expect("send")
                .status(),
            403
        );
        assert_eq!(
            dispatch("ghs_unknown", "acme/infra", ok.clone())
                .await
                .expect("send")
                .status(),
            401
        );
        assert_eq!(
            dispatch(&token, "acme/web", ok.clone())
                .await
                .expect("send")
                .status(),
            404
        );
        let eleven: serde_json::Map<String, Value> =
            (0..11).map(|i| (format!("k{i}"), json!(i))).collect();
        for bad in [
            json!({"event_type": ""}),
            json!({"event_type": "x".repeat(101)}),
            json!({"event_type": "e", "client_payload": []}),
            json!({"event_type": "e", "client_payload": eleven}),
        ] {
            assert_eq!(
                dispatch(&token, "acme/infra", bad)
                    .await
                    .expect("send")
                    .status(),
                422
            );
        }
        let r = dispatch(&token, "acme/infra", ok.clone())
            .await
            .expect("send");
        assert_eq!(r.status(), 204);
        assert!(r.bytes().await.expect("body").is_empty());
        let d = gh.dispatches();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].body, ok);
        assert_eq!(d[0].scope.repositories, ["acme/infra"]);

        gh.fail_next("POST", "/repos/acme/infra/dispatches", 502, 1);
        assert_eq!(
            dispatch(&token, "acme/infra", ok.clone())
                .await
                .expect("send")
                .status(),
            502
        );
        assert_eq!(
            dispatch(&token, "acme/infra", ok)
                .await
                .expect("send")
                .status(),
            204
        );
        assert_eq!(gh.dispatches().len(), 2);

        // A revoked token is 401 from then on, whichever way it was revoked.
        assert!(gh.revoke_token(&token));
        assert_eq!(
            dispatch(&token, "acme/infra", json!({"event_type": "e"}))
                .await
                .expect("send")
                .status(),
            401
        );
        let other = gh.issue_token("acme/infra", &[("contents", "write")]);
        let revoke = http
            .delete(format!("{}/installation/token", gh.base_url()))
            .header("authorization", format!("token {other}"))
            .send()
            .await
            .expect("send");
        assert_eq!(revoke.status(), 204);
        assert_eq!(
            dispatch(&other, "acme/infra", json!({"event_type": "e"}))
                .await
                .expect("send")
                .status(),
            401
        );
        assert_eq!(gh.revoke_all_tokens(), 1, "the read-only token is left");
    }

    #[tokio::test]
    async fn skewed_clock_rejects_fresh_jwts_and_shows_in_the_date_header() {
        let gh = GitHubEmulator::start(42, TEST_APP_PUBLIC_KEY_PEM).await;
        gh.set_clock_skew(Duration::minutes(-5));
        let now = Utc::now().timestamp();
        let r = reqwest::Client::new()
            .get(format!("{}/app", gh.base_url()))
            .bearer_auth(jwt(42, now - 60, now + 540))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 401);
        let date = r.headers()["date"].to_str().expect("ascii").to_owned();
        let date = DateTime::parse_from_rfc2822(&date).expect("http date");
        let behind = Utc::now().timestamp() - date.timestamp();
        assert!((295..=305).contains(&behind), "{behind}");
    }
}

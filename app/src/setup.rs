//! `ssm-app setup`: registers the GitHub App from its manifest (`app/manifest.json`) through
//! GitHub's manifest flow, as Probot does, and stores its credentials in Secrets Manager.
//!
//! 1. A local page posts the manifest (plus this deployment's webhook URL and our callback) to
//!    `{github}/settings/apps/new` (or an organization's) with a random `state`.
//! 2. GitHub redirects the browser to `/callback?code=...&state=...`; the state must match.
//! 3. The code is converted once (`POST {api}/app-manifests/{code}/conversions`, through
//!    octocrab, no authentication) into the App's id, private key and webhook secret. The
//!    converted App must be the one whose manifest the page posted: its name, and with `--org`
//!    its owner; another App's credentials are not stored.
//! 4. They are written to the App stack's secrets (`--private-key-secret-id`,
//!    `--webhook-secret-id`; by default `{prefix}/private-key` and `{prefix}/webhook-secret`):
//!    the key as `{"app_id", "pem"}`, the webhook secret as the string, the shapes
//!    [`crate::secrets`] reads; nothing secret is printed or logged. Both secrets must exist already (the App stack creates them with a
//!    resource policy that only the App's role may read through); setup never creates a secret,
//!    which would be readable by every principal of the account allowed `GetSecretValue`.
//!
//! The page answers only requests whose `Host` is the address it printed (a loopback name and
//! its port), and refuses any request carrying an `Origin` other than its own: another site the
//! browser visits, even one whose DNS name is rebound to 127.0.0.1, cannot drive it.

use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::{Context, bail};
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};
use octocrab::Octocrab;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::github::{octocrab_client, read_response};

/// The committed manifest; [`manifest`] fills in the deployment's URLs.
pub const MANIFEST: &str = include_str!("../manifest.json");

/// Command line of `ssm-app setup`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "ssm-app setup",
    about = "Register the GitHub App and store its credentials"
)]
pub struct SetupOpts {
    #[command(flatten)]
    pub github: GitHubTarget,
    /// Where GitHub delivers webhooks (the deployed App's `/webhooks`).
    #[arg(long)]
    pub webhook_url: url::Url,
    /// Secrets Manager name prefix: `{prefix}/private-key` and `{prefix}/webhook-secret`.
    #[arg(long, default_value = "serverless-ssm/github-app")]
    pub secret_prefix: String,
    /// The secret that receives the private key: the App stack's `PrivateKeySecretArn`
    /// (`{prefix}/private-key` when absent).
    #[arg(long, env = "GITHUB_APP_PRIVATE_KEY_SECRET_ID")]
    pub private_key_secret_id: Option<String>,
    /// The secret that receives the webhook secret: the App stack's `WebhookSecretArn`
    /// (`{prefix}/webhook-secret` when absent).
    #[arg(long, env = "GITHUB_WEBHOOK_SECRET_ID")]
    pub webhook_secret_id: Option<String>,
    /// Local address of the setup page (GitHub redirects the browser back to it).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
}

/// Where and as whom the App is registered: the options `ssm-app setup` and `ssm-install` share.
#[derive(Debug, Clone, clap::Args)]
pub struct GitHubTarget {
    /// GitHub's web URL (GitHub Enterprise Server: `https://HOST`).
    #[arg(long, env = "GITHUB_URL", default_value = "https://github.com")]
    pub github_url: url::Url,
    /// GitHub's API URL; derived from `--github-url` when absent (`https://HOST/api/v3` on GHES).
    #[arg(long, env = "GITHUB_API_URL")]
    pub github_api_url: Option<url::Url>,
    /// Register the App under this organization instead of the signed-in user.
    #[arg(long)]
    pub org: Option<String>,
    /// The App's name on GitHub (the manifest's by default; names are unique on GitHub).
    #[arg(long)]
    pub name: Option<String>,
}

impl GitHubTarget {
    /// The REST API base: `api.github.com` for github.com, `{url}/api/v3` otherwise.
    pub fn api_url(&self) -> anyhow::Result<url::Url> {
        if let Some(api) = &self.github_api_url {
            return Ok(api.clone());
        }
        Ok(match self.github_url.host_str() {
            Some("github.com") => url::Url::parse("https://api.github.com")?,
            _ => self.github_url.join("api/v3")?,
        })
    }

    /// Where the page posts the manifest.
    pub fn form_action(&self, state: &str) -> anyhow::Result<String> {
        let base = self.github_url.as_str().trim_end_matches('/');
        let path = match &self.org {
            Some(org) if is_login(org) => format!("/organizations/{org}/settings/apps/new"),
            Some(_) => bail!("--org must be a GitHub login (letters, digits, '-')"),
            None => "/settings/apps/new".to_owned(),
        };
        Ok(format!("{base}{path}?state={state}"))
    }
}

fn is_login(s: &str) -> bool {
    !s.is_empty() && s.len() <= 39 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The committed manifest with this deployment's webhook URL, callback and (optional) name.
pub fn manifest(
    webhook_url: &url::Url,
    redirect_url: &str,
    name: Option<&str>,
) -> anyhow::Result<Value> {
    let mut manifest: Value = serde_json::from_str(MANIFEST).context("app/manifest.json")?;
    manifest["hook_attributes"]["url"] = json!(webhook_url.as_str());
    manifest["redirect_url"] = json!(redirect_url);
    if let Some(name) = name {
        manifest["name"] = json!(name);
    }
    Ok(manifest)
}

/// The page: a form that posts the manifest to GitHub, submitted on load.
pub fn page(form_action: &str, manifest: &Value) -> String {
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Register the Serverless SSM GitHub App</title></head>
<body>
<form id="register" method="post" action="{action}">
<input type="hidden" name="manifest" value="{manifest}">
<p>Registering the GitHub App… <button type="submit">Continue to GitHub</button></p>
</form>
<script>document.getElementById("register").submit();</script>
</body></html>
"#,
        action = escape(form_action),
        manifest = escape(&manifest.to_string()),
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// What registration produced (nothing secret).
#[derive(Debug, Clone)]
pub struct Registered {
    pub app_id: u64,
    pub slug: String,
    pub html_url: String,
    pub private_key_secret: String,
    pub webhook_secret: String,
}

struct SetupState {
    nonce: String,
    /// `Host` values the page answers: `127.0.0.1:PORT`, `localhost:PORT`, `[::1]:PORT`.
    hosts: Vec<String>,
    /// The App the page's manifest describes.
    expected: ExpectedApp,
    page: String,
    github: Octocrab,
    secrets: aws_sdk_secretsmanager::Client,
    /// Where the key and the webhook secret go (existing secrets).
    private_key_id: String,
    webhook_id: String,
    done: Mutex<Option<oneshot::Sender<Registered>>>,
}

/// The running setup page.
pub struct SetupServer {
    pub port: u16,
    pub server: Server,
    pub registered: oneshot::Receiver<Registered>,
}

impl std::fmt::Debug for SetupServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetupServer")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl SetupServer {
    /// Binds the page and prepares the manifest; `secrets` is where the credentials go.
    pub fn build(
        opts: &SetupOpts,
        secrets: aws_sdk_secretsmanager::Client,
    ) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind(opts.listen).with_context(|| format!("binding {}", opts.listen))?;
        let addr = listener.local_addr()?;
        let nonce = format!("{:032x}", rand::random::<u128>());
        let port = addr.port();
        let redirect = format!("http://127.0.0.1:{port}/callback");
        let manifest = manifest(&opts.webhook_url, &redirect, opts.github.name.as_deref())?;
        let expected = ExpectedApp {
            name: manifest["name"]
                .as_str()
                .context("the manifest has no name")?
                .to_owned(),
            owner: opts.github.org.clone(),
        };
        let (tx, rx) = oneshot::channel();
        let state = web::Data::new(SetupState {
            page: page(&opts.github.form_action(&nonce)?, &manifest),
            nonce,
            hosts: ["127.0.0.1", "localhost", "[::1]"]
                .iter()
                .map(|h| format!("{h}:{port}"))
                .collect(),
            expected,
            github: octocrab_client(&opts.github.api_url()?, Duration::from_secs(30))?,
            secrets,
            private_key_id: opts.private_key_secret_id.clone().unwrap_or_else(|| {
                format!("{}/private-key", opts.secret_prefix.trim_end_matches('/'))
            }),
            webhook_id: opts.webhook_secret_id.clone().unwrap_or_else(|| {
                format!(
                    "{}/webhook-secret",
                    opts.secret_prefix.trim_end_matches('/')
                )
            }),
            done: Mutex::new(Some(tx)),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(actix_web::middleware::from_fn(same_origin_only))
                .route("/", web::get().to(index))
                .route("/callback", web::get().to(callback))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        Ok(Self {
            port,
            server,
            registered: rx,
        })
    }
}

/// `ssm-app setup`: serve the page, wait for one successful registration, print the next steps.
pub async fn run(opts: SetupOpts) -> anyhow::Result<()> {
    let aws = ssm_sdk_http::sdk_config_loader().load().await;
    let setup = SetupServer::build(&opts, aws_sdk_secretsmanager::Client::new(&aws))?;
    let handle = setup.server.handle();
    let server = tokio::spawn(setup.server);
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    writeln!(
        out,
        "Open http://127.0.0.1:{}/ in a browser signed in to GitHub.",
        setup.port
    )?;
    drop(out);
    let registered = setup
        .registered
        .await
        .context("the setup page stopped before a registration")?;
    // Let the browser receive its answer before stopping.
    tokio::time::sleep(Duration::from_millis(200)).await;
    handle.stop(true).await;
    drop(server);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Registered GitHub App {} (id {}).\n\
         Private key and App id: {}\n\
         Webhook secret: {}\n\
         The App stack's function reads them (and the App id) when it next starts: no deploy needed.\n\
         Next: install the App on your repositories: {}/installations/new",
        registered.slug,
        registered.app_id,
        registered.private_key_secret,
        registered.webhook_secret,
        registered.html_url,
    )?;
    Ok(())
}

/// What the callback checks of the converted App: the manifest's name (GitHub keeps it as given)
/// and, with `--org`, the owner.
#[derive(Debug, Clone)]
struct ExpectedApp {
    name: String,
    owner: Option<String>,
}

impl ExpectedApp {
    /// Why `app` is not the App this page registered, if it is not.
    fn mismatch(&self, app: &Conversion) -> Option<&'static str> {
        if app.name != self.name {
            return Some("its name is not the manifest's");
        }
        match (&self.owner, &app.owner) {
            (Some(org), Some(owner)) if owner.login.eq_ignore_ascii_case(org) => None,
            (Some(_), _) => Some("its owner is not the organization given with --org"),
            (None, _) => None,
        }
    }
}

/// Whether a request may reach the page: `Host` one of the page's own loopback addresses, and
/// no `Origin` but the page's own (DNS rebinding, cross-site requests).
fn allowed(hosts: &[String], host: Option<&str>, origin: Option<&str>) -> bool {
    let ours = |h: &str| hosts.iter().any(|o| o.eq_ignore_ascii_case(h));
    let host_ok = host.is_some_and(ours);
    let origin_ok = origin.is_none_or(|o| {
        o.strip_prefix("http://")
            .is_some_and(|h| ours(h.trim_end_matches('/')))
    });
    host_ok && origin_ok
}

async fn same_origin_only(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let header = |name| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("\u{0}"))
    };
    let ok = req
        .app_data::<web::Data<SetupState>>()
        .is_some_and(|state| {
            allowed(
                &state.hosts,
                header(actix_web::http::header::HOST),
                header(actix_web::http::header::ORIGIN),
            )
        });
    if !ok {
        tracing::warn!("setup page: request for another host or from another origin refused");
        let resp = text(
            actix_web::http::StatusCode::FORBIDDEN,
            "this page answers only http://127.0.0.1:PORT/ opened in this browser",
        );
        return Ok(req.into_response(resp));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

async fn index(state: web::Data<SetupState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("cache-control", "no-store"))
        .body(state.page.clone())
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

#[derive(Deserialize)]
struct Owner {
    login: String,
}

#[derive(Deserialize)]
struct Conversion {
    id: u64,
    slug: String,
    name: String,
    owner: Option<Owner>,
    html_url: String,
    pem: SecretString,
    webhook_secret: Option<SecretString>,
}

fn text(status: actix_web::http::StatusCode, body: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(body.to_owned())
}

async fn callback(state: web::Data<SetupState>, query: web::Query<CallbackQuery>) -> HttpResponse {
    use actix_web::http::StatusCode;
    if query.state.as_deref() != Some(state.nonce.as_str()) {
        return text(
            StatusCode::BAD_REQUEST,
            "state does not match this setup page; start again from /",
        );
    }
    let Some(code) = query.code.as_deref().filter(|c| {
        !c.is_empty() && c.len() <= 100 && c.chars().all(|c| c.is_ascii_alphanumeric())
    }) else {
        return text(StatusCode::BAD_REQUEST, "missing or malformed code");
    };
    let sent = state
        .github
        ._post(format!("/app-manifests/{code}/conversions"), None::<&()>)
        .await;
    let (status, _, body) = match read_response(sent).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(error = %e, "manifest conversion failed");
            return text(
                StatusCode::BAD_GATEWAY,
                "GitHub could not be reached; try again",
            );
        }
    };
    if status.as_u16() == 404 || status.as_u16() == 422 {
        return text(
            StatusCode::BAD_REQUEST,
            "GitHub refused the code: invalid, expired or already used; start again from /",
        );
    }
    if !status.is_success() {
        tracing::warn!(status = status.as_u16(), "manifest conversion refused");
        return text(StatusCode::BAD_GATEWAY, "GitHub refused the conversion");
    }
    let Ok(app) = serde_json::from_slice::<Conversion>(&body) else {
        return text(
            StatusCode::BAD_GATEWAY,
            "GitHub's conversion answer has an unexpected shape",
        );
    };
    if let Some(why) = state.expected.mismatch(&app) {
        tracing::warn!(slug = %app.slug, why, "the converted App is not the one this page registered; nothing stored");
        return text(
            StatusCode::BAD_REQUEST,
            &format!(
                "GitHub converted another App than the one this page registered ({why}); \
                 nothing was stored. Delete that App on GitHub if you did not mean to create it."
            ),
        );
    }
    match store(&state, &app).await {
        Ok(registered) => {
            tracing::info!(app_id = registered.app_id, slug = %registered.slug, "GitHub App registered; credentials stored");
            let install = format!("{}/installations/new", registered.html_url);
            if let Some(tx) = state.done.lock().ok().and_then(|mut d| d.take()) {
                drop(tx.send(registered.clone()));
            }
            HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!(
                "<!doctype html><p>Registered <b>{}</b>; its credentials are in Secrets Manager.</p>\
                 <p>Next: <a href=\"{url}\">install it on your repositories</a>.</p>",
                escape(&registered.slug),
                url = escape(&install),
            ))
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "storing the App's credentials failed");
            text(
                StatusCode::BAD_GATEWAY,
                "the App was created but its credentials could not be stored; see the setup log",
            )
        }
    }
}

async fn store(state: &SetupState, app: &Conversion) -> anyhow::Result<Registered> {
    let key = json!({"app_id": app.id.to_string(), "pem": app.pem.expose_secret()}).to_string();
    let private_key_secret = put(state, &state.private_key_id, key).await?;
    let hook = app
        .webhook_secret
        .as_ref()
        .map(|s| s.expose_secret().to_owned())
        .context("GitHub returned no webhook secret (the manifest must set hook_attributes)")?;
    let webhook_secret = put(state, &state.webhook_id, hook).await?;
    Ok(Registered {
        app_id: app.id,
        slug: app.slug.clone(),
        html_url: app.html_url.clone(),
        private_key_secret,
        webhook_secret,
    })
}

/// Adds a new current version to secret `id`, which must exist (the App stack creates it with a
/// resource policy only the App's role can read through); returns its ARN. A missing secret is
/// an error, never created here: a new secret would carry no such policy.
async fn put(state: &SetupState, id: &str, value: String) -> anyhow::Result<String> {
    let out = state
        .secrets
        .put_secret_value()
        .secret_id(id)
        .secret_string(value)
        .send()
        .await
        .map_err(|e| match e.code() {
            Some("ResourceNotFoundException") => anyhow::anyhow!(
                "secret {id} does not exist: deploy the App stack first (it creates the App's \
                 secrets, readable by the App's role only) and pass its outputs \
                 PrivateKeySecretArn and WebhookSecretArn as --private-key-secret-id and \
                 --webhook-secret-id"
            ),
            _ => anyhow::anyhow!("updating secret {id}: {}", DisplayErrorContext(&e)),
        })?;
    Ok(out.arn.unwrap_or_else(|| id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn opts(extra: &[&str]) -> SetupOpts {
        let mut args = vec!["setup", "--webhook-url=https://ssm.example.com/webhooks"];
        args.extend_from_slice(extra);
        SetupOpts::try_parse_from(args).expect("options")
    }

    #[test]
    fn only_the_pages_own_loopback_host_and_origin_are_answered() {
        let hosts: Vec<String> = ["127.0.0.1:3000", "localhost:3000", "[::1]:3000"]
            .map(String::from)
            .to_vec();
        assert!(allowed(&hosts, Some("127.0.0.1:3000"), None));
        assert!(allowed(&hosts, Some("LOCALHOST:3000"), None));
        assert!(allowed(
            &hosts,
            Some("127.0.0.1:3000"),
            Some("http://127.0.0.1:3000")
        ));
        // DNS rebinding: the browser sends the attacker's name as Host.
        assert!(!allowed(&hosts, Some("evil.example:3000"), None));
        assert!(!allowed(&hosts, Some("127.0.0.1:3001"), None));
        assert!(!allowed(&hosts, None, None));
        // A cross-site request, even to the right host.
        assert!(!allowed(
            &hosts,
            Some("127.0.0.1:3000"),
            Some("http://evil.example:3000")
        ));
        assert!(!allowed(&hosts, Some("127.0.0.1:3000"), Some("null")));
    }

    #[test]
    fn the_converted_app_must_be_the_manifests() {
        let conversion = |name: &str, owner: &str| Conversion {
            id: 1,
            slug: "s".into(),
            name: name.into(),
            owner: Some(Owner {
                login: owner.into(),
            }),
            html_url: "https://github.com/apps/s".into(),
            pem: SecretString::from("pem"),
            webhook_secret: None,
        };
        let org = ExpectedApp {
            name: "Serverless SSM".into(),
            owner: Some("acme".into()),
        };
        assert_eq!(org.mismatch(&conversion("Serverless SSM", "Acme")), None);
        assert!(org.mismatch(&conversion("Other App", "acme")).is_some());
        assert!(
            org.mismatch(&conversion("Serverless SSM", "evil"))
                .is_some()
        );
        let user = ExpectedApp {
            name: "Serverless SSM".into(),
            owner: None,
        };
        assert_eq!(user.mismatch(&conversion("Serverless SSM", "alice")), None);
    }

    #[test]
    fn api_url_and_form_action_for_github_and_ghes() {
        let gh = opts(&[]);
        assert_eq!(
            gh.github.api_url().expect("api").as_str(),
            "https://api.github.com/"
        );
        assert_eq!(
            gh.github.form_action("s1").expect("action"),
            "https://github.com/settings/apps/new?state=s1"
        );
        let ghes = opts(&["--github-url=https://ghe.example.com", "--org=acme"]);
        assert_eq!(
            ghes.github.api_url().expect("api").as_str(),
            "https://ghe.example.com/api/v3"
        );
        assert_eq!(
            ghes.github.form_action("s1").expect("action"),
            "https://ghe.example.com/organizations/acme/settings/apps/new?state=s1"
        );
        assert!(opts(&["--org=a/b"]).github.form_action("s").is_err());
    }

    #[test]
    fn manifest_gets_the_deployment_urls_and_the_page_escapes_it() {
        let hook = url::Url::parse("https://ssm.example.com/webhooks").expect("url");
        let m = manifest(
            &hook,
            "http://127.0.0.1:3000/callback",
            Some("SSM \"prod\""),
        )
        .expect("manifest");
        assert_eq!(
            m["hook_attributes"]["url"],
            "https://ssm.example.com/webhooks"
        );
        assert_eq!(m["redirect_url"], "http://127.0.0.1:3000/callback");
        assert_eq!(m["default_permissions"]["contents"], "write");
        assert_eq!(m["default_permissions"]["metadata"], "read");
        let html = page("https://github.com/settings/apps/new?state=x&y", &m);
        assert!(html.contains("SSM \\&quot;prod\\&quot;"), "{html}");
        assert!(html.contains("action=\"https://github.com/settings/apps/new?state=x&amp;y\""));
        assert!(!html.contains("\"prod\""));
    }
}

//! A local stand-in for GitHub Actions' OIDC token endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL`):
//! `GET ?audience=…` with `Authorization: Bearer <request token>` answers `{"value": <JWT>}`,
//! the contract the deploy Action's `credentials` module reads.
//!
//! The JWT is RS256, signed with the test-only key of `ssm_testkit`, with the claims GitHub sets
//! (`iss`, `aud`, `sub` = `repo:OWNER/REPO:ref:refs/heads/BRANCH`, `repository`, `ref`, `iat`,
//! `nbf`, `exp`, `jti`). moto's `AssumeRoleWithWebIdentity` does not verify it; AWS would, against
//! the OIDC provider the `SsmGitHubOidc` stack creates.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use hyper::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tokio::net::TcpListener;

use crate::web::{self, Server};

/// The running issuer.
#[derive(Debug)]
pub struct OidcIssuer {
    server: Server,
    /// The request token the Action must present (`ACTIONS_ID_TOKEN_REQUEST_TOKEN`).
    pub request_token: String,
    issued: Arc<AtomicU64>,
}

impl OidcIssuer {
    /// Starts the issuer on 127.0.0.1 for `repository` (`owner/name`) on `branch`.
    pub async fn start(repository: &str, branch: &str) -> anyhow::Result<OidcIssuer> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("OIDC issuer: bind 127.0.0.1:0")?;
        let issuer = format!("http://{}", listener.local_addr()?);
        let key =
            EncodingKey::from_rsa_pem(ssm_testkit::github::TEST_APP_PRIVATE_KEY_PEM.as_bytes())
                .context("OIDC issuer: signing key")?;
        let request_token = uuid::Uuid::new_v4().simple().to_string();
        let issued = Arc::new(AtomicU64::new(0));
        let (expected, count) = (format!("Bearer {request_token}"), issued.clone());
        let (repository, branch) = (repository.to_owned(), branch.to_owned());
        let server = web::serve(listener, move |req| {
            let authorized = req
                .headers
                .get_all(::http::header::AUTHORIZATION)
                .iter()
                .map(|v| v.to_str().unwrap_or_default())
                .eq([expected.as_str()]);
            let audience = req.uri.query().and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("audience="))
                    .map(str::to_owned)
            });
            let token = match (authorized, audience) {
                (false, _) => Err((StatusCode::UNAUTHORIZED, "bad request token")),
                (true, None) => Err((StatusCode::BAD_REQUEST, "audience is required")),
                (true, Some(aud)) => {
                    let now = chrono::Utc::now().timestamp();
                    let claims = json!({
                        "iss": issuer, "aud": aud,
                        "sub": format!("repo:{repository}:ref:refs/heads/{branch}"),
                        "repository": repository, "ref": format!("refs/heads/{branch}"),
                        "event_name": "repository_dispatch",
                        "iat": now, "nbf": now - 5, "exp": now + 300,
                        "jti": uuid::Uuid::new_v4().to_string(),
                    });
                    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key)
                        .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "signing failed"))
                }
            };
            let resp = match token {
                Ok(jwt) => {
                    count.fetch_add(1, Ordering::Relaxed);
                    web::json(StatusCode::OK, &json!({ "value": jwt }))
                }
                Err((status, message)) => web::json(status, &json!({ "message": message })),
            };
            async move { resp }
        })?;
        Ok(OidcIssuer {
            server,
            request_token,
            issued,
        })
    }

    /// `ACTIONS_ID_TOKEN_REQUEST_URL`.
    pub fn url(&self) -> String {
        format!("{}/token", self.server.url())
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }
}

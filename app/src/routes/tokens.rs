//! `POST /v1/tokens`: a signed `sts:GetCallerIdentity` in, an installation token scoped to one
//! repository out. Decide (identity checks, policy) in `ssm_core::broker`, then act (STS, GitHub).

use actix_web::{HttpResponse, web};
use chrono::Utc;
use ssm_core::broker::{
    Decision, IdentityExpectations, Permissions, Principal, RepoName, TokenRequest, TokenResponse,
    check_identity, parse_permissions, still_fresh,
};

use crate::cache::{CachedToken, ScopeKey};
use crate::error::ApiError;
use crate::github::GitHubError;
use crate::metrics::inc;
use crate::startup::AppState;

/// Where an issued token came from, for the audit log.
#[derive(Debug, Clone, Copy)]
enum Source {
    Minted,
    Cached,
}

pub async fn issue(
    state: web::Data<AppState>,
    body: web::Json<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.into_inner();
    let mut caller = None;
    match handle(&state, &req, &mut caller).await {
        Ok((resp, source)) => {
            tracing::info!(
                target: "audit",
                decision = "issued",
                source = ?source,
                caller = caller.as_deref().unwrap_or("-"),
                repository = %req.repository,
                permissions = ?req.permissions,
                expires_at = %resp.expires_at,
                "installation token issued"
            );
            Ok(HttpResponse::Created().json(resp))
        }
        Err(err) => {
            match &err {
                ApiError::Denied(_) => inc(&state.metrics.tokens_denied),
                ApiError::Identity(_) | ApiError::StsRejected(_) => {
                    inc(&state.metrics.identity_rejected)
                }
                _ => {}
            }
            tracing::warn!(
                target: "audit",
                decision = "refused",
                code = err.code(),
                caller = caller.as_deref().unwrap_or("-"),
                repository = %req.repository,
                permissions = ?req.permissions,
                reason = %err,
                "installation token refused"
            );
            Err(err)
        }
    }
}

async fn handle(
    state: &AppState,
    req: &TokenRequest,
    caller: &mut Option<String>,
) -> Result<(TokenResponse, Source), ApiError> {
    let repo = RepoName::parse(&req.repository)?;
    let permissions = parse_permissions(&req.permissions)?;
    let forward = check_identity(
        &req.identity,
        &IdentityExpectations {
            sts_url: state.sts.endpoint().as_str(),
            audience: &state.audience,
            now: Utc::now(),
        },
    )?;
    let arn = state.sts.caller_arn(&forward).await?;
    *caller = Some(arn.clone());
    let principal = Principal::from_arn(&arn)?;
    if let Decision::Deny(reason) = state.policy.check(&principal, &repo, &permissions) {
        return Err(reason.into());
    }
    let installation_id = installation_id(state, &repo).await?;
    let (token, source) = token(state, installation_id, &repo, permissions).await?;
    Ok((
        TokenResponse {
            token: token.token,
            expires_at: token.expires_at,
            repository: req.repository.clone(),
            permissions: token.permissions,
        },
        source,
    ))
}

async fn installation_id(state: &AppState, repo: &RepoName) -> Result<u64, ApiError> {
    if let Some(id) = state.installations.get(repo) {
        return Ok(id);
    }
    match state.github.installation_id(repo).await {
        Ok(id) => {
            state.installations.insert(repo.clone(), id);
            Ok(id)
        }
        Err(GitHubError::NotFound) => Err(ApiError::NotInstalled(repo.to_string())),
        Err(e) => Err(ApiError::GitHub(e.to_string())),
    }
}

/// The cached token for this scope if still fresh, otherwise one minted now; concurrent requests
/// for one scope wait on the slot, so GitHub sees a single mint.
async fn token(
    state: &AppState,
    installation_id: u64,
    repo: &RepoName,
    permissions: Permissions,
) -> Result<(CachedToken, Source), ApiError> {
    let key = ScopeKey {
        installation_id,
        repository: repo.clone(),
        permissions,
    };
    let slot = state.tokens.slot(&key);
    let mut cached = slot.lock().await;
    if let Some(hit) = cached.as_ref()
        && still_fresh(hit.expires_at, Utc::now(), state.token_refresh_margin)
    {
        inc(&state.metrics.tokens_cached);
        return Ok((hit.clone(), Source::Cached));
    }
    match state
        .github
        .mint(installation_id, repo, &key.permissions)
        .await
    {
        Ok(minted) => {
            inc(&state.metrics.tokens_issued);
            let fresh = CachedToken {
                token: minted.token,
                expires_at: minted.expires_at,
                permissions: minted.permissions,
            };
            *cached = Some(fresh.clone());
            Ok((fresh, Source::Minted))
        }
        Err(GitHubError::NotFound) => {
            state.installations.remove(repo);
            Err(ApiError::NotInstalled(repo.to_string()))
        }
        Err(e) => Err(ApiError::GitHub(e.to_string())),
    }
}

//! `POST /v1/tokens`: a signed `sts:GetCallerIdentity` in, an installation token scoped to one
//! repository out. Decide (identity checks, policy) in `ssm_core::broker`, then act (STS, GitHub).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use ssm_core::broker::{
    Decision, IdentityExpectations, Permissions, Principal, RepoName, TokenDigest, TokenRequest,
    TokenResponse, check_identity, parse_permissions, signed_scope, still_fresh,
};

use crate::audit;
use crate::cache::{CachedToken, ScopeKey};
use crate::error::ApiError;
use crate::github::GitHubError;
use crate::metrics::inc;
use crate::state::AppState;

/// Where an issued token came from, for the audit log.
#[derive(Debug, Clone, Copy)]
enum Source {
    Minted,
    Cached,
    /// Minted because the caller showed GitHub rejected the cached one.
    Replaced,
}

/// What a `rejected_token_sha256` did, for the audit log.
#[derive(Debug, Clone, Copy, Default)]
enum Rejected {
    #[default]
    None,
    /// It named the cached token, which was dropped.
    Matched,
    /// It named another token (one already replaced, or none of ours): nothing was dropped.
    Unmatched,
}

/// What the handler learnt, for the audit line.
#[derive(Debug, Default)]
struct Learnt {
    caller: Option<String>,
    rejected: Rejected,
}

pub async fn issue(
    state: web::Data<AppState>,
    http: HttpRequest,
    body: web::Json<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.into_inner();
    let mut learnt = Learnt::default();
    match handle(&state, &req, &mut learnt).await {
        Ok((resp, source)) => {
            tracing::info!(
                target: "audit",
                decision = "issued",
                source = ?source,
                caller = %audit::caller(learnt.caller.as_deref()),
                repository = %audit::repository(&req.repository),
                permissions = %audit::permissions(&req.permissions),
                rejected_token = ?learnt.rejected,
                expires_at = %resp.expires_at,
                user_agent = %audit::user_agent(&http),
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
            audit::refused(
                &http,
                &err,
                &audit::Context {
                    caller: learnt.caller.as_deref(),
                    repository: Some(&req.repository),
                    permissions: Some(&req.permissions),
                },
            );
            Err(err)
        }
    }
}

async fn handle(
    state: &AppState,
    req: &TokenRequest,
    learnt: &mut Learnt,
) -> Result<(TokenResponse, Source), ApiError> {
    let repo = RepoName::parse(&req.repository)?;
    let permissions = parse_permissions(&req.permissions)?;
    let rejected = req
        .rejected_token_sha256
        .as_deref()
        .map(TokenDigest::parse_hex)
        .transpose()?;
    let scope = signed_scope(&repo, &permissions);
    let forward = check_identity(
        &req.identity,
        &IdentityExpectations {
            sts: state.sts.endpoints(),
            audience: &state.audience,
            scope: &scope,
            now: Utc::now(),
        },
    )?;
    let arn = state.sts.caller_arn(&forward).await?;
    learnt.caller = Some(arn.clone());
    let principal = Principal::from_arn(&arn)?;
    if let Decision::Deny(reason) = state.policy.check(&principal, &repo, &permissions) {
        return Err(reason.into());
    }
    let installation_id = installation_id(state, &repo).await?;
    let (token, source) =
        token(state, installation_id, &repo, permissions, rejected, learnt).await?;
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
///
/// A `rejected` digest that matches the cached token (compared in constant time) drops it and
/// mints another, at most once per `token_replace_min_interval` per scope (sooner is 429); one
/// that matches nothing changes nothing, so a caller cannot force a mint without holding the
/// current token, nor more often than the interval with it.
async fn token(
    state: &AppState,
    installation_id: u64,
    repo: &RepoName,
    permissions: Permissions,
    rejected: Option<TokenDigest>,
    learnt: &mut Learnt,
) -> Result<(CachedToken, Source), ApiError> {
    let key = ScopeKey {
        installation_id,
        repository: repo.clone(),
        permissions,
    };
    let slot = state.tokens.slot(&key);
    let mut slot = slot.lock().await;
    let mut replacing = false;
    if let Some(rejected) = rejected {
        learnt.rejected = Rejected::Unmatched;
        if slot
            .token
            .as_ref()
            .is_some_and(|t| rejected.matches(&t.token))
        {
            learnt.rejected = Rejected::Matched;
            if let Some(at) = slot.replaced_at {
                let since = at.elapsed();
                if since < state.token_replace_min_interval {
                    let wait = state.token_replace_min_interval - since;
                    return Err(ApiError::ReplaceRateLimited {
                        retry_after_secs: wait.as_secs() + 1,
                    });
                }
            }
            slot.token = None;
            replacing = true;
        }
    }
    if let Some(hit) = slot.token.as_ref()
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
            slot.token = Some(fresh.clone());
            if replacing {
                slot.replaced_at = Some(std::time::Instant::now());
                inc(&state.metrics.tokens_replaced);
                return Ok((fresh, Source::Replaced));
            }
            Ok((fresh, Source::Minted))
        }
        Err(GitHubError::NotFound) => {
            state.installations.remove(repo);
            Err(ApiError::NotInstalled(repo.to_string()))
        }
        Err(e) => Err(ApiError::GitHub(e.to_string())),
    }
}

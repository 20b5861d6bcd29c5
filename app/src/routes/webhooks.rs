//! `POST /webhooks`: signature first (constant time, over the raw body), then dedupe on
//! `X-GitHub-Delivery`, then our own event enum (converted from octocrab's payload types).

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use ssm_core::broker::RepoName;
use ssm_core::webhook::{
    DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, WebhookEvent, verify_signature,
};

use crate::error::ApiError;
use crate::metrics::inc;
use crate::state::{AppState, WEBHOOK_BODY_LIMIT};
use crate::webhook_event;

pub async fn receive(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let result = accept(&state, &req, payload).await;
    match &result {
        Ok(_) => inc(&state.metrics.webhooks_accepted),
        Err(err) => {
            inc(&state.metrics.webhooks_rejected);
            tracing::warn!(code = err.code(), reason = %err, delivery = header(&req, DELIVERY_HEADER), "webhook rejected");
        }
    }
    result
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn accept(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let too_large = || ApiError::PayloadTooLarge("webhook body exceeds 25 MB".into());
    let declared = header(req, "content-length").and_then(|l| l.parse::<usize>().ok());
    if declared.is_some_and(|l| l > WEBHOOK_BODY_LIMIT) {
        return Err(too_large());
    }
    let body = payload
        .to_bytes_limited(WEBHOOK_BODY_LIMIT)
        .await
        .map_err(|_| too_large())?
        .map_err(|e| ApiError::Malformed(format!("could not read the webhook body: {e}")))?;
    let secrets: Vec<&[u8]> = state
        .webhook_secrets
        .iter()
        .map(|s| s.expose_secret().as_bytes())
        .collect();
    verify_signature(&secrets, header(req, SIGNATURE_HEADER), &body)?;
    let delivery = header(req, DELIVERY_HEADER).unwrap_or_default().to_owned();
    if !delivery.is_empty() && state.deliveries.seen(&delivery) {
        inc(&state.metrics.webhooks_duplicate);
        tracing::info!(delivery, "duplicate webhook delivery acknowledged");
        return Ok(HttpResponse::Ok().json(serde_json::json!({"status": "duplicate"})));
    }
    let event_name = header(req, EVENT_HEADER).unwrap_or_default();
    let event =
        webhook_event::parse(event_name, &body).map_err(|e| ApiError::Malformed(e.to_string()))?;
    apply(state, &delivery, event);
    if !delivery.is_empty() {
        state.deliveries.record(&delivery);
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "accepted"})))
}

/// Acts on an event: keeps the installation cache current, audit-logs reconcile activity.
fn apply(state: &AppState, delivery: &str, event: WebhookEvent) {
    match event {
        WebhookEvent::Ping { hook_id } => tracing::info!(delivery, hook_id, "webhook ping"),
        WebhookEvent::Installation {
            action,
            installation_id,
            repositories,
        } => {
            match action.as_str() {
                "deleted" | "suspend" => {
                    state.installations.remove_installation(installation_id);
                    state.tokens.forget_installation(installation_id);
                }
                _ => {
                    for repo in repositories.iter().filter_map(|r| RepoName::parse(r).ok()) {
                        state.installations.insert(repo, installation_id);
                    }
                }
            }
            tracing::info!(delivery, action, installation_id, repositories = ?repositories, "installation event");
        }
        WebhookEvent::InstallationRepositories {
            action,
            installation_id,
            added,
            removed,
        } => {
            for repo in added.iter().filter_map(|r| RepoName::parse(r).ok()) {
                state.installations.insert(repo, installation_id);
            }
            for repo in removed.iter().filter_map(|r| RepoName::parse(r).ok()) {
                state.installations.remove(&repo);
                state.tokens.forget_repository(&repo);
            }
            tracing::info!(delivery, action, installation_id, added = ?added, removed = ?removed, "installation repositories event");
        }
        WebhookEvent::RepositoryDispatch {
            event_type,
            repository,
            installation_id,
        } => {
            tracing::info!(target: "audit", delivery, event_type, repository, installation_id, "reconcile requested")
        }
        WebhookEvent::WorkflowRun {
            action,
            repository,
            run_id,
            name,
            event,
            status,
            conclusion,
        } => tracing::info!(
            target: "audit",
            delivery,
            action,
            repository,
            run_id,
            workflow = name,
            trigger = event,
            status,
            conclusion = conclusion.as_deref().unwrap_or("-"),
            "workflow run"
        ),
        WebhookEvent::Ignored { event } => {
            tracing::debug!(delivery, event, "webhook event ignored")
        }
    }
}

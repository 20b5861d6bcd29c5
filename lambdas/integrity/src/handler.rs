//! The Lambda handler: SQS batches of CloudTrail events and scheduled sweeps, one dispatch each.

use serde::Serialize;
use serde_json::{Value, json};
use ssm_core::integrity::{Classification, DriftSource, IgnorePolicy, build_dispatch};

use crate::batch::{Classified, classify_batch, findings};
use crate::dispatch::Notify;
use crate::input::{Input, Message};
use crate::stack::StackSource;
use crate::sweep::Sweeper;

/// `{"batchItemFailures": [{"itemIdentifier": "…"}]}`: the messages SQS must redeliver.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

impl BatchResponse {
    fn failing(ids: impl IntoIterator<Item = String>) -> BatchResponse {
        BatchResponse {
            batch_item_failures: ids
                .into_iter()
                .map(|item_identifier| ItemFailure { item_identifier })
                .collect(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The sweep could not run or report; the scheduler's retry (or the next sweep) repeats it.
    #[error("sweep failed: {0:#}")]
    Sweep(anyhow::Error),
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "SweepFailed".into(),
            error_message: e.to_string(),
        }
    }
}

/// Everything an invocation needs; built once per execution environment.
#[derive(Debug)]
pub struct Handler<N> {
    pub stack: StackSource,
    pub sweeper: Sweeper,
    pub policy: IgnorePolicy,
    pub notifier: N,
}

impl<N: Notify> Handler<N> {
    pub async fn handle(&self, payload: Value) -> Result<Value, HandlerError> {
        match Input::parse(&payload) {
            Input::Sqs(messages) => Ok(json!(self.handle_batch(&messages).await)),
            Input::Scheduled { id } => self.handle_sweep(&id).await,
            Input::Unknown { description } => {
                tracing::warn!(%description, "neither an SQS batch nor a scheduled event; acknowledged");
                Ok(json!({}))
            }
        }
    }

    /// Classifies the batch and sends at most one dispatch for it.
    #[tracing::instrument(skip_all, fields(messages = messages.len()))]
    pub async fn handle_batch(&self, messages: &[Message]) -> BatchResponse {
        let stack = match self.stack.get().await {
            Ok(stack) => stack,
            Err(e) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "cannot read the stack; the whole batch will be redelivered"
                );
                return BatchResponse::failing(messages.iter().map(|m| m.id.clone()));
            }
        };
        let mut classified = classify_batch(messages, &stack.index, &self.policy);
        if classified.iter().any(Classified::is_outside_stack) {
            match self.stack.refresh_if_older().await {
                Ok(Some(fresh)) => {
                    classified = classify_batch(messages, &fresh.index, &self.policy)
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    error = format!("{e:#}"),
                    "refreshing the stack failed; using the cached one"
                ),
            }
        }
        log_outcomes(&classified);
        let (findings, drift_ids) = findings(&classified);
        let Some(body) = build_dispatch(self.stack.stack_name(), DriftSource::Event, &findings)
        else {
            return BatchResponse::default();
        };
        match self.notifier.notify(&body).await {
            Ok(()) => BatchResponse::default(),
            Err(e) => {
                tracing::error!(error = %e, redelivered = drift_ids.len(), "dispatch failed; SQS will redeliver the drift messages");
                BatchResponse::failing(drift_ids)
            }
        }
    }

    #[tracing::instrument(skip_all, fields(schedule = %id))]
    async fn handle_sweep(&self, id: &str) -> Result<Value, HandlerError> {
        let stack = self.stack.get().await.map_err(HandlerError::Sweep)?;
        let report = self
            .sweeper
            .sweep(self.stack.stack_name(), &stack)
            .await
            .map_err(HandlerError::Sweep)?;
        for f in &report.findings {
            tracing::warn!(resource = %f.resource.logical_id, physical_id = %f.resource.physical_id, call = %f.call, "drift found by the sweep");
        }
        let dispatched = match build_dispatch(
            self.stack.stack_name(),
            DriftSource::Sweep,
            &report.findings,
        ) {
            Some(body) => {
                self.notifier
                    .notify(&body)
                    .await
                    .map_err(|e| HandlerError::Sweep(e.into()))?;
                true
            }
            None => false,
        };
        tracing::info!(
            findings = report.findings.len(),
            complete = report.drift_detection_complete,
            functions = report.functions_checked,
            dispatched,
            "sweep done"
        );
        Ok(json!({
            "findings": report.findings.len(),
            "driftDetectionComplete": report.drift_detection_complete,
            "functionsChecked": report.functions_checked,
            "dispatched": dispatched,
        }))
    }
}

fn log_outcomes(classified: &[Classified]) {
    for c in classified {
        match &c.outcome {
            Err(e) => {
                tracing::warn!(message_id = %c.message_id, error = %e, "unparseable message skipped")
            }
            Ok((event, Classification::Ignored(reason))) => tracing::info!(
                message_id = %c.message_id,
                event_id = %event.detail.event_id,
                call = %event.detail.event_name,
                source = %event.detail.event_source,
                caller = %event.caller(),
                %reason,
                "event ignored"
            ),
            Ok((event, Classification::Drift(drift))) => tracing::warn!(
                message_id = %c.message_id,
                event_id = %drift.event_id,
                call = %drift.event_name,
                source = %event.detail.event_source,
                caller = %drift.caller,
                resources = ?drift.resources.iter().map(|r| r.logical_id.as_str()).collect::<Vec<_>>(),
                "out-of-band change"
            ),
        }
    }
}

//! The Lambda handler: SQS batches of CloudTrail events and scheduled sweeps, one dispatch each.

use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};
use ssm_core::integrity::{
    Classification, DriftSource, IgnorePolicy, StackOperations, build_dispatch,
    configuration_error_metric,
};

use crate::batch::{Classified, classify_batch, cloudformation_calls_since, findings, postdating};
use crate::dispatch::{DispatchError, Notify};
use crate::input::{Input, Message};
use crate::metrics::{MetricSink, configuration_error};
use crate::stack::{Reread, StackSource};
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
    /// Where the configuration-error metric goes (stdout in Lambda).
    pub metrics: Arc<dyn MetricSink>,
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
        let redeliver = |what: &str, e: anyhow::Error| {
            tracing::error!(
                error = format!("{e:#}"),
                "cannot read the {what}; the whole batch will be redelivered"
            );
            BatchResponse::failing(messages.iter().map(|m| m.id.clone()))
        };
        let stack = match self.stack.get().await {
            Ok(stack) => stack,
            Err(e) => return redeliver("stack", e),
        };
        // CloudFormation's calls are ours only during our stack's operations: read them only
        // when the batch holds such a call.
        let operations = match cloudformation_calls_since(messages) {
            None => StackOperations::default(),
            Some(since) => match self.stack.operations(&stack.stack_id, since).await {
                Ok(operations) => operations,
                Err(e) => return redeliver("stack's operations", e),
            },
        };
        let mut classified = classify_batch(messages, &stack.index, &self.policy, &operations);
        let misses: Vec<_> = classified
            .iter()
            .filter_map(Classified::outside_stack_at)
            .collect();
        let mut deferred = Vec::new();
        if !misses.is_empty() {
            let policy = self.stack.refresh_policy();
            match self.stack.reread_for(&misses).await {
                Ok(Reread::Fresh(fresh)) => {
                    classified = classify_batch(messages, &fresh.index, &self.policy, &operations)
                }
                Ok(Reread::Kept) => {}
                Ok(Reread::Deferred) => {
                    deferred = postdating(&classified, policy, stack.read_at);
                }
                Err(e) => {
                    deferred = postdating(&classified, policy, stack.read_at);
                    tracing::warn!(
                        error = format!("{e:#}"),
                        deferred = deferred.len(),
                        "re-reading the stack failed; events that may postdate the cached list will be redelivered"
                    );
                }
            }
        }
        log_outcomes(&classified, &deferred);
        let (findings, drift_ids) = findings(&classified);
        let Some(body) = build_dispatch(self.stack.stack_name(), DriftSource::Event, &findings)
        else {
            return BatchResponse::failing(deferred);
        };
        match self.notifier.notify(&body).await {
            Ok(()) => BatchResponse::failing(deferred),
            Err(e) => {
                self.dispatch_failed(&e, drift_ids.len());
                BatchResponse::failing(drift_ids.into_iter().chain(deferred))
            }
        }
    }

    /// Logs a failed dispatch; a refusal only configuration can fix also counts in the
    /// `ConfigurationError` metric, which the stack alarms on. The drift is kept either way (SQS
    /// redelivers it, then its DLQ holds it for a redrive once the configuration is fixed).
    fn dispatch_failed(&self, e: &DispatchError, redelivered: usize) {
        match configuration_error(e) {
            Some(cause) => {
                self.metrics.emit(&configuration_error_metric(
                    self.stack.stack_name(),
                    &cause,
                    Utc::now(),
                ));
                tracing::error!(
                    configuration_error = %cause,
                    remedy = cause.remedy(),
                    error = %e,
                    redelivered,
                    "dispatch refused: a configuration error; the drift is kept for redelivery until it is fixed"
                );
            }
            None => tracing::error!(
                error = %e,
                redelivered,
                "dispatch failed; the drift is kept for redelivery"
            ),
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
                if let Err(e) = self.notifier.notify(&body).await {
                    self.dispatch_failed(&e, 0);
                    return Err(HandlerError::Sweep(e.into()));
                }
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

fn log_outcomes(classified: &[Classified], deferred: &[String]) {
    for c in classified {
        match &c.outcome {
            Ok((event, Classification::Ignored(reason))) if deferred.contains(&c.message_id) => {
                tracing::info!(
                    message_id = %c.message_id,
                    event_id = %event.detail.event_id,
                    event_time = %event.detail.event_time,
                    call = %event.detail.event_name,
                    %reason,
                    "event may postdate the cached resource list, which cannot be re-read yet; redelivered"
                )
            }
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

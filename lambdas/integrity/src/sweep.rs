//! The scheduled sweep: CloudFormation drift detection polled to completion within a bound, plus
//! a code check per Lambda function (CloudFormation cannot see code drift) against the hash the
//! deployed template records ([`ssm_core::integrity::template`]).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_cloudformation::Client as CloudFormation;
use aws_sdk_cloudformation::types::{StackDriftDetectionStatus, StackResourceDriftStatus};
use aws_sdk_lambda::Client as Lambda;
use ssm_core::integrity::{
    CodeCheck, DriftStatus, Finding, StackResource, recorded_code_sha256, sweep_findings,
};

use crate::stack::Stack;

/// The sweep's AWS clients and bounds.
#[derive(Debug)]
pub struct Sweeper {
    cfn: CloudFormation,
    lambda: Lambda,
    /// Upper bound on waiting for `DetectStackDrift`.
    pub drift_timeout: Duration,
    pub poll_interval: Duration,
}

/// What a sweep found, and whether drift detection finished in time.
#[derive(Debug)]
pub struct SweepReport {
    pub findings: Vec<Finding>,
    pub drift_detection_complete: bool,
    pub functions_checked: usize,
}

impl Sweeper {
    pub fn new(cfn: CloudFormation, lambda: Lambda, drift_timeout: Duration) -> Sweeper {
        Sweeper {
            cfn,
            lambda,
            drift_timeout,
            poll_interval: Duration::from_secs(2),
        }
    }

    #[tracing::instrument(skip_all, fields(stack = %stack_name))]
    pub async fn sweep(&self, stack_name: &str, stack: &Stack) -> anyhow::Result<SweepReport> {
        let (drifts, complete) = match self.detect_drift(stack_name).await {
            Ok(Some(rows)) => (rows, true),
            Ok(None) => (Vec::new(), false),
            Err(e) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "drift detection failed; checking code only"
                );
                (Vec::new(), false)
            }
        };
        let code = self.check_code(stack_name, stack).await?;
        let functions_checked = code.len();
        let findings = sweep_findings(&drifts, &code);
        Ok(SweepReport {
            findings,
            drift_detection_complete: complete,
            functions_checked,
        })
    }

    /// Runs `DetectStackDrift` and returns the MODIFIED and DELETED rows, or `None` when
    /// detection did not finish within the bound (results of an older run are never used).
    async fn detect_drift(
        &self,
        stack_name: &str,
    ) -> anyhow::Result<Option<Vec<(StackResource, DriftStatus)>>> {
        let started = self
            .cfn
            .detect_stack_drift()
            .stack_name(stack_name)
            .send()
            .await
            .context("DetectStackDrift")?;
        let id = started
            .stack_drift_detection_id()
            .context("DetectStackDrift returned no id")?
            .to_owned();
        let deadline = Instant::now() + self.drift_timeout;
        loop {
            let status = self
                .cfn
                .describe_stack_drift_detection_status()
                .stack_drift_detection_id(&id)
                .send()
                .await
                .context("DescribeStackDriftDetectionStatus")?;
            match status.detection_status() {
                Some(StackDriftDetectionStatus::DetectionComplete) => break,
                Some(StackDriftDetectionStatus::DetectionFailed) => {
                    // Partial: some resources could not be checked; the rest are still reported.
                    tracing::warn!(
                        reason = status.detection_status_reason().unwrap_or(""),
                        "drift detection failed in part"
                    );
                    break;
                }
                Some(StackDriftDetectionStatus::DetectionInProgress) | None => {}
                Some(other) => bail!("unexpected drift detection status {other:?}"),
            }
            if Instant::now() + self.poll_interval > deadline {
                tracing::warn!(detection = %id, timeout_s = self.drift_timeout.as_secs(), "drift detection still running; giving up this sweep");
                return Ok(None);
            }
            tokio::time::sleep(self.poll_interval).await;
        }
        let pages = self
            .cfn
            .describe_stack_resource_drifts()
            .stack_name(stack_name)
            .stack_resource_drift_status_filters(StackResourceDriftStatus::Modified)
            .stack_resource_drift_status_filters(StackResourceDriftStatus::Deleted)
            .into_paginator()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .context("DescribeStackResourceDrifts")?;
        let rows = pages
            .iter()
            .flat_map(|p| p.stack_resource_drifts())
            .map(|d| {
                let resource = StackResource {
                    logical_id: d.logical_resource_id().unwrap_or_default().to_owned(),
                    physical_id: d.physical_resource_id().unwrap_or_default().to_owned(),
                    resource_type: d.resource_type().unwrap_or_default().to_owned(),
                };
                let status =
                    DriftStatus::parse(d.stack_resource_drift_status().map_or("", |s| s.as_str()));
                (resource, status)
            })
            .collect();
        Ok(Some(rows))
    }

    /// One [`CodeCheck`] per function of the stack: its live `CodeSha256` beside the hash its
    /// deployed template records (never the asset object as it stands now).
    async fn check_code(&self, stack_name: &str, stack: &Stack) -> anyhow::Result<Vec<CodeCheck>> {
        let template = self
            .cfn
            .get_template()
            .stack_name(stack_name)
            .send()
            .await
            .context("GetTemplate")?;
        let body = template.template_body().unwrap_or_default();
        // CDK synthesizes JSON; anything else records nothing, so every function is escalated.
        let recorded = serde_json::from_str(body)
            .map(|t| recorded_code_sha256(&t))
            .unwrap_or_default();
        let mut checks = Vec::new();
        for resource in stack
            .rows
            .iter()
            .filter(|r| r.resource_type == "AWS::Lambda::Function")
        {
            let logical_id = &resource.logical_id;
            let deployed = match self
                .lambda
                .get_function_configuration()
                .function_name(&resource.physical_id)
                .send()
                .await
            {
                Ok(c) => c.code_sha256().unwrap_or_default().to_owned(),
                Err(e) => {
                    // A deleted function is reported by drift detection; nothing to compare here.
                    tracing::warn!(%logical_id, error = %aws_sdk_lambda::error::DisplayErrorContext(&e), "GetFunctionConfiguration failed");
                    continue;
                }
            };
            let expected = recorded.get(logical_id).cloned().flatten();
            match &expected {
                None => {
                    tracing::warn!(%logical_id, %deployed, "the template records no code hash for this function")
                }
                Some(expected) if *expected != deployed => {
                    tracing::warn!(%logical_id, %expected, %deployed, "function code differs from the recorded hash")
                }
                Some(_) => {}
            }
            checks.push(CodeCheck {
                resource: resource.clone(),
                expected_sha256: expected,
                deployed_sha256: deployed,
            });
        }
        Ok(checks)
    }
}

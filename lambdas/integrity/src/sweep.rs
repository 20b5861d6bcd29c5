//! The scheduled sweep: CloudFormation drift detection polled to completion within a bound, plus
//! a code check per Lambda function (CloudFormation cannot see code drift).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_cloudformation::Client as CloudFormation;
use aws_sdk_cloudformation::types::{StackDriftDetectionStatus, StackResourceDriftStatus};
use aws_sdk_lambda::Client as Lambda;
use aws_sdk_s3::Client as S3;
use base64::Engine;
use sha2::{Digest, Sha256};
use ssm_core::integrity::{
    CodeCheck, CodeLocation, DriftStatus, Finding, StackResource, TemplateContext,
    lambda_code_locations, sweep_findings,
};
use tokio::sync::Mutex;

use crate::stack::Stack;

/// The sweep's AWS clients and bounds.
#[derive(Debug)]
pub struct Sweeper {
    cfn: CloudFormation,
    lambda: Lambda,
    s3: S3,
    /// Upper bound on waiting for `DetectStackDrift`.
    pub drift_timeout: Duration,
    pub poll_interval: Duration,
    /// SHA-256 (base64) of code objects by (bucket, key, version, ETag): CDK asset keys are
    /// content-addressed, so a warm Lambda hashes each zip once.
    hashes: Mutex<BTreeMap<CodeObject, String>>,
}

/// An S3 object version as GetObject identifies it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CodeObject {
    bucket: String,
    key: String,
    version: Option<String>,
    etag: String,
}

/// What a sweep found, and whether drift detection finished in time.
#[derive(Debug)]
pub struct SweepReport {
    pub findings: Vec<Finding>,
    pub drift_detection_complete: bool,
    pub functions_checked: usize,
}

impl Sweeper {
    pub fn new(cfn: CloudFormation, lambda: Lambda, s3: S3, drift_timeout: Duration) -> Sweeper {
        Sweeper {
            cfn,
            lambda,
            s3,
            drift_timeout,
            poll_interval: Duration::from_secs(2),
            hashes: Mutex::default(),
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

    /// One [`CodeCheck`] per function whose template code is an S3 object we can hash.
    async fn check_code(&self, stack_name: &str, stack: &Stack) -> anyhow::Result<Vec<CodeCheck>> {
        let template = self
            .cfn
            .get_template()
            .stack_name(stack_name)
            .send()
            .await
            .context("GetTemplate")?;
        let body = template.template_body().unwrap_or_default();
        let Ok(template) = serde_json::from_str::<serde_json::Value>(body) else {
            tracing::warn!("template is not JSON (CDK synthesizes JSON); skipping the code check");
            return Ok(Vec::new());
        };
        let Some(ctx) = TemplateContext::from_stack_id(&stack.stack_id, stack.parameters.clone())
        else {
            bail!("stack id {:?} is not a stack ARN", stack.stack_id);
        };
        let mut checks = Vec::new();
        for (logical_id, location) in lambda_code_locations(&template, &ctx) {
            let Some(resource) = stack.rows.iter().find(|r| r.logical_id == logical_id) else {
                tracing::warn!(%logical_id, "function in the template but not in the stack");
                continue;
            };
            let CodeLocation::S3 {
                bucket,
                key,
                version,
            } = location
            else {
                tracing::info!(%logical_id, ?location, "code not comparable with CodeSha256; skipped");
                continue;
            };
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
            let expected = self
                .object_sha256(&bucket, &key, version.as_deref())
                .await
                .with_context(|| format!("hashing s3://{bucket}/{key}"))?;
            if expected != deployed {
                tracing::warn!(%logical_id, %expected, %deployed, "function code differs from the template's");
            }
            checks.push(CodeCheck {
                resource: resource.clone(),
                expected_sha256: expected,
                deployed_sha256: deployed,
            });
        }
        Ok(checks)
    }

    /// SHA-256 of an S3 object, base64 (Lambda's `CodeSha256` encoding), streamed.
    async fn object_sha256(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> anyhow::Result<String> {
        let mut object = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version.map(str::to_owned))
            .send()
            .await?;
        let cache_key = object
            .e_tag()
            .filter(|e| !e.is_empty())
            .map(|etag| CodeObject {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                version: version.map(str::to_owned),
                etag: etag.to_owned(),
            });
        if let Some(k) = &cache_key
            && let Some(hash) = self.hashes.lock().await.get(k)
        {
            return Ok(hash.clone());
        }
        let mut hasher = Sha256::new();
        while let Some(chunk) = object.body.try_next().await? {
            hasher.update(&chunk);
        }
        let hash = base64::engine::general_purpose::STANDARD.encode(hasher.finalize());
        if let Some(k) = cache_key {
            self.hashes.lock().await.insert(k, hash.clone());
        }
        Ok(hash)
    }
}

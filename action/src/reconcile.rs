//! Lambda code drift, which CloudFormation cannot see: a function's `CodeSha256` compared with
//! the SHA-256 of the asset object the stack deploys, and the code restored from that object.

use ssm_core::deploy::assembly::{self, FileAsset, Placeholders};
use ssm_core::deploy::report::DriftedProperty;

use crate::assets::code_sha256;
use crate::clients::RoleClients;

/// Where a function's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeSource {
    pub logical_id: String,
    pub bucket: String,
    pub key: String,
    /// The publishing role that can read the object.
    pub read_role: Option<String>,
}

/// Pairs the template's Lambda functions with the asset destinations holding their code.
pub fn code_sources(
    template: &serde_json::Value,
    assets: &[FileAsset],
    placeholders: &Placeholders,
) -> Vec<CodeSource> {
    assembly::lambda_code_keys(template)
        .into_iter()
        .filter_map(|(logical_id, key)| {
            let key = placeholders.fill(&key);
            let dest = assets
                .iter()
                .flat_map(|a| a.destinations.iter())
                .find(|d| placeholders.fill(&d.key) == key)?;
            Some(CodeSource {
                logical_id,
                bucket: placeholders.fill(&dest.bucket),
                key,
                read_role: dest
                    .assume_role_arn
                    .as_deref()
                    .map(|r| placeholders.fill(r)),
            })
        })
        .collect()
}

/// Checks each function's code and restores what differs. Lambda calls use the run's own
/// credentials (the deploy role `cdk bootstrap` creates cannot update functions).
pub async fn restore_lambda_code(
    stack_name: &str,
    sources: &[CodeSource],
    cfn: &aws_sdk_cloudformation::Client,
    roles: &RoleClients,
) -> anyhow::Result<Vec<DriftedProperty>> {
    let mut reverted = Vec::new();
    let lambda = roles.for_role(None).await.lambda;
    for src in sources {
        let resource = cfn
            .describe_stack_resource()
            .stack_name(stack_name)
            .logical_resource_id(&src.logical_id)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "DescribeStackResource {}: {}",
                    src.logical_id,
                    crate::aws_error(&e)
                )
            })?;
        let Some(function) = resource
            .stack_resource_detail()
            .and_then(|d| d.physical_resource_id())
            .map(str::to_owned)
        else {
            tracing::warn!(logical_id = %src.logical_id, "function not created yet; nothing to compare");
            continue;
        };
        let live = lambda
            .get_function()
            .function_name(&function)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GetFunction {function}: {}", crate::aws_error(&e)))?
            .configuration()
            .and_then(|c| c.code_sha256())
            .unwrap_or_default()
            .to_owned();
        let s3 = roles.for_role(src.read_role.as_deref()).await.s3;
        let object = s3
            .get_object()
            .bucket(&src.bucket)
            .key(&src.key)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "reading s3://{}/{}: {}",
                    src.bucket,
                    src.key,
                    crate::aws_error(&e)
                )
            })?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading s3://{}/{}: {e}", src.bucket, src.key))?
            .into_bytes();
        let expected = code_sha256(&bytes);
        if live == expected {
            tracing::info!(%function, code_sha256 = %live, "function code matches the asset");
            continue;
        }
        tracing::warn!(%function, expected = %expected, actual = %live, "function code drifted; restoring it from the asset");
        let updated = lambda
            .update_function_code()
            .function_name(&function)
            .s3_bucket(&src.bucket)
            .s3_key(&src.key)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("UpdateFunctionCode {function}: {}", crate::aws_error(&e))
            })?;
        let now = updated.code_sha256().unwrap_or_default();
        if now != expected {
            anyhow::bail!(
                "UpdateFunctionCode {function} left CodeSha256 {now}, expected {expected}"
            );
        }
        reverted.push(DriftedProperty {
            logical_id: src.logical_id.clone(),
            resource_type: "AWS::Lambda::Function".into(),
            property: "Code (CodeSha256)".into(),
            expected,
            actual: live,
        });
    }
    Ok(reverted)
}

//! Lambda code drift, which CloudFormation cannot see: a function's `CodeSha256` compared with
//! the SHA-256 of the code the commit being deployed builds (the cloud assembly's asset), and
//! exactly those bytes restored.
//!
//! The asset object in the bucket is never trusted: whoever can write to the bucket could have
//! replaced it since it was published, and restoring "from the object" would install their code.

use aws_sdk_lambda::primitives::Blob;
use ssm_core::deploy::assembly::{self, FileAsset, Placeholders};
use ssm_core::deploy::report::DriftedProperty;

use crate::assets::{Packaged, code_sha256};

/// Lambda's limit for a zip sent inline (`ZipFile`); larger code goes through the bucket.
const MAX_INLINE_ZIP: usize = 50 * 1024 * 1024;

/// Where a function's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeSource {
    pub logical_id: String,
    /// The asset (in the local cloud assembly) holding the function's code.
    pub asset_id: String,
    /// Where publishing put that asset (used only for code over [`MAX_INLINE_ZIP`]).
    pub bucket: String,
    pub key: String,
}

/// Pairs the template's Lambda functions with the assets holding their code.
pub fn code_sources(
    template: &serde_json::Value,
    assets: &[FileAsset],
    placeholders: &Placeholders,
) -> Vec<CodeSource> {
    assembly::lambda_code_keys(template)
        .into_iter()
        .filter_map(|(logical_id, key)| {
            let key = placeholders.fill(&key);
            let (asset, dest) = assets.iter().find_map(|a| {
                let d = a
                    .destinations
                    .iter()
                    .find(|d| placeholders.fill(&d.key) == key)?;
                Some((a, d))
            })?;
            Some(CodeSource {
                logical_id,
                asset_id: asset.id.clone(),
                bucket: placeholders.fill(&dest.bucket),
                key,
            })
        })
        .collect()
}

/// Checks each function's code against the local asset and restores what differs. Lambda calls
/// use the run's own credentials (the deploy role `cdk bootstrap` creates cannot update
/// functions).
///
/// The code is restored with `ZipFile`, the local bytes themselves: an object in the bucket
/// could be overwritten between a re-publish and `UpdateFunctionCode`. Code over Lambda's inline
/// limit goes by the object this run published (and verified), and the `CodeSha256` Lambda
/// reports afterwards is checked against the local bytes either way.
pub async fn restore_lambda_code(
    stack_name: &str,
    sources: &[CodeSource],
    packaged: &Packaged,
    cfn: &aws_sdk_cloudformation::Client,
    lambda: &aws_sdk_lambda::Client,
) -> anyhow::Result<Vec<DriftedProperty>> {
    let mut reverted = Vec::new();
    for src in sources {
        let code = packaged.get(&src.asset_id)?;
        let expected = code_sha256(code);
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
        if live == expected {
            tracing::info!(%function, code_sha256 = %live, "function code matches the commit's asset");
            continue;
        }
        tracing::warn!(%function, %expected, actual = %live, "function code drifted; restoring the commit's asset");
        let update = lambda.update_function_code().function_name(&function);
        let update = if code.len() <= MAX_INLINE_ZIP {
            update.zip_file(Blob::new(code.to_vec()))
        } else {
            update.s3_bucket(&src.bucket).s3_key(&src.key)
        };
        let updated = update.send().await.map_err(|e| {
            anyhow::anyhow!("UpdateFunctionCode {function}: {}", crate::aws_error(&e))
        })?;
        let now = updated.code_sha256().unwrap_or_default();
        if now != expected {
            anyhow::bail!(
                "UpdateFunctionCode {function} left CodeSha256 {now}, expected {expected} (the commit's asset {})",
                src.asset_id
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

//! What the deployed template records as each Lambda function's code, for the sweep's code check.
//!
//! CloudFormation drift detection cannot see code: a function whose code was replaced out of band
//! still has the template's `Code`. The sweep therefore compares each function's `CodeSha256` with
//! the hash the template records for it: CDK hashes the zip it publishes at synth time (SHA-256,
//! base64, exactly how Lambda computes `CodeSha256`) and writes it as the function's
//! `Metadata."ssm:CodeSha256"` (cdk/lib/lambda-assets.ts).
//!
//! The expectation never comes from the asset object as it stands: a role that can overwrite an
//! object in the assets bucket would otherwise choose what the sweep expects (and what a repair
//! restores). The deployed template changes only by a deploy of `main`. A function whose template
//! records no hash is a finding too (`code:unrecorded`), never skipped.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::deploy::assembly::resources_of_type;

/// The function metadata key holding the expected `CodeSha256`.
pub const CODE_SHA256_METADATA: &str = "ssm:CodeSha256";

/// Every `AWS::Lambda::Function` of a JSON template, by logical id, with the `CodeSha256` its
/// metadata records (`None` when absent or not base64 of 32 bytes).
pub fn recorded_code_sha256(template: &Value) -> BTreeMap<String, Option<String>> {
    resources_of_type(template, "AWS::Lambda::Function")
        .map(|(logical_id, resource)| {
            let recorded = resource
                .get("Metadata")
                .and_then(|m| m.get(CODE_SHA256_METADATA))
                .and_then(Value::as_str)
                .filter(|hash| is_sha256_base64(hash))
                .map(str::to_owned);
            (logical_id.clone(), recorded)
        })
        .collect()
}

fn is_sha256_base64(text: &str) -> bool {
    STANDARD.decode(text).is_ok_and(|bytes| bytes.len() == 32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HASH: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

    #[test]
    fn each_function_with_its_recorded_hash() {
        let template = json!({"Resources": {
            "CryptoFunction": {"Type": "AWS::Lambda::Function",
                "Metadata": {"ssm:CodeSha256": HASH, "aws:asset:path": "asset.x.zip"},
                "Properties": {"Code": {"S3Bucket": "b", "S3Key": "k.zip"}}},
            "Unrecorded": {"Type": "AWS::Lambda::Function", "Properties": {"Code": {"ZipFile": "x"}}},
            "NotAHash": {"Type": "AWS::Lambda::Function", "Metadata": {"ssm:CodeSha256": "c2hvcnQ="}},
            "NotAString": {"Type": "AWS::Lambda::Function", "Metadata": {"ssm:CodeSha256": 7}},
            "Keyring": {"Type": "AWS::SecretsManager::Secret", "Metadata": {"ssm:CodeSha256": HASH}}
        }});
        let recorded = recorded_code_sha256(&template);
        assert_eq!(
            recorded,
            BTreeMap::from([
                ("CryptoFunction".to_owned(), Some(HASH.to_owned())),
                ("NotAHash".to_owned(), None),
                ("NotAString".to_owned(), None),
                ("Unrecorded".to_owned(), None),
            ])
        );
        assert!(recorded_code_sha256(&json!([])).is_empty());
    }
}

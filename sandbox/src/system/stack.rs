//! What the deployed stack says: its outputs, its template, and what the template's references
//! point at.

use std::collections::BTreeMap;

use anyhow::{Context, anyhow};
use aws_config::SdkConfig;
use serde_json::Value;

use super::aws_error;

/// The stack's outputs.
pub async fn stack_outputs(
    aws: &SdkConfig,
    stack: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let cfn = aws_sdk_cloudformation::Client::new(aws);
    let d = cfn
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| anyhow!("DescribeStacks {stack}: {}", aws_error(&e)))?;
    Ok(d.stacks()
        .first()
        .map(|s| {
            s.outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
                .collect()
        })
        .unwrap_or_default())
}

pub(super) async fn deployed_template(aws: &SdkConfig, stack: &str) -> anyhow::Result<Value> {
    let cfn = aws_sdk_cloudformation::Client::new(aws);
    let body = cfn
        .get_template()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| anyhow!("GetTemplate {stack}: {}", aws_error(&e)))?
        .template_body
        .unwrap_or_default();
    serde_json::from_str(&body).context("the deployed template is not JSON")
}

/// Every `Ref` and `Fn::GetAtt` target in `v`.
pub(super) fn refs(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("Ref") {
                out.push(r.clone());
            }
            if let Some(Value::Array(a)) = m.get("Fn::GetAtt")
                && let Some(Value::String(r)) = a.first()
            {
                out.push(r.clone());
            }
            for v in m.values() {
                out.extend(refs(v));
            }
        }
        Value::Array(a) => a.iter().for_each(|v| out.extend(refs(v))),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refs_finds_ref_and_getatt_targets() {
        let v = json!({"Fn::Join": ["", ["integrations/", {"Ref": "Integ"}]],
                       "Uri": {"Fn::GetAtt": ["CryptoFn", "Arn"]}});
        let mut r = refs(&v);
        r.sort();
        assert_eq!(r, ["CryptoFn", "Integ"]);
    }
}

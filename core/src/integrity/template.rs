//! Where the deployed template says each Lambda function's code is, for the sweep's code check.
//!
//! CloudFormation drift detection cannot see code: a function whose zip was replaced out of band
//! still has the template's `Code.S3Bucket`/`S3Key`. The sweep therefore hashes the S3 object the
//! template references (SHA-256, base64, exactly how Lambda computes `CodeSha256`) and compares it
//! with the function's `CodeSha256`. The asset hash in a CDK key (`<hash>.zip`) is a fingerprint of
//! the asset's *source*, not of the zip bytes, so it cannot be compared with `CodeSha256`.
//!
//! CDK writes the bucket as `{"Fn::Sub": "cdk-…-assets-${AWS::AccountId}-${AWS::Region}"}`; older
//! templates use parameters with `Fn::Join`/`Fn::Select`/`Fn::Split`. This module resolves those
//! intrinsics with the pseudo parameters and the stack's parameter values; anything else
//! (`Fn::GetAtt`, `Fn::ImportValue`, …) is reported as unresolvable, never guessed.

use std::collections::BTreeMap;

use serde_json::Value;

use super::arn::Arn;

/// Values the intrinsics may reference.
#[derive(Debug, Clone, Default)]
pub struct TemplateContext {
    pub partition: String,
    pub account: String,
    pub region: String,
    pub stack_name: String,
    pub stack_id: String,
    pub url_suffix: String,
    /// Stack parameters (resolved values for SSM parameter types).
    pub parameters: BTreeMap<String, String>,
}

impl TemplateContext {
    /// The context of a stack from its ARN (`arn:aws:cloudformation:region:account:stack/name/id`).
    pub fn from_stack_id(
        stack_id: &str,
        parameters: BTreeMap<String, String>,
    ) -> Option<TemplateContext> {
        let arn = Arn::parse(stack_id).ok()?;
        let name = arn
            .resource
            .strip_prefix("stack/")?
            .split('/')
            .next()?
            .to_owned();
        let url_suffix = if arn.partition == "aws-cn" {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        Some(TemplateContext {
            partition: arn.partition,
            account: arn.account,
            region: arn.region,
            stack_name: name,
            stack_id: stack_id.to_owned(),
            url_suffix: url_suffix.to_owned(),
            parameters,
        })
    }

    fn reference(&self, name: &str) -> Option<String> {
        Some(match name {
            "AWS::AccountId" => self.account.clone(),
            "AWS::Region" => self.region.clone(),
            "AWS::Partition" => self.partition.clone(),
            "AWS::StackName" => self.stack_name.clone(),
            "AWS::StackId" => self.stack_id.clone(),
            "AWS::URLSuffix" => self.url_suffix.clone(),
            other => return self.parameters.get(other).cloned(),
        })
    }
}

/// The code a template gives a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeLocation {
    S3 {
        bucket: String,
        key: String,
        version: Option<String>,
    },
    /// `ZipFile`: CloudFormation zips it itself; we cannot reproduce its bytes.
    Inline,
    /// A container image (`ImageUri`); its digest is not a `CodeSha256` of a zip.
    Image,
    Unresolvable {
        reason: String,
    },
}

/// Every `AWS::Lambda::Function` of a JSON template, by logical id.
pub fn lambda_code_locations(
    template: &Value,
    ctx: &TemplateContext,
) -> BTreeMap<String, CodeLocation> {
    let mut out = BTreeMap::new();
    let Some(resources) = template.get("Resources").and_then(Value::as_object) else {
        return out;
    };
    for (logical_id, resource) in resources {
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::Lambda::Function") {
            continue;
        }
        let code = resource.pointer("/Properties/Code");
        out.insert(logical_id.clone(), code_location(code, ctx));
    }
    out
}

fn code_location(code: Option<&Value>, ctx: &TemplateContext) -> CodeLocation {
    let Some(code) = code else {
        return CodeLocation::Unresolvable {
            reason: "no Code property".into(),
        };
    };
    if code.get("ZipFile").is_some() {
        return CodeLocation::Inline;
    }
    if code.get("ImageUri").is_some() {
        return CodeLocation::Image;
    }
    let field = |name: &str| {
        code.get(name)
            .map(|v| resolve(v, ctx).ok_or_else(|| format!("cannot resolve {name}")))
    };
    match (field("S3Bucket"), field("S3Key"), field("S3ObjectVersion")) {
        (Some(Ok(bucket)), Some(Ok(key)), version) => match version.transpose() {
            Ok(version) => CodeLocation::S3 {
                bucket,
                key,
                version,
            },
            Err(reason) => CodeLocation::Unresolvable { reason },
        },
        (Some(Err(reason)), _, _) | (_, Some(Err(reason)), _) => {
            CodeLocation::Unresolvable { reason }
        }
        _ => CodeLocation::Unresolvable {
            reason: "Code has neither S3Bucket/S3Key, ZipFile nor ImageUri".into(),
        },
    }
}

/// Resolves a string-valued template expression, or `None` when it needs more than we know.
pub fn resolve(value: &Value, ctx: &TemplateContext) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(map) if map.len() == 1 => {
            let (function, arg) = map.iter().next()?;
            match function.as_str() {
                "Ref" => ctx.reference(arg.as_str()?),
                "Fn::Sub" => match arg {
                    Value::String(s) => substitute(s, &BTreeMap::new(), ctx),
                    Value::Array(a) if a.len() == 2 => {
                        let vars = a[1]
                            .as_object()?
                            .iter()
                            .map(|(k, v)| Some((k.clone(), resolve(v, ctx)?)))
                            .collect::<Option<BTreeMap<_, _>>>()?;
                        substitute(a[0].as_str()?, &vars, ctx)
                    }
                    _ => None,
                },
                "Fn::Join" => {
                    let [delimiter, parts] = arg.as_array()?.as_slice() else {
                        return None;
                    };
                    let parts = resolve_list(parts, ctx)?;
                    Some(parts.join(delimiter.as_str()?))
                }
                "Fn::Select" => {
                    let [index, list] = arg.as_array()?.as_slice() else {
                        return None;
                    };
                    let index: usize = resolve(index, ctx)?.parse().ok()?;
                    resolve_list(list, ctx)?.into_iter().nth(index)
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn resolve_list(value: &Value, ctx: &TemplateContext) -> Option<Vec<String>> {
    match value {
        Value::Array(items) => items.iter().map(|v| resolve(v, ctx)).collect(),
        Value::Object(map) if map.len() == 1 => {
            let [delimiter, source] = map.get("Fn::Split")?.as_array()?.as_slice() else {
                return None;
            };
            let source = resolve(source, ctx)?;
            Some(
                source
                    .split(delimiter.as_str()?)
                    .map(str::to_owned)
                    .collect(),
            )
        }
        _ => None,
    }
}

/// `Fn::Sub` string form: `${Name}` from `vars` or references, `${!Literal}` kept literally.
/// `${Res.Attr}` (a `GetAtt`) is unresolvable.
fn substitute(
    template: &str,
    vars: &BTreeMap<String, String>,
    ctx: &TemplateContext,
) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}')?;
        let name = &after[..end];
        if let Some(literal) = name.strip_prefix('!') {
            out.push_str("${");
            out.push_str(literal);
            out.push('}');
        } else {
            let value = vars.get(name).cloned().or_else(|| ctx.reference(name))?;
            out.push_str(&value);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ctx() -> TemplateContext {
        TemplateContext::from_stack_id(
            "arn:aws:cloudformation:eu-west-1:111122223333:stack/Ssm/0a1b2c3d-0000-1111-2222-333344445555",
            BTreeMap::from([("AssetKey".to_owned(), "v1||abc.zip".to_owned())]),
        )
        .unwrap()
    }

    #[test]
    fn context_from_stack_arn() {
        let c = ctx();
        assert_eq!(
            (c.account.as_str(), c.region.as_str(), c.stack_name.as_str()),
            ("111122223333", "eu-west-1", "Ssm")
        );
        assert!(TemplateContext::from_stack_id("Ssm", BTreeMap::new()).is_none());
    }

    #[test]
    fn cdk_bootstrap_v2_code_location() {
        let template = json!({"Resources": {
            "CryptoFn": {"Type": "AWS::Lambda::Function", "Properties": {"Code": {
                "S3Bucket": {"Fn::Sub": "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}"},
                "S3Key": "4f1c0e7a9b.zip"}}},
            "Inline": {"Type": "AWS::Lambda::Function", "Properties": {"Code": {"ZipFile": "exports.h=1"}}},
            "Image": {"Type": "AWS::Lambda::Function", "Properties": {"Code": {"ImageUri": "x"}}},
            "Imported": {"Type": "AWS::Lambda::Function", "Properties": {"Code": {
                "S3Bucket": {"Fn::ImportValue": "Bucket"}, "S3Key": "k.zip"}}},
            "Queue": {"Type": "AWS::SQS::Queue"}
        }});
        let locations = lambda_code_locations(&template, &ctx());
        assert_eq!(locations.len(), 4);
        assert_eq!(
            locations["CryptoFn"],
            CodeLocation::S3 {
                bucket: "cdk-hnb659fds-assets-111122223333-eu-west-1".into(),
                key: "4f1c0e7a9b.zip".into(),
                version: None
            }
        );
        assert_eq!(locations["Inline"], CodeLocation::Inline);
        assert_eq!(locations["Image"], CodeLocation::Image);
        assert!(
            matches!(&locations["Imported"], CodeLocation::Unresolvable { reason } if reason.contains("S3Bucket"))
        );
    }

    #[test]
    fn legacy_parameter_join_select_split() {
        let key = json!({"Fn::Join": ["", [
            {"Fn::Select": [0, {"Fn::Split": ["||", {"Ref": "AssetKey"}]}]},
            {"Fn::Select": [1, {"Fn::Split": ["||", {"Ref": "AssetKey"}]}]}]]});
        assert_eq!(resolve(&key, &ctx()).as_deref(), Some("v1abc.zip"));
        assert_eq!(resolve(&json!({"Ref": "Missing"}), &ctx()), None);
    }

    #[test]
    fn sub_with_variables_literals_and_getatt() {
        let c = ctx();
        let sub = json!({"Fn::Sub": ["${Pfx}-${AWS::Partition}-${!Keep}", {"Pfx": {"Ref": "AWS::StackName"}}]});
        assert_eq!(resolve(&sub, &c).as_deref(), Some("Ssm-aws-${Keep}"));
        assert_eq!(resolve(&json!({"Fn::Sub": "${Bucket.Arn}"}), &c), None);
        assert_eq!(resolve(&json!({"Fn::Sub": "${unterminated"}), &c), None);
    }
}

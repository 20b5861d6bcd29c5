//! Undeclared additions: changes CloudFormation's drift detection cannot see, because the
//! template declares nothing to compare them with — a resource policy on a secret, a statement in
//! a function's resource policy, a Function URL. `REVERT_DRIFT` leaves them in place.
//!
//! Pure: the Action reads the live state and the stack's physical ids, asks here what the template
//! declares and what to do, and does it. A secret's resource policy is put back (or deleted when
//! the template declares none); permission statements and Function URLs are not removed (a wrong
//! guess there cuts off API Gateway or EventBridge), they are named as unrevertable drift and the
//! run fails.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::assembly::resources_of_type;

/// A live change CloudFormation cannot revert, named so that a person does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnrevertableDrift {
    pub stack: String,
    pub logical_id: String,
    pub resource_type: String,
    /// What was added: `Lambda permission`, `Function URL`, `secret resource policy`.
    pub kind: String,
    /// The addition itself (statement id and principal, URL, ...).
    pub detail: String,
}

impl UnrevertableDrift {
    /// The `::error` annotation: title and message.
    pub fn annotation(&self) -> (String, String) {
        (
            format!(
                "unrevertable drift: {}/{} ({})",
                self.stack, self.logical_id, self.kind
            ),
            format!(
                "{} {} on {}/{} is not in the template, so CloudFormation cannot revert it: {}. Remove it by hand and find who added it (CloudTrail).",
                self.resource_type, self.kind, self.stack, self.logical_id, self.detail
            ),
        )
    }
}

/// What the stack's template declares about one secret's resource policy.
#[derive(Debug, Clone, PartialEq)]
pub enum DeclaredPolicy {
    /// No `AWS::SecretsManager::ResourcePolicy` names the secret: any policy is an addition.
    None,
    /// The declared policy document, every intrinsic function resolved.
    Document(Value),
    /// Declared, but with a value this resolver does not know; CloudFormation's own drift
    /// detection covers a declared `AWS::SecretsManager::ResourcePolicy`.
    Unresolved,
}

/// What to do about a secret's live resource policy.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyAction {
    Keep,
    /// `DeleteResourcePolicy`: the template declares none.
    Delete,
    /// `PutResourcePolicy` with this document.
    Put(Value),
}

/// Names, ARNs and pseudo parameters the template's intrinsic functions refer to.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    pub account: String,
    pub region: String,
    pub partition: String,
    pub stack_name: String,
    /// Logical id → (resource type, physical id).
    pub resources: BTreeMap<String, (String, String)>,
}

impl Resolver {
    fn reference(&self, name: &str) -> Option<String> {
        match name {
            "AWS::AccountId" => Some(self.account.clone()),
            "AWS::Region" => Some(self.region.clone()),
            "AWS::Partition" => Some(self.partition.clone()),
            "AWS::StackName" => Some(self.stack_name.clone()),
            "AWS::URLSuffix" => Some(if self.partition == "aws-cn" {
                "amazonaws.com.cn".into()
            } else {
                "amazonaws.com".into()
            }),
            id => self.resources.get(id).map(|(_, physical)| physical.clone()),
        }
    }

    /// `Fn::GetAtt [id, Arn]` for the resources whose ARN follows from their physical id.
    fn arn(&self, id: &str) -> Option<String> {
        let (ty, physical) = self.resources.get(id)?;
        let (p, r, a) = (&self.partition, &self.region, &self.account);
        match ty.as_str() {
            "AWS::IAM::Role" => Some(format!("arn:{p}:iam::{a}:role/{physical}")),
            "AWS::Lambda::Function" => Some(format!("arn:{p}:lambda:{r}:{a}:function:{physical}")),
            // Their physical ids are ARNs already.
            "AWS::SecretsManager::Secret" | "AWS::SNS::Topic" | "AWS::KMS::Key"
                if physical.starts_with("arn:") =>
            {
                Some(physical.clone())
            }
            _ => None,
        }
    }

    /// The value with every intrinsic function resolved; `None` when one is not known here.
    pub fn resolve(&self, v: &Value) -> Option<Value> {
        match v {
            Value::Array(items) => items.iter().map(|i| self.resolve(i)).collect(),
            Value::Object(map) if map.len() == 1 => {
                let (k, arg) = map.iter().next()?;
                match k.as_str() {
                    "Ref" => self.reference(arg.as_str()?).map(Value::String),
                    "Fn::GetAtt" => {
                        let (id, attr) = match arg {
                            Value::Array(a) if a.len() == 2 => (a[0].as_str()?, a[1].as_str()?),
                            Value::String(s) => s.split_once('.')?,
                            _ => return None,
                        };
                        (attr == "Arn").then(|| self.arn(id))?.map(Value::String)
                    }
                    "Fn::Join" => {
                        let a = arg.as_array()?;
                        let sep = a.first()?.as_str()?;
                        let parts = self.resolve(a.get(1)?)?;
                        let parts: Option<Vec<&str>> =
                            parts.as_array()?.iter().map(Value::as_str).collect();
                        Some(Value::String(parts?.join(sep)))
                    }
                    "Fn::Sub" => self.sub(arg.as_str()?).map(Value::String),
                    k if k.starts_with("Fn::") => None,
                    _ => {
                        let inner = self.resolve(arg)?;
                        Some(Value::Object([(k.clone(), inner)].into_iter().collect()))
                    }
                }
            }
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| Some((k.clone(), self.resolve(v)?)))
                .collect::<Option<serde_json::Map<_, _>>>()
                .map(Value::Object),
            other => Some(other.clone()),
        }
    }

    /// `Fn::Sub` in its string form: `${Name}` and `${Id.Arn}`.
    fn sub(&self, s: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}')? + start;
            let name = &rest[start + 2..end];
            let value = match name.strip_prefix('!') {
                Some(literal) => format!("${{{literal}}}"),
                None => match name.split_once('.') {
                    Some((id, "Arn")) => self.arn(id)?,
                    Some(_) => return None,
                    None => self.reference(name)?,
                },
            };
            out.push_str(&value);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }
}

/// The logical id a `Ref` or `Fn::GetAtt` names.
fn referenced_id(v: &Value) -> Option<&str> {
    if let Some(r) = v.get("Ref") {
        return r.as_str();
    }
    match v.get("Fn::GetAtt")? {
        Value::Array(a) => a.first()?.as_str(),
        Value::String(s) => s.split('.').next(),
        _ => None,
    }
}

/// Logical ids of the template's resources of type `ty`.
pub fn logical_ids_of(template: &Value, ty: &str) -> Vec<String> {
    resources_of_type(template, ty)
        .map(|(id, _)| id.clone())
        .collect()
}

/// For each secret of the template, what it declares about the secret's resource policy.
pub fn declared_secret_policies(
    template: &Value,
    resolver: &Resolver,
) -> BTreeMap<String, DeclaredPolicy> {
    let mut out: BTreeMap<String, DeclaredPolicy> =
        logical_ids_of(template, "AWS::SecretsManager::Secret")
            .into_iter()
            .map(|id| (id, DeclaredPolicy::None))
            .collect();
    for (_, r) in resources_of_type(template, "AWS::SecretsManager::ResourcePolicy") {
        let Some(props) = r.get("Properties") else {
            continue;
        };
        let Some(secret) = props.get("SecretId").and_then(referenced_id) else {
            continue;
        };
        let Some(slot) = out.get_mut(secret) else {
            continue;
        };
        let document = props.get("ResourcePolicy").and_then(|p| {
            let resolved = resolver.resolve(p)?;
            // The property may be the document or its JSON text.
            match resolved {
                Value::String(s) => serde_json::from_str(&s).ok(),
                doc => Some(doc),
            }
        });
        *slot = document.map_or(DeclaredPolicy::Unresolved, DeclaredPolicy::Document);
    }
    out
}

/// A policy in a canonical form, so that equal policies compare equal whatever the service
/// returns: a lone statement or value as a one-element list, lists of strings sorted.
pub fn normalize_policy(v: &Value) -> Value {
    /// `key`: the object key `v` is the value of (`None` inside a list).
    fn norm(v: &Value, key: Option<&str>) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), norm(v, Some(k))))
                    .collect(),
            ),
            Value::Array(a) => {
                let mut items: Vec<Value> = a.iter().map(|i| norm(i, None)).collect();
                if items.iter().all(Value::is_string) {
                    items.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
                    items.dedup();
                } else if key == Some("Statement") {
                    items.sort_by_key(|i| i.to_string());
                }
                Value::Array(items)
            }
            Value::String(_)
                if !matches!(key, None | Some("Version" | "Sid" | "Effect" | "Id")) =>
            {
                Value::Array(vec![v.clone()])
            }
            other => other.clone(),
        }
    }
    let mut out = norm(v, None);
    if let Some(s) = out.get_mut("Statement")
        && s.is_object()
    {
        *s = Value::Array(vec![s.take()]);
    }
    out
}

/// What to do about a secret's live policy (`live`: the policy text, absent when none).
pub fn secret_policy_action(declared: &DeclaredPolicy, live: Option<&str>) -> PolicyAction {
    let live = live.filter(|s| !s.trim().is_empty());
    match declared {
        DeclaredPolicy::Unresolved => PolicyAction::Keep,
        DeclaredPolicy::None if live.is_some() => PolicyAction::Delete,
        DeclaredPolicy::None => PolicyAction::Keep,
        DeclaredPolicy::Document(doc) => {
            let same = live
                .and_then(|l| serde_json::from_str::<Value>(l).ok())
                .is_some_and(|l| normalize_policy(&l) == normalize_policy(doc));
            if same {
                PolicyAction::Keep
            } else {
                PolicyAction::Put(doc.clone())
            }
        }
    }
}

/// An `AWS::Lambda::Permission` of the stack, as far as it can be known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeclaredPermission {
    /// The stack's physical id of the resource: the statement id CloudFormation gave it (newer
    /// handlers: `function|sid`). Empty when the stack does not say (emulators).
    pub physical_id: String,
    /// The function's logical id, when `FunctionName` refers to one.
    pub function: Option<String>,
    pub principal: Option<String>,
    pub action: Option<String>,
    /// `None`: the permission has no `SourceArn`; `Some(None)`: one this resolver cannot resolve.
    pub source_arn: Option<Option<String>>,
}

/// The template's `AWS::Lambda::Permission` resources with their physical ids and resolved
/// properties.
pub fn declared_permissions(template: &Value, resolver: &Resolver) -> Vec<DeclaredPermission> {
    resources_of_type(template, "AWS::Lambda::Permission")
        .map(|(id, r)| {
            let prop = |name: &str| {
                r.pointer(&format!("/Properties/{name}"))
                    .and_then(|v| resolver.resolve(v))
                    .and_then(|v| v.as_str().map(str::to_owned))
            };
            DeclaredPermission {
                physical_id: resolver
                    .resources
                    .get(id)
                    .map(|(_, p)| p.clone())
                    .unwrap_or_default(),
                function: r
                    .pointer("/Properties/FunctionName")
                    .and_then(referenced_id)
                    .map(str::to_owned),
                principal: prop("Principal"),
                action: prop("Action"),
                source_arn: r.pointer("/Properties/SourceArn").map(|v| {
                    resolver
                        .resolve(v)
                        .and_then(|v| v.as_str().map(str::to_owned))
                }),
            }
        })
        .collect()
}

/// Whether a physical id of an `AWS::Lambda::Permission` is the statement `sid`.
fn permission_is(physical: &str, sid: &str) -> bool {
    !physical.is_empty()
        && (physical == sid || physical.rsplit_once('|').is_some_and(|(_, s)| s == sid))
}

/// A statement's principal as one string (`Service` or `AWS` value).
fn principal_of(statement: &Value) -> String {
    match statement.get("Principal") {
        Some(Value::String(p)) => p.clone(),
        Some(p) => p
            .as_object()
            .and_then(|m| m.values().next())
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_default(),
        None => String::new(),
    }
}

/// Whether a live statement grants what a declared permission does (an account id in the
/// template is its root principal live).
fn grants(statement: &Value, declared: &DeclaredPermission) -> bool {
    let principal = principal_of(statement);
    let principal_ok = declared.principal.as_deref().is_some_and(|p| {
        p == principal || (p.len() == 12 && principal.ends_with(&format!("::{p}:root")))
    });
    let action_ok = declared.action.as_deref() == statement.get("Action").and_then(Value::as_str);
    let live_source = statement
        .pointer("/Condition/ArnLike/AWS:SourceArn")
        .and_then(Value::as_str);
    let source_ok = match &declared.source_arn {
        Some(Some(d)) => live_source == Some(d.as_str()),
        Some(None) => live_source.is_some(),
        None => live_source.is_none(),
    };
    principal_ok && action_ok && source_ok
}

/// Statements of the live resource policy of the function `function` (logical id) that no
/// `AWS::Lambda::Permission` of the stack created: `(sid, principal, action)`. A statement is the
/// stack's when its id is a permission's physical id; where the stack gives no physical id (an
/// emulator), when it grants exactly what one of the function's declared permissions does (each
/// declared permission accounts for one statement).
pub fn undeclared_statements(
    live_policy: &str,
    function: &str,
    declared: &[DeclaredPermission],
) -> Vec<(String, String, String)> {
    let Ok(policy) = serde_json::from_str::<Value>(live_policy) else {
        return vec![("(unparsable policy)".into(), String::new(), String::new())];
    };
    let statements = match policy.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(s @ Value::Object(_)) => vec![s.clone()],
        _ => Vec::new(),
    };
    let mut unclaimed: Vec<&DeclaredPermission> = declared
        .iter()
        .filter(|d| d.physical_id.is_empty() && d.function.as_deref() == Some(function))
        .collect();
    statements
        .iter()
        .filter_map(|s| {
            let sid = s
                .get("Sid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if declared.iter().any(|d| permission_is(&d.physical_id, &sid)) {
                return None;
            }
            if let Some(i) = unclaimed.iter().position(|d| grants(s, d)) {
                unclaimed.remove(i);
                return None;
            }
            let action = match s.get("Action") {
                Some(Value::String(a)) => a.clone(),
                Some(a) => a.to_string(),
                None => String::new(),
            };
            Some((sid, principal_of(s), action))
        })
        .collect()
}

/// Logical ids of the functions the template gives a Function URL.
pub fn functions_with_declared_urls(template: &Value) -> BTreeSet<String> {
    resources_of_type(template, "AWS::Lambda::Url")
        .filter_map(|(_, r)| {
            r.pointer("/Properties/TargetFunctionArn")
                .and_then(referenced_id)
                .map(str::to_owned)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resolver() -> Resolver {
        Resolver {
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            partition: "aws".into(),
            stack_name: "Ssm".into(),
            resources: [
                (
                    "Crypto".to_owned(),
                    ("AWS::Lambda::Function".to_owned(), "ssm-crypto".to_owned()),
                ),
                (
                    "CryptoRole".to_owned(),
                    ("AWS::IAM::Role".to_owned(), "Ssm-CryptoRole-AB".to_owned()),
                ),
                (
                    "Keyring".to_owned(),
                    (
                        "AWS::SecretsManager::Secret".to_owned(),
                        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:Keyring-x1"
                            .to_owned(),
                    ),
                ),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn template(policy: Option<Value>) -> Value {
        let mut t = json!({"Resources": {
            "Keyring": {"Type": "AWS::SecretsManager::Secret"},
            "Other": {"Type": "AWS::SecretsManager::Secret"},
            "Crypto": {"Type": "AWS::Lambda::Function"},
            "Url": {"Type": "AWS::Lambda::Url", "Properties": {"TargetFunctionArn": {"Fn::GetAtt": ["Crypto", "Arn"]}}}
        }});
        if let Some(p) = policy {
            t["Resources"]["KeyringPolicy"] = json!({
                "Type": "AWS::SecretsManager::ResourcePolicy",
                "Properties": {"SecretId": {"Ref": "Keyring"}, "ResourcePolicy": p, "BlockPublicPolicy": true}
            });
        }
        t
    }

    fn declared_doc() -> Value {
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Deny",
                "NotPrincipal": {"AWS": [{"Fn::GetAtt": ["CryptoRole", "Arn"]}, {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}]},
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*"
            }]
        })
    }

    #[test]
    fn a_secret_without_a_declared_policy_gets_any_live_policy_deleted() {
        let declared = declared_secret_policies(&template(None), &resolver());
        assert_eq!(declared["Keyring"], DeclaredPolicy::None);
        let live = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999999999999:root"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;
        assert_eq!(
            secret_policy_action(&declared["Keyring"], Some(live)),
            PolicyAction::Delete
        );
        assert_eq!(
            secret_policy_action(&declared["Keyring"], None),
            PolicyAction::Keep
        );
        assert_eq!(
            secret_policy_action(&declared["Keyring"], Some("")),
            PolicyAction::Keep
        );
    }

    #[test]
    fn a_declared_policy_is_resolved_compared_semantically_and_put_back() {
        let declared = declared_secret_policies(&template(Some(declared_doc())), &resolver());
        let DeclaredPolicy::Document(doc) = &declared["Keyring"] else {
            panic!("{declared:?}")
        };
        assert_eq!(
            doc["Statement"][0]["NotPrincipal"]["AWS"],
            json!([
                "arn:aws:iam::123456789012:role/Ssm-CryptoRole-AB",
                "arn:aws:iam::123456789012:root"
            ])
        );
        assert_eq!(declared["Other"], DeclaredPolicy::None);
        // As Secrets Manager may return it: other order, lone values as lists, a lone statement.
        let same = r#"{"Statement":{"Resource":["*"],"Action":["secretsmanager:GetSecretValue"],"NotPrincipal":{"AWS":["arn:aws:iam::123456789012:root","arn:aws:iam::123456789012:role/Ssm-CryptoRole-AB"]},"Effect":"Deny"},"Version":"2012-10-17"}"#;
        assert_eq!(
            secret_policy_action(&declared["Keyring"], Some(same)),
            PolicyAction::Keep
        );
        let widened = same.replace("Deny", "Allow");
        assert_eq!(
            secret_policy_action(&declared["Keyring"], Some(&widened)),
            PolicyAction::Put(doc.clone())
        );
        assert_eq!(
            secret_policy_action(&declared["Keyring"], None),
            PolicyAction::Put(doc.clone())
        );
        // The policy as JSON text joined with intrinsics is a document too.
        let joined = json!({"Fn::Join": ["", [
            "{\"Statement\":[{\"Effect\":\"Deny\",\"NotPrincipal\":{\"AWS\":\"",
            {"Fn::GetAtt": ["CryptoRole", "Arn"]},
            "\"},\"Action\":\"*\",\"Resource\":\"*\"}]}"
        ]]});
        let as_text = declared_secret_policies(&template(Some(joined)), &resolver());
        assert_eq!(
            as_text["Keyring"],
            DeclaredPolicy::Document(json!({"Statement": [{
                "Effect": "Deny",
                "NotPrincipal": {"AWS": "arn:aws:iam::123456789012:role/Ssm-CryptoRole-AB"},
                "Action": "*",
                "Resource": "*"
            }]}))
        );
    }

    #[test]
    fn every_keyring_secret_of_named_keys_gets_its_own_declared_policy_checked() {
        // Issue 21: one keyring per key, each with its own declared policy (cdk/lib/keys.ts ids).
        let mut r = resolver();
        let payments_arn =
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:KeyringpaymentsSecretA-x2";
        r.resources.insert(
            "KeyringpaymentsSecretA".into(),
            ("AWS::SecretsManager::Secret".into(), payments_arn.into()),
        );
        let mut t = template(Some(declared_doc()));
        t["Resources"]["KeyringpaymentsSecretA"] = json!({"Type": "AWS::SecretsManager::Secret"});
        t["Resources"]["KeyringpaymentsPolicyB"] = json!({
            "Type": "AWS::SecretsManager::ResourcePolicy",
            "Properties": {"SecretId": {"Ref": "KeyringpaymentsSecretA"}, "ResourcePolicy": declared_doc(), "BlockPublicPolicy": true}
        });
        let declared = declared_secret_policies(&t, &r);
        let (DeclaredPolicy::Document(default), DeclaredPolicy::Document(payments)) =
            (&declared["Keyring"], &declared["KeyringpaymentsSecretA"])
        else {
            panic!("{declared:?}")
        };
        assert_eq!(default, payments);
        // A policy widened on the named key's secret is put back, as on the default's.
        let widened = json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]}).to_string();
        assert_eq!(
            secret_policy_action(&declared["KeyringpaymentsSecretA"], Some(&widened)),
            PolicyAction::Put(payments.clone())
        );
        // A named key's secret whose policy the template lost gets any live one deleted.
        t["Resources"]
            .as_object_mut()
            .unwrap()
            .remove("KeyringpaymentsPolicyB");
        assert_eq!(
            declared_secret_policies(&t, &r)["KeyringpaymentsSecretA"],
            DeclaredPolicy::None
        );
    }

    #[test]
    fn an_unknown_intrinsic_leaves_the_policy_to_cloudformation() {
        let doc = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": {"Fn::ImportValue": "x"}}}]});
        let declared = declared_secret_policies(&template(Some(doc)), &resolver());
        assert_eq!(declared["Keyring"], DeclaredPolicy::Unresolved);
        assert_eq!(
            secret_policy_action(&declared["Keyring"], Some("{}")),
            PolicyAction::Keep
        );
    }

    #[test]
    fn sub_handles_pseudo_parameters_arns_and_literals() {
        let r = resolver();
        assert_eq!(
            r.resolve(&json!({"Fn::Sub": "${Crypto.Arn}:${AWS::Region}/${!Literal}"})),
            Some(json!(
                "arn:aws:lambda:eu-west-1:123456789012:function:ssm-crypto:eu-west-1/${Literal}"
            ))
        );
        assert_eq!(r.resolve(&json!({"Fn::Sub": "${Nope}"})), None);
        assert_eq!(
            r.resolve(&json!({"Fn::GetAtt": ["Crypto", "Version"]})),
            None
        );
    }

    #[test]
    fn statements_not_created_by_the_stack_are_undeclared() {
        let policy = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Ssm-ApiInvoke-1AB", "Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"}, "Action": "lambda:InvokeFunction"},
            {"Sid": "Rotation-2CD", "Effect": "Allow", "Principal": {"Service": "secretsmanager.amazonaws.com"}, "Action": "lambda:InvokeFunction"},
            {"Sid": "backdoor", "Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunctionUrl"}
        ]})
        .to_string();
        let declared = [
            DeclaredPermission {
                physical_id: "Ssm-ApiInvoke-1AB".into(),
                ..Default::default()
            },
            DeclaredPermission {
                physical_id:
                    "arn:aws:lambda:eu-west-1:123456789012:function:ssm-crypto|Rotation-2CD".into(),
                ..Default::default()
            },
        ];
        assert_eq!(
            undeclared_statements(&policy, "Crypto", &declared),
            [(
                "backdoor".to_owned(),
                "*".to_owned(),
                "lambda:InvokeFunctionUrl".to_owned()
            )]
        );
        assert_eq!(undeclared_statements(&policy, "Crypto", &[]).len(), 3);
        assert_eq!(undeclared_statements("not json", "Crypto", &[]).len(), 1);
    }

    #[test]
    fn without_physical_ids_each_declared_permission_accounts_for_one_matching_statement() {
        let t = json!({"Resources": {
            "Crypto": {"Type": "AWS::Lambda::Function"},
            "Invoke": {"Type": "AWS::Lambda::Permission", "Properties": {
                "FunctionName": {"Fn::GetAtt": ["Crypto", "Arn"]},
                "Action": "lambda:InvokeFunction",
                "Principal": "events.amazonaws.com",
                "SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/x"}
            }}
        }});
        let declared = declared_permissions(&t, &resolver());
        assert_eq!(declared.len(), 1);
        assert_eq!(declared[0].function.as_deref(), Some("Crypto"));
        assert_eq!(
            declared[0].physical_id, "",
            "the emulator gave no physical id"
        );
        let statement = |sid: &str, source: &str| {
            json!({"Sid": sid, "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                   "Action": "lambda:InvokeFunction",
                   "Condition": {"ArnLike": {"AWS:SourceArn": source}}})
        };
        let ours = "arn:aws:events:eu-west-1:123456789012:rule/x";
        let one = json!({"Statement": [statement("uuid-1", ours)]}).to_string();
        assert!(undeclared_statements(&one, "Crypto", &declared).is_empty());
        assert_eq!(undeclared_statements(&one, "Other", &declared).len(), 1);
        let two = json!({"Statement": [statement("uuid-1", ours), statement("uuid-2", ours)]})
            .to_string();
        assert_eq!(
            undeclared_statements(&two, "Crypto", &declared).len(),
            1,
            "a copy is an addition"
        );
        let foreign = json!({"Statement": [statement("uuid-3", "arn:aws:events:eu-west-1:999999999999:rule/x")]})
            .to_string();
        assert_eq!(
            undeclared_statements(&foreign, "Crypto", &declared).len(),
            1
        );
    }

    #[test]
    fn declared_urls_are_found_by_their_target() {
        assert_eq!(
            functions_with_declared_urls(&template(None)),
            ["Crypto".to_owned()].into_iter().collect()
        );
    }

    #[test]
    fn the_annotation_names_stack_resource_and_addition() {
        let d = UnrevertableDrift {
            stack: "Ssm".into(),
            logical_id: "Crypto".into(),
            resource_type: "AWS::Lambda::Function".into(),
            kind: "Function URL".into(),
            detail: "https://x.lambda-url (auth NONE)".into(),
        };
        let (title, message) = d.annotation();
        assert_eq!(title, "unrevertable drift: Ssm/Crypto (Function URL)");
        assert!(
            message.contains("https://x.lambda-url (auth NONE)"),
            "{message}"
        );
    }
}

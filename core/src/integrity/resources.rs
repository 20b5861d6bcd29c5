//! The stack's own resources (from `ListStackResources`), indexed so a CloudTrail request naming a
//! resource by name or by ARN finds it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::arn::Arn;

/// The kinds of resource whose out-of-band changes we detect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ResourceKind {
    LambdaFunction,
    HttpApi,
    RestApi,
    Secret,
    EventRule,
    IamRole,
    IamManagedPolicy,
    IamUser,
}

impl ResourceKind {
    /// The kind of a CloudFormation resource type, when we watch it.
    pub fn from_cfn_type(resource_type: &str) -> Option<ResourceKind> {
        Some(match resource_type {
            "AWS::Lambda::Function" => ResourceKind::LambdaFunction,
            "AWS::ApiGatewayV2::Api" => ResourceKind::HttpApi,
            "AWS::ApiGateway::RestApi" => ResourceKind::RestApi,
            "AWS::SecretsManager::Secret" => ResourceKind::Secret,
            "AWS::Events::Rule" => ResourceKind::EventRule,
            "AWS::IAM::Role" => ResourceKind::IamRole,
            "AWS::IAM::ManagedPolicy" => ResourceKind::IamManagedPolicy,
            "AWS::IAM::User" => ResourceKind::IamUser,
            _ => return None,
        })
    }
}

/// One row of `ListStackResources`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct StackResource {
    pub logical_id: String,
    pub physical_id: String,
    pub resource_type: String,
}

/// A resource named by a request, normalised: `name` is what the stack's index is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResourceRef {
    pub kind: ResourceKind,
    pub name: String,
}

/// The stack's resources with the account and region they live in.
#[derive(Debug, Clone, Default)]
pub struct StackResources {
    /// The stack's account (from its ARN); events from other accounts are outside the stack.
    pub account: Option<String>,
    /// The stack's region; events from other regions are outside it (IAM is global).
    pub region: Option<String>,
    index: BTreeMap<(ResourceKind, String), StackResource>,
    len: usize,
}

impl StackResources {
    /// Indexes `resources`; rows of types we do not watch are counted but not indexed.
    pub fn new(
        account: Option<String>,
        region: Option<String>,
        resources: impl IntoIterator<Item = StackResource>,
    ) -> StackResources {
        let mut index = BTreeMap::new();
        let mut len = 0;
        for resource in resources {
            len += 1;
            let Some(kind) = ResourceKind::from_cfn_type(&resource.resource_type) else {
                continue;
            };
            if resource.physical_id.is_empty() {
                continue;
            }
            for key in index_keys(kind, &resource.physical_id) {
                index.insert((kind, key), resource.clone());
            }
        }
        StackResources {
            account,
            region,
            index,
            len,
        }
    }

    /// The stack resource a request refers to, if any.
    pub fn find(&self, reference: &ResourceRef) -> Option<&StackResource> {
        self.index.get(&(reference.kind, reference.name.clone()))
    }

    /// How many rows `ListStackResources` returned.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Keys a physical id is found by. Secrets' physical ids are ARNs ending in `-` and six random
/// characters; requests may name them by full ARN, partial ARN or name. Rules on a custom bus have
/// physical id `bus|name`.
fn index_keys(kind: ResourceKind, physical_id: &str) -> Vec<String> {
    match kind {
        ResourceKind::Secret => {
            let mut keys = vec![physical_id.to_owned()];
            if let Some(name) = Arn::parse(physical_id)
                .ok()
                .and_then(|a| secret_name_of_full_arn(&a))
            {
                keys.push(name);
            }
            keys
        }
        ResourceKind::EventRule => match physical_id.split_once('|') {
            Some((bus, name)) => vec![rule_key(Some(bus), name)],
            None => vec![rule_key(None, physical_id)],
        },
        _ => vec![physical_id.to_owned()],
    }
}

/// `arn:…:secret:name-AbCdEf` → `name`.
fn secret_name_of_full_arn(arn: &Arn) -> Option<String> {
    let with_suffix = arn.resource.strip_prefix("secret:")?;
    let (name, suffix) = with_suffix.rsplit_once('-')?;
    (suffix.len() == 6 && !name.is_empty()).then(|| name.to_owned())
}

/// The index key of an EventBridge rule: `bus/name`, the default bus spelled `default`.
pub(crate) fn rule_key(bus: Option<&str>, name: &str) -> String {
    let bus = bus
        .map(|b| match Arn::parse(b) {
            Ok(arn) => arn
                .resource
                .strip_prefix("event-bus/")
                .unwrap_or(&arn.resource)
                .to_owned(),
            Err(_) => b.to_owned(),
        })
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "default".to_owned());
    format!("{bus}/{name}")
}

/// The references a secret id (name, partial ARN or full ARN) may stand for, most exact first.
pub(crate) fn secret_refs(secret_id: &str) -> Vec<String> {
    let mut refs = vec![secret_id.to_owned()];
    if let Ok(arn) = Arn::parse(secret_id) {
        if let Some(name) = secret_name_of_full_arn(&arn) {
            refs.push(name);
        }
        if let Some(name) = arn.resource.strip_prefix("secret:") {
            refs.push(name.to_owned());
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(logical: &str, physical: &str, ty: &str) -> StackResource {
        StackResource {
            logical_id: logical.into(),
            physical_id: physical.into(),
            resource_type: ty.into(),
        }
    }

    #[test]
    fn finds_secrets_by_full_arn_and_by_name() {
        let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:ssm/keyring-AbCdEf";
        let stack = StackResources::new(
            None,
            None,
            [row("Keyring", arn, "AWS::SecretsManager::Secret")],
        );
        let found = |secret_id: &str| {
            secret_refs(secret_id)
                .into_iter()
                .find_map(|name| {
                    stack.find(&ResourceRef {
                        kind: ResourceKind::Secret,
                        name,
                    })
                })
                .map(|r| r.logical_id.clone())
        };
        for id in [
            arn,
            "ssm/keyring",
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:ssm/keyring",
        ] {
            assert_eq!(found(id).as_deref(), Some("Keyring"), "{id}");
        }
        for id in [
            "ssm/other",
            "ssm/keyring-AbCdEf-x",
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:ssm/other-AbCdEf",
        ] {
            assert_eq!(found(id), None, "{id}");
        }
    }

    #[test]
    fn rules_on_default_and_custom_buses() {
        let stack = StackResources::new(
            None,
            None,
            [
                row("Sweep", "ssm-sweep", "AWS::Events::Rule"),
                row("Audit", "audit-bus|ssm-audit", "AWS::Events::Rule"),
            ],
        );
        let find = |bus, name| {
            stack.find(&ResourceRef {
                kind: ResourceKind::EventRule,
                name: rule_key(bus, name),
            })
        };
        assert_eq!(find(None, "ssm-sweep").unwrap().logical_id, "Sweep");
        assert_eq!(
            find(Some("default"), "ssm-sweep").unwrap().logical_id,
            "Sweep"
        );
        assert_eq!(
            find(Some("audit-bus"), "ssm-audit").unwrap().logical_id,
            "Audit"
        );
        assert_eq!(
            find(
                Some("arn:aws:events:us-east-1:111122223333:event-bus/audit-bus"),
                "ssm-audit"
            )
            .unwrap()
            .logical_id,
            "Audit"
        );
        assert!(
            find(None, "ssm-audit").is_none(),
            "same name on another bus is another rule"
        );
    }

    #[test]
    fn unwatched_types_are_counted_not_indexed() {
        let stack = StackResources::new(
            None,
            None,
            [
                row("Queue", "https://sqs/q", "AWS::SQS::Queue"),
                row("Fn", "ssm-crypto", "AWS::Lambda::Function"),
            ],
        );
        assert_eq!(stack.len(), 2);
        assert!(
            stack
                .find(&ResourceRef {
                    kind: ResourceKind::LambdaFunction,
                    name: "ssm-crypto".into()
                })
                .is_some()
        );
        assert!(
            stack
                .find(&ResourceRef {
                    kind: ResourceKind::IamRole,
                    name: "ssm-crypto".into()
                })
                .is_none()
        );
    }
}

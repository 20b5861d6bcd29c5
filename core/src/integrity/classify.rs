//! Classification: is a CloudTrail call an out-of-band change to one of the stack's resources?
//!
//! Pure: [`classify_in`] takes the event, the stack's resources, the ignore policy and the
//! stack's recent operations, and returns a [`Classification`]; the Lambda logs ignored events
//! with their reason and dispatches drift.
//!
//! What is expected, and nothing else:
//! - calls by the configured roles (the deploy role, the rotation function);
//! - calls CloudFormation makes with a configured execution role while *our* stack has an
//!   operation in progress ([`StackOperations`]): CloudFormation acting for another stack (same
//!   shared execution role, another time; or another role) on our resources is drift;
//! - the keyring operator's path (README, "Keyring operations"): `RotateSecret` on a secret that
//!   changes no rotation setting (the rotation function makes and checks the new version), and
//!   value writes (`PutSecretValue`, `UpdateSecretVersionStage`) to a secret by a configured
//!   keyring operator role. Its other calls (a resource policy, say) are drift.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::arn::{Arn, ArnError, RoleArn};
use super::cloudtrail::{Caller, CloudTrailEvent};
use super::operations::StackOperations;
use super::resources::{
    ResourceKind, ResourceRef, StackResource, StackResources, rule_key, secret_refs,
};

/// The service that makes changes we must never report: the GitOps loop's own deploys.
pub const CLOUDFORMATION_SERVICE: &str = "cloudformation.amazonaws.com";

/// Whose calls are expected, by exact role ARN: roles whose every call is (deploy, secret
/// rotation), CloudFormation execution roles (only for our stack's operations), and keyring
/// operator roles (only for keyring value writes).
#[derive(Debug, Clone, Default)]
pub struct IgnorePolicy {
    roles: Vec<RoleArn>,
    cloudformation_roles: Vec<RoleArn>,
    keyring_operators: Vec<RoleArn>,
}

/// Parses role ARNs; a value that is not an IAM role ARN is an error, so a typo in the
/// configuration fails at start instead of silently ignoring nothing (or everything).
fn parse_roles<I, S>(arns: I) -> Result<Vec<RoleArn>, ArnError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    arns.into_iter()
        .map(|a| a.as_ref().trim().to_owned())
        .filter(|a| !a.is_empty())
        .map(|a| RoleArn::parse(&a))
        .collect()
}

impl IgnorePolicy {
    /// Roles whose every call is expected.
    pub fn from_role_arns<I, S>(arns: I) -> Result<IgnorePolicy, ArnError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(IgnorePolicy {
            roles: parse_roles(arns)?,
            ..IgnorePolicy::default()
        })
    }

    /// The CloudFormation execution roles our deploys pass: their calls (`invokedBy`
    /// CloudFormation) are expected only while our stack has an operation in progress.
    pub fn with_cloudformation_roles(
        self,
        arns: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<IgnorePolicy, ArnError> {
        let cloudformation_roles = parse_roles(arns)?;
        Ok(IgnorePolicy {
            cloudformation_roles,
            ..self
        })
    }

    /// Keyring operator roles: their `PutSecretValue` and `UpdateSecretVersionStage` on the
    /// stack's secrets are expected, nothing else.
    pub fn with_keyring_operators(
        self,
        arns: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<IgnorePolicy, ArnError> {
        Ok(IgnorePolicy {
            keyring_operators: parse_roles(arns)?,
            ..self
        })
    }

    pub fn roles(&self) -> &[RoleArn] {
        &self.roles
    }

    pub fn cloudformation_roles(&self) -> &[RoleArn] {
        &self.cloudformation_roles
    }

    pub fn keyring_operators(&self) -> &[RoleArn] {
        &self.keyring_operators
    }

    fn ignores(&self, caller: &Caller) -> Option<&RoleArn> {
        let role = caller.role()?;
        self.roles.iter().find(|r| *r == role)
    }

    fn cloudformation_role(&self, caller: &Caller) -> Option<&RoleArn> {
        let role = caller.role()?;
        self.cloudformation_roles.iter().find(|r| *r == role)
    }

    fn keyring_operator(&self, caller: &Caller) -> Option<&RoleArn> {
        let role = caller.role()?;
        self.keyring_operators.iter().find(|r| *r == role)
    }
}

/// The keyring value writes a keyring operator role may make.
pub const KEYRING_OPERATOR_CALLS: [&str; 2] = ["PutSecretValue", "UpdateSecretVersionStage"];

/// The outcome for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classification {
    Drift(Drift),
    Ignored(Ignored),
}

/// An out-of-band change to resources of the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub event_id: String,
    pub event_time: DateTime<Utc>,
    pub event_source: String,
    pub event_name: String,
    pub caller: Caller,
    /// The stack's resources the call touched (at least one).
    pub resources: Vec<StackResource>,
}

/// Why an event is not drift. `Display` is the log line's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    /// The call failed (`errorCode`), so nothing changed.
    Failed {
        error_code: String,
    },
    ReadOnly,
    /// CloudFormation made the call with a configured execution role while our stack had an
    /// operation in progress: our own deploy.
    InvokedByCloudFormation,
    /// The caller is a configured role (deploy, rotation).
    IgnoredRole {
        role: String,
    },
    /// A configured keyring operator role wrote a keyring value.
    KeyringOperator {
        role: String,
    },
    /// `RotateSecret` that changes no rotation setting: the rotation function makes the version.
    RotationRequested,
    /// A service whose resources we do not watch.
    UnwatchedService {
        event_source: String,
    },
    /// The call was made in another account or region than the stack's.
    OtherAccountOrRegion {
        account: String,
        region: String,
    },
    /// The request names no resource we can match (e.g. a List call without `readOnly`).
    NoResourceNamed,
    /// The named resources are not the stack's.
    OutsideStack {
        names: Vec<String>,
    },
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ignored::Failed { error_code } => write!(f, "call failed with {error_code}"),
            Ignored::ReadOnly => f.write_str("read-only call"),
            Ignored::InvokedByCloudFormation => write!(
                f,
                "invoked by {CLOUDFORMATION_SERVICE} with our execution role during our stack's operation"
            ),
            Ignored::IgnoredRole { role } => write!(f, "caller is the configured role {role}"),
            Ignored::KeyringOperator { role } => {
                write!(
                    f,
                    "keyring value written by the keyring operator role {role}"
                )
            }
            Ignored::RotationRequested => {
                f.write_str("RotateSecret without new settings: the rotation function checks it")
            }
            Ignored::UnwatchedService { event_source } => {
                write!(f, "service {event_source} is not watched")
            }
            Ignored::OtherAccountOrRegion { account, region } => {
                write!(
                    f,
                    "call in account {account} region {region}, not the stack's"
                )
            }
            Ignored::NoResourceNamed => f.write_str("request names no watched resource"),
            Ignored::OutsideStack { names } => {
                write!(f, "resources outside the stack: {}", names.join(", "))
            }
        }
    }
}

/// [`classify_in`] knowing no operation of the stack: every CloudFormation call on its resources
/// is drift.
pub fn classify(
    event: &CloudTrailEvent,
    stack: &StackResources,
    policy: &IgnorePolicy,
) -> Classification {
    classify_in(event, stack, policy, &StackOperations::default())
}

/// Whether CloudFormation made the call (`userIdentity.invokedBy`): such a call needs the stack's
/// operations to classify ([`classify_in`]).
pub fn invoked_by_cloudformation(event: &CloudTrailEvent) -> bool {
    event.detail.user_identity.invoked_by.as_deref() == Some(CLOUDFORMATION_SERVICE)
}

/// Classifies one event. The checks run cheapest and most certain first; every `Ignored` carries
/// the reason that decided it.
pub fn classify_in(
    event: &CloudTrailEvent,
    stack: &StackResources,
    policy: &IgnorePolicy,
    operations: &StackOperations,
) -> Classification {
    let detail = &event.detail;
    if let Some(error_code) = &detail.error_code {
        return Classification::Ignored(Ignored::Failed {
            error_code: error_code.clone(),
        });
    }
    if event.is_read_only() {
        return Classification::Ignored(Ignored::ReadOnly);
    }
    let caller = event.caller();
    if invoked_by_cloudformation(event)
        && policy.cloudformation_role(&caller).is_some()
        && operations.covers(detail.event_time)
    {
        return Classification::Ignored(Ignored::InvokedByCloudFormation);
    }
    // CloudFormation's calls are excused by the rule above or not at all.
    if !invoked_by_cloudformation(event)
        && let Some(role) = policy.ignores(&caller)
    {
        return Classification::Ignored(Ignored::IgnoredRole {
            role: role.to_string(),
        });
    }
    let Some(named) = touched(&detail.event_source, detail.request_parameters.as_ref()) else {
        return Classification::Ignored(Ignored::UnwatchedService {
            event_source: detail.event_source.clone(),
        });
    };
    let account = detail
        .recipient_account_id
        .as_deref()
        .unwrap_or(&event.account);
    let global = detail.event_source == "iam.amazonaws.com";
    let other_account = stack.account.as_deref().is_some_and(|a| a != account);
    let other_region = !global
        && stack
            .region
            .as_deref()
            .is_some_and(|r| r != detail.aws_region);
    if other_account || other_region {
        return Classification::Ignored(Ignored::OtherAccountOrRegion {
            account: account.to_owned(),
            region: detail.aws_region.clone(),
        });
    }
    if named.is_empty() {
        return Classification::Ignored(Ignored::NoResourceNamed);
    }
    let mut resources: Vec<StackResource> = named
        .iter()
        .filter_map(|n| n.candidates.iter().find_map(|c| stack.find(c)))
        .cloned()
        .collect();
    resources.sort();
    resources.dedup();
    if resources.is_empty() {
        return Classification::Ignored(Ignored::OutsideStack {
            names: named.into_iter().map(|n| n.as_named).collect(),
        });
    }
    let only_secrets = resources
        .iter()
        .all(|r| r.resource_type == "AWS::SecretsManager::Secret");
    if only_secrets && detail.event_source == "secretsmanager.amazonaws.com" {
        if let Some(role) = policy.keyring_operator(&caller)
            && KEYRING_OPERATOR_CALLS.contains(&detail.event_name.as_str())
        {
            return Classification::Ignored(Ignored::KeyringOperator {
                role: role.to_string(),
            });
        }
        if detail.event_name == "RotateSecret"
            && changes_no_rotation_setting(detail.request_parameters.as_ref())
        {
            return Classification::Ignored(Ignored::RotationRequested);
        }
    }
    Classification::Drift(Drift {
        event_id: detail.event_id.clone(),
        event_time: detail.event_time,
        event_source: detail.event_source.clone(),
        event_name: detail.event_name.clone(),
        caller,
        resources,
    })
}

/// `RotateSecret` starts a rotation with the secret's configured function unless it names a
/// function or rules: only `secretId`, `clientRequestToken` and `rotateImmediately` may appear.
fn changes_no_rotation_setting(params: Option<&Value>) -> bool {
    params.and_then(Value::as_object).is_none_or(|params| {
        params.keys().all(|k| {
            matches!(
                k.as_str(),
                "secretId" | "clientRequestToken" | "rotateImmediately"
            )
        })
    })
}

/// A resource as the request named it, with the index keys it may match.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Named {
    as_named: String,
    candidates: Vec<ResourceRef>,
}

impl Named {
    fn one(kind: ResourceKind, as_named: &str, name: String) -> Named {
        Named {
            as_named: as_named.to_owned(),
            candidates: vec![ResourceRef { kind, name }],
        }
    }
}

/// The resources a request names, or `None` for a service we do not watch.
fn touched(event_source: &str, params: Option<&Value>) -> Option<Vec<Named>> {
    let empty = Value::Null;
    let params = params.unwrap_or(&empty);
    let str_of = |key: &str| {
        params
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let mut named = Vec::new();
    match event_source {
        "lambda.amazonaws.com" => {
            for key in ["functionName", "resource"] {
                if let Some(v) = str_of(key)
                    && let Some(name) = lambda_function_name(v)
                {
                    named.push(Named::one(ResourceKind::LambdaFunction, v, name));
                }
            }
        }
        "apigateway.amazonaws.com" => {
            if let Some(id) = str_of("apiId") {
                named.push(Named::one(ResourceKind::HttpApi, id, id.to_owned()));
            }
            if let Some(id) = str_of("restApiId") {
                named.push(Named::one(ResourceKind::RestApi, id, id.to_owned()));
            }
            for key in ["resource-arn", "resourceArn"] {
                if let Some(v) = str_of(key)
                    && let Some(n) = apigateway_arn(v)
                {
                    named.push(n);
                }
            }
        }
        "secretsmanager.amazonaws.com" => {
            for key in ["secretId", "name"] {
                if let Some(v) = str_of(key) {
                    let candidates = secret_refs(v)
                        .into_iter()
                        .map(|name| ResourceRef {
                            kind: ResourceKind::Secret,
                            name,
                        })
                        .collect();
                    named.push(Named {
                        as_named: v.to_owned(),
                        candidates,
                    });
                    break;
                }
            }
        }
        "events.amazonaws.com" => {
            let bus = str_of("eventBusName");
            if let Some(rule) = str_of("name").or_else(|| str_of("rule")) {
                named.push(Named::one(
                    ResourceKind::EventRule,
                    rule,
                    rule_key(bus, rule),
                ));
            }
            if let Some(arn) = str_of("resourceARN")
                && let Ok(parsed) = Arn::parse(arn)
                && let Some(rest) = parsed.resource.strip_prefix("rule/")
            {
                let (bus, name) = match rest.split_once('/') {
                    Some((bus, name)) => (Some(bus), name),
                    None => (None, rest),
                };
                named.push(Named::one(
                    ResourceKind::EventRule,
                    arn,
                    rule_key(bus, name),
                ));
            }
        }
        "iam.amazonaws.com" => {
            for (key, kind) in [
                ("roleName", ResourceKind::IamRole),
                ("policyArn", ResourceKind::IamManagedPolicy),
                ("userName", ResourceKind::IamUser),
            ] {
                if let Some(v) = str_of(key) {
                    named.push(Named::one(kind, v, v.to_owned()));
                }
            }
        }
        _ => return None,
    }
    Some(named)
}

/// The function name in any form Lambda accepts: `name`, `name:qualifier`,
/// `111122223333:function:name[:qualifier]` or the full ARN.
pub fn lambda_function_name(value: &str) -> Option<String> {
    let rest = if value.starts_with("arn:") {
        let arn = Arn::parse(value).ok()?;
        if arn.service != "lambda" {
            return None;
        }
        arn.resource.strip_prefix("function:")?.to_owned()
    } else if let Some((_, after)) = value.split_once(":function:") {
        after.to_owned()
    } else {
        value.to_owned()
    };
    let name = rest.split(':').next().unwrap_or_default();
    (!name.is_empty()).then(|| name.to_owned())
}

/// `arn:aws:apigateway:us-east-1::/apis/a1b2c3` (HTTP API) or `…::/restapis/x` (REST API).
fn apigateway_arn(value: &str) -> Option<Named> {
    let arn = Arn::parse(value).ok()?;
    let mut parts = arn.resource.trim_start_matches('/').split('/');
    let kind = match parts.next()? {
        "apis" => ResourceKind::HttpApi,
        "restapis" => ResourceKind::RestApi,
        _ => return None,
    };
    let id = parts.next().filter(|s| !s.is_empty())?;
    Some(Named::one(kind, value, id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_names_in_every_accepted_form() {
        for form in [
            "ssm-crypto",
            "ssm-crypto:live",
            "ssm-crypto:7",
            "111122223333:function:ssm-crypto",
            "111122223333:function:ssm-crypto:live",
            "arn:aws:lambda:us-east-1:111122223333:function:ssm-crypto",
            "arn:aws:lambda:us-east-1:111122223333:function:ssm-crypto:$LATEST",
        ] {
            assert_eq!(
                lambda_function_name(form).as_deref(),
                Some("ssm-crypto"),
                "{form}"
            );
        }
        assert_eq!(lambda_function_name("arn:aws:s3:::bucket"), None);
        assert_eq!(lambda_function_name(":x"), None);
    }

    #[test]
    fn apigateway_arns() {
        let n = apigateway_arn("arn:aws:apigateway:us-east-1::/apis/a1b2c3").unwrap();
        assert_eq!(
            n.candidates,
            vec![ResourceRef {
                kind: ResourceKind::HttpApi,
                name: "a1b2c3".into()
            }]
        );
        let n = apigateway_arn("arn:aws:apigateway:us-east-1::/restapis/r1/stages/prod").unwrap();
        assert_eq!(n.candidates[0].kind, ResourceKind::RestApi);
        assert!(apigateway_arn("arn:aws:apigateway:us-east-1::/domainnames/x").is_none());
    }

    #[test]
    fn unwatched_services_are_none() {
        assert!(touched("s3.amazonaws.com", None).is_none());
        assert_eq!(touched("lambda.amazonaws.com", None), Some(vec![]));
    }

    #[test]
    fn ignore_policy_rejects_non_role_arns() {
        assert!(IgnorePolicy::from_role_arns(["cdk"]).is_err());
        assert!(IgnorePolicy::from_role_arns(["arn:aws:iam::111122223333:user/x"]).is_err());
        let policy =
            IgnorePolicy::from_role_arns([" arn:aws:iam::111122223333:role/Deploy ", ""]).unwrap();
        assert_eq!(policy.roles().len(), 1);
        assert!(policy.clone().with_cloudformation_roles(["x"]).is_err());
        assert!(
            policy
                .with_keyring_operators(["arn:aws:iam::1:user/x"])
                .is_err()
        );
    }

    #[test]
    fn rotate_secret_is_expected_only_without_new_settings() {
        use serde_json::json;
        assert!(changes_no_rotation_setting(None));
        assert!(changes_no_rotation_setting(Some(&json!({"secretId": "k"}))));
        assert!(changes_no_rotation_setting(Some(
            &json!({"secretId": "k", "clientRequestToken": "t", "rotateImmediately": true})
        )));
        assert!(!changes_no_rotation_setting(Some(
            &json!({"secretId": "k", "rotationLambdaARN": "arn:aws:lambda:us-east-1:1:function:x"})
        )));
        assert!(!changes_no_rotation_setting(Some(
            &json!({"secretId": "k", "rotationRules": {"automaticallyAfterDays": 1}})
        )));
    }
}

//! Typed CloudTrail records as EventBridge delivers them ("AWS API Call via CloudTrail"), and the
//! caller identity converted at the edge into our own [`Caller`] enum.
//!
//! Only the fields classification needs are typed; `requestParameters` stays a JSON value because
//! its shape differs per API. Unknown identity types become [`Caller::Other`], never an error.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::arn::{Arn, RoleArn};

/// The EventBridge `detail-type` of CloudTrail management events.
pub const CLOUDTRAIL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";

/// Why an event could not be turned into a [`CloudTrailEvent`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("not JSON or missing required fields: {0}")]
    Malformed(String),
    #[error("detail-type {0:?} is not a CloudTrail API call")]
    NotCloudTrail(String),
}

/// An EventBridge event carrying a CloudTrail record.
#[derive(Debug, Clone, Deserialize)]
pub struct CloudTrailEvent {
    /// EventBridge event id.
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    pub account: String,
    pub region: String,
    pub detail: CloudTrailDetail,
}

/// The CloudTrail record (`detail`), typed where classification reads it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudTrailDetail {
    pub user_identity: UserIdentity,
    pub event_time: DateTime<Utc>,
    pub event_source: String,
    pub event_name: String,
    pub aws_region: String,
    #[serde(default, rename = "sourceIPAddress")]
    pub source_ip_address: Option<String>,
    #[serde(default)]
    pub request_parameters: Option<Value>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(rename = "eventID")]
    pub event_id: String,
    #[serde(default)]
    pub read_only: Option<bool>,
    #[serde(default)]
    pub recipient_account_id: Option<String>,
}

/// `userIdentity` as CloudTrail writes it; converted to [`Caller`] with [`UserIdentity::caller`].
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub principal_id: Option<String>,
    #[serde(default)]
    pub arn: Option<String>,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub user_name: Option<String>,
    /// Set when a service made the call on the principal's behalf (e.g. CloudFormation).
    #[serde(default)]
    pub invoked_by: Option<String>,
    #[serde(default)]
    pub session_context: Option<SessionContext>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionContext {
    #[serde(default)]
    pub session_issuer: Option<SessionIssuer>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionIssuer {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub arn: Option<String>,
}

/// Who made a call, in our own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A role session; `role` is the role (with its path when CloudTrail gave the session issuer).
    AssumedRole {
        role: RoleArn,
        session: Option<String>,
    },
    IamUser {
        arn: String,
    },
    Root {
        account: String,
    },
    /// `sts:GetFederationToken`; `issuer` is the IAM user (or root) that federated.
    FederatedUser {
        arn: String,
        issuer: Option<String>,
    },
    /// A service principal acting by itself, e.g. `lambda.amazonaws.com`.
    AwsService {
        service: String,
    },
    /// `AWSAccount`, `SAMLUser`, `WebIdentityUser`, `IdentityCenterUser`, `Unknown`, or an identity
    /// whose ARN did not parse: kept for the log and the payload, never a crash.
    Other {
        kind: String,
        principal: Option<String>,
    },
}

impl Caller {
    /// The role a session belongs to, for the ignore policy.
    pub fn role(&self) -> Option<&RoleArn> {
        match self {
            Caller::AssumedRole { role, .. } => Some(role),
            _ => None,
        }
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::AssumedRole {
                role,
                session: Some(s),
            } => write!(f, "{role} (session {s})"),
            Caller::AssumedRole {
                role,
                session: None,
            } => write!(f, "{role}"),
            Caller::IamUser { arn } => f.write_str(arn),
            Caller::Root { account } => write!(f, "root of {account}"),
            Caller::FederatedUser { arn, .. } => f.write_str(arn),
            Caller::AwsService { service } => write!(f, "service {service}"),
            Caller::Other {
                kind,
                principal: Some(p),
            } => write!(f, "{kind} {p}"),
            Caller::Other {
                kind,
                principal: None,
            } => f.write_str(kind),
        }
    }
}

impl UserIdentity {
    /// Converts the CloudTrail identity into a [`Caller`]. Total: every input gives a caller.
    pub fn caller(&self) -> Caller {
        let other = || Caller::Other {
            kind: self.kind.clone(),
            principal: self.arn.clone().or_else(|| self.principal_id.clone()),
        };
        match self.kind.as_str() {
            "AssumedRole" => {
                let issuer = self
                    .session_context
                    .as_ref()
                    .and_then(|c| c.session_issuer.as_ref())
                    .and_then(|i| i.arn.as_deref())
                    .and_then(|a| RoleArn::parse(a).ok());
                let session = self.arn.as_deref().and_then(|a| Arn::parse(a).ok());
                let from_session = session.as_ref().and_then(RoleArn::from_assumed_role);
                let session_name = session
                    .as_ref()
                    .and_then(|a| a.resource.strip_prefix("assumed-role/"))
                    .and_then(|r| r.split_once('/'))
                    .map(|(_, s)| s.to_owned());
                match issuer.or(from_session) {
                    Some(role) => Caller::AssumedRole {
                        role,
                        session: session_name,
                    },
                    None => other(),
                }
            }
            "IAMUser" => match &self.arn {
                Some(arn) => Caller::IamUser { arn: arn.clone() },
                None => other(),
            },
            "Root" => {
                let account = self.account_id.clone().or_else(|| {
                    self.arn
                        .as_deref()
                        .and_then(|a| Arn::parse(a).ok())
                        .map(|a| a.account)
                });
                match account {
                    Some(account) => Caller::Root { account },
                    None => other(),
                }
            }
            "FederatedUser" => match &self.arn {
                Some(arn) => Caller::FederatedUser {
                    arn: arn.clone(),
                    issuer: self
                        .session_context
                        .as_ref()
                        .and_then(|c| c.session_issuer.as_ref())
                        .and_then(|i| i.arn.clone()),
                },
                None => other(),
            },
            "AWSService" => match &self.invoked_by {
                Some(service) => Caller::AwsService {
                    service: service.clone(),
                },
                None => other(),
            },
            _ => other(),
        }
    }
}

impl CloudTrailEvent {
    /// Parses an EventBridge event (e.g. an SQS message body) carrying a CloudTrail record.
    pub fn from_json(body: &str) -> Result<Self, ParseError> {
        let event: CloudTrailEvent =
            serde_json::from_str(body).map_err(|e| ParseError::Malformed(e.to_string()))?;
        if event.detail_type != CLOUDTRAIL_DETAIL_TYPE {
            return Err(ParseError::NotCloudTrail(event.detail_type));
        }
        Ok(event)
    }

    /// Whether the call only reads: CloudTrail's `readOnly` when present, else the verb.
    pub fn is_read_only(&self) -> bool {
        match self.detail.read_only {
            Some(read_only) => read_only,
            None => {
                const READ_VERBS: [&str; 6] =
                    ["Get", "List", "Describe", "Head", "BatchGet", "Lookup"];
                READ_VERBS
                    .iter()
                    .any(|v| self.detail.event_name.starts_with(v))
            }
        }
    }

    /// The caller in our own terms.
    pub fn caller(&self) -> Caller {
        self.detail.user_identity.caller()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(json: &str) -> Caller {
        serde_json::from_str::<UserIdentity>(json).unwrap().caller()
    }

    #[test]
    fn assumed_role_prefers_session_issuer_with_path() {
        let caller = identity(
            r#"{"type":"AssumedRole","arn":"arn:aws:sts::111122223333:assumed-role/Deploy/gha-run-42",
                "sessionContext":{"sessionIssuer":{"type":"Role","arn":"arn:aws:iam::111122223333:role/ci/Deploy"}}}"#,
        );
        let Caller::AssumedRole { role, session } = caller else {
            panic!("not a role: {caller:?}")
        };
        assert_eq!(role.to_string(), "arn:aws:iam::111122223333:role/ci/Deploy");
        assert_eq!(session.as_deref(), Some("gha-run-42"));
    }

    #[test]
    fn assumed_role_without_issuer_maps_session_arn_to_role() {
        let caller = identity(
            r#"{"type":"AssumedRole","arn":"arn:aws:sts::111122223333:assumed-role/Admin/alice"}"#,
        );
        assert_eq!(
            caller.role().unwrap().to_string(),
            "arn:aws:iam::111122223333:role/Admin"
        );
    }

    #[test]
    fn every_identity_type_gives_a_caller() {
        assert_eq!(
            identity(
                r#"{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/bob","userName":"bob"}"#
            ),
            Caller::IamUser {
                arn: "arn:aws:iam::111122223333:user/bob".into()
            }
        );
        assert_eq!(
            identity(
                r#"{"type":"Root","arn":"arn:aws:iam::111122223333:root","accountId":"111122223333"}"#
            ),
            Caller::Root {
                account: "111122223333".into()
            }
        );
        assert!(matches!(
            identity(r#"{"type":"FederatedUser","arn":"arn:aws:sts::111122223333:federated-user/carol",
                "sessionContext":{"sessionIssuer":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/bob"}}}"#),
            Caller::FederatedUser { issuer: Some(i), .. } if i == "arn:aws:iam::111122223333:user/bob"
        ));
        assert_eq!(
            identity(r#"{"type":"AWSService","invokedBy":"lambda.amazonaws.com"}"#),
            Caller::AwsService {
                service: "lambda.amazonaws.com".into()
            }
        );
        assert!(matches!(
            identity(r#"{"type":"WebIdentityUser","principalId":"accounts.google.com:123"}"#),
            Caller::Other { kind, principal: Some(_) } if kind == "WebIdentityUser"
        ));
        // A garbled role ARN is reported, not a crash.
        assert!(matches!(
            identity(r#"{"type":"AssumedRole","arn":"nonsense"}"#),
            Caller::Other { .. }
        ));
    }

    #[test]
    fn rejects_other_detail_types_and_garbage() {
        assert!(matches!(
            CloudTrailEvent::from_json("{"),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(
            CloudTrailEvent::from_json(r#"{"id":"x"}"#),
            Err(ParseError::Malformed(_))
        ));
        let scheduled = r#"{"id":"1","detail-type":"Scheduled Event","source":"aws.events","account":"1",
            "region":"us-east-1","detail":{"userIdentity":{"type":"Root"},"eventTime":"2024-01-01T00:00:00Z",
            "eventSource":"x","eventName":"y","awsRegion":"us-east-1","eventID":"e"}}"#;
        assert_eq!(
            CloudTrailEvent::from_json(scheduled).unwrap_err(),
            ParseError::NotCloudTrail("Scheduled Event".into())
        );
    }
}

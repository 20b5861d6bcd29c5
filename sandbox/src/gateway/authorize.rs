//! How a request to an IAM route is authorized: its SigV4 signature, then the caller's identity
//! policies for `execute-api:Invoke` on the route's ARN, and the 403s API Gateway answers when
//! either refuses.

use chrono::{DateTime, Utc};
use http::StatusCode;
use ssm_core::iam::{self, Decision, PolicyDocument};
use ssm_core::sigv4::{Expected, HttpRequest, Presented, SigV4Error};

use super::IamCaller;
use super::dispatch::Gateway;
use super::response::Reply;

impl Gateway {
    /// API Gateway's IAM authorizer: the signature, then the caller's identity policies for
    /// `execute-api:Invoke` on the route's ARN (`path` is the path after the stage).
    pub(super) async fn authorize(
        &self,
        parts: &http::request::Parts,
        path: &str,
        body: &[u8],
        now: DateTime<Utc>,
        request_id: &str,
    ) -> Result<IamCaller, Reply> {
        let owned: Vec<(&str, String)> = parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let headers: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let request = HttpRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or_default(),
            headers: &headers,
            body,
        };
        let expected = Expected {
            region: &self.region,
            service: "execute-api",
            now,
            max_skew: chrono::Duration::minutes(15),
        };
        let presented = Presented::read(request, &expected).map_err(|e| auth_refusal(&e))?;
        let principal = match self.principals.principal(presented.access_key_id()).await {
            Ok(Some(principal)) => principal,
            Ok(None) => return Err(auth_refusal(&SigV4Error::UnknownCredentials)),
            Err(error) => {
                tracing::warn!(%request_id, error = %format!("{error:#}"), "could not read the caller from IAM");
                return Err(Reply::error(StatusCode::INTERNAL_SERVER_ERROR));
            }
        };
        presented
            .verify(&principal.secret, principal.session_token.as_deref())
            .map_err(|e| auth_refusal(&e))?;
        let resource = iam::execute_api_arn(
            &self.region,
            &self.account_id,
            &self.api_id,
            &self.stage,
            parts.method.as_str(),
            path,
        );
        let mut documents = Vec::with_capacity(principal.policies.len());
        for policy in &principal.policies {
            match PolicyDocument::parse(policy) {
                Ok(document) => documents.push(document),
                // IAM never holds such a document; refuse rather than guess.
                Err(error) => {
                    tracing::warn!(%request_id, %error, user = %principal.caller.user_arn, "unreadable identity policy: access denied");
                    return Err(access_denied(&principal.caller.user_arn, &resource, true));
                }
            }
        }
        let mut caller = principal.caller;
        caller.access_key = presented.access_key_id().to_owned();
        match iam::evaluate(&documents, iam::INVOKE_ACTION, &resource) {
            Decision::Allow => Ok(caller),
            Decision::ExplicitDeny => Err(access_denied(&caller.user_arn, &resource, true)),
            Decision::ImplicitDeny => Err(access_denied(&caller.user_arn, &resource, false)),
        }
    }
}

/// API Gateway's 403 for a request its IAM authorizer refuses.
///
/// What API Gateway answers, per the AWS Knowledge Center articles "How do I troubleshoot
/// signature mismatch errors when making SigV4 signed requests with IAM authentication to API
/// Gateway?" (repost.aws/knowledge-center/api-gateway-iam-sigv4-mismatch) and "...HTTP 403
/// errors from API Gateway", and the bodies quoted from live APIs in public issues (e.g.
/// mhart/aws4#33, postmanlabs/postman-app-support#1663, for execute-api):
/// - unsigned: `Missing Authentication Token` on REST APIs; an HTTP API, which answers an
///   unknown route 404 `Not Found` rather than with that text, answers `{"message":"Forbidden"}`;
/// - unknown access key: `The security token included in the request is invalid.`;
/// - wrong secret or signing: `The request signature we calculated does not match ...` followed
///   by the canonical request and string to sign API Gateway expected;
/// - stale: `Signature expired: {date} is now earlier than ...`;
/// - not allowed: `User: {arn} is not authorized to perform: execute-api:Invoke on resource: {arn}`
///   and why, as IAM words it.
///
/// Each carries `x-amzn-ErrorType`, as AWS services do.
fn auth_refusal(error: &SigV4Error) -> Reply {
    let message = match error {
        SigV4Error::Missing => "Forbidden".to_owned(),
        other => other.to_string(),
    };
    Reply::forbidden(message, error.error_type())
}

fn access_denied(user_arn: &str, resource: &str, explicit: bool) -> Reply {
    let why = if explicit {
        "with an explicit deny in an identity-based policy"
    } else {
        "because no identity-based policy allows the execute-api:Invoke action"
    };
    Reply::forbidden(
        format!(
            "User: {user_arn} is not authorized to perform: execute-api:Invoke on resource: {resource} {why}"
        ),
        "AccessDeniedException",
    )
}

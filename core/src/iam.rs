//! IAM identity-based policies evaluated for one action on one resource, as IAM evaluates the
//! identity policies of a principal in its own account: an explicit `Deny` wins, then any
//! `Allow`, else the request is implicitly denied.
//!
//! What a statement matches:
//! - `Action` / `NotAction`: `service:action` patterns, compared case-insensitively;
//! - `Resource` / `NotResource`: ARN patterns, compared case-sensitively;
//! - in both, `*` matches any run of characters (`/` and `:` included) and `?` exactly one.
//!
//! What is not evaluated, decided conservatively so the answer errs towards refusing:
//! - a statement with a `Condition` (no request context is modelled): an `Allow` with one never
//!   applies, a `Deny` with one always applies when its action and resource match;
//! - policy variables (`${aws:username}`, ...) in a version `2012-10-17` policy's resources: the
//!   statement is treated as conditional, as above (in a `2008-10-17` policy they are literal);
//! - resource policies, permission boundaries, session policies and SCPs are not inputs here.
//!
//! Also the ARNs of API Gateway's `execute-api:Invoke`, as the contract for per-key routes names
//! them.

use serde_json::Value;

/// The outcome of evaluating a principal's identity policies for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// A matching `Deny` statement.
    ExplicitDeny,
    /// No matching `Allow` (and no matching `Deny`).
    ImplicitDeny,
}

/// A policy document IAM would not have accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid IAM identity policy: {0}")]
pub struct PolicyError(String);

fn invalid(why: impl Into<String>) -> PolicyError {
    PolicyError(why.into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

/// `Action` (`negated: false`) or `NotAction` (`true`), likewise for resources.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Patterns {
    negated: bool,
    patterns: Vec<String>,
}

impl Patterns {
    fn matches(&self, text: &str, case_insensitive: bool) -> bool {
        let any = self
            .patterns
            .iter()
            .any(|pattern| wildcard_match(pattern, text, case_insensitive));
        any != self.negated
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    effect: Effect,
    actions: Patterns,
    resources: Patterns,
    /// Has a condition or a policy variable: not decidable here.
    conditional: bool,
}

/// A parsed identity policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    statements: Vec<Statement>,
}

impl PolicyDocument {
    /// Parses a policy as IAM stores it: `Statement` one object or an array of them.
    pub fn parse(json: &str) -> Result<Self, PolicyError> {
        let document: Value =
            serde_json::from_str(json).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let document = document
            .as_object()
            .ok_or_else(|| invalid("the document is not an object"))?;
        let version = match document.get("Version") {
            None => "2008-10-17",
            Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => v.as_str(),
            Some(other) => return Err(invalid(format!("unknown Version {other}"))),
        };
        let statements = match document.get("Statement") {
            Some(Value::Array(statements)) => statements.iter().collect(),
            Some(statement @ Value::Object(_)) => vec![statement],
            _ => return Err(invalid("Statement must be an object or an array")),
        };
        let statements = statements
            .into_iter()
            .map(|statement| Statement::parse(statement, version == "2012-10-17"))
            .collect::<Result<_, _>>()?;
        Ok(Self { statements })
    }
}

impl Statement {
    fn parse(statement: &Value, variables: bool) -> Result<Self, PolicyError> {
        let statement = statement
            .as_object()
            .ok_or_else(|| invalid("a statement is not an object"))?;
        if statement.contains_key("Principal") || statement.contains_key("NotPrincipal") {
            return Err(invalid("an identity policy statement names no Principal"));
        }
        let effect = match statement.get("Effect").and_then(Value::as_str) {
            Some("Allow") => Effect::Allow,
            Some("Deny") => Effect::Deny,
            _ => return Err(invalid("Effect must be Allow or Deny")),
        };
        let actions = patterns(statement, "Action", "NotAction")?;
        let resources = patterns(statement, "Resource", "NotResource")?;
        let condition = match statement.get("Condition") {
            None => false,
            Some(Value::Object(condition)) => !condition.is_empty(),
            Some(_) => return Err(invalid("Condition must be an object")),
        };
        let variable = variables && resources.patterns.iter().any(|p| p.contains("${"));
        Ok(Self {
            effect,
            actions,
            resources,
            conditional: condition || variable,
        })
    }

    /// Whether the statement takes part in the decision for `action` on `resource`.
    fn applies(&self, action: &str, resource: &str) -> bool {
        let matches = self.actions.matches(action, true) && self.resources.matches(resource, false);
        match self.effect {
            Effect::Allow => matches && !self.conditional,
            Effect::Deny => matches,
        }
    }
}

fn patterns(
    statement: &serde_json::Map<String, Value>,
    key: &str,
    not_key: &str,
) -> Result<Patterns, PolicyError> {
    let (negated, value) = match (statement.get(key), statement.get(not_key)) {
        (Some(value), None) => (false, value),
        (None, Some(value)) => (true, value),
        _ => {
            return Err(invalid(format!(
                "a statement needs exactly one of {key} and {not_key}"
            )));
        }
    };
    let patterns = match value {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) if !many.is_empty() => many
            .iter()
            .map(|p| p.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| invalid(format!("{key} entries must be strings")))?,
        _ => {
            return Err(invalid(format!(
                "{key} must be a string or a non-empty array"
            )));
        }
    };
    Ok(Patterns { negated, patterns })
}

/// Evaluates every statement of `policies` for `action` on `resource`.
pub fn evaluate(policies: &[PolicyDocument], action: &str, resource: &str) -> Decision {
    let applying = policies
        .iter()
        .flat_map(|policy| &policy.statements)
        .filter(|statement| statement.applies(action, resource));
    let mut decision = Decision::ImplicitDeny;
    for statement in applying {
        match statement.effect {
            Effect::Deny => return Decision::ExplicitDeny,
            Effect::Allow => decision = Decision::Allow,
        }
    }
    decision
}

/// IAM's wildcard match: `*` any run of characters, `?` exactly one, everything else literal.
pub fn wildcard_match(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let same = |p: char, t: char| {
        p == '?' || p == t || (case_insensitive && p.to_lowercase().eq(t.to_lowercase()))
    };
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was and how much of the text it has taken so far.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match (pattern.get(p), text.get(t)) {
            (Some('*'), _) => {
                star = Some((p, t));
                p += 1;
            }
            (Some(&pc), Some(&tc)) if same(pc, tc) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

/// The action API Gateway authorizes a request on.
pub const INVOKE_ACTION: &str = "execute-api:Invoke";

/// `arn:aws:execute-api:{region}:{account}:{api}/{stage}/{METHOD}/{path without leading /}`.
pub fn execute_api_arn(
    region: &str,
    account: &str,
    api_id: &str,
    stage: &str,
    method: &str,
    path: &str,
) -> String {
    let path = path.strip_prefix('/').unwrap_or(path);
    format!("arn:aws:execute-api:{region}:{account}:{api_id}/{stage}/{method}/{path}")
}

/// The resources a caller of one key is allowed `execute-api:Invoke` on: every route of
/// `/v1/keys/{key}/...` and `GET /v1/keys/{key}`, in any region and account, on `$default`.
pub fn key_invoke_resources(api_id: &str, key: &str) -> [String; 2] {
    [
        format!("arn:aws:execute-api:*:*:{api_id}/$default/*/v1/keys/{key}/*"),
        format!("arn:aws:execute-api:*:*:{api_id}/$default/GET/v1/keys/{key}"),
    ]
}

/// An identity policy allowing `execute-api:Invoke` on `resources`.
pub fn invoke_policy(resources: &[String]) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": INVOKE_ACTION,
            "Resource": resources,
        }],
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ARN: &str =
        "arn:aws:execute-api:us-east-1:123456789012:a1b2c3/$default/POST/v1/keys/payments/encrypt";

    fn policy(json: &str) -> PolicyDocument {
        PolicyDocument::parse(json).unwrap()
    }

    fn decide(policies: &[&str], action: &str, resource: &str) -> Decision {
        let parsed: Vec<_> = policies.iter().map(|p| policy(p)).collect();
        evaluate(&parsed, action, resource)
    }

    #[test]
    fn allow_deny_and_the_default() {
        let allow = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"*"}}"#;
        let deny = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":["s3:*","execute-api:*"],"Resource":"arn:aws:execute-api:*:*:a1b2c3/$default/POST/v1/keys/payments/*"}]}"#;
        assert_eq!(decide(&[], INVOKE_ACTION, ARN), Decision::ImplicitDeny);
        assert_eq!(decide(&[allow], INVOKE_ACTION, ARN), Decision::Allow);
        assert_eq!(
            decide(&[allow, deny], INVOKE_ACTION, ARN),
            Decision::ExplicitDeny
        );
        assert_eq!(
            decide(&[deny, allow], INVOKE_ACTION, ARN),
            Decision::ExplicitDeny
        );
        let other = ARN.replace("payments", "orders");
        assert_eq!(
            decide(&[allow, deny], INVOKE_ACTION, &other),
            Decision::Allow
        );
        assert_eq!(
            decide(&[allow], "execute-api:ManageConnections", ARN),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn actions_ignore_case_and_resources_do_not() {
        let allow = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"EXECUTE-API:invoke","Resource":"arn:aws:execute-api:*:*:a1b2c3/$default/*/v1/keys/payments/*"}}"#;
        assert_eq!(decide(&[allow], INVOKE_ACTION, ARN), Decision::Allow);
        assert_eq!(
            decide(
                &[allow],
                INVOKE_ACTION,
                &ARN.replace("payments", "Payments")
            ),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn the_contracts_key_policy_allows_that_key_only() {
        let key_policy = invoke_policy(&key_invoke_resources("a1b2c3", "payments"));
        let arn = |method: &str, path: &str| {
            execute_api_arn(
                "us-east-1",
                "123456789012",
                "a1b2c3",
                "$default",
                method,
                path,
            )
        };
        assert_eq!(arn("POST", "/v1/keys/payments/encrypt"), ARN);
        let allowed = |method: &str, path: &str| {
            decide(&[&key_policy], INVOKE_ACTION, &arn(method, path)) == Decision::Allow
        };
        assert!(allowed("POST", "/v1/keys/payments/encrypt"));
        assert!(allowed("POST", "/v1/keys/payments/hmac"));
        assert!(allowed("GET", "/v1/keys/payments"));
        assert!(!allowed("POST", "/v1/keys/orders/encrypt"));
        assert!(!allowed("GET", "/v1/keys/orders"));
        assert!(!allowed("POST", "/v1/keys/payments-2/encrypt"));
        assert!(!allowed("POST", "/v1/encrypt"));
        assert!(!allowed("POST", "/v1/keys/payments"));
    }

    #[test]
    fn not_action_and_not_resource_invert_the_match() {
        let everything_but_orders = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","NotAction":"s3:*","NotResource":"arn:aws:execute-api:*:*:*/*/*/v1/keys/orders/*"}}"#;
        assert_eq!(
            decide(&[everything_but_orders], INVOKE_ACTION, ARN),
            Decision::Allow
        );
        assert_eq!(
            decide(
                &[everything_but_orders],
                INVOKE_ACTION,
                &ARN.replace("payments", "orders")
            ),
            Decision::ImplicitDeny
        );
        assert_eq!(
            decide(&[everything_but_orders], "s3:GetObject", ARN),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn conditions_and_variables_are_decided_conservatively() {
        let allow_if = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}}"#;
        let deny_if = r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"execute-api:Invoke","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}}"#;
        let allow = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"*","Condition":{}}}"#;
        assert_eq!(
            decide(&[allow_if], INVOKE_ACTION, ARN),
            Decision::ImplicitDeny
        );
        assert_eq!(decide(&[allow], INVOKE_ACTION, ARN), Decision::Allow);
        assert_eq!(
            decide(&[allow, deny_if], INVOKE_ACTION, ARN),
            Decision::ExplicitDeny
        );
        let variable = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:*:*:*/${aws:username}/*"}}"#;
        assert_eq!(
            decide(&[variable], INVOKE_ACTION, ARN),
            Decision::ImplicitDeny
        );
        let literal = r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:*:*:a1b2c3/${x}/*"}}"#;
        assert_eq!(
            decide(
                &[literal],
                INVOKE_ACTION,
                "arn:aws:execute-api:r:1:a1b2c3/${x}/GET/v"
            ),
            Decision::Allow
        );
    }

    #[test]
    fn documents_iam_would_refuse_are_errors() {
        for bad in [
            "",
            "[]",
            r#"{"Version":"2012-10-17"}"#,
            r#"{"Version":"2020-01-01","Statement":[]}"#,
            r#"{"Statement":{"Effect":"allow","Action":"*","Resource":"*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Resource":"*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Action":"*","NotAction":"s3:*","Resource":"*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Action":"*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Action":[1],"Resource":"*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Principal":"*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":[]}}"#,
        ] {
            assert!(PolicyDocument::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", "", false));
        assert!(wildcard_match("a*c", "abbbc", false));
        assert!(wildcard_match("a?c", "abc", false));
        assert!(!wildcard_match("a?c", "ac", false));
        assert!(wildcard_match("a*b*c", "a/b:c", false));
        assert!(!wildcard_match("a*b*c", "a/b:d", false));
        assert!(wildcard_match("A*", "abc", true));
        assert!(!wildcard_match("A*", "abc", false));
    }

    /// A slow, obviously right matcher to compare with.
    fn reference(pattern: &[char], text: &[char]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some(('*', rest)) => (0..=text.len()).any(|i| reference(rest, &text[i..])),
            Some((&p, rest)) => text
                .split_first()
                .is_some_and(|(&t, tail)| (p == '?' || p == t) && reference(rest, tail)),
        }
    }

    fn statement(effect: &str, resource: &str) -> String {
        format!(
            r#"{{"Version":"2012-10-17","Statement":{{"Effect":"{effect}","Action":"execute-api:Invoke","Resource":"{resource}"}}}}"#
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn wildcard_agrees_with_the_reference(pattern in "[ab*?/]{0,8}", text in "[ab/]{0,10}") {
            let p: Vec<char> = pattern.chars().collect();
            let t: Vec<char> = text.chars().collect();
            prop_assert_eq!(wildcard_match(&pattern, &text, false), reference(&p, &t));
        }

        #[test]
        fn a_matching_deny_wins_whatever_the_order(
            allows in proptest::collection::vec("[ab*?]{1,4}", 0..4),
            deny in "[ab*?]{1,4}",
            resource in "[ab]{0,4}",
            at in 0usize..4,
        ) {
            let mut policies: Vec<String> = allows.iter().map(|r| statement("Allow", r)).collect();
            policies.insert(at.min(policies.len()), statement("Deny", &deny));
            let parsed: Vec<_> = policies.iter().map(|p| policy(p)).collect();
            let decision = evaluate(&parsed, INVOKE_ACTION, &resource);
            let denied = wildcard_match(&deny, &resource, false);
            let allowed = allows.iter().any(|r| wildcard_match(r, &resource, false));
            let expected = if denied {
                Decision::ExplicitDeny
            } else if allowed {
                Decision::Allow
            } else {
                Decision::ImplicitDeny
            };
            prop_assert_eq!(decision, expected);
        }

        #[test]
        fn action_case_never_matters(action in "[a-zA-Z-]{1,12}:[a-zA-Z]{1,12}") {
            let allow = format!(
                r#"{{"Statement":{{"Effect":"Allow","Action":"{}","Resource":"*"}}}}"#,
                action.to_uppercase()
            );
            prop_assert_eq!(decide(&[&allow], &action.to_lowercase(), ARN), Decision::Allow);
        }
    }
}

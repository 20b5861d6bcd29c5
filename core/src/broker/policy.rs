//! The policy: which principal may get tokens for which repositories, with which permissions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::principal::Principal;
use super::request::{Permissions, RepoName, parse_permissions};

/// The policy file: which principals may get tokens for which repositories, with what.
///
/// ```json
/// {"rules": [{"principal": "arn:aws:iam::123456789012:role/integrity",
///             "repositories": ["acme/infra", "acme/*"],
///             "permissions": {"contents": "write"}}]}
/// ```
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub rules: Vec<PolicyRule>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// An IAM role or user ARN (never an assumed-role session: see [`Principal::from_rule_arn`]).
    pub principal: String,
    /// `owner/name` or `owner/*`.
    pub repositories: Vec<String>,
    pub permissions: BTreeMap<String, String>,
}

/// A compiled [`PolicyFile`].
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    principal: Principal,
    repositories: Vec<RepoPattern>,
    permissions: Permissions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RepoPattern {
    Exact(RepoName),
    Owner(String),
}

impl RepoPattern {
    fn matches(&self, repo: &RepoName) -> bool {
        match self {
            Self::Exact(r) => r == repo,
            Self::Owner(owner) => owner == repo.owner(),
        }
    }
}

/// Why a policy file does not load.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    #[error("rule {rule}: {message}")]
    Rule { rule: usize, message: String },
}

/// The policy's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(DenyReason),
}

/// Which part of the policy refused; returned to the caller (403) and audit-logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DenyReason {
    #[error("principal {0} is not in the broker policy")]
    UnknownPrincipal(String),
    #[error("principal {principal} may not get tokens for repository {repository}")]
    Repository {
        principal: String,
        repository: String,
    },
    #[error(
        "permission {permission}:{requested} exceeds what the policy allows for {repository} ({allowed})"
    )]
    Permission {
        repository: String,
        permission: String,
        requested: String,
        allowed: String,
    },
}

impl Policy {
    pub fn from_json(json: &str) -> Result<Self, PolicyError> {
        let file: PolicyFile = serde_json::from_str(json)?;
        Self::compile(file)
    }

    pub fn compile(file: PolicyFile) -> Result<Self, PolicyError> {
        let rules = file
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| {
                let err = |message: String| PolicyError::Rule { rule: i, message };
                let principal = Principal::from_rule_arn(&rule.principal).map_err(err)?;
                let repositories = rule
                    .repositories
                    .iter()
                    .map(|r| match r.strip_suffix("/*") {
                        Some(owner) => RepoName::parse(&format!("{owner}/x"))
                            .map(|n| RepoPattern::Owner(n.owner().to_owned())),
                        None => RepoName::parse(r).map(RepoPattern::Exact),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| err(e.to_string()))?;
                let permissions =
                    parse_permissions(&rule.permissions).map_err(|e| err(e.to_string()))?;
                Ok(Rule {
                    principal,
                    repositories,
                    permissions,
                })
            })
            .collect::<Result<_, PolicyError>>()?;
        Ok(Self { rules })
    }

    /// Decides whether `principal` may get a token for `repo` with `requested` permissions.
    /// Rules for the same principal and repository add up (the highest level wins).
    pub fn check(
        &self,
        principal: &Principal,
        repo: &RepoName,
        requested: &Permissions,
    ) -> Decision {
        let mine: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| &r.principal == principal)
            .collect();
        if mine.is_empty() {
            return Decision::Deny(DenyReason::UnknownPrincipal(principal.to_string()));
        }
        let applicable: Vec<&Rule> = mine
            .into_iter()
            .filter(|r| r.repositories.iter().any(|p| p.matches(repo)))
            .collect();
        if applicable.is_empty() {
            return Decision::Deny(DenyReason::Repository {
                principal: principal.to_string(),
                repository: repo.to_string(),
            });
        }
        for (permission, level) in requested {
            let allowed = applicable
                .iter()
                .filter_map(|r| r.permissions.get(permission))
                .max();
            if allowed.is_none_or(|a| a < level) {
                return Decision::Deny(DenyReason::Permission {
                    repository: repo.to_string(),
                    permission: permission.clone(),
                    requested: level.as_str().to_owned(),
                    allowed: allowed.map_or("none", |a| a.as_str()).to_owned(),
                });
            }
        }
        Decision::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::test_support::*;
    use crate::broker::*;

    fn policy() -> Policy {
        Policy::from_json(
            r#"{"rules": [
              {"principal": "arn:aws:iam::123456789012:role/integrity",
               "repositories": ["Acme/Infra"], "permissions": {"contents": "write"}},
              {"principal": "arn:aws:iam::123456789012:role/integrity",
               "repositories": ["acme/*"], "permissions": {"metadata": "read", "contents": "read"}}
            ]}"#,
        )
        .expect("policy")
    }

    #[test]
    fn policy_decisions() {
        let p = policy();
        let role =
            Principal::from_arn("arn:aws:sts::123456789012:assumed-role/integrity/x").expect("arn");
        let infra = RepoName::parse("acme/infra").expect("repo");
        let other = RepoName::parse("acme/web").expect("repo");
        assert_eq!(
            p.check(&role, &infra, &perms(&[("contents", "write")])),
            Decision::Allow
        );
        assert_eq!(
            p.check(
                &role,
                &infra,
                &perms(&[("contents", "read"), ("metadata", "read")])
            ),
            Decision::Allow
        );
        assert_eq!(
            p.check(&role, &other, &perms(&[("contents", "read")])),
            Decision::Allow
        );
        assert!(matches!(
            p.check(&role, &other, &perms(&[("contents", "write")])),
            Decision::Deny(DenyReason::Permission { ref allowed, .. }) if allowed == "read"
        ));
        assert!(matches!(
            p.check(&role, &infra, &perms(&[("issues", "read")])),
            Decision::Deny(DenyReason::Permission { ref allowed, .. }) if allowed == "none"
        ));
        let elsewhere = RepoName::parse("evil/infra").expect("repo");
        assert!(matches!(
            p.check(&role, &elsewhere, &perms(&[("contents", "read")])),
            Decision::Deny(DenyReason::Repository { .. })
        ));
        let stranger = Principal::from_arn("arn:aws:iam::123456789012:role/other").expect("arn");
        assert!(matches!(
            p.check(&stranger, &infra, &perms(&[("contents", "read")])),
            Decision::Deny(DenyReason::UnknownPrincipal(_))
        ));
        let other_account =
            Principal::from_arn("arn:aws:iam::210987654321:role/integrity").expect("arn");
        assert!(matches!(
            p.check(&other_account, &infra, &perms(&[("contents", "read")])),
            Decision::Deny(DenyReason::UnknownPrincipal(_))
        ));
    }

    /// A rule naming `assumed-role/ci/alice` used to grant every session of `ci`.
    #[test]
    fn a_rule_naming_a_session_is_refused_at_load() {
        let err = Policy::from_json(
            r#"{"rules": [
              {"principal": "arn:aws:iam::123456789012:role/integrity",
               "repositories": ["acme/infra"], "permissions": {"contents": "read"}},
              {"principal": "arn:aws:sts::123456789012:assumed-role/ci/alice",
               "repositories": ["acme/infra"], "permissions": {"contents": "write"}}
            ]}"#,
        )
        .expect_err("a session rule");
        assert!(err.to_string().starts_with("rule 1:"), "{err}");
        assert!(err.to_string().contains("assumed-role session"), "{err}");
    }

    #[test]
    fn bad_policies_say_which_rule() {
        let err = Policy::from_json(
            r#"{"rules": [{"principal": "arn:aws:iam::123456789012:role/a", "repositories": ["a/b"],
                 "permissions": {"contents": "owner"}}]}"#,
        )
        .expect_err("bad level");
        assert!(err.to_string().starts_with("rule 0:"), "{err}");
        assert!(Policy::from_json(r#"{"rules": [], "extra": 1}"#).is_err());
    }
}

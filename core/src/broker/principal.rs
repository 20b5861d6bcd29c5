//! The caller as the policy sees it, from the ARN STS returned.

use std::fmt;

use super::identity::IdentityError;

/// The caller as the policy sees it: assumed roles are mapped to their role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Principal {
    Role {
        partition: String,
        account: String,
        name: String,
    },
    User {
        partition: String,
        account: String,
        name: String,
    },
}

impl Principal {
    /// Parses the principal of a policy rule: an IAM role or user ARN. An assumed-role session
    /// ARN is refused: whoever assumes the role picks the session name, so a rule naming one
    /// would either grant every session of the role (what [`Principal::from_arn`] maps it to)
    /// or rest on a name the caller chooses.
    pub fn from_rule_arn(arn: &str) -> Result<Self, String> {
        let is_session = crate::arn::Arn::parse(arn).is_ok_and(|parsed| {
            parsed.service == "sts" && parsed.resource.starts_with("assumed-role/")
        });
        if is_session {
            return Err(format!(
                "principal {arn:?} names an assumed-role session, which whoever assumes the role \
                 chooses; name the role instead (arn:PARTITION:iam::ACCOUNT:role/NAME)"
            ));
        }
        Self::from_arn(arn).map_err(|e| e.to_string())
    }

    /// Parses an IAM role, IAM user or STS assumed-role ARN. Role and user paths are dropped
    /// (an assumed-role ARN does not carry them, so the policy matches on account and name).
    pub fn from_arn(arn: &str) -> Result<Self, IdentityError> {
        let bad = || IdentityError::Arn(arn.to_owned());
        let parsed = crate::arn::Arn::parse(arn).map_err(|_| bad())?;
        let (partition, service, account, res) = (
            parsed.partition.as_str(),
            parsed.service.as_str(),
            parsed.account.as_str(),
            parsed.resource.as_str(),
        );
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let (kind, path) = res.split_once('/').ok_or_else(bad)?;
        let (partition, account) = (partition.to_owned(), account.to_owned());
        let name = match (service, kind) {
            ("sts", "assumed-role") => path.split_once('/').map(|(role, _session)| role),
            ("iam", "role" | "user") => path.rsplit('/').next(),
            _ => None,
        }
        .filter(|n| !n.is_empty())
        .ok_or_else(bad)?
        .to_owned();
        Ok(match kind {
            "user" => Self::User {
                partition,
                account,
                name,
            },
            _ => Self::Role {
                partition,
                account,
                name,
            },
        })
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Role {
                partition,
                account,
                name,
            } => write!(f, "arn:{partition}:iam::{account}:role/{name}"),
            Self::User {
                partition,
                account,
                name,
            } => write!(f, "arn:{partition}:iam::{account}:user/{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_rules_may_not_name_a_session() {
        let err = Principal::from_rule_arn("arn:aws:sts::123456789012:assumed-role/ci/alice")
            .expect_err("a session is not a principal of a rule");
        assert!(err.contains("assumed-role session"), "{err}");
        assert_eq!(
            Principal::from_rule_arn("arn:aws:iam::123456789012:role/ci"),
            Ok(Principal::from_arn("arn:aws:iam::123456789012:role/ci").expect("role"))
        );
        assert!(Principal::from_rule_arn("arn:aws:iam::123456789012:user/bob").is_ok());
        assert!(Principal::from_rule_arn("not an arn").is_err());
    }

    #[test]
    fn principals_from_arns() {
        let role =
            Principal::from_arn("arn:aws:sts::123456789012:assumed-role/integrity/session-1")
                .expect("assumed role");
        assert_eq!(role.to_string(), "arn:aws:iam::123456789012:role/integrity");
        assert_eq!(
            Principal::from_arn("arn:aws:iam::123456789012:role/service/integrity").expect("role"),
            role
        );
        assert_eq!(
            Principal::from_arn("arn:aws-cn:iam::123456789012:user/alice")
                .expect("user")
                .to_string(),
            "arn:aws-cn:iam::123456789012:user/alice"
        );
        for bad in [
            "arn:aws:iam::123456789012:root",
            "arn:aws:sts::123456789012:federated-user/bob",
            "arn:aws:iam::12345:role/x",
            "arn:aws:sts::123456789012:assumed-role/nosession",
            "not an arn",
        ] {
            assert!(Principal::from_arn(bad).is_err(), "{bad}");
        }
    }
}

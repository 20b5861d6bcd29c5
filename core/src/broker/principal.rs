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

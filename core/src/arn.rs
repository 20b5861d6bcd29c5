//! ARNs: `arn:partition:service:region:account:resource`, and IAM role ARNs compared exactly.
//! Shared by the integrity classifier and the token broker's principal matching.

use std::fmt;

/// An ARN that does not have the expected shape.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("not a valid {expected} ARN: {arn:?}")]
pub struct ArnError {
    pub expected: &'static str,
    pub arn: String,
}

/// A parsed ARN. The resource part keeps its own separators (`function:name`, `role/path/name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn {
    pub partition: String,
    pub service: String,
    pub region: String,
    pub account: String,
    pub resource: String,
}

impl Arn {
    pub fn parse(s: &str) -> Result<Arn, ArnError> {
        let err = || ArnError {
            expected: "an",
            arn: s.to_owned(),
        };
        let mut parts = s.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return Err(err());
        };
        if partition.is_empty() || service.is_empty() || resource.is_empty() {
            return Err(err());
        }
        Ok(Arn {
            partition: partition.to_owned(),
            service: service.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            resource: resource.to_owned(),
        })
    }
}

/// An IAM role ARN, `arn:aws:iam::111122223333:role/optional/path/Name`.
///
/// Equality is on (partition, account, role name): IAM role names are unique in an account
/// whatever their path, and an assumed-role session ARN (`arn:aws:sts::…:assumed-role/Name/s`)
/// omits the path. Never a substring test: `MyCdkLikeRole` is not `cdk-…-deploy-role`.
#[derive(Debug, Clone, Eq)]
pub struct RoleArn {
    partition: String,
    account: String,
    /// `/` or `/path/`.
    path: String,
    name: String,
}

impl PartialEq for RoleArn {
    fn eq(&self, other: &Self) -> bool {
        self.partition == other.partition
            && self.account == other.account
            && self.name == other.name
    }
}

impl RoleArn {
    /// Parses an IAM role ARN; anything else (user, assumed-role, garbage) is an error.
    pub fn parse(s: &str) -> Result<RoleArn, ArnError> {
        let err = || ArnError {
            expected: "IAM role",
            arn: s.to_owned(),
        };
        let arn = Arn::parse(s).map_err(|_| err())?;
        let rest = arn.resource.strip_prefix("role/").ok_or_else(err)?;
        if arn.service != "iam" || !arn.region.is_empty() || arn.account.is_empty() {
            return Err(err());
        }
        let (path, name) = match rest.rsplit_once('/') {
            Some((path, name)) => (format!("/{path}/"), name),
            None => ("/".to_owned(), rest),
        };
        if name.is_empty() || path.contains("//") {
            return Err(err());
        }
        Ok(RoleArn {
            partition: arn.partition,
            account: arn.account,
            path,
            name: name.to_owned(),
        })
    }

    /// Maps `arn:aws:sts::111122223333:assumed-role/Name/session` to the role's ARN (no path).
    pub fn from_assumed_role(arn: &Arn) -> Option<RoleArn> {
        let rest = arn.resource.strip_prefix("assumed-role/")?;
        let (name, _session) = rest.split_once('/')?;
        (arn.service == "sts" && !name.is_empty() && !arn.account.is_empty()).then(|| RoleArn {
            partition: arn.partition.clone(),
            account: arn.account.clone(),
            path: "/".to_owned(),
            name: name.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn account(&self) -> &str {
        &self.account
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:iam::{}:role{}{}",
            self.partition, self.account, self.path, self.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_generic_arns_keeping_resource_separators() {
        let arn =
            Arn::parse("arn:aws:lambda:eu-west-1:111122223333:function:ssm-crypto:live").unwrap();
        assert_eq!(arn.service, "lambda");
        assert_eq!(arn.region, "eu-west-1");
        assert_eq!(arn.resource, "function:ssm-crypto:live");
        for bad in [
            "",
            "arn",
            "arn:aws",
            "urn:aws:iam::1:role/x",
            "arn::iam::1:role/x",
            "arn:aws:iam::1:",
        ] {
            assert!(Arn::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn role_arn_with_and_without_path() {
        let plain = RoleArn::parse("arn:aws:iam::111122223333:role/Deploy").unwrap();
        let pathed = RoleArn::parse("arn:aws:iam::111122223333:role/ci/team/Deploy").unwrap();
        assert_eq!(plain.to_string(), "arn:aws:iam::111122223333:role/Deploy");
        assert_eq!(
            pathed.to_string(),
            "arn:aws:iam::111122223333:role/ci/team/Deploy"
        );
        assert_eq!(
            plain, pathed,
            "names are unique per account whatever the path"
        );
        assert_ne!(
            plain,
            RoleArn::parse("arn:aws:iam::444455556666:role/Deploy").unwrap()
        );
        assert_ne!(
            plain,
            RoleArn::parse("arn:aws-cn:iam::111122223333:role/Deploy").unwrap()
        );
        assert_ne!(
            plain,
            RoleArn::parse("arn:aws:iam::111122223333:role/Deploy2").unwrap()
        );
    }

    #[test]
    fn role_arn_rejects_other_principals() {
        for bad in [
            "arn:aws:iam::111122223333:user/Deploy",
            "arn:aws:sts::111122223333:assumed-role/Deploy/s",
            "arn:aws:iam::111122223333:role/",
            "arn:aws:iam:us-east-1:111122223333:role/Deploy",
            "arn:aws:iam:::role/Deploy",
            "cdk-deploy-role",
        ] {
            assert!(RoleArn::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn assumed_role_session_maps_to_role() {
        let session = Arn::parse("arn:aws:sts::111122223333:assumed-role/cdk-hnb659fds-deploy-role-111122223333-us-east-1/gha").unwrap();
        let role = RoleArn::from_assumed_role(&session).unwrap();
        assert_eq!(
            role.name(),
            "cdk-hnb659fds-deploy-role-111122223333-us-east-1"
        );
        assert_eq!(role.account(), "111122223333");
        let not_session = Arn::parse("arn:aws:iam::111122223333:role/X").unwrap();
        assert!(RoleArn::from_assumed_role(&not_session).is_none());
    }
}

//! The install command's decisions (`ssm-install`, INSTALL.md): what the CDK bootstrap must hold,
//! whether the App is registered, and the repository variables deploy.yml reads. The command does
//! the I/O; these functions decide from what it read.

use std::collections::BTreeMap;

use crate::deploy::assembly::check_bootstrap_version;

/// What one step of the install did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The step changed something; what.
    Done(String),
    /// Nothing to do; why.
    Skipped(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Done(what) => write!(f, "done: {what}"),
            Outcome::Skipped(why) => write!(f, "skipped: {why}"),
        }
    }
}

/// The CDK bootstrap as the install found it in the account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapFound {
    /// The version parameter the assembly names (`/cdk-bootstrap/<qualifier>/version`) and the
    /// version it needs, with the value found (`None`: no such parameter).
    pub parameter: Option<(String, u32, Option<u32>)>,
    /// Every assets bucket the assembly publishes to, and whether it exists.
    pub buckets: Vec<(String, bool)>,
}

/// Whether the bootstrap can take this assembly; the error says what is missing and the one
/// command that makes it.
pub fn check_bootstrap(
    found: &BootstrapFound,
    account: &str,
    region: &str,
) -> Result<String, String> {
    let command = format!(
        "bootstrap the environment once with `npx cdk bootstrap aws://{account}/{region}` (from cdk/, \
         with `--qualifier Q` if cdk.json sets bootstrapQualifier), then run the install again"
    );
    let mut ok = Vec::new();
    if let Some((name, required, value)) = &found.parameter {
        check_bootstrap_version(*required, *value, region)
            .map_err(|why| format!("{why} ({name}); {command}"))?;
        ok.push(format!("{name} = {}", value.unwrap_or_default()));
    }
    let missing: Vec<&str> = found
        .buckets
        .iter()
        .filter(|(_, exists)| !exists)
        .map(|(b, _)| b.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the CDK assets bucket {} does not exist in {region}: {command}",
            missing.join(", ")
        ));
    }
    ok.extend(found.buckets.iter().map(|(b, _)| format!("bucket {b}")));
    Ok(ok.join(", "))
}

/// Whether a secret the App stack created has been written since: CloudFormation creates it
/// with one version (a random placeholder), and each `PutSecretValue` makes a new `AWSCURRENT`
/// and labels the one before `AWSPREVIOUS`, so a secret with no `AWSPREVIOUS` version still holds
/// its placeholder. `versions` maps each version id to its staging labels (`DescribeSecret`'s
/// `VersionIdsToStages`). The install cannot read the value itself: the secret's resource policy
/// denies it to every principal but the App's role.
pub fn written_since_creation(versions: &BTreeMap<String, Vec<String>>) -> bool {
    let labelled = |label: &str| {
        versions
            .values()
            .any(|stages| stages.iter().any(|s| s == label))
    };
    labelled("AWSCURRENT") && labelled("AWSPREVIOUS")
}

/// The repository variables deploy.yml reads (`vars.NAME`), with the stack output or setting
/// each comes from.
pub const REPOSITORY_VARIABLES: [(&str, &str); 3] = [
    ("AWS_DEPLOY_ROLE_ARN", "DeployRoleArn"),
    ("AWS_PLAN_ROLE_ARN", "PlanRoleArn"),
    ("AWS_REGION", "the region"),
];

/// The repository variables to set, from the OIDC stack's outputs and the region.
pub fn repository_variables(
    oidc_outputs: &BTreeMap<String, String>,
    region: &str,
) -> Result<Vec<(&'static str, String)>, String> {
    REPOSITORY_VARIABLES
        .iter()
        .map(|(name, from)| {
            let value = if *name == "AWS_REGION" {
                Some(region.to_owned())
            } else {
                oidc_outputs.get(*from).cloned()
            };
            value
                .map(|v| (*name, v))
                .ok_or_else(|| format!("the OIDC stack has no output {from} (for {name})"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(v: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        v.iter()
            .map(|(id, s)| {
                (
                    (*id).to_owned(),
                    s.iter().map(|x| (*x).to_owned()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn a_secret_is_written_once_it_has_a_version_besides_its_creation() {
        assert!(!written_since_creation(&versions(&[(
            "v1",
            &["AWSCURRENT"]
        )])));
        assert!(written_since_creation(&versions(&[
            ("v1", &["AWSPREVIOUS"]),
            ("v2", &["AWSCURRENT"])
        ])));
        // A pending version (a rotation started, never finished) is not a value written.
        assert!(!written_since_creation(&versions(&[
            ("v1", &["AWSCURRENT"]),
            ("v2", &["AWSPENDING"])
        ])));
        // Written twice: the creation version has lost its labels, or is gone.
        assert!(written_since_creation(&versions(&[
            ("v2", &["AWSPREVIOUS"]),
            ("v3", &["AWSCURRENT"])
        ])));
        assert!(!written_since_creation(&versions(&[])));
    }

    #[test]
    fn bootstrap_is_refused_with_the_command_that_makes_it() {
        let mut found = BootstrapFound {
            parameter: Some(("/cdk-bootstrap/hnb659fds/version".into(), 6, Some(21))),
            buckets: vec![("cdk-hnb659fds-assets-123456789012-eu-west-1".into(), true)],
        };
        let ok = check_bootstrap(&found, "123456789012", "eu-west-1").expect("bootstrapped");
        assert!(
            ok.contains("= 21") && ok.contains("bucket cdk-hnb659fds"),
            "{ok}"
        );
        found.buckets[0].1 = false;
        let err = check_bootstrap(&found, "123456789012", "eu-west-1").expect_err("no bucket");
        assert!(
            err.contains("npx cdk bootstrap aws://123456789012/eu-west-1"),
            "{err}"
        );
        found.buckets[0].1 = true;
        found.parameter = Some(("/cdk-bootstrap/hnb659fds/version".into(), 6, None));
        let err = check_bootstrap(&found, "123456789012", "eu-west-1").expect_err("no parameter");
        assert!(
            err.contains("not bootstrapped") && err.contains("cdk bootstrap"),
            "{err}"
        );
        found.parameter = Some(("/cdk-bootstrap/hnb659fds/version".into(), 6, Some(5)));
        assert!(check_bootstrap(&found, "123456789012", "eu-west-1").is_err());
    }

    #[test]
    fn the_variables_are_the_ones_deploy_yml_reads() {
        let workflow = include_str!("../../.github/workflows/deploy.yml");
        let mut read: Vec<&str> = workflow
            .match_indices("vars.")
            .map(|(i, _)| {
                let rest = &workflow[i + 5..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect();
        read.sort_unstable();
        read.dedup();
        let mut ours: Vec<&str> = REPOSITORY_VARIABLES.iter().map(|(n, _)| *n).collect();
        ours.sort_unstable();
        assert_eq!(read, ours);

        let outputs: BTreeMap<String, String> = [
            ("DeployRoleArn", "arn:aws:iam::1:role/ssm-github-deploy"),
            ("PlanRoleArn", "arn:aws:iam::1:role/ssm-github-plan"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(
            repository_variables(&outputs, "eu-west-1").expect("variables"),
            [
                (
                    "AWS_DEPLOY_ROLE_ARN",
                    "arn:aws:iam::1:role/ssm-github-deploy".to_owned()
                ),
                (
                    "AWS_PLAN_ROLE_ARN",
                    "arn:aws:iam::1:role/ssm-github-plan".to_owned()
                ),
                ("AWS_REGION", "eu-west-1".to_owned()),
            ]
        );
        assert!(repository_variables(&BTreeMap::new(), "eu-west-1").is_err());
    }
}

//! The Action's inputs, as GitHub passes them: `INPUT_<NAME>` environment variables whose names
//! keep the input's dashes (`INPUT_ROLE-TO-ASSUME`), empty when the workflow did not set them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// What a run does with each stack's change set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Create the change set, report it, delete it.
    Plan,
    /// Create and execute the change set.
    Apply,
    /// Execute a `REVERT_DRIFT` change set, then restore drifted Lambda code.
    Reconcile,
}

impl Mode {
    /// The input's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Plan => "plan",
            Mode::Apply => "apply",
            Mode::Reconcile => "reconcile",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "plan" => Ok(Mode::Plan),
            "apply" => Ok(Mode::Apply),
            "reconcile" => Ok(Mode::Reconcile),
            other => Err(format!("`{other}` is not one of plan, apply, reconcile")),
        }
    }
}

/// Everything wrong with the inputs, reported at once so one edit of the workflow fixes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct InputError {
    /// Required inputs that were missing or empty, by input name.
    pub missing: Vec<&'static str>,
    /// Inputs that were present but invalid: (input name, why).
    pub invalid: Vec<(&'static str, String)>,
}

impl InputError {
    fn render(&self) -> String {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!(
                "missing required input(s): {} (set them under `with:` in the workflow step; locally, export INPUT_{})",
                self.missing.join(", "),
                self.missing[0].to_ascii_uppercase()
            ));
        }
        for (name, why) in &self.invalid {
            parts.push(format!("invalid input `{name}`: {why}"));
        }
        parts.join("; ")
    }
}

/// The Action's inputs, typed and defaulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionInputs {
    pub mode: Mode,
    pub aws_region: String,
    /// Without it the default credential chain is used (local runs, tests).
    pub role_to_assume: Option<String>,
    pub audience: String,
    pub role_session_name: String,
    pub role_duration_seconds: i32,
    pub cloud_assembly: String,
    /// Stack artifact ids or stack names; empty means every stack of the assembly.
    pub stacks: Vec<String>,
    pub capabilities: Vec<String>,
    pub parameter_overrides: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    pub fail_on_empty_changeset: bool,
    pub allow_recreate: bool,
    /// `None` keeps what the assembly says.
    pub termination_protection: Option<bool>,
}

/// Default capabilities: what CDK stacks need (`cdk deploy` passes the same three).
pub const DEFAULT_CAPABILITIES: [&str; 3] = [
    "CAPABILITY_IAM",
    "CAPABILITY_NAMED_IAM",
    "CAPABILITY_AUTO_EXPAND",
];

impl ActionInputs {
    /// Parses the inputs from an environment (`INPUT_*` plus the `GITHUB_*` run variables used
    /// for the default session name).
    pub fn from_env<K: AsRef<str>, V: AsRef<str>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, InputError> {
        let env: BTreeMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().trim().to_owned()))
            .collect();
        let input = |name: &str| -> Option<&str> {
            env.get(&format!("INPUT_{}", name.to_ascii_uppercase()))
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };
        let mut missing = Vec::new();
        let mut invalid = Vec::new();

        let mode = match input("mode").map(str::parse::<Mode>) {
            Some(Ok(mode)) => Some(mode),
            Some(Err(why)) => {
                invalid.push(("mode", why));
                None
            }
            None => {
                missing.push("mode");
                None
            }
        };
        let aws_region = input("aws-region").map(str::to_owned);
        match aws_region.as_deref() {
            None => missing.push("aws-region"),
            Some(r) if !valid_region(r) => invalid.push((
                "aws-region",
                format!("`{r}` is not a region name like eu-west-1"),
            )),
            Some(_) => {}
        }
        let role_to_assume = input("role-to-assume").map(str::to_owned);
        if let Some(role) = &role_to_assume
            && !(role.starts_with("arn:") && role.contains(":role/"))
        {
            invalid.push((
                "role-to-assume",
                format!("`{role}` is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"),
            ));
        }
        let role_duration_seconds = match input("role-duration-seconds") {
            None => 3600,
            Some(v) => match v.parse::<i32>() {
                Ok(n) if (900..=43200).contains(&n) => n,
                _ => {
                    invalid.push((
                        "role-duration-seconds",
                        format!("`{v}` is not a number of seconds between 900 and 43200"),
                    ));
                    3600
                }
            },
        };
        let mut flag = |name: &'static str| -> Option<bool> {
            let v = input(name)?;
            match v.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Some(true),
                "false" | "no" | "0" => Some(false),
                _ => {
                    invalid.push((name, format!("`{v}` is not true or false")));
                    None
                }
            }
        };
        let fail_on_empty_changeset = flag("fail-on-empty-changeset").unwrap_or(false);
        let allow_recreate = flag("allow-recreate").unwrap_or(false);
        let termination_protection = flag("termination-protection");

        let parameter_overrides = match input("parameter-overrides").map(parse_pairs).transpose() {
            Ok(p) => p.unwrap_or_default(),
            Err(why) => {
                invalid.push(("parameter-overrides", why));
                Vec::new()
            }
        };
        let tags = match input("tags").map(parse_pairs).transpose() {
            Ok(p) => p.unwrap_or_default(),
            Err(why) => {
                invalid.push(("tags", why));
                Vec::new()
            }
        };
        let capabilities = input("capabilities").map(split_list).unwrap_or_else(|| {
            DEFAULT_CAPABILITIES
                .iter()
                .map(|c| (*c).to_owned())
                .collect()
        });
        if let Some(bad) = capabilities.iter().find(|c| !c.starts_with("CAPABILITY_")) {
            invalid.push((
                "capabilities",
                format!("`{bad}` is not a CloudFormation capability (CAPABILITY_IAM, ...)"),
            ));
        }

        let role_session_name = input("role-session-name")
            .map(session_name)
            .unwrap_or_else(|| default_session_name(&env));

        match (mode, aws_region) {
            (Some(mode), Some(aws_region)) if missing.is_empty() && invalid.is_empty() => {
                Ok(ActionInputs {
                    mode,
                    aws_region,
                    role_to_assume,
                    audience: input("audience").unwrap_or("sts.amazonaws.com").to_owned(),
                    role_session_name,
                    role_duration_seconds,
                    cloud_assembly: input("cloud-assembly").unwrap_or("cdk.out").to_owned(),
                    stacks: input("stacks").map(split_list).unwrap_or_default(),
                    capabilities,
                    parameter_overrides,
                    tags,
                    fail_on_empty_changeset,
                    allow_recreate,
                    termination_protection,
                })
            }
            _ => Err(InputError { missing, invalid }),
        }
    }
}

fn valid_region(r: &str) -> bool {
    r.split('-').count() >= 3
        && r.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Splits a list given one per line or comma-separated.
pub fn split_list(s: &str) -> Vec<String> {
    s.split([',', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses `Key=Value` pairs, one per line or comma-separated. Values may contain `=`.
pub fn parse_pairs(s: &str) -> Result<Vec<(String, String)>, String> {
    split_list(s)
        .into_iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
            _ => Err(format!("`{p}` is not Key=Value")),
        })
        .collect()
}

/// A role session name STS accepts: `[\w+=,.@-]`, at most 64 characters.
pub fn session_name(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if cleaned.len() < 2 {
        "ssm-action".to_owned()
    } else {
        cleaned
    }
}

/// Names the run, so CloudTrail shows which workflow run made each call:
/// `ssm-<repo>-<run id>-<attempt>`.
fn default_session_name(env: &BTreeMap<String, String>) -> String {
    let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).map(String::as_str);
    match get("GITHUB_RUN_ID") {
        Some(run) => {
            let repo = get("GITHUB_REPOSITORY")
                .and_then(|r| r.rsplit('/').next())
                .unwrap_or("repo");
            let attempt = get("GITHUB_RUN_ATTEMPT").unwrap_or("1");
            // Keep the run id and attempt even when the repository name is long.
            let tail = format!("-{run}-{attempt}");
            let head: String = format!("ssm-{repo}")
                .chars()
                .take(64usize.saturating_sub(tail.len()))
                .collect();
            session_name(&format!("{head}{tail}"))
        }
        None => "ssm-action-local".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![("INPUT_MODE", "apply"), ("INPUT_AWS-REGION", "eu-west-1")]
    }

    #[test]
    fn empty_environment_names_every_missing_input() {
        let err = ActionInputs::from_env(Vec::<(String, String)>::new()).unwrap_err();
        assert_eq!(err.missing, vec!["mode", "aws-region"]);
        let msg = err.to_string();
        assert!(msg.contains("mode, aws-region"), "{msg}");
        assert!(msg.contains("INPUT_MODE"), "{msg}");
    }

    #[test]
    fn empty_values_count_as_missing() {
        let err = ActionInputs::from_env([("INPUT_MODE", " "), ("INPUT_AWS-REGION", "eu-west-1")])
            .unwrap_err();
        assert_eq!(err.missing, vec!["mode"]);
    }

    #[test]
    fn defaults_match_the_aws_actions() {
        let i = ActionInputs::from_env(base()).unwrap();
        assert_eq!(i.mode, Mode::Apply);
        assert_eq!(i.audience, "sts.amazonaws.com");
        assert_eq!(i.cloud_assembly, "cdk.out");
        assert_eq!(i.role_duration_seconds, 3600);
        assert_eq!(i.capabilities, DEFAULT_CAPABILITIES);
        assert!(i.stacks.is_empty() && !i.fail_on_empty_changeset && !i.allow_recreate);
        assert_eq!(i.termination_protection, None);
        assert_eq!(i.role_session_name, "ssm-action-local");
    }

    #[test]
    fn dashed_names_lists_and_pairs() {
        let mut env = base();
        env.extend([
            (
                "INPUT_ROLE-TO-ASSUME",
                "arn:aws:iam::123456789012:role/deploy",
            ),
            ("INPUT_STACKS", "A, B\nC"),
            ("INPUT_PARAMETER-OVERRIDES", "Env=prod\nUrl=https://x/?a=b"),
            ("INPUT_TAGS", "team=sec,cost=1"),
            ("INPUT_FAIL-ON-EMPTY-CHANGESET", "true"),
            ("INPUT_TERMINATION-PROTECTION", "false"),
            ("GITHUB_RUN_ID", "42"),
            ("GITHUB_RUN_ATTEMPT", "2"),
            ("GITHUB_REPOSITORY", "octo/serverless ssm"),
        ]);
        let i = ActionInputs::from_env(env).unwrap();
        assert_eq!(
            i.role_to_assume.as_deref(),
            Some("arn:aws:iam::123456789012:role/deploy")
        );
        assert_eq!(i.stacks, ["A", "B", "C"]);
        assert_eq!(
            i.parameter_overrides[1],
            ("Url".to_owned(), "https://x/?a=b".to_owned())
        );
        assert_eq!(i.tags.len(), 2);
        assert!(i.fail_on_empty_changeset);
        assert_eq!(i.termination_protection, Some(false));
        assert_eq!(i.role_session_name, "ssm-serverless-ssm-42-2");
    }

    #[test]
    fn invalid_values_are_all_reported() {
        let env = [
            ("INPUT_MODE", "deploy"),
            ("INPUT_AWS-REGION", "Europe"),
            ("INPUT_ROLE-DURATION-SECONDS", "60"),
            ("INPUT_ALLOW-RECREATE", "maybe"),
            ("INPUT_TAGS", "novalue"),
            ("INPUT_ROLE-TO-ASSUME", "deploy-role"),
        ];
        let err = ActionInputs::from_env(env).unwrap_err();
        let names: Vec<_> = err.invalid.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "mode",
                "aws-region",
                "role-to-assume",
                "role-duration-seconds",
                "allow-recreate",
                "tags"
            ]
        );
        assert!(err.missing.is_empty());
    }

    #[test]
    fn session_names_are_sanitized_and_bounded() {
        assert_eq!(session_name("a b/c"), "a-b-c");
        assert_eq!(session_name(&"x".repeat(100)).len(), 64);
        let env = BTreeMap::from([
            ("GITHUB_RUN_ID".to_owned(), "123456789".to_owned()),
            (
                "GITHUB_REPOSITORY".to_owned(),
                format!("o/{}", "r".repeat(90)),
            ),
        ]);
        let name = default_session_name(&env);
        assert!(name.len() <= 64 && name.ends_with("-123456789-1"), "{name}");
    }
}

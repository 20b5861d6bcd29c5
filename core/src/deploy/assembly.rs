//! CDK cloud assemblies (`cdk.out`): `manifest.json`, the `<Stack>.assets.json` asset manifests
//! and the parts of a stack template the Action reads. Parsed from strings the binary read.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

/// Why an assembly cannot be deployed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssemblyError {
    #[error("{file} is not a valid cloud assembly manifest: {reason}")]
    Malformed { file: String, reason: String },
    #[error("stack `{0}` is not in the cloud assembly (it has: {1})")]
    UnknownStack(String, String),
    #[error("the stacks depend on each other in a cycle: {0}")]
    Cycle(String),
    #[error("the cloud assembly has no stacks")]
    NoStacks,
    #[error(
        "asset `{0}` is a Docker image: this Action publishes file assets only; build and push images with docker/build-push-action and reference them by digest"
    )]
    DockerImage(String),
    #[error("asset `{id}` has packaging `{packaging}`; only `file` and `zip` are supported")]
    UnsupportedPackaging { id: String, packaging: String },
}

#[derive(Debug, Deserialize)]
struct RawManifest {
    #[serde(default)]
    artifacts: BTreeMap<String, RawArtifact>,
}

#[derive(Debug, Deserialize)]
struct RawArtifact {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    properties: Value,
    #[serde(default)]
    dependencies: Vec<String>,
    #[serde(rename = "displayName")]
    display_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawStackProperties {
    template_file: String,
    stack_name: Option<String>,
    #[serde(default)]
    parameters: BTreeMap<String, String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    termination_protection: Option<bool>,
    assume_role_arn: Option<String>,
    cloud_formation_execution_role_arn: Option<String>,
    stack_template_asset_object_url: Option<String>,
    requires_bootstrap_stack_version: Option<u32>,
    bootstrap_stack_version_ssm_parameter: Option<String>,
}

/// One `aws:cloudformation:stack` artifact. Role ARNs and URLs still hold `${AWS::...}`
/// placeholders; fill them with [`Placeholders::fill`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackArtifact {
    /// Artifact id (the construct path's stack id).
    pub id: String,
    /// The CloudFormation stack name (defaults to the artifact id).
    pub stack_name: String,
    pub display_name: String,
    pub template_file: String,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub termination_protection: Option<bool>,
    pub assume_role_arn: Option<String>,
    pub execution_role_arn: Option<String>,
    pub template_object_url: Option<String>,
    pub requires_bootstrap_version: Option<u32>,
    pub bootstrap_version_parameter: Option<String>,
    /// Files of the `cdk:asset-manifest` artifacts this stack depends on.
    pub asset_manifests: Vec<String>,
    /// Other stacks (artifact ids) that must be deployed first.
    pub depends_on: Vec<String>,
}

/// A parsed `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudAssembly {
    /// Every stack, in dependency order (dependencies first, ties by artifact id).
    pub stacks: Vec<StackArtifact>,
}

impl CloudAssembly {
    /// Parses `manifest.json`.
    pub fn parse(manifest_json: &str) -> Result<Self, AssemblyError> {
        let malformed = |reason: String| AssemblyError::Malformed {
            file: "manifest.json".into(),
            reason,
        };
        let raw: RawManifest =
            serde_json::from_str(manifest_json).map_err(|e| malformed(e.to_string()))?;
        let asset_files: BTreeMap<&str, String> = raw
            .artifacts
            .iter()
            .filter(|(_, a)| a.kind == "cdk:asset-manifest")
            .filter_map(|(id, a)| {
                Some((id.as_str(), a.properties.get("file")?.as_str()?.to_owned()))
            })
            .collect();
        let mut stacks = BTreeMap::new();
        for (id, art) in raw
            .artifacts
            .iter()
            .filter(|(_, a)| a.kind == "aws:cloudformation:stack")
        {
            let props: RawStackProperties = serde_json::from_value(art.properties.clone())
                .map_err(|e| malformed(format!("stack `{id}`: {e}")))?;
            let stack = StackArtifact {
                id: id.clone(),
                stack_name: props.stack_name.unwrap_or_else(|| id.clone()),
                display_name: art.display_name.clone().unwrap_or_else(|| id.clone()),
                template_file: props.template_file,
                parameters: props.parameters,
                tags: props.tags,
                termination_protection: props.termination_protection,
                assume_role_arn: props.assume_role_arn,
                execution_role_arn: props.cloud_formation_execution_role_arn,
                template_object_url: props.stack_template_asset_object_url,
                requires_bootstrap_version: props.requires_bootstrap_stack_version,
                bootstrap_version_parameter: props.bootstrap_stack_version_ssm_parameter,
                asset_manifests: art
                    .dependencies
                    .iter()
                    .filter_map(|d| asset_files.get(d.as_str()).cloned())
                    .collect(),
                depends_on: Vec::new(),
            };
            stacks.insert(id.clone(), (stack, art.dependencies.clone()));
        }
        let ids: BTreeSet<String> = stacks.keys().cloned().collect();
        for (stack, deps) in stacks.values_mut() {
            stack.depends_on = deps.iter().filter(|d| ids.contains(*d)).cloned().collect();
        }
        let unordered: Vec<StackArtifact> = stacks.into_values().map(|(s, _)| s).collect();
        Ok(CloudAssembly {
            stacks: dependency_order(unordered)?,
        })
    }

    /// The stacks to deploy: all of them, or the ones asked for (by artifact id or stack name),
    /// plus nothing else, kept in dependency order.
    pub fn select(&self, wanted: &[String]) -> Result<Vec<&StackArtifact>, AssemblyError> {
        if self.stacks.is_empty() {
            return Err(AssemblyError::NoStacks);
        }
        if wanted.is_empty() {
            return Ok(self.stacks.iter().collect());
        }
        for w in wanted {
            if !self.stacks.iter().any(|s| &s.id == w || &s.stack_name == w) {
                let have = self
                    .stacks
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(AssemblyError::UnknownStack(w.clone(), have));
            }
        }
        Ok(self
            .stacks
            .iter()
            .filter(|s| wanted.iter().any(|w| w == &s.id || w == &s.stack_name))
            .collect())
    }
}

/// Kahn's algorithm with a sorted ready set, so the order is stable.
fn dependency_order(stacks: Vec<StackArtifact>) -> Result<Vec<StackArtifact>, AssemblyError> {
    let mut pending: BTreeMap<String, StackArtifact> =
        stacks.into_iter().map(|s| (s.id.clone(), s)).collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    while !pending.is_empty() {
        let ready: Vec<String> = pending
            .values()
            .filter(|s| s.depends_on.iter().all(|d| done.contains(d)))
            .map(|s| s.id.clone())
            .collect();
        if ready.is_empty() {
            return Err(AssemblyError::Cycle(
                pending.keys().cloned().collect::<Vec<_>>().join(" ↔ "),
            ));
        }
        for id in ready {
            if let Some(s) = pending.remove(&id) {
                done.insert(id);
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// How a file asset is packaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packaging {
    /// Upload the file as is.
    File,
    /// Zip the directory (deterministically) and upload the zip.
    Zip,
}

/// Where one asset goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub bucket: String,
    pub key: String,
    pub assume_role_arn: Option<String>,
}

/// One file asset of a `<Stack>.assets.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAsset {
    pub id: String,
    /// Relative to the cloud assembly directory.
    pub path: String,
    pub packaging: Packaging,
    pub destinations: Vec<Destination>,
}

#[derive(Debug, Deserialize)]
struct RawAssets {
    #[serde(default)]
    files: BTreeMap<String, RawFileAsset>,
    #[serde(default, rename = "dockerImages")]
    docker_images: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
struct RawFileAsset {
    source: RawSource,
    #[serde(default)]
    destinations: BTreeMap<String, RawDestination>,
}

#[derive(Debug, Deserialize)]
struct RawSource {
    path: Option<String>,
    packaging: Option<String>,
    executable: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDestination {
    bucket_name: String,
    object_key: String,
    assume_role_arn: Option<String>,
}

/// Parses an asset manifest (`<Stack>.assets.json`). Docker image assets are refused.
pub fn parse_assets(file: &str, json: &str) -> Result<Vec<FileAsset>, AssemblyError> {
    let malformed = |reason: String| AssemblyError::Malformed {
        file: file.to_owned(),
        reason,
    };
    let raw: RawAssets = serde_json::from_str(json).map_err(|e| malformed(e.to_string()))?;
    if let Some(id) = raw.docker_images.keys().next() {
        return Err(AssemblyError::DockerImage(id.clone()));
    }
    raw.files
        .into_iter()
        .map(|(id, f)| {
            if f.source.executable.is_some() {
                return Err(AssemblyError::UnsupportedPackaging {
                    id,
                    packaging: "executable".into(),
                });
            }
            let packaging = match f.source.packaging.as_deref().unwrap_or("file") {
                "file" => Packaging::File,
                "zip" => Packaging::Zip,
                other => {
                    return Err(AssemblyError::UnsupportedPackaging {
                        id,
                        packaging: other.into(),
                    });
                }
            };
            let path = f
                .source
                .path
                .ok_or_else(|| malformed(format!("asset `{id}` has no source path")))?;
            if path.split(['/', '\\']).any(|c| c == "..") || path.starts_with('/') {
                return Err(malformed(format!(
                    "asset `{id}` path `{path}` leaves the assembly directory"
                )));
            }
            let destinations = f
                .destinations
                .into_values()
                .map(|d| Destination {
                    bucket: d.bucket_name,
                    key: d.object_key,
                    assume_role_arn: d.assume_role_arn,
                })
                .collect();
            Ok(FileAsset {
                id,
                path,
                packaging,
                destinations,
            })
        })
        .collect()
}

/// Values for the `${AWS::...}` placeholders CDK leaves in environment-agnostic assemblies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholders {
    pub account: String,
    pub region: String,
    pub partition: String,
    pub url_suffix: String,
}

impl Placeholders {
    /// Placeholders for an account and region; the partition follows from the region.
    pub fn new(account: &str, region: &str) -> Self {
        let (partition, url_suffix) = if region.starts_with("cn-") {
            ("aws-cn", "amazonaws.com.cn")
        } else if region.starts_with("us-gov-") {
            ("aws-us-gov", "amazonaws.com")
        } else if region.starts_with("us-iso-") {
            ("aws-iso", "c2s.ic.gov")
        } else if region.starts_with("us-isob-") {
            ("aws-iso-b", "sc2s.sgov.gov")
        } else {
            ("aws", "amazonaws.com")
        };
        Placeholders {
            account: account.to_owned(),
            region: region.to_owned(),
            partition: partition.to_owned(),
            url_suffix: url_suffix.to_owned(),
        }
    }

    /// Replaces `${AWS::AccountId}`, `${AWS::Region}`, `${AWS::Partition}`, `${AWS::URLSuffix}`.
    pub fn fill(&self, s: &str) -> String {
        s.replace("${AWS::AccountId}", &self.account)
            .replace("${AWS::Region}", &self.region)
            .replace("${AWS::Partition}", &self.partition)
            .replace("${AWS::URLSuffix}", &self.url_suffix)
    }

    /// An `s3://bucket/key` URL as the HTTPS URL CloudFormation's `TemplateURL` wants.
    pub fn template_url(&self, s3_url: &str) -> Option<String> {
        let filled = self.fill(s3_url);
        let (bucket, key) = filled.strip_prefix("s3://")?.split_once('/')?;
        Some(format!(
            "https://s3.{}.{}/{bucket}/{key}",
            self.region, self.url_suffix
        ))
    }
}

/// The bootstrap-version parameter a CDK template declares: the SSM parameter name that
/// `Parameters.BootstrapVersion.Default` points at, if any.
pub fn bootstrap_parameter(template: &Value) -> Option<&str> {
    template
        .pointer("/Parameters/BootstrapVersion/Default")?
        .as_str()
}

/// Whether a bootstrap stack version is new enough, as a user-facing error when it is not.
pub fn check_bootstrap_version(
    required: u32,
    found: Option<u32>,
    region: &str,
) -> Result<(), String> {
    match found {
        Some(v) if v >= required => Ok(()),
        Some(v) => Err(format!(
            "the environment's CDK bootstrap stack is version {v}, this assembly needs {required}: run `cdk bootstrap aws://<account>/{region}` with a current CDK"
        )),
        None => Err(format!(
            "the environment is not bootstrapped (no CDKToolkit stack with a BootstrapVersion output in {region}; this assembly needs version {required}): run `cdk bootstrap aws://<account>/{region}` once"
        )),
    }
}

/// The resources of a JSON template whose `Type` is `ty`: (logical id, resource).
pub fn resources_of_type<'a>(
    template: &'a Value,
    ty: &'a str,
) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
    template
        .get("Resources")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.iter())
        .filter(move |(_, r)| r.get("Type").and_then(Value::as_str) == Some(ty))
}

/// Lambda functions of a template whose code comes from an S3 object: (logical id, object key).
/// The key is matched against the asset destinations to find the code the stack deploys.
pub fn lambda_code_keys(template: &Value) -> Vec<(String, String)> {
    resources_of_type(template, "AWS::Lambda::Function")
        .filter_map(|(id, r)| {
            let key = r.pointer("/Properties/Code/S3Key")?.as_str()?;
            Some((id.clone(), key.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest() -> String {
        json!({
            "version": "36.0.0",
            "artifacts": {
                "Tree": {"type": "cdk:tree", "properties": {"file": "tree.json"}},
                "App.assets": {"type": "cdk:asset-manifest", "properties": {"file": "App.assets.json", "requiresBootstrapStackVersion": 6}},
                "Base.assets": {"type": "cdk:asset-manifest", "properties": {"file": "Base.assets.json"}},
                "App": {
                    "type": "aws:cloudformation:stack",
                    "environment": "aws://unknown-account/unknown-region",
                    "properties": {
                        "templateFile": "App.template.json",
                        "stackName": "ssm-app",
                        "assumeRoleArn": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/cdk-hnb659fds-deploy-role-${AWS::AccountId}-${AWS::Region}",
                        "cloudFormationExecutionRoleArn": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/cdk-hnb659fds-cfn-exec-role-${AWS::AccountId}-${AWS::Region}",
                        "stackTemplateAssetObjectUrl": "s3://cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}/abc.json",
                        "requiresBootstrapStackVersion": 6,
                        "bootstrapStackVersionSsmParameter": "/cdk-bootstrap/hnb659fds/version",
                        "tags": {"team": "sec"}
                    },
                    "dependencies": ["Base", "App.assets"],
                    "displayName": "App"
                },
                "Base": {
                    "type": "aws:cloudformation:stack",
                    "properties": {"templateFile": "Base.template.json", "terminationProtection": true},
                    "dependencies": ["Base.assets"]
                }
            }
        })
        .to_string()
    }

    #[test]
    fn stacks_come_in_dependency_order_with_their_asset_manifests() {
        let asm = CloudAssembly::parse(&manifest()).unwrap();
        let ids: Vec<_> = asm.stacks.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["Base", "App"]);
        let app = &asm.stacks[1];
        assert_eq!(app.stack_name, "ssm-app");
        assert_eq!(app.asset_manifests, ["App.assets.json"]);
        assert_eq!(app.depends_on, ["Base"]);
        assert_eq!(app.requires_bootstrap_version, Some(6));
        assert_eq!(asm.stacks[0].stack_name, "Base");
        assert_eq!(asm.stacks[0].termination_protection, Some(true));
    }

    #[test]
    fn select_by_id_or_name_and_reject_unknown() {
        let asm = CloudAssembly::parse(&manifest()).unwrap();
        let picked = asm.select(&["ssm-app".into()]).unwrap();
        assert_eq!(picked.len(), 1);
        assert_eq!(picked[0].id, "App");
        let err = asm.select(&["Nope".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "stack `Nope` is not in the cloud assembly (it has: Base, App)"
        );
    }

    #[test]
    fn cycles_and_garbage_are_errors() {
        let cyclic = json!({"artifacts": {
            "A": {"type": "aws:cloudformation:stack", "properties": {"templateFile": "a"}, "dependencies": ["B"]},
            "B": {"type": "aws:cloudformation:stack", "properties": {"templateFile": "b"}, "dependencies": ["A"]}
        }});
        assert!(matches!(
            CloudAssembly::parse(&cyclic.to_string()),
            Err(AssemblyError::Cycle(_))
        ));
        assert!(matches!(
            CloudAssembly::parse("{"),
            Err(AssemblyError::Malformed { .. })
        ));
        let empty = CloudAssembly::parse(r#"{"artifacts":{}}"#).unwrap();
        assert_eq!(empty.select(&[]), Err(AssemblyError::NoStacks));
    }

    #[test]
    fn placeholders_fill_and_partition_follows_region() {
        let p = Placeholders::new("123456789012", "cn-north-1");
        assert_eq!(
            p.fill("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/x-${AWS::Region}"),
            "arn:aws-cn:iam::123456789012:role/x-cn-north-1"
        );
        let p = Placeholders::new("123456789012", "eu-west-1");
        assert_eq!(
            p.template_url("s3://cdk-assets-${AWS::AccountId}-${AWS::Region}/abc.json")
                .as_deref(),
            Some("https://s3.eu-west-1.amazonaws.com/cdk-assets-123456789012-eu-west-1/abc.json")
        );
        assert_eq!(p.template_url("https://x"), None);
    }

    #[test]
    fn asset_manifest_file_and_zip_and_refusals() {
        let assets = json!({"version": "36.0.0", "files": {
            "h1": {"source": {"path": "asset.h1", "packaging": "zip"},
                   "destinations": {"current_account-current_region": {"bucketName": "b-${AWS::AccountId}", "objectKey": "h1.zip", "assumeRoleArn": "arn:role"}}},
            "h2": {"source": {"path": "App.template.json", "packaging": "file"},
                   "destinations": {"d": {"bucketName": "b", "objectKey": "h2.json"}}}
        }, "dockerImages": {}});
        let parsed = parse_assets("App.assets.json", &assets.to_string()).unwrap();
        assert_eq!(parsed[0].packaging, Packaging::Zip);
        assert_eq!(
            parsed[0].destinations[0].assume_role_arn.as_deref(),
            Some("arn:role")
        );
        assert_eq!(parsed[1].packaging, Packaging::File);
        assert_eq!(parsed[1].destinations[0].key, "h2.json");

        let docker = json!({"files": {}, "dockerImages": {"img": {}}});
        assert!(
            parse_assets("x", &docker.to_string())
                .unwrap_err()
                .to_string()
                .contains("Docker image")
        );
        let escape =
            json!({"files": {"e": {"source": {"path": "../etc/passwd"}, "destinations": {}}}});
        assert!(matches!(
            parse_assets("x", &escape.to_string()),
            Err(AssemblyError::Malformed { .. })
        ));
        let exe = json!({"files": {"e": {"source": {"executable": ["sh"]}, "destinations": {}}}});
        assert!(matches!(
            parse_assets("x", &exe.to_string()),
            Err(AssemblyError::UnsupportedPackaging { .. })
        ));
    }

    #[test]
    fn template_bootstrap_and_lambda_code() {
        let t = json!({
            "Parameters": {"BootstrapVersion": {"Type": "AWS::SSM::Parameter::Value<String>", "Default": "/cdk-bootstrap/hnb659fds/version"}},
            "Resources": {
                "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Code": {"S3Bucket": {"Fn::Sub": "b"}, "S3Key": "h1.zip"}}},
                "Inline": {"Type": "AWS::Lambda::Function", "Properties": {"Code": {"ZipFile": "x"}}},
                "Q": {"Type": "AWS::SQS::Queue"}
            }
        });
        assert_eq!(
            bootstrap_parameter(&t),
            Some("/cdk-bootstrap/hnb659fds/version")
        );
        assert_eq!(
            lambda_code_keys(&t),
            [("Fn".to_owned(), "h1.zip".to_owned())]
        );
        assert!(check_bootstrap_version(6, Some(21), "eu-west-1").is_ok());
        assert!(
            check_bootstrap_version(6, Some(5), "eu-west-1")
                .unwrap_err()
                .contains("version 5")
        );
        assert!(
            check_bootstrap_version(6, None, "eu-west-1")
                .unwrap_err()
                .contains("cdk bootstrap")
        );
    }
}

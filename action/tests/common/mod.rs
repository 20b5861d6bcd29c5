//! Shared helpers of the integration tests: a cloud assembly fixture, a local OIDC token
//! endpoint, and running the binary as the runner does.
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";
pub const BUCKET: &str = "cdk-hnb659fds-assets-123456789012-us-east-1";

/// Writes a CDK-shaped cloud assembly: one stack with an IAM role, a Lambda function whose code
/// is a zip asset (a directory), and (with `extra_queue`) an SQS queue.
pub fn write_assembly(dir: &Path, stack: &str, asset_hash: &str, extra_queue: bool) {
    std::fs::create_dir_all(dir.join(format!("asset.{asset_hash}"))).unwrap();
    std::fs::write(
        dir.join(format!("asset.{asset_hash}/bootstrap")),
        format!("#!/bin/sh\necho {asset_hash}\n"),
    )
    .unwrap();
    std::fs::write(dir.join(format!("asset.{asset_hash}/README")), "fixture").unwrap();
    let mut resources = json!({
        "FnRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]
                }
            }
        },
        "Fn": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Code": {
                    "S3Bucket": {"Fn::Sub": "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}"},
                    "S3Key": format!("{asset_hash}.zip")
                },
                "Handler": "bootstrap",
                "Runtime": "provided.al2023",
                "Timeout": {"Ref": "Timeout"},
                "Role": {"Fn::GetAtt": ["FnRole", "Arn"]}
            },
            "DependsOn": ["FnRole"]
        }
    });
    if extra_queue {
        resources["Queue"] =
            json!({"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 60}});
    }
    let template = json!({
        "Parameters": {"Timeout": {"Type": "Number", "Default": 10}},
        "Resources": resources,
        "Outputs": {"FnName": {"Value": {"Ref": "Fn"}}, "Greeting": {"Value": "hello\nworld"}}
    });
    let template_text = serde_json::to_string_pretty(&template).unwrap();
    std::fs::write(dir.join(format!("{stack}.template.json")), &template_text).unwrap();
    let template_hash = hex_sha(template_text.as_bytes());
    let publishing = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/cdk-hnb659fds-file-publishing-role-${AWS::AccountId}-${AWS::Region}";
    let assets = json!({
        "version": "36.0.0",
        "files": {
            asset_hash: {
                "source": {"path": format!("asset.{asset_hash}"), "packaging": "zip"},
                "destinations": {"current_account-current_region": {
                    "bucketName": "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}",
                    "objectKey": format!("{asset_hash}.zip"),
                    "assumeRoleArn": publishing
                }}
            },
            template_hash.clone(): {
                "source": {"path": format!("{stack}.template.json"), "packaging": "file"},
                "destinations": {"current_account-current_region": {
                    "bucketName": "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}",
                    "objectKey": format!("{template_hash}.json"),
                    "assumeRoleArn": publishing
                }}
            }
        },
        "dockerImages": {}
    });
    std::fs::write(
        dir.join(format!("{stack}.assets.json")),
        serde_json::to_string_pretty(&assets).unwrap(),
    )
    .unwrap();
    let manifest = json!({
        "version": "36.0.0",
        "artifacts": {
            format!("{stack}.assets"): {"type": "cdk:asset-manifest", "properties": {"file": format!("{stack}.assets.json")}},
            stack: {
                "type": "aws:cloudformation:stack",
                "environment": "aws://unknown-account/unknown-region",
                "properties": {
                    "templateFile": format!("{stack}.template.json"),
                    "assumeRoleArn": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/cdk-hnb659fds-deploy-role-${AWS::AccountId}-${AWS::Region}",
                    "cloudFormationExecutionRoleArn": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/cdk-hnb659fds-cfn-exec-role-${AWS::AccountId}-${AWS::Region}",
                    "stackTemplateAssetObjectUrl": format!("s3://cdk-hnb659fds-assets-${{AWS::AccountId}}-${{AWS::Region}}/{template_hash}.json"),
                    "tags": {"project": "ssm"}
                },
                "dependencies": [format!("{stack}.assets")],
                "displayName": stack
            },
            "Tree": {"type": "cdk:tree", "properties": {"file": "tree.json"}}
        }
    });
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
}

pub fn hex_sha(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A JWT shaped like GitHub's (unsigned here; moto does not verify it).
pub fn fake_jwt(sub: &str) -> String {
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "{}.{}.{}",
        b64(json!({"alg": "RS256", "typ": "JWT", "kid": "test"})),
        b64(json!({
            "iss": "https://token.actions.githubusercontent.com", "sub": sub, "aud": "sts.amazonaws.com",
            "repository": "octo/serverless-ssm", "ref": "refs/heads/main", "exp": 4102444800u64
        })),
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode("signature-bytes-that-must-stay-secret")
    )
}

/// The runner's token endpoint: answers `{"value": jwt}` when the request carries the expected
/// bearer token and `audience` query, 401/400 otherwise; records every request line.
pub struct OidcServer {
    pub url: String,
    pub bearer: String,
    pub jwt: String,
    pub requests: Arc<Mutex<Vec<String>>>,
}

pub async fn start_oidc(expected_audience: &'static str) -> OidcServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bearer = format!("runner-{}", uuid::Uuid::new_v4().simple());
    let jwt = fake_jwt("repo:octo/serverless-ssm:ref:refs/heads/main");
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (b, j, r) = (bearer.clone(), jwt.clone(), requests.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (b, j, r) = (b.clone(), j.clone(), r.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut n = 0;
                while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => n += k,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let request_line = head.lines().next().unwrap_or_default().to_owned();
                r.lock().unwrap().push(request_line.clone());
                let authorized = head
                    .lines()
                    .any(|l| l.eq_ignore_ascii_case(&format!("authorization: Bearer {b}")));
                let audience_ok = request_line
                    .split(['?', '&', ' '])
                    .any(|kv| kv == format!("audience={expected_audience}"));
                let (status, body) = match (authorized, audience_ok) {
                    (false, _) => ("401 Unauthorized", r#"{"message":"bad token"}"#.to_owned()),
                    (true, false) => (
                        "400 Bad Request",
                        r#"{"message":"wrong audience"}"#.to_owned(),
                    ),
                    (true, true) => ("200 OK", json!({"count": 1, "value": j}).to_string()),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    OidcServer {
        url: format!(
            "http://{addr}/_apis/distributedtask/hubs/build/plans/x/jobs/y/idtoken?api-version=2.0"
        ),
        bearer,
        jwt,
        requests,
    }
}

/// What a run of the binary left behind.
pub struct RunResult {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub outputs: BTreeMap<String, String>,
    pub summary: String,
}

/// Parses the Action's `$GITHUB_OUTPUT`: every entry must be in the heredoc form the Action
/// writes (one `<<ghadelimiter_` opening per output).
pub fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    let out = ssm_core::deploy::github::parse_output_file(text).expect("well-formed outputs");
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("<<ghadelimiter_"))
            .count(),
        out.len(),
        "heredoc output only:\n{text}"
    );
    out
}

/// Runs `ssm-action` with exactly `env` (plus fresh output and summary files).
pub async fn run_action(work: &Path, env: &[(&str, String)]) -> RunResult {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let output: PathBuf = work.join(format!("output-{id}"));
    let summary: PathBuf = work.join(format!("summary-{id}"));
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ssm-action"));
    cmd.env_clear()
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(180), cmd.output())
        .await
        .expect("ssm-action finished within 3 minutes")
        .unwrap();
    RunResult {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        outputs: parse_outputs(&std::fs::read_to_string(&output).unwrap_or_default()),
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
    }
}

/// Creates the bootstrap bucket the assembly publishes to (bootstrapping is not the Action's job).
pub async fn bootstrap_bucket(s3: &aws_sdk_s3::Client) {
    let _ = s3.create_bucket().bucket(BUCKET).send().await;
}

pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    )
}

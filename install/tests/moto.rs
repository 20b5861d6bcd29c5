//! The install against moto and the GitHub emulator: a first run does every step, a second
//! skips them all, and a run that stopped half-way resumes where it stopped.
#![expect(clippy::unwrap_used, clippy::panic, reason = "test code fails loudly")]

use std::path::Path;
use std::sync::{Arc, Mutex};

use clap::Parser as _;
use serde_json::{Value, json};
use ssm_core::install::Outcome;
use ssm_install::{Confirm, InstallOpts, Installer};
use ssm_testkit::github::{
    GitHubEmulator, TEST_APP_PRIVATE_KEY_PEM, TEST_APP_PUBLIC_KEY_PEM, confirm_setup_page,
};

const APP_ID: u64 = 424_242;
const REGION: &str = "us-east-1";

/// A test's own names: stacks, bootstrap qualifier (so its bucket and parameter are its own).
struct Names {
    prefix: String,
    qualifier: String,
}

impl Names {
    fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Names {
            prefix: format!("I{}", &id[..8]),
            qualifier: id[8..18].to_owned(),
        }
    }
    fn stack(&self, role: &str) -> String {
        format!("{}{role}", self.prefix)
    }
    fn bucket(&self) -> String {
        format!("cdk-{}-assets-123456789012-{REGION}", self.qualifier)
    }
}

fn hex_sha(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = <sha2::Sha256 as sha2::Digest>::digest(bytes);
    digest.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A CDK-shaped assembly of the three stacks, in miniature: the OIDC stack's two role outputs,
/// the App stack's two secrets (random placeholders) and its webhook URL, and a Serverless stack
/// that depends on the App stack. Each stack publishes its template to the bootstrap bucket.
fn write_assembly(dir: &Path, names: &Names, serverless: &Value) {
    let role = |service: &str| {
        json!({"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}}})
    };
    let secret = json!({"Type": "AWS::SecretsManager::Secret", "Properties": {
        "GenerateSecretString": {"PasswordLength": 64, "ExcludePunctuation": true}}});
    let templates = [
        (
            names.stack("Oidc"),
            json!({
                "Resources": {"DeployRole": role("lambda.amazonaws.com"), "PlanRole": role("lambda.amazonaws.com")},
                "Outputs": {
                    "DeployRoleArn": {"Value": {"Fn::GetAtt": ["DeployRole", "Arn"]}},
                    "PlanRoleArn": {"Value": {"Fn::GetAtt": ["PlanRole", "Arn"]}}
                }
            }),
            vec![],
        ),
        (
            names.stack("App"),
            json!({
                "Resources": {"PrivateKey": secret, "WebhookSecret": secret},
                "Outputs": {
                    "PrivateKeySecretArn": {"Value": {"Ref": "PrivateKey"}},
                    "WebhookSecretArn": {"Value": {"Ref": "WebhookSecret"}},
                    "WebhookUrl": {"Value": "https://abcdefghij.lambda-url.us-east-1.on.aws/webhooks"}
                }
            }),
            vec![],
        ),
        (
            names.stack("Serverless"),
            serverless.clone(),
            vec![names.stack("App")],
        ),
    ];
    let bucket = format!(
        "cdk-{}-assets-${{AWS::AccountId}}-${{AWS::Region}}",
        names.qualifier
    );
    let mut artifacts = serde_json::Map::new();
    for (stack, template, deps) in templates {
        let text = serde_json::to_string_pretty(&template).unwrap();
        std::fs::write(dir.join(format!("{stack}.template.json")), &text).unwrap();
        let hash = hex_sha(text.as_bytes());
        let assets = json!({"version": "36.0.0", "dockerImages": {}, "files": {hash.clone(): {
            "source": {"path": format!("{stack}.template.json"), "packaging": "file"},
            "destinations": {"current_account-current_region": {
                "bucketName": bucket, "objectKey": format!("{hash}.json")}}}}});
        std::fs::write(
            dir.join(format!("{stack}.assets.json")),
            serde_json::to_string(&assets).unwrap(),
        )
        .unwrap();
        artifacts.insert(
            format!("{stack}.assets"),
            json!({"type": "cdk:asset-manifest", "properties": {"file": format!("{stack}.assets.json")}}),
        );
        let mut dependencies = vec![format!("{stack}.assets")];
        dependencies.extend(deps);
        artifacts.insert(
            stack.clone(),
            json!({
                "type": "aws:cloudformation:stack",
                "environment": "aws://unknown-account/unknown-region",
                "properties": {
                    "templateFile": format!("{stack}.template.json"),
                    "stackTemplateAssetObjectUrl": format!("s3://{bucket}/{hash}.json"),
                    "requiresBootstrapStackVersion": 6,
                    "bootstrapStackVersionSsmParameter": format!("/cdk-bootstrap/{}/version", names.qualifier)
                },
                "dependencies": dependencies,
                "displayName": stack
            }),
        );
    }
    let manifest = json!({"version": "36.0.0", "artifacts": artifacts});
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
}

fn queue() -> Value {
    json!({"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 60}}},
           "Outputs": {"QueueUrl": {"Value": {"Ref": "Queue"}}}})
}

/// moto through the sandbox's launcher (`sandbox/moto/ssm_moto.py`): its change sets publish
/// stack outputs as CloudFormation does, where plain moto's leave none, and the install reads
/// the stacks' outputs. One per test, stopped when dropped.
struct Moto {
    child: std::process::Child,
    url: String,
}

impl Moto {
    async fn start() -> Moto {
        let python = std::env::var("SSM_VENV")
            .map(|venv| format!("{venv}/bin/python"))
            .unwrap_or_else(|_| "python3".to_owned());
        let launcher = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sandbox/moto/ssm_moto.py");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(&python)
            .arg(&launcher)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {python} {}: {e}", launcher.display()));
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..600 {
            if reqwest::get(format!("{}/moto-api/", moto.url))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return moto;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "moto ({}) did not answer within a minute",
            launcher.display()
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Setup {
    _server: Moto,
    moto: aws_config::SdkConfig,
    github: GitHubEmulator,
    names: Names,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new(test: &str, serverless: &Value) -> Option<Setup> {
        // Emulators expected (AWS_ENDPOINT_URL set, or required): this test runs its own moto.
        ssm_testkit::moto_endpoint(test)?;
        let server = Moto::start().await;
        let moto = ssm_testkit::aws_config(&server.url).await;
        let github = GitHubEmulator::start(APP_ID, TEST_APP_PUBLIC_KEY_PEM).await;
        let names = Names::new();
        let dir = tempfile::tempdir().unwrap();
        write_assembly(dir.path(), &names, serverless);
        Some(Setup {
            _server: server,
            moto,
            github,
            names,
            dir,
        })
    }

    fn opts(&self) -> InstallOpts {
        InstallOpts::try_parse_from([
            "ssm-install".to_owned(),
            format!("--cloud-assembly={}", self.dir.path().display()),
            format!("--region={REGION}"),
            format!("--oidc-stack={}", self.names.stack("Oidc")),
            format!("--app-stack={}", self.names.stack("App")),
            format!("--serverless-stack={}", self.names.stack("Serverless")),
            format!("--github-url={}", self.github.base_url()),
            format!("--github-api-url={}", self.github.base_url()),
            "--listen=127.0.0.1:0".to_owned(),
            "--registration-timeout-secs=30".to_owned(),
        ])
        .unwrap()
    }

    /// What `cdk bootstrap` leaves that deploys need: the version parameter and the bucket.
    async fn bootstrap(&self) {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.moto)
                .force_path_style(true)
                .build(),
        )
        .create_bucket()
        .bucket(self.names.bucket())
        .send()
        .await
        .unwrap();
        aws_sdk_ssm::Client::new(&self.moto)
            .put_parameter()
            .name(format!("/cdk-bootstrap/{}/version", self.names.qualifier))
            .value("21")
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .send()
            .await
            .unwrap();
    }

    /// One install run; `confirm` drives the registration page (`None`: nobody does). Returns
    /// its outcomes (or error) and the lines it printed.
    async fn install(
        &self,
        confirm: Option<&Confirm>,
    ) -> (anyhow::Result<Vec<Outcome>>, Vec<String>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let say = move |l: &str| sink.lock().unwrap().push(l.to_owned());
        let opts = self.opts();
        let result = Installer::new(&opts, &self.moto, &say, confirm).run().await;
        let printed = lines.lock().unwrap().clone();
        (result, printed)
    }

    async fn secret(&self, output: &str) -> String {
        let stack = aws_sdk_cloudformation::Client::new(&self.moto)
            .describe_stacks()
            .stack_name(self.names.stack("App"))
            .send()
            .await
            .unwrap();
        let arn = stack.stacks()[0]
            .outputs()
            .iter()
            .find(|o| o.output_key() == Some(output))
            .and_then(|o| o.output_value())
            .unwrap()
            .to_owned();
        aws_sdk_secretsmanager::Client::new(&self.moto)
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .unwrap()
            .secret_string()
            .unwrap()
            .to_owned()
    }

    async fn stack_exists(&self, role: &str) -> bool {
        aws_sdk_cloudformation::Client::new(&self.moto)
            .describe_stacks()
            .stack_name(self.names.stack(role))
            .send()
            .await
            .is_ok()
    }
}

fn browser() -> Box<Confirm> {
    Box::new(|url: String| {
        Box::pin(async move {
            confirm_setup_page(&url)
                .await
                .map(drop)
                .map_err(anyhow::Error::msg)
        })
    })
}

fn closed_browser() -> Box<Confirm> {
    Box::new(|_| Box::pin(async { anyhow::bail!("the browser was closed before confirming") }))
}

fn nobody() -> Box<Confirm> {
    Box::new(|url: String| Box::pin(async move { panic!("registration asked again: {url}") }))
}

fn kinds(outcomes: &[Outcome]) -> Vec<&'static str> {
    outcomes
        .iter()
        .map(|o| match o {
            Outcome::Done(_) => "done",
            Outcome::Skipped(_) => "skipped",
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_install_does_every_step_and_a_second_changes_nothing() {
    let Some(setup) = Setup::new(
        "a_first_install_does_every_step_and_a_second_changes_nothing",
        &queue(),
    )
    .await
    else {
        return;
    };
    // Not bootstrapped: refused before anything is deployed, with the command that fixes it.
    let (result, lines) = setup.install(Some(&*browser())).await;
    let err = format!("{:#}", result.unwrap_err());
    assert!(
        err.contains("npx cdk bootstrap aws://123456789012/us-east-1"),
        "{err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("step 1/6 CDK bootstrap: failed")),
        "{lines:?}"
    );
    assert!(!setup.stack_exists("Oidc").await);

    setup.bootstrap().await;
    let (result, lines) = setup.install(Some(&*browser())).await;
    let outcomes = result.unwrap();
    assert_eq!(
        kinds(&outcomes),
        ["skipped", "done", "done", "done", "done", "done"],
        "{lines:#?}"
    );
    for (i, step) in ssm_install::STEPS.iter().enumerate() {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("step {}/6 {step}: ", i + 1))),
            "step {step} not printed: {lines:#?}"
        );
    }
    // The App's credentials went into the App stack's own secrets.
    let key: Value = serde_json::from_str(&setup.secret("PrivateKeySecretArn").await).unwrap();
    assert_eq!(key["app_id"], APP_ID.to_string());
    assert_eq!(key["pem"], TEST_APP_PRIVATE_KEY_PEM);
    assert!(
        setup
            .secret("WebhookSecretArn")
            .await
            .starts_with("emu-webhook-secret-")
    );
    // The repository variables, with the OIDC stack's role ARNs.
    for name in [
        "AWS_DEPLOY_ROLE_ARN=arn:aws:iam::123456789012:role/",
        "AWS_PLAN_ROLE_ARN=arn:aws:iam::123456789012:role/",
    ] {
        assert!(
            lines.iter().any(|l| l.trim_start().starts_with(name)),
            "{name}: {lines:#?}"
        );
    }
    assert!(
        lines.iter().any(|l| l.trim() == "AWS_REGION=us-east-1"),
        "{lines:#?}"
    );

    // Again: every stack is an empty change set, the App is not registered twice.
    let (result, lines) = setup.install(Some(&*nobody())).await;
    let outcomes = result.unwrap();
    assert_eq!(
        kinds(&outcomes),
        [
            "skipped", "skipped", "skipped", "skipped", "skipped", "done"
        ],
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("empty change set")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("already registered")),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_stopped_at_registration_resumes_there() {
    let Some(setup) =
        Setup::new("an_install_stopped_at_registration_resumes_there", &queue()).await
    else {
        return;
    };
    setup.bootstrap().await;
    let (result, lines) = setup.install(Some(&*closed_browser())).await;
    assert!(
        format!("{:#}", result.unwrap_err()).contains("browser was closed"),
        "{lines:#?}"
    );
    assert!(setup.stack_exists("App").await);
    assert!(
        !setup.stack_exists("Serverless").await,
        "nothing after the failed step runs"
    );

    let (result, lines) = setup.install(Some(&*browser())).await;
    assert_eq!(
        kinds(&result.unwrap()),
        ["skipped", "skipped", "skipped", "done", "done", "done"],
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_stopped_after_registration_does_not_register_again() {
    let Some(setup) = Setup::new(
        "an_install_stopped_after_registration_does_not_register_again",
        &queue(),
    )
    .await
    else {
        return;
    };
    // The Serverless stack's Lambda zip was not built: its asset is missing from the assembly.
    let zip_asset = |id: &str| {
        let manifest = setup
            .dir
            .path()
            .join(format!("{}.assets.json", setup.names.stack("Serverless")));
        let mut assets: Value =
            serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
        let mut destinations = assets["files"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()["destinations"]
            .clone();
        destinations["current_account-current_region"]["objectKey"] = json!(format!("{id}.zip"));
        assets["files"][id] = json!({"source": {"path": format!("asset.{id}"), "packaging": "zip"},
                                     "destinations": destinations});
        std::fs::write(&manifest, assets.to_string()).unwrap();
    };
    zip_asset("0123abcd");
    setup.bootstrap().await;
    let (result, lines) = setup.install(Some(&*browser())).await;
    let err = format!("{:#}", result.unwrap_err());
    assert!(err.contains("asset.0123abcd"), "{err}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("step 4/6 register the GitHub App: done")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("step 5/6 deploy the Serverless SSM stack: failed")),
        "{lines:#?}"
    );
    assert!(!setup.stack_exists("Serverless").await);

    // The cause fixed (the zip built, a new asset as its content is new), the install resumes
    // at the Serverless stack.
    write_assembly(setup.dir.path(), &setup.names, &queue());
    zip_asset("4567cdef");
    std::fs::create_dir_all(setup.dir.path().join("asset.4567cdef")).unwrap();
    std::fs::write(
        setup.dir.path().join("asset.4567cdef/bootstrap"),
        "#!/bin/sh\n",
    )
    .unwrap();
    let (result, lines) = setup.install(Some(&*nobody())).await;
    assert_eq!(
        kinds(&result.unwrap()),
        ["skipped", "skipped", "skipped", "skipped", "done", "done"],
        "{lines:#?}"
    );
}

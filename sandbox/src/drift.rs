//! Out-of-band changes (`ssm-sandbox drift <kind>`): make the change in moto, emit the CloudTrail
//! event it would produce through EventBridge, and follow the loop (queue → integrity function →
//! broker → GitHub dispatch → Action reconcile) to a verdict on the state.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use serde::Serialize;
use serde_json::{Value, json};

use crate::journal::Event;
use crate::system::{ACCOUNT, Sandbox, aws_error, code_sha256};
use crate::watch::Follower;

/// The out-of-band changes the sandbox can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftKind {
    /// The crypto function's environment changed (`UpdateFunctionConfiguration`).
    LambdaConfig,
    /// The crypto function's code replaced by another build (`UpdateFunctionCode`).
    LambdaCode,
    /// A resource policy put on the keyring secret (`PutResourcePolicy`).
    SecretPolicy,
    /// A statement granting another account `GetSecretValue` added to the keyring secret's
    /// current resource policy (declared or none): reconcile must put the declared one back.
    KeyringPolicy,
    /// The crypto function's asset object in the assets bucket overwritten with another build,
    /// and the function's code changed to it: reconcile must install the commit's build, not the
    /// object, restore the object, and fail the run for the tampering.
    AssetOverwrite,
}

impl DriftKind {
    pub fn name(self) -> &'static str {
        match self {
            DriftKind::LambdaConfig => "lambda-config",
            DriftKind::LambdaCode => "lambda-code",
            DriftKind::SecretPolicy => "secret-policy",
            DriftKind::KeyringPolicy => "keyring-policy",
            DriftKind::AssetOverwrite => "asset-overwrite",
        }
    }

    /// Every kind, in the order `e2e` runs them.
    pub const ALL: [DriftKind; 5] = [
        DriftKind::LambdaCode,
        DriftKind::LambdaConfig,
        DriftKind::SecretPolicy,
        DriftKind::KeyringPolicy,
        DriftKind::AssetOverwrite,
    ];

    pub fn parse(s: &str) -> Option<DriftKind> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The exit code the dispatched reconcile must end with: tampering fails the run.
    pub fn expected_reconcile_exit(self) -> i32 {
        match self {
            DriftKind::AssetOverwrite => 1,
            _ => 0,
        }
    }
}

/// Whether the change was undone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "why", rename_all = "kebab-case")]
pub enum Verdict {
    Restored,
    /// Not undone, and the sandbox cannot blame the emulator.
    NotRestored(String),
    /// Not undone because moto does not implement what would undo it on AWS.
    EmulatorCannotRevert(String),
}

/// What `drift` reports.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub kind: DriftKind,
    /// Milliseconds since the change was made, and what happened then.
    pub timeline: Vec<(u128, String)>,
    /// Dispatches GitHub accepted for this change.
    pub dispatches: usize,
    /// How each reconcile run since the change ended: its exit code, `None` for a signal or a
    /// run that could not start.
    #[serde(default)]
    pub reconcile_exits: Vec<Option<i32>>,
    pub verdict: Verdict,
}

impl DriftReport {
    /// The process exit code: 0 restored, 1 not restored, 3 not restorable in the emulator.
    pub fn exit_code(&self) -> u8 {
        match self.verdict {
            Verdict::Restored => 0,
            Verdict::NotRestored(_) => 1,
            Verdict::EmulatorCannotRevert(_) => 3,
        }
    }
}

/// The role the out-of-band change is made with: someone's console session, not the deploy role.
const OPERATOR_ROLE: &str = "ops-oncall";

/// How long each stage of the loop may take before the report says it did not happen.
const QUEUE_WAIT: Duration = Duration::from_secs(10);
/// The function watcher reads moto every 500 ms; a function follows a change within this.
const FOLLOW_WAIT: Duration = Duration::from_secs(5);
const DISPATCH_WAIT: Duration = Duration::from_secs(60);
const RECONCILE_WAIT: Duration = Duration::from_secs(300);

impl Sandbox {
    /// Makes the change, emits its CloudTrail event, follows the loop, judges the state.
    pub async fn drift(&self, kind: DriftKind) -> anyhow::Result<DriftReport> {
        // What runs is what moto holds, so the change below is the only one left to follow.
        self.in_step().await?;
        let crypto_slot = self
            .functions
            .iter()
            .find(|(id, _)| id.starts_with("CryptoFunction"))
            .map(|(_, f)| f.clone())
            .context("the stack has no crypto function")?;
        let before = crypto_slot
            .deployed()
            .context("the crypto function is not running")?;
        let secret = self
            .outputs
            .get("KeyringSecretArn")
            .cloned()
            .context("the stack has no KeyringSecretArn output")?;
        let dispatches_before = self.dispatches().await?.len();
        let lambda = aws_sdk_lambda::Client::new(&self.aws);
        let sm = aws_sdk_secretsmanager::Client::new(&self.aws);
        let policy_before = resource_policy(&sm, &secret).await;

        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.aws)
                .force_path_style(true)
                .build(),
        );
        let bucket = crate::system::assets_bucket(&self.opts.region);
        let asset_key = match kind {
            DriftKind::AssetOverwrite => {
                Some(asset_object_of(&s3, &bucket, &before.code_sha256).await?)
            }
            _ => None,
        };

        let t0 = Instant::now();
        let (source, event_source, event_name, params) = match kind {
            DriftKind::LambdaCode | DriftKind::AssetOverwrite => {
                // Another build of ours: the rotation function's code, as a wrong deploy would.
                let other = self
                    .functions
                    .values()
                    .filter_map(|f| f.deployed())
                    .find(|d| d.code_sha256 != before.code_sha256)
                    .context("no other build to put in place")?;
                let bytes = self.build(&other.code_sha256)?;
                if let Some(key) = &asset_key {
                    // What a pull request's plan job could do with the publishing role.
                    s3.put_object()
                        .bucket(&bucket)
                        .key(key)
                        .body(aws_sdk_s3::primitives::ByteStream::from(bytes.clone()))
                        .send()
                        .await
                        .map_err(|e| anyhow!("PutObject: {}", aws_error(&e)))?;
                    self.journal.mark(format!(
                        "change: asset object s3://{bucket}/{key} overwritten with {}'s build",
                        other.name
                    ));
                }
                let now = self.replace_code(&before.name, bytes).await?;
                self.journal.mark(format!(
                    "change: {} code replaced out of band ({} → {}, {}'s build)",
                    before.name,
                    short(&before.code_sha256),
                    short(&now),
                    other.name
                ));
                (
                    "aws.lambda",
                    "lambda.amazonaws.com",
                    "UpdateFunctionCode20150331v2",
                    json!({"functionName": before.name, "publish": false}),
                )
            }
            DriftKind::LambdaConfig => {
                let mut env = before.env.clone();
                env.insert("SSM_KEYRING_TTL_SECS".into(), "86400".into());
                lambda
                    .update_function_configuration()
                    .function_name(&before.name)
                    .environment(
                        aws_sdk_lambda::types::Environment::builder()
                            .set_variables(Some(env.into_iter().collect()))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| anyhow!("UpdateFunctionConfiguration: {}", aws_error(&e)))?;
                self.journal.mark(format!(
                    "change: {} environment SSM_KEYRING_TTL_SECS set to 86400 out of band",
                    before.name
                ));
                (
                    "aws.lambda",
                    "lambda.amazonaws.com",
                    "UpdateFunctionConfiguration20150331v2",
                    json!({"functionName": before.name,
                           "environment": {"variables": "HIDDEN_DUE_TO_SECURITY_REASONS"}}),
                )
            }
            DriftKind::KeyringPolicy => {
                let grant = json!({"Sid": "CrossAccountRead", "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
                    "Action": "secretsmanager:GetSecretValue", "Resource": "*"});
                let mut policy = policy_before
                    .as_deref()
                    .and_then(|p| serde_json::from_str::<Value>(p).ok())
                    .unwrap_or_else(|| json!({"Version": "2012-10-17", "Statement": []}));
                match policy.get_mut("Statement") {
                    Some(Value::Array(statements)) => statements.push(grant),
                    Some(one) => *one = json!([one.take(), grant]),
                    None => policy["Statement"] = json!([grant]),
                }
                let policy = policy.to_string();
                sm.put_resource_policy()
                    .secret_id(&secret)
                    .resource_policy(&policy)
                    .send()
                    .await
                    .map_err(|e| anyhow!("PutResourcePolicy: {}", aws_error(&e)))?;
                self.journal.mark(format!(
                    "change: keyring secret's resource policy ({}) given a statement granting account 999999999999 GetSecretValue",
                    if policy_before.is_some() { "declared" } else { "none before" }
                ));
                (
                    "aws.secretsmanager",
                    "secretsmanager.amazonaws.com",
                    "PutResourcePolicy",
                    json!({"secretId": secret, "resourcePolicy": policy, "blockPublicPolicy": true}),
                )
            }
            DriftKind::SecretPolicy => {
                let policy = json!({"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
                    "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})
                .to_string();
                sm.put_resource_policy()
                    .secret_id(&secret)
                    .resource_policy(&policy)
                    .send()
                    .await
                    .map_err(|e| anyhow!("PutResourcePolicy: {}", aws_error(&e)))?;
                self.journal.mark(
                    "change: keyring secret given a resource policy granting account 999999999999 GetSecretValue",
                );
                (
                    "aws.secretsmanager",
                    "secretsmanager.amazonaws.com",
                    "PutResourcePolicy",
                    json!({"secretId": secret, "resourcePolicy": policy, "blockPublicPolicy": true}),
                )
            }
        };
        // The function watcher follows the change, as Lambda runs what it holds.
        if !matches!(kind, DriftKind::SecretPolicy | DriftKind::KeyringPolicy) {
            let followed = self
                .journal
                .wait_for(t0, FOLLOW_WAIT, |e| {
                    matches!(e, Event::FunctionFollowed(f) if f.name == before.name
                            && (kind == DriftKind::LambdaConfig
                                || f.code_sha256 != before.code_sha256))
                })
                .await;
            if followed.is_none() {
                self.journal.mark(format!(
                    "lambda: {} did not follow the change within {FOLLOW_WAIT:?}",
                    before.name
                ));
            }
            let probe = self.encrypt_probe().await;
            self.journal
                .mark(format!("gateway: POST /v1/encrypt → {probe}"));
        }

        let event = cloudtrail_event(&self.opts.region, source, event_source, event_name, params);
        self.emit(&event).await?;
        self.follow(t0, dispatches_before).await;
        // Lambda follows what reconcile left.
        self.in_step().await?;

        let verdict = match kind {
            DriftKind::LambdaCode => {
                let now = self.deployed_crypto(&before.name).await?;
                let probe = self.encrypt_probe().await;
                self.journal
                    .mark(format!("gateway: POST /v1/encrypt → {probe}"));
                if now.code_sha256 == before.code_sha256 && probe.starts_with("200") {
                    Verdict::Restored
                } else {
                    Verdict::NotRestored(format!(
                        "code is {} (deployed build {}), encrypt answers {probe}",
                        short(&now.code_sha256),
                        short(&before.code_sha256)
                    ))
                }
            }
            DriftKind::LambdaConfig => {
                let now = self.deployed_crypto(&before.name).await?;
                if now.env == before.env {
                    Verdict::Restored
                } else {
                    Verdict::EmulatorCannotRevert(
                        "moto accepts the reconcile change set's DeploymentMode REVERT_DRIFT but ignores it, so the environment stays changed; on AWS the same change set restores it".into(),
                    )
                }
            }
            // Reconcile puts a secret's declared resource policy back (or deletes an undeclared
            // one) itself, without REVERT_DRIFT: both kinds end with the policy as it was.
            DriftKind::SecretPolicy | DriftKind::KeyringPolicy => {
                let now = resource_policy(&sm, &secret).await;
                if same_policy(now.as_deref(), policy_before.as_deref()) {
                    Verdict::Restored
                } else {
                    Verdict::NotRestored(format!(
                        "the keyring's resource policy is {}; before the change it was {}",
                        now.as_deref().unwrap_or("none"),
                        policy_before.as_deref().unwrap_or("none")
                    ))
                }
            }
            DriftKind::AssetOverwrite => {
                let now = self.deployed_crypto(&before.name).await?;
                let object = match &asset_key {
                    Some(key) => object_sha256(&s3, &bucket, key).await,
                    None => None,
                };
                let reported = self.journal.since(t0).iter().any(|m| {
                    matches!(m.event, Event::ReconcileDone { exit: Some(code), .. }
                        if code == kind.expected_reconcile_exit())
                });
                if now.code_sha256 != before.code_sha256 {
                    Verdict::NotRestored(format!(
                        "the function runs {} (the deployed build is {})",
                        short(&now.code_sha256),
                        short(&before.code_sha256)
                    ))
                } else if object.as_deref() != Some(before.code_sha256.as_str()) {
                    Verdict::NotRestored(format!(
                        "the asset object holds {} (the deployed build is {})",
                        object.as_deref().map_or("nothing", short),
                        short(&before.code_sha256)
                    ))
                } else if !reported {
                    Verdict::NotRestored(
                        "restored, but the reconcile did not fail the run for the tampering".into(),
                    )
                } else {
                    Verdict::Restored
                }
            }
        };
        // Anything the loop dispatches late for this change is counted too.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let dispatches = self
            .dispatches()
            .await?
            .len()
            .saturating_sub(dispatches_before);
        let marks = self.journal.since(t0);
        let reconcile_exits = marks
            .iter()
            .filter_map(|m| match &m.event {
                Event::ReconcileDone { exit, .. } => Some(*exit),
                Event::ReconcileFailedToRun { .. } => Some(None),
                _ => None,
            })
            .collect();
        let timeline = marks
            .into_iter()
            .map(|m| (m.at.duration_since(t0).as_millis(), m.event.to_string()))
            .collect();
        Ok(DriftReport {
            kind,
            timeline,
            dispatches,
            reconcile_exits,
            verdict,
        })
    }

    async fn deployed_crypto(&self, name: &str) -> anyhow::Result<crate::system::Deployed> {
        crate::system::deployed_functions(&self.aws, &self.opts.stack)
            .await?
            .into_values()
            .find(|d| d.name == name)
            .with_context(|| format!("{name} is gone from the stack"))
    }

    /// Waits until every function runs what moto holds (the function watcher's next pass).
    pub(crate) async fn in_step(&self) -> anyhow::Result<()> {
        let follower = Follower::of(self);
        let deadline = Instant::now() + FOLLOW_WAIT;
        while !follower.in_step().await? {
            if Instant::now() > deadline {
                self.journal.mark(format!(
                    "lambda: the functions did not follow moto within {FOLLOW_WAIT:?}"
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Puts the event on the default bus, as CloudTrail does; if moto's EventBridge has not
    /// routed it to the queue within [`QUEUE_WAIT`], sends it as the rule's target would, and
    /// says so.
    async fn emit(&self, event: &Value) -> anyhow::Result<()> {
        let since = Instant::now();
        let eb = aws_sdk_eventbridge::Client::new(&self.aws);
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source(event["source"].as_str().unwrap_or_default())
            .detail_type(event["detail-type"].as_str().unwrap_or_default())
            .detail(event["detail"].to_string())
            .build();
        let put = eb
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| anyhow!("PutEvents: {}", aws_error(&e)))?;
        self.journal.mark(format!(
            "event: CloudTrail {} put on the default event bus ({} failed)",
            event["detail"]["eventName"].as_str().unwrap_or_default(),
            put.failed_entry_count()
        ));
        let queued = self
            .journal
            .wait_for(since, QUEUE_WAIT, |e| {
                matches!(e, Event::RecordsReceived { .. })
            })
            .await;
        if queued.is_some() {
            return Ok(());
        }
        let queue = self
            .outputs
            .get("IntegrityQueueUrl")
            .context("no IntegrityQueueUrl output")?;
        aws_sdk_sqs::Client::new(&self.aws)
            .send_message()
            .queue_url(queue)
            .message_body(event.to_string())
            .send()
            .await
            .map_err(|e| anyhow!("SendMessage: {}", aws_error(&e)))?;
        self.journal.mark(format!(
            "event: moto's EventBridge did not route it to the queue within {QUEUE_WAIT:?}; sent to the queue as the rule's target would"
        ));
        Ok(())
    }

    /// Waits for the dispatch and the reconcile it triggers.
    async fn follow(&self, t0: Instant, dispatches_before: usize) {
        let deadline = Instant::now() + DISPATCH_WAIT;
        loop {
            let n = self.dispatches().await.map(|d| d.len()).unwrap_or(0);
            if n > dispatches_before {
                break;
            }
            if Instant::now() > deadline {
                self.journal.mark(format!(
                    "no dispatch within {DISPATCH_WAIT:?} (see the integrity function's log)"
                ));
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ended = self
            .journal
            .wait_for(t0, RECONCILE_WAIT, Event::ends_a_reconcile)
            .await;
        if ended.is_none() {
            self.journal.mark(format!(
                "reconcile did not finish within {RECONCILE_WAIT:?}"
            ));
        }
    }

    /// `POST /v1/encrypt` through the gateway, signed by the operator: `200 …` or the status and
    /// error.
    pub async fn encrypt_probe(&self) -> String {
        let request = reqwest::Client::new()
            .post(format!("{}/v1/encrypt", self.gateway_url))
            .json(&json!({"plaintext": "c2FuZGJveA=="}))
            .timeout(Duration::from_secs(30));
        let r = crate::callers::send_as(request, self.operator.as_ref(), &self.opts.region).await;
        match r {
            Ok(r) => {
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                if status == 200 {
                    format!("200 (key version {})", body["key_version"])
                } else {
                    format!("{status} {}", body)
                }
            }
            Err(e) => format!("no answer: {e}"),
        }
    }
}

/// Whether two resource policies (`None`: no policy) are the same policy.
fn same_policy(a: Option<&str>, b: Option<&str>) -> bool {
    let parse = |p: Option<&str>| {
        p.and_then(|p| serde_json::from_str::<Value>(p).ok())
            .map(|v| ssm_core::deploy::undeclared::normalize_policy(&v))
    };
    parse(a) == parse(b)
}

/// The asset object holding the code with `CodeSha256` `code_sha256`.
async fn asset_object_of(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    code_sha256: &str,
) -> anyhow::Result<String> {
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| anyhow!("ListObjectsV2 {bucket}: {}", aws_error(&e)))?;
    for key in listed.contents().iter().filter_map(|o| o.key()) {
        if key.ends_with(".zip")
            && object_sha256(s3, bucket, key).await.as_deref() == Some(code_sha256)
        {
            return Ok(key.to_owned());
        }
    }
    Err(anyhow!(
        "no object in {bucket} holds the code {code_sha256}"
    ))
}

/// Lambda's `CodeSha256` of an object's bytes, `None` when it cannot be read.
async fn object_sha256(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Option<String> {
    let object = s3.get_object().bucket(bucket).key(key).send().await.ok()?;
    let bytes = object.body.collect().await.ok()?.into_bytes();
    Some(code_sha256(&bytes))
}

/// The secret's resource policy, `None` when it has none (or cannot be read).
async fn resource_policy(sm: &aws_sdk_secretsmanager::Client, secret: &str) -> Option<String> {
    sm.get_resource_policy()
        .secret_id(secret)
        .send()
        .await
        .ok()
        .and_then(|p| p.resource_policy)
}

/// The EventBridge event CloudTrail produces for a write call by the operator role.
pub fn cloudtrail_event(
    region: &str,
    source: &str,
    event_source: &str,
    event_name: &str,
    request_parameters: Value,
) -> Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "AWS API Call via CloudTrail",
        "source": source,
        "account": ACCOUNT,
        "time": now,
        "region": region,
        "resources": [],
        "detail": {
            "eventVersion": "1.09",
            "userIdentity": {
                "type": "AssumedRole",
                "principalId": "AROASANDBOXOPERATOR:alice",
                "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/{OPERATOR_ROLE}/alice"),
                "accountId": ACCOUNT,
                "sessionContext": {"sessionIssuer": {
                    "type": "Role", "principalId": "AROASANDBOXOPERATOR",
                    "arn": format!("arn:aws:iam::{ACCOUNT}:role/{OPERATOR_ROLE}"),
                    "accountId": ACCOUNT, "userName": OPERATOR_ROLE}}
            },
            "eventTime": now,
            "eventSource": event_source,
            "eventName": event_name,
            "awsRegion": region,
            "sourceIPAddress": "127.0.0.1",
            "userAgent": "ssm-sandbox",
            "requestParameters": request_parameters,
            "responseElements": null,
            "requestID": uuid::Uuid::new_v4().to_string(),
            "eventID": uuid::Uuid::new_v4().to_string(),
            "readOnly": false,
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": ACCOUNT,
            "eventCategory": "Management"
        }
    })
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(8)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssm_core::integrity::classify::{Classification, IgnorePolicy, classify};
    use ssm_core::integrity::cloudtrail::CloudTrailEvent;
    use ssm_core::integrity::resources::{StackResource, StackResources};

    const FUNCTION: &str = "SsmServerless-CryptoFunction63BD24A0-ZZEZPY20YJRW";
    const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:SsmServerless-Keyring5277DB2C-MOIA7P0QT4QD-PYxwiq";

    fn stack() -> StackResources {
        StackResources::new(
            Some(ACCOUNT.into()),
            Some("us-east-1".into()),
            [
                StackResource {
                    logical_id: "CryptoFunction63BD24A0".into(),
                    physical_id: FUNCTION.into(),
                    resource_type: "AWS::Lambda::Function".into(),
                },
                StackResource {
                    logical_id: "Keyring5277DB2C".into(),
                    physical_id: SECRET.into(),
                    resource_type: "AWS::SecretsManager::Secret".into(),
                },
            ],
        )
    }

    /// The events the sandbox emits are what the integrity function calls drift of the right
    /// resource, and the same calls by the deploy role are not.
    #[test]
    fn emitted_events_classify_as_drift_of_the_changed_resource() {
        let cases = [
            (
                "aws.lambda",
                "lambda.amazonaws.com",
                "UpdateFunctionCode20150331v2",
                json!({"functionName": FUNCTION}),
                "CryptoFunction63BD24A0",
            ),
            (
                "aws.lambda",
                "lambda.amazonaws.com",
                "UpdateFunctionConfiguration20150331v2",
                json!({"functionName": FUNCTION}),
                "CryptoFunction63BD24A0",
            ),
            (
                "aws.secretsmanager",
                "secretsmanager.amazonaws.com",
                "PutResourcePolicy",
                json!({"secretId": SECRET, "resourcePolicy": "{}"}),
                "Keyring5277DB2C",
            ),
        ];
        for (source, service, name, params, logical_id) in cases {
            let event = cloudtrail_event("us-east-1", source, service, name, params);
            let parsed: CloudTrailEvent =
                serde_json::from_value(event.clone()).expect("a CloudTrail event");
            let policy = IgnorePolicy::from_role_arns([format!(
                "arn:aws:iam::{ACCOUNT}:role/ssm-github-deploy"
            )])
            .expect("policy");
            match classify(&parsed, &stack(), &policy) {
                Classification::Drift(d) => {
                    assert_eq!(d.resources.len(), 1, "{name}");
                    assert_eq!(d.resources[0].logical_id, logical_id, "{name}");
                }
                other => panic!("{name}: {other:?}"),
            }
            let deployer = IgnorePolicy::from_role_arns([format!(
                "arn:aws:iam::{ACCOUNT}:role/{OPERATOR_ROLE}"
            )])
            .expect("policy");
            assert!(
                matches!(
                    classify(&parsed, &stack(), &deployer),
                    Classification::Ignored(_)
                ),
                "{name}: the same call by an ignored role is not drift"
            );
        }
    }

    #[test]
    fn kinds_parse_by_their_cli_names_only() {
        for kind in DriftKind::ALL {
            assert_eq!(DriftKind::parse(kind.name()), Some(kind));
            assert_eq!(
                <DriftKind as clap::ValueEnum>::from_str(kind.name(), false).ok(),
                Some(kind)
            );
        }
        assert_eq!(DriftKind::parse("lambda_code"), None);
        assert_eq!(DriftKind::parse(""), None);
    }

    #[test]
    fn policies_compare_as_policies_and_only_tampering_fails_the_reconcile() {
        let a = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":["b","a"],"Resource":"*"}]}"#;
        let b = r#"{"Statement":{"Resource":["*"],"Action":["a","b"],"Principal":["*"],"Effect":"Deny"},"Version":"2012-10-17"}"#;
        assert!(same_policy(Some(a), Some(b)));
        assert!(same_policy(None, None));
        assert!(!same_policy(Some(a), None));
        assert!(!same_policy(Some(a), Some(&b.replace("Deny", "Allow"))));
        for kind in DriftKind::ALL {
            let expected = if kind == DriftKind::AssetOverwrite {
                1
            } else {
                0
            };
            assert_eq!(kind.expected_reconcile_exit(), expected, "{}", kind.name());
        }
    }

    #[test]
    fn exit_codes_tell_restored_from_unrestorable() {
        let report = |verdict| DriftReport {
            kind: DriftKind::LambdaCode,
            timeline: vec![],
            dispatches: 1,
            reconcile_exits: vec![Some(0)],
            verdict,
        };
        assert_eq!(report(Verdict::Restored).exit_code(), 0);
        assert_eq!(report(Verdict::NotRestored("x".into())).exit_code(), 1);
        assert_eq!(
            report(Verdict::EmulatorCannotRevert("x".into())).exit_code(),
            3
        );
    }
}

//! The four rotation steps driven in-process against the Secrets Manager emulator.
//!
//! moto cannot run our Lambda from RotateSecret, but with its Lambda backend set to not use
//! Docker, `rotate_secret` does exactly Secrets Manager's part: enables rotation and stages an
//! empty AWSPENDING version under the token, leaving AWSCURRENT alone. The tests then call the
//! handler's steps the way Secrets Manager would.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use serde_json::{Value, json};
use ssm_core::api::Limits;
use ssm_core::keyring::Keyring;
use ssm_crypto::Service;
use ssm_keystore::{CachePolicy, KeySource, KeyringCache};
use ssm_rotation::{Outcome, RotationError, RotationEvent, Rotator, Step};

struct Env {
    client: Client,
    rotator: Rotator,
    lambda_arn: String,
}

async fn env(test: &str) -> Option<Env> {
    let endpoint = ssm_testkit::moto_endpoint(test)?;
    // Make moto's Lambda backend a no-op so RotateSecret only does Secrets Manager's part.
    let res = reqwest::Client::new()
        .post(format!("{endpoint}/moto-api/config"))
        .json(&json!({"lambda": {"use_docker": false}}))
        .send()
        .await
        .expect("moto config");
    assert!(res.status().is_success());
    let config = ssm_testkit::aws_config(&endpoint).await;
    let iam = aws_sdk_iam::Client::new(&config);
    let lambda = aws_sdk_lambda::Client::new(&config);
    let name = format!("rot-{}", uuid());
    let role = iam
        .create_role()
        .role_name(&name)
        .assume_role_policy_document("{}")
        .send()
        .await
        .expect("role")
        .role
        .expect("role")
        .arn;
    // The empty zip archive: moto stores it, never runs it.
    let empty_zip = [&b"PK\x05\x06"[..], &[0u8; 18]].concat();
    let function = lambda
        .create_function()
        .function_name(&name)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .role(role)
        .handler("bootstrap")
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(empty_zip.into())
                .build(),
        )
        .send()
        .await
        .expect("function");
    let client = Client::new(&config);
    Some(Env {
        rotator: Rotator::new(client.clone()),
        client,
        lambda_arn: function.function_arn.expect("arn"),
    })
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Env {
    async fn secret(&self, value: &str) -> String {
        let name = format!("keyring-{}", uuid());
        self.client
            .create_secret()
            .name(&name)
            .secret_string(value)
            .send()
            .await
            .expect("create secret");
        name
    }

    /// Secrets Manager's start of a rotation: returns the token.
    async fn start(&self, secret: &str) -> String {
        ssm_testkit::rotation::start(&self.client, secret, &self.lambda_arn)
            .await
            .expect("rotate_secret")
    }

    async fn step(&self, secret: &str, token: &str, step: Step) -> Result<Outcome, RotationError> {
        self.rotator
            .handle(&RotationEvent {
                secret_id: secret.to_owned(),
                token: token.to_owned(),
                step,
            })
            .await
    }

    async fn rotate(&self, secret: &str) -> String {
        ssm_testkit::rotation::rotate(&self.client, secret, &self.lambda_arn, |token, name| {
            let step: Step = serde_json::from_value(json!(name)).expect("a step name");
            async move { self.step(secret, &token, step).await }
        })
        .await
        .expect("rotation")
    }

    async fn stages(&self, secret: &str) -> HashMap<String, Vec<String>> {
        let mut stages = self
            .client
            .describe_secret()
            .secret_id(secret)
            .send()
            .await
            .expect("describe")
            .version_ids_to_stages
            .unwrap_or_default();
        for labels in stages.values_mut() {
            labels.sort();
        }
        stages
    }

    async fn current(&self, secret: &str) -> Keyring {
        let text = ssm_keystore::read_secret_string(&self.client, secret, None, Some("AWSCURRENT"))
            .await
            .expect("current");
        Keyring::from_json(&text).expect("current keyring")
    }

    async fn value(&self, secret: &str, version: &str) -> Option<String> {
        self.client
            .get_secret_value()
            .secret_id(secret)
            .version_id(version)
            .send()
            .await
            .ok()
            .and_then(|o| o.secret_string)
    }
}

fn labels(stages: &HashMap<String, Vec<String>>, version: &str) -> Vec<String> {
    stages.get(version).cloned().unwrap_or_default()
}

#[tokio::test]
async fn first_rotation_initialises_and_every_step_is_idempotent() {
    let Some(env) = env("rotation::first_rotation").await else {
        return;
    };
    let secret = env.secret(r#"{"keys": []}"#).await;
    let token = env.start(&secret).await;
    let before = env.stages(&secret).await;
    assert_eq!(labels(&before, &token), ["AWSPENDING"]);
    let original = before
        .iter()
        .find(|(_, l)| l.contains(&"AWSCURRENT".to_owned()))
        .map(|(v, _)| v.clone())
        .expect("current");

    assert_eq!(
        env.step(&secret, &token, Step::Create).await.unwrap(),
        Outcome::Created { version: 1 }
    );
    let pending = env.value(&secret, &token).await.expect("pending value");
    assert_eq!(
        env.step(&secret, &token, Step::Create).await.unwrap(),
        Outcome::PendingExists
    );
    assert_eq!(
        env.value(&secret, &token).await.as_deref(),
        Some(pending.as_str()),
        "second create changed nothing"
    );
    let after_create = env.stages(&secret).await;
    assert_eq!(labels(&after_create, &original), ["AWSCURRENT"]);
    assert_eq!(labels(&after_create, &token), ["AWSPENDING"]);

    for _ in 0..2 {
        assert_eq!(
            env.step(&secret, &token, Step::Set).await.unwrap(),
            Outcome::NothingToSet
        );
        assert!(matches!(
            env.step(&secret, &token, Step::Test).await.unwrap(),
            Outcome::Tested { .. }
        ));
        assert_eq!(
            env.stages(&secret).await,
            after_create,
            "set/test change no stage"
        );
    }

    assert_eq!(
        env.step(&secret, &token, Step::Finish).await.unwrap(),
        Outcome::Finished {
            from: Some(original.clone())
        }
    );
    let finished = env.stages(&secret).await;
    assert_eq!(labels(&finished, &token), ["AWSCURRENT"]);
    assert!(!labels(&finished, &original).contains(&"AWSCURRENT".to_owned()));
    assert_eq!(
        env.step(&secret, &token, Step::Finish).await.unwrap(),
        Outcome::AlreadyCurrent
    );
    assert_eq!(
        env.stages(&secret).await,
        finished,
        "a second finish changes nothing"
    );

    let ring = env.current(&secret).await;
    assert_eq!(ring.primary().map(|v| v.get()), Some(1));
    assert!(!pending.contains("null"));
}

#[tokio::test]
async fn three_rotations_lose_nothing_and_the_crypto_service_follows() {
    let Some(env) = env("rotation::three_rotations").await else {
        return;
    };
    let secret = env.secret(r#"{"keys": []}"#).await;
    env.rotate(&secret).await;

    // A crypto instance that cached version 1.
    let cache = Arc::new(KeyringCache::new(
        KeySource::SecretsManager {
            client: env.client.clone(),
            secret_id: secret.clone(),
        },
        CachePolicy {
            ttl: Duration::from_secs(300),
            min_refresh_interval: Duration::ZERO,
        },
    ));
    let service = Service::new(cache, Limits::default());
    let call = async |service: &Service, path: &str, body: Value| {
        let res = service
            .handle("POST", path, body.to_string().as_bytes(), None)
            .await;
        (
            res.status,
            serde_json::from_slice::<Value>(&res.body).expect("json"),
        )
    };

    let (status, enc) = call(
        &service,
        "/v1/encrypt",
        json!({"plaintext": "aGVsbG8=", "context": "Y3R4"}),
    )
    .await;
    assert_eq!((status, enc["key_version"].as_u64()), (200, Some(1)));
    let mut ciphertexts = Vec::new();
    for round in 1..=3 {
        // What a freshly started instance encrypts with: the then-current primary.
        let sealed = env
            .current(&secret)
            .await
            .encrypt(b"hello", b"ctx")
            .expect("seal");
        assert_eq!(sealed.version.get(), round);
        ciphertexts.push(sealed.ciphertext);
        env.rotate(&secret).await;
        let ring = env.current(&secret).await;
        assert_eq!(ring.primary().map(|v| v.get()), Some(round + 1));
        assert_eq!(ring.versions().count() as u32, round + 1, "no version lost");
    }

    // The cached instance still encrypts with version 1 (TTL), but decrypts a version-4
    // ciphertext by refreshing at once.
    let fresh = env
        .current(&secret)
        .await
        .encrypt(b"newest", b"")
        .expect("seal");
    assert_eq!(fresh.version.get(), 4);
    let (status, dec) = call(
        &service,
        "/v1/decrypt",
        json!({"ciphertext": fresh.ciphertext}),
    )
    .await;
    assert_eq!(
        (status, dec["plaintext"].as_str()),
        (200, Some("bmV3ZXN0")),
        "{dec}"
    );
    for ciphertext in &ciphertexts {
        let (status, dec) = call(
            &service,
            "/v1/decrypt",
            json!({"ciphertext": ciphertext, "context": "Y3R4"}),
        )
        .await;
        assert_eq!(
            (status, dec["plaintext"].as_str()),
            (200, Some("aGVsbG8=")),
            "{ciphertext}"
        );
    }

    // Retire version 1 with the operator CLI; a new instance refuses it with a clear 400.
    let out = ssm_rotation::keyring_cli::run(
        ssm_rotation::keyring_cli::Command::SetMinDecryptionVersion {
            version: 2,
            target: ssm_rotation::keyring_cli::TargetArgs::secret(secret.clone()),
        },
        async || env.client.clone(),
    )
    .await
    .expect("set min");
    assert!(out.contains("1 -> 2"), "{out}");
    let cache = Arc::new(KeyringCache::new(
        KeySource::SecretsManager {
            client: env.client.clone(),
            secret_id: secret.clone(),
        },
        CachePolicy::default(),
    ));
    let service = Service::new(cache, Limits::default());
    let (status, dec) = call(
        &service,
        "/v1/decrypt",
        json!({"ciphertext": ciphertexts[0], "context": "Y3R4"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(dec["error"]["code"], "key_version_retired");
    assert!(
        dec["error"]["message"]
            .as_str()
            .expect("message")
            .contains("below min_decryption_version 2")
    );
    let (status, _) = call(
        &service,
        "/v1/decrypt",
        json!({"ciphertext": ciphertexts[1], "context": "Y3R4"}),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn failed_test_step_leaves_awscurrent_alone() {
    let Some(env) = env("rotation::failed_test").await else {
        return;
    };
    let original = Keyring::generate(chrono::Utc::now()).expect("keyring");
    let secret = env.secret(&original.to_json()).await;
    let token = env.start(&secret).await;
    // A broken createSecret (or a hand edit) staged a keyring that lost version 1's key.
    let mut impostor = Keyring::generate(chrono::Utc::now()).expect("keyring");
    impostor.rotate(chrono::Utc::now()).expect("rotate");
    env.client
        .put_secret_value()
        .secret_id(&secret)
        .client_request_token(&token)
        .secret_string(impostor.to_json().as_str())
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("put");
    let err = env
        .step(&secret, &token, Step::Test)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("key version 1 differs"), "{err}");
    assert_eq!(env.current(&secret).await, original, "AWSCURRENT untouched");
    assert_eq!(labels(&env.stages(&secret).await, &token), ["AWSPENDING"]);
}

#[tokio::test]
async fn malformed_or_misused_secrets_fail_clearly() {
    let Some(env) = env("rotation::malformed").await else {
        return;
    };
    let secret = env.secret(r#"{"keys": [{"version": 1}]}"#).await;
    let token = env.start(&secret).await;
    let err = env
        .step(&secret, &token, Step::Create)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not hold a valid keyring"), "{err}");
    assert_eq!(env.value(&secret, &token).await, None, "nothing was staged");
    let current = ssm_keystore::read_secret_string(&env.client, &secret, None, Some("AWSCURRENT"))
        .await
        .unwrap();
    assert_eq!(current, r#"{"keys": [{"version": 1}]}"#);

    // Rotation not enabled.
    let plain = env.secret(r#"{"keys": []}"#).await;
    let err = env
        .step(&plain, "whatever", Step::Create)
        .await
        .unwrap_err();
    assert!(matches!(err, RotationError::RotationDisabled(_)), "{err}");

    // A token that is no version, and one that is not pending.
    let good = env.secret(r#"{"keys": []}"#).await;
    let first = env.rotate(&good).await;
    let err = env
        .step(&good, "no-such-token", Step::Create)
        .await
        .unwrap_err();
    assert!(matches!(err, RotationError::UnknownVersion { .. }), "{err}");
    env.rotate(&good).await;
    let err = env.step(&good, &first, Step::Create).await.unwrap_err();
    assert!(matches!(err, RotationError::NotPending { .. }), "{err}");
}

fn error_type(error: RotationError) -> String {
    lambda_runtime::Diagnostic::from(error).error_type
}

/// The version holding `label`, if any.
fn holding(stages: &HashMap<String, Vec<String>>, label: &str) -> Option<String> {
    stages
        .iter()
        .find(|(_, l)| l.iter().any(|x| x == label))
        .map(|(v, _)| v.clone())
}

#[tokio::test]
async fn finish_without_create_leaves_awscurrent_and_create_recovers() {
    let Some(env) = env("rotation::finish_without_create").await else {
        return;
    };
    let original = Keyring::generate(chrono::Utc::now()).expect("keyring");
    let secret = env.secret(&original.to_json()).await;
    let token = env.start(&secret).await;
    let before = env.stages(&secret).await;
    for step in [Step::Finish, Step::Test] {
        let err = env.step(&secret, &token, step).await.unwrap_err();
        assert!(
            err.to_string().contains("createSecret has not run"),
            "{err}"
        );
        assert_eq!(error_type(err), "PendingVersionEmpty");
        assert_eq!(env.current(&secret).await, original, "AWSCURRENT untouched");
        assert_eq!(env.stages(&secret).await, before, "no label moved");
    }
    // The empty version keeps AWSPENDING, so the retried rotation completes under the token.
    for step in [Step::Create, Step::Set, Step::Test, Step::Finish] {
        env.step(&secret, &token, step).await.expect("step");
    }
    let ring = env.current(&secret).await;
    assert_eq!(ring.primary().map(|v| v.get()), Some(2));
    assert_eq!(original.check_successor(&ring).map(|v| v.get()), Ok(2));
}

#[tokio::test]
async fn operator_rotation_before_finish_is_refused_and_the_next_rotation_keeps_every_key() {
    let Some(env) = env("rotation::stale_pending").await else {
        return;
    };
    let secret = env.secret(r#"{"keys": []}"#).await;
    env.rotate(&secret).await;
    let stale = env.start(&secret).await;
    for step in [Step::Create, Step::Set, Step::Test] {
        env.step(&secret, &stale, step).await.expect("step");
    }
    // Between testSecret and finishSecret an operator adds version 2 by hand, and data is
    // encrypted under it at once.
    let out = ssm_rotation::keyring_cli::run(
        ssm_rotation::keyring_cli::Command::Rotate {
            target: ssm_rotation::keyring_cli::TargetArgs::secret(secret.clone()),
            put: true,
            wait_secs: 0,
        },
        async || env.client.clone(),
    )
    .await
    .expect("operator rotate");
    assert!(out.contains("version 2 is now primary"), "{out}");
    let operators = env.current(&secret).await;
    let sealed = operators
        .encrypt(b"under the operator's v2", b"")
        .expect("seal");
    let operator_version = holding(&env.stages(&secret).await, "AWSCURRENT").expect("current");

    // finishSecret re-checks against AWSCURRENT as it is now: the pending keyring's version 2
    // is another key, so it refuses, leaves AWSCURRENT alone and releases the stale version.
    let err = env.step(&secret, &stale, Step::Finish).await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("not newer than the current version 2"),
        "{message}"
    );
    assert_eq!(error_type(err), "RotationInvariantViolated");
    let stages = env.stages(&secret).await;
    assert_eq!(
        holding(&stages, "AWSCURRENT"),
        Some(operator_version.clone())
    );
    assert_eq!(
        env.current(&secret).await,
        operators,
        "AWSCURRENT untouched"
    );
    assert_eq!(
        holding(&stages, "AWSPENDING"),
        None,
        "stale pending released"
    );
    // Secrets Manager's retry under the same token now fails cleanly instead of promoting.
    let err = env.step(&secret, &stale, Step::Create).await.unwrap_err();
    assert_eq!(error_type(err), "VersionNotPending");

    // The next rotation (a new token) builds on the operator's keyring and keeps every key.
    env.rotate(&secret).await;
    let ring = env.current(&secret).await;
    assert_eq!(
        ring.versions().map(|v| v.get()).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(operators.check_successor(&ring).map(|v| v.get()), Ok(3));
    assert_eq!(
        ring.decrypt(&sealed.ciphertext, b"")
            .expect("operator's v2 still decrypts")
            .0
            .expose(),
        b"under the operator's v2"
    );
}

#[tokio::test]
async fn create_releases_a_stale_pending_left_under_the_same_token() {
    let Some(env) = env("rotation::stale_create").await else {
        return;
    };
    let secret = env.secret(r#"{"keys": []}"#).await;
    env.rotate(&secret).await;
    let stale = env.start(&secret).await;
    env.step(&secret, &stale, Step::Create)
        .await
        .expect("create");
    // An operator retires version 1 meanwhile: the pending keyring would bring it back.
    ssm_rotation::keyring_cli::run(
        ssm_rotation::keyring_cli::Command::Rotate {
            target: ssm_rotation::keyring_cli::TargetArgs::secret(secret.clone()),
            put: true,
            wait_secs: 0,
        },
        async || env.client.clone(),
    )
    .await
    .expect("rotate");
    ssm_rotation::keyring_cli::run(
        ssm_rotation::keyring_cli::Command::SetMinDecryptionVersion {
            version: 2,
            target: ssm_rotation::keyring_cli::TargetArgs::secret(secret.clone()),
        },
        async || env.client.clone(),
    )
    .await
    .expect("retire");
    let current = env.current(&secret).await;
    // testSecret reports without changing anything; a retried createSecret releases.
    let err = env.step(&secret, &stale, Step::Test).await.unwrap_err();
    assert_eq!(error_type(err), "RotationInvariantViolated");
    assert_eq!(
        holding(&env.stages(&secret).await, "AWSPENDING"),
        Some(stale.clone())
    );
    let err = env.step(&secret, &stale, Step::Create).await.unwrap_err();
    assert!(
        err.to_string().contains("AWSPENDING was taken off"),
        "{err}"
    );
    assert_eq!(error_type(err), "RotationInvariantViolated");
    assert_eq!(holding(&env.stages(&secret).await, "AWSPENDING"), None);
    assert_eq!(env.current(&secret).await, current);
    env.rotate(&secret).await;
    let ring = env.current(&secret).await;
    assert_eq!(ring.min_decryption_version().get(), 2, "retirement kept");
    assert_eq!(current.check_successor(&ring).map(|v| v.get()), Ok(3));
}

#[tokio::test]
async fn rotation_errors_carry_their_class_as_error_type() {
    let Some(env) = env("rotation::error_types").await else {
        return;
    };
    let missing = env
        .step("no-such-secret", "t", Step::Create)
        .await
        .unwrap_err();
    assert_eq!(error_type(missing), "SecretNotFound");
    let plain = env.secret(r#"{"keys": []}"#).await;
    let err = env.step(&plain, "t", Step::Create).await.unwrap_err();
    assert_eq!(error_type(err), "RotationNotEnabled");
}

async fn keyring_cli(env: &Env, command: ssm_rotation::keyring_cli::Command) -> String {
    ssm_rotation::keyring_cli::run(command, async || env.client.clone())
        .await
        .expect("ssm-keyring")
}

fn on(secret: &str) -> ssm_rotation::keyring_cli::TargetArgs {
    ssm_rotation::keyring_cli::TargetArgs::secret(secret)
}

#[tokio::test]
async fn trim_leaves_no_labelled_version_holding_a_destroyed_key() {
    use ssm_rotation::keyring_cli::Command;
    let Some(env) = env("rotation::trim_labels").await else {
        return;
    };
    let secret = env.secret(r#"{"keys": []}"#).await;
    env.rotate(&secret).await;
    for _ in 0..2 {
        keyring_cli(
            &env,
            Command::Rotate {
                target: on(&secret),
                put: true,
                wait_secs: 0,
            },
        )
        .await;
    }
    keyring_cli(
        &env,
        Command::SetMinDecryptionVersion {
            version: 3,
            target: on(&secret),
        },
    )
    .await;
    let out = keyring_cli(
        &env,
        Command::Trim {
            confirm_destroy_below: Some(3),
            target: on(&secret),
        },
    )
    .await;
    assert!(out.contains("removed key version(s) 1, 2"), "{out}");
    assert!(out.contains("took label AWSPREVIOUS off"), "{out}");

    let mut holders = Vec::new();
    for (version, labels) in env.stages(&secret).await {
        let text = env.value(&secret, &version).await.expect("value");
        let ring = Keyring::from_json(&text).expect("keyring");
        if ring.versions().any(|v| v.get() < 3) {
            assert!(
                labels.is_empty(),
                "{version} {labels:?} holds a trimmed key"
            );
            holders.push(version);
        }
    }
    let listed = env
        .client
        .list_secret_version_ids()
        .secret_id(&secret)
        .include_deprecated(true)
        .send()
        .await
        .expect("list")
        .versions
        .unwrap_or_default();
    for entry in listed {
        let id = entry.version_id.expect("id");
        let Some(text) = env.value(&secret, &id).await else {
            continue;
        };
        if Keyring::from_json(&text).is_ok_and(|r| r.versions().any(|v| v.get() < 3)) {
            assert!(entry.version_stages.unwrap_or_default().is_empty(), "{id}");
            assert!(out.contains(&id), "the report names {id}: {out}");
        }
    }
    assert!(
        out.contains("until Secrets Manager deletes deprecated versions"),
        "{out}"
    );
    let ring = env.current(&secret).await;
    assert_eq!(ring.versions().map(|v| v.get()).collect::<Vec<_>>(), [3]);
    // Rotation goes on from the trimmed keyring.
    env.rotate(&secret).await;
    assert_eq!(
        env.current(&secret).await.primary().map(|v| v.get()),
        Some(4)
    );
}

#[tokio::test]
async fn setting_min_decryption_version_to_its_value_writes_nothing() {
    use ssm_rotation::keyring_cli::Command;
    let Some(env) = env("rotation::set_min_noop").await else {
        return;
    };
    let secret = env.secret(r#"{"keys": []}"#).await;
    env.rotate(&secret).await;
    keyring_cli(
        &env,
        Command::Rotate {
            target: on(&secret),
            put: true,
            wait_secs: 0,
        },
    )
    .await;
    let before = env.stages(&secret).await;
    let out = keyring_cli(
        &env,
        Command::SetMinDecryptionVersion {
            version: 1,
            target: on(&secret),
        },
    )
    .await;
    assert!(out.contains("already 1; nothing changed"), "{out}");
    assert_eq!(
        env.stages(&secret).await,
        before,
        "no version written, AWSPREVIOUS kept"
    );
}

/// Issue 19, point 7: a template change (or anyone) re-sends the initial value over the
/// keyring. Rotation then continues the old keyring instead of minting a new first version, and
/// every ciphertext made before decrypts again.
#[tokio::test]
async fn a_reset_to_the_initial_value_continues_the_old_keyring() {
    let Some(env) = env("rotation::reset_continues").await else {
        return;
    };
    let stack_initial = r#"{"lineage": "Zk3qT9pX2LmN8vB4cR7sW1yH6dJ0aE5u"}"#;
    for initial in [stack_initial, r#"{"keys": []}"#] {
        let secret = env.secret(initial).await;
        env.rotate(&secret).await;
        let first = env.current(&secret).await;
        let mut ciphertexts = vec![first.encrypt(b"one", b"").expect("seal").ciphertext];
        env.rotate(&secret).await;
        let before = env.current(&secret).await;
        ciphertexts.push(before.encrypt(b"two", b"").expect("seal").ciphertext);

        // Twice, so that AWSPREVIOUS holds no keys either; then once more in the old form.
        for value in [initial, initial, r#"{"keys": []}"#] {
            env.client
                .put_secret_value()
                .secret_id(&secret)
                .secret_string(value)
                .send()
                .await
                .expect("reset");
        }
        assert!(!env.current(&secret).await.holds_keys());

        let token = env.start(&secret).await;
        let created = env
            .step(&secret, &token, Step::Create)
            .await
            .expect("create");
        let next = before.latest().and_then(|v| v.next()).expect("next").get();
        assert_eq!(created, Outcome::Created { version: next }, "{initial}");
        for step in [Step::Set, Step::Test, Step::Finish] {
            env.step(&secret, &token, step).await.expect("step");
        }
        let after = env.current(&secret).await;
        assert_eq!(before.check_successor(&after).map(|v| v.get()), Ok(next));
        assert_eq!(after.lineage(), before.lineage());
        for (ciphertext, plain) in ciphertexts.iter().zip([&b"one"[..], b"two"]) {
            let (opened, _) = after
                .decrypt(ciphertext, b"")
                .expect("old ciphertext opens");
            assert_eq!(opened.expose(), plain);
        }
    }
}

/// The stack's initial value starts a lineage whose first version is derived from its id.
#[tokio::test]
async fn the_stacks_initial_value_starts_a_lineage_far_from_version_one() {
    let Some(env) = env("rotation::lineage_start").await else {
        return;
    };
    let id = "Zk3qT9pX2LmN8vB4cR7sW1yH6dJ0aE5u";
    let secret = env.secret(&format!(r#"{{"lineage": "{id}"}}"#)).await;
    env.rotate(&secret).await;
    let ring = env.current(&secret).await;
    let expected = ssm_core::keyring::Lineage::parse(id)
        .unwrap()
        .first_version();
    assert_eq!(ring.primary(), Some(expected));
    assert!(expected.get() >= 1 << 20);
    assert_eq!(ring.lineage().map(|l| l.as_str()), Some(id));
}

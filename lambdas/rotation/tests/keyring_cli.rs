//! `ssm-keyring` on a file: create, show, rotate, retire, and trim only when confirmed.

use ssm_core::keyring::Keyring;
use ssm_rotation::keyring_cli::{Command, TargetArgs, run};

fn target(path: &std::path::Path) -> TargetArgs {
    TargetArgs::file(path)
}

async fn no_client() -> aws_sdk_secretsmanager::Client {
    unreachable!("file commands never build a Secrets Manager client")
}

#[tokio::test]
async fn lifecycle_on_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.json");
    let out = run(
        Command::New {
            file: path.clone(),
            force: false,
        },
        no_client,
    )
    .await
    .unwrap();
    assert!(out.contains("key version 1"));
    let again = run(
        Command::New {
            file: path.clone(),
            force: false,
        },
        no_client,
    )
    .await
    .unwrap_err();
    assert!(again.to_string().contains("--force"));

    for _ in 0..2 {
        run(
            Command::Rotate {
                target: target(&path),
                put: false,
                wait_secs: 0,
            },
            no_client,
        )
        .await
        .unwrap();
    }
    let shown = run(
        Command::Show {
            target: target(&path),
        },
        no_client,
    )
    .await
    .unwrap();
    assert!(
        shown
            .lines()
            .any(|l| l.split_whitespace().eq(["primary_version:", "3"])),
        "{shown}"
    );
    let material =
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&path).unwrap())
            .unwrap()["keys"][0]["material"]
            .as_str()
            .unwrap()
            .to_owned();
    assert!(!shown.contains(&material), "show never prints material");

    let err = run(
        Command::SetMinDecryptionVersion {
            version: 4,
            target: target(&path),
        },
        no_client,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("above the primary"), "{err}");
    let out = run(
        Command::SetMinDecryptionVersion {
            version: 3,
            target: target(&path),
        },
        no_client,
    )
    .await
    .unwrap();
    assert!(out.contains("1, 2 no longer decrypt"), "{out}");

    let refused = run(
        Command::Trim {
            confirm_destroy_below: None,
            target: target(&path),
        },
        no_client,
    )
    .await
    .unwrap_err();
    assert!(
        refused.to_string().contains("--confirm-destroy-below 3"),
        "{refused}"
    );
    let wrong = run(
        Command::Trim {
            confirm_destroy_below: Some(2),
            target: target(&path),
        },
        no_client,
    )
    .await
    .unwrap_err();
    assert!(wrong.to_string().contains("undecryptable"));
    assert_eq!(
        Keyring::from_json(&std::fs::read_to_string(&path).unwrap())
            .unwrap()
            .versions()
            .count(),
        3,
        "nothing destroyed yet"
    );
    let out = run(
        Command::Trim {
            confirm_destroy_below: Some(3),
            target: target(&path),
        },
        no_client,
    )
    .await
    .unwrap();
    assert!(out.contains("removed key version(s) 1, 2"), "{out}");
    let ring = Keyring::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        ring.versions().map(|v| v.get()).collect::<Vec<_>>(),
        vec![3]
    );
}

/// The `ssm-keyring` binary with a clean AWS environment: no region, no profile, no metadata.
fn ssm_keyring(args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ssm-keyring"));
    command.args(args);
    for var in [
        "SSM_KEYRING_FILE",
        "SSM_KEY_SECRET_ID",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
    ] {
        command.env_remove(var);
    }
    command
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing");
    command
}

fn output(command: &mut std::process::Command) -> (bool, String, String) {
    let out = command.output().expect("run ssm-keyring");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_exported_keyring_file_does_not_conflict_with_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.json");
    let path = path.to_str().unwrap();
    let (ok, _, err) = output(&mut ssm_keyring(&["new", "--file", path]));
    assert!(ok, "{err}");
    // SSM_KEY_SECRET_ID exported, --file given: the flag wins and no AWS call is made.
    let (ok, out, err) =
        output(ssm_keyring(&["show", "--file", path]).env("SSM_KEY_SECRET_ID", "exported-secret"));
    assert!(ok, "{err}");
    assert!(out.contains("primary_version"), "{out}");
    // SSM_KEYRING_FILE exported, --secret-id given: the secret is used (and, with no region
    // configured, the error says so).
    let (ok, _, err) =
        output(ssm_keyring(&["show", "--secret-id", "some-secret"]).env("SSM_KEYRING_FILE", path));
    assert!(!ok);
    assert!(!err.contains("cannot be used with"), "{err}");
    assert!(err.contains("no AWS region is configured"), "{err}");
    // Only the environment: the one variable set is used.
    let (ok, out, err) = output(ssm_keyring(&["show"]).env("SSM_KEYRING_FILE", path));
    assert!(ok && out.contains("primary_version"), "{err}");
    // Both variables and no flag: ambiguous, refused before touching anything.
    let (ok, _, err) = output(
        ssm_keyring(&["show"])
            .env("SSM_KEYRING_FILE", path)
            .env("SSM_KEY_SECRET_ID", "exported-secret"),
    );
    assert!(!ok && err.contains("pass --file or --secret-id"), "{err}");
}

#[test]
fn a_missing_region_is_named() {
    let (ok, _, err) = output(&mut ssm_keyring(&["show", "--secret-id", "s"]));
    assert!(!ok);
    assert!(err.contains("no AWS region is configured"), "{err}");
    assert!(!err.contains("could not reach the service"), "{err}");
}

#[test]
fn both_binaries_answer_version() {
    for binary in [
        env!("CARGO_BIN_EXE_ssm-keyring"),
        env!("CARGO_BIN_EXE_ssm-rotation"),
    ] {
        let out = std::process::Command::new(binary)
            .arg("--version")
            // Were the runtime started, it would fail for want of the Lambda API.
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .output()
            .expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{binary}: {out:?}");
        assert!(
            stdout.trim().ends_with(env!("CARGO_PKG_VERSION")),
            "{binary}: {stdout}"
        );
    }
}

#[tokio::test]
async fn show_aligns_every_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.json");
    let material = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    // A long version number and a timestamp with fractional seconds, as a hand-edited file
    // may hold.
    std::fs::write(
        &path,
        format!(
            r#"{{"primary_version": 123456789, "keys": [
                {{"version": 7, "created_at": "2026-01-01T00:00:00.123456Z", "material": "{material}"}},
                {{"version": 123456789, "created_at": "2026-02-01T00:00:00Z", "material": "{material}"}}]}}"#
        ),
    )
    .unwrap();
    let shown = run(
        Command::Show {
            target: target(&path),
        },
        no_client,
    )
    .await
    .unwrap();
    let lines: Vec<&str> = shown.lines().collect();
    // `name: value` lines: the values start in one column.
    let value_columns: Vec<usize> = lines[..3]
        .iter()
        .map(|l| {
            l.find(": ").unwrap() + 2 + l[l.find(": ").unwrap() + 2..].find(|c| c != ' ').unwrap()
        })
        .collect();
    assert!(value_columns.windows(2).all(|w| w[0] == w[1]), "{shown}");
    // The table: every cell starts where its header starts.
    let header = lines[3];
    let starts: Vec<usize> = ["version", "created_at", "decrypts", "primary"]
        .iter()
        .map(|h| header.find(h).unwrap())
        .collect();
    for row in &lines[4..] {
        for start in &starts[1..] {
            let row = row.as_bytes();
            let aligned = match row.get(*start) {
                Some(c) => row[start - 1] == b' ' && *c != b' ',
                // Only the last column may be empty.
                None => start == starts.last().unwrap(),
            };
            assert!(aligned, "column at {start} misaligned:\n{shown}");
        }
    }
    assert_eq!(lines.len(), 6, "{shown}");
}

#[tokio::test]
async fn setting_min_decryption_version_to_its_value_leaves_the_file_alone() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.json");
    run(
        Command::New {
            file: path.clone(),
            force: false,
        },
        no_client,
    )
    .await
    .unwrap();
    let before = std::fs::metadata(&path).unwrap().ino();
    let out = run(
        Command::SetMinDecryptionVersion {
            version: 1,
            target: target(&path),
        },
        no_client,
    )
    .await
    .unwrap();
    assert!(out.contains("nothing changed"), "{out}");
    // Writes go through a temporary file and a rename: a write would change the inode.
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), before);
}

// ---- The operator's path on a secret: RotateSecret, never PutSecretValue ----------------------
// Recorded Secrets Manager responses (moto's RotateSecret without a function ARN clears the
// secret's rotation function and promotes an empty version, which Secrets Manager never does).

mod rotate_secret {
    use std::collections::HashMap;

    use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
    use aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueOutput;
    use aws_sdk_secretsmanager::operation::rotate_secret::RotateSecretOutput;
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

    use super::*;

    const SECRET: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:ssm/keyring-AbCdEf";

    fn stages(pairs: &[(&str, &[&str])]) -> HashMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(id, labels)| {
                (
                    (*id).to_owned(),
                    labels.iter().map(|l| (*l).to_owned()).collect(),
                )
            })
            .collect()
    }

    struct Mocks {
        rotate: Rule,
        describe: Rule,
        get: Rule,
        put: Rule,
    }

    /// RotateSecret staging `v2`, then what DescribeSecret says about it, poll after poll.
    fn mocks(polls: Vec<HashMap<String, Vec<String>>>) -> Mocks {
        let mut next = Keyring::initialise(chrono::Utc::now()).expect("a keyring");
        next.rotate(chrono::Utc::now()).expect("a second version");
        let json = next.to_json().to_string();
        let rotate = mock!(aws_sdk_secretsmanager::Client::rotate_secret)
            .match_requests(|r| {
                r.secret_id() == Some(SECRET)
                    && r.rotation_lambda_arn().is_none()
                    && r.rotation_rules().is_none()
            })
            .then_output(|| RotateSecretOutput::builder().version_id("v2").build());
        let mut describe = mock!(aws_sdk_secretsmanager::Client::describe_secret).sequence();
        for poll in polls {
            describe = describe.output(move || {
                DescribeSecretOutput::builder()
                    .set_version_ids_to_stages(Some(poll.clone()))
                    .build()
            });
        }
        let describe = describe.build();
        let get = mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_output(move || {
            GetSecretValueOutput::builder()
                .version_id("v2")
                .secret_string(json.clone())
                .build()
        });
        let put = mock!(aws_sdk_secretsmanager::Client::put_secret_value)
            .then_output(|| PutSecretValueOutput::builder().build());
        Mocks {
            rotate,
            describe,
            get,
            put,
        }
    }

    async fn rotate(m: &Mocks, wait_secs: u64) -> anyhow::Result<String> {
        let client = mock_client!(
            aws_sdk_secretsmanager,
            RuleMode::MatchAny,
            [&m.rotate, &m.describe, &m.get, &m.put]
        );
        run(
            Command::Rotate {
                target: TargetArgs::secret(SECRET),
                put: false,
                wait_secs,
            },
            async || client,
        )
        .await
    }

    /// Issue 19, point 6: `ssm-keyring rotate` goes through the rotation function and writes
    /// nothing itself, so its rotation is never drift. The old command wrote PutSecretValue.
    #[tokio::test]
    async fn rotate_asks_secrets_manager_and_waits_for_the_rotation_function() {
        let m = mocks(vec![
            stages(&[("v1", &["AWSCURRENT"]), ("v2", &["AWSPENDING"])]),
            stages(&[("v1", &["AWSCURRENT"]), ("v2", &["AWSPENDING"])]),
            stages(&[("v1", &["AWSPREVIOUS"]), ("v2", &["AWSCURRENT"])]),
        ]);
        let out = rotate(&m, 30).await.unwrap();
        assert!(
            out.contains("rotated by the rotation function (secret version v2)"),
            "{out}"
        );
        assert_eq!(m.rotate.num_calls(), 1);
        assert_eq!(m.describe.num_calls(), 3);
        assert_eq!(
            m.put.num_calls(),
            0,
            "no PutSecretValue on the operator path"
        );
    }

    #[tokio::test]
    async fn a_failed_rotation_is_reported_not_waited_out() {
        // The function refused the pending keyring and took AWSPENDING off it.
        let m = mocks(vec![stages(&[("v1", &["AWSCURRENT"]), ("v2", &[])])]);
        let err = rotate(&m, 30).await.unwrap_err().to_string();
        assert!(
            err.contains("failed") && err.contains("AWSCURRENT is unchanged"),
            "{err}"
        );
        // Still pending when the wait is over.
        let m = mocks(vec![
            stages(&[
                ("v1", &["AWSCURRENT"]),
                ("v2", &["AWSPENDING"])
            ]);
            3
        ]);
        let err = rotate(&m, 0).await.unwrap_err().to_string();
        assert!(err.contains("has not finished after 0 s"), "{err}");
        assert_eq!(m.put.num_calls(), 0);
    }
}

//! `ssm-keyring` on a file: create, show, rotate, retire, and trim only when confirmed.

use ssm_core::keyring::Keyring;
use ssm_rotation::keyring_cli::{Command, Target, run};

fn target(path: &std::path::Path) -> Target {
    Target {
        file: Some(path.to_owned()),
        secret_id: None,
    }
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
    assert!(shown.contains("primary_version: 3"), "{shown}");
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
    assert!(out.contains("destroyed key version(s) 1, 2"), "{out}");
    let ring = Keyring::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        ring.versions().map(|v| v.get()).collect::<Vec<_>>(),
        vec![3]
    );
}

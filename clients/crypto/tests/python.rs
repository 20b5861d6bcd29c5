//! docs/callers.md's Python example (clients/python/ssm_call.py, botocore's SigV4 signer)
//! against the stand-in API, whose SigV4 check is the one the Rust client passes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{REGION, TestApi, test_credentials_only, write_stdin};

/// The venv's Python (`SSM_VENV`, else the repository's `.venv`) if it has botocore; `None`
/// after saying why the test skips. With `SSM_REQUIRE_EMULATORS=1` a missing one fails.
fn python(test: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = std::env::var_os("SSM_VENV").map_or_else(|| root.join(".venv"), PathBuf::from);
    let python = venv.join("bin/python");
    let has_botocore = std::process::Command::new(&python)
        .args(["-c", "import botocore"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !has_botocore {
        assert!(
            std::env::var("SSM_REQUIRE_EMULATORS").as_deref() != Ok("1"),
            "SSM_REQUIRE_EMULATORS=1 but {} has no botocore",
            python.display()
        );
        eprintln!(
            "skipping {test}: no Python with botocore at {}",
            python.display()
        );
        return None;
    }
    Some(python)
}

async fn ssm_call(
    python: &Path,
    api: &TestApi,
    args: &[&str],
    stdin: &[u8],
) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../python/ssm_call.py");
    let home = tempfile::tempdir().expect("home");
    let mut command = tokio::process::Command::new(python);
    test_credentials_only(&mut command, home.path());
    let mut child = command
        .arg(script)
        .args(["--endpoint", &api.url, "--region", REGION])
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    write_stdin(child.stdin.take().expect("stdin"), stdin).await;
    child.wait_with_output().await.expect("python ends")
}

#[tokio::test]
async fn the_python_example_signs_requests_the_api_accepts() {
    let Some(python) = python("the_python_example_signs_requests_the_api_accepts") else {
        return;
    };
    let api = TestApi::start().await;
    api.queue(503, r#"{"message":"Service Unavailable"}"#, None);
    let enc = ssm_call(
        &python,
        &api,
        &["encrypt", "--key", "payments", "--context", "c=1"],
        b"from python",
    )
    .await;
    let stderr = String::from_utf8_lossy(&enc.stderr);
    assert!(enc.status.success(), "{stderr}");
    let envelope = String::from_utf8(enc.stdout).expect("text");
    assert!(envelope.starts_with("ssm2:payments:v1:"), "{envelope}");
    let dec = ssm_call(
        &python,
        &api,
        &["decrypt", "--key", "payments", "--context", "c=1"],
        envelope.as_bytes(),
    )
    .await;
    assert_eq!(
        dec.stdout,
        b"from python",
        "{}",
        String::from_utf8_lossy(&dec.stderr)
    );
    let seen = api.seen();
    assert_eq!(seen.len(), 3, "the 503 is retried");
    for request in &seen {
        assert_eq!(request.signed, Ok(()), "{}", request.path);
    }
    api.state().denied.insert("orders".into());
    let denied = ssm_call(&python, &api, &["hmac", "--key", "orders"], b"x").await;
    assert_eq!(denied.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&denied.stderr).contains("403"));
}

//! `ssm-sandbox` on bad input: a clear error, exit non-zero, and nothing it started left running.

#![expect(
    clippy::unwrap_used,
    reason = "tests: a failed setup step fails the test"
)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sandbox(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ssm-sandbox"))
        .args(args)
        .current_dir(dir)
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("SSM_SANDBOX_PYTHON")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A directory with a cloud assembly naming `SsmServerless` and a bin dir of stand-ins, so the
/// checks before the first process starts pass.
fn scaffold(emulator_script: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let asm = dir.path().join("cdk.out");
    std::fs::create_dir_all(&asm).unwrap();
    std::fs::write(
        asm.join("manifest.json"),
        r#"{"version": "48.0.0", "artifacts": {"SsmServerless": {"type": "aws:cloudformation:stack"}}}"#,
    )
    .unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["ssm-action", "ssm-github-emulator", "ssm-install"] {
        let path = bin.join(name);
        std::fs::write(&path, emulator_script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (dir, asm, bin)
}

/// The venv's moto and a free port for it, as sandbox arguments (`--python`, `--moto-launcher`,
/// `--moto-port`), or `None` after saying why `test` skips; with `SSM_REQUIRE_EMULATORS=1` a
/// missing venv fails the test instead.
fn moto_args(test: &str) -> Option<(Vec<String>, u16)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let python = root.join(".venv/bin/python");
    if !python.is_file() {
        assert!(
            std::env::var("SSM_REQUIRE_EMULATORS").as_deref() != Ok("1"),
            "SSM_REQUIRE_EMULATORS=1 but {} is missing",
            python.display()
        );
        eprintln!(
            "skipping {test}: no venv with moto ({}); bash scripts/test.sh runs it",
            python.display()
        );
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let args = [
        "--python".to_owned(),
        python.display().to_string(),
        "--moto-launcher".to_owned(),
        root.join("sandbox/moto/ssm_moto.py").display().to_string(),
        "--moto-port".to_owned(),
        port.to_string(),
    ];
    Some((args.to_vec(), port))
}

#[test]
fn an_unknown_drift_kind_is_refused_with_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = sandbox(&["drift", "lambda-cod"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("invalid value 'lambda-cod'"), "{err}");
    for kind in [
        "lambda-config",
        "lambda-code",
        "secret-policy",
        "keyring-policy",
        "asset-overwrite",
    ] {
        assert!(err.contains(kind), "{err}");
    }
}

#[test]
fn drift_without_a_running_sandbox_says_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = sandbox(
        &["drift", "lambda-code", "--state", "nothing/state.json"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("no running sandbox"), "{err}");
    assert!(err.contains("scripts/sandbox.sh"), "{err}");
}

#[test]
fn missing_moto_is_named() {
    let (dir, asm, bin) = scaffold("#!/bin/sh\nexit 1\n");
    let out = sandbox(
        &[
            "e2e",
            "--python",
            "/nonexistent/venv/bin/python",
            "--cloud-assembly",
            asm.to_str().unwrap(),
            "--bin-dir",
            bin.to_str().unwrap(),
            "--work",
            dir.path().join("work").to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("moto is not installed"), "{err}");
    assert!(err.contains("scripts/setup.sh"), "{err}");
}

#[test]
fn a_taken_port_is_named() {
    let (dir, asm, bin) = scaffold("#!/bin/sh\nexit 1\n");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = sandbox(
        &[
            "up",
            "--port",
            &port,
            "--cloud-assembly",
            asm.to_str().unwrap(),
            "--bin-dir",
            bin.to_str().unwrap(),
            "--work",
            dir.path().join("work").to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "port {port} on 127.0.0.1 (for the HTTP API) is not available"
        )),
        "{err}"
    );
}

#[test]
fn a_missing_stack_or_binary_is_named() {
    let (dir, asm, bin) = scaffold("#!/bin/sh\nexit 1\n");
    let work = dir.path().join("work");
    let out = sandbox(
        &[
            "e2e",
            "--stack",
            "Other",
            "--cloud-assembly",
            asm.to_str().unwrap(),
            "--bin-dir",
            bin.to_str().unwrap(),
            "--work",
            work.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(
        stderr(&out).contains("has no stack Other"),
        "{}",
        stderr(&out)
    );
    // The App runs from its deployed stack's zip; the installer is a binary the sandbox needs.
    std::fs::remove_file(bin.join("ssm-install")).unwrap();
    let out = sandbox(
        &[
            "e2e",
            "--cloud-assembly",
            asm.to_str().unwrap(),
            "--bin-dir",
            bin.to_str().unwrap(),
            "--work",
            work.to_str().unwrap(),
        ],
        dir.path(),
    );
    let err = stderr(&out);
    assert!(err.contains("ssm-install is missing"), "{err}");
}

/// moto starts, then the GitHub emulator fails: the error quotes the emulator, and moto is
/// stopped with the sandbox (its port no longer answers).
#[test]
fn a_failure_midway_stops_what_was_started() {
    let Some((moto, moto_port)) = moto_args("a_failure_midway_stops_what_was_started") else {
        return;
    };
    let (dir, asm, bin) = scaffold("#!/bin/sh\necho 'emulator: cannot start (test)' >&2\nexit 1\n");
    let work = dir.path().join("work");
    let mut args = vec!["e2e"];
    args.extend(moto.iter().map(String::as_str));
    args.extend([
        "--cloud-assembly",
        asm.to_str().unwrap(),
        "--bin-dir",
        bin.to_str().unwrap(),
        "--work",
        work.to_str().unwrap(),
    ]);
    let out = sandbox(&args, dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("ssm-github-emulator exited before announcing itself"),
        "{err}"
    );
    assert!(
        err.contains("emulator: cannot start (test)"),
        "the log is quoted: {err}"
    );
    let moto_log = std::fs::read_to_string(work.join("logs/moto.log")).unwrap();
    assert!(!moto_log.is_empty(), "moto did start");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", moto_port)).is_err(),
        "moto is still listening on {moto_port} after the sandbox exited"
    );
}

/// SIGTERM while the sandbox is still starting (moto up, the GitHub emulator not yet announced):
/// it says so, exits non-zero, and moto is stopped with it.
#[test]
fn a_signal_during_start_up_stops_what_was_started() {
    let Some((moto, moto_port)) = moto_args("a_signal_during_start_up_stops_what_was_started")
    else {
        return;
    };
    // An emulator that never announces itself keeps the sandbox starting.
    let (dir, asm, bin) = scaffold("#!/bin/sh\nexec sleep 30\n");
    let child = Command::new(env!("CARGO_BIN_EXE_ssm-sandbox"))
        .args(["up", "--port", "0"])
        .args(&moto)
        .args([
            "--cloud-assembly",
            asm.to_str().unwrap(),
            "--bin-dir",
            bin.to_str().unwrap(),
            "--work",
            dir.path().join("work").to_str().unwrap(),
        ])
        .current_dir(dir.path())
        .env_remove("AWS_ENDPOINT_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", moto_port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "moto never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("interrupted while starting"), "{err}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", moto_port)).is_err(),
        "moto is still listening on {moto_port} after the sandbox was interrupted"
    );
}

//! The binary answers `--version` without reading its configuration or starting anything.

#[test]
fn answers_version() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ssm-integrity"))
        .arg("--version")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .expect("run ssm-integrity");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("ssm-integrity {}", env!("CARGO_PKG_VERSION"))
    );
}

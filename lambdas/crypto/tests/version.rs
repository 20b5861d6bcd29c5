//! Every binary of this crate answers `--version` without reading its configuration or
//! starting anything.

#[test]
fn every_binary_answers_version() {
    for (name, binary) in [
        ("ssm-crypto", env!("CARGO_BIN_EXE_ssm-crypto")),
        ("ssm-crypto-local", env!("CARGO_BIN_EXE_ssm-crypto-local")),
    ] {
        let out = std::process::Command::new(binary)
            .arg("--version")
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .output()
            .expect(name);
        assert!(out.status.success(), "{name}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{name} {}", env!("CARGO_PKG_VERSION"))
        );
    }
}

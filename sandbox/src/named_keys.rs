//! Named keys end to end, as their callers use them (issue 21): two IAM callers issued through
//! moto's IAM, each allowed one key, run the `ssm` CLI (the binary users install) against the
//! sandbox's HTTP API. Each succeeds on its own key, gets IAM's 403 on the other's, and a
//! ciphertext of one key given to the other key's decrypt is refused by name.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::callers::{self, CallerCredentials};
use crate::system::Sandbox;

/// The keys the sandbox's stack declares besides `default` (scripts/sandbox.sh's synth).
pub const KEYS: [&str; 2] = ["payments", "orders"];

/// The CLI's exit codes the checks rely on (clients/crypto/src/cli.rs).
const EXIT_OK: i32 = 0;
const EXIT_MAC_INVALID: i32 = 1;
const EXIT_IAM: i32 = 3;
const EXIT_API_REFUSED: i32 = 5;

/// One run of the CLI.
#[derive(Debug)]
pub struct CliRun {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// The `ssm` binary: `SSM_CLI`, else next to this binary (one cargo target directory).
pub fn cli_path() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("SSM_CLI") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("where ssm-sandbox runs from")?;
    let path = exe.with_file_name("ssm");
    anyhow::ensure!(
        path.is_file(),
        "the ssm CLI is not built at {} (cargo build -p ssm-client --bin ssm, or set SSM_CLI)",
        path.display()
    );
    Ok(path)
}

/// The `ssm` CLI pointed at one API in one region.
#[derive(Debug)]
pub struct Cli<'a> {
    pub path: PathBuf,
    pub endpoint: &'a str,
    pub region: &'a str,
}

impl Cli<'_> {
    /// Runs `ssm --endpoint ENDPOINT ARGS` as `credentials` (only they reach its credential
    /// chain), with `stdin` as its input.
    pub async fn run(
        &self,
        credentials: &CallerCredentials,
        args: &[&str],
        stdin: &[u8],
    ) -> anyhow::Result<CliRun> {
        let mut command = Command::new(&self.path);
        command
            .arg("--endpoint")
            .arg(self.endpoint)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("AWS_") {
                command.env_remove(name);
            }
        }
        command
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .envs(credentials.env(self.region));
        let mut child = command
            .spawn()
            .with_context(|| format!("running {}", self.path.display()))?;
        let mut input = child.stdin.take().context("the CLI's stdin")?;
        // The CLI may refuse its arguments and exit before reading: a closed pipe is its answer,
        // not a failure of the run.
        match input.write_all(stdin).await {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            result => result.context("writing the CLI's stdin")?,
        }
        drop(input);
        let out =
            tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
                .await
                .context("the ssm CLI did not finish within 60 s")??;
        Ok(CliRun {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// The checks: lines to print and failures.
#[derive(Debug, Default)]
pub struct Outcome {
    pub lines: Vec<String>,
    pub failures: Vec<String>,
}

impl Outcome {
    fn expect(&mut self, what: String, run: &CliRun, code: i32, also: bool) {
        let first = run.stderr.lines().next().unwrap_or_default();
        self.lines.push(format!(
            "ssm {what} → exit {:?}{}",
            run.code,
            if first.is_empty() {
                String::new()
            } else {
                format!(" ({first})")
            }
        ));
        if run.code != Some(code) || !also {
            self.failures.push(format!(
                "ssm {what}: exit {:?}, expected {code}; stderr: {}",
                run.code, run.stderr
            ));
        }
    }
}

/// Two callers, one per key of [`KEYS`], each through the CLI.
pub async fn two_callers(sb: &Sandbox) -> anyhow::Result<Outcome> {
    let cli = Cli {
        path: cli_path()?,
        endpoint: sb.gateway_url.as_str(),
        region: sb.opts.region.as_str(),
    };
    let issuer = sb
        .callers
        .as_ref()
        .context("the sandbox issues no callers")?;
    let mut out = Outcome::default();
    let mut callers = Vec::new();
    for key in KEYS {
        let caller = issuer
            .create(
                &format!("e2e-{key}"),
                &callers::key_policy(&sb.api_id, &[key.to_owned()]),
            )
            .await?;
        callers.push((key, caller.credentials));
    }

    let mut envelopes = Vec::new();
    for (i, (key, credentials)) in callers.iter().enumerate() {
        let other = KEYS[1 - i];
        let plaintext = format!("a secret of {key}\n");

        let sealed = cli
            .run(
                credentials,
                &["encrypt", "--key", key, "--context", "e2e"],
                plaintext.as_bytes(),
            )
            .await?;
        let envelope = String::from_utf8_lossy(&sealed.stdout).trim().to_owned();
        let named = envelope.starts_with(&format!("ssm2:{key}:v"));
        out.expect(
            format!("encrypt --key {key} as e2e-{key}"),
            &sealed,
            EXIT_OK,
            named,
        );

        let opened = cli
            .run(
                credentials,
                &["decrypt", "--key", key, "--context", "e2e"],
                envelope.as_bytes(),
            )
            .await?;
        let same = opened.stdout == plaintext.as_bytes();
        out.expect(
            format!("decrypt --key {key} as e2e-{key}"),
            &opened,
            EXIT_OK,
            same,
        );

        let mac = cli
            .run(credentials, &["hmac", "--key", key], b"message")
            .await?;
        let mac_text = String::from_utf8_lossy(&mac.stdout).trim().to_owned();
        let is_mac = mac_text.starts_with(&format!("ssm-mac:{key}:v"));
        out.expect(
            format!("hmac --key {key} as e2e-{key}"),
            &mac,
            EXIT_OK,
            is_mac,
        );
        let valid = cli
            .run(
                credentials,
                &["verify", "--key", key, "--mac", &mac_text],
                b"message",
            )
            .await?;
        out.expect(
            format!("verify --key {key} (same input)"),
            &valid,
            EXIT_OK,
            true,
        );
        let invalid = cli
            .run(
                credentials,
                &["verify", "--key", key, "--mac", &mac_text],
                b"messagf",
            )
            .await?;
        out.expect(
            format!("verify --key {key} (altered input)"),
            &invalid,
            EXIT_MAC_INVALID,
            true,
        );

        let denied = cli
            .run(
                credentials,
                &["encrypt", "--key", other, "--context", "e2e"],
                plaintext.as_bytes(),
            )
            .await?;
        let names_iam = denied.stderr.contains("IAM");
        out.expect(
            format!("encrypt --key {other} as e2e-{key}"),
            &denied,
            EXIT_IAM,
            names_iam,
        );
        envelopes.push(envelope);
    }

    // One key's ciphertext through the other key's decrypt (allowed by IAM): refused by name.
    let (key, credentials) = &callers[0];
    let foreign = cli
        .run(
            credentials,
            &["decrypt", "--key", key, "--context", "e2e"],
            envelopes[1].as_bytes(),
        )
        .await?;
    let by_name = foreign.stderr.contains("key_mismatch") || foreign.stderr.contains(KEYS[1]);
    out.expect(
        format!("decrypt --key {key} of a {} ciphertext", KEYS[1]),
        &foreign,
        EXIT_API_REFUSED,
        by_name,
    );
    Ok(out)
}

//! `ssm-sandbox`: the whole system on one machine.
//!
//!   ssm-sandbox up                 bring it up and serve until Ctrl-C
//!   ssm-sandbox drift <kind>       make an out-of-band change in the running sandbox, follow the loop
//!   ssm-sandbox e2e                up, check the API, drift each kind, verify, down (CI)
//!
//! `bash scripts/sandbox.sh` builds what it needs (Lambda zips, synth, binaries) and runs `up`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use hyper::StatusCode;
use serde_json::{Value, json};
use ssm_sandbox::drift::{DriftKind, DriftReport, Verdict};
use ssm_sandbox::system::{Options, Sandbox};
use ssm_sandbox::web;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Serverless SSM, the whole system on one machine (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bring the system up and serve until Ctrl-C or SIGTERM.
    Up(UpArgs),
    /// Make an out-of-band change in the running sandbox and follow the loop to a verdict.
    /// Exit 0: restored; 1: not restored; 3: not restorable in moto (said why).
    Drift {
        kind: DriftKind,
        /// The state file `up` writes.
        #[arg(long, default_value = "build/sandbox/state.json")]
        state: PathBuf,
    },
    /// Up, the Crypto API through the gateway, each drift kind, verdicts, down. For CI.
    E2e(UpArgs),
}

#[derive(Debug, Clone, Args)]
struct UpArgs {
    /// The synthesized cloud assembly.
    #[arg(long, default_value = "build/sandbox/cdk.out")]
    cloud_assembly: PathBuf,
    /// Logs, extracted functions, Action outputs, the state file.
    #[arg(long, default_value = "build/sandbox")]
    work: PathBuf,
    /// Where ssm-action, ssm-app and ssm-github-emulator are (default: next to this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Python with moto (the project's venv).
    #[arg(long, env = "SSM_SANDBOX_PYTHON", default_value = ".venv/bin/python")]
    python: PathBuf,
    #[arg(long, default_value = "sandbox/moto/ssm_moto.py")]
    moto_launcher: PathBuf,
    /// Use this AWS emulator instead of starting moto.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    moto_endpoint: Option<String>,
    /// moto's port (0: any free port).
    #[arg(long, default_value_t = 0)]
    moto_port: u16,
    /// The HTTP API's port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8787)]
    port: u16,
    /// The control endpoint's port (`drift` talks to it; 0: any free port).
    #[arg(long, default_value_t = 0)]
    control_port: u16,
    #[arg(long, default_value = "SsmServerless")]
    stack: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// The repository the stack was synthesized for (`githubOwner/githubRepo`).
    #[arg(long, default_value = "octo/serverless-ssm")]
    repository: String,
}

impl UpArgs {
    fn options(&self) -> anyhow::Result<Options> {
        let bin_dir = match &self.bin_dir {
            Some(d) => d.clone(),
            None => std::env::current_exe()?
                .parent()
                .map(Path::to_path_buf)
                .context("this binary has no directory")?,
        };
        let abs = |p: &Path| -> anyhow::Result<PathBuf> {
            Ok(if p.is_absolute() {
                p.to_path_buf()
            } else {
                std::env::current_dir()?.join(p)
            })
        };
        Ok(Options {
            assembly: abs(&self.cloud_assembly)?,
            work: abs(&self.work)?,
            bin_dir,
            python: abs(&self.python)?,
            moto_launcher: abs(&self.moto_launcher)?,
            moto_endpoint: self.moto_endpoint.clone().filter(|u| !u.is_empty()),
            moto_port: self.moto_port,
            gateway_port: self.port,
            control_port: self.control_port,
            stack: self.stack.clone(),
            region: self.region.clone(),
            repository: self.repository.clone(),
        })
    }
}

fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if std::env::var_os("SSM_SANDBOX_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_target(false)
            .init();
    }
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => up(args).await,
            Command::Drift { kind, state } => drift(kind, &state).await,
            Command::E2e(args) => e2e(args).await,
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn up(args: UpArgs) -> anyhow::Result<u8> {
    let opts = args.options()?;
    let state_file = opts.work.join("state.json");
    let started = Instant::now();
    say(
        "starting the sandbox (moto, OIDC issuer, GitHub emulator, deploy, App, functions, gateway)…",
    );
    let sandbox = Arc::new(start_interruptibly(opts.clone()).await?);
    let control_listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.control_port))
        .await
        .with_context(|| {
            format!(
                "port {} on 127.0.0.1 (control) is not available",
                opts.control_port
            )
        })?;
    let busy = Arc::new(tokio::sync::Mutex::new(()));
    let sb = sandbox.clone();
    let control = web::serve(control_listener, move |req| {
        let (sb, busy) = (sb.clone(), busy.clone());
        async move {
            let path = req.uri.path().to_owned();
            match (req.method.as_str(), path.strip_prefix("/drift/")) {
                ("POST", Some(kind)) => match DriftKind::parse(kind) {
                    None => web::json(
                        StatusCode::NOT_FOUND,
                        &json!({"message": format!("unknown drift kind {kind:?}; one of lambda-config, lambda-code, secret-policy, keyring-policy, asset-overwrite")}),
                    ),
                    Some(kind) => {
                        let _one_at_a_time = busy.lock().await;
                        match sb.drift(kind).await {
                            Ok(report) => web::json(StatusCode::OK, &json!(report)),
                            Err(e) => web::json(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                &json!({"message": format!("{e:#}")}),
                            ),
                        }
                    }
                },
                ("GET", None) if path == "/status" => web::json(
                    StatusCode::OK,
                    &json!({"gateway": sb.gateway_url, "app": sb.app_url,
                            "github": sb.github_url, "moto": sb.moto_url}),
                ),
                _ => web::json(StatusCode::NOT_FOUND, &json!({"message": "not found"})),
            }
        }
    })?;
    std::fs::write(
        &state_file,
        json!({"control": control.url(), "gateway": sandbox.gateway_url, "pid": std::process::id()})
            .to_string(),
    )?;
    print_banner(&sandbox, started, &control.url());
    wait_for_signal().await?;
    say("stopping…");
    drop(control);
    let _ = std::fs::remove_file(&state_file);
    if let Ok(sb) = Arc::try_unwrap(sandbox) {
        sb.stop().await;
    }
    Ok(0)
}

/// [`Sandbox::start`], abandoned on Ctrl-C or SIGTERM: dropping the half-started system stops
/// and reaps every process it had started, so an interrupted start leaves nothing behind.
async fn start_interruptibly(opts: Options) -> anyhow::Result<Sandbox> {
    tokio::select! {
        started = Sandbox::start(opts) => started,
        signal = wait_for_signal() => {
            signal?;
            bail!("interrupted while starting; everything started so far is stopped")
        }
    }
}

fn print_banner(sb: &Sandbox, started: Instant, control: &str) {
    say(format!(
        "\nServerless SSM sandbox is up in {:.1} s (deploy {} ms, keyring {} ms)",
        started.elapsed().as_secs_f64(),
        sb.deploy_ms,
        sb.keyring_ms
    ));
    say(format!(
        "  Crypto API   {}   (as API Gateway: payload v2, IAM caller = the sandbox operator; SigV4 is not checked)",
        sb.gateway_url
    ));
    say(format!(
        "  try          curl -s -X POST {}/v1/encrypt -H 'content-type: application/json' -d '{{\"plaintext\":\"aGVsbG8=\"}}'",
        sb.gateway_url
    ));
    say(format!("  GitHub App   {} (token broker)", sb.app_url));
    say(format!("  GitHub       {} (emulator)", sb.github_url));
    say(format!("  moto         {}", sb.moto_url));
    say(format!("  control      {control}"));
    say(format!(
        "  logs         {}",
        sb.opts.work.join("logs").display()
    ));
    for (from, to) in &sb.overrides {
        say(format!("  the functions reach {from} at {to}"));
    }
    say(
        "  drift        ssm-sandbox drift lambda-code | lambda-config | secret-policy | keyring-policy | asset-overwrite",
    );
    say("Ctrl-C stops everything.");
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

async fn drift(kind: DriftKind, state: &Path) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(state).with_context(|| {
        format!(
            "no running sandbox ({} is missing): start one with bash scripts/sandbox.sh",
            state.display()
        )
    })?;
    let v: Value = serde_json::from_str(&text).context("the state file is not JSON")?;
    let control = v["control"]
        .as_str()
        .context("the state file names no control URL")?;
    let resp = reqwest::Client::new()
        .post(format!("{control}/drift/{}", kind.name()))
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .with_context(|| format!("the sandbox at {control} does not answer (stopped?)"))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .context("the sandbox's answer is not JSON")?;
    if !status.is_success() {
        bail!(
            "{}",
            body["message"].as_str().unwrap_or("the sandbox refused")
        );
    }
    let report: ReportView = serde_json::from_value(body)?;
    print_report(&report);
    Ok(report.exit_code)
}

#[derive(Debug, serde::Deserialize)]
struct ReportView {
    kind: String,
    timeline: Vec<(u128, String)>,
    dispatches: usize,
    verdict: Value,
    #[serde(default)]
    exit_code: u8,
}

impl From<&DriftReport> for ReportView {
    fn from(r: &DriftReport) -> Self {
        ReportView {
            kind: r.kind.name().to_owned(),
            timeline: r.timeline.clone(),
            dispatches: r.dispatches,
            verdict: json!(r.verdict),
            exit_code: r.exit_code(),
        }
    }
}

fn print_report(r: &ReportView) {
    say(format!("\ndrift {}:", r.kind));
    for (ms, what) in &r.timeline {
        say(format!("  {ms:>7} ms  {what}"));
    }
    say(format!("  dispatches for this change: {}", r.dispatches));
    let verdict = r.verdict["verdict"].as_str().unwrap_or("?");
    match r.verdict["why"].as_str() {
        Some(why) => say(format!("  verdict: {verdict}: {why}")),
        None => say(format!("  verdict: {verdict}")),
    }
}

/// The end-to-end check CI runs.
async fn e2e(mut args: UpArgs) -> anyhow::Result<u8> {
    if args.port == 8787 {
        args.port = 0;
    }
    let opts = args.options()?;
    let started = Instant::now();
    let sandbox = start_interruptibly(opts).await?;
    for m in sandbox.journal.since(started) {
        say(format!(
            "  {:>7} ms  {}",
            m.at.duration_since(started).as_millis(),
            m.what
        ));
    }
    let result = e2e_checks(&sandbox).await;
    sandbox.stop().await;
    let failures = result?;
    if failures.is_empty() {
        say(format!(
            "e2e: all checks passed in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        Ok(0)
    } else {
        for f in &failures {
            say(format!("e2e FAILED: {f}"));
        }
        Ok(1)
    }
}

async fn e2e_checks(sb: &Sandbox) -> anyhow::Result<Vec<String>> {
    let mut failures = Vec::new();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let api = &sb.gateway_url;

    // The Crypto API through the gateway: the sample's route and a round trip.
    let version = http.get(format!("{api}/version")).send().await?;
    say(format!("GET /version → {}", version.status()));
    if version.status() != 200 {
        failures.push(format!("GET /version answered {}", version.status()));
    }
    let enc: Value = http
        .post(format!("{api}/v1/encrypt"))
        .json(&json!({"plaintext": "aGVsbG8gc2FuZGJveA=="}))
        .send()
        .await?
        .json()
        .await?;
    let ciphertext = enc["ciphertext"].as_str().unwrap_or_default().to_owned();
    let dec = http
        .post(format!("{api}/v1/decrypt"))
        .json(&json!({"ciphertext": ciphertext}))
        .send()
        .await?;
    let dec_status = dec.status();
    let dec: Value = dec.json().await.unwrap_or(Value::Null);
    say(format!(
        "POST /v1/encrypt → key version {}, /v1/decrypt → {dec_status} {}",
        enc["key_version"], dec["plaintext"]
    ));
    if dec["plaintext"] != "aGVsbG8gc2FuZGJveA==" {
        failures.push(format!("encrypt/decrypt round trip failed: {enc} / {dec}"));
    }
    let unknown = http.get(format!("{api}/no-such-route")).send().await?;
    if unknown.status() != 404 {
        failures.push(format!("an unknown route answered {}", unknown.status()));
    }

    for kind in DriftKind::ALL {
        let report = sb.drift(kind).await?;
        print_report(&ReportView::from(&report));
        if report.dispatches != 1 {
            failures.push(format!(
                "{}: {} dispatches, expected exactly 1",
                kind.name(),
                report.dispatches
            ));
        }
        let expected = format!("reconcile done: exit {}", kind.expected_reconcile_exit());
        let reconciled = report
            .timeline
            .iter()
            .any(|(_, w)| w.starts_with(&expected));
        if !reconciled {
            failures.push(format!(
                "{}: no reconcile ending in `{expected}`",
                kind.name()
            ));
        }
        match (&report.verdict, kind) {
            (Verdict::Restored, _) => {}
            (Verdict::EmulatorCannotRevert(_), DriftKind::LambdaConfig) => {}
            (v, _) => failures.push(format!("{}: {v:?}", kind.name())),
        }
    }
    Ok(failures)
}

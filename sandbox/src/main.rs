//! `ssm-sandbox`: the whole system on one machine.
//!
//!   ssm-sandbox up                 bring it up and serve until Ctrl-C
//!   ssm-sandbox drift <kind>       make an out-of-band change in the running sandbox, follow the loop
//!   ssm-sandbox e2e                up, check the API, drift each kind, verify, down (CI)
//!   ssm-sandbox caller create NAME --allow-key KEY
//!                                  issue a caller of the running sandbox's HTTP API through moto's
//!                                  IAM, allowed on KEY's routes; prints its environment
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
use ssm_sandbox::callers::send_as;
use ssm_sandbox::drift::{DriftKind, DriftReport, Verdict};
use ssm_sandbox::gateway::SecretAccessKey;
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
    /// Callers of the running sandbox's HTTP API (IAM users in moto).
    #[command(subcommand)]
    Caller(CallerCommand),
}

#[derive(Debug, Subcommand)]
enum CallerCommand {
    /// Create an IAM user allowed `execute-api:Invoke` on the routes of the named keys (or on
    /// every route with --allow-all), with an access key; prints `export` lines for a shell.
    Create {
        name: String,
        /// A key whose routes (`/v1/keys/KEY/*`, `GET /v1/keys/KEY`) the caller may invoke.
        #[arg(long = "allow-key")]
        keys: Vec<String>,
        /// Allow every route of the API instead.
        #[arg(long, conflicts_with = "keys")]
        allow_all: bool,
        /// The state file `up` writes.
        #[arg(long, default_value = "build/sandbox/state.json")]
        state: PathBuf,
    },
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
    /// Emulation speed-up, not AWS: the SQS event source's batching window in seconds, in place of
    /// the deployed mapping's MaximumBatchingWindowInSeconds (the default).
    #[arg(long, env = "SSM_SANDBOX_SQS_BATCHING_WINDOW_SECS")]
    sqs_batching_window_secs: Option<u64>,
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
            sqs_batching_window: self.sqs_batching_window_secs.map(Duration::from_secs),
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
            Command::Caller(CallerCommand::Create {
                name,
                keys,
                allow_all,
                state,
            }) => create_caller(&name, &keys, allow_all, &state).await,
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
                ("POST", None) if path == "/callers" => {
                    match create_caller_in(&sb, &req.body).await {
                        Ok(created) => web::json(StatusCode::OK, &created),
                        Err(e) => web::json(
                            StatusCode::BAD_REQUEST,
                            &json!({"message": format!("{e:#}")}),
                        ),
                    }
                }
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
        "  Crypto API   {}   (as API Gateway: payload v2, SigV4 and identity policies checked by the IAM authorizer)",
        sb.gateway_url
    ));
    say(
        "  callers      ssm-sandbox caller create NAME --allow-key KEY   (an IAM user in moto; prints its credentials)",
    );
    if let Some(operator) = &sb.operator {
        say(format!(
            "  try          curl -s --aws-sigv4 aws:amz:{}:execute-api --user {}:$SECRET -X POST {}/v1/encrypt -H 'content-type: application/json' -d '{{\"plaintext\":\"aGVsbG8=\"}}'",
            sb.opts.region, operator.access_key_id, sb.gateway_url
        ));
        say(format!(
            "               (SECRET: the operator's, in {})",
            sb.opts.work.join("callers.json").display()
        ));
    }
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

/// The control URL of the running sandbox, from its state file.
fn control_url(state: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(state).with_context(|| {
        format!(
            "no running sandbox ({} is missing): start one with bash scripts/sandbox.sh",
            state.display()
        )
    })?;
    let v: Value = serde_json::from_str(&text).context("the state file is not JSON")?;
    v["control"]
        .as_str()
        .map(str::to_owned)
        .context("the state file names no control URL")
}

/// What `POST /callers` of the control endpoint takes.
#[derive(Debug, serde::Deserialize)]
struct CallerRequest {
    name: String,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    allow_all: bool,
}

/// Issues a caller in the running sandbox: its answer carries the credentials.
async fn create_caller_in(sb: &Sandbox, body: &[u8]) -> anyhow::Result<Value> {
    let request: CallerRequest = serde_json::from_slice(body).context("the body")?;
    let callers = sb.callers.as_ref().context("the gateway is not up")?;
    let policy = if request.allow_all {
        ssm_sandbox::callers::api_policy(&sb.api_id)
    } else if request.keys.is_empty() {
        bail!("name at least one key (--allow-key) or --allow-all")
    } else {
        ssm_sandbox::callers::key_policy(&sb.api_id, &request.keys)
    };
    let caller = callers.create(&request.name, &policy).await?;
    Ok(json!({
        "user_arn": caller.user_arn,
        "endpoint": sb.gateway_url,
        "env": caller.credentials.env(&sb.opts.region).into_iter().collect::<std::collections::BTreeMap<_, _>>(),
    }))
}

async fn create_caller(
    name: &str,
    keys: &[String],
    allow_all: bool,
    state: &Path,
) -> anyhow::Result<u8> {
    let request = json!({"name": name, "keys": keys, "allow_all": allow_all});
    let body = control_post(state, "/callers", &request, Duration::from_secs(60)).await?;
    let arn = body["user_arn"].as_str().unwrap_or(name);
    say(format!(
        "# caller {arn} of {}",
        body["endpoint"].as_str().unwrap_or_default()
    ));
    for (name, value) in body["env"].as_object().into_iter().flatten() {
        say(format!(
            "export {name}={}",
            value.as_str().unwrap_or_default()
        ));
    }
    Ok(0)
}

/// POSTs `body` to the running sandbox's control endpoint; its JSON answer, or its refusal.
async fn control_post(
    state: &Path,
    path: &str,
    body: &Value,
    timeout: Duration,
) -> anyhow::Result<Value> {
    let control = control_url(state)?;
    let resp = reqwest::Client::new()
        .post(format!("{control}{path}"))
        .json(body)
        .timeout(timeout)
        .send()
        .await
        .with_context(|| format!("the sandbox at {control} does not answer (stopped?)"))?;
    let status = resp.status();
    let answer: Value = resp
        .json()
        .await
        .context("the sandbox's answer is not JSON")?;
    if !status.is_success() {
        bail!(
            "{}",
            answer["message"].as_str().unwrap_or("the sandbox refused")
        );
    }
    Ok(answer)
}

async fn drift(kind: DriftKind, state: &Path) -> anyhow::Result<u8> {
    let path = format!("/drift/{}", kind.name());
    let body = control_post(state, &path, &Value::Null, Duration::from_secs(600)).await?;
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
            m.event
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

/// The burst `e2e` makes: twice the stack's `BatchSize`.
const BURST: usize = 20;

async fn e2e_checks(sb: &Sandbox) -> anyhow::Result<Vec<String>> {
    let mut failures = Vec::new();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let api = &sb.gateway_url;
    let operator = sb.operator.clone().context("no operator caller")?;
    let region = sb.opts.region.as_str();

    // The Crypto API through the gateway, signed by the operator: the sample's route and a round trip.
    let version = send_as(http.get(format!("{api}/version")), Some(&operator), region).await?;
    say(format!("GET /version → {}", version.status()));
    if version.status() != 200 {
        failures.push(format!("GET /version answered {}", version.status()));
    }
    let enc = http
        .post(format!("{api}/v1/encrypt"))
        .json(&json!({"plaintext": "aGVsbG8gc2FuZGJveA=="}));
    let enc: Value = send_as(enc, Some(&operator), region).await?.json().await?;
    let ciphertext = enc["ciphertext"].as_str().unwrap_or_default().to_owned();
    let dec = http
        .post(format!("{api}/v1/decrypt"))
        .json(&json!({"ciphertext": ciphertext}));
    let dec = send_as(dec, Some(&operator), region).await?;
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

    // Named keys as their callers use them: two IAM callers, each allowed one key, with the CLI.
    let named = ssm_sandbox::named_keys::two_callers(sb).await?;
    for line in named.lines {
        say(line);
    }
    failures.extend(named.failures);

    // Changes made directly in moto by anyone: the functions follow, without `drift`'s help.
    for step in sb.follow_check().await? {
        match step.after {
            Some(after) => say(format!(
                "follows moto in {:>5} ms: {}",
                after.as_millis(),
                step.change
            )),
            None => failures.push(format!(
                "not followed within {:?}: {}",
                ssm_sandbox::external::FOLLOW_LIMIT,
                step.change
            )),
        }
    }

    // A burst of changes: batched as the stack's event source mapping says, reconciled as
    // deploy.yml's concurrency group runs.
    let burst = sb.burst(BURST).await?;
    say(format!(
        "burst of {} changes, their events put on the bus in {} ms: batches {:?}, {} dispatches, {} reconcile runs ({} pending runs replaced), settled in {:.1} s",
        burst.changes,
        burst.made_in.as_millis(),
        burst.batches,
        burst.dispatches,
        burst.reconcile_runs,
        burst.superseded,
        burst.took.as_secs_f64()
    ));
    if burst.dispatches != 2 || burst.reconcile_runs != 2 {
        failures.push(format!(
            "a burst of {BURST} changes made {} dispatches and {} reconcile runs; Lambda's poller (BatchSize 10) and the workflow's concurrency group make 2 and 2",
            burst.dispatches, burst.reconcile_runs
        ));
    }

    // The IAM authorizer: unsigned, mis-signed and not-allowed requests get API Gateway's 403s.
    let encrypt = || {
        http.post(format!("{api}/v1/encrypt"))
            .json(&json!({"plaintext": "aGk="}))
    };
    let mut wrong_secret = operator.clone();
    wrong_secret.secret = SecretAccessKey::new("not-the-secret");
    let payments = match &sb.callers {
        Some(callers) => Some(
            callers
                .create(
                    "e2e-payments",
                    &ssm_sandbox::callers::key_policy(&sb.api_id, &["payments".to_owned()]),
                )
                .await?
                .credentials,
        ),
        None => None,
    };
    let refusals = [
        ("unsigned", None, "Forbidden"),
        (
            "mis-signed",
            Some(&wrong_secret),
            "InvalidSignatureException",
        ),
        (
            "allowed another key only",
            payments.as_ref(),
            "AccessDeniedException",
        ),
    ];
    for (what, credentials, expected) in refusals {
        let response = send_as(encrypt(), credentials, region).await?;
        let status = response.status();
        let typed = response.headers().get("x-amzn-errortype");
        let typed = typed.is_some_and(|t| t == expected);
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let first_line = body["message"].as_str().unwrap_or_default().lines().next();
        say(format!("POST /v1/encrypt {what} → {status} {first_line:?}"));
        if status != 403 || !(typed || body["message"] == expected) {
            failures.push(format!(
                "POST /v1/encrypt {what}: {status} {body}, expected 403 {expected}"
            ));
        }
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
        let expected = kind.expected_reconcile_exit();
        if !report.reconcile_exits.contains(&Some(expected)) {
            failures.push(format!(
                "{}: no reconcile ending with exit {expected} (runs ended with {:?})",
                kind.name(),
                report.reconcile_exits
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

//! The GitHub REST API emulator as a standalone server (`ssm_testkit::github`), for the sandbox
//! and for trying the App or the integrity Lambda by hand.
//!
//!   ssm-github-emulator [--listen 127.0.0.1:0] [--app-id 5150] [--app-public-key FILE]
//!                       [--install owner/name=ID]...
//!
//! The first line on stdout is `listening on http://127.0.0.1:PORT`. Without `--app-public-key`
//! it verifies App JWTs with the committed TEST-ONLY key. Control plane: `/_emulator/…` (see
//! the module docs). Stops on SIGINT/SIGTERM or when stdin closes with `--exit-on-stdin-eof`.

use std::io::Write;
use std::process::ExitCode;

use ssm_testkit::github::{GitHubEmulator, TEST_APP_PUBLIC_KEY_PEM};

const USAGE: &str = "usage: ssm-github-emulator [--listen ADDR] [--app-id ID] [--app-public-key FILE] [--install owner/name=ID]... [--exit-on-stdin-eof]";

struct Args {
    listen: String,
    app_id: u64,
    public_key: String,
    installs: Vec<(String, u64)>,
    exit_on_stdin_eof: bool,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        listen: "127.0.0.1:0".into(),
        app_id: 5150,
        public_key: TEST_APP_PUBLIC_KEY_PEM.into(),
        installs: Vec::new(),
        exit_on_stdin_eof: false,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--version" => {
                return Err(format!("ssm-github-emulator {}", env!("CARGO_PKG_VERSION")));
            }
            "--listen" => parsed.listen = value("--listen")?,
            "--app-id" => {
                let v = value("--app-id")?;
                parsed.app_id = v
                    .parse()
                    .map_err(|_| format!("--app-id {v:?} is not a number"))?;
            }
            "--app-public-key" => {
                let path = value("--app-public-key")?;
                parsed.public_key = std::fs::read_to_string(&path)
                    .map_err(|e| format!("--app-public-key {path}: {e}"))?;
            }
            "--install" => {
                let v = value("--install")?;
                let (repo, id) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--install {v:?}: expected owner/name=ID"))?;
                let id = id
                    .parse()
                    .map_err(|_| format!("--install {v:?}: {id:?} is not a number"))?;
                if repo.split('/').count() != 2 || repo.split('/').any(str::is_empty) {
                    return Err(format!("--install {v:?}: expected owner/name=ID"));
                }
                parsed.installs.push((repo.to_owned(), id));
            }
            "--exit-on-stdin-eof" => parsed.exit_on_stdin_eof = true,
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(Some(parsed))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            eprintln!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) if e.starts_with("ssm-github-emulator ") => {
            let _ = writeln!(std::io::stdout(), "{e}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let emulator = match GitHubEmulator::start_on(&args.listen, args.app_id, &args.public_key) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (repo, id) in &args.installs {
        emulator.install(repo, *id);
    }
    let mut out = std::io::stdout();
    if writeln!(out, "listening on {}", emulator.base_url())
        .and_then(|()| out.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    if args.exit_on_stdin_eof {
        // A parent that dies closes our stdin: stop with it.
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 64];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
            let _ = closed_tx.send(());
        });
    } else {
        std::mem::forget(closed_tx);
    }
    let stdin_closed = async {
        let _ = closed_rx.await;
    };
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: SIGTERM handler: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        () = stdin_closed => {}
    }
    drop(emulator);
    ExitCode::SUCCESS
}

//! Child processes the sandbox starts (moto, the GitHub emulator, the App, the Action): output to
//! a log file, readiness by HTTP, an error that quotes the log when a child dies early, and
//! `kill_on_drop` so nothing outlives the sandbox.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running child.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Child,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Proc> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("{name}: opening its log {}", log.display()))?;
        let err = file.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("{name}: could not start {:?}", cmd.as_std().get_program()))?;
        Ok(Proc {
            name: name.to_owned(),
            log: log.to_owned(),
            child,
        })
    }

    /// Spawns `cmd` and waits for the first stdout line starting with `prefix`; returns the
    /// rest of that line. Later output goes to `log`. stdin stays open (and closes with us).
    pub async fn spawn_announcing(
        name: &str,
        mut cmd: Command,
        log: &Path,
        prefix: &str,
        timeout: Duration,
    ) -> anyhow::Result<(Proc, String)> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("{name}: opening its log {}", log.display()))?;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(file))
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("{name}: could not start {:?}", cmd.as_std().get_program()))?;
        let stdout = child.stdout.take().context("stdout is piped")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(timeout, lines.next_line()).await;
        let proc = Proc {
            name: name.to_owned(),
            log: log.to_owned(),
            child,
        };
        let line = match first {
            Ok(Ok(Some(line))) => line,
            Ok(_) => bail!("{name} exited before announcing itself{}", proc.log_tail()),
            Err(_) => bail!(
                "{name} did not announce itself within {timeout:?}{}",
                proc.log_tail()
            ),
        };
        let Some(rest) = line.strip_prefix(prefix) else {
            bail!("{name}: unexpected first line {line:?}");
        };
        let log = log.to_owned();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            if let Ok(mut f) = tokio::fs::OpenOptions::new().append(true).open(&log).await {
                while let Ok(Some(l)) = lines.next_line().await {
                    let _ = f.write_all(format!("{l}\n").as_bytes()).await;
                }
            }
        });
        let rest = rest.trim().to_owned();
        Ok((proc, rest))
    }

    /// Waits until `url` answers any HTTP status; fails early, quoting the log, if the child exits.
    pub async fn wait_http(&mut self, url: &str, timeout: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()?;
        let deadline = Instant::now() + timeout;
        loop {
            if http.get(url).send().await.is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before it answered{}",
                    self.name,
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer {url} within {timeout:?}{}",
                    self.name,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines of the log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(12)..].join("\n    ");
        if tail.is_empty() {
            format!(" (log: {})", self.log.display())
        } else {
            format!("; last lines of {}:\n    {tail}", self.log.display())
        }
    }

    /// Waits for the child to exit.
    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }

    /// Stops the child (SIGKILL) and reaps it.
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for Proc {
    /// Kills the child and waits (up to 3 s) until it is gone, so a sandbox that stops on an
    /// error leaves nothing listening behind it.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = self.child.start_kill();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago (the child binds it next).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// `port` if it is free on 127.0.0.1 (0: any free port), else a clear error.
pub fn port_or_free(port: u16, what: &str) -> anyhow::Result<u16> {
    if port == 0 {
        return free_port();
    }
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => Ok(port),
        Err(e) => bail!("port {port} on 127.0.0.1 (for {what}) is not available: {e}"),
    }
}

//! The sandbox driven from outside, as AWS and GitHub would be: changes made directly in moto
//! with plain SDK calls (not through `drift`), and a burst of changes through EventBridge. `e2e`
//! runs both and fails when the sandbox does not behave as Lambda and GitHub Actions would.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::Environment;
use serde_json::json;

use crate::drift::cloudtrail_event;
use crate::journal::Event;
use crate::system::{Deployed, Sandbox, aws_error};

/// How long a function may take to follow a change before the check fails. The goal is about a
/// second (the watcher reads moto every 500 ms, then a cold start); a loaded CI machine has taken 2 s.
pub const FOLLOW_LIMIT: Duration = Duration::from_secs(5);

/// One change made in moto and how long the running function took to follow it.
#[derive(Debug, Clone)]
pub struct Followed {
    pub change: String,
    /// `None`: not followed within [`FOLLOW_LIMIT`].
    pub after: Option<Duration>,
}

/// What a burst of changes became.
#[derive(Debug, Clone)]
pub struct Burst {
    pub changes: usize,
    /// How long putting the changes' events on the bus took.
    pub made_in: Duration,
    /// The size of each batch the event source handed the integrity function.
    pub batches: Vec<usize>,
    pub dispatches: usize,
    pub reconcile_runs: usize,
    /// Pending runs the concurrency group replaced.
    pub superseded: usize,
    pub took: Duration,
}

impl Sandbox {
    /// Changes the crypto function's code and configuration directly in moto, as anyone with
    /// Lambda permissions could, and measures how long the API takes to follow each change; then
    /// puts everything back.
    pub async fn follow_check(&self) -> anyhow::Result<Vec<Followed>> {
        let before = self.crypto()?;
        let deployed_zip = self.build(&before.code_sha256)?;
        let mut out = Vec::new();

        // A zip the sandbox cannot run: the API answers as Lambda does for a broken function.
        let broken_at = Instant::now();
        self.replace_code(&before.name, broken_zip()?).await?;
        out.push(Followed {
            change: "UpdateFunctionCode to a zip it cannot run: /v1/encrypt stops answering 200"
                .into(),
            after: self
                .until(broken_at, async || {
                    !self.encrypt_probe().await.starts_with("200")
                })
                .await,
        });
        // A few more passes of the watcher: the stopped function is reported once, not each time.
        tokio::time::sleep(crate::watch::EVERY * 3).await;
        let stopped = self
            .journal
            .since(broken_at)
            .iter()
            .filter(|m| {
                matches!(&m.event, Event::FunctionFollowed(f) if f.name == before.name && !f.running)
            })
            .count();
        anyhow::ensure!(
            stopped == 1,
            "the watcher reported {} stopped {stopped} times for one change of code",
            before.name
        );

        let t = Instant::now();
        self.replace_code(&before.name, deployed_zip).await?;
        out.push(Followed {
            change: "UpdateFunctionCode back to the deployed build: /v1/encrypt answers 200".into(),
            after: self
                .until(t, async || self.encrypt_probe().await.starts_with("200"))
                .await,
        });

        let mut env = before.env.clone();
        env.insert("SSM_SANDBOX_FOLLOW".into(), "1".into());
        let timeout = before.timeout_secs + 1;
        let t = Instant::now();
        self.configure(&before.name, &env, timeout).await?;
        out.push(Followed {
            change:
                "UpdateFunctionConfiguration (environment, timeout): the process restarts with them"
                    .into(),
            after: self
                .until(t, async || {
                    self.crypto()
                        .is_ok_and(|d| d.env == env && d.timeout_secs == timeout)
                })
                .await,
        });

        let t = Instant::now();
        self.configure(&before.name, &before.env, before.timeout_secs)
            .await?;
        out.push(Followed {
            change: "UpdateFunctionConfiguration back: the deployed configuration runs".into(),
            after: self
                .until(t, async || self.crypto().is_ok_and(|d| d == before))
                .await,
        });
        Ok(out)
    }

    /// `changes` configuration changes of the crypto function within about a second, each with
    /// its CloudTrail event on the bus, followed to the end of the reconcile runs they cause.
    /// The crypto function's configuration is put back (without an event) at the end.
    pub async fn burst(&self, changes: usize) -> anyhow::Result<Burst> {
        let eb = aws_sdk_eventbridge::Client::new(&self.aws);
        let before = self.crypto()?;
        let dispatches_before = self.dispatches().await?.len();
        let t0 = Instant::now();
        for n in 0..changes {
            let mut env = before.env.clone();
            env.insert("SSM_SANDBOX_BURST".into(), n.to_string());
            self.configure(&before.name, &env, before.timeout_secs)
                .await?;
        }
        let changed_in = t0.elapsed();
        // CloudTrail delivers their events close together.
        let events_at = Instant::now();
        let event = cloudtrail_event(
            &self.opts.region,
            "aws.lambda",
            "lambda.amazonaws.com",
            "UpdateFunctionConfiguration20150331v2",
            json!({"functionName": before.name,
                   "environment": {"variables": "HIDDEN_DUE_TO_SECURITY_REASONS"}}),
        );
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source("aws.lambda")
            .detail_type("AWS API Call via CloudTrail")
            .detail(event["detail"].to_string())
            .build();
        for chunk in vec![entry; changes].chunks(10) {
            eb.put_events()
                .set_entries(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| anyhow!("PutEvents: {}", aws_error(&e)))?;
        }
        let made_in = events_at.elapsed();
        self.journal.mark(format!(
            "burst: {changes} configuration changes of {} in {} ms, their CloudTrail events put on the bus in {} ms",
            before.name,
            changed_in.as_millis(),
            made_in.as_millis()
        ));

        // Every record delivered, then the reconcile runs settled: as many ended as started, and
        // none started for a while.
        let delivered = |since: Instant| {
            self.journal
                .since(since)
                .iter()
                .filter_map(|m| match m.event {
                    Event::BatchDelivered { messages } => Some(messages),
                    _ => None,
                })
                .sum::<usize>()
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while delivered(t0) < changes && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut quiet_since = Instant::now();
        let mut last = (0, 0);
        loop {
            let marks = self.journal.since(t0);
            let started = marks
                .iter()
                .filter(|m| m.event == Event::ReconcileStarted)
                .count();
            let ended = marks.iter().filter(|m| m.event.ends_a_reconcile()).count();
            if (started, ended) != last {
                last = (started, ended);
                quiet_since = Instant::now();
            }
            let dispatched = self.dispatches().await?.len() > dispatches_before;
            if dispatched && started == ended && quiet_since.elapsed() > Duration::from_secs(5)
                || Instant::now() > deadline
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let took = t0.elapsed();
        self.configure(&before.name, &before.env, before.timeout_secs)
            .await?;
        self.in_step().await?;
        let marks = self.journal.since(t0);
        Ok(Burst {
            changes,
            made_in,
            batches: marks
                .iter()
                .filter_map(|m| match m.event {
                    Event::BatchDelivered { messages } => Some(messages),
                    _ => None,
                })
                .collect(),
            dispatches: self
                .dispatches()
                .await?
                .len()
                .saturating_sub(dispatches_before),
            reconcile_runs: marks
                .iter()
                .filter(|m| m.event == Event::ReconcileStarted)
                .count(),
            superseded: marks
                .iter()
                .filter(|m| m.event == Event::RunSuperseded)
                .count(),
            took,
        })
    }

    /// The bytes of a build the sandbox knows, by its `CodeSha256`.
    pub(crate) fn build(&self, code_sha256: &str) -> anyhow::Result<Vec<u8>> {
        let zip = self
            .code
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(code_sha256)
            .cloned()
            .with_context(|| format!("the build {code_sha256} is not one the sandbox knows"))?;
        std::fs::read(&zip).with_context(|| format!("reading {}", zip.display()))
    }

    /// `UpdateFunctionCode` with a zip, as anyone with the permission can; returns the new hash.
    pub(crate) async fn replace_code(&self, name: &str, zip: Vec<u8>) -> anyhow::Result<String> {
        let out = aws_sdk_lambda::Client::new(&self.aws)
            .update_function_code()
            .function_name(name)
            .zip_file(Blob::new(zip))
            .send()
            .await
            .map_err(|e| anyhow!("UpdateFunctionCode: {}", aws_error(&e)))?;
        Ok(out.code_sha256.unwrap_or_default())
    }

    /// The crypto function's configuration as the sandbox runs it.
    fn crypto(&self) -> anyhow::Result<Deployed> {
        self.functions
            .iter()
            .find(|(id, _)| id.starts_with("CryptoFunction"))
            .and_then(|(_, f)| f.deployed())
            .context("the crypto function is not running")
    }

    async fn configure(
        &self,
        name: &str,
        env: &std::collections::BTreeMap<String, String>,
        timeout_secs: i32,
    ) -> anyhow::Result<()> {
        aws_sdk_lambda::Client::new(&self.aws)
            .update_function_configuration()
            .function_name(name)
            .timeout(timeout_secs)
            .environment(
                Environment::builder()
                    .set_variables(Some(env.clone().into_iter().collect()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| anyhow!("UpdateFunctionConfiguration: {}", aws_error(&e)))?;
        Ok(())
    }

    /// How long after `t` `holds` first held, if within [`FOLLOW_LIMIT`].
    async fn until(&self, t: Instant, holds: impl AsyncFn() -> bool) -> Option<Duration> {
        while t.elapsed() < FOLLOW_LIMIT {
            if holds().await {
                return Some(t.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

/// A Lambda zip whose `bootstrap` is no build the sandbox knows.
fn broken_zip() -> anyhow::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("bootstrap", zip::write::SimpleFileOptions::default())?;
    zip.write_all(b"#!/bin/sh\necho 'not a build of this repository' >&2\nexit 1\n")?;
    Ok(zip.finish()?.into_inner())
}

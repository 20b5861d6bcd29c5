//! A workflow job's `concurrency` group as GitHub Actions runs it: one run in progress and at
//! most one pending; a newer run replaces the pending one (which GitHub cancels), and with
//! `cancel-in-progress: true` it also cancels the run in progress.
//!
//! The group is read from the workflow itself (`.github/workflows/deploy.yml`), so the sandbox's
//! reconcile runs follow what the repository's workflow says.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::sync::mpsc;

use crate::journal::{Event, Journal};

/// The workflow the sandbox plays: `deploy.yml`, built in so it is the checkout's own.
pub const DEPLOY_WORKFLOW: &str = include_str!("../../.github/workflows/deploy.yml");

/// The job of [`DEPLOY_WORKFLOW`] a `repository_dispatch` runs (in `reconcile` mode).
pub const RECONCILE_JOB: &str = "deploy";

/// A job's concurrency group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The group's expression, as written.
    pub name: String,
    pub cancel_in_progress: bool,
}

impl Group {
    /// The `concurrency:` of job `job` in a workflow file (the block form, with `group:` and an
    /// optional `cancel-in-progress:`, as `deploy.yml` writes it).
    pub fn of_job(workflow: &str, job: &str) -> anyhow::Result<Group> {
        let lines: Vec<&str> = workflow.lines().collect();
        let jobs = lines
            .iter()
            .position(|l| l.trim_end() == "jobs:")
            .context("the workflow has no `jobs:`")?;
        let header = format!("{job}:");
        let start = lines[jobs + 1..]
            .iter()
            .position(|l| indent(l) == 2 && l.trim() == header)
            .map(|i| jobs + 1 + i)
            .with_context(|| format!("the workflow has no job `{job}`"))?;
        let body = lines[start + 1..]
            .iter()
            .take_while(|l| l.trim().is_empty() || indent(l) > 2);
        let mut in_concurrency = false;
        let (mut name, mut cancel) = (None, false);
        for line in body {
            let text = line.trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            if indent(line) == 4 {
                in_concurrency = text == "concurrency:";
                if let Some(inline) = text.strip_prefix("concurrency:")
                    && !inline.trim().is_empty()
                {
                    name = Some(unquote(inline));
                }
                continue;
            }
            if !in_concurrency {
                continue;
            }
            if let Some(v) = text.strip_prefix("group:") {
                name = Some(unquote(v));
            } else if let Some(v) = text.strip_prefix("cancel-in-progress:") {
                cancel = match unquote(v).as_str() {
                    "true" => true,
                    "false" => false,
                    other => bail!("job `{job}`: cancel-in-progress is {other:?}, not a boolean"),
                };
            }
        }
        Ok(Group {
            name: name.with_context(|| format!("job `{job}` has no concurrency group"))?,
            cancel_in_progress: cancel,
        })
    }

    /// Runs `run` once per trigger received, as the group would: while a run is in progress the
    /// triggers collapse into one pending run. Returns when the triggers end and the group is idle.
    pub async fn serve<F, Fut>(
        &self,
        mut triggers: mpsc::UnboundedReceiver<()>,
        journal: Arc<Journal>,
        mut run: F,
    ) where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut pending = triggers.recv().await.is_some();
        while pending {
            pending = false;
            let mut current = pin!(run());
            let mut open = true;
            loop {
                tokio::select! {
                    () = &mut current => break,
                    trigger = triggers.recv(), if open => match trigger {
                        None => open = false,
                        Some(()) if self.cancel_in_progress => {
                            journal.record(Event::RunCancelled);
                            pending = true;
                            break;
                        }
                        Some(()) => {
                            journal.record(if pending {
                                Event::RunSuperseded
                            } else {
                                Event::RunPending
                            });
                            pending = true;
                        }
                    },
                }
            }
            if !pending && open {
                pending = triggers.recv().await.is_some();
            }
        }
    }
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn unquote(v: &str) -> String {
    let v = v.split(" #").next().unwrap_or_default().trim();
    v.trim_matches(|c| c == '"' || c == '\'').to_owned()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_deploy_job_runs_one_at_a_time_never_cancelled() {
        let group = Group::of_job(DEPLOY_WORKFLOW, RECONCILE_JOB).unwrap();
        assert_eq!(
            group,
            Group {
                name: "ssm-deploy-${{ github.repository }}".into(),
                cancel_in_progress: false
            }
        );
        assert!(
            Group::of_job(DEPLOY_WORKFLOW, "plan")
                .unwrap()
                .cancel_in_progress
        );
    }

    #[test]
    fn a_job_without_a_group_or_a_bad_flag_is_refused() {
        let workflow = "on: push\njobs:\n  a:\n    runs-on: x\n  b:\n    concurrency:\n      group: g\n      cancel-in-progress: maybe\n";
        let e = Group::of_job(workflow, "a").unwrap_err().to_string();
        assert!(e.contains("no concurrency group"), "{e}");
        let e = Group::of_job(workflow, "b").unwrap_err().to_string();
        assert!(e.contains("not a boolean"), "{e}");
        assert!(Group::of_job(workflow, "c").is_err());
        let inline = "jobs:\n  a:\n    concurrency: 'one' # a comment\n    steps: []\n";
        assert_eq!(
            Group::of_job(inline, "a").unwrap(),
            Group {
                name: "one".into(),
                cancel_in_progress: false
            }
        );
    }

    /// Runs `triggers` triggers within a few milliseconds through `group`, each run taking 200 ms.
    async fn burst(group: Group, triggers: usize) -> (usize, Vec<Event>) {
        let journal = Arc::new(Journal::default());
        let since = std::time::Instant::now();
        let (tx, rx) = mpsc::unbounded_channel();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let served = {
            let journal = journal.clone();
            tokio::spawn(async move {
                group
                    .serve(rx, journal, || {
                        let runs = counted.clone();
                        async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    })
                    .await;
            })
        };
        for _ in 0..triggers {
            tx.send(()).unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(tx);
        served.await.unwrap();
        let events = journal.since(since).into_iter().map(|m| m.event).collect();
        (runs.load(Ordering::SeqCst), events)
    }

    #[tokio::test]
    async fn a_burst_of_dispatches_makes_one_run_and_one_pending() {
        let group = Group::of_job(DEPLOY_WORKFLOW, RECONCILE_JOB).unwrap();
        let (runs, events) = burst(group, 6).await;
        assert_eq!(runs, 2, "{events:?}");
        assert_eq!(
            events,
            [Event::RunPending]
                .into_iter()
                .chain(std::iter::repeat_n(Event::RunSuperseded, 4))
                .collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn cancel_in_progress_restarts_with_the_newest() {
        let group = Group {
            name: "g".into(),
            cancel_in_progress: true,
        };
        let (runs, events) = burst(group, 3).await;
        // Each trigger cancels the run before it; only the last runs to the end.
        assert_eq!(runs, 3, "{events:?}");
        assert_eq!(events, vec![Event::RunCancelled; 2]);
    }

    #[tokio::test]
    async fn dispatches_apart_run_each() {
        let group = Group::of_job(DEPLOY_WORKFLOW, RECONCILE_JOB).unwrap();
        let journal = Arc::new(Journal::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let served = tokio::spawn(async move {
            group
                .serve(rx, journal, || {
                    let runs = counted.clone();
                    async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .await;
        });
        for _ in 0..3 {
            tx.send(()).unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(tx);
        served.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}

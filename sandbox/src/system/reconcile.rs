//! How a repository dispatch triggers a reconcile: each dispatch the GitHub emulator accepts
//! starts the deploy job in `reconcile` mode, as the workflow's concurrency group allows.

use std::time::Duration;

use serde_json::Value;

use super::Sandbox;
use super::action::run_action_with;
use crate::concurrency;
use crate::journal::Event;

impl Sandbox {
    /// The workflow's `on: repository_dispatch` trigger: each dispatch the emulator accepted
    /// triggers the deploy job in `reconcile` mode, run as the job's concurrency group in
    /// `deploy.yml` runs it ([`concurrency`]).
    pub(super) fn start_dispatch_watcher(&mut self) -> anyhow::Result<()> {
        let group =
            concurrency::Group::of_job(concurrency::DEPLOY_WORKFLOW, concurrency::RECONCILE_JOB)?;
        let url = format!("{}/_emulator/dispatches", self.github_url);
        let journal = self.journal.clone();
        let opts = self.opts.clone();
        let moto = self.moto_url.clone();
        let oidc_url = self.oidc.url();
        let oidc_token = self.oidc.request_token.clone();
        let lock = self.reconcile_lock.clone();
        let (trigger, triggers) = tokio::sync::mpsc::unbounded_channel();
        let runs = journal.clone();
        self.tasks.push(tokio::spawn(async move {
            group
                .serve(triggers, runs.clone(), || {
                    let (opts, moto, oidc_url, oidc_token, lock, journal) = (
                        opts.clone(),
                        moto.clone(),
                        oidc_url.clone(),
                        oidc_token.clone(),
                        lock.clone(),
                        runs.clone(),
                    );
                    async move {
                        let _guard = lock.lock().await;
                        journal.record(Event::ReconcileStarted);
                        let run = run_action_with(
                            &opts,
                            &moto,
                            &oidc_url,
                            &oidc_token,
                            "reconcile",
                            "reconcile",
                        )
                        .await;
                        journal.record(match run {
                            Ok(r) => Event::ReconcileDone {
                                exit: r.code,
                                drifted_resources: r
                                    .outputs
                                    .get("drifted-resources")
                                    .cloned()
                                    .unwrap_or_else(|| "?".into()),
                                has_changes: r
                                    .outputs
                                    .get("has-changes")
                                    .cloned()
                                    .unwrap_or_else(|| "?".into()),
                            },
                            Err(e) => Event::ReconcileFailedToRun {
                                error: e.to_string(),
                            },
                        });
                    }
                })
                .await;
        }));
        let http = reqwest::Client::new();
        self.tasks.push(tokio::spawn(async move {
            let mut seen = 0usize;
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Ok(resp) = http.get(&url).send().await else {
                    continue;
                };
                let Ok(all) = resp.json::<Vec<Value>>().await else {
                    continue;
                };
                for d in all.iter().skip(seen) {
                    journal.record(Event::DispatchAccepted {
                        event_type: d["body"]["event_type"].as_str().unwrap_or("?").to_owned(),
                        repository: d["repository"].as_str().unwrap_or("?").to_owned(),
                        resources: d["body"]["client_payload"]["resources"].to_string(),
                    });
                    let _ = trigger.send(());
                }
                seen = all.len();
            }
        }));
        Ok(())
    }
}

//! What the sandbox's background loops report, typed: waiters match on [`Event`]s, never on the
//! text a timeline prints.

use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A step of start-up, a change made, a probe's answer: for the timeline only.
    Note(String),
    /// The SQS event source received records from the queue; `gathered` are in the batch now.
    RecordsReceived {
        received: usize,
        gathered: usize,
    },
    /// The SQS event source handed a batch to the integrity function.
    BatchDelivered {
        messages: usize,
    },
    /// The integrity function returned; `redeliver` of `messages` are left on the queue.
    BatchReturned {
        redeliver: usize,
        messages: usize,
    },
    /// The integrity function failed; the whole batch is left on the queue.
    BatchFailed {
        error: String,
    },
    /// GitHub accepted a `repository_dispatch`.
    DispatchAccepted {
        event_type: String,
        repository: String,
        resources: String,
    },
    /// A pending run of the concurrency group was replaced by a newer one, as GitHub cancels it.
    RunSuperseded,
    /// A workflow run of the concurrency group waits for the running one.
    RunPending,
    /// The run in progress was cancelled for a newer one (`cancel-in-progress: true`).
    RunCancelled,
    ReconcileStarted,
    /// The reconcile Action ended; `exit` is `None` when a signal ended it.
    ReconcileDone {
        exit: Option<i32>,
        drifted_resources: String,
        has_changes: String,
    },
    ReconcileFailedToRun {
        error: String,
    },
    /// A function's process was replaced because its code or configuration changed in moto.
    FunctionFollowed(Followed),
}

impl Event {
    /// Whether a reconcile run ended (done or not run at all).
    pub fn ends_a_reconcile(&self) -> bool {
        matches!(
            self,
            Event::ReconcileDone { .. } | Event::ReconcileFailedToRun { .. }
        )
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Note(text) => f.write_str(text),
            Event::RecordsReceived { received, gathered } => write!(
                f,
                "queue: {received} message(s) received by the event source, {gathered} in the batch"
            ),
            Event::BatchDelivered { messages } => write!(
                f,
                "queue: {messages} message(s) delivered to the integrity function"
            ),
            Event::BatchReturned {
                redeliver,
                messages,
            } => write!(
                f,
                "integrity function returned; {redeliver} of {messages} message(s) to redeliver"
            ),
            Event::BatchFailed { error } => write!(
                f,
                "integrity function failed: {error}; the batch is redelivered"
            ),
            Event::DispatchAccepted {
                event_type,
                repository,
                resources,
            } => write!(
                f,
                "dispatch {event_type} accepted by GitHub for {repository}: {resources}"
            ),
            Event::RunSuperseded => f.write_str(
                "reconcile run cancelled: a newer run of the concurrency group replaced it while pending",
            ),
            Event::RunCancelled => f.write_str(
                "reconcile run cancelled in progress: the concurrency group cancels for a newer run",
            ),
            Event::RunPending => {
                f.write_str("reconcile run pending: the concurrency group has one running")
            }
            Event::ReconcileStarted => f.write_str("reconcile started (ssm-action, mode reconcile)"),
            Event::ReconcileDone {
                exit,
                drifted_resources,
                has_changes,
            } => write!(
                f,
                "reconcile done: exit {}, drifted-resources {drifted_resources}, has-changes {has_changes}",
                exit.map_or("signal".into(), |c| c.to_string())
            ),
            Event::ReconcileFailedToRun { error } => write!(f, "reconcile could not run: {error}"),
            Event::FunctionFollowed(followed) => write!(f, "lambda: {followed}"),
        }
    }
}

/// A function the sandbox (re)started or stopped to run what moto holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followed {
    pub name: String,
    pub logical_id: String,
    pub code_sha256: String,
    /// `false`: its code is no build the sandbox knows, so invocations fail as Lambda's would.
    pub running: bool,
}

impl fmt::Display for Followed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, code {}…) {}",
            self.name,
            self.logical_id,
            &self.code_sha256[..8.min(self.code_sha256.len())],
            if self.running {
                "running"
            } else {
                "stopped: its code is not a build the sandbox knows"
            }
        )
    }
}

/// An event and when it happened.
#[derive(Debug, Clone)]
pub struct Mark {
    pub at: Instant,
    pub event: Event,
}

/// Everything the background loops report, in order.
#[derive(Debug)]
pub struct Journal {
    marks: Mutex<Vec<Mark>>,
    /// The number of marks, for waiters.
    count: watch::Sender<usize>,
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            marks: Mutex::new(Vec::new()),
            count: watch::Sender::new(0),
        }
    }
}

impl Journal {
    /// Records a line of the timeline ([`Event::Note`]).
    pub fn mark(&self, what: impl Into<String>) {
        self.record(Event::Note(what.into()));
    }

    pub fn record(&self, event: Event) {
        tracing::info!("{event}");
        let n = {
            let mut marks = self.lock();
            marks.push(Mark {
                at: Instant::now(),
                event,
            });
            marks.len()
        };
        self.count.send_replace(n);
    }

    /// Marks at or after `since`.
    pub fn since(&self, since: Instant) -> Vec<Mark> {
        self.lock()
            .iter()
            .filter(|m| m.at >= since)
            .cloned()
            .collect()
    }

    /// The first event at or after `since` that `wanted` accepts, waiting up to `timeout` for it.
    pub async fn wait_for(
        &self,
        since: Instant,
        timeout: Duration,
        wanted: impl Fn(&Event) -> bool,
    ) -> Option<Mark> {
        let mut count = self.count.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            count.borrow_and_update();
            if let Some(m) = self.since(since).into_iter().find(|m| wanted(&m.event)) {
                return Some(m);
            }
            if tokio::time::timeout_at(deadline, count.changed())
                .await
                .is_err()
            {
                return None;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Mark>> {
        self.marks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_sees_an_event_recorded_after_it_started_waiting() {
        let journal = std::sync::Arc::new(Journal::default());
        let since = Instant::now();
        journal.mark("before the batch");
        let recorder = journal.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            recorder.record(Event::BatchDelivered { messages: 3 });
        });
        let seen = journal
            .wait_for(since, Duration::from_secs(5), |e| {
                matches!(e, Event::BatchDelivered { .. })
            })
            .await
            .map(|m| m.event);
        assert_eq!(seen, Some(Event::BatchDelivered { messages: 3 }));
    }

    #[tokio::test]
    async fn a_waiter_gives_up_at_its_timeout_and_ignores_earlier_marks() {
        let journal = Journal::default();
        journal.record(Event::ReconcileStarted);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let since = Instant::now();
        // Text that reads like an event is not one.
        journal.mark("reconcile done: exit 0");
        let seen = journal
            .wait_for(since, Duration::from_millis(50), |e| {
                e.ends_a_reconcile() || *e == Event::ReconcileStarted
            })
            .await;
        assert!(seen.is_none(), "{seen:?}");
    }

    #[test]
    fn events_print_as_the_timeline_lines_they_replace() {
        let done = Event::ReconcileDone {
            exit: Some(1),
            drifted_resources: "1".into(),
            has_changes: "true".into(),
        };
        assert_eq!(
            done.to_string(),
            "reconcile done: exit 1, drifted-resources 1, has-changes true"
        );
        assert!(done.ends_a_reconcile());
        assert_eq!(
            Event::BatchDelivered { messages: 10 }.to_string(),
            "queue: 10 message(s) delivered to the integrity function"
        );
    }
}

//! Lambda's SQS event source mapping: one poller gathering a batch as the deployed mapping says
//! (`BatchSize`, `MaximumBatchingWindowInSeconds`), invoking the function with it, deleting what
//! succeeded (honouring `batchItemFailures`) and leaving the rest to the queue's visibility
//! timeout and redrive policy.
//!
//! A batch goes to the function when it holds `BatchSize` records, when its payload reaches
//! Lambda's 6 MB invocation limit, or when the batching window has passed since its first record
//! arrived; with no window, with whatever one receive returned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use serde_json::{Value, json};

use crate::Invoker;
use crate::journal::{Event, Journal};
use crate::system::aws_error;

/// Lambda's limit on an invocation's payload.
const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// SQS's limit on one `ReceiveMessage`.
const MAX_RECEIVE: usize = 10;
/// SQS's longest long poll.
const MAX_WAIT_SECS: u64 = 20;
/// How long the idle poller long-polls: short, so a stopped sandbox holds no message in flight long.
const IDLE_WAIT_SECS: i32 = 1;

/// How the mapping batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    pub batch_size: usize,
    pub window: Duration,
}

impl Batching {
    /// From the mapping's `BatchSize` and `MaximumBatchingWindowInSeconds`, with Lambda's
    /// defaults (10 and 0) for what it leaves out.
    pub fn of_mapping(batch_size: Option<i32>, window_secs: Option<i32>) -> Batching {
        Batching {
            batch_size: batch_size
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(10)
                .max(1),
            window: Duration::from_secs(
                window_secs.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            ),
        }
    }

    /// What the poller does next, given the batch gathered so far.
    pub fn next(&self, gathered: &Gathered, now: Instant) -> Step {
        let Some(first_at) = gathered.first_at else {
            return Step::Receive {
                max: self.batch_size.min(MAX_RECEIVE),
                wait: Duration::from_secs(IDLE_WAIT_SECS as u64),
            };
        };
        let elapsed = now.saturating_duration_since(first_at);
        if gathered.records >= self.batch_size
            || gathered.bytes >= MAX_PAYLOAD_BYTES
            || elapsed >= self.window
        {
            return Step::Invoke;
        }
        Step::Receive {
            max: (self.batch_size - gathered.records).min(MAX_RECEIVE),
            wait: (self.window - elapsed).min(Duration::from_secs(MAX_WAIT_SECS)),
        }
    }
}

/// The batch being gathered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gathered {
    pub records: usize,
    pub bytes: usize,
    /// When its first record arrived; `None` while empty.
    pub first_at: Option<Instant>,
}

/// The poller's next move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Hand the batch to the function.
    Invoke,
    /// Ask the queue for up to `max` more records, waiting up to `wait` for them.
    Receive { max: usize, wait: Duration },
}

/// The queue a mapping reads.
#[derive(Debug, Clone)]
pub struct Source {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub queue_arn: String,
    pub region: String,
    /// The mapping's `FunctionResponseTypes` has `ReportBatchItemFailures`: only then does Lambda
    /// read `batchItemFailures` (otherwise a successful invocation deletes the whole batch).
    pub report_item_failures: bool,
}

/// The ARN of the queue at `queue_url`.
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> anyhow::Result<String> {
    use aws_sdk_sqs::types::QueueAttributeName;
    sqs.get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("GetQueueAttributes {queue_url}: {}", aws_error(&e)))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| anyhow::anyhow!("{queue_url} has no QueueArn"))
}

/// Polls `source` for ever, invoking `function` with each batch.
pub async fn run(
    source: Source,
    batching: Batching,
    function: Arc<dyn Invoker>,
    journal: Arc<Journal>,
) {
    let mut batch: Vec<Message> = Vec::new();
    let mut gathered = Gathered::default();
    loop {
        match batching.next(&gathered, Instant::now()) {
            Step::Invoke => {
                deliver(&source, &batch, function.as_ref(), &journal).await;
                batch.clear();
                gathered = Gathered::default();
            }
            Step::Receive { max, wait } => {
                let received = receive(&source, max, wait).await;
                if received.is_empty() {
                    continue;
                }
                gathered.first_at.get_or_insert_with(Instant::now);
                gathered.records += received.len();
                journal.record(Event::RecordsReceived {
                    received: received.len(),
                    gathered: gathered.records,
                });
                gathered.bytes += received
                    .iter()
                    .map(|m| m.body().map_or(0, str::len))
                    .sum::<usize>();
                batch.extend(received);
            }
        }
    }
}

/// One `ReceiveMessage`; SQS waits in whole seconds, so a wait under a second is a short poll
/// and a pause for the rest of it when nothing came.
async fn receive(source: &Source, max: usize, wait: Duration) -> Vec<Message> {
    let whole_secs = i32::try_from(wait.as_secs()).unwrap_or(IDLE_WAIT_SECS);
    let received = source
        .sqs
        .receive_message()
        .queue_url(&source.queue_url)
        .max_number_of_messages(i32::try_from(max).unwrap_or(10))
        .wait_time_seconds(whole_secs)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await;
    match received {
        Ok(r) => {
            let messages = r.messages.unwrap_or_default();
            if messages.is_empty() && whole_secs == 0 {
                tokio::time::sleep(wait.min(Duration::from_millis(100))).await;
            }
            messages
        }
        Err(e) => {
            tracing::warn!(error = %aws_error(&e), "ReceiveMessage failed; retrying");
            tokio::time::sleep(Duration::from_millis(500)).await;
            Vec::new()
        }
    }
}

async fn deliver(source: &Source, batch: &[Message], function: &dyn Invoker, journal: &Journal) {
    let records: Vec<Value> = batch
        .iter()
        .map(|m| sqs_record(m, &source.queue_arn, &source.region))
        .collect();
    journal.record(Event::BatchDelivered {
        messages: records.len(),
    });
    let result = function.invoke(json!({ "Records": records })).await;
    let failed: Vec<String> = match &result {
        Ok(_) if !source.report_item_failures => Vec::new(),
        Ok(v) => v["batchItemFailures"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        Err(_) => batch.iter().filter_map(|m| m.message_id.clone()).collect(),
    };
    journal.record(match &result {
        Ok(_) => Event::BatchReturned {
            redeliver: failed.len(),
            messages: batch.len(),
        },
        Err(e) => Event::BatchFailed {
            error: e.to_string(),
        },
    });
    for m in batch {
        let id = m.message_id.clone().unwrap_or_default();
        if failed.contains(&id) {
            continue;
        }
        if let Some(handle) = &m.receipt_handle
            && let Err(e) = source
                .sqs
                .delete_message()
                .queue_url(&source.queue_url)
                .receipt_handle(handle)
                .send()
                .await
        {
            // The message comes back after its visibility timeout, as on AWS.
            tracing::warn!(message_id = %id, error = %aws_error(&e), "DeleteMessage failed");
        }
    }
}

/// A message as Lambda puts it in the event's `Records`.
fn sqs_record(m: &Message, arn: &str, region: &str) -> Value {
    let attrs: serde_json::Map<String, Value> = m
        .attributes()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "messageId": m.message_id(),
        "receiptHandle": m.receipt_handle(),
        "body": m.body(),
        "attributes": attrs,
        "messageAttributes": {},
        "md5OfBody": m.md5_of_body(),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gathered(records: usize, bytes: usize, first_at: Instant) -> Gathered {
        Gathered {
            records,
            bytes,
            first_at: Some(first_at),
        }
    }

    #[test]
    fn the_mapping_defaults_are_lambdas() {
        assert_eq!(
            Batching::of_mapping(None, None),
            Batching {
                batch_size: 10,
                window: Duration::ZERO
            }
        );
        assert_eq!(
            Batching::of_mapping(Some(10), Some(30)),
            Batching {
                batch_size: 10,
                window: Duration::from_secs(30)
            }
        );
        assert_eq!(
            Batching::of_mapping(Some(-1), Some(-5)).window,
            Duration::ZERO
        );
    }

    #[test]
    fn a_batch_waits_for_its_window_unless_full() {
        let b = Batching::of_mapping(Some(10), Some(30));
        let t0 = Instant::now();
        assert_eq!(
            b.next(&Gathered::default(), t0),
            Step::Receive {
                max: 10,
                wait: Duration::from_secs(1)
            }
        );
        // 7 records 10 s into the window: ask for the other 3, waiting at most the long-poll cap.
        assert_eq!(
            b.next(&gathered(7, 700, t0), t0 + Duration::from_secs(10)),
            Step::Receive {
                max: 3,
                wait: Duration::from_secs(20)
            }
        );
        assert_eq!(
            b.next(&gathered(7, 700, t0), t0 + Duration::from_millis(29_500)),
            Step::Receive {
                max: 3,
                wait: Duration::from_millis(500)
            }
        );
        assert_eq!(
            b.next(&gathered(7, 700, t0), t0 + Duration::from_secs(30)),
            Step::Invoke
        );
        assert_eq!(b.next(&gathered(10, 1000, t0), t0), Step::Invoke);
        assert_eq!(
            b.next(&gathered(1, MAX_PAYLOAD_BYTES, t0), t0),
            Step::Invoke
        );
    }

    #[test]
    fn without_a_window_a_batch_is_what_one_receive_returned() {
        let b = Batching::of_mapping(Some(10), Some(0));
        let t0 = Instant::now();
        assert_eq!(b.next(&gathered(3, 300, t0), t0), Step::Invoke);
    }

    #[test]
    fn large_batches_are_received_ten_at_a_time() {
        let b = Batching::of_mapping(Some(100), Some(5));
        let t0 = Instant::now();
        assert_eq!(
            b.next(&gathered(95, 950, t0), t0),
            Step::Receive {
                max: 5,
                wait: Duration::from_secs(5)
            }
        );
        assert_eq!(
            b.next(&gathered(20, 950, t0), t0),
            Step::Receive {
                max: 10,
                wait: Duration::from_secs(5)
            }
        );
    }
}

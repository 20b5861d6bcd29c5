//! The SQS event source against moto's SQS: batches as the mapping's `BatchSize` and
//! `MaximumBatchingWindowInSeconds` say, as Lambda's poller gathers them.
#![expect(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use ssm_sandbox::journal::Journal;
use ssm_sandbox::poller::{self, Batching, Source};
use ssm_sandbox::{InvokeFuture, Invoker};

/// A function double recording each batch, failing the records whose body is `"fail"`.
#[derive(Default)]
struct Batches(Mutex<Vec<(Instant, Vec<Value>)>>);

impl Batches {
    fn sizes(&self) -> Vec<usize> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, r)| r.len())
            .collect()
    }

    fn records(&self) -> usize {
        self.sizes().iter().sum()
    }
}

impl Invoker for Batches {
    fn invoke(&self, event: Value) -> InvokeFuture {
        let records = event["Records"].as_array().cloned().unwrap_or_default();
        let failures: Vec<Value> = records
            .iter()
            .filter(|r| r["body"] == "fail")
            .map(|r| json!({"itemIdentifier": r["messageId"]}))
            .collect();
        self.0.lock().unwrap().push((Instant::now(), records));
        Box::pin(async move { Ok(json!({ "batchItemFailures": failures })) })
    }
}

struct Queue {
    source: Source,
}

impl Queue {
    async fn new(test: &str) -> Option<Queue> {
        let endpoint = ssm_testkit::moto_endpoint(test)?;
        let sqs = aws_sdk_sqs::Client::new(&ssm_testkit::aws_config(&endpoint).await);
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("poller-{}", uuid::Uuid::new_v4().simple()))
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                "60",
            )
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let queue_arn = poller::queue_arn(&sqs, &queue_url).await.unwrap();
        Some(Queue {
            source: Source {
                sqs,
                queue_url,
                queue_arn,
                region: "us-east-1".into(),
                report_item_failures: true,
            },
        })
    }

    async fn send(&self, body: &str) {
        self.source
            .sqs
            .send_message()
            .queue_url(&self.source.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    /// A new queue polled by a function double as a mapping with `BatchSize` `batch_size` and
    /// `MaximumBatchingWindowInSeconds` `window_secs` would; `None` when `test` skips.
    async fn polled(
        test: &str,
        batch_size: i32,
        window_secs: Option<i32>,
        report_item_failures: bool,
    ) -> Option<(Queue, Arc<Batches>, tokio::task::JoinHandle<()>)> {
        let mut queue = Queue::new(test).await?;
        queue.source.report_item_failures = report_item_failures;
        let (batches, task) = queue.poll(Batching::of_mapping(Some(batch_size), window_secs));
        Some((queue, batches, task))
    }

    /// Messages left once the deletes that follow an invocation are done (or 5 s have passed).
    async fn settled(&self, expected: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.left().await != expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.left().await
    }

    fn poll(&self, batching: Batching) -> (Arc<Batches>, tokio::task::JoinHandle<()>) {
        let batches = Arc::new(Batches::default());
        let task = tokio::spawn(poller::run(
            self.source.clone(),
            batching,
            batches.clone(),
            Arc::new(Journal::default()),
        ));
        (batches, task)
    }

    /// Messages still on the queue, visible or in flight.
    async fn left(&self) -> usize {
        let attrs = self
            .source
            .sqs
            .get_queue_attributes()
            .queue_url(&self.source.queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        [
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|k| attrs[k].parse::<usize>().unwrap())
        .sum()
    }
}

async fn eventually(what: &str, within: Duration, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The burst: 20 changes within a second, `BatchSize` 10, a window longer than the
/// burst: two invocations of ten, where a poller invoking per receive made 6 to 10.
#[tokio::test]
async fn a_burst_of_twenty_within_a_second_makes_two_batches_of_ten() {
    let test = "a_burst_of_twenty_within_a_second_makes_two_batches_of_ten";
    let Some((queue, batches, task)) = Queue::polled(test, 10, Some(3), true).await else {
        return;
    };
    let started = Instant::now();
    for n in 0..20 {
        queue.send(&format!("change {n}")).await;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let burst = started.elapsed();
    eventually("20 records delivered", Duration::from_secs(20), || {
        batches.records() >= 20
    })
    .await;
    // Nothing more comes once the window has passed again.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    task.abort();
    assert_eq!(batches.sizes(), [10, 10], "burst took {burst:?}");
    assert_eq!(queue.left().await, 0, "delivered messages are deleted");
}

/// A batch that does not fill goes to the function when its window has passed since its first
/// record, not before; the records the function reports as failed stay on the queue.
#[tokio::test]
async fn a_partial_batch_waits_for_its_window_and_failures_stay_queued() {
    let test = "a_partial_batch_waits_for_its_window_and_failures_stay_queued";
    let polled = Queue::polled(test, 10, Some(2), true).await;
    let Some((queue, batches, task)) = polled else {
        return;
    };
    let sent = Instant::now();
    queue.send("a").await;
    queue.send("fail").await;
    queue.send("b").await;
    eventually("the batch", Duration::from_secs(10), || {
        batches.records() >= 3
    })
    .await;
    let delivered_after = batches.0.lock().unwrap()[0].0.duration_since(sent);
    assert_eq!(batches.sizes(), [3]);
    assert!(
        delivered_after >= Duration::from_millis(1900),
        "delivered {delivered_after:?} after the first record, before the 2 s window"
    );
    assert_eq!(
        queue.settled(1).await,
        1,
        "the failed record stays for redelivery"
    );
    task.abort();
}

/// Without a window, a batch is what one receive returned: no waiting.
#[tokio::test]
async fn without_a_window_records_go_at_once() {
    let test = "without_a_window_records_go_at_once";
    let Some((queue, batches, task)) = Queue::polled(test, 10, None, true).await else {
        return;
    };
    let sent = Instant::now();
    queue.send("alone").await;
    eventually("the batch", Duration::from_secs(10), || {
        batches.records() >= 1
    })
    .await;
    task.abort();
    assert!(
        sent.elapsed() < Duration::from_millis(1500),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(batches.sizes(), [1]);
}

/// Without `ReportBatchItemFailures` in the mapping, Lambda ignores `batchItemFailures`: a
/// successful invocation deletes the whole batch.
#[tokio::test]
async fn item_failures_count_only_when_the_mapping_reports_them() {
    let test = "item_failures_count_only_when_the_mapping_reports_them";
    let Some((queue, batches, task)) = Queue::polled(test, 10, None, false).await else {
        return;
    };
    queue.send("fail").await;
    eventually("the batch", Duration::from_secs(10), || {
        batches.records() >= 1
    })
    .await;
    assert_eq!(queue.settled(0).await, 0);
    task.abort();
    assert_eq!(batches.sizes(), [1]);
}

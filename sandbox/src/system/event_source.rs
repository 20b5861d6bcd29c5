//! How the integrity queue feeds the integrity function: Lambda's SQS event source mapping,
//! batching as the deployed mapping says.

use anyhow::{Context, anyhow};

use super::{Sandbox, aws_error};
use crate::poller;

impl Sandbox {
    /// Lambda's SQS event source mapping of the integrity queue ([`poller`]), batching as the
    /// deployed mapping says (the window shortened only by [`Options::sqs_batching_window`](super::Options::sqs_batching_window)).
    pub(super) async fn start_event_source_mapping(&mut self) -> anyhow::Result<()> {
        let queue_url = self
            .outputs
            .get("IntegrityQueueUrl")
            .cloned()
            .context("the stack has no IntegrityQueueUrl output")?;
        let sqs = aws_sdk_sqs::Client::new(&self.aws);
        let queue_arn = poller::queue_arn(&sqs, &queue_url).await?;
        let integrity = self.function("IntegrityFunction")?;
        let function_name = integrity
            .deployed()
            .map(|d| d.name)
            .context("the integrity function is not running")?;
        let mappings = aws_sdk_lambda::Client::new(&self.aws)
            .list_event_source_mappings()
            .function_name(&function_name)
            .event_source_arn(&queue_arn)
            .send()
            .await
            .map_err(|e| anyhow!("ListEventSourceMappings {function_name}: {}", aws_error(&e)))?;
        let mapping = mappings.event_source_mappings().first().with_context(|| {
            format!("no event source mapping from {queue_arn} to {function_name}")
        })?;
        let mut batching = poller::Batching::of_mapping(
            mapping.batch_size(),
            mapping.maximum_batching_window_in_seconds(),
        );
        let deployed_window = batching.window;
        if let Some(window) = self.opts.sqs_batching_window {
            batching.window = window;
        }
        self.journal.mark(format!(
            "SQS event source: batches of up to {} record(s), batching window {:?}{}",
            batching.batch_size,
            batching.window,
            if batching.window == deployed_window {
                " (the deployed mapping's)".to_owned()
            } else {
                format!(" (shortened from the deployed mapping's {deployed_window:?}: an emulation speed-up)")
            }
        ));
        let source = poller::Source {
            sqs,
            queue_url,
            queue_arn,
            region: self.opts.region.clone(),
            report_item_failures: mapping
                .function_response_types()
                .contains(&aws_sdk_lambda::types::FunctionResponseType::ReportBatchItemFailures),
        };
        self.tasks.push(tokio::spawn(poller::run(
            source,
            batching,
            integrity,
            self.journal.clone(),
        )));
        Ok(())
    }
}

//! Alarm metrics: what a run found that must page someone even when nobody reads the run's log
//! (the schedule runs reconcile unattended). The alarms on them live in the OIDC stack.

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use ssm_core::deploy::report::METRIC_NAMESPACE;

/// Puts `count` on `metric` for `stack`. A failure is a warning: the run fails anyway when there
/// is something to count, and its annotation says why.
pub async fn put(cloudwatch: &aws_sdk_cloudwatch::Client, metric: &str, stack: &str, count: usize) {
    let datum = MetricDatum::builder()
        .metric_name(metric)
        .dimensions(Dimension::builder().name("Stack").value(stack).build())
        .value(count as f64)
        .unit(StandardUnit::Count)
        .build();
    match cloudwatch
        .put_metric_data()
        .namespace(METRIC_NAMESPACE)
        .metric_data(datum)
        .send()
        .await
    {
        Ok(_) => tracing::info!(%metric, %stack, count, "alarm metric emitted"),
        Err(e) => {
            let why = crate::aws_error(&e);
            tracing::warn!(%metric, %stack, error = %why, "could not emit the alarm metric");
            crate::runner::warning(
                &format!("{metric} metric not emitted"),
                &format!("PutMetricData {METRIC_NAMESPACE}/{metric} for {stack}: {why}"),
            );
        }
    }
}

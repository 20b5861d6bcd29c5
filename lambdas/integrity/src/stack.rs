//! The stack's resources from CloudFormation, cached per execution environment.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_cloudformation::Client as CloudFormation;
use chrono::{DateTime, Utc};
use ssm_core::integrity::{
    Arn, ListAge, Refresh, RefreshPolicy, StackEvent, StackOperations, StackResource,
    StackResources,
};
use tokio::sync::Mutex;

/// What the Lambda knows about its stack.
#[derive(Debug)]
pub struct Stack {
    pub stack_id: String,
    pub parameters: BTreeMap<String, String>,
    /// Every resource, in `ListStackResources` order (the sweep needs logical ids).
    pub rows: Vec<StackResource>,
    /// The same resources indexed for classification.
    pub index: StackResources,
    /// When the read began: a change after this may concern a resource the list lacks.
    pub read_at: DateTime<Utc>,
}

/// The outcome of [`StackSource::reread_for`].
#[derive(Debug)]
pub enum Reread {
    /// A fresh list: classify the misses again; that answer is final.
    Fresh(Arc<Stack>),
    /// The cached list stands: "outside the stack" is final.
    Kept,
    /// Some misses may postdate the cached list, but the last read is younger than the floor:
    /// they must be redelivered, not decided.
    Deferred,
}

#[derive(Debug, Default)]
struct Cache {
    stack: Option<(Instant, Arc<Stack>)>,
    /// The last read, successful or not: the floor of [`RefreshPolicy`] counts from it.
    last_read: Option<Instant>,
}

/// Reads a stack and caches it for `ttl`; events the cached list calls outside the stack may
/// force a re-read, as [`RefreshPolicy`] bounds it, so a resource created by the latest deploy is
/// found without a read per event.
#[derive(Debug)]
pub struct StackSource {
    cfn: CloudFormation,
    stack_name: String,
    ttl: Duration,
    refresh: RefreshPolicy,
    cache: Mutex<Cache>,
}

impl StackSource {
    pub fn new(
        cfn: CloudFormation,
        stack_name: impl Into<String>,
        ttl: Duration,
        refresh: RefreshPolicy,
    ) -> StackSource {
        StackSource {
            cfn,
            stack_name: stack_name.into(),
            ttl,
            refresh,
            cache: Mutex::new(Cache::default()),
        }
    }

    pub fn stack_name(&self) -> &str {
        &self.stack_name
    }

    pub fn refresh_policy(&self) -> &RefreshPolicy {
        &self.refresh
    }

    /// The cached stack, or a fresh one when the cache is older than the TTL.
    pub async fn get(&self) -> anyhow::Result<Arc<Stack>> {
        let mut cache = self.cache.lock().await;
        if let Some((at, stack)) = cache.stack.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(stack.clone());
        }
        self.read(&mut cache).await
    }

    /// The stack's operations from `DescribeStackEvents`, read back to before `since` (newest
    /// first, so a few pages cover a day of deploys), for classifying CloudFormation's calls.
    pub async fn operations(
        &self,
        stack_id: &str,
        since: DateTime<Utc>,
    ) -> anyhow::Result<StackOperations> {
        /// A bound on pages (100 events each); an operation begun before is taken as begun
        /// before all events read.
        const MAX_PAGES: usize = 20;
        let horizon = since - StackOperations::SLACK;
        let mut events = Vec::new();
        let mut pages = self
            .cfn
            .describe_stack_events()
            .stack_name(stack_id)
            .into_paginator()
            .send();
        for _ in 0..MAX_PAGES {
            let Some(page) = pages.next().await else {
                break;
            };
            let page = page.with_context(|| format!("DescribeStackEvents {}", self.stack_name))?;
            events.extend(page.stack_events().iter().filter_map(|e| {
                Some(StackEvent {
                    timestamp: DateTime::from_timestamp(e.timestamp()?.secs(), 0)?,
                    physical_id: e.physical_resource_id()?.to_owned(),
                    resource_type: e.resource_type()?.to_owned(),
                    status: e.resource_status()?.as_str().to_owned(),
                })
            }));
            // Done once a stack-level row before the horizon says what state the stack was in.
            let known = events.iter().any(|e: &StackEvent| {
                e.timestamp < horizon
                    && e.resource_type == "AWS::CloudFormation::Stack"
                    && e.physical_id == stack_id
            });
            if known {
                break;
            }
        }
        Ok(StackOperations::from_events(stack_id, &events))
    }

    /// Decides under the cache's lock whether misses at these `eventTime`s justify a re-read, and
    /// does it if so.
    pub async fn reread_for(&self, misses: &[DateTime<Utc>]) -> anyhow::Result<Reread> {
        let mut cache = self.cache.lock().await;
        let decision = match (cache.stack.as_ref(), cache.last_read) {
            (Some((_, stack)), Some(last)) => self.refresh.decide(
                ListAge {
                    read_at: stack.read_at,
                    age: last.elapsed(),
                },
                misses.iter().copied(),
            ),
            _ => Refresh::Reread,
        };
        match decision {
            Refresh::Keep => Ok(Reread::Kept),
            Refresh::Defer => Ok(Reread::Deferred),
            Refresh::Reread => self.read(&mut cache).await.map(Reread::Fresh),
        }
    }

    /// Reads the stack into `cache`; a failed read still counts for the floor.
    async fn read(&self, cache: &mut Cache) -> anyhow::Result<Arc<Stack>> {
        let started = Instant::now();
        cache.last_read = Some(started);
        let read_at = Utc::now();
        let described = self
            .cfn
            .describe_stacks()
            .stack_name(&self.stack_name)
            .send()
            .await
            .with_context(|| format!("DescribeStacks {}", self.stack_name))?;
        let stack = described
            .stacks()
            .first()
            .with_context(|| format!("stack {} not found", self.stack_name))?;
        let stack_id = stack.stack_id().unwrap_or_default().to_owned();
        let parameters = stack
            .parameters()
            .iter()
            .filter_map(|p| {
                let value = p.resolved_value().or(p.parameter_value())?;
                Some((p.parameter_key()?.to_owned(), value.to_owned()))
            })
            .collect();
        let pages = self
            .cfn
            .list_stack_resources()
            .stack_name(&self.stack_name)
            .into_paginator()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .with_context(|| format!("ListStackResources {}", self.stack_name))?;
        let rows: Vec<StackResource> = pages
            .iter()
            .flat_map(|page| page.stack_resource_summaries())
            .filter_map(|s| {
                Some(StackResource {
                    logical_id: s.logical_resource_id()?.to_owned(),
                    physical_id: s.physical_resource_id()?.to_owned(),
                    resource_type: s.resource_type()?.to_owned(),
                })
            })
            .collect();
        let arn = Arn::parse(&stack_id).ok();
        let index = StackResources::new(
            arn.as_ref().map(|a| a.account.clone()),
            arn.as_ref().map(|a| a.region.clone()),
            rows.iter().cloned(),
        );
        tracing::info!(stack = %self.stack_name, resources = rows.len(), "loaded stack resources");
        let stack = Arc::new(Stack {
            stack_id,
            parameters,
            rows,
            index,
            read_at,
        });
        cache.stack = Some((started, stack.clone()));
        Ok(stack)
    }
}

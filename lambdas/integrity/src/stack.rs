//! The stack's resources from CloudFormation, cached per execution environment.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_cloudformation::Client as CloudFormation;
use ssm_core::integrity::{Arn, StackResource, StackResources};
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
}

/// Reads a stack and caches it for `ttl`; a miss may force a refresh once `min_age` has passed, so
/// a resource created by the latest deploy is found without a refresh per event.
#[derive(Debug)]
pub struct StackSource {
    cfn: CloudFormation,
    stack_name: String,
    ttl: Duration,
    min_age: Duration,
    cache: Mutex<Option<(Instant, Arc<Stack>)>>,
}

impl StackSource {
    pub fn new(
        cfn: CloudFormation,
        stack_name: impl Into<String>,
        ttl: Duration,
        min_age: Duration,
    ) -> StackSource {
        StackSource {
            cfn,
            stack_name: stack_name.into(),
            ttl,
            min_age,
            cache: Mutex::new(None),
        }
    }

    pub fn stack_name(&self) -> &str {
        &self.stack_name
    }

    /// The cached stack, or a fresh one when the cache is older than the TTL.
    pub async fn get(&self) -> anyhow::Result<Arc<Stack>> {
        let mut cache = self.cache.lock().await;
        if let Some((at, stack)) = cache.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(stack.clone());
        }
        let stack = Arc::new(self.load().await?);
        *cache = Some((Instant::now(), stack.clone()));
        Ok(stack)
    }

    /// A fresh stack if the cached one is older than `min_age`; `None` when it is too recent.
    pub async fn refresh_if_older(&self) -> anyhow::Result<Option<Arc<Stack>>> {
        let mut cache = self.cache.lock().await;
        if cache
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < self.min_age)
        {
            return Ok(None);
        }
        let stack = Arc::new(self.load().await?);
        *cache = Some((Instant::now(), stack.clone()));
        Ok(Some(stack))
    }

    async fn load(&self) -> anyhow::Result<Stack> {
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
        Ok(Stack {
            stack_id,
            parameters,
            rows,
            index,
        })
    }
}

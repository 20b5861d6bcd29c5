//! One stack's deployment: a change set (CREATE or UPDATE, `REVERT_DRIFT` when reconciling),
//! described and reported, then deleted (`plan`) or executed with its events streamed.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use aws_sdk_cloudformation::Client as Cfn;
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, ChangeSetType, DeploymentMode, Parameter, ResourceChange, Stack,
    Tag,
};
use serde_json::Value;
use ssm_core::deploy::assembly::{self, Placeholders, StackArtifact};
use ssm_core::deploy::keyrings;
use ssm_core::deploy::report::{Change, ChangeAction, DriftedProperty, Replacement, StackReport};
use ssm_core::deploy::stack::{self, Event, StackState};
use ssm_core::deploy::{ActionInputs, Mode};

use crate::clients::RoleClients;
use crate::runner;

/// Templates up to this size go inline; larger ones by their S3 asset URL (CloudFormation's limit
/// for `TemplateBody`).
const MAX_TEMPLATE_BODY: usize = 51_200;
/// No CloudFormation wait runs longer than this (the job's `timeout-minutes` is usually shorter).
const MAX_WAIT: Duration = Duration::from_secs(3 * 3600);

/// What a run needs to deploy any of its stacks.
#[derive(Debug)]
pub struct Context<'a> {
    pub inputs: &'a ActionInputs,
    pub assembly_dir: &'a Path,
    pub placeholders: &'a Placeholders,
    pub roles: &'a RoleClients,
    /// Unique to this run.
    pub change_set_name: String,
}

/// What happened to one stack.
#[derive(Debug, Clone, Default)]
pub struct StackOutcome {
    pub report: StackReport,
    pub stack_id: Option<String>,
    pub change_set_id: Option<String>,
    /// The execution failed (the report lists the failing resources).
    pub failed: bool,
}

/// The parsed template, read once per stack.
#[derive(Debug)]
pub struct Template {
    pub body: String,
    pub json: Value,
}

impl Template {
    pub fn load(assembly_dir: &Path, stack: &StackArtifact) -> anyhow::Result<Self> {
        let path = assembly_dir.join(&stack.template_file);
        let body = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the template {}", path.display()))?;
        let json = serde_json::from_str(&body)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        Ok(Template { body, json })
    }

    /// The template without insignificant whitespace.
    pub fn compact(&self) -> String {
        self.json.to_string()
    }
}

/// Looks a stack up; `None` when it does not exist.
pub async fn describe_stack(cfn: &Cfn, name: &str) -> anyhow::Result<Option<Stack>> {
    match cfn.describe_stacks().stack_name(name).send().await {
        Ok(out) => Ok(out.stacks.unwrap_or_default().into_iter().next()),
        Err(e) if e.message().is_some_and(|m| m.contains("does not exist")) => Ok(None),
        Err(e) => Err(anyhow::anyhow!(
            "DescribeStacks {name}: {}",
            crate::aws_error(&e)
        )),
    }
}

fn status_of(stack: &Stack) -> &str {
    stack
        .stack_status
        .as_ref()
        .map(|s| s.as_str())
        .unwrap_or("")
}

/// Waits while an operation runs on the stack; returns it afterwards (`None` once deleted).
async fn wait_settled(cfn: &Cfn, name: &str) -> anyhow::Result<Option<Stack>> {
    let started = Instant::now();
    let mut polls = 0;
    loop {
        let stack = describe_stack(cfn, name).await?;
        match stack
            .as_ref()
            .map(|s| StackState::from_status(status_of(s)))
        {
            Some(StackState::InProgress) if started.elapsed() < MAX_WAIT => {}
            Some(StackState::InProgress) => {
                bail!("stack {name} stayed in progress for {MAX_WAIT:?}")
            }
            Some(StackState::Absent) | None => return Ok(None),
            _ => return Ok(stack),
        }
        tokio::time::sleep(Duration::from_millis(stack::poll_interval_ms(polls))).await;
        polls += 1;
    }
}

/// Deploys (or plans, or reconciles) one stack.
#[tracing::instrument(skip_all, fields(stack = %artifact.stack_name, mode = %ctx.inputs.mode))]
pub async fn deploy_stack(
    ctx: &Context<'_>,
    artifact: &StackArtifact,
    template: &Template,
) -> anyhow::Result<StackOutcome> {
    let mode = ctx.inputs.mode;
    let name = artifact.stack_name.as_str();
    let role = artifact
        .assume_role_arn
        .as_deref()
        .map(|r| ctx.placeholders.fill(r));
    let cfn = ctx.roles.for_role(role.as_deref()).await.cloudformation;
    let mut outcome = StackOutcome {
        report: StackReport {
            stack_name: name.to_owned(),
            mode: mode.to_string(),
            ..StackReport::default()
        },
        ..StackOutcome::default()
    };
    let t0 = Instant::now();

    let mut existing = describe_stack(&cfn, name).await?;
    if existing
        .as_ref()
        .is_some_and(|s| StackState::from_status(status_of(s)) == StackState::InProgress)
    {
        tracing::info!("an operation is in progress on the stack; waiting for it to finish");
        existing = wait_settled(&cfn, name).await?;
    }
    let state = existing.as_ref().map_or(StackState::Absent, |s| {
        StackState::from_status(status_of(s))
    });
    let state = match state {
        StackState::RollbackComplete if ctx.inputs.allow_recreate && mode != Mode::Plan => {
            tracing::warn!(
                "stack is in ROLLBACK_COMPLETE (its creation failed); deleting it to create it again (allow-recreate)"
            );
            cfn.delete_stack()
                .stack_name(name)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("DeleteStack {name}: {}", crate::aws_error(&e)))?;
            if wait_settled(&cfn, name).await?.is_some() {
                bail!("stack {name} could not be deleted; see its events");
            }
            existing = None;
            StackState::Absent
        }
        // A plan never deletes anything, so it stops here too.
        StackState::RollbackComplete => bail!(
            "stack {name} is in ROLLBACK_COMPLETE: its first creation failed and it can only be deleted. \
             Set `allow-recreate: true` to let an apply delete and recreate it"
        ),
        StackState::Failed(status) => bail!(
            "stack {name} is in {status}; fix it (continue or cancel the rollback) before deploying"
        ),
        other => other,
    };
    let create = matches!(state, StackState::Absent | StackState::Review);
    let change_set_type = if create {
        ChangeSetType::Create
    } else {
        ChangeSetType::Update
    };
    outcome.report.change_set_type = change_set_type.as_str().to_owned();
    outcome.report.status = existing
        .as_ref()
        .map(|s| status_of(s).to_owned())
        .unwrap_or_else(|| "NEW".into());
    outcome.stack_id = existing.as_ref().and_then(|s| s.stack_id.clone());

    let created = {
        let _g = runner::Group::start(&format!(
            "{name}: change set ({})",
            change_set_type.as_str()
        ));
        create_change_set(
            ctx,
            &cfn,
            artifact,
            template,
            change_set_type.clone(),
            existing.as_ref(),
        )
        .await?
    };
    outcome
        .report
        .timings
        .push(("change set".into(), t0.elapsed().as_millis()));
    let Some(change_set) = created else {
        tracing::info!("no changes");
        if ctx.inputs.fail_on_empty_changeset {
            bail!(
                "stack {name}: the change set contains no changes and fail-on-empty-changeset is set"
            );
        }
        finish_stack(ctx, &cfn, artifact, &mut outcome, mode != Mode::Plan).await?;
        return Ok(outcome);
    };
    outcome.change_set_id = Some(change_set.id.clone());
    if outcome.stack_id.is_none() {
        outcome.stack_id = change_set.stack_id.clone();
    }
    outcome.report.changes = change_set.changes;
    outcome.report.drift = change_set.drift;
    for c in &outcome.report.changes {
        tracing::info!(action = ?c.action, logical_id = %c.logical_id, resource_type = %c.resource_type, replacement = ?c.replacement, "change");
    }

    // A keyring is never removed or replaced, whatever the mode (a plan shows it on the pull request).
    let refused = keyrings::refused_keyring_changes(&outcome.report.changes);
    if !refused.is_empty() {
        for r in &refused {
            let (title, message) = r.annotation(name);
            runner::error(&title, &message);
        }
        if let Err(e) = cfn
            .delete_change_set()
            .change_set_name(&change_set.id)
            .send()
            .await
        {
            tracing::warn!(error = %crate::aws_error(&e), "could not delete the refused change set");
        }
        bail!(keyrings::refusal(name, &refused));
    }

    if mode == Mode::Plan {
        cfn.delete_change_set()
            .change_set_name(&change_set.id)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("DeleteChangeSet: {}", crate::aws_error(&e)))?;
        if matches!(state, StackState::Absent) {
            // The CREATE change set made an empty REVIEW_IN_PROGRESS stack; leave nothing behind.
            let _ = cfn.delete_stack().stack_name(name).send().await;
        }
        return Ok(outcome);
    }

    let t1 = Instant::now();
    let (status, events) = {
        let _g = runner::Group::start(&format!("{name}: executing {}", change_set.id));
        execute_and_stream(&cfn, name, &change_set.id).await?
    };
    outcome
        .report
        .timings
        .push(("execute".into(), t1.elapsed().as_millis()));
    outcome.report.status = status.clone();
    if stack::execution_outcome(&status) != Some(true) {
        outcome.failed = true;
        outcome.report.failures = stack::failures(&events, name);
        for (id, ty, why) in &outcome.report.failures {
            runner::error(&format!("{name}/{id} ({ty})"), why);
        }
        if outcome.report.failures.is_empty() {
            runner::error(name, &format!("the stack ended in {status}"));
        }
        return Ok(outcome);
    }
    finish_stack(ctx, &cfn, artifact, &mut outcome, true).await?;
    Ok(outcome)
}

/// Termination protection and outputs, once the stack is where it should be.
async fn finish_stack(
    ctx: &Context<'_>,
    cfn: &Cfn,
    artifact: &StackArtifact,
    outcome: &mut StackOutcome,
    may_write: bool,
) -> anyhow::Result<()> {
    let Some(stack) = describe_stack(cfn, &artifact.stack_name).await? else {
        return Ok(());
    };
    outcome.stack_id = stack.stack_id.clone().or(outcome.stack_id.take());
    outcome.report.status = status_of(&stack).to_owned();
    let want = ctx
        .inputs
        .termination_protection
        .or(artifact.termination_protection);
    if let Some(want) = want
        && may_write
        && stack.enable_termination_protection.unwrap_or(false) != want
    {
        cfn.update_termination_protection()
            .stack_name(&artifact.stack_name)
            .enable_termination_protection(want)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("UpdateTerminationProtection: {}", crate::aws_error(&e))
            })?;
        tracing::info!(enabled = want, "termination protection set");
    }
    outcome.report.outputs = stack
        .outputs()
        .iter()
        .filter_map(|o| {
            Some((
                o.output_key()?.to_owned(),
                o.output_value().unwrap_or_default().to_owned(),
            ))
        })
        .collect();
    Ok(())
}

/// A change set that was created and has changes.
#[derive(Debug)]
struct CreatedChangeSet {
    id: String,
    stack_id: Option<String>,
    changes: Vec<Change>,
    drift: Vec<DriftedProperty>,
}

async fn create_change_set(
    ctx: &Context<'_>,
    cfn: &Cfn,
    artifact: &StackArtifact,
    template: &Template,
    change_set_type: ChangeSetType,
    existing: Option<&Stack>,
) -> anyhow::Result<Option<CreatedChangeSet>> {
    let name = artifact.stack_name.as_str();
    let mut req = cfn
        .create_change_set()
        .stack_name(name)
        .change_set_name(&ctx.change_set_name)
        .change_set_type(change_set_type.clone())
        .description(format!("ssm-action {}", ctx.inputs.mode));
    if template.body.len() <= MAX_TEMPLATE_BODY {
        req = req.template_body(&template.body);
    } else if ctx.inputs.mode == Mode::Plan {
        // A plan publishes nothing, so the template has no S3 URL to go by: whitespace is all
        // that can be dropped from CDK's pretty-printed JSON.
        let compact = template.compact();
        if compact.len() > MAX_TEMPLATE_BODY {
            bail!(
                "the template of {name} is {} bytes even without whitespace, over CloudFormation's {MAX_TEMPLATE_BODY}-byte \
                 limit for an inline template, and a plan publishes nothing to the assets bucket; split the stack or plan it with `mode: apply` in a job that may publish",
                compact.len()
            );
        }
        req = req.template_body(compact);
    } else {
        let url = artifact
            .template_object_url
            .as_deref()
            .and_then(|u| ctx.placeholders.template_url(u))
            .with_context(|| format!("the template of {name} is over {MAX_TEMPLATE_BODY} bytes and the assembly gives no S3 URL for it"))?;
        req = req.template_url(url);
    }
    // Parameters: the assembly's, overridden by the inputs; only those the template declares.
    let declared = template.json.get("Parameters").and_then(Value::as_object);
    let mut params: Vec<(String, String)> = artifact.parameters.clone().into_iter().collect();
    for (k, v) in &ctx.inputs.parameter_overrides {
        params.retain(|(pk, _)| pk != k);
        params.push((k.clone(), v.clone()));
    }
    for (k, v) in params {
        if declared.is_some_and(|d| d.contains_key(&k)) {
            req = req.parameters(
                Parameter::builder()
                    .parameter_key(k)
                    .parameter_value(v)
                    .build(),
            );
        } else {
            tracing::warn!(parameter = %k, "the template declares no such parameter; not passed");
        }
    }
    for c in &ctx.inputs.capabilities {
        req = req.capabilities(Capability::from(c.as_str()));
    }
    let mut tags: Vec<(String, String)> = artifact.tags.clone().into_iter().collect();
    for (k, v) in &ctx.inputs.tags {
        tags.retain(|(tk, _)| tk != k);
        tags.push((k.clone(), v.clone()));
    }
    for (k, v) in tags {
        req = req.tags(Tag::builder().key(k).value(v).build());
    }
    if let Some(role) = &artifact.execution_role_arn {
        req = req.role_arn(ctx.placeholders.fill(role));
    }
    if ctx.inputs.mode == Mode::Reconcile && change_set_type == ChangeSetType::Update {
        req = req.deployment_mode(DeploymentMode::RevertDrift);
    }
    let created = match req.send().await {
        Ok(out) => out,
        Err(e) if e.message().is_some_and(stack::means_no_changes) => return Ok(None),
        Err(e) => {
            let msg = e.message().unwrap_or_default().to_owned();
            if let Some(param) = assembly::bootstrap_parameter(&template.json)
                && (msg.contains(param) || msg.contains("BootstrapVersion"))
            {
                let found = bootstrap_version(cfn).await;
                let required = artifact.requires_bootstrap_version.unwrap_or(6);
                if let Err(help) =
                    assembly::check_bootstrap_version(required, found, &ctx.placeholders.region)
                {
                    bail!("{help} (CloudFormation said: {msg})");
                }
            }
            bail!("CreateChangeSet for {name}: {}", crate::aws_error(&e));
        }
    };
    let id = created.id.context("CreateChangeSet returned no id")?;
    let stack_id = created
        .stack_id
        .or_else(|| existing.and_then(|s| s.stack_id.clone()));

    // Wait for the change set to be computed.
    let started = Instant::now();
    let mut polls = 0;
    loop {
        let out = cfn
            .describe_change_set()
            .change_set_name(&id)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("DescribeChangeSet: {}", crate::aws_error(&e)))?;
        match out.status {
            Some(ChangeSetStatus::CreateComplete) => break,
            Some(ChangeSetStatus::Failed) => {
                let reason = out.status_reason.unwrap_or_default();
                // Failed change sets stay listed on the stack; remove ours either way.
                let _ = cfn.delete_change_set().change_set_name(&id).send().await;
                if stack::means_no_changes(&reason) {
                    return Ok(None);
                }
                bail!("the change set for {name} failed: {reason}");
            }
            _ if started.elapsed() > MAX_WAIT => {
                bail!("the change set for {name} was not ready after {MAX_WAIT:?}")
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(stack::poll_interval_ms(polls))).await;
        polls += 1;
    }

    let (changes, drift) = describe_changes(cfn, &id).await?;
    Ok(Some(CreatedChangeSet {
        id,
        stack_id,
        changes,
        drift,
    }))
}

/// Every change of a change set (all pages), with property values.
pub async fn describe_changes(
    cfn: &Cfn,
    change_set_id: &str,
) -> anyhow::Result<(Vec<Change>, Vec<DriftedProperty>)> {
    let mut changes = Vec::new();
    let mut drift = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = cfn
            .describe_change_set()
            .change_set_name(change_set_id)
            .include_property_values(true)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("DescribeChangeSet: {}", crate::aws_error(&e)))?;
        for rc in out.changes().iter().filter_map(|c| c.resource_change()) {
            let (change, drifted) = convert_change(rc);
            changes.push(change);
            drift.extend(drifted);
        }
        match out.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    Ok((changes, drift))
}

/// The SDK's resource change, as our report's types.
pub fn convert_change(rc: &ResourceChange) -> (Change, Vec<DriftedProperty>) {
    let logical_id = rc.logical_resource_id().unwrap_or_default().to_owned();
    let resource_type = rc.resource_type().unwrap_or_default().to_owned();
    let mut properties: Vec<String> = Vec::new();
    let mut drift = Vec::new();
    for d in rc.details() {
        let Some(t) = d.target() else { continue };
        let prop = t
            .path()
            .or(t.name())
            .unwrap_or_default()
            .trim_start_matches("/Properties/")
            .to_owned();
        if !prop.is_empty() && !properties.contains(&prop) {
            properties.push(prop.clone());
        }
        if let Some(live) = t.drift() {
            drift.push(DriftedProperty {
                logical_id: logical_id.clone(),
                resource_type: resource_type.clone(),
                property: prop,
                expected: t
                    .after_value()
                    .or(live.previous_value())
                    .unwrap_or_default()
                    .to_owned(),
                actual: live
                    .actual_value()
                    .or(t.before_value())
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
    }
    if drift.is_empty()
        && let Some(status) = rc.resource_drift_status()
        && matches!(status.as_str(), "MODIFIED" | "DELETED")
    {
        drift.push(DriftedProperty {
            logical_id: logical_id.clone(),
            resource_type: resource_type.clone(),
            property: "(resource)".into(),
            expected: "as in the template".into(),
            actual: status.as_str().to_owned(),
        });
    }
    let change = Change {
        action: ChangeAction::parse(rc.action().map(|a| a.as_str()).unwrap_or_default()),
        logical_id,
        resource_type,
        replacement: Replacement::parse(rc.replacement().map(|r| r.as_str())),
        properties,
    };
    (change, drift)
}

/// The `BootstrapVersion` output of the CDKToolkit stack, if there is one.
async fn bootstrap_version(cfn: &Cfn) -> Option<u32> {
    let stack = describe_stack(cfn, "CDKToolkit").await.ok()??;
    stack
        .outputs()
        .iter()
        .find(|o| o.output_key() == Some("BootstrapVersion"))
        .and_then(|o| o.output_value()?.parse().ok())
}

fn to_event(e: &aws_sdk_cloudformation::types::StackEvent) -> Event {
    Event {
        id: e.event_id().unwrap_or_default().to_owned(),
        logical_id: e.logical_resource_id().unwrap_or_default().to_owned(),
        resource_type: e.resource_type().unwrap_or_default().to_owned(),
        status: e
            .resource_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        reason: e.resource_status_reason().map(str::to_owned),
    }
}

/// New events, oldest first: the first pages of DescribeStackEvents (newest first) down to the
/// first event already seen.
async fn new_events(
    cfn: &Cfn,
    name: &str,
    seen: &mut HashSet<String>,
) -> anyhow::Result<Vec<Event>> {
    let mut fresh = Vec::new();
    let mut token = None;
    for _ in 0..5 {
        let out = cfn
            .describe_stack_events()
            .stack_name(name)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("DescribeStackEvents: {}", crate::aws_error(&e)))?;
        let mut reached_seen = false;
        for e in out.stack_events() {
            let ev = to_event(e);
            if seen.contains(&ev.id) {
                reached_seen = true;
                break;
            }
            fresh.push(ev);
        }
        token = out.next_token;
        if reached_seen || token.is_none() {
            break;
        }
    }
    for e in &fresh {
        seen.insert(e.id.clone());
    }
    fresh.reverse();
    Ok(fresh)
}

/// Executes the change set and streams events until the stack settles. Returns the final status
/// and every event of the execution, oldest first.
async fn execute_and_stream(
    cfn: &Cfn,
    name: &str,
    change_set_id: &str,
) -> anyhow::Result<(String, Vec<Event>)> {
    let mut seen = HashSet::new();
    // Whatever happened before this execution is not ours to report.
    let _ = new_events(cfn, name, &mut seen).await;
    cfn.execute_change_set()
        .change_set_name(change_set_id)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("ExecuteChangeSet: {}", crate::aws_error(&e)))?;
    let started = Instant::now();
    let mut all = Vec::new();
    let mut polls = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(stack::poll_interval_ms(polls))).await;
        polls += 1;
        for e in new_events(cfn, name, &mut seen).await? {
            tracing::info!(logical_id = %e.logical_id, resource_type = %e.resource_type, status = %e.status, reason = e.reason.as_deref().unwrap_or(""), "event");
            all.push(e);
        }
        let status = describe_stack(cfn, name)
            .await?
            .map(|s| status_of(&s).to_owned())
            .unwrap_or_else(|| "DELETE_COMPLETE".into());
        if stack::execution_outcome(&status).is_some() {
            // Events written just before the status flipped.
            all.extend(new_events(cfn, name, &mut seen).await.unwrap_or_default());
            return Ok((status, all));
        }
        if started.elapsed() > MAX_WAIT {
            bail!("stack {name} still {status} after {MAX_WAIT:?}");
        }
    }
}

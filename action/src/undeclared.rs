//! After a reconcile's `REVERT_DRIFT`: the additions CloudFormation cannot see (see
//! [`ssm_core::deploy::undeclared`]). A secret's resource policy is put back as declared, or
//! deleted when none is; undeclared Lambda permission statements and Function URLs are named as
//! unrevertable drift.

use std::collections::BTreeMap;

use aws_sdk_lambda::error::ProvideErrorMetadata as _;
use serde_json::Value;
use ssm_core::deploy::Placeholders;
use ssm_core::deploy::report::{DriftedProperty, cell};
use ssm_core::deploy::undeclared::{
    self, DeclaredPolicy, PolicyAction, Resolver, UnrevertableDrift,
};

/// What the check found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Reverted here (secret policies).
    pub reverted: Vec<DriftedProperty>,
    /// Left in place and named.
    pub unrevertable: Vec<UnrevertableDrift>,
}

/// The clients the check uses: CloudFormation through the stack's deploy role, Secrets Manager
/// and Lambda with the run's own credentials.
#[derive(Debug)]
pub struct CheckClients<'a> {
    pub cloudformation: &'a aws_sdk_cloudformation::Client,
    pub secretsmanager: &'a aws_sdk_secretsmanager::Client,
    pub lambda: &'a aws_sdk_lambda::Client,
}

/// Logical id → (type, physical id) of the stack's resources.
async fn stack_resources(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> anyhow::Result<BTreeMap<String, (String, String)>> {
    let out = cfn
        .describe_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("DescribeStackResources {stack}: {}", crate::aws_error(&e)))?;
    Ok(out
        .stack_resources()
        .iter()
        .filter_map(|r| {
            Some((
                r.logical_resource_id()?.to_owned(),
                (
                    r.resource_type()?.to_owned(),
                    r.physical_resource_id()?.to_owned(),
                ),
            ))
        })
        .collect())
}

/// Checks the stack for undeclared additions; reverts secret policies.
pub async fn check(
    stack: &str,
    template: &Value,
    placeholders: &Placeholders,
    clients: &CheckClients<'_>,
) -> anyhow::Result<Findings> {
    let resolver = Resolver {
        account: placeholders.account.clone(),
        region: placeholders.region.clone(),
        partition: placeholders.partition.clone(),
        stack_name: stack.to_owned(),
        resources: stack_resources(clients.cloudformation, stack).await?,
    };
    let mut findings = Findings::default();
    for (logical_id, declared) in undeclared::declared_secret_policies(template, &resolver) {
        let Some((_, arn)) = resolver.resources.get(&logical_id) else {
            continue;
        };
        secret_policy(
            stack,
            &logical_id,
            arn,
            &declared,
            clients.secretsmanager,
            &mut findings,
        )
        .await?;
    }
    let permissions = undeclared::declared_permissions(template, &resolver);
    let with_urls = undeclared::functions_with_declared_urls(template);
    for logical_id in undeclared::logical_ids_of(template, "AWS::Lambda::Function") {
        let Some((_, function)) = resolver.resources.get(&logical_id) else {
            continue;
        };
        let unrevertable = |kind: &str, detail: String| UnrevertableDrift {
            stack: stack.to_owned(),
            logical_id: logical_id.clone(),
            resource_type: "AWS::Lambda::Function".into(),
            kind: kind.into(),
            detail,
        };
        match clients
            .lambda
            .get_policy()
            .function_name(function)
            .send()
            .await
        {
            Ok(out) => {
                let policy = out.policy().unwrap_or("{}");
                for (sid, principal, action) in
                    undeclared::undeclared_statements(policy, &logical_id, &permissions)
                {
                    findings.unrevertable.push(unrevertable(
                        "Lambda permission",
                        format!("statement `{sid}` lets `{principal}` call `{action}`"),
                    ));
                }
            }
            Err(e) if e.code() == Some("ResourceNotFoundException") => {}
            Err(e) => anyhow::bail!("GetPolicy {function}: {}", crate::aws_error(&e)),
        }
        match clients
            .lambda
            .get_function_url_config()
            .function_name(function)
            .send()
            .await
        {
            Ok(url) if !with_urls.contains(&logical_id) => {
                findings.unrevertable.push(unrevertable(
                    "Function URL",
                    format!("{} (auth {})", url.function_url(), url.auth_type().as_str()),
                ));
            }
            Ok(_) => {}
            Err(e) if e.code() == Some("ResourceNotFoundException") => {}
            Err(e) => anyhow::bail!("GetFunctionUrlConfig {function}: {}", crate::aws_error(&e)),
        }
    }
    for d in &findings.unrevertable {
        let (title, message) = d.annotation();
        crate::runner::error(&title, &message);
    }
    Ok(findings)
}

/// Puts a secret's resource policy back as the template declares it (or deletes it).
async fn secret_policy(
    stack: &str,
    logical_id: &str,
    arn: &str,
    declared: &DeclaredPolicy,
    sm: &aws_sdk_secretsmanager::Client,
    findings: &mut Findings,
) -> anyhow::Result<()> {
    let live = sm
        .get_resource_policy()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("GetResourcePolicy {logical_id}: {}", crate::aws_error(&e)))?
        .resource_policy;
    let action = undeclared::secret_policy_action(declared, live.as_deref());
    let (expected, result) = match &action {
        PolicyAction::Keep => return Ok(()),
        PolicyAction::Delete => (
            "none (the template declares no resource policy)".to_owned(),
            sm.delete_resource_policy()
                .secret_id(arn)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| crate::aws_error(&e)),
        ),
        PolicyAction::Put(doc) => (
            doc.to_string(),
            sm.put_resource_policy()
                .secret_id(arn)
                .resource_policy(doc.to_string())
                .block_public_policy(true)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| crate::aws_error(&e)),
        ),
    };
    let actual = live.unwrap_or_else(|| "none".into());
    match result {
        Ok(()) => {
            tracing::warn!(secret = %logical_id, "secret resource policy reverted to the template's");
            crate::runner::warning(
                &format!("secret policy reverted: {stack}/{logical_id}"),
                &format!(
                    "{stack}/{logical_id} had a resource policy the template does not declare; it was reverted. Was: {}",
                    cell(&actual)
                ),
            );
            findings.reverted.push(DriftedProperty {
                logical_id: logical_id.to_owned(),
                resource_type: "AWS::SecretsManager::Secret".into(),
                property: "ResourcePolicy".into(),
                expected,
                actual,
            });
        }
        Err(why) => findings.unrevertable.push(UnrevertableDrift {
            stack: stack.to_owned(),
            logical_id: logical_id.to_owned(),
            resource_type: "AWS::SecretsManager::Secret".into(),
            kind: "secret resource policy".into(),
            detail: format!("{} (reverting it failed: {why})", cell(&actual)),
        }),
    }
    Ok(())
}

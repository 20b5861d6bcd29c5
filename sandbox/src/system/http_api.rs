//! How the deployed HTTP API is served: its routes and their functions read from the deployed
//! template, the operator caller issued through moto's IAM, and the gateway started.

use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use serde_json::Value;

use super::stack::refs;
use super::{ACCOUNT, Sandbox, aws_error};
use crate::callers::{self, IamCallers};
use crate::gateway::{self, GatewayConfig, Route};

impl Sandbox {
    pub(super) async fn start_gateway(
        &mut self,
        template: &Value,
        port: u16,
    ) -> anyhow::Result<()> {
        let resources = template
            .get("Resources")
            .and_then(Value::as_object)
            .context("deployed template has no Resources")?;
        let mut routes = Vec::new();
        let mut api_id = String::from("sandbox");
        for (id, r) in resources {
            if r.get("Type").and_then(Value::as_str) == Some("AWS::ApiGatewayV2::Api") {
                api_id = id.clone();
            }
            if r.get("Type").and_then(Value::as_str) != Some("AWS::ApiGatewayV2::Route") {
                continue;
            }
            let p = &r["Properties"];
            let route_key = p["RouteKey"].as_str().unwrap_or_default().to_owned();
            let iam = p["AuthorizationType"].as_str() == Some("AWS_IAM");
            let integration = refs(&p["Target"])
                .into_iter()
                .find(|r| resources.contains_key(r))
                .with_context(|| format!("route {route_key} has no integration"))?;
            let function = refs(&resources[&integration]["Properties"])
                .into_iter()
                .find_map(|r| self.functions.get(&r).cloned())
                .with_context(|| format!("route {route_key}: integration {integration} targets no function of the stack"))?;
            routes.push(Route {
                route_key,
                target: function,
                iam,
            });
        }
        if routes.is_empty() {
            bail!("the deployed template has no HTTP API routes");
        }
        let sts = aws_sdk_sts::Client::new(&self.aws);
        let me = sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| anyhow!("GetCallerIdentity: {}", aws_error(&e)))?;
        let api_id: String = api_id.to_lowercase().chars().take(10).collect();
        let callers = Arc::new(IamCallers::open(
            &self.aws,
            self.opts.work.join("callers.json"),
        )?);
        let operator = callers
            .create("ssm-sandbox-operator", &callers::api_policy(&api_id))
            .await?;
        let n = routes.len();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| {
                format!("port {port} on 127.0.0.1 (for the HTTP API) is not available")
            })?;
        let handle = gateway::serve(
            listener,
            GatewayConfig {
                api_id: api_id.clone(),
                stage: "$default".into(),
                routes,
                account_id: me.account().unwrap_or(ACCOUNT).to_owned(),
                region: self.opts.region.clone(),
                principals: callers.clone(),
                max_body: 10 * 1024 * 1024,
            },
        )
        .await;
        self.gateway_url = format!("http://{}", handle.local_addr());
        self.api_id = api_id;
        self.callers = Some(callers);
        self.operator = Some(operator.credentials);
        self.gateway = Some(handle);
        self.journal.mark(format!(
            "HTTP API ({n} routes) served as API Gateway would at {}",
            self.gateway_url
        ));
        Ok(())
    }
}

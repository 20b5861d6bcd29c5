//! The AWS clients a deployment uses, and the manifest's roles (`cdk deploy`'s deploy and
//! file-publishing roles) assumed on demand and cached per role.

use std::collections::HashMap;
use std::sync::Arc;

use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use tokio::sync::Mutex;

/// The clients of a run, sharing one set of credentials.
#[derive(Debug, Clone)]
pub struct Clients {
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub s3: aws_sdk_s3::Client,
    pub lambda: aws_sdk_lambda::Client,
    /// Alarm metrics (tampering, unrevertable drift).
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// Resource policies of the stack's secrets.
    pub secretsmanager: aws_sdk_secretsmanager::Client,
}

impl Clients {
    /// The one factory for these clients. Path-style S3 addressing when an endpoint is
    /// configured (`AWS_ENDPOINT_URL`: emulators, S3-compatible gateways).
    pub fn new(config: &SdkConfig) -> Self {
        let s3_conf = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(config.endpoint_url().is_some())
            .build();
        Clients {
            cloudformation: aws_sdk_cloudformation::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            lambda: aws_sdk_lambda::Client::new(config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(config),
            secretsmanager: aws_sdk_secretsmanager::Client::new(config),
        }
    }
}

/// Hands out clients for a role ARN from the cloud assembly: assumes it with `sts:AssumeRole`
/// (once per role per run); falls back to the base credentials, as `cdk deploy` does, when the
/// role cannot be assumed (e.g. the workflow's role has the permissions itself).
#[derive(Debug, Clone)]
pub struct RoleClients {
    base: Clients,
    assume: Option<Assumer>,
    cache: Arc<Mutex<HashMap<String, Clients>>>,
}

#[derive(Debug, Clone)]
struct Assumer {
    config: SdkConfig,
    sts: aws_sdk_sts::Client,
    session_name: String,
}

impl RoleClients {
    /// Assumes manifest roles using `config`'s credentials.
    pub fn assuming(config: &SdkConfig, session_name: &str) -> Self {
        RoleClients {
            base: Clients::new(config),
            assume: Some(Assumer {
                config: config.clone(),
                sts: aws_sdk_sts::Client::new(config),
                session_name: session_name.to_owned(),
            }),
            cache: Arc::default(),
        }
    }

    /// Always the given clients (tests with mocked clients, or `--no-manifest-roles`).
    pub fn fixed(clients: Clients) -> Self {
        RoleClients {
            base: clients,
            assume: None,
            cache: Arc::default(),
        }
    }

    /// Clients acting as `role` (already placeholder-filled), or the base clients.
    pub async fn for_role(&self, role: Option<&str>) -> Clients {
        let (Some(role), Some(assumer)) = (role, &self.assume) else {
            return self.base.clone();
        };
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.get(role) {
            return c.clone();
        }
        let clients = match assumer
            .sts
            .assume_role()
            .role_arn(role)
            .role_session_name(&assumer.session_name)
            .send()
            .await
        {
            Ok(out) => match out.credentials {
                Some(c) => {
                    crate::runner::mask(&c.secret_access_key);
                    crate::runner::mask(&c.session_token);
                    let creds = aws_credential_types::Credentials::new(
                        c.access_key_id,
                        c.secret_access_key,
                        Some(c.session_token),
                        std::time::SystemTime::try_from(c.expiration).ok(),
                        "cdk-manifest-role",
                    );
                    let config = assumer
                        .config
                        .to_builder()
                        .credentials_provider(SharedCredentialsProvider::new(creds))
                        .build();
                    tracing::info!(%role, "assumed the assembly's role");
                    Clients::new(&config)
                }
                None => self.base.clone(),
            },
            Err(e) => {
                tracing::warn!(%role, error = %crate::aws_error(&e), "could not assume the assembly's role; proceeding with the current credentials");
                self.base.clone()
            }
        };
        cache.insert(role.to_owned(), clients.clone());
        clients
    }
}

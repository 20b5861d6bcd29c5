//! The App's private key and webhook secrets from AWS Secrets Manager, read once at startup
//! (`GITHUB_APP_PRIVATE_KEY_SECRET_ID`, `GITHUB_WEBHOOK_SECRET_ID`), so no template or
//! environment ever holds them. Errors name the secret id, never its value.
//!
//! Shapes (what `ssm-app setup` writes; hand-made secrets may use the short forms):
//! - private key: JSON `{"app_id": "123", "pem": "-----BEGIN RSA PRIVATE KEY-----..."}`, or the
//!   PEM text alone (then the App id comes from `GITHUB_APP_ID`);
//! - webhook secret: the secret string, or a JSON list of strings, all accepted (rotation:
//!   `["new", "old"]`). A plain string with a comma is refused at startup: it is what an
//!   `old,new` rotation attempt looks like, and taken as one secret it would fail every webhook.

use anyhow::{Context, bail};
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use serde::Deserialize;

use crate::config::{Opts, Redacted, Settings};

/// Resolves the Secrets Manager options (if any) into `opts`, then loads [`Settings`].
pub async fn load_settings(opts: Opts) -> anyhow::Result<Settings> {
    let opts = if opts.private_key_secret_id.is_some() || opts.webhook_secret_id.is_some() {
        let aws = ssm_sdk_http::sdk_config_loader().load().await;
        resolve(opts, &aws_sdk_secretsmanager::Client::new(&aws)).await?
    } else {
        opts
    };
    Settings::load(opts)
}

/// Reads the configured secrets and fills `opts` with them (key PEM, App id, webhook secrets).
pub async fn resolve(
    mut opts: Opts,
    client: &aws_sdk_secretsmanager::Client,
) -> anyhow::Result<Opts> {
    if let Some(id) = opts.private_key_secret_id.clone() {
        let key =
            parse_private_key(&read(client, &id).await?).with_context(|| format!("secret {id}"))?;
        if let Some(app_id) = key.app_id {
            if !opts.app_id.is_empty() && opts.app_id != app_id {
                bail!(
                    "GITHUB_APP_ID ({}) differs from app_id in secret {id}",
                    opts.app_id
                );
            }
            opts.app_id = app_id;
        }
        opts.private_key = Some(Redacted::from(key.pem));
    }
    if let Some(id) = opts.webhook_secret_id.clone() {
        opts.webhook_secrets = parse_webhook_secrets(&read(client, &id).await?)
            .with_context(|| format!("secret {id}"))?;
    }
    Ok(opts)
}

async fn read(client: &aws_sdk_secretsmanager::Client, id: &str) -> anyhow::Result<String> {
    let out = client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("reading secret {id}: {}", DisplayErrorContext(&e)))?;
    match out.secret_string {
        Some(text) => Ok(text),
        None => bail!("secret {id} has no string value"),
    }
}

/// The private key secret, parsed.
#[derive(Debug)]
pub struct KeySecret {
    pub app_id: Option<String>,
    pub pem: String,
}

#[derive(Deserialize)]
struct KeyJson {
    app_id: Option<serde_json::Value>,
    pem: String,
}

/// PEM text, or JSON `{"app_id", "pem"}`. Parse errors never quote the secret.
pub fn parse_private_key(text: &str) -> anyhow::Result<KeySecret> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return Ok(KeySecret {
            app_id: None,
            pem: text.to_owned(),
        });
    }
    let json: KeyJson = serde_json::from_str(text)
        .map_err(|_| anyhow::anyhow!("is neither PEM text nor JSON {{\"app_id\", \"pem\"}}"))?;
    let app_id = match json.app_id {
        None => None,
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
        Some(_) => bail!("app_id must be a number or a non-empty string"),
    };
    Ok(KeySecret {
        app_id,
        pem: json.pem,
    })
}

/// A string without a comma, or a JSON list of strings. Parse errors never quote the secret.
pub fn parse_webhook_secrets(text: &str) -> anyhow::Result<Vec<Redacted>> {
    let secrets: Vec<String> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text)
            .map_err(|_| anyhow::anyhow!("starts with '[' but is not a JSON list of strings"))?
    } else if text.contains(',') {
        bail!(
            "holds a comma: several webhook secrets (a rotation) are stored as a JSON list, \
             [\"new\", \"old\"], not comma-separated; a single secret with a comma is stored as \
             [\"the secret\"]"
        );
    } else {
        vec![text.to_owned()]
    };
    if secrets.iter().all(String::is_empty) {
        bail!("holds no webhook secret");
    }
    Ok(secrets.into_iter().map(Redacted::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_key_shapes() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n";
        let bare = parse_private_key(pem).expect("pem");
        assert_eq!(bare.app_id, None);
        assert!(bare.pem.starts_with("-----BEGIN"));
        let json = serde_json::json!({"app_id": 42, "pem": pem}).to_string();
        assert_eq!(
            parse_private_key(&json).expect("json").app_id.as_deref(),
            Some("42")
        );
        let json = serde_json::json!({"app_id": "Iv1.abc", "pem": pem}).to_string();
        assert_eq!(
            parse_private_key(&json).expect("json").app_id.as_deref(),
            Some("Iv1.abc")
        );
        for bad in [
            "hunter2-not-a-key",
            r#"{"pem": 5}"#,
            r#"{"app_id": [], "pem": "x"}"#,
        ] {
            let err = format!("{:#}", parse_private_key(bad).expect_err(bad));
            assert!(!err.contains("hunter2") && !err.contains('5'), "{err}");
        }
    }

    #[test]
    fn webhook_secret_shapes() {
        assert_eq!(parse_webhook_secrets("s3cret").expect("plain").len(), 1);
        assert_eq!(
            parse_webhook_secrets(r#"["new", "old"]"#)
                .expect("list")
                .len(),
            2
        );
        let err = format!(
            "{:#}",
            parse_webhook_secrets(r#"["hunter2", 1]"#).expect_err("bad")
        );
        assert!(!err.contains("hunter2"), "{err}");
        assert!(parse_webhook_secrets("").is_err());
        // The format the stack once documented: refused with the one to use, never taken as one
        // secret that fails every webhook.
        let err = format!(
            "{:#}",
            parse_webhook_secrets("hunter2,hunter3").expect_err("comma-separated")
        );
        assert!(
            err.contains("JSON list") && !err.contains("hunter"),
            "{err}"
        );
        assert_eq!(
            parse_webhook_secrets(r#"["a,b"]"#)
                .expect("a comma inside a list")
                .len(),
            1
        );
        assert!(parse_webhook_secrets("[]").is_err());
    }
}

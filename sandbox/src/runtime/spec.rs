//! What Lambda knows about a function when it creates an execution environment: its spec, and
//! the ARN the function sees itself invoked as.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The account in the ARN a function sees as `Lambda-Runtime-Invoked-Function-Arn` (moto's default).
const ACCOUNT_ID: &str = "123456789012";

/// What Lambda knows about a function when it creates an execution environment for it.
#[derive(Clone)]
pub struct FunctionSpec {
    pub name: String,
    /// The executable to run; its directory is `LAMBDA_TASK_ROOT` and the working directory.
    pub bootstrap: PathBuf,
    /// The function's configured environment (and, here, the AWS credentials and region Lambda
    /// would give it). Lambda's reserved variables override keys of the same name.
    pub env: BTreeMap<String, String>,
    pub timeout: Duration,
    pub memory_mb: u32,
    /// The configured handler, which a custom runtime reads from `_HANDLER`.
    pub handler: String,
    /// Where the process's stdout and stderr are appended; discarded when `None`.
    pub log_file: Option<PathBuf>,
}

impl fmt::Debug for FunctionSpec {
    // The environment holds credentials: show its keys only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionSpec")
            .field("name", &self.name)
            .field("bootstrap", &self.bootstrap)
            .field("env_keys", &self.env.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("memory_mb", &self.memory_mb)
            .field("handler", &self.handler)
            .field("log_file", &self.log_file)
            .finish()
    }
}

pub(super) fn function_arn(spec: &FunctionSpec) -> String {
    let region = spec
        .env
        .get("AWS_REGION")
        .or_else(|| spec.env.get("AWS_DEFAULT_REGION"))
        .map_or("us-east-1", String::as_str);
    format!(
        "arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{}",
        spec.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_uses_the_functions_region() {
        let mut spec = FunctionSpec {
            name: "f".to_owned(),
            bootstrap: PathBuf::from("/b"),
            env: BTreeMap::new(),
            timeout: Duration::from_secs(1),
            memory_mb: 128,
            handler: "bootstrap".to_owned(),
            log_file: None,
        };
        assert_eq!(
            function_arn(&spec),
            "arn:aws:lambda:us-east-1:123456789012:function:f"
        );
        spec.env
            .insert("AWS_REGION".to_owned(), "eu-west-3".to_owned());
        assert_eq!(
            function_arn(&spec),
            "arn:aws:lambda:eu-west-3:123456789012:function:f"
        );
    }
}

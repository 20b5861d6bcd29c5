//! How a function's process is started and retired: the environment variables Lambda gives the
//! bootstrap, its logs, and a fresh Runtime API epoch for each process.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::Ordering;

use tokio::process::{Child, Command};

use super::function::Inner;
use super::spec::FunctionSpec;
use crate::InvokeError;

/// One bootstrap process.
pub(super) struct Environment {
    pub(super) child: Child,
    code_version: u64,
}

impl Environment {
    /// Whether the process can take an invocation: still running, and running the current code.
    pub(super) fn can_serve(&mut self, code_version: u64) -> bool {
        self.code_version == code_version && matches!(self.child.try_wait(), Ok(None))
    }
}

/// The environment the bootstrap runs with: nothing inherited; Lambda's defaults, then the
/// function's variables, then the variables Lambda reserves.
fn process_env(
    spec: &FunctionSpec,
    bootstrap: &Path,
    port: u16,
    log_stream: &str,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([
        (
            "PATH".to_owned(),
            "/usr/local/bin:/usr/bin/:/bin:/opt/bin".to_owned(),
        ),
        ("LANG".to_owned(), "en_US.UTF-8".to_owned()),
    ]);
    env.extend(spec.env.clone());
    let task_root = bootstrap.parent().unwrap_or(Path::new("/"));
    env.extend([
        (
            "AWS_LAMBDA_RUNTIME_API".to_owned(),
            format!("127.0.0.1:{port}"),
        ),
        ("AWS_LAMBDA_FUNCTION_NAME".to_owned(), spec.name.clone()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".to_owned(),
            spec.memory_mb.to_string(),
        ),
        (
            "AWS_LAMBDA_FUNCTION_VERSION".to_owned(),
            "$LATEST".to_owned(),
        ),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME".to_owned(),
            format!("/aws/lambda/{}", spec.name),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME".to_owned(),
            log_stream.to_owned(),
        ),
        (
            "AWS_LAMBDA_INITIALIZATION_TYPE".to_owned(),
            "on-demand".to_owned(),
        ),
        ("_HANDLER".to_owned(), spec.handler.clone()),
        (
            "LAMBDA_TASK_ROOT".to_owned(),
            task_root.display().to_string(),
        ),
        (
            "AWS_EXECUTION_ENV".to_owned(),
            "AWS_Lambda_provided.al2023".to_owned(),
        ),
        ("TZ".to_owned(), ":UTC".to_owned()),
    ]);
    env
}

impl Inner {
    /// Starts a process running `bootstrap`; its Runtime API connections belong to a new epoch.
    pub(super) fn spawn(
        &self,
        bootstrap: &Path,
        code_version: u64,
    ) -> Result<Environment, InvokeError> {
        let unavailable =
            |what: &str, e: std::io::Error| InvokeError::Unavailable(format!("{what}: {e}"));
        let (stdout, stderr) = match &self.spec.log_file {
            Some(path) => {
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| unavailable(&format!("opening {}", path.display()), e))?;
                let copy = log
                    .try_clone()
                    .map_err(|e| unavailable("duplicating the log file", e))?;
                (Stdio::from(log), Stdio::from(copy))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let log_stream = format!(
            "{}/[$LATEST]{}",
            chrono::Utc::now().format("%Y/%m/%d"),
            uuid::Uuid::new_v4().simple()
        );
        let env = process_env(&self.spec, bootstrap, self.port, &log_stream);
        self.api.begin_epoch();
        let child = Command::new(bootstrap)
            .env_clear()
            .envs(env)
            .current_dir(bootstrap.parent().unwrap_or(Path::new("/")))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| unavailable(&format!("starting {}", bootstrap.display()), e))?;
        self.cold_starts.fetch_add(1, Ordering::Relaxed);
        tracing::info!(function = %self.spec.name, pid = child.id(), %log_stream, "cold start");
        Ok(Environment {
            child,
            code_version,
        })
    }

    /// Kills the process (if still running) and turns away whatever it still asks of the API.
    pub(super) async fn retire(&self, mut old: Environment) {
        if let Err(e) = old.child.kill().await {
            tracing::warn!(function = %self.spec.name, error = %e, "killing the function's process");
        }
        self.api.begin_epoch();
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;

    #[test]
    fn reserved_variables_win_over_the_functions_own() {
        let spec = FunctionSpec {
            name: "crypto".to_owned(),
            bootstrap: PathBuf::from("/var/task/bootstrap"),
            env: BTreeMap::from([
                ("AWS_LAMBDA_FUNCTION_NAME".to_owned(), "spoofed".to_owned()),
                ("TZ".to_owned(), "Europe/Paris".to_owned()),
                ("LANG".to_owned(), "C.UTF-8".to_owned()),
                ("KEY_ID".to_owned(), "k1".to_owned()),
            ]),
            timeout: Duration::from_secs(3),
            memory_mb: 256,
            handler: "main.handler".to_owned(),
            log_file: None,
        };
        let env = process_env(&spec, &spec.bootstrap, 4321, "stream");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "crypto");
        assert_eq!(env["TZ"], ":UTC");
        assert_eq!(env["LANG"], "C.UTF-8");
        assert_eq!(env["KEY_ID"], "k1");
        assert_eq!(env["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:4321");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
        assert_eq!(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/crypto");
        assert_eq!(env["LAMBDA_TASK_ROOT"], "/var/task");
        assert_eq!(env["_HANDLER"], "main.handler");
    }
}

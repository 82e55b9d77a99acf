//! Running the functions: `cargo lambda watch` serves the Lambda runtime API for every binary of
//! the workspace, and [`Invoker`] calls a function through its Invoke API, as Lambda's own event
//! sources and API Gateway do.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("cannot reach the function runtime: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("the function failed: {0}")]
    Function(String),
}

/// Invokes functions by binary name.
#[derive(Clone)]
pub struct Invoker {
    http: reqwest::Client,
    base: String,
}

impl Invoker {
    pub fn new(base: String) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .expect("a plain HTTP client builds");
        Invoker { http, base }
    }

    /// Invokes `binary` with `event` and returns its response payload.
    pub async fn invoke(&self, binary: &str, event: &Value) -> Result<Value, InvokeError> {
        let url = format!("{}/2015-03-31/functions/{binary}/invocations", self.base);
        let response = self.http.post(url).json(event).send().await?;
        let function_error = response.headers().contains_key("x-amz-function-error");
        let status = response.status();
        let body = response.bytes().await?;
        let payload: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        if function_error || !status.is_success() {
            return Err(InvokeError::Function(format!("{status}: {payload}")));
        }
        Ok(payload)
    }
}

/// Starts `cargo lambda watch` on `address:port` with every function's environment (written to
/// `env_file`: `--env-var` would split values at commas), running up to `concurrency` instances
/// of each function at once, as Lambda scales out.
pub fn start_watch(
    cargo_lambda: &str,
    workspace: &std::path::Path,
    address: &str,
    port: u16,
    concurrency: usize,
    environment: &[(String, String)],
    env_file: &std::path::Path,
) -> std::io::Result<Child> {
    let lines: String = environment
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    std::fs::write(env_file, lines)?;
    let mut command = Command::new(cargo_lambda);
    command
        .arg("lambda")
        .arg("watch")
        .arg("-A")
        .arg(address)
        .arg("-P")
        .arg(port.to_string())
        .arg("--ignore-changes")
        .arg("--concurrency")
        .arg(concurrency.to_string())
        .arg("--env-file")
        .arg(env_file);
    command
        .current_dir(workspace)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command.spawn()
}

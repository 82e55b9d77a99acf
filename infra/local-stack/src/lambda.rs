//! Running the functions: `cargo lambda watch` serves the Lambda runtime API for every binary of
//! the workspace, and [`Invoker`] calls a function through its Invoke API, as Lambda's own event
//! sources and API Gateway do.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("cannot reach the function runtime: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("the function failed: {0}")]
    Function(String),
}

/// Invokes functions by binary name, at most `concurrency` at a time per function.
///
/// The limit is Lambda's own (a function's concurrency), and it also keeps `cargo lambda watch`
/// from queueing invocations itself: with more invocations waiting than instances running, it
/// stops answering altogether (seen with cargo-lambda 1.9.2), so requests wait here instead.
#[derive(Clone)]
pub struct Invoker {
    http: reqwest::Client,
    base: String,
    concurrency: usize,
    limits: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
    counts: Arc<Mutex<HashMap<String, u64>>>,
}

impl Invoker {
    pub fn new(base: String, concurrency: usize) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .expect("a plain HTTP client builds");
        Invoker {
            http,
            base,
            concurrency: concurrency.max(1),
            limits: Default::default(),
            counts: Default::default(),
        }
    }

    fn limit(&self, binary: &str) -> Arc<Semaphore> {
        let mut limits = self
            .limits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let concurrency = self.concurrency;
        limits
            .entry(binary.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(concurrency)))
            .clone()
    }

    /// How many times each function was invoked since the stack started.
    pub fn counts(&self) -> HashMap<String, u64> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Invokes `binary` with `event` and returns its response payload.
    pub async fn invoke(&self, binary: &str, event: &Value) -> Result<Value, InvokeError> {
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(binary.to_owned())
            .or_default() += 1;
        let _slot = self
            .limit(binary)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
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

/// How to run `cargo lambda watch`.
pub struct Watch<'a> {
    pub cargo_lambda: &'a str,
    pub workspace: &'a std::path::Path,
    pub address: &'a str,
    pub port: u16,
    /// Instances of each function at once, as Lambda scales out.
    pub concurrency: usize,
    /// The Cargo profile the functions are built with.
    pub profile: &'a str,
    /// Written to a file: `--env-var` would split values at commas.
    pub env_file: &'a std::path::Path,
}

/// Starts `cargo lambda watch` with every function's environment.
pub fn start_watch(watch: &Watch<'_>, environment: &[(String, String)]) -> std::io::Result<Child> {
    let lines: String = environment
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    std::fs::write(watch.env_file, lines)?;
    let mut command = Command::new(watch.cargo_lambda);
    command
        .arg("lambda")
        .arg("watch")
        .arg("-A")
        .arg(watch.address)
        .arg("-P")
        .arg(watch.port.to_string())
        .arg("--ignore-changes")
        .arg("--concurrency")
        .arg(watch.concurrency.to_string())
        .arg("--env-file")
        .arg(watch.env_file)
        .arg("--profile")
        .arg(watch.profile);
    command
        .current_dir(watch.workspace)
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    command.spawn()
}

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
    crashes: Arc<Crashes>,
}

/// The crash switch (`OMS_LOCAL_FAULT_CRASH`, a share from 0 to 1, off by default): a share of
/// the invocations queues and streams make crash, as a process killed in the middle of a batch
/// would. Half crash before the function runs (nothing done), half after it ran (its work done,
/// its answer lost), so the whole batch comes again: what idempotent consumers must survive.
/// Drawn from `OMS_LOCAL_FAULT_SEED`; `GET /_local/faults` counts them.
#[derive(Default)]
pub struct Crashes {
    share: f64,
    state: std::sync::atomic::AtomicU64,
    before: std::sync::atomic::AtomicU64,
    after: std::sync::atomic::AtomicU64,
}

/// Where an injected crash falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    BeforeTheWork,
    AfterTheWork,
}

impl Crashes {
    /// The switch as the environment sets it.
    pub fn from_env() -> Result<Self, String> {
        let share = match std::env::var("OMS_LOCAL_FAULT_CRASH") {
            Ok(v) if !v.is_empty() => v
                .parse::<f64>()
                .ok()
                .filter(|s| (0.0..=1.0).contains(s))
                .ok_or_else(|| {
                    format!("OMS_LOCAL_FAULT_CRASH must be a share from 0 to 1, not {v}")
                })?,
            _ => 0.0,
        };
        let seed = std::env::var("OMS_LOCAL_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Ok(Crashes {
            share,
            state: std::sync::atomic::AtomicU64::new(seed | 1),
            ..Default::default()
        })
    }

    /// A draw from 0 to 1 (xorshift: a test switch needs no better randomness).
    fn draw(&self) -> f64 {
        use std::sync::atomic::Ordering;
        let mut next = 0;
        let _ = self
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |mut x| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                next = x;
                Some(x)
            });
        (next >> 11) as f64 / (1u64 << 53) as f64
    }

    fn strike(&self) -> Option<Crash> {
        use std::sync::atomic::Ordering;
        if self.share <= 0.0 || self.draw() >= self.share {
            return None;
        }
        Some(if self.draw() < 0.5 {
            self.before.fetch_add(1, Ordering::Relaxed);
            Crash::BeforeTheWork
        } else {
            self.after.fetch_add(1, Ordering::Relaxed);
            Crash::AfterTheWork
        })
    }

    /// What was injected so far.
    pub fn report(&self) -> Value {
        use std::sync::atomic::Ordering;
        serde_json::json!({
            "crashShare": self.share,
            "crashedBeforeTheWork": self.before.load(Ordering::Relaxed),
            "crashedAfterTheWork": self.after.load(Ordering::Relaxed),
        })
    }
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
            crashes: Default::default(),
        }
    }

    /// The invoker with the crash switch `crashes` on the invocations of event sources.
    pub fn with_crashes(mut self, crashes: Crashes) -> Self {
        self.crashes = Arc::new(crashes);
        self
    }

    /// The crash switch's figures.
    pub fn faults(&self) -> Value {
        self.crashes.report()
    }

    /// Invokes `binary` with a batch from a queue or a stream, as [`Self::invoke`], but subject to
    /// the crash switch: a crashed invocation fails as a whole.
    pub async fn invoke_batch(&self, binary: &str, event: &Value) -> Result<Value, InvokeError> {
        match self.crashes.strike() {
            None => self.invoke(binary, event).await,
            Some(Crash::BeforeTheWork) => Err(InvokeError::Function(
                "injected crash before the function ran (OMS_LOCAL_FAULT_CRASH)".into(),
            )),
            Some(Crash::AfterTheWork) => {
                let answer = self.invoke(binary, event).await;
                tracing::debug!(
                    function = binary,
                    ran = answer.is_ok(),
                    "injected crash after the work"
                );
                Err(InvokeError::Function(
                    "injected crash after the function ran (OMS_LOCAL_FAULT_CRASH)".into(),
                ))
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crash_switch_strikes_about_its_share_half_before_half_after() {
        let crashes = Crashes {
            share: 0.2,
            state: std::sync::atomic::AtomicU64::new(12345),
            ..Default::default()
        };
        let struck: Vec<_> = (0..10_000).filter_map(|_| crashes.strike()).collect();
        assert!((1_700..2_300).contains(&struck.len()), "{}", struck.len());
        let before = struck
            .iter()
            .filter(|c| **c == Crash::BeforeTheWork)
            .count();
        assert!((struck.len() * 2 / 5..struck.len() * 3 / 5).contains(&before));
        assert_eq!(Crashes::default().strike(), None, "off by default");
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

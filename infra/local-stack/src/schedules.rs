//! Scheduled functions: the template's `Schedule` (EventBridge rule) and `ScheduleV2`
//! (EventBridge Scheduler) events, which have no local runner of their own.
//!
//! Each enabled schedule invokes its function every `OMS_LOCAL_SCHEDULE_SECONDS` — locally much
//! shorter than the template's `rate(...)`, so that what time alone decides (an unpaid order's
//! expiry) happens within a test's patience — with the event Lambda receives from a scheduled
//! rule ([`scheduled_event`]). `POST /_local/schedules/{FunctionLogicalId}` runs one now and
//! answers with the function's result. Runs of the same function never overlap, whichever
//! started them: the sweep a test asks for does not race the one the clock started. A failed
//! run is not retried (EventBridge's asynchronous invocation would retry twice); the next tick
//! runs the function again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::lambda::{InvokeError, Invoker};
use crate::template::{EventSource, Function};

/// One schedule event of one function.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The function's logical id in the template (`OrderSweeperFunction`).
    pub function: String,
    pub binary: String,
    /// The event's name in the template (`Sweep`).
    pub event: String,
    /// The template's expression (`rate(1 minute)`), shown, not followed.
    pub expression: String,
    pub enabled: bool,
    /// The rule the event names as its resource: `<stack>-<LogicalId>-<EventName>`.
    pub rule_arn: String,
    /// The event's `Input`, sent instead of the scheduled event.
    pub input: Option<Value>,
}

impl Schedule {
    /// What the function is invoked with at `now`.
    pub fn payload(&self, region: &str, account: &str, now: DateTime<Utc>) -> Value {
        match &self.input {
            Some(input) => input.clone(),
            None => scheduled_event(&self.rule_arn, region, account, now, &event_id()),
        }
    }
}

/// The event Lambda receives from a scheduled EventBridge rule (an
/// `aws_lambda_events::event::cloudwatch_events::CloudWatchEvent`).
pub fn scheduled_event(
    rule_arn: &str,
    region: &str,
    account: &str,
    now: DateTime<Utc>,
    id: &str,
) -> Value {
    json!({
        "version": "0",
        "id": id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": now.to_rfc3339_opts(SecondsFormat::Secs, true),
        "region": region,
        "resources": [rule_arn],
        "detail": {}
    })
}

/// A fresh id in EventBridge's form (a version-4 UUID), from a ULID's 128 bits.
fn event_id() -> String {
    let mut bytes = ulid::Ulid::new().0.to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// What started a run, for the log.
#[derive(Debug, Clone, Copy)]
pub enum Trigger {
    Clock,
    OnDemand,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Clock => "schedule",
            Trigger::OnDemand => "on demand",
        }
    }
}

/// Every schedule of the template, and the locks that keep a function's runs apart.
pub struct Scheduler {
    schedules: Vec<Schedule>,
    /// One per function (not per event): two schedules of one function do not overlap either.
    locks: HashMap<String, Arc<Mutex<()>>>,
    invoker: Invoker,
    region: String,
    account: String,
}

impl Scheduler {
    /// The schedules of `functions`; rules are named after `stack`.
    pub fn new(
        functions: &[Function],
        stack: &str,
        region: &str,
        account: &str,
        invoker: Invoker,
    ) -> Self {
        let schedules = schedules_of(functions, stack, region, account);
        let locks = schedules
            .iter()
            .map(|s| (s.function.clone(), Arc::new(Mutex::new(()))))
            .collect();
        Scheduler {
            schedules,
            locks,
            invoker,
            region: region.to_owned(),
            account: account.to_owned(),
        }
    }

    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }

    /// The schedule `event` of `function`, or its first if no event is named. A disabled one is
    /// found too: it can still be run on demand.
    pub fn find(&self, function: &str, event: Option<&str>) -> Option<&Schedule> {
        self.schedules
            .iter()
            .find(|s| s.function == function && event.is_none_or(|e| s.event == e))
    }

    /// Runs `schedule` once, after any run of the same function still under way, and logs the
    /// outcome.
    pub async fn run(&self, schedule: &Schedule, trigger: Trigger) -> Result<Value, InvokeError> {
        let lock = self
            .locks
            .get(&schedule.function)
            .cloned()
            .unwrap_or_default();
        let _running = lock.lock().await;
        let started = Instant::now();
        let payload = schedule.payload(&self.region, &self.account, Utc::now());
        let result = self.invoker.invoke(&schedule.binary, &payload).await;
        let ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(answer) => tracing::info!(
                function = %schedule.function,
                event = %schedule.event,
                trigger = trigger.as_str(),
                ms,
                answer = %brief(answer),
                "scheduled run"
            ),
            Err(error) => tracing::warn!(
                function = %schedule.function,
                event = %schedule.event,
                trigger = trigger.as_str(),
                ms,
                %error,
                "scheduled run failed"
            ),
        }
        result
    }

    /// Runs every enabled schedule every `period`, the first one `period` from now. A run that
    /// takes longer than the period delays the next rather than piling up behind it.
    pub fn start(self: &Arc<Self>, period: Duration) {
        for (index, schedule) in self.schedules.iter().enumerate() {
            if !schedule.enabled {
                tracing::info!(function = %schedule.function, event = %schedule.event, "schedule disabled in the template; runs on demand only");
                continue;
            }
            tracing::info!(
                function = %schedule.function,
                event = %schedule.event,
                template = %schedule.expression,
                every_seconds = period.as_secs_f64(),
                "schedule"
            );
            let scheduler = self.clone();
            tokio::spawn(async move {
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    let schedule = &scheduler.schedules[index];
                    if let Err(error) = scheduler.run(schedule, Trigger::Clock).await {
                        // Logged by `run`; the next tick tries again.
                        tracing::debug!(%error, "scheduled run to be repeated at the next tick");
                    }
                }
            });
        }
    }
}

/// The schedule events of `functions`.
fn schedules_of(functions: &[Function], stack: &str, region: &str, account: &str) -> Vec<Schedule> {
    let mut schedules = Vec::new();
    for function in functions {
        for source in &function.events {
            if let EventSource::Schedule {
                event,
                expression,
                enabled,
                input,
            } = source
            {
                schedules.push(Schedule {
                    function: function.logical_id.clone(),
                    binary: function.binary.clone(),
                    event: event.clone(),
                    expression: expression.clone(),
                    enabled: *enabled,
                    rule_arn: format!(
                        "arn:aws:events:{region}:{account}:rule/{stack}-{}-{event}",
                        function.logical_id
                    ),
                    input: input.clone(),
                });
            }
        }
    }
    schedules
}

/// A function's answer in a log line: its first 200 characters.
fn brief(answer: &Value) -> String {
    let text = answer.to_string();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
    use std::collections::BTreeMap;

    fn function(events: Vec<EventSource>) -> Function {
        Function {
            logical_id: "OrderSweeperFunction".into(),
            binary: "order-sweeper".into(),
            environment: BTreeMap::new(),
            events,
        }
    }

    fn sweep(enabled: bool, input: Option<Value>) -> EventSource {
        EventSource::Schedule {
            event: "Sweep".into(),
            expression: "rate(1 minute)".into(),
            enabled,
            input,
        }
    }

    #[test]
    fn the_scheduled_event_is_what_lambda_receives_from_a_rule() {
        let now: DateTime<Utc> = "2026-12-01T12:00:00.123Z".parse().unwrap();
        let schedules = schedules_of(
            &[function(vec![sweep(true, None)])],
            "oms-local",
            "us-east-1",
            "123456789012",
        );
        let event = schedules[0].payload("us-east-1", "123456789012", now);
        assert_eq!(event["time"], "2026-12-01T12:00:00Z");
        let parsed: CloudWatchEvent = serde_json::from_value(event.clone()).unwrap();
        assert_eq!(parsed.detail_type.as_deref(), Some("Scheduled Event"));
        assert_eq!(parsed.source.as_deref(), Some("aws.events"));
        assert_eq!(parsed.account_id.as_deref(), Some("123456789012"));
        assert_eq!(parsed.region.as_deref(), Some("us-east-1"));
        assert_eq!(
            parsed.time,
            "2026-12-01T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            parsed.resources,
            ["arn:aws:events:us-east-1:123456789012:rule/oms-local-OrderSweeperFunction-Sweep"]
        );
        assert_eq!(parsed.detail, Some(json!({})));
        let id = parsed.id.unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4', "a version-4 UUID: {id}");
        let again = schedules[0].payload("us-east-1", "123456789012", now);
        assert_ne!(again["id"], event["id"], "every run has its own id");
    }

    #[test]
    fn an_input_replaces_the_event_and_functions_without_schedules_have_none() {
        let functions = [
            function(vec![sweep(false, Some(json!({"dryRun": true})))]),
            Function {
                logical_id: "OrderApiFunction".into(),
                binary: "order-api".into(),
                environment: BTreeMap::new(),
                events: vec![EventSource::Http {
                    method: "GET".into(),
                    path: "/orders".into(),
                    authorize: true,
                }],
            },
        ];
        let schedules = schedules_of(&functions, "s", "us-east-1", "1");
        assert_eq!(schedules.len(), 1);
        assert!(!schedules[0].enabled);
        assert_eq!(
            schedules[0].payload("us-east-1", "1", Utc::now()),
            json!({"dryRun": true})
        );
    }

    #[tokio::test]
    async fn find_takes_the_named_event_or_the_first() {
        let scheduler = Scheduler::new(
            &[function(vec![
                sweep(true, None),
                EventSource::Schedule {
                    event: "Nightly".into(),
                    expression: "cron(0 3 * * ? *)".into(),
                    enabled: true,
                    input: None,
                },
            ])],
            "s",
            "us-east-1",
            "1",
            Invoker::new("http://127.0.0.1:9".into(), 1),
        );
        assert_eq!(
            scheduler.find("OrderSweeperFunction", None).unwrap().event,
            "Sweep"
        );
        assert_eq!(
            scheduler
                .find("OrderSweeperFunction", Some("Nightly"))
                .unwrap()
                .event,
            "Nightly"
        );
        assert!(scheduler
            .find("OrderSweeperFunction", Some("Hourly"))
            .is_none());
        assert!(scheduler.find("OrderApiFunction", None).is_none());
    }

    /// A stand-in for the Lambda runtime API that notes how many invocations run at once; a
    /// function named `failing` fails.
    async fn fake_runtime() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/2015-03-31/functions/{binary}/invocations",
            axum::routing::post({
                let most = most.clone();
                move |axum::extract::Path(binary): axum::extract::Path<String>,
                      axum::Json(event): axum::Json<Value>| async move {
                    let now = running.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(now, SeqCst);
                    tokio::time::sleep(Duration::from_millis(40)).await;
                    running.fetch_sub(1, SeqCst);
                    let mut response = axum::response::IntoResponse::into_response(axum::Json(
                        json!({"source": event["source"]}),
                    ));
                    if binary == "failing" {
                        response.headers_mut().insert(
                            "x-amz-function-error",
                            axum::http::HeaderValue::from_static("Unhandled"),
                        );
                    }
                    response
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, most)
    }

    #[tokio::test]
    async fn runs_of_one_function_never_overlap_and_are_counted() {
        let (base, most) = fake_runtime().await;
        let scheduler = Scheduler::new(
            &[function(vec![sweep(true, None)])],
            "s",
            "us-east-1",
            "1",
            Invoker::new(base, 4),
        );
        let schedule = scheduler.find("OrderSweeperFunction", None).unwrap();
        let runs =
            futures::future::join_all((0..4).map(|_| scheduler.run(schedule, Trigger::OnDemand)))
                .await;
        for run in runs {
            assert_eq!(run.unwrap()["source"], "aws.events");
        }
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(scheduler.invoker.counts()["order-sweeper"], 4);
    }

    #[tokio::test]
    async fn the_clock_runs_enabled_schedules_only_and_a_failure_is_an_error() {
        let (base, _) = fake_runtime().await;
        let mut failing = function(vec![sweep(true, None)]);
        failing.logical_id = "FailingFunction".into();
        failing.binary = "failing".into();
        let mut disabled = function(vec![sweep(false, None)]);
        disabled.logical_id = "DisabledFunction".into();
        disabled.binary = "disabled".into();
        let scheduler = Arc::new(Scheduler::new(
            &[function(vec![sweep(true, None)]), failing, disabled],
            "s",
            "us-east-1",
            "1",
            Invoker::new(base, 4),
        ));
        scheduler.start(Duration::from_millis(50));
        tokio::time::sleep(Duration::from_millis(400)).await;
        let counts = scheduler.invoker.counts();
        assert!(counts["order-sweeper"] >= 2, "{counts:?}");
        assert!(
            counts["failing"] >= 2,
            "a failure does not stop the clock: {counts:?}"
        );
        assert!(!counts.contains_key("disabled"), "{counts:?}");
        let failing = scheduler.find("FailingFunction", None).unwrap();
        assert!(scheduler.run(failing, Trigger::OnDemand).await.is_err());
        let disabled = scheduler.find("DisabledFunction", None).unwrap();
        assert!(
            scheduler.run(disabled, Trigger::OnDemand).await.is_ok(),
            "a disabled schedule still runs on demand"
        );
    }

    #[test]
    fn a_long_answer_is_cut_in_the_log() {
        assert_eq!(brief(&json!({"more": false})), r#"{"more":false}"#);
        let long = brief(&json!({"expired": vec!["01KAZ3Q6W8T2Y7X9V5N4M3K2J1"; 50]}));
        assert_eq!(long.chars().count(), 201);
    }
}

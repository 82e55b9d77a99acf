//! A minimal Lambda Runtime API on loopback — the protocol Lambda itself speaks to a function's
//! `bootstrap` — so a function's cold start and warm invocations can be timed from the outside,
//! with nothing between the clock and the process but a loopback socket.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tokio::sync::{oneshot, Notify};

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<(String, Value)>>,
    arrived: Notify,
    /// When the current process first asked for work.
    first_next: Mutex<Option<Instant>>,
    /// When each invocation was handed to the function.
    handed: Mutex<HashMap<String, Instant>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<(Value, Instant)>>>,
}

/// The runtime API server and the clock around it.
#[derive(Clone)]
pub struct RuntimeApi {
    shared: Arc<Shared>,
    pub address: SocketAddr,
}

type Lock<'a, T> = std::sync::MutexGuard<'a, T>;

fn lock<T>(mutex: &Mutex<T>) -> Lock<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    lock(&shared.first_next).get_or_insert_with(Instant::now);
    loop {
        let notified = shared.arrived.notified();
        if let Some((id, payload)) = lock(&shared.queue).pop_front() {
            lock(&shared.handed).insert(id.clone(), Instant::now());
            let mut headers = HeaderMap::new();
            let deadline = (chrono::Utc::now().timestamp_millis() + 30_000).to_string();
            headers.insert(
                "lambda-runtime-aws-request-id",
                HeaderValue::from_str(&id).expect("a ulid"),
            );
            headers.insert(
                "lambda-runtime-deadline-ms",
                HeaderValue::from_str(&deadline).expect("digits"),
            );
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:bench"),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                HeaderValue::from_static("Root=1-00000000-000000000000000000000000"),
            );
            return (StatusCode::OK, headers, payload.to_string()).into_response();
        }
        notified.await;
    }
}

async fn respond(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    let at = Instant::now();
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    if let Some(waiter) = lock(&shared.waiting).remove(&id) {
        // The waiter gave up only if the benchmark itself is stopping.
        waiter.send((value, at)).ok();
    }
    StatusCode::ACCEPTED
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    respond(
        State(shared),
        Path(id),
        format!("{{\"functionError\": {body}}}"),
    )
    .await
}

impl RuntimeApi {
    pub async fn start() -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route(
                "/2018-06-01/runtime/init/error",
                post(|| async { StatusCode::ACCEPTED }),
            )
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(RuntimeApi { shared, address })
    }

    /// Forgets the previous process: the next `next` call is a new process's first.
    pub fn reset(&self) {
        *lock(&self.shared.first_next) = None;
        lock(&self.shared.queue).clear();
    }

    /// When the current process first asked for work.
    pub fn first_next(&self) -> Option<Instant> {
        *lock(&self.shared.first_next)
    }

    /// Queues an event and waits for its response: returns the payload and how long the function
    /// took from receiving the event to answering it.
    pub async fn invoke(&self, payload: Value) -> Result<(Value, Duration, Instant), String> {
        let id = ulid::Ulid::new().to_string();
        let (sender, receiver) = oneshot::channel();
        lock(&self.shared.waiting).insert(id.clone(), sender);
        lock(&self.shared.queue).push_back((id.clone(), payload));
        self.shared.arrived.notify_waiters();
        self.shared.arrived.notify_one();
        let (value, answered) = tokio::time::timeout(Duration::from_secs(60), receiver)
            .await
            .map_err(|_| "the function did not answer within 60 s".to_owned())?
            .map_err(|_| "the runtime API stopped".to_owned())?;
        let handed = lock(&self.shared.handed)
            .remove(&id)
            .ok_or("the event was never handed out")?;
        Ok((value, answered.duration_since(handed), answered))
    }
}

//! The handler: the queue's requests, each on its own with failures reported per message, and
//! the schedule's reconciliation runs.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{Duration, Utc};
use lambda_runtime::{Error, LambdaEvent};
use oms_adapters::config;
use oms_adapters::dynamo::DynamoStore;
use oms_adapters::secrets::SecretCache;
use oms_adapters::sns::event_json_from_sqs_body;
use oms_adapters::sqs::for_each_message;
use oms_adapters::stripe::StripeClient;
use oms_domain::app::payments::{ask_provider, reconcile, Asked, PaymentAppError, PspAsk};
use oms_domain::events::{CloudEvent, PspRequestEventData, RefundEventData};
use oms_domain::order::payments::{PaymentPolicy, PspRequestKind};
use oms_domain::ports::{OrderStore, PaymentProvider, ProviderError};
use serde::Serialize;
use serde_json::Value;

/// What the function needs, built once per cold start: the store, the payment rules the ledger
/// records under, Stripe, and the reconciliation's window.
pub struct App<S, P> {
    pub store: S,
    pub policy: PaymentPolicy,
    pub stripe: P,
    /// The reconciliation's window, or why its configuration is refused: a bad one fails the
    /// scheduled runs (and their alarm), never the captures, voids and refunds of the queue.
    pub window: Result<ReconcileWindow, config::ConfigError>,
}

/// Which of Stripe's events a reconciliation run reads: those created from `lookback` ago until
/// `settle` ago — old enough that their webhook had its chance (Stripe delivers in seconds), and
/// recent enough to be worth a read. Runs overlap, so a run that failed or came late loses
/// nothing: an event is looked at by each run whose window holds it, recorded by the first.
#[derive(Debug, Clone, Copy)]
pub struct ReconcileWindow {
    pub settle: Duration,
    pub lookback: Duration,
}

impl ReconcileWindow {
    /// `RECONCILE_SETTLE_SECONDS` (300) and `RECONCILE_LOOKBACK_SECONDS` (3600).
    pub fn from_env() -> Result<Self, config::ConfigError> {
        let seconds = |name: &'static str, default: i64| match std::env::var(name) {
            Ok(v) if !v.is_empty() => v
                .parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .map(Duration::seconds)
                .ok_or(config::ConfigError::Invalid(name, "a whole number above 0")),
            _ => Ok(Duration::seconds(default)),
        };
        let window = ReconcileWindow {
            settle: seconds("RECONCILE_SETTLE_SECONDS", 300)?,
            lookback: seconds("RECONCILE_LOOKBACK_SECONDS", 3600)?,
        };
        if window.lookback <= window.settle {
            return Err(config::ConfigError::Invalid(
                "RECONCILE_LOOKBACK_SECONDS",
                "more than RECONCILE_SETTLE_SECONDS",
            ));
        }
        Ok(window)
    }
}

impl App<DynamoStore, StripeClient<SecretCache>> {
    pub fn from_env() -> Result<Self, Error> {
        Ok(App {
            store: DynamoStore::from_env()?,
            policy: config::payment_policy_from_env()?,
            stripe: StripeClient::from_env()?,
            window: ReconcileWindow::from_env(),
        })
    }
}

/// The function's two sources: its queue (a batch of requests, answered with the ones that
/// failed) and its schedule (a reconciliation run, answered with what it found).
pub async fn handle<S: OrderStore, P: PaymentProvider>(
    app: &App<S, P>,
    event: LambdaEvent<Value>,
) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    if payload.get("Records").is_some() {
        let batch: SqsEvent = serde_json::from_value(payload)?;
        // Boxed, as each source below: the store's and Stripe's futures nest deeper than the
        // compiler lays out in one piece (a query-depth overflow in `main`).
        let answer = Box::pin(requests(app, LambdaEvent::new(batch, context))).await?;
        return Ok(serde_json::to_value(answer)?);
    }
    if payload["detail-type"] == "Scheduled Event" {
        return Ok(serde_json::to_value(Box::pin(reconciliation(app)).await?)?);
    }
    Err("neither an SQS batch nor a scheduled event".into())
}

/// What a reconciliation run answers (the schedule ignores it; the local stack's on-demand run
/// shows it).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileAnswer {
    pub examined: usize,
    /// `<order id> <event id>`: recorded now, their webhook never arrived.
    pub recovered: Vec<String>,
    pub unmatched: usize,
    pub failed: usize,
}

/// One reconciliation run over Stripe's events of the window. Stripe unavailable or not set up
/// fails the run (the next one covers the same events); an event that could not be recorded is
/// logged and left to the next run.
async fn reconciliation<S: OrderStore, P: PaymentProvider>(
    app: &App<S, P>,
) -> Result<ReconcileAnswer, Error> {
    let window = app.window.as_ref().map_err(|e| e.to_string())?;
    let now = Utc::now();
    let since = now - window.lookback;
    let until = now - window.settle;
    let run = match reconcile(&app.store, &app.stripe, &app.policy, since, until, now).await {
        Ok(run) => run,
        Err(ProviderError::NotConfigured(why)) => {
            tracing::info!(%why, "Stripe is not set up: nothing to reconcile");
            Default::default()
        }
        Err(error) => return Err(error.into()),
    };
    for (event_id, error) in &run.failed {
        tracing::error!(%event_id, %error, "a Stripe event the reconciliation could not record");
    }
    for (order_id, event_id) in &run.recovered {
        tracing::warn!(%order_id, %event_id, "recorded by the reconciliation: its webhook never arrived");
    }
    oms_adapters::metrics::emit_count("StripeEventsRecovered", run.recovered.len());
    oms_adapters::metrics::emit_count("StripeReconcileFailures", run.failed.len());
    tracing::info!(
        examined = run.examined,
        recovered = run.recovered.len(),
        unmatched = run.unmatched.len(),
        failed = run.failed.len(),
        "reconciliation done"
    );
    Ok(ReconcileAnswer {
        examined: run.examined,
        recovered: run
            .recovered
            .iter()
            .map(|(order, event)| format!("{order} {event}"))
            .collect(),
        unmatched: run.unmatched.len(),
        failed: run.failed.len(),
    })
}

/// Why a message was not done with.
#[derive(Debug, thiserror::Error)]
enum MessageError {
    /// Not a request this function understands: to the dead-letter queue after its retries.
    #[error("not a PSP request: {0}")]
    Poison(String),
    /// Stripe unavailable, or the order's write contended: tried again.
    #[error(transparent)]
    Failed(#[from] PaymentAppError),
}

async fn requests<S: OrderStore, P: PaymentProvider>(
    app: &App<S, P>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    Ok(for_each_message(&event.payload, |message| process(app, message)).await)
}

async fn process<S: OrderStore, P: PaymentProvider>(
    app: &App<S, P>,
    message: &SqsMessage,
) -> Result<(), MessageError> {
    let body = event_json_from_sqs_body(message.body.as_deref().unwrap_or_default());
    let head: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| MessageError::Poison(e.to_string()))?;
    let kind = head["type"].as_str().unwrap_or_default();
    let (order_id, reference, ask) = match kind {
        "oms.psp.capture-requested" | "oms.psp.void-requested" => {
            let event: CloudEvent<PspRequestEventData> =
                serde_json::from_str(&body).map_err(|e| MessageError::Poison(e.to_string()))?;
            let request = event.data.request;
            let ask = match request.kind {
                PspRequestKind::Capture => PspAsk::Capture {
                    request_id: request.request_id,
                    amount: request.amount,
                    more_follow: request.more_follow,
                },
                PspRequestKind::Void => PspAsk::Void {
                    request_id: request.request_id,
                },
            };
            (event.data.order_id, request.psp_reference, ask)
        }
        "oms.refund.requested" => {
            let event: CloudEvent<RefundEventData> =
                serde_json::from_str(&body).map_err(|e| MessageError::Poison(e.to_string()))?;
            let ask = PspAsk::Refund {
                refund_id: event.data.refund.refund_id,
                amount: event.data.refund.amount,
            };
            (event.data.order_id, event.data.psp_reference, ask)
        }
        other => {
            tracing::info!(event_type = other, "not a PSP request; acknowledged");
            return Ok(());
        }
    };
    let Some(reference) = reference else {
        // The order named no payment to act on (a second payment in front of staff).
        tracing::warn!(%order_id, "a PSP request naming no payment; left to staff");
        return Ok(());
    };
    let now = chrono::Utc::now();
    match ask_provider(
        &app.store,
        &app.stripe,
        &app.policy,
        &order_id,
        &reference,
        &ask,
        now,
    )
    .await
    {
        Ok(Asked::Recorded) => {
            tracing::info!(%order_id, payment = %reference, "Stripe's answer recorded")
        }
        Ok(Asked::Pending) => {
            tracing::info!(%order_id, payment = %reference, "taken by Stripe; its webhook will say how it ends")
        }
        Ok(Asked::NotThisProvider) => {
            tracing::warn!(%order_id, payment = %reference, "not a payment Stripe holds (or Stripe is not set up): left to another provider")
        }
        Ok(Asked::VoidRefused(why)) => {
            tracing::warn!(%order_id, payment = %reference, reason = %why, "Stripe refused the release")
        }
        // An order this system no longer holds: nothing to record, nothing to retry.
        Err(PaymentAppError::NotFound) => {
            tracing::warn!(%order_id, "a PSP request for an unknown order")
        }
        Err(error @ PaymentAppError::Provider(ProviderError::Unavailable(_))) => {
            tracing::warn!(%order_id, %error, "Stripe unavailable; tried again");
            return Err(error.into());
        }
        Err(error) => return Err(error.into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_domain::ids::OrderId;
    use oms_domain::memory::InMemoryStore;
    use oms_domain::order::payments::{PaymentEvent, PaymentEventKind, PaymentStatus};

    const ORDER_ID: &str = "01KAZ3Q6W8T2Y7X9V5N4M3K2J1";

    use oms_domain::fixtures::FakePsp as Stripe;

    /// Stripe's event `id` of `kind` over `amount` on the payment `pi_1`, at `at`.
    fn event_on_pi_1(
        id: &str,
        kind: PaymentEventKind,
        amount: oms_domain::money::Money,
        at: chrono::DateTime<Utc>,
    ) -> PaymentEvent {
        PaymentEvent {
            event_id: id.into(),
            kind,
            amount,
            occurred_at: at,
            psp_reference: Some("pi_1".into()),
            refund_id: None,
            request_id: None,
            reason: None,
        }
    }

    /// The fixture's order, reserved and authorized under `pi_1`.
    fn shipped() -> oms_domain::order::Order {
        let at = chrono::Utc::now();
        let order = oms_domain::fixtures::sample_order(ORDER_ID, "customer-ada", at)
            .reserve_all_at("BER-1", at)
            .unwrap();
        let auth = event_on_pi_1(
            "e1",
            PaymentEventKind::AuthorizationSucceeded,
            order.totals.total,
            at,
        );
        match order
            .record_payment(&auth, &PaymentPolicy::default(), at)
            .unwrap()
        {
            oms_domain::order::payments::PaymentUpdate::Recorded(next) => *next,
            _ => unreachable!(),
        }
    }

    fn app(stripe: Stripe) -> App<InMemoryStore, Stripe> {
        let store = InMemoryStore::default();
        store.insert_order(shipped());
        App {
            store,
            policy: PaymentPolicy::default(),
            stripe,
            window: Ok(ReconcileWindow {
                settle: Duration::seconds(300),
                lookback: Duration::seconds(3600),
            }),
        }
    }

    /// A batch of the fixture `psp-stripe/{name}.json`, its capture's amount the order's total.
    async fn run(app: &App<InMemoryStore, Stripe>, name: &str) -> Vec<String> {
        let total = shipped().totals.total;
        let mut event: SqsEvent = oms_domain::fixtures::event(&format!("psp-stripe/{name}.json"));
        for record in &mut event.records {
            if let Some(body) = record.body.as_mut() {
                if let Ok(mut json) = serde_json::from_str::<serde_json::Value>(body) {
                    if json["data"]["amount"].is_object() {
                        json["data"]["amount"] = serde_json::to_value(total).unwrap();
                        *body = json.to_string();
                    }
                }
            }
        }
        let event = serde_json::to_value(event).unwrap();
        let response = handle(app, LambdaEvent::new(event, Default::default()))
            .await
            .unwrap();
        let response: SqsBatchResponse = serde_json::from_value(response).unwrap();
        response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect()
    }

    #[tokio::test]
    async fn a_capture_is_asked_under_its_request_id_recorded_once_and_poison_fails_alone() {
        let app = app(Stripe::default());
        let failed = run(&app, "capture-requested").await;
        assert_eq!(failed, ["poison"], "only the poison message fails");
        let order = app
            .store
            .get(&OrderId::parse(ORDER_ID).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(order.payment_status(), PaymentStatus::Paid);
        assert_eq!(
            app.stripe.keys().as_slice(),
            [
                format!("{ORDER_ID}-CAPTURE-1"),
                format!("{ORDER_ID}-CAPTURE-1")
            ],
            "asked under the request's id, the repeat too"
        );
        let captures = order
            .payment
            .ledger
            .iter()
            .filter(|e| e.kind == PaymentEventKind::CaptureSucceeded)
            .count();
        assert_eq!(captures, 1, "recorded once");
    }

    #[tokio::test]
    async fn stripe_unavailable_is_tried_again() {
        let app = app(Stripe {
            unavailable: true,
            ..Stripe::default()
        });
        let failed = run(&app, "capture-requested").await;
        assert_eq!(
            failed.len(),
            3,
            "the two captures and the poison: {failed:?}"
        );
    }

    #[tokio::test]
    async fn a_scheduled_run_records_the_events_whose_webhook_never_arrived() {
        let stripe = Stripe::default();
        let at = Utc::now() - Duration::seconds(600);
        let order = shipped();
        let capture = event_on_pi_1(
            "stripe:pi_1:succeeded",
            PaymentEventKind::CaptureSucceeded,
            order.totals.total,
            at,
        );
        stripe
            .events
            .lock()
            .unwrap()
            .push(oms_domain::request::payments::PspEvent {
                order_id: order.id.clone(),
                event: capture,
            });
        let app = app(stripe);
        let scheduled: Value = oms_domain::fixtures::event("psp-stripe/scheduled.json");
        let answer = handle(
            &app,
            LambdaEvent::new(scheduled.clone(), Default::default()),
        )
        .await
        .unwrap();
        assert_eq!(answer["examined"], 1);
        assert_eq!(
            answer["recovered"][0],
            format!("{ORDER_ID} stripe:pi_1:succeeded")
        );
        let paid = app.store.get(&order.id).await.unwrap().unwrap();
        assert_eq!(paid.payment_status(), PaymentStatus::Paid);
        let again = handle(&app, LambdaEvent::new(scheduled, Default::default()))
            .await
            .unwrap();
        assert_eq!(again["recovered"].as_array().map(Vec::len), Some(0));
        let strange = handle(
            &app,
            LambdaEvent::new(serde_json::json!({"x": 1}), Default::default()),
        )
        .await;
        assert!(
            strange.is_err(),
            "neither source: an error, not a silent success"
        );
    }
}

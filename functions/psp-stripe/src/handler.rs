//! The SQS handler: each request on its own, failures reported per message.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{Error, LambdaEvent};
use oms_adapters::config;
use oms_adapters::dynamo::DynamoStore;
use oms_adapters::secrets::SecretCache;
use oms_adapters::sns::event_json_from_sqs_body;
use oms_adapters::sqs::for_each_message;
use oms_adapters::stripe::StripeClient;
use oms_domain::app::payments::{ask_provider, Asked, PaymentAppError, PspAsk};
use oms_domain::events::{CloudEvent, PspRequestEventData, RefundEventData};
use oms_domain::order::payments::{PaymentPolicy, PspRequestKind};
use oms_domain::ports::{OrderStore, PaymentProvider, ProviderError};

/// What the function needs, built once per cold start: the store, the payment rules the ledger
/// records under, and Stripe.
pub struct App<S, P> {
    pub store: S,
    pub policy: PaymentPolicy,
    pub stripe: P,
}

impl App<DynamoStore, StripeClient<SecretCache>> {
    pub fn from_env() -> Result<Self, Error> {
        Ok(App {
            store: DynamoStore::from_env()?,
            policy: config::payment_policy_from_env()?,
            stripe: StripeClient::from_env()?,
        })
    }
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

pub async fn handle<S: OrderStore, P: PaymentProvider>(
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
    use oms_domain::money::Money;
    use oms_domain::order::payments::{PaymentEvent, PaymentEventKind, PaymentStatus};
    use oms_domain::ports::{PaymentIntent, ProviderAnswer};

    const ORDER_ID: &str = "01KAZ3Q6W8T2Y7X9V5N4M3K2J1";

    /// Stripe, as far as these tests need it: it holds `pi_1`, answers each capture with the
    /// amount asked, and remembers the keys it was asked under; `busy` makes it unavailable.
    #[derive(Default)]
    struct Stripe {
        keys: std::sync::Mutex<Vec<String>>,
        busy: bool,
    }

    impl PaymentProvider for Stripe {
        async fn create_payment_intent(
            &self,
            _order: &OrderId,
            _amount: Money,
            _key: &str,
        ) -> Result<PaymentIntent, ProviderError> {
            Err(ProviderError::Refused("not here".into()))
        }

        async fn capture(
            &self,
            reference: &str,
            amount: Money,
            key: &str,
        ) -> Result<ProviderAnswer, ProviderError> {
            if self.busy {
                return Err(ProviderError::Unavailable("429".into()));
            }
            if reference != "pi_1" {
                return Err(ProviderError::UnknownPayment(reference.into()));
            }
            self.keys.lock().unwrap().push(key.to_owned());
            Ok(ProviderAnswer {
                state_id: format!("stripe:{reference}:succeeded"),
                kind: Some(PaymentEventKind::CaptureSucceeded),
                amount,
                reason: None,
            })
        }

        async fn cancel(
            &self,
            reference: &str,
            _key: &str,
        ) -> Result<ProviderAnswer, ProviderError> {
            Err(ProviderError::UnknownPayment(reference.into()))
        }

        async fn refund(
            &self,
            reference: &str,
            _amount: Money,
            _order: &OrderId,
            _refund_id: &str,
        ) -> Result<ProviderAnswer, ProviderError> {
            Err(ProviderError::UnknownPayment(reference.into()))
        }
    }

    /// The fixture's order, reserved and authorized under `pi_1`.
    fn shipped() -> oms_domain::order::Order {
        let at = chrono::Utc::now();
        let order = oms_domain::fixtures::sample_order(ORDER_ID, "customer-ada", at)
            .reserve_all_at("BER-1", at)
            .unwrap();
        let auth = PaymentEvent {
            event_id: "e1".into(),
            kind: PaymentEventKind::AuthorizationSucceeded,
            amount: order.totals.total,
            occurred_at: at,
            psp_reference: Some("pi_1".into()),
            refund_id: None,
            request_id: None,
            reason: None,
        };
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
        let response = handle(app, LambdaEvent::new(event, Default::default()))
            .await
            .unwrap();
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
            app.stripe.keys.lock().unwrap().as_slice(),
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
            busy: true,
            ..Stripe::default()
        });
        let failed = run(&app, "capture-requested").await;
        assert_eq!(
            failed.len(),
            3,
            "the two captures and the poison: {failed:?}"
        );
    }
}

//! The SQS handler: every message on its own, failures reported per message.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{Error, LambdaEvent};
use oms_adapters::config;
use oms_adapters::dynamo::DynamoStore;
use oms_adapters::sqs::{for_each_message, order_event};
use oms_domain::app::fulfillment::{start_fulfillment, FulfillmentAppError, StartResult};
use oms_domain::events::EventType;
use oms_domain::ports::{InventoryStore, OrderStore};
use oms_domain::shipping::ShippingPolicy;

/// What the function needs, built once per cold start: the store, and the shipping policy that
/// names the warehouse an order goes to.
pub struct App<S> {
    pub store: S,
    pub policy: ShippingPolicy,
}

impl App<DynamoStore> {
    pub fn from_env() -> Result<Self, Error> {
        Ok(App {
            store: DynamoStore::from_env()?,
            policy: config::shipping_policy_from_env()?,
        })
    }
}

type MessageError = oms_adapters::app::MessageError<FulfillmentAppError>;

pub async fn handle<S: OrderStore + InventoryStore>(
    app: &App<S>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    Ok(for_each_message(&event.payload, |message| process(app, message)).await)
}

async fn process<S: OrderStore + InventoryStore>(
    app: &App<S>,
    message: &SqsMessage,
) -> Result<(), MessageError> {
    let event = order_event(message).map_err(MessageError::Poison)?;
    // Whichever of the reservation, the authorization and the filling of its backorder comes
    // last starts the order.
    if !matches!(
        event.event_type,
        EventType::OrderReserved
            | EventType::PaymentAuthorized
            | EventType::BackorderFilled
            // Its backordered units called off: what is left may be ready.
            | EventType::UnitsCancelled
            // Told to ship what is there (an edit), or an edit's new total held (or the edit
            // undone): to the warehouse.
            | EventType::OrderEdited
            | EventType::EditPaid
            | EventType::EditUndone
    ) {
        tracing::info!(
            event_type = event.event_type.as_str(),
            "neither a reservation nor an authorization; acknowledged"
        );
        return Ok(());
    }
    let order_id = &event.data.order_id;
    match start_fulfillment(&app.store, &app.policy, order_id, chrono::Utc::now()).await? {
        StartResult::Started => {
            tracing::info!(%order_id, warehouse = app.policy.warehouse(), "sent to the warehouse")
        }
        StartResult::AwaitingPayment => {
            tracing::info!(%order_id, "reserved, awaiting payment: held until its authorization")
        }
        StartResult::Backordered(units) => {
            tracing::info!(%order_id, units, "reserved, some units backordered: held until stock fills them")
        }
        StartResult::AwaitingRelease(on) => {
            tracing::info!(%order_id, release_on = %on, "pre-ordered: the sweep sends it on its release date")
        }
        StartResult::AlreadyMoved(status) => {
            tracing::info!(%order_id, status = status.as_str(), "not reserved (yet, or any more): acknowledged")
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use oms_domain::memory::InMemoryStore;

    use oms_domain::order::{Order, OrderStatus};

    /// The order the fixtures name.
    const ORDER_ID: &str = "01KAZ3Q6W8T2Y7X9V5N4M3K2J1";

    /// The function under the default shipping policy, with `order` stored.
    fn app_with(order: Order) -> App<InMemoryStore> {
        let store = InMemoryStore::default();
        store.insert_order(order);
        App {
            store,
            policy: ShippingPolicy::default_policy(),
        }
    }

    /// The order the fixtures name, reserved and not yet paid for.
    fn unpaid_order() -> Order {
        oms_domain::fixtures::sample_order(ORDER_ID, "customer-ada", chrono::Utc::now())
            .reserve_all_at("BER-1", chrono::Utc::now())
            .unwrap()
    }

    /// The order the fixtures name, reserved and authorized.
    fn reserved_order() -> Order {
        unpaid_order().authorized_for_test(chrono::Utc::now())
    }

    /// Handles the batch of the fixture `fulfillment/{name}.json`: the ids of the messages
    /// that failed.
    async fn run(app: &App<InMemoryStore>, name: &str) -> Vec<String> {
        let batch: SqsEvent = oms_domain::fixtures::event(&format!("fulfillment/{name}.json"));
        let event = LambdaEvent::new(batch, lambda_runtime::Context::default());
        oms_adapters::sqs::failed_message_ids(&handle(app, event).await.unwrap())
    }

    #[tokio::test]
    async fn a_reserved_order_goes_to_the_warehouse_once() {
        let app = app_with(reserved_order());
        assert!(run(&app, "order-reserved").await.is_empty());
        assert!(
            run(&app, "order-reserved").await.is_empty(),
            "a duplicate is acknowledged"
        );
        let order = app.store.stored(ORDER_ID);
        assert_eq!(order.status, OrderStatus::Fulfilling);
        assert_eq!(order.version, 4, "moved once");
        assert_eq!(order.shipments[0].warehouse, "BER-1");
    }

    #[tokio::test]
    async fn an_unpaid_order_waits_and_its_authorization_starts_it() {
        let unpaid = unpaid_order();
        let app = app_with(unpaid.clone());
        assert!(run(&app, "order-reserved").await.is_empty());
        let held = app.store.get(&unpaid.id).await.unwrap().unwrap();
        assert_eq!(held.status, OrderStatus::Reserved, "awaiting payment");
        assert_eq!(held.version, unpaid.version, "nothing written");
        app.store
            .save(
                &unpaid.authorized_for_test(chrono::Utc::now()),
                unpaid.version,
            )
            .await
            .unwrap();
        assert!(run(&app, "payment-authorized").await.is_empty());
        let started = app.store.get(&unpaid.id).await.unwrap().unwrap();
        assert_eq!(started.status, OrderStatus::Fulfilling);
    }

    #[tokio::test]
    async fn a_poison_message_fails_alone() {
        let app = app_with(reserved_order());
        assert_eq!(
            run(&app, "batch-with-poison").await,
            ["poison-1", "unknown-order-1"]
        );
        let order = app.store.stored(ORDER_ID);
        assert_eq!(
            order.status,
            OrderStatus::Fulfilling,
            "the good message of the batch was processed"
        );
    }
}

//! The SQS handler: every message of the batch on its own, failures reported per message.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{Error, LambdaEvent};
use oms_adapters::config;
use oms_adapters::dynamo::DynamoStore;
use oms_adapters::sqs::{for_each_message, order_event};
use oms_domain::app::locations::LocationDirectory;
use oms_domain::app::reservation::{reserve_order, ReservationError, ReservationResult, Routing};
use oms_domain::events::EventType;
use oms_domain::ports::{InventoryStore, LocationStore, OrderStore, OrderTransactions};
use oms_domain::shipping::ShippingPolicy;

/// What the function needs, built once per cold start.
pub struct App<S> {
    pub store: S,
    /// The rate table, which prices each location's parcel for the routing planner.
    pub shipping: ShippingPolicy,
    /// Where stock is kept, as staff keep the list.
    pub locations: LocationDirectory,
}

impl App<DynamoStore> {
    pub async fn from_env() -> Result<Self, Error> {
        let shipping = config::shipping_policy_from_env()?;
        let locations = config::location_directory_from_env(&shipping)?;
        Ok(App {
            store: DynamoStore::from_env()?,
            shipping,
            locations,
        })
    }
}

/// Why one message was not processed; the queue will deliver it again, and after its last
/// attempt move it to the dead-letter queue.
#[derive(Debug, thiserror::Error)]
enum MessageError {
    #[error("the message is not an order event: {0}")]
    Poison(serde_json::Error),
    #[error("{0} (retryable: {retryable})", retryable = .0.is_retryable())]
    Reservation(#[from] ReservationError),
}

/// Processes the batch concurrently and reports the messages that failed.
pub async fn handle<S: OrderStore + InventoryStore + OrderTransactions + LocationStore>(
    app: &App<S>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    Ok(for_each_message(&event.payload, |message| process(app, message)).await)
}

async fn process<S: OrderStore + InventoryStore + OrderTransactions + LocationStore>(
    app: &App<S>,
    message: &SqsMessage,
) -> Result<(), MessageError> {
    let event = order_event(message).map_err(MessageError::Poison)?;
    if event.event_type != EventType::OrderPlaced {
        tracing::info!(
            event_type = event.event_type.as_str(),
            "not an order placement; acknowledged"
        );
        return Ok(());
    }
    let order_id = &event.data.order_id;
    let locations = app
        .locations
        .current(&app.store)
        .await
        .map_err(ReservationError::from)?;
    let routing = Routing {
        locations: &locations,
        shipping: &app.shipping,
    };
    let result = reserve_order(
        &app.store,
        &app.store,
        routing,
        order_id,
        chrono::Utc::now(),
    )
    .await?;
    match &result {
        ReservationResult::Reserved => tracing::info!(%order_id, "order reserved"),
        ReservationResult::Rejected(shortages) => {
            tracing::info!(%order_id, short_skus = shortages.len(), "order rejected for stock")
        }
        ReservationResult::AlreadyDecided(status) => {
            tracing::info!(%order_id, status = status.as_str(), "order already decided; duplicate acknowledged")
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_domain::ids::{CustomerId, OrderId};
    use oms_domain::memory::InMemoryStore;

    use oms_domain::order::OrderStatus;

    fn product(sku: &str, stock: u32) -> oms_domain::stock::Product {
        oms_domain::fixtures::product(sku, 2500, stock)
    }

    fn fixture(name: &str) -> SqsEvent {
        oms_domain::fixtures::event(&format!("stock-reservation/{name}.json"))
    }

    /// Places the order that the fixture's events name, priced from the store's catalog.
    async fn place(store: &InMemoryStore, id: &str) {
        let order = oms_domain::order::Order::place(
            OrderId::parse(id).unwrap(),
            CustomerId::parse("customer-ada").unwrap(),
            &oms_domain::fixtures::sample_request(),
            &store.catalog(),
            &oms_domain::shipping::ShippingPolicy::default_policy(),
            chrono::Utc::now(),
        )
        .unwrap();
        store.insert_order(order);
    }

    /// The function over a catalog of `shirts` red T-shirts and `mugs` mugs, at the default
    /// location, with the demo's locations and the default rate table.
    fn app_with(shirts: u32, mugs: u32) -> App<InMemoryStore> {
        App {
            store: InMemoryStore::with_products([
                product("TSHIRT-RED-M", shirts),
                product("MUG-WHITE", mugs),
            ]),
            shipping: ShippingPolicy::default_policy(),
            locations: LocationDirectory::demo(),
        }
    }

    /// `(available, reserved)` of `sku`, over every location.
    fn stock_of(app: &App<InMemoryStore>, sku: &str) -> (u32, u32) {
        let catalog = app.store.catalog();
        let product = catalog.iter().find(|p| p.sku.as_str() == sku).unwrap();
        (product.stock.available(), product.stock.reserved())
    }

    async fn run(app: &App<InMemoryStore>, name: &str) -> Vec<String> {
        let event = LambdaEvent::new(fixture(name), lambda_runtime::Context::default());
        oms_adapters::sqs::failed_message_ids(&handle(app, event).await.unwrap())
    }

    #[tokio::test]
    async fn reserves_and_acknowledges_duplicates() {
        let app = app_with(10, 5);
        place(&app.store, "01KAZ3Q6W8T2Y7X9V5N4M3K2J1").await;
        assert!(run(&app, "order-placed").await.is_empty());
        assert!(
            run(&app, "order-placed").await.is_empty(),
            "a duplicate is acknowledged"
        );
        let order = app.store.stored("01KAZ3Q6W8T2Y7X9V5N4M3K2J1");
        assert_eq!(order.status, OrderStatus::Reserved);
        assert_eq!(
            stock_of(&app, "TSHIRT-RED-M"),
            (8, 2),
            "reserved once, not twice"
        );
    }

    #[tokio::test]
    async fn rejects_when_stock_falls_short() {
        let app = app_with(1, 5);
        place(&app.store, "01KAZ3Q6W8T2Y7X9V5N4M3K2J1").await;
        assert!(run(&app, "order-placed").await.is_empty());
        let order = app.store.stored("01KAZ3Q6W8T2Y7X9V5N4M3K2J1");
        assert_eq!(order.status, OrderStatus::Rejected);
        assert_eq!(
            (
                order.shortages[0].sku.as_str(),
                order.shortages[0].available
            ),
            ("TSHIRT-RED-M", 1)
        );
        assert_eq!(stock_of(&app, "MUG-WHITE"), (5, 0), "nothing moved");
    }

    #[tokio::test]
    async fn a_poison_message_fails_alone() {
        let app = app_with(10, 5);
        place(&app.store, "01KAZ3Q6W8T2Y7X9V5N4M3K2J1").await;
        let failures = run(&app, "batch-with-poison").await;
        assert_eq!(failures, ["poison-1", "unknown-order-1"]);
        let order = app.store.stored("01KAZ3Q6W8T2Y7X9V5N4M3K2J1");
        assert_eq!(
            order.status,
            OrderStatus::Reserved,
            "the good message of the batch was processed"
        );
    }
}

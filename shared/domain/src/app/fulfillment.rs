//! The warehouse's and the carriers' side: start fulfillment for reserved orders, the pick list,
//! pick, pack, ship, and carrier events.
//!
//! Every step is a read, a rule from [`crate::fulfillment`], and a write conditioned on the
//! version read. A caller that sends the version it saw (`If-Match`) is refused if the shipment
//! changed since; packing and shipping require it, so two packers cannot both ship a parcel.

use chrono::{DateTime, Utc};

use crate::app::Caller;
use crate::fulfillment::{
    CarrierEventKind, CarrierUpdate, FulfillmentError, FulfillmentStatus, Parcel, Tracking,
};
use crate::ids::OrderId;
use crate::order::{Order, OrderStatus};
use crate::ports::{OrderStore, Page, ShipOutcome, StockReservations, StoreError};
use crate::shipping::ShippingPolicy;
use crate::validation::ValidationErrors;

#[derive(Debug, thiserror::Error)]
pub enum FulfillmentAppError {
    #[error("no shipment for this order")]
    NotFound,
    #[error("the shipment changed: it is at version {current}")]
    PreconditionFailed { current: u64 },
    #[error("this step needs If-Match with the shipment's current ETag")]
    PreconditionRequired,
    #[error(transparent)]
    Step(#[from] FulfillmentError),
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error("the shipment kept changing; try again")]
    Contended,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl FulfillmentAppError {
    /// Whether a queue message that failed with this should be tried again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Contended => true,
            _ => false,
        }
    }
}

/// What became of a reserved order handed to fulfillment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartResult {
    Started,
    /// Not `RESERVED` any more (a duplicate message, or a cancellation): no-op.
    AlreadyMoved(OrderStatus),
}

const ATTEMPTS: usize = 3;

/// Hands a reserved order to the policy's warehouse.
pub async fn start_fulfillment<O: OrderStore>(
    orders: &O,
    policy: &ShippingPolicy,
    id: &OrderId,
    now: DateTime<Utc>,
) -> Result<StartResult, FulfillmentAppError> {
    for _ in 0..ATTEMPTS {
        let order = orders.get(id).await?.ok_or(FulfillmentAppError::NotFound)?;
        let Ok(next) = order.start_fulfillment(policy.warehouse(), now) else {
            return Ok(StartResult::AlreadyMoved(order.status));
        };
        match orders.save(&next, order.version).await {
            Ok(()) => return Ok(StartResult::Started),
            Err(StoreError::ConditionFailed) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(FulfillmentAppError::Contended)
}

/// One shipment (the order that holds it).
pub async fn get_fulfillment<O: OrderStore>(
    orders: &O,
    id: &OrderId,
) -> Result<Order, FulfillmentAppError> {
    orders
        .get(id)
        .await?
        .filter(|o| o.fulfillment.is_some())
        .ok_or(FulfillmentAppError::NotFound)
}

/// A warehouse's shipments in one status, oldest first.
pub async fn pick_list<O: OrderStore>(
    orders: &O,
    warehouse: &str,
    status: FulfillmentStatus,
    limit: u32,
    cursor: Option<&str>,
) -> Result<Page<Order>, FulfillmentAppError> {
    Ok(orders
        .list_fulfillments(warehouse, status, limit.clamp(1, 100), cursor)
        .await?)
}

/// What a warehouse step asks for.
#[derive(Debug, Clone)]
pub enum WarehouseStep {
    Pick,
    Pack(Parcel),
    Ship(Tracking),
}

fn whole(
    errors: &mut ValidationErrors,
    body: &serde_json::Value,
    field: &str,
    max: u64,
) -> Option<u32> {
    match body
        .get(field)
        .and_then(|v| v.as_u64())
        .filter(|n| (1..=max).contains(n))
    {
        Some(n) => Some(n as u32),
        None => {
            errors.add(field, format!("must be a whole number from 1 to {max}"));
            None
        }
    }
}

fn text(
    errors: &mut ValidationErrors,
    body: &serde_json::Value,
    field: &str,
    max: usize,
) -> Option<String> {
    match body.get(field).and_then(|v| v.as_str()).map(str::trim) {
        Some(t)
            if !t.is_empty() && t.chars().count() <= max && !t.chars().any(char::is_control) =>
        {
            Some(t.to_owned())
        }
        _ => {
            errors.add(field, format!("must be a string of 1 to {max} characters"));
            None
        }
    }
}

impl WarehouseStep {
    /// Parses the body of `pack` (`{weightGrams, lengthCm, widthCm, heightCm}`).
    pub fn pack(body: &serde_json::Value) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let weight_grams = whole(&mut errors, body, "weightGrams", 70_000);
        let length_cm = whole(&mut errors, body, "lengthCm", 300);
        let width_cm = whole(&mut errors, body, "widthCm", 300);
        let height_cm = whole(&mut errors, body, "heightCm", 300);
        match (weight_grams, length_cm, width_cm, height_cm) {
            (Some(weight_grams), Some(length_cm), Some(width_cm), Some(height_cm)) => {
                Ok(Self::Pack(Parcel {
                    weight_grams,
                    length_cm,
                    width_cm,
                    height_cm,
                }))
            }
            _ => Err(errors),
        }
    }

    /// Parses the body of `ship` (`{carrier, trackingNumber, trackingUrl}`).
    pub fn ship(body: &serde_json::Value) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let carrier = text(&mut errors, body, "carrier", 50);
        let tracking_number = text(&mut errors, body, "trackingNumber", 64);
        let tracking_url = text(&mut errors, body, "trackingUrl", 500);
        let tracking_url = tracking_url.filter(|u| {
            u.starts_with("https://") || {
                errors.add("trackingUrl", "must be an https:// URL");
                false
            }
        });
        match (carrier, tracking_number, tracking_url) {
            (Some(carrier), Some(tracking_number), Some(tracking_url)) => {
                Ok(Self::Ship(Tracking {
                    carrier,
                    tracking_number,
                    tracking_url,
                }))
            }
            _ => Err(errors),
        }
    }

    fn needs_if_match(&self) -> bool {
        !matches!(self, Self::Pick)
    }
}

/// Applies a warehouse step, conditioned on `if_match` (the version the caller saw) if given.
pub async fn warehouse_step<S: OrderStore + StockReservations>(
    store: &S,
    policy: &ShippingPolicy,
    caller: &Caller,
    id: &OrderId,
    step: WarehouseStep,
    if_match: Option<u64>,
    now: DateTime<Utc>,
) -> Result<Order, FulfillmentAppError> {
    if step.needs_if_match() && if_match.is_none() {
        return Err(FulfillmentAppError::PreconditionRequired);
    }
    let by = caller.customer_id.as_str();
    for _ in 0..ATTEMPTS {
        let order = get_fulfillment(store, id).await?;
        if let Some(expected) = if_match {
            if expected != order.version {
                return Err(FulfillmentAppError::PreconditionFailed {
                    current: order.version,
                });
            }
        }
        let written = match &step {
            WarehouseStep::Pick => {
                let next = order.pick(by, now)?;
                store.save(&next, order.version).await.map(|()| next)
            }
            WarehouseStep::Pack(parcel) => {
                let next = order.pack(*parcel, by, now)?;
                store.save(&next, order.version).await.map(|()| next)
            }
            WarehouseStep::Ship(tracking) => {
                let estimate = policy
                    .estimate_from_ship_date(
                        order.shipping.method,
                        order.shipping.address.country(),
                        now.date_naive(),
                    )
                    .map_err(|e| {
                        StoreError::Corrupt(format!("order {id} has an unserved destination: {e}"))
                    })?;
                let next = order.ship(tracking.clone(), estimate, by, now)?;
                match store.ship(&next).await? {
                    ShipOutcome::Shipped => Ok(next),
                    ShipOutcome::OrderChanged => Err(StoreError::ConditionFailed),
                }
            }
        };
        match written {
            Ok(next) => return Ok(next),
            Err(StoreError::ConditionFailed) if if_match.is_some() => {
                let current = store.get(id).await?.map(|o| o.version).unwrap_or_default();
                return Err(FulfillmentAppError::PreconditionFailed { current });
            }
            Err(StoreError::ConditionFailed) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(FulfillmentAppError::Contended)
}

/// A carrier's report about a parcel, as its webhook sends it.
#[derive(Debug, Clone)]
pub struct CarrierEvent {
    pub event_id: String,
    pub order_id: OrderId,
    pub tracking_number: String,
    pub kind: CarrierEventKind,
    pub occurred_at: DateTime<Utc>,
    pub detail: Option<String>,
}

impl CarrierEvent {
    /// Parses `{eventId, shipmentReference, trackingNumber, status, occurredAt, detail?}`;
    /// `shipmentReference` is the order id the parcel was shipped under.
    pub fn parse(body: &serde_json::Value) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let event_id = text(&mut errors, body, "eventId", 128);
        let order_id = text(&mut errors, body, "shipmentReference", 26)
            .and_then(|r| errors.check("shipmentReference", OrderId::parse(r)));
        let tracking_number = text(&mut errors, body, "trackingNumber", 64);
        let kind = body
            .get("status")
            .cloned()
            .and_then(|s| serde_json::from_value::<CarrierEventKind>(s).ok());
        if kind.is_none() {
            errors.add(
                "status",
                "must be IN_TRANSIT, OUT_FOR_DELIVERY, DELIVERED or DELIVERY_EXCEPTION",
            );
        }
        let occurred_at = body
            .get("occurredAt")
            .and_then(|v| v.as_str())
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        if occurred_at.is_none() {
            errors.add("occurredAt", "must be an RFC 3339 time");
        }
        let detail = body
            .get("detail")
            .and_then(|v| v.as_str())
            .map(|d| d.chars().take(500).collect());
        match (event_id, order_id, tracking_number, kind, occurred_at) {
            (
                Some(event_id),
                Some(order_id),
                Some(tracking_number),
                Some(kind),
                Some(occurred_at),
            ) if errors.is_empty() => Ok(CarrierEvent {
                event_id,
                order_id,
                tracking_number,
                kind,
                occurred_at,
                detail,
            }),
            _ => Err(errors),
        }
    }
}

/// Whether a carrier event changed the shipment or repeated one already applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CarrierResult {
    Applied(Box<Order>),
    Duplicate,
}

/// Applies a carrier event once.
pub async fn carrier_event<O: OrderStore>(
    orders: &O,
    event: &CarrierEvent,
    now: DateTime<Utc>,
) -> Result<CarrierResult, FulfillmentAppError> {
    for _ in 0..ATTEMPTS {
        let order = get_fulfillment(orders, &event.order_id).await?;
        let tracking = order.fulfillment.as_ref().and_then(|f| f.tracking.as_ref());
        if tracking.is_some_and(|t| t.tracking_number != event.tracking_number) {
            return Err(FulfillmentAppError::NotFound);
        }
        let update = order.carrier_event(
            &event.event_id,
            event.kind,
            event.detail.clone(),
            event.occurred_at,
            now,
        )?;
        let next = match update {
            CarrierUpdate::Duplicate => return Ok(CarrierResult::Duplicate),
            CarrierUpdate::Applied(next) => next,
        };
        match orders.save(&next, order.version).await {
            Ok(()) => return Ok(CarrierResult::Applied(next)),
            Err(StoreError::ConditionFailed) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(FulfillmentAppError::Contended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CustomerId;
    use crate::memory::InMemoryStore;
    use crate::order::tests::{placed, product};
    use crate::ports::InventoryStore;
    use serde_json::json;

    fn warehouse() -> Caller {
        Caller {
            customer_id: CustomerId::parse("packer-1").unwrap(),
            scopes: vec!["oms:warehouse".into()],
        }
    }

    async fn reserved_store() -> (InMemoryStore, OrderId) {
        let store = InMemoryStore::with_products([product("A", 100, 5)]);
        let order = placed(json!([{"sku": "A", "quantity": 2}]), &store.catalog());
        store.insert_order(order.clone());
        crate::app::reservation::reserve_order(&store, &store, &order.id, Utc::now())
            .await
            .unwrap();
        (store, order.id)
    }

    #[tokio::test]
    async fn a_reserved_order_goes_from_pick_to_delivery_and_its_stock_leaves() {
        let (store, id) = reserved_store().await;
        let policy = ShippingPolicy::default_policy();
        assert_eq!(
            start_fulfillment(&store, &policy, &id, Utc::now())
                .await
                .unwrap(),
            StartResult::Started
        );
        assert_eq!(
            start_fulfillment(&store, &policy, &id, Utc::now())
                .await
                .unwrap(),
            StartResult::AlreadyMoved(OrderStatus::Fulfilling)
        );
        let list = pick_list(&store, "BER-1", FulfillmentStatus::AwaitingPick, 10, None)
            .await
            .unwrap();
        assert_eq!(list.items.len(), 1);

        let picked = warehouse_step(
            &store,
            &policy,
            &warehouse(),
            &id,
            WarehouseStep::Pick,
            None,
            Utc::now(),
        )
        .await
        .unwrap();
        let pack = WarehouseStep::pack(
            &json!({"weightGrams": 800, "lengthCm": 30, "widthCm": 20, "heightCm": 10}),
        )
        .unwrap();
        let packed = warehouse_step(
            &store,
            &policy,
            &warehouse(),
            &id,
            pack,
            Some(picked.version),
            Utc::now(),
        )
        .await
        .unwrap();
        let ship = WarehouseStep::ship(&json!({"carrier": "DHL", "trackingNumber": "JJD1", "trackingUrl": "https://t.example/JJD1"})).unwrap();
        let stale = warehouse_step(
            &store,
            &policy,
            &warehouse(),
            &id,
            ship.clone(),
            Some(picked.version),
            Utc::now(),
        )
        .await;
        assert!(matches!(
            stale,
            Err(FulfillmentAppError::PreconditionFailed { .. })
        ));
        let shipped = warehouse_step(
            &store,
            &policy,
            &warehouse(),
            &id,
            ship,
            Some(packed.version),
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(shipped.status, OrderStatus::Shipped);
        let a = store
            .product(&crate::ids::Sku::parse("A").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.stock.available(), a.stock.reserved(), a.stock.on_hand()),
            (3, 0, 3)
        );

        let delivered = CarrierEvent::parse(&json!({"eventId": "c1", "shipmentReference": id.as_str(), "trackingNumber": "JJD1", "status": "DELIVERED", "occurredAt": "2026-11-30T10:00:00Z"})).unwrap();
        assert!(matches!(
            carrier_event(&store, &delivered, Utc::now()).await.unwrap(),
            CarrierResult::Applied(_)
        ));
        assert_eq!(
            carrier_event(&store, &delivered, Utc::now()).await.unwrap(),
            CarrierResult::Duplicate
        );
        assert_eq!(
            store.get(&id).await.unwrap().unwrap().status,
            OrderStatus::Delivered
        );
    }

    #[tokio::test]
    async fn packing_and_shipping_need_if_match() {
        let (store, id) = reserved_store().await;
        let policy = ShippingPolicy::default_policy();
        start_fulfillment(&store, &policy, &id, Utc::now())
            .await
            .unwrap();
        let pack = WarehouseStep::pack(
            &json!({"weightGrams": 800, "lengthCm": 30, "widthCm": 20, "heightCm": 10}),
        )
        .unwrap();
        let result =
            warehouse_step(&store, &policy, &warehouse(), &id, pack, None, Utc::now()).await;
        assert!(matches!(
            result,
            Err(FulfillmentAppError::PreconditionRequired)
        ));
    }

    #[test]
    fn bad_bodies_name_their_fields() {
        let errors = WarehouseStep::ship(
            &json!({"carrier": "", "trackingNumber": "X", "trackingUrl": "http://plain"}),
        )
        .unwrap_err();
        let fields: Vec<_> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["carrier", "trackingUrl"]);
        let errors = CarrierEvent::parse(
            &json!({"eventId": "e", "shipmentReference": "nope", "status": "LOST"}),
        )
        .unwrap_err();
        let fields: Vec<_> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "shipmentReference",
                "trackingNumber",
                "status",
                "occurredAt"
            ]
        );
    }
}

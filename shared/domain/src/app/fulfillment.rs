//! The warehouse's and the carriers' side: start fulfillment for reserved orders, the pick list,
//! pick, pack, ship, and carrier events.
//!
//! Every step is a read, a rule from [`crate::order::fulfillment`], and a write conditioned on the
//! order's version read ([`crate::app::retry`]). A caller that sends the shipment's version it
//! saw (`If-Match`) is refused if that shipment changed since; packing and shipping require
//! it, so two packers cannot both ship a parcel, while the packers of an order's other parcels
//! work on without being refused.

use chrono::{DateTime, Utc};

use crate::app::retry::{until_written, Attempt, Contended};
use crate::app::Caller;
use crate::ids::{OrderId, ShipmentId};
use crate::location::Locations;
use crate::order::fulfillment::{CarrierUpdate, FulfillmentError, FulfillmentStatus};
use crate::order::{Order, OrderStatus};
use crate::ports::{
    CommitOutcome, InventoryStore, OrderStore, OrderTransactions, Page, ShipOutcome, StoreError,
};
pub use crate::request::fulfillment::{CarrierEvent, MoveShipment, WarehouseAction};
use crate::shipping::ShippingPolicy;
use crate::stock::AdjustmentReason;
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
    /// The shipment's state does not allow this step now.
    NotAllowed(#[from] FulfillmentError),
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error("the shipment kept changing; try again")]
    Contended,
    /// The location a move goes to holds too few of what it takes.
    #[error("{}", short_detail(.0))]
    Short(Vec<crate::order::Shortage>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn short_detail(shortages: &[crate::order::Shortage]) -> String {
    let each: Vec<String> = shortages
        .iter()
        .map(|s| format!("{} needs {}, {} available", s.sku, s.requested, s.available))
        .collect();
    format!("the location holds too few: {}", each.join("; "))
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
    /// Not `RESERVED` (a duplicate message, a cancellation, or an authorization that came
    /// before the reservation): no-op.
    AlreadyMoved(OrderStatus),
    /// Reserved but not yet authorized: it stays held until its authorization's event starts
    /// it.
    AwaitingPayment,
    /// Reserved, but this many of its units wait for stock: the event of the receipt that
    /// fills them starts it.
    Backordered(u32),
    /// Reserved and paid, but pre-ordered: the scheduled sweep starts it on its release date.
    AwaitingRelease(chrono::NaiveDate),
}

/// The release date each pre-ordered SKU has now (`None`: no longer sold as a pre-order), as
/// read; a SKU that is gone is not listed, and its orders keep their date.
#[derive(Default)]
pub struct Releases {
    now: std::collections::HashMap<crate::ids::Sku, Option<chrono::NaiveDate>>,
    read: std::collections::HashSet<crate::ids::Sku>,
}

impl Releases {
    /// Reads the SKUs of `order`'s pre-ordered lines not read yet, in one request.
    pub async fn read_for<S: InventoryStore>(
        &mut self,
        store: &S,
        order: &Order,
    ) -> Result<(), StoreError> {
        let unread: Vec<crate::ids::Sku> = order
            .lines
            .iter()
            .filter(|l| l.release_on.is_some() && !self.read.contains(&l.sku))
            .map(|l| l.sku.clone())
            .collect();
        if unread.is_empty() {
            return Ok(());
        }
        for product in store.products(&unread).await? {
            let release = match product.backorders.policy {
                crate::backorder::SellingPolicy::PreOrder { release_on, .. } => Some(release_on),
                _ => None,
            };
            self.now.insert(product.sku, release);
        }
        self.read.extend(unread);
        Ok(())
    }

    /// `order` following the first of its pre-ordered lines whose SKU's release date moved
    /// ([`Order::follow_release`]), if one did.
    pub fn follow(&self, order: &Order, now: DateTime<Utc>) -> Option<Order> {
        let today = crate::replenishment::day_of(now);
        order
            .lines
            .iter()
            .filter(|l| l.release_on.is_some())
            .find_map(|l| order.follow_release(&l.sku, *self.now.get(&l.sku)?, today, now))
    }
}

/// One attempt at starting an order: the result, or a release date followed first.
enum Start {
    Done(StartResult),
    ReleaseFollowed,
}

/// Hands a reserved, authorized order to the policy's warehouse. Called for its reservation,
/// its authorization and the filling of its backorder: whichever comes last starts it. A
/// pre-order first follows its SKUs' release dates as they are now (one write per date moved,
/// its customer told), so it never leaves on a date the business has moved since: its
/// products are read only for an order with a pre-ordered line.
pub async fn start_fulfillment<O: OrderStore + InventoryStore>(
    orders: &O,
    policy: &ShippingPolicy,
    id: &OrderId,
    now: DateTime<Utc>,
) -> Result<StartResult, FulfillmentAppError> {
    // Each attempt follows at most one moved date; an order has few lines, and what is left
    // after this many is for the next start (the sweep's or an event's).
    for _ in 0..MAX_RELEASES_FOLLOWED {
        let start = until_written::<_, FulfillmentAppError, _>(|| async move {
            let order = orders.get(id).await?.ok_or(FulfillmentAppError::NotFound)?;
            if order.status == OrderStatus::Reserved
                && order.shipments.is_empty()
                && order.release_date().is_some()
            {
                let mut releases = Releases::default();
                releases.read_for(orders, &order).await?;
                if let Some(next) = releases.follow(&order, now) {
                    return Attempt::of_write(
                        orders.save(&next, order.version).await,
                        Start::ReleaseFollowed,
                    );
                }
            }
            let next = match order
                .start_fulfillment(order.home_location().unwrap_or(policy.warehouse()), now)
            {
                Ok(next) => next,
                Err(FulfillmentError::AwaitingPayment(_)) => {
                    return Ok(Attempt::Done(Start::Done(StartResult::AwaitingPayment)))
                }
                Err(FulfillmentError::Backordered(units)) => {
                    return Ok(Attempt::Done(Start::Done(StartResult::Backordered(units))))
                }
                Err(FulfillmentError::AwaitingRelease(on)) => {
                    return Ok(Attempt::Done(Start::Done(StartResult::AwaitingRelease(on))))
                }
                Err(_) => {
                    return Ok(Attempt::Done(Start::Done(StartResult::AlreadyMoved(
                        order.status,
                    ))))
                }
            };
            Attempt::of_write(
                orders.save(&next, order.version).await,
                Start::Done(StartResult::Started),
            )
        })
        .await?;
        if let Start::Done(result) = start {
            return Ok(result);
        }
    }
    Err(FulfillmentAppError::Contended)
}

/// The most release dates one start follows before it starts the order.
const MAX_RELEASES_FOLLOWED: usize = 10;

/// One shipment: the order that holds it, which does.
pub async fn get_fulfillment<O: OrderStore>(
    orders: &O,
    id: &ShipmentId,
) -> Result<Order, FulfillmentAppError> {
    orders
        .get(id.order_id())
        .await?
        .filter(|o| o.shipment(id.number()).is_ok())
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

/// Where a warehouse step is asked from, and on which version of the shipment.
#[derive(Debug, Clone, Default)]
pub struct StepConditions {
    /// The shipment's version the caller saw (`If-Match`).
    pub if_match: Option<u64>,
    /// The location the caller works at, if it named one: a step on a shipment another
    /// location holds is refused.
    pub location: Option<String>,
}

/// The version of shipment `id` in `order`.
fn shipment_version(order: &Order, id: &ShipmentId) -> u64 {
    order
        .shipment(id.number())
        .map(|s| s.version())
        .unwrap_or_default()
}

/// Applies a warehouse step to one shipment, conditioned on the shipment's version the caller
/// saw, if given, and on the caller's location holding it, if named.
pub async fn warehouse_step<S: OrderStore + OrderTransactions>(
    store: &S,
    policy: &ShippingPolicy,
    caller: &Caller,
    id: &ShipmentId,
    action: WarehouseAction,
    conditions: StepConditions,
    now: DateTime<Utc>,
) -> Result<Order, FulfillmentAppError> {
    let if_match = conditions.if_match;
    if action.needs_if_match() && if_match.is_none() {
        return Err(FulfillmentAppError::PreconditionRequired);
    }
    let by = caller.customer_id.as_str();
    let action = &action;
    let number = id.number();
    let location = conditions.location.as_deref();
    until_written(|| async move {
        let order = get_fulfillment(store, id).await?;
        if let Some(location) = location {
            order.check_location(number, location)?;
        }
        if let Some(expected) = if_match {
            let current = shipment_version(&order, id);
            if expected != current {
                return Err(FulfillmentAppError::PreconditionFailed { current });
            }
        }
        let (next, written) = match action {
            WarehouseAction::Pick => {
                let next = order.pick(number, by, now)?;
                let written = store.save(&next, order.version).await;
                (next, written)
            }
            WarehouseAction::Pack(parcel) => {
                let next = order.pack(number, *parcel, by, now)?;
                let written = store.save(&next, order.version).await;
                (next, written)
            }
            WarehouseAction::Ship(tracking) => {
                let estimate = policy
                    .estimate_from_ship_date(
                        order.shipping.method,
                        order.shipping.address.country(),
                        now.date_naive(),
                    )
                    .map_err(|e| {
                        StoreError::Corrupt(format!("order {id} has an unserved destination: {e}"))
                    })?;
                let next = order.ship(number, tracking.clone(), estimate, by, now)?;
                let written = match store.ship(&next, number).await? {
                    ShipOutcome::Shipped => Ok(()),
                    ShipOutcome::OrderChanged => Err(StoreError::ConditionFailed),
                };
                (next, written)
            }
        };
        match written {
            // A caller who named the version it saw is told, not silently retried over.
            Err(StoreError::ConditionFailed) if if_match.is_some() => {
                let current = store
                    .get(id.order_id())
                    .await?
                    .map(|o| shipment_version(&o, id))
                    .unwrap_or_default();
                if Some(current) != if_match {
                    return Err(FulfillmentAppError::PreconditionFailed { current });
                }
                // Another part of the order changed, not this shipment: try again.
                Ok(Attempt::LostRace)
            }
            written => Attempt::of_write(written, next),
        }
    })
    .await
}

/// Moves shipment `id` (or some of its units) to another location before it is picked, on
/// condition of the shipment's version the caller saw: the units' reservation moves in the
/// same write as the order, refused if the location they go to holds too few.
#[allow(clippy::too_many_arguments)]
pub async fn move_shipment<S: OrderStore + OrderTransactions + InventoryStore>(
    store: &S,
    locations: &Locations,
    caller: &Caller,
    id: &ShipmentId,
    request: &MoveShipment,
    if_match: Option<u64>,
    now: DateTime<Utc>,
) -> Result<Order, FulfillmentAppError> {
    let Some(expected) = if_match else {
        return Err(FulfillmentAppError::PreconditionRequired);
    };
    let to = match locations.get(&request.to) {
        Some(location) if location.capabilities.ships => location,
        Some(_) => {
            return Err(ValidationErrors::one(
                "to",
                format!("'{}' does not send parcels", request.to),
            )
            .into())
        }
        None => {
            return Err(ValidationErrors::one(
                "to",
                format!("unknown location '{}' (GET /locations)", request.to),
            )
            .into())
        }
    };
    let by = caller.customer_id.as_str();
    let moved = until_written(|| async move {
        let order = get_fulfillment(store, id).await?;
        let current = shipment_version(&order, id);
        if current != expected {
            return Err(FulfillmentAppError::PreconditionFailed { current });
        }
        let change =
            order.move_units(id.number(), &request.to, request.lines.as_deref(), by, now)?;
        // The rate table must serve the order's destination from there.
        let country = order.shipping.address.country();
        if !locations.sends(&to.id, order.shipping.method, country) {
            return Err(ValidationErrors::one(
                "to",
                format!(
                    "{} does not send {} parcels to {}",
                    to.id,
                    order.shipping.method.as_str(),
                    country.as_str()
                ),
            )
            .into());
        }
        // The SKUs' counters as they are now, for the entries the move writes in their stock
        // histories (on condition that they are still these when the move is written).
        let skus: Vec<_> = change.moves.iter().map(|m| m.sku.clone()).collect();
        let products = store.products(&skus).await?;
        let reasons = (
            AdjustmentReason::ShipmentMoveOut,
            AdjustmentReason::ShipmentMoveIn,
        );
        let note = format!("shipment {id} moved to {}", request.to);
        let change = change
            .with_stock_history(&products, reasons, &note, by)
            .map_err(FulfillmentAppError::Short)?;
        match store.commit(&change).await? {
            CommitOutcome::Committed => Ok(Attempt::Done((change.order.clone(), change.freed()))),
            CommitOutcome::OrderChanged => Ok(Attempt::LostRace),
            CommitOutcome::Short(shortages) => Err(FulfillmentAppError::Short(shortages)),
        }
    })
    .await;
    // What the units left behind goes to orders waiting for it there first.
    let (order, freed) = moved?;
    crate::app::inventory::fill_freed(store, locations, &freed, now).await;
    Ok(order)
}

/// Whether a carrier event changed the shipment or repeated one already applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CarrierResult {
    Applied(Box<Order>),
    Duplicate,
    /// Older than the latest event applied: acknowledged, nothing changed.
    Superseded,
}

/// How far ahead of this system's clock a carrier's event time may be (clocks differ a little);
/// beyond it the event is refused rather than allowed to outrank every real one.
pub const CARRIER_CLOCK_SKEW_SECONDS: i64 = 300;

/// Applies a carrier event once.
pub async fn carrier_event<O: OrderStore>(
    orders: &O,
    event: &CarrierEvent,
    now: DateTime<Utc>,
) -> Result<CarrierResult, FulfillmentAppError> {
    if event.occurred_at > now + chrono::Duration::seconds(CARRIER_CLOCK_SKEW_SECONDS) {
        return Err(ValidationErrors::one(
            "occurredAt",
            format!("is in the future (more than {CARRIER_CLOCK_SKEW_SECONDS} s ahead of this system's clock)"),
        )
        .into());
    }
    until_written(|| async move {
        let order = orders
            .get(event.shipment.order_id())
            .await?
            .ok_or(FulfillmentAppError::NotFound)?;
        // The parcel is found by its tracking number, which is what a carrier knows of it.
        let number = order
            .shipment_tracked_as(event.shipment.number(), &event.tracking_number)
            .map(|s| s.number)
            .ok_or(FulfillmentAppError::NotFound)?;
        let update = order.carrier_event(
            number,
            &event.event_id,
            event.kind,
            event.detail.clone(),
            event.occurred_at,
            now,
        )?;
        match update {
            CarrierUpdate::Duplicate => Ok(Attempt::Done(CarrierResult::Duplicate)),
            CarrierUpdate::Superseded => Ok(Attempt::Done(CarrierResult::Superseded)),
            CarrierUpdate::Applied(next) => {
                let written = orders.save(&next, order.version).await;
                Attempt::of_write(written, CarrierResult::Applied(next))
            }
        }
    })
    .await
}

impl Contended for FulfillmentAppError {
    fn contended() -> Self {
        Self::Contended
    }
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

    fn first(id: &OrderId) -> ShipmentId {
        ShipmentId::new(id.clone(), 1)
    }

    /// The conditions of a step by someone who saw `order`'s first shipment.
    fn seen(order: &Order) -> StepConditions {
        StepConditions {
            if_match: Some(order.shipment(1).unwrap().version()),
            location: Some("BER-1".into()),
        }
    }

    async fn reserved_store() -> (InMemoryStore, OrderId) {
        let store = InMemoryStore::with_products([product("A", 100, 5)]);
        let order = placed(json!([{"sku": "A", "quantity": 2}]), &store.catalog())
            .authorized_for_test(Utc::now());
        crate::app::reservation::insert_reserved(&store, &order).await;
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
            &first(&id),
            WarehouseAction::Pick,
            StepConditions::default(),
            Utc::now(),
        )
        .await
        .unwrap();
        let pack = WarehouseAction::pack(
            &json!({"weightGrams": 800, "lengthCm": 30, "widthCm": 20, "heightCm": 10}),
        )
        .unwrap();
        let packed = warehouse_step(
            &store,
            &policy,
            &warehouse(),
            &first(&id),
            pack,
            seen(&picked),
            Utc::now(),
        )
        .await
        .unwrap();
        let ship = WarehouseAction::ship(&json!({"carrier": "DHL", "trackingNumber": "JJD1", "trackingUrl": "https://t.example/JJD1"})).unwrap();
        let stale = warehouse_step(
            &store,
            &policy,
            &warehouse(),
            &first(&id),
            ship.clone(),
            seen(&picked),
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
            &first(&id),
            ship,
            seen(&packed),
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
        let pack = WarehouseAction::pack(
            &json!({"weightGrams": 800, "lengthCm": 30, "widthCm": 20, "heightCm": 10}),
        )
        .unwrap();
        let result = warehouse_step(
            &store,
            &policy,
            &warehouse(),
            &first(&id),
            pack,
            StepConditions::default(),
            Utc::now(),
        )
        .await;
        assert!(matches!(
            result,
            Err(FulfillmentAppError::PreconditionRequired)
        ));
    }

    #[test]
    fn bad_bodies_name_their_fields() {
        let errors = WarehouseAction::ship(
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

    #[tokio::test]
    async fn a_moved_shipment_writes_both_locations_in_its_skus_history_exactly() {
        let (store, id) = reserved_store().await;
        let policy = ShippingPolicy::default_policy();
        start_fulfillment(&store, &policy, &id, Utc::now())
            .await
            .unwrap();
        // Amsterdam holds 4 of A as well.
        let mut with_amsterdam = store.catalog()[0].clone();
        with_amsterdam
            .stock
            .set("AMS-1", crate::stock::StockLevel::new(4).unwrap());
        let read = with_amsterdam.version;
        with_amsterdam.version += 1;
        let sku = with_amsterdam.sku.clone();
        store
            .save_product(&with_amsterdam, Some(read), None)
            .await
            .unwrap();
        // A reservation of one more Amsterdam unit lands between the move's read and its
        // write: the move reads again, and records the counters it really wrote.
        store.interleave_after_next_products_read(|products| {
            let a = products.values_mut().next().unwrap();
            let level = a
                .stock
                .at("AMS-1")
                .reserve(crate::quantity::Quantity::new(1).unwrap());
            a.stock.set("AMS-1", level.unwrap());
            a.version += 1;
        });
        let admin = Caller {
            customer_id: CustomerId::parse("staff-1").unwrap(),
            scopes: vec!["oms:admin".into()],
        };
        let order = store.stored(id.as_str());
        let request = MoveShipment {
            to: "AMS-1".into(),
            lines: None,
        };
        let version = order.shipment(1).unwrap().version();
        let locations = Locations::default_locations();
        let at = Utc::now();
        move_shipment(
            &store,
            &locations,
            &admin,
            &first(&id),
            &request,
            Some(version),
            at,
        )
        .await
        .unwrap();
        let history = store.all_adjustments(&sku);
        let moved: Vec<_> = history
            .iter()
            .filter(|a| {
                a.reason != AdjustmentReason::Receipt && a.reason != AdjustmentReason::Count
            })
            .map(|a| {
                (
                    a.reason,
                    a.location.as_deref().unwrap(),
                    (a.before.available(), a.before.reserved()),
                    (a.after.available(), a.after.reserved()),
                )
            })
            .collect();
        assert_eq!(
            moved,
            [
                (AdjustmentReason::ShipmentMoveOut, "BER-1", (3, 2), (5, 0)),
                (AdjustmentReason::ShipmentMoveIn, "AMS-1", (3, 1), (1, 3)),
            ],
            "Amsterdam's figures include the reservation that came first"
        );
        assert!(
            history
                .iter()
                .filter(|a| a.reason == AdjustmentReason::ShipmentMoveIn)
                .all(|a| a.actor == "staff-1"
                    && a.note.as_deref().unwrap().contains("moved to AMS-1"))
        );
        let product = &store.catalog()[0];
        assert_eq!(
            (
                product.stock.at("AMS-1").reserved(),
                product.stock.at("BER-1").reserved()
            ),
            (3, 0)
        );
    }
}

//! Reserving an order's stock: the consumer of `oms.order.placed`.
//!
//! Where each unit comes from is the routing planner's answer ([`crate::routing`]) from fresh
//! counts at every location. The plan is written in one atomic write: every line's units at
//! every planned location move from `available` to `reserved`, each on condition that enough is
//! available there, and the order moves `PENDING → RESERVED` on its version. A location that ran
//! short between the read and the write fails its condition and nothing moves: the reservation
//! reads and plans again (a few times, then through the queue's redelivery), so an order is
//! never rejected while the stock it needs exists somewhere. If the locations together hold too
//! little, the order is rejected with the short SKUs — unless their selling policy lets the
//! rest wait for stock ([`crate::backorder`]): then the units there are are reserved as planned
//! and the rest backordered at the default location in the same write, on condition that the
//! SKU's limit leaves room, each promised the date of the purchase order that brings it. A
//! repeated message finds the order no longer `PENDING` and changes nothing.

use chrono::{DateTime, Utc};

use crate::app::retry::{until_written, Attempt, Contended};
use crate::ids::{OrderId, Sku};
use crate::location::Locations;
use crate::order::{Backordered, Order, OrderStatus, Shortage};
use crate::ports::{InventoryStore, OrderStore, OrderTransactions, ReserveOutcome, StoreError};
use crate::routing::{Demand, Plan, PlanError};
use crate::shipping::ShippingPolicy;

/// What a reservation plans with: where stock is kept, and what parcels cost from there.
#[derive(Debug, Clone, Copy)]
pub struct Routing<'a> {
    pub locations: &'a Locations,
    pub shipping: &'a ShippingPolicy,
}

impl Routing<'static> {
    /// Planning over the demo's locations and the default shipping policy.
    #[cfg(any(test, feature = "fixtures"))]
    pub fn demo() -> Self {
        static LOCATIONS: std::sync::OnceLock<Locations> = std::sync::OnceLock::new();
        static SHIPPING: std::sync::OnceLock<ShippingPolicy> = std::sync::OnceLock::new();
        Routing {
            locations: LOCATIONS.get_or_init(Locations::default_locations),
            shipping: SHIPPING.get_or_init(ShippingPolicy::default_policy),
        }
    }
}

/// Stores `order` (placed) and reserves it over the demo's locations: the set-up of the
/// application tests that start from a reserved order.
#[cfg(test)]
pub(crate) async fn insert_reserved(store: &crate::memory::InMemoryStore, order: &Order) {
    store.insert_order(order.clone());
    let at = order.created_at;
    let reserved = reserve_order(store, store, Routing::demo(), &order.id, at).await;
    assert_eq!(
        reserved.expect("a reservation"),
        ReservationResult::Reserved
    );
}

/// What became of the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReservationResult {
    Reserved,
    Rejected(Vec<Shortage>),
    /// The order had already left `PENDING` (a duplicate message, or a cancellation): no-op.
    AlreadyDecided(OrderStatus),
}

#[derive(Debug, thiserror::Error)]
pub enum ReservationError {
    #[error("order {0} does not exist")]
    OrderNotFound(OrderId),
    #[error("the order or its stock kept changing under the reservation")]
    Contended,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReservationError {
    /// Whether the message should be tried again (rather than sent towards the dead-letter queue
    /// at once, which the queue's redrive policy does after its last attempt either way).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Contended => true,
            Self::OrderNotFound(_) => false,
        }
    }
}

/// Reserves the order's stock where the routing plan says, or rejects the order if the
/// locations together hold too little.
pub async fn reserve_order<S: OrderStore + InventoryStore, R: OrderTransactions>(
    store: &S,
    reservations: &R,
    routing: Routing<'_>,
    id: &OrderId,
    now: DateTime<Utc>,
) -> Result<ReservationResult, ReservationError> {
    until_written(|| async move {
        let order = store
            .get(id)
            .await?
            .ok_or_else(|| ReservationError::OrderNotFound(id.clone()))?;
        if order.status != OrderStatus::Pending {
            return Ok(Attempt::Done(ReservationResult::AlreadyDecided(
                order.status,
            )));
        }
        let (plan, backorders, releases) = match plan_for(store, routing, &order, now).await? {
            Ok(planned) => planned,
            Err(shortages) => {
                let rejected = order
                    .reject(shortages.clone(), now)
                    .expect("a pending order can be rejected");
                let written = store.save(&rejected, order.version).await;
                return Attempt::of_write(written, ReservationResult::Rejected(shortages));
            }
        };
        let reserved = order
            .reserve_for_release(&plan, &backorders, &releases, now)
            .expect("a pending order takes a plan of its own units");
        match reservations.reserve(&reserved).await? {
            ReserveOutcome::Reserved => Ok(Attempt::Done(ReservationResult::Reserved)),
            // The order changed, or a planned location ran short since the counts were read:
            // nothing moved; read and plan again.
            ReserveOutcome::OrderChanged | ReserveOutcome::Short(_) => Ok(Attempt::LostRace),
        }
    })
    .await
}

/// What a reservation plans: where the units come from, those that wait for stock, and the
/// SKUs pre-ordered ahead of their release date (the order leaves on the latest).
type Planned = (Plan, Vec<Backordered>, Vec<(Sku, chrono::NaiveDate)>);

/// The plan for `order` from the counts now, with the units its SKUs' policies let wait for
/// stock and its SKUs not yet released; or the SKUs that cannot be met, the locations together
/// and the policies allowing.
async fn plan_for<I: InventoryStore>(
    inventory: &I,
    routing: Routing<'_>,
    order: &Order,
    now: DateTime<Utc>,
) -> Result<Result<Planned, Vec<Shortage>>, StoreError> {
    let skus: Vec<_> = order.lines.iter().map(|l| l.sku.clone()).collect();
    let products = inventory.products(&skus).await?;
    // A product not yet released ships on its release date, whatever arrives before.
    let releases: Vec<(Sku, chrono::NaiveDate)> = products
        .iter()
        .filter_map(|p| {
            let on = p
                .backorders
                .policy
                .release_after(crate::replenishment::day_of(now))?;
            Some((p.sku.clone(), on))
        })
        .collect();
    let available = crate::location::availability(&products);
    let mut demand: Vec<Demand> = order
        .lines
        .iter()
        .map(|l| Demand {
            sku: l.sku.clone(),
            quantity: l.quantity.get(),
            unit_weight_grams: l.unit_weight_grams,
        })
        .collect();
    let plan = |demand: &[Demand]| {
        routing.locations.plan(
            routing.shipping,
            order.shipping.method,
            order.shipping.address.country(),
            order.shipping.pickup_location.as_deref(),
            demand,
            &available,
        )
    };
    let planned = plan(&demand);
    Ok(match planned {
        Ok(plan) => Ok((plan, Vec::new(), releases)),
        Err(PlanError::Short(short)) => {
            // The rest of each short SKU waits for stock where its policy lets it (a pickup is
            // collected from what its store holds: it waits for nothing).
            let today = crate::replenishment::day_of(now);
            let home = routing.locations.default_location().id.clone();
            let pickup = order.shipping.method == crate::shipping::ShippingMethod::InStorePickup;
            let mut backorders = Vec::new();
            let mut refused = Vec::new();
            for s in &short {
                let missing = s.requested - s.available.min(s.requested);
                let product = products.iter().find(|p| p.sku == s.sku);
                match product {
                    Some(p) if !pickup && p.backorders.room(today) >= missing => {
                        let position = p.backorders.backordered + missing;
                        let open: Vec<_> = inventory
                            .purchase_orders(&s.sku, 100, None)
                            .await?
                            .items
                            .into_iter()
                            // Deliveries where the units wait, or where they can be sent
                            // from: either serves the queue (`fill_waiting`).
                            .filter(|po| {
                                po.status == crate::purchase::PurchaseStatus::Open
                                    && (po.location == home
                                        || routing.locations.sends(
                                            &po.location,
                                            order.shipping.method,
                                            order.shipping.address.country(),
                                        ))
                            })
                            .map(|po| (po.expected_on, po.quantity.saturating_sub(po.received)))
                            .collect();
                        backorders.push(Backordered {
                            sku: s.sku.clone(),
                            units: missing,
                            location: home.clone(),
                            promised_on: crate::backorder::promised_on(position, open, today),
                        });
                    }
                    _ => refused.push(Shortage {
                        sku: s.sku.clone(),
                        requested: s.requested,
                        available: s.available,
                    }),
                }
            }
            if !refused.is_empty() {
                return Ok(Err(refused));
            }
            for d in demand.iter_mut() {
                if let Some(b) = backorders.iter().find(|b| b.sku == d.sku) {
                    d.quantity -= b.units;
                }
            }
            demand.retain(|d| d.quantity > 0);
            if demand.is_empty() {
                return Ok(Ok((
                    Plan {
                        shipments: Vec::new(),
                    },
                    backorders,
                    releases,
                )));
            }
            match plan(&demand) {
                Ok(plan) => Ok((plan, backorders, releases)),
                // The rest cannot be planned either (counts read between): reject naming them.
                Err(PlanError::Short(short)) => Err(short
                    .into_iter()
                    .map(|s| Shortage {
                        sku: s.sku,
                        requested: s.requested,
                        available: s.available,
                    })
                    .collect()),
                Err(_) => Err(order
                    .quantities()
                    .map(|(sku, quantity)| Shortage {
                        sku: sku.clone(),
                        requested: quantity.get(),
                        available: 0,
                    })
                    .collect()),
            }
        }
        // No location serves the order's destination or way of delivery: none of its units
        // can be had.
        Err(PlanError::NoLocation | PlanError::NotAPickupLocation(_)) => Err(order
            .quantities()
            .map(|(sku, quantity)| Shortage {
                sku: sku.clone(),
                requested: quantity.get(),
                available: 0,
            })
            .collect()),
    })
}

impl Contended for ReservationError {
    fn contended() -> Self {
        Self::Contended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::InMemoryStore;
    use crate::order::tests::{placed, product};
    use crate::ports::InventoryStore;
    use serde_json::json;

    #[tokio::test]
    async fn reserves_all_lines_or_none() {
        let store = InMemoryStore::with_products([product("A", 100, 5), product("B", 100, 1)]);
        let ok = placed(
            json!([{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}]),
            &store.catalog(),
        );
        let short = placed(
            json!([{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}]),
            &store.catalog(),
        );
        store.insert_order(ok.clone());
        store.insert_order(short.clone());

        assert_eq!(
            reserve_order(&store, &store, Routing::demo(), &ok.id, Utc::now())
                .await
                .unwrap(),
            ReservationResult::Reserved
        );
        let result = reserve_order(&store, &store, Routing::demo(), &short.id, Utc::now())
            .await
            .unwrap();
        let ReservationResult::Rejected(shortages) = result else {
            panic!("expected a rejection")
        };
        assert_eq!(
            (shortages[0].sku.as_str(), shortages[0].available),
            ("B", 0)
        );

        let a = store.product(&"A".parse_sku()).await.unwrap().unwrap();
        assert_eq!(
            (a.stock.available(), a.stock.reserved()),
            (3, 2),
            "the rejected order moved nothing"
        );
        assert_eq!(
            store.get(&short.id).await.unwrap().unwrap().status,
            OrderStatus::Rejected
        );
    }

    /// Product `sku` with `at[location]` units free at each location, none elsewhere.
    fn spread(sku: &str, at: &[(&str, u32)]) -> crate::stock::Product {
        let mut p = product(sku, 100, 0);
        for (location, n) in at {
            p.stock
                .set(location, crate::stock::StockLevel::new(*n).unwrap());
        }
        p
    }

    /// Where the stored order's units are reserved: (SKU, location, units).
    async fn allocations(store: &InMemoryStore, id: &OrderId) -> Vec<(String, String, u32)> {
        let order = store.get(id).await.unwrap().unwrap();
        order
            .lines
            .iter()
            .flat_map(|l| {
                l.allocations
                    .iter()
                    .map(|at| (l.sku.to_string(), at.location.clone(), at.quantity.get()))
            })
            .collect()
    }

    async fn counters(store: &InMemoryStore, sku: &str, location: &str) -> (u32, u32) {
        let p = store.product(&sku.parse_sku()).await.unwrap().unwrap();
        let level = p.stock.at(location);
        (level.available(), level.reserved())
    }

    fn owned(rows: &[(&str, &str, u32)]) -> Vec<(String, String, u32)> {
        rows.iter()
            .map(|(s, l, n)| (s.to_string(), l.to_string(), *n))
            .collect()
    }

    #[tokio::test]
    async fn an_order_one_far_location_holds_whole_ships_from_there_alone() {
        let store = InMemoryStore::with_products([spread("A", &[("BER-1", 1), ("AMS-1", 5)])]);
        let order = placed(json!([{"sku": "A", "quantity": 3}]), &store.catalog());
        store.insert_order(order.clone());
        let result = reserve_order(&store, &store, Routing::demo(), &order.id, Utc::now()).await;
        assert_eq!(result.unwrap(), ReservationResult::Reserved);
        assert_eq!(
            allocations(&store, &order.id).await,
            owned(&[("A", "AMS-1", 3)])
        );
        assert_eq!(counters(&store, "A", "AMS-1").await, (2, 3));
        assert_eq!(counters(&store, "A", "BER-1").await, (1, 0), "untouched");
    }

    #[tokio::test]
    async fn an_order_no_one_location_holds_is_split_over_the_fewest() {
        let store = InMemoryStore::with_products([
            spread("A", &[("BER-1", 2)]),
            spread("B", &[("AMS-1", 1), ("BER-STORE-1", 9)]),
        ]);
        let order = placed(
            json!([{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}]),
            &store.catalog(),
        );
        store.insert_order(order.clone());
        let result = reserve_order(&store, &store, Routing::demo(), &order.id, Utc::now()).await;
        assert_eq!(result.unwrap(), ReservationResult::Reserved);
        assert_eq!(
            allocations(&store, &order.id).await,
            owned(&[("A", "BER-1", 2), ("B", "AMS-1", 1)]),
            "the store does not ship, so B comes from the other warehouse"
        );
        assert_eq!(counters(&store, "B", "BER-STORE-1").await, (9, 0));
        let stored = store.get(&order.id).await.unwrap().unwrap();
        let note = stored.timeline.last().unwrap().note.clone().unwrap();
        assert!(
            note.starts_with("ships in 2 parcels, from BER-1, AMS-1"),
            "{note}"
        );
    }

    #[tokio::test]
    async fn a_location_that_runs_short_before_the_write_is_planned_around() {
        let store = InMemoryStore::with_products([spread("A", &[("BER-1", 3), ("AMS-1", 3)])]);
        let order = placed(json!([{"sku": "A", "quantity": 2}]), &store.catalog());
        store.insert_order(order.clone());
        // Another buyer takes two of Berlin's three between the plan (Berlin: nearest) and
        // its write.
        store.interleave_after_next_products_read(|products| {
            let a = products.get_mut(&"A".parse_sku()).unwrap();
            let level = a
                .stock
                .at("BER-1")
                .reserve(crate::quantity::Quantity::new(2).unwrap());
            a.stock.set("BER-1", level.unwrap());
        });
        let result = reserve_order(&store, &store, Routing::demo(), &order.id, Utc::now()).await;
        assert_eq!(result.unwrap(), ReservationResult::Reserved);
        assert_eq!(
            allocations(&store, &order.id).await,
            owned(&[("A", "AMS-1", 2)]),
            "planned again from fresh counts: Amsterdam holds the whole order"
        );
        assert_eq!(
            counters(&store, "A", "BER-1").await,
            (1, 2),
            "the other buyer's"
        );
        assert_eq!(counters(&store, "A", "AMS-1").await, (1, 2));
    }

    #[tokio::test]
    async fn a_pickup_order_is_reserved_at_its_store_only() {
        let store =
            InMemoryStore::with_products([spread("A", &[("BER-1", 9), ("BER-STORE-1", 2)])]);
        let pickup = |quantity: u32| {
            let mut order = placed(
                json!([{"sku": "A", "quantity": quantity}]),
                &store.catalog(),
            );
            order.shipping.method = crate::shipping::ShippingMethod::InStorePickup;
            order.shipping.pickup_location = Some("BER-STORE-1".into());
            order
        };
        let (fits, too_many) = (pickup(2), pickup(3));
        store.insert_order(fits.clone());
        store.insert_order(too_many.clone());
        let result = reserve_order(&store, &store, Routing::demo(), &fits.id, Utc::now()).await;
        assert_eq!(result.unwrap(), ReservationResult::Reserved);
        assert_eq!(
            allocations(&store, &fits.id).await,
            owned(&[("A", "BER-STORE-1", 2)])
        );
        // Berlin's warehouse has plenty, but the customer collects at the store.
        let result = reserve_order(&store, &store, Routing::demo(), &too_many.id, Utc::now()).await;
        assert!(matches!(result.unwrap(), ReservationResult::Rejected(_)));
        assert_eq!(counters(&store, "A", "BER-1").await, (9, 0));
    }

    #[tokio::test]
    async fn an_order_the_locations_together_cannot_serve_is_rejected_with_their_sum() {
        let store = InMemoryStore::with_products([spread("A", &[("BER-1", 1), ("AMS-1", 1)])]);
        let order = placed(json!([{"sku": "A", "quantity": 3}]), &store.catalog());
        store.insert_order(order.clone());
        let result = reserve_order(&store, &store, Routing::demo(), &order.id, Utc::now()).await;
        let ReservationResult::Rejected(short) = result.unwrap() else {
            panic!("expected a rejection")
        };
        assert_eq!((short[0].requested, short[0].available), (3, 2));
        assert_eq!(
            counters(&store, "A", "BER-1").await,
            (1, 0),
            "nothing moved"
        );
    }

    #[tokio::test]
    async fn a_duplicate_message_changes_nothing() {
        let store = InMemoryStore::with_products([product("A", 100, 5)]);
        let order = placed(json!([{"sku": "A", "quantity": 2}]), &store.catalog());
        store.insert_order(order.clone());
        reserve_order(&store, &store, Routing::demo(), &order.id, Utc::now())
            .await
            .unwrap();
        let again = reserve_order(&store, &store, Routing::demo(), &order.id, Utc::now())
            .await
            .unwrap();
        assert_eq!(
            again,
            ReservationResult::AlreadyDecided(OrderStatus::Reserved)
        );
        let a = store.product(&"A".parse_sku()).await.unwrap().unwrap();
        assert_eq!(a.stock.reserved(), 2);
    }

    /// Orders placed over 35 days through the reservation itself: the health figures equal
    /// their hand calculation, the catalog sorts by them, and a write of the whole product
    /// keeps only the window's days.
    #[tokio::test]
    async fn thirty_days_of_reservations_are_the_demand_health_reads() {
        use crate::app::inventory::{adjust_stock, ProductView};
        use crate::app::staff::{catalog, CatalogOrder, HealthReading};
        use crate::replenishment::{HealthPolicy, Replenishment};
        let today = DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut a = spread("A", &[("BER-1", 120)]);
        a.replenishment = Replenishment {
            lead_time_days: 7,
            safety_stock: 5,
        };
        let store = InMemoryStore::with_products([
            a,
            spread("B", &[("AMS-1", 14)]),
            spread("C", &[("BER-1", 50)]),
        ]);
        let order_of = |sku: &str, quantity: u32, days_ago: i64| {
            let store = &store;
            let order = placed(
                json!([{"sku": sku, "quantity": quantity}]),
                &store.catalog(),
            );
            store.insert_order(order.clone());
            async move {
                let at = today - chrono::Duration::days(days_ago);
                let result = reserve_order(store, store, Routing::demo(), &order.id, at).await;
                assert_eq!(result.unwrap(), ReservationResult::Reserved);
            }
        };
        // A: one order a day for 35 days, of (days ago mod 4) + 1 units.
        for days_ago in 0..35 {
            order_of("A", (days_ago % 4 + 1) as u32, days_ago).await;
        }
        // B: three units on three days inside the window, and once 31 days ago.
        for days_ago in [1, 5, 20, 31] {
            order_of("B", 3, days_ago).await;
        }
        let policy = HealthPolicy::default();
        let view = |sku: &str| {
            let p = store
                .catalog()
                .into_iter()
                .find(|p| p.sku.as_str() == sku)
                .unwrap();
            ProductView::for_staff(&p, today, policy)
        };
        let health = |sku: &str| view(sku).health.unwrap();
        // By hand: A's last 30 days (0..=29 days ago) are 7 × (1+2+3+4) + 1 + 2 = 73 units of
        // the 86 reserved; 120 − 86 = 34 available lasts ⌊34 × 30 / 73⌋ = 13 days; the
        // reorder point is ⌈73 × 7 / 30⌉ + 5 = 18 + 5 = 23, below the 34 there.
        let a = view("A");
        let ah = health("A");
        let public = ProductView::public(
            &store
                .catalog()
                .into_iter()
                .find(|p| p.sku.as_str() == "A")
                .unwrap(),
        );
        assert!(
            public.health.is_none() && public.replenishment.is_none(),
            "a storefront sees no demand"
        );
        assert_eq!(a.replenishment.unwrap().lead_time_days, 7);
        assert_eq!(a.available, 34);
        assert_eq!(ah.demand_30_days, 73);
        assert_eq!(ah.days_of_cover, Some(13));
        assert_eq!(ah.reorder_point, 23);
        assert!(!ah.reorder && !ah.overstock);
        assert_eq!(ah.suggested_reorder, 0);
        // B: 9 units in the window (the 3 of 31 days ago outside), 14 − 12 = 2 available:
        // ⌊2 × 30 / 9⌋ = 6 days; the reorder point ⌈9 × 14 / 30⌉ = 5 (the default 14 days'
        // lead time) is above 2, so reorder up to 5 + 9 (30 days of demand): 12 units.
        let b = view("B");
        let bh = health("B");
        assert_eq!(bh.demand_30_days, 9);
        assert_eq!(bh.days_of_cover, Some(6));
        assert_eq!(bh.reorder_point, 5);
        assert!(bh.reorder);
        assert_eq!(bh.suggested_reorder, 12);
        let at = |view: &ProductView, location: &str| {
            view.locations
                .iter()
                .find(|l| l.location == location)
                .unwrap()
                .health
                .unwrap()
        };
        assert_eq!(at(&b, "AMS-1"), bh, "all of B's demand is at AMS-1");
        assert_eq!(at(&a, "BER-1").demand_30_days, 73);
        // C sold nothing and holds 50: dead stock.
        let ch = health("C");
        assert_eq!((ch.demand_30_days, ch.days_of_cover), (0, None));
        assert!(ch.overstock);
        // The console's and the API's orders.
        let staff = crate::app::Caller {
            customer_id: crate::ids::CustomerId::parse("staff-1").unwrap(),
            scopes: vec![crate::app::caller::SCOPE_ADMIN.into()],
        };
        let reading = |location: Option<&str>| HealthReading {
            today: crate::replenishment::day_of(today),
            policy,
            location: location.map(str::to_owned),
        };
        for (order, expected) in [
            (CatalogOrder::ReorderFirst(reading(None)), ["B", "A", "C"]),
            (
                CatalogOrder::LeastCoverFirst(reading(None)),
                ["B", "A", "C"],
            ),
            (CatalogOrder::OverstockFirst(reading(None)), ["C", "A", "B"]),
            // At Amsterdam only B is kept and sold; A and C, not kept there, have nothing to
            // reorder and no cover there (the most cover first: theirs is unbounded).
            (
                CatalogOrder::ReorderFirst(reading(Some("AMS-1"))),
                ["B", "A", "C"],
            ),
            (
                CatalogOrder::OverstockFirst(reading(Some("AMS-1"))),
                ["A", "C", "B"],
            ),
            // At Berlin, C's 50 unsold units are overstock; B's empty counters there sold
            // nothing (unbounded cover, before A's 13 days).
            (
                CatalogOrder::OverstockFirst(reading(Some("BER-1"))),
                ["C", "B", "A"],
            ),
            (
                CatalogOrder::LeastCoverFirst(reading(Some("BER-1"))),
                ["A", "B", "C"],
            ),
        ] {
            let page = catalog(&store, &staff, order.clone(), None, 10, None)
                .await
                .unwrap();
            let skus: Vec<_> = page.items.iter().map(|p| p.sku.to_string()).collect();
            assert_eq!(skus, expected, "{order:?}");
        }
        // A receipt writes A whole: the days before the window are gone, the window's kept.
        let here = crate::location::Locations::default_locations();
        let receipt = json!({"reason": "RECEIPT", "delta": 10});
        let written = adjust_stock(
            &store,
            &here,
            &staff,
            &"A".parse_sku(),
            &receipt,
            None,
            today,
        )
        .await
        .unwrap();
        assert_eq!(written.demand.entries().count(), 30);
        assert_eq!(
            written.demand.total(crate::replenishment::day_of(today)),
            73
        );
    }

    trait ParseSku {
        fn parse_sku(&self) -> crate::ids::Sku;
    }
    impl ParseSku for str {
        fn parse_sku(&self) -> crate::ids::Sku {
            crate::ids::Sku::parse(self).unwrap()
        }
    }
}

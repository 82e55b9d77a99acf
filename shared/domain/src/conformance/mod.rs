//! One conformance suite for every implementation of the store ports: the conditions
//! [`crate::ports`] promises, as checks that run against [`crate::memory::InMemoryStore`] (this
//! crate's tests) and against the DynamoDB adapter on the emulator (`tests/tests/system/adapters.rs`), so
//! that "the in-memory store honours the same conditions" is tested rather than stated.
//!
//! Each check is an async function generic over the ports it exercises; it panics, naming the
//! promise, when the store breaks one. Every check makes its own customers, SKUs, warehouse and
//! idempotency keys from `prefix` (letters, digits and `-`), so checks can share one store or
//! table with each other and with other tests. Orders are made by the domain's own operations
//! (placing, reserving, the warehouse's and the carrier's steps, cancelling, returns), never by
//! hand.
//!
//! The shared helpers are here; the checks are in a file per port ([`orders`], [`inventory`],
//! [`transactions`], [`notifications`], [`locations`]), re-exported so callers name them from here. Compiled
//! for this crate's tests and under the `conformance` feature.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::ids::{CustomerId, IdempotencyKey, OrderId, Sku};
use crate::money::{Currency, Money};
use crate::notifications::{Channel, Preferences};
use crate::order::fulfillment::{CarrierEventKind, CarrierUpdate, FulfillmentStatus, Tracking};
use crate::order::returns::policy::ReturnPolicy;
use crate::order::OrderChange;
use crate::order::{Order, OrderStatus, Shortage};
use crate::ports::{
    CommitOutcome, CreateOutcome, IdempotencyRecord, InventoryStore, NotificationCursor,
    NotificationStore, OrderStore, OrderTransactions, Page, ReserveOutcome, ShipOutcome,
    StoreError, NOTIFICATION_CLAIM_SECONDS,
};
use crate::request::returns::ReturnRequest;
use crate::request::OrderRequest;
use crate::shipping::ShippingPolicy;
use crate::stock::{AdjustmentReason, Product, Stock, StockAdjustment, StockLevel, StockMovement};

/// How a check reads the stock adjustments a store recorded (no port reads them back).
pub trait AdjustmentLog: Sync {
    /// The adjustments recorded for `sku`, in any order.
    fn recorded_adjustments(&self, sku: &Sku) -> impl Future<Output = Vec<StockAdjustment>> + Send;
}

impl AdjustmentLog for crate::memory::InMemoryStore {
    async fn recorded_adjustments(&self, sku: &Sku) -> Vec<StockAdjustment> {
        self.all_adjustments(sku)
    }
}

// ------------------------------------------------------------------------------------ helpers

fn check_prefix(prefix: &str) {
    assert!(
        !prefix.is_empty()
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-'),
        "a conformance prefix is letters, digits and '-': {prefix:?}"
    );
}

/// Now, to the millisecond: the precision every store keeps timestamps at.
fn base_time() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now is a valid time")
}

fn seconds(n: i64) -> Duration {
    Duration::seconds(n)
}

fn sku(prefix: &str, name: &str) -> Sku {
    Sku::parse(format!("{prefix}-{name}").to_uppercase()).expect("a conformance SKU")
}

fn customer(prefix: &str, name: &str) -> CustomerId {
    CustomerId::parse(format!("{prefix}-{name}")).expect("a conformance customer")
}

fn key(prefix: &str, name: &str) -> IdempotencyKey {
    IdempotencyKey::parse(format!("{prefix}-{name}")).expect("a conformance key")
}

/// A catalog product at 25.00 EUR, 300 g, with `on_hand` units free, at version 1.
fn product(sku: &Sku, on_hand: u32, at: DateTime<Utc>) -> Product {
    Product {
        sku: sku.clone(),
        name: format!("Conformance {sku}"),
        unit_price: Money::new(2500, Currency::parse("EUR").expect("EUR")).expect("a price"),
        weight_grams: 300,
        active: true,
        low_stock_threshold: 1,
        stock: Stock::at_one("BER-1", StockLevel::new(on_hand).expect("a stock level")),
        replenishment: Default::default(),
        demand: Default::default(),
        incoming: Default::default(),
        backorders: Default::default(),
        version: 1,
        updated_at: at,
    }
}

/// An order of `lines` for `customer`, placed at `at` from a catalog of those products.
fn place(customer: &CustomerId, lines: &[(&Product, u32)], at: DateTime<Utc>) -> Order {
    let body = json!({
        "lines": lines.iter().map(|(p, q)| json!({"sku": p.sku.as_str(), "quantity": q})).collect::<Vec<_>>(),
        "shippingMethod": "STANDARD",
        "shippingAddress": {"name": "Conformance Customer", "line1": "1 Test Street", "city": "Berlin", "postalCode": "10115", "country": "DE"},
        "contact": {"email": "conformance@example.com"}
    });
    let request = OrderRequest::parse(&body).expect("a valid conformance request");
    let catalog: Vec<Product> = lines.iter().map(|(p, _)| (*p).clone()).collect();
    Order::place(
        OrderId::generate(at),
        customer.clone(),
        &request,
        &catalog,
        &ShippingPolicy::default_policy(),
        at,
    )
    .expect("the conformance order is valid")
}

fn record(order: &Order, key: &IdempotencyKey) -> IdempotencyRecord {
    IdempotencyRecord {
        customer_id: order.customer_id.clone(),
        key: key.clone(),
        fingerprint: format!("fingerprint-{}", order.id),
        order_id: order.id.clone(),
        response: format!("{{\"orderId\":\"{}\"}}", order.id),
        created_at: order.created_at,
    }
}

/// Creates `order` under a key of its own, which must succeed.
async fn create<S: OrderStore>(store: &S, order: &Order) {
    let key = IdempotencyKey::parse(format!("key-{}", order.id)).expect("a key");
    assert_eq!(
        store.create(order, &record(order, &key)).await,
        Ok(CreateOutcome::Created),
        "creating order {} under a fresh key",
        order.id
    );
}

/// Saves `next` over `current`, which must succeed.
async fn save<S: OrderStore>(store: &S, current: &Order, next: Order) -> Order {
    assert_eq!(
        store.save(&next, current.version).await,
        Ok(()),
        "saving order {} at version {} over {}",
        next.id,
        next.version,
        current.version
    );
    next
}

async fn stored<S: OrderStore>(store: &S, id: &OrderId) -> Option<Order> {
    store.get(id).await.expect("reading an order")
}

async fn stored_product<S: InventoryStore>(store: &S, sku: &Sku) -> Option<Product> {
    store.product(sku).await.expect("reading a product")
}

fn in_fulfillment(order: &Order, warehouse: &str, at: DateTime<Utc>) -> Order {
    order
        .reserve_all_at(warehouse, at)
        .expect("a placed order can be reserved")
        .authorized_for_test(at)
        .start_fulfillment(warehouse, at)
        .expect("a reserved order goes to the warehouse")
}

fn picked(order: &Order, at: DateTime<Utc>) -> Order {
    order
        .pick(1, "conformance", at)
        .expect("an order awaiting pick can be picked")
}

fn packed(order: &Order, at: DateTime<Utc>) -> Order {
    let parcel = crate::fixtures::parcel();
    order
        .pack(1, parcel, "conformance", at)
        .expect("a picked order can be packed")
}

fn shipped(order: &Order, at: DateTime<Utc>) -> Order {
    let tracking = Tracking {
        carrier: "DHL".into(),
        tracking_number: format!("JJD-{}", order.id),
        tracking_url: format!("https://www.dhl.com/track?id={}", order.id),
    };
    order
        .ship(1, tracking, order.shipping.estimate, "conformance", at)
        .expect("a packed order ships")
}

fn delivered(order: &Order, at: DateTime<Utc>) -> Order {
    let shipped = shipped(&packed(&picked(order, at), at), at);
    match shipped
        .carrier_event(
            1,
            &format!("{}-delivered", order.id),
            CarrierEventKind::Delivered,
            None,
            at,
            at,
        )
        .expect("a shipped order can be delivered")
    {
        CarrierUpdate::Applied(order) => *order,
        CarrierUpdate::Duplicate | CarrierUpdate::Superseded => {
            unreachable!("a first carrier event")
        }
    }
}

/// `order` (delivered) with a return of one unit of its first line that waits for staff: the
/// default policy never approves reason `OTHER` by itself.
fn with_pending_return(order: &Order, at: DateTime<Utc>) -> Order {
    let next = with_another_pending_return(order, "return", at);
    assert_eq!(
        next.oldest_pending_return(),
        Some(at),
        "the return waits for staff"
    );
    next
}

/// `order` with one more return waiting for staff, asked under a key made of `key` and the
/// order's id.
fn with_another_pending_return(order: &Order, key: &str, at: DateTime<Utc>) -> Order {
    let request = ReturnRequest::parse(&json!({
        "lines": [{"sku": order.lines[0].sku.as_str(), "quantity": 1, "reason": "OTHER"}]
    }))
    .expect("a valid return request");
    order
        .request_return(
            &request,
            IdempotencyKey::parse(format!("{key}-{}", order.id)).expect("a key"),
            &[],
            &ReturnPolicy::default_policy(),
            at,
        )
        .expect("a delivered order can be returned")
        .order
}

fn ids(orders: &[Order]) -> Vec<OrderId> {
    orders.iter().map(|o| o.id.clone()).collect()
}

/// Every page of a listing, following cursors from the first page. A last page may be empty:
/// DynamoDB hands out a cursor when a page is exactly full, and the port promises only that the
/// pages together hold the listing.
async fn all_pages<F, Fut>(mut page: F) -> Vec<Vec<OrderId>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<Order>, StoreError>>,
{
    let mut pages = Vec::new();
    let mut cursor = None;
    for _ in 0..50 {
        let next = page(cursor.take()).await.expect("listing a page");
        let done = next.next_cursor.is_none();
        if !(done && next.items.is_empty() && !pages.is_empty()) {
            pages.push(ids(&next.items));
        }
        if done {
            return pages;
        }
        cursor = next.next_cursor;
    }
    panic!("a listing handed out cursors for 50 pages");
}

/// The ids of `pages` that are among `ours`, in listing order: a listing shared with other tests
/// (the pick list is per warehouse, the approval queue is global) holds theirs too.
fn ours(pages: &[Vec<OrderId>], ours: &[OrderId]) -> Vec<OrderId> {
    pages
        .iter()
        .flatten()
        .filter(|id| ours.contains(id))
        .cloned()
        .collect()
}

/// Runs two futures side by side on the current task, so two store calls are in flight at once.
async fn both<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut out_a, mut out_b) = (None, None);
    std::future::poll_fn(|cx| {
        if out_a.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                out_a = Some(v);
            }
        }
        if out_b.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                out_b = Some(v);
            }
        }
        if out_a.is_some() && out_b.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    (out_a.expect("a finished"), out_b.expect("b finished"))
}

const GARBAGE_CURSOR: &str = "not-a-cursor";

mod inventory;
mod locations;
mod notifications;
mod orders;
mod transactions;

pub use inventory::*;
pub use locations::*;
pub use notifications::*;
pub use orders::*;
pub use transactions::*;

#[cfg(test)]
mod in_memory {
    //! The suite against the in-memory store.

    use crate::memory::InMemoryStore;

    #[tokio::test]
    async fn order_store() {
        super::order_store(&InMemoryStore::default(), "mem").await;
    }

    #[tokio::test]
    async fn customer_listing() {
        super::customer_listing(&InMemoryStore::default(), "mem").await;
    }

    #[tokio::test]
    async fn pick_list() {
        super::pick_list(&InMemoryStore::default(), "mem").await;
    }

    #[tokio::test]
    async fn pick_list_cursor_outlives_its_order() {
        super::pick_list_cursor_outlives_its_order(&InMemoryStore::default(), "mem").await;
    }

    #[tokio::test]
    async fn cursors_belong_to_their_query() {
        super::cursors_belong_to_their_query(&InMemoryStore::default(), "mem").await;
    }

    #[tokio::test]
    async fn pending_returns() {
        super::pending_returns(&InMemoryStore::default(), "mem").await;
    }

    #[tokio::test]
    async fn sweep_listings() {
        super::sweep_listings(&InMemoryStore::default(), "mem").await;
    }

    #[tokio::test]
    async fn inventory_store() {
        let store = InMemoryStore::default();
        super::inventory_store(&store, &store, "mem").await;
    }

    #[tokio::test]
    async fn catalog_and_history() {
        super::catalog_and_history(&InMemoryStore::default(), "mem").await;
    }

    #[tokio::test]
    async fn reserve_all_or_nothing() {
        super::reserve_all_or_nothing(&InMemoryStore::default(), "mem").await;
    }

    #[tokio::test]
    async fn commit_conditions() {
        super::commit_conditions(&InMemoryStore::default(), "mem").await;
    }

    #[tokio::test]
    async fn commit_moves_stock() {
        super::commit_moves_stock(&InMemoryStore::default(), "mem").await;
    }

    #[tokio::test]
    async fn status_keyset() {
        super::status_keyset(&InMemoryStore::default(), "mem").await;
    }

    #[tokio::test]
    async fn order_search() {
        super::order_search(&InMemoryStore::default(), "mem").await;
    }

    #[tokio::test]
    async fn status_counts() {
        super::status_counts(&InMemoryStore::default(), "mem").await;
    }

    #[tokio::test]
    async fn adjustment_keys() {
        super::adjustment_keys(&InMemoryStore::default(), "mem").await;
    }

    #[tokio::test]
    async fn purchase_orders() {
        super::purchase_orders(&InMemoryStore::default(), "mem").await;
    }

    #[tokio::test]
    async fn location_store() {
        super::location_store(&InMemoryStore::default()).await;
    }

    #[tokio::test]
    async fn commit_records_a_move_in_the_stock_history() {
        let store = InMemoryStore::default();
        super::commit_records_a_move_in_the_stock_history(&store, &store, "mem").await;
    }

    #[tokio::test]
    async fn transfers_between_locations() {
        super::transfers_between_locations(&InMemoryStore::default(), "mem").await;
    }

    #[tokio::test]
    async fn stock_per_location() {
        super::stock_per_location(&InMemoryStore::default(), "mem").await;
    }

    #[tokio::test]
    async fn backorders() {
        super::backorders(&InMemoryStore::default(), "mem").await;
    }

    #[tokio::test]
    async fn last_unit_goes_once() {
        super::last_unit_goes_once(&InMemoryStore::default(), "mem").await;
    }

    #[tokio::test]
    async fn notification_store() {
        super::notification_store(&InMemoryStore::default(), "mem").await;
    }

    #[tokio::test]
    async fn claim_runs_out_after_exactly_the_claim_seconds() {
        super::claim_runs_out_after_exactly_the_claim_seconds(&InMemoryStore::default(), "mem")
            .await;
    }

    /// All checks in one store, as the DynamoDB side runs them in one table: their names must
    /// not collide.
    #[tokio::test]
    async fn all_checks_share_one_store() {
        let store = InMemoryStore::default();
        super::order_store(&store, "shared-1").await;
        super::customer_listing(&store, "shared-2").await;
        super::pick_list(&store, "shared-3").await;
        super::pending_returns(&store, "shared-4").await;
        super::inventory_store(&store, &store, "shared-5").await;
        super::reserve_all_or_nothing(&store, "shared-6").await;
        super::commit_conditions(&store, "shared-7").await;
        super::commit_moves_stock(&store, "shared-8").await;
        super::stock_per_location(&store, "shared-8b").await;
        super::backorders(&store, "shared-8d").await;
        super::transfers_between_locations(&store, "shared-8c").await;
        super::last_unit_goes_once(&store, "shared-9").await;
        super::notification_store(&store, "shared-10").await;
        super::sweep_listings(&store, "shared-11").await;
        super::catalog_and_history(&store, "shared-12").await;
    }
}

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
//! Compiled for this crate's tests and under the `conformance` feature.

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
use crate::stock::{AdjustmentReason, Product, StockAdjustment, StockLevel, StockMovement};

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
        stock: StockLevel::new(on_hand).expect("a stock level"),
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
        .reserve(at)
        .expect("a placed order can be reserved")
        .authorized_for_test(at)
        .start_fulfillment(warehouse, at)
        .expect("a reserved order goes to the warehouse")
}

fn picked(order: &Order, at: DateTime<Utc>) -> Order {
    order
        .pick("conformance", at)
        .expect("an order awaiting pick can be picked")
}

fn packed(order: &Order, at: DateTime<Utc>) -> Order {
    let parcel = crate::fixtures::parcel();
    order
        .pack(parcel, "conformance", at)
        .expect("a picked order can be packed")
}

fn shipped(order: &Order, at: DateTime<Utc>) -> Order {
    let tracking = Tracking {
        carrier: "DHL".into(),
        tracking_number: format!("JJD-{}", order.id),
        tracking_url: format!("https://www.dhl.com/track?id={}", order.id),
    };
    order
        .ship(tracking, order.shipping.estimate, "conformance", at)
        .expect("a packed order ships")
}

fn delivered(order: &Order, at: DateTime<Utc>) -> Order {
    let shipped = shipped(&packed(&picked(order, at), at), at);
    match shipped
        .carrier_event(
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
    let request = ReturnRequest::parse(&json!({
        "lines": [{"sku": order.lines[0].sku.as_str(), "quantity": 1, "reason": "OTHER"}]
    }))
    .expect("a valid return request");
    let step = order
        .request_return(
            &request,
            IdempotencyKey::parse(format!("return-{}", order.id)).expect("a key"),
            &[],
            &ReturnPolicy::default_policy(),
            at,
        )
        .expect("a delivered order can be returned");
    assert_eq!(
        step.order.oldest_pending_return(),
        Some(at),
        "the return waits for staff"
    );
    step.order
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

// --------------------------------------------------------------------------------- OrderStore

/// `create` writes the order and its idempotency record together or neither: a used (customer,
/// key) is `KeyAlreadyUsed` and writes nothing; keys are per customer; an existing order id is
/// `ConditionFailed` and leaves the key unused. `save` replaces the order only at the expected
/// version: stale, ahead or absent is `ConditionFailed` and changes nothing.
pub async fn order_store<S: OrderStore>(store: &S, prefix: &str) {
    check_prefix(prefix);
    let at = base_time();
    let (ada, bob) = (customer(prefix, "ada"), customer(prefix, "bob"));
    let item = product(&sku(prefix, "OS"), 10, at);
    let k1 = key(prefix, "k1");

    let first = place(&ada, &[(&item, 1)], at);
    assert_eq!(stored(store, &first.id).await, None, "an unknown order");
    assert_eq!(
        store.idempotency_record(&ada, &k1).await,
        Ok(None),
        "an unused key"
    );
    assert_eq!(
        store.create(&first, &record(&first, &k1)).await,
        Ok(CreateOutcome::Created)
    );
    assert_eq!(
        stored(store, &first.id).await.as_ref(),
        Some(&first),
        "the created order reads back as written"
    );
    assert_eq!(
        store.idempotency_record(&ada, &k1).await,
        Ok(Some(record(&first, &k1))),
        "the idempotency record reads back as written"
    );

    // The same key again, for another order: nothing written.
    let second = place(&ada, &[(&item, 2)], at + seconds(1));
    assert_eq!(
        store.create(&second, &record(&second, &k1)).await,
        Ok(CreateOutcome::KeyAlreadyUsed),
        "a used key"
    );
    assert_eq!(
        stored(store, &second.id).await,
        None,
        "the order of a used key is not written"
    );
    assert_eq!(
        store.idempotency_record(&ada, &k1).await,
        Ok(Some(record(&first, &k1))),
        "a used key keeps its first record"
    );

    // Keys are per customer.
    let bobs = place(&bob, &[(&item, 1)], at + seconds(2));
    assert_eq!(
        store.create(&bobs, &record(&bobs, &k1)).await,
        Ok(CreateOutcome::Created),
        "another customer may use the same key"
    );

    // An order id that exists, under a fresh key: refused, the key stays unused.
    let k2 = key(prefix, "k2");
    assert_eq!(
        store.create(&first, &record(&first, &k2)).await,
        Err(StoreError::ConditionFailed),
        "creating an order id that exists"
    );
    assert_eq!(
        store.idempotency_record(&ada, &k2).await,
        Ok(None),
        "a refused create writes no idempotency record"
    );
    // Both taken: the key is what the caller hears of.
    assert_eq!(
        store.create(&first, &record(&first, &k1)).await,
        Ok(CreateOutcome::KeyAlreadyUsed),
        "a retry of the first create"
    );

    // Saves are conditioned on the stored version.
    let rejected = first
        .reject(vec![], at + seconds(3))
        .expect("a pending order can be rejected");
    assert_eq!(
        store.save(&rejected, first.version + 1).await,
        Err(StoreError::ConditionFailed),
        "a save expecting a version the order has not reached"
    );
    assert_eq!(stored(store, &first.id).await.as_ref(), Some(&first));
    assert_eq!(store.save(&rejected, first.version).await, Ok(()));
    assert_eq!(stored(store, &first.id).await.as_ref(), Some(&rejected));
    let cancelled = first
        .cancel("changed my mind".into(), "customer", at + seconds(4))
        .expect("a pending order can be cancelled")
        .order;
    assert_eq!(
        store.save(&cancelled, first.version).await,
        Err(StoreError::ConditionFailed),
        "a save from a stale read loses"
    );
    assert_eq!(
        stored(store, &first.id).await.as_ref(),
        Some(&rejected),
        "a lost save changes nothing"
    );

    // A save never creates.
    let ghost = place(&ada, &[(&item, 1)], at + seconds(5));
    let moved = ghost
        .reject(vec![], at + seconds(5))
        .expect("a pending order can be rejected");
    assert_eq!(
        store.save(&moved, ghost.version).await,
        Err(StoreError::ConditionFailed),
        "saving an order that was never created"
    );
    assert_eq!(stored(store, &ghost.id).await, None);
}

/// `list_for_customer`: a customer's orders and no one else's, newest first, in pages that
/// together hold them all; a cursor only opens the listing it came from (another customer's, or
/// garbage, is `InvalidCursor`).
pub async fn customer_listing<S: OrderStore>(store: &S, prefix: &str) {
    check_prefix(prefix);
    let at = base_time();
    let (ada, bob, nobody) = (
        customer(prefix, "ada"),
        customer(prefix, "bob"),
        customer(prefix, "nobody"),
    );
    let item = product(&sku(prefix, "CL"), 10, at);
    let mut adas = Vec::new();
    for i in 0..5 {
        let order = place(&ada, &[(&item, 1)], at + seconds(i));
        create(store, &order).await;
        adas.push(order.id.clone());
    }
    let bobs = place(&bob, &[(&item, 1)], at + seconds(10));
    create(store, &bobs).await;
    let newest_first: Vec<OrderId> = adas.iter().rev().cloned().collect();

    let whole = store
        .list_for_customer(&ada, 10, None)
        .await
        .expect("listing");
    assert_eq!(ids(&whole.items), newest_first, "newest first, only hers");
    assert_eq!(whole.next_cursor, None, "one page held them all");

    let (ada_ref, bob_ref) = (&ada, &bob);
    let pages =
        all_pages(
            |cursor| async move { store.list_for_customer(ada_ref, 2, cursor.as_deref()).await },
        )
        .await;
    assert_eq!(
        pages,
        [
            newest_first[0..2].to_vec(),
            newest_first[2..4].to_vec(),
            newest_first[4..].to_vec()
        ],
        "pages of two, newest first"
    );
    let pages =
        all_pages(
            |cursor| async move { store.list_for_customer(ada_ref, 5, cursor.as_deref()).await },
        )
        .await;
    assert_eq!(
        pages,
        std::slice::from_ref(&newest_first),
        "a page exactly full"
    );

    let empty = store
        .list_for_customer(&nobody, 10, None)
        .await
        .expect("listing");
    assert_eq!(
        (empty.items.len(), empty.next_cursor),
        (0, None),
        "a customer without orders"
    );
    let pages =
        all_pages(
            |cursor| async move { store.list_for_customer(bob_ref, 1, cursor.as_deref()).await },
        )
        .await;
    assert_eq!(pages, [vec![bobs.id.clone()]], "only his own");

    let first = store
        .list_for_customer(&ada, 2, None)
        .await
        .expect("listing");
    let cursor = first.next_cursor.expect("more than one page");
    assert_eq!(
        store.list_for_customer(&bob, 2, Some(&cursor)).await,
        Err(StoreError::InvalidCursor),
        "another customer's cursor"
    );
    assert_eq!(
        store.list_for_customer(&ada, 2, Some(GARBAGE_CURSOR)).await,
        Err(StoreError::InvalidCursor),
        "a cursor the store never handed out"
    );
}

const WAREHOUSE_STATUSES: [FulfillmentStatus; 3] = [
    FulfillmentStatus::AwaitingPick,
    FulfillmentStatus::Picked,
    FulfillmentStatus::Packed,
];

/// Every status in which `warehouse`'s listing holds `id`.
async fn listed_in<S: OrderStore>(
    store: &S,
    warehouse: &str,
    id: &OrderId,
) -> Vec<FulfillmentStatus> {
    let mut statuses = Vec::new();
    for status in FulfillmentStatus::ALL {
        let pages = all_pages(|cursor| async move {
            store
                .list_fulfillments(warehouse, status, 100, cursor.as_deref())
                .await
        })
        .await;
        if pages.iter().flatten().any(|listed| listed == id) {
            statuses.push(status);
        }
    }
    statuses
}

async fn pick_list_of<S: OrderStore>(
    store: &S,
    warehouse: &str,
    status: FulfillmentStatus,
    limit: u32,
) -> Vec<Vec<OrderId>> {
    all_pages(|cursor| async move {
        store
            .list_fulfillments(warehouse, status, limit, cursor.as_deref())
            .await
    })
    .await
}

/// `list_fulfillments`: a warehouse's shipments in one status, oldest queued first (not by order
/// id), in pages; a sparse listing: an order is in it only while the warehouse has work on it
/// (awaiting pick, picked, packed), in exactly the status it is in, and neither once shipped nor
/// once cancelled; other warehouses' orders never.
pub async fn pick_list<S: OrderStore>(store: &S, prefix: &str) {
    check_prefix(prefix);
    let at = base_time();
    let (warehouse, elsewhere) = (format!("{prefix}-WH"), format!("{prefix}-WH2"));
    let ada = customer(prefix, "picker");
    let item = product(&sku(prefix, "PL"), 10, at);

    // Placed 0, 1, 2; queued in the warehouse 2, 1, 0: the pick list follows the queue.
    let mut queue = Vec::new();
    for i in 0..3 {
        let placed = place(&ada, &[(&item, 1)], at + seconds(i));
        let order = in_fulfillment(&placed, &warehouse, at + seconds(20 - i));
        create(store, &order).await;
        queue.insert(0, order);
    }
    let other = in_fulfillment(&place(&ada, &[(&item, 1)], at), &elsewhere, at);
    create(store, &other).await;
    let reserved = place(&ada, &[(&item, 1)], at)
        .reserve(at)
        .expect("reserving");
    create(store, &reserved).await;
    let queued = ids(&queue);

    assert_eq!(
        pick_list_of(store, &warehouse, FulfillmentStatus::AwaitingPick, 100).await,
        std::slice::from_ref(&queued),
        "awaiting pick, oldest queued first"
    );
    assert_eq!(
        pick_list_of(store, &warehouse, FulfillmentStatus::AwaitingPick, 2).await,
        [queued[0..2].to_vec(), queued[2..].to_vec()],
        "in pages of two"
    );
    for status in [FulfillmentStatus::Picked, FulfillmentStatus::Packed] {
        assert_eq!(
            pick_list_of(store, &warehouse, status, 100).await,
            [Vec::<OrderId>::new()],
            "nothing is {}",
            status.as_str()
        );
    }
    assert_eq!(
        pick_list_of(store, &elsewhere, FulfillmentStatus::AwaitingPick, 100).await,
        [vec![other.id.clone()]],
        "another warehouse's list"
    );
    assert_eq!(
        listed_in(store, &warehouse, &reserved.id).await,
        [],
        "an order not yet in fulfillment"
    );

    // The oldest moves through the warehouse and out.
    let first = queue[0].clone();
    let step_at = at + seconds(30);
    let first = save(store, &first, picked(&first, step_at)).await;
    assert_eq!(
        listed_in(store, &warehouse, &first.id).await,
        [FulfillmentStatus::Picked],
        "picked: only in the picked list"
    );
    assert_eq!(
        pick_list_of(store, &warehouse, FulfillmentStatus::AwaitingPick, 100).await,
        [queued[1..].to_vec()],
        "the rest still await pick"
    );
    let first = save(store, &first, packed(&first, step_at)).await;
    assert_eq!(
        listed_in(store, &warehouse, &first.id).await,
        [FulfillmentStatus::Packed],
        "packed: only in the packed list"
    );
    let first = save(store, &first, shipped(&first, step_at)).await;
    assert_eq!(
        listed_in(store, &warehouse, &first.id).await,
        [],
        "shipped: off every list (in no status at all)"
    );

    // A cancellation takes the shipment off the list wherever it had got to.
    let second = save(store, &queue[1], picked(&queue[1], step_at)).await;
    let cancelled = second
        .cancel("out of stock".into(), "admin", step_at)
        .expect("a picked order can be cancelled")
        .order;
    save(store, &second, cancelled).await;
    assert_eq!(
        listed_in(store, &warehouse, &second.id).await,
        [],
        "a cancelled order is off the pick list"
    );
    let third = &queue[2];
    let cancelled = third
        .cancel("out of stock".into(), "admin", step_at)
        .expect("an order awaiting pick can be cancelled")
        .order;
    save(store, third, cancelled).await;
    assert_eq!(
        listed_in(store, &warehouse, &third.id).await,
        [],
        "a cancelled order is off the pick list"
    );

    for status in WAREHOUSE_STATUSES {
        assert_eq!(
            store
                .list_fulfillments(&warehouse, status, 10, Some(GARBAGE_CURSOR))
                .await,
            Err(StoreError::InvalidCursor),
            "a cursor the store never handed out"
        );
    }
}

/// A pick-list cursor stays good while the warehouse works: the order it was handed out after
/// may move on (be picked) before the next page is asked for, as on DynamoDB, whose cursor is a
/// position in the index rather than an item that must still be there.
pub async fn pick_list_cursor_outlives_its_order<S: OrderStore>(store: &S, prefix: &str) {
    check_prefix(prefix);
    let at = base_time();
    let warehouse = format!("{prefix}-WHC");
    let ada = customer(prefix, "cursor");
    let item = product(&sku(prefix, "PC"), 10, at);
    let mut queue = Vec::new();
    for i in 0..3 {
        let order = in_fulfillment(&place(&ada, &[(&item, 1)], at), &warehouse, at + seconds(i));
        create(store, &order).await;
        queue.push(order);
    }
    let page = store
        .list_fulfillments(&warehouse, FulfillmentStatus::AwaitingPick, 1, None)
        .await
        .expect("listing");
    assert_eq!(ids(&page.items), [queue[0].id.clone()]);
    let cursor = page.next_cursor.expect("more to come");
    save(store, &queue[0], picked(&queue[0], at + seconds(10))).await;
    let next = store
        .list_fulfillments(
            &warehouse,
            FulfillmentStatus::AwaitingPick,
            1,
            Some(&cursor),
        )
        .await;
    assert_eq!(
        next.map(|p| ids(&p.items)),
        Ok(vec![queue[1].id.clone()]),
        "the next page after the picked order"
    );
}

/// A cursor is `InvalidCursor` in any listing but the one that handed it out, even where the
/// order it was handed out after is listed too (ports: "a pagination cursor that this store did
/// not hand out for this query").
pub async fn cursors_belong_to_their_query<S: OrderStore>(store: &S, prefix: &str) {
    check_prefix(prefix);
    let at = base_time();
    let warehouse = format!("{prefix}-WHQ");
    let ada = customer(prefix, "query");
    let item = product(&sku(prefix, "CQ"), 10, at);
    for i in 0..2 {
        let order = in_fulfillment(
            &place(&ada, &[(&item, 1)], at + seconds(i)),
            &warehouse,
            at + seconds(i),
        );
        create(store, &order).await;
    }
    let mine = store
        .list_for_customer(&ada, 1, None)
        .await
        .expect("listing")
        .next_cursor
        .expect("two orders, pages of one");
    let picks = store
        .list_fulfillments(&warehouse, FulfillmentStatus::AwaitingPick, 1, None)
        .await
        .expect("listing")
        .next_cursor
        .expect("two orders, pages of one");
    assert_eq!(
        store
            .list_fulfillments(&warehouse, FulfillmentStatus::AwaitingPick, 1, Some(&mine))
            .await,
        Err(StoreError::InvalidCursor),
        "a customer-listing cursor in the pick list"
    );
    assert_eq!(
        store
            .list_fulfillments(&warehouse, FulfillmentStatus::Picked, 1, Some(&picks))
            .await,
        Err(StoreError::InvalidCursor),
        "one status's cursor in another's"
    );
    assert_eq!(
        store.list_for_customer(&ada, 1, Some(&picks)).await,
        Err(StoreError::InvalidCursor),
        "a pick-list cursor in the customer listing"
    );
    assert_eq!(
        store.list_pending_returns(1, Some(&mine)).await,
        Err(StoreError::InvalidCursor),
        "a customer-listing cursor in the approval queue"
    );
}

/// `list_pending_returns`: orders with a return waiting for staff, longest-waiting first, in
/// pages; sparse: an order leaves it once its return is decided, and a delivered order without a
/// waiting return is never in it.
pub async fn pending_returns<S: OrderStore>(store: &S, prefix: &str) {
    check_prefix(prefix);
    let at = base_time();
    let ada = customer(prefix, "returner");
    let item = product(&sku(prefix, "PR"), 10, at);
    let warehouse = format!("{prefix}-WHR");
    let mut orders = Vec::new();
    for i in 0..4 {
        let order = delivered(
            &in_fulfillment(&place(&ada, &[(&item, 2)], at + seconds(i)), &warehouse, at),
            at + seconds(i),
        );
        create(store, &order).await;
        orders.push(order);
    }
    // Requested 1, 0, 2 (the 4th order is kept): the queue follows the requests.
    let mut waiting = Vec::new();
    for (i, index) in [1usize, 0, 2].into_iter().enumerate() {
        let order = &orders[index];
        let next = with_pending_return(order, at + seconds(60 + i as i64));
        waiting.push(save(store, order, next).await);
    }
    let ours_all = ids(&orders);
    let queue = |pages: &[Vec<OrderId>]| ours(pages, &ours_all);
    let pages =
        all_pages(|cursor| async move { store.list_pending_returns(100, cursor.as_deref()).await })
            .await;
    assert_eq!(queue(&pages), ids(&waiting), "longest-waiting first");
    let pages =
        all_pages(|cursor| async move { store.list_pending_returns(2, cursor.as_deref()).await })
            .await;
    assert_eq!(queue(&pages), ids(&waiting), "in pages of two");
    assert!(
        pages.iter().all(|p| p.len() <= 2),
        "no page holds more than asked: {pages:?}"
    );

    // Deciding takes an order off the queue, approved or rejected.
    let approve = &waiting[0];
    let return_id = approve.returns[0].return_id.clone();
    let approved = approve
        .decide_return(&return_id, true, "staff", None, at + seconds(90))
        .expect("a waiting return can be approved")
        .order;
    save(store, approve, approved).await;
    let reject = &waiting[2];
    let return_id = reject.returns[0].return_id.clone();
    let rejected = reject
        .decide_return(&return_id, false, "staff", None, at + seconds(91))
        .expect("a waiting return can be rejected")
        .order;
    save(store, reject, rejected).await;
    let pages =
        all_pages(|cursor| async move { store.list_pending_returns(1, cursor.as_deref()).await })
            .await;
    assert_eq!(
        queue(&pages),
        [waiting[1].id.clone()],
        "decided returns leave the queue"
    );
    assert_eq!(
        store.list_pending_returns(1, Some(GARBAGE_CURSOR)).await,
        Err(StoreError::InvalidCursor),
        "a cursor the store never handed out"
    );
}

// ----------------------------------------------------------------------------- InventoryStore

/// `list_by_status` and `list_payment_watch`, the scheduled sweep's views: orders in one status
/// last changed before a time, oldest first; orders whose money needs staff, and authorizations
/// waiting for their capture, each on its own list and only while they are.
pub async fn sweep_listings<S: OrderStore>(store: &S, prefix: &str) {
    use crate::order::payments::{PaymentEvent, PaymentEventKind, PaymentPolicy, PaymentUpdate};
    use crate::ports::PaymentWatch;
    check_prefix(prefix);
    let at = base_time();
    let ada = customer(prefix, "sweeper");
    let item = product(&sku(prefix, "SW"), 10, at);
    let mut orders = Vec::new();
    for i in 0..3 {
        let order = place(&ada, &[(&item, 1)], at + seconds(i));
        create(store, &order).await;
        orders.push(order);
    }
    let all = ids(&orders);
    let pages = all_pages(|cursor| async move {
        store
            .list_by_status(
                OrderStatus::Pending,
                at + seconds(2),
                100,
                cursor.as_deref(),
            )
            .await
    })
    .await;
    assert_eq!(
        ours(&pages, &all),
        ids(&orders[..2]),
        "changed before the bound, oldest first"
    );
    assert!(
        ours(
            &all_pages(|cursor| async move {
                store
                    .list_by_status(
                        OrderStatus::Reserved,
                        at + seconds(60),
                        100,
                        cursor.as_deref(),
                    )
                    .await
            })
            .await,
            &all
        )
        .is_empty(),
        "another status is another list"
    );

    // One authorized (waits for its capture), one with a mismatched amount (needs staff).
    let authorized = save(
        store,
        &orders[0],
        orders[0].authorized_for_test(at + seconds(10)),
    )
    .await;
    let mismatch = PaymentEvent {
        event_id: format!("{prefix}-mismatch"),
        kind: PaymentEventKind::AuthorizationSucceeded,
        amount: crate::money::Money::new(1, orders[1].totals.total.currency())
            .expect("a positive amount"),
        occurred_at: at + seconds(11),
        psp_reference: None,
        refund_id: None,
        reason: None,
    };
    let PaymentUpdate::Recorded(mismatched) = orders[1]
        .record_payment(&mismatch, &PaymentPolicy::default(), at + seconds(11))
        .expect("a payment event can be recorded")
    else {
        panic!("a new event id is recorded")
    };
    let mismatched = save(store, &orders[1], *mismatched).await;
    let watch = |watch: PaymentWatch, before: Option<DateTime<Utc>>| {
        let all = all.clone();
        async move {
            ours(
                &all_pages(|cursor| async move {
                    store
                        .list_payment_watch(watch, before, 1, cursor.as_deref())
                        .await
                })
                .await,
                &all,
            )
        }
    };
    assert_eq!(
        watch(PaymentWatch::AwaitingCapture, None).await,
        [authorized.id.clone()]
    );
    assert_eq!(
        watch(PaymentWatch::Attention, None).await,
        [mismatched.id.clone()]
    );
    assert!(
        watch(PaymentWatch::AwaitingCapture, Some(at + seconds(10)))
            .await
            .is_empty(),
        "authorized at the bound, not before it"
    );
    assert_eq!(
        watch(PaymentWatch::AwaitingCapture, Some(at + seconds(11))).await,
        [authorized.id.clone()]
    );

    // Captured, it waits no more.
    let captured = authorized.captured_for_test(at + seconds(20));
    save(store, &authorized, captured).await;
    assert!(watch(PaymentWatch::AwaitingCapture, None).await.is_empty());
    assert_eq!(
        store
            .list_payment_watch(PaymentWatch::Attention, None, 1, Some(GARBAGE_CURSOR))
            .await,
        Err(StoreError::InvalidCursor)
    );
}

fn adjustment(before: &Product, after: &Product, reason: AdjustmentReason) -> StockAdjustment {
    StockAdjustment {
        sku: after.sku.clone(),
        id: format!(
            "{}-{}",
            after.updated_at.format("%Y%m%dT%H%M%S%.3fZ"),
            after.version
        ),
        reason,
        note: Some("conformance".into()),
        before: before.stock,
        after: after.stock,
        actor: "conformance".into(),
        at: after.updated_at,
    }
}

fn sorted(mut adjustments: Vec<StockAdjustment>) -> Vec<StockAdjustment> {
    adjustments.sort_by(|a, b| a.id.cmp(&b.id));
    adjustments
}

/// `save_product` creates only when `expected_version` is `None` and the SKU is new, replaces
/// only at the expected version otherwise, and writes the adjustment with the product or neither;
/// `product`/`products` read back what was written, unknown SKUs simply absent.
pub async fn inventory_store<S: InventoryStore, L: AdjustmentLog>(
    store: &S,
    log: &L,
    prefix: &str,
) {
    check_prefix(prefix);
    let at = base_time();
    let (a_sku, b_sku, unknown) = (
        sku(prefix, "INV-A"),
        sku(prefix, "INV-B"),
        sku(prefix, "INV-X"),
    );
    let a = product(&a_sku, 5, at);
    let b = product(&b_sku, 0, at);

    assert_eq!(stored_product(store, &a_sku).await, None, "an unknown SKU");
    assert_eq!(
        store.products(&[a_sku.clone(), unknown.clone()]).await,
        Ok(vec![]),
        "unknown SKUs are absent"
    );
    assert_eq!(store.save_product(&a, None, None).await, Ok(()), "creating");
    assert_eq!(
        store
            .products(&[a_sku.clone(), unknown.clone(), a_sku.clone()])
            .await
            .map(|found| found.into_iter().map(|p| p.sku).collect::<Vec<_>>()),
        Ok(vec![a_sku.clone()]),
        "a SKU asked for twice is read once (a batch read refuses a repeated key)"
    );
    let renamed = Product {
        name: "Renamed".into(),
        ..a.clone()
    };
    assert_eq!(
        store.save_product(&renamed, None, None).await,
        Err(StoreError::ConditionFailed),
        "creating a SKU that exists"
    );
    assert_eq!(
        stored_product(store, &a_sku).await.as_ref(),
        Some(&a),
        "a refused create changes nothing"
    );
    assert_eq!(store.save_product(&b, None, None).await, Ok(()));
    let mut found = store
        .products(&[b_sku.clone(), unknown.clone(), a_sku.clone()])
        .await
        .expect("reading products");
    found.sort_by(|x, y| x.sku.cmp(&y.sku));
    assert_eq!(found, [a.clone(), b.clone()], "the known SKUs, as written");

    // A versioned update with its adjustment.
    let a2 = Product {
        stock: a.stock.adjust(3).expect("adding stock"),
        version: 2,
        updated_at: at + seconds(1),
        ..a.clone()
    };
    let received = adjustment(&a, &a2, AdjustmentReason::Receipt);
    assert_eq!(
        store.save_product(&a2, Some(1), Some(&received)).await,
        Ok(())
    );
    assert_eq!(stored_product(store, &a_sku).await.as_ref(), Some(&a2));
    assert_eq!(
        log.recorded_adjustments(&a_sku).await,
        std::slice::from_ref(&received),
        "the adjustment is written with the product"
    );

    // Stale, ahead: refused, and the adjustment with it.
    let a3 = Product {
        stock: a2.stock.adjust(-1).expect("removing stock"),
        version: 3,
        updated_at: at + seconds(2),
        ..a2.clone()
    };
    let damaged = adjustment(&a2, &a3, AdjustmentReason::Damage);
    for expected in [1, 3] {
        assert_eq!(
            store
                .save_product(&a3, Some(expected), Some(&damaged))
                .await,
            Err(StoreError::ConditionFailed),
            "a save expecting version {expected} of a product at 2"
        );
    }
    assert_eq!(
        store.save_product(&a3, None, Some(&damaged)).await,
        Err(StoreError::ConditionFailed),
        "a create of a SKU that exists, with an adjustment"
    );
    assert_eq!(
        stored_product(store, &a_sku).await.as_ref(),
        Some(&a2),
        "refused saves change nothing"
    );
    assert_eq!(
        log.recorded_adjustments(&a_sku).await,
        std::slice::from_ref(&received),
        "a refused save writes no adjustment"
    );
    assert_eq!(
        store.save_product(&a3, Some(2), Some(&damaged)).await,
        Ok(())
    );
    assert_eq!(
        sorted(log.recorded_adjustments(&a_sku).await),
        sorted(vec![received.clone(), damaged.clone()])
    );

    // An update without an adjustment (a price change) writes none.
    let a4 = Product {
        unit_price: Money::new(2600, Currency::parse("EUR").expect("EUR")).expect("a price"),
        version: 4,
        updated_at: at + seconds(3),
        ..a3.clone()
    };
    assert_eq!(store.save_product(&a4, Some(3), None).await, Ok(()));
    assert_eq!(stored_product(store, &a_sku).await.as_ref(), Some(&a4));
    assert_eq!(log.recorded_adjustments(&a_sku).await.len(), 2);

    // An update never creates.
    let ghost = product(&unknown, 3, at);
    let counted = adjustment(&ghost, &ghost, AdjustmentReason::Count);
    assert_eq!(
        store.save_product(&ghost, Some(1), Some(&counted)).await,
        Err(StoreError::ConditionFailed),
        "a versioned save of a SKU that does not exist"
    );
    assert_eq!(stored_product(store, &unknown).await, None);
    assert_eq!(log.recorded_adjustments(&unknown).await, []);
}

/// `catalog` lists every product once, in SKU order, across pages; `adjustments` lists one SKU's
/// adjustments newest first, across pages, and a cursor of one SKU's history opens no other's.
pub async fn catalog_and_history<S: InventoryStore>(store: &S, prefix: &str) {
    check_prefix(prefix);
    let at = base_time();
    let skus: Vec<Sku> = ["CAT-C", "CAT-A", "CAT-B"]
        .iter()
        .map(|name| sku(prefix, name))
        .collect();
    for sku in &skus {
        assert_eq!(
            store.save_product(&product(sku, 4, at), None, None).await,
            Ok(())
        );
    }
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..50 {
        let page = store
            .catalog(100, cursor.as_deref())
            .await
            .expect("listing the catalog");
        listed.extend(page.items.into_iter().map(|p| p.sku));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert!(cursor.is_none(), "the catalog ends");
    let mut in_order = listed.clone();
    in_order.sort();
    in_order.dedup();
    assert_eq!(
        listed, in_order,
        "the catalog is in SKU order, each SKU once"
    );
    let mut expected = skus.clone();
    expected.sort();
    let found: Vec<Sku> = listed.into_iter().filter(|s| skus.contains(s)).collect();
    assert_eq!(found, expected, "every product is in the catalog");

    // Three adjustments of one SKU, one of another.
    let (a, b) = (&skus[1], &skus[2]);
    let mut current = product(a, 4, at);
    let mut written = Vec::new();
    for step in 1..=3 {
        let next = Product {
            stock: current.stock.adjust(1).expect("adding stock"),
            version: current.version + 1,
            updated_at: at + seconds(step),
            ..current.clone()
        };
        let received = adjustment(&current, &next, AdjustmentReason::Receipt);
        assert_eq!(
            store
                .save_product(&next, Some(current.version), Some(&received))
                .await,
            Ok(())
        );
        written.push(received);
        current = next;
    }
    let other = product(b, 4, at);
    let other_next = Product {
        stock: other.stock.adjust(-1).expect("removing stock"),
        version: 2,
        updated_at: at + seconds(9),
        ..other.clone()
    };
    let damaged = adjustment(&other, &other_next, AdjustmentReason::Damage);
    assert_eq!(
        store
            .save_product(&other_next, Some(1), Some(&damaged))
            .await,
        Ok(())
    );

    let first = store.adjustments(a, 2, None).await.expect("a first page");
    let ids_of =
        |page: &Page<StockAdjustment>| page.items.iter().map(|x| x.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids_of(&first),
        [written[2].id.clone(), written[1].id.clone()],
        "newest first"
    );
    let cursor = first.next_cursor.expect("a second page");
    let second = store
        .adjustments(a, 2, Some(&cursor))
        .await
        .expect("a second page");
    assert_eq!(
        second.items,
        [written[0].clone()],
        "the oldest last, as written"
    );
    assert_eq!(
        store.adjustments(b, 2, Some(&cursor)).await,
        Err(StoreError::InvalidCursor),
        "a cursor of one SKU's history opens no other's"
    );
    assert_eq!(
        store.adjustments(b, 10, None).await.map(|p| p.items),
        Ok(vec![damaged]),
        "each SKU has its own history"
    );
    assert_eq!(
        store
            .adjustments(&sku(prefix, "CAT-X"), 10, None)
            .await
            .map(|p| p.items),
        Ok(vec![]),
        "an unknown SKU has none"
    );
}

// -------------------------------------------------------------------------- OrderTransactions

async fn stock_of<S: InventoryStore>(store: &S, sku: &Sku) -> (u32, u32, u64) {
    let product = stored_product(store, sku)
        .await
        .unwrap_or_else(|| panic!("product {sku} exists"));
    (
        product.stock.available(),
        product.stock.reserved(),
        product.version,
    )
}

async fn new_products<S: InventoryStore>(store: &S, products: &[&Product]) {
    for product in products {
        assert_eq!(
            store.save_product(product, None, None).await,
            Ok(()),
            "creating {}",
            product.sku
        );
    }
}

/// `reserve` takes every line or none: any short line is `Short` naming each short SKU (in line
/// order) with what was requested and what was available (0 for an unknown SKU), and moves no
/// stock and not the order; a reservation that fits moves exactly its lines from `available` to
/// `reserved`, bumps each product's version, and writes the order.
pub async fn reserve_all_or_nothing<S: OrderStore + InventoryStore + OrderTransactions>(
    store: &S,
    prefix: &str,
) {
    check_prefix(prefix);
    let at = base_time();
    let ada = customer(prefix, "reserver");
    let a = product(&sku(prefix, "RS-A"), 5, at);
    let b = product(&sku(prefix, "RS-B"), 1, at);
    let c = product(&sku(prefix, "RS-C"), 4, at);
    let unknown = product(&sku(prefix, "RS-X"), 9, at);
    new_products(store, &[&a, &b, &c]).await;
    let untouched = [a.clone(), b.clone(), c.clone()];
    let check_untouched = async |store: &S| {
        for p in &untouched {
            assert_eq!(
                stored_product(store, &p.sku).await.as_ref(),
                Some(p),
                "a refused reservation moves no stock"
            );
        }
    };

    // One line short.
    let one_short = place(&ada, &[(&a, 2), (&b, 2)], at);
    create(store, &one_short).await;
    assert_eq!(
        store
            .reserve(&one_short.reserve(at).expect("reserving"))
            .await,
        Ok(ReserveOutcome::Short(vec![Shortage {
            sku: b.sku.clone(),
            requested: 2,
            available: 1
        }])),
        "one line short"
    );
    check_untouched(store).await;
    assert_eq!(
        stored(store, &one_short.id).await.as_ref(),
        Some(&one_short),
        "a refused reservation leaves the order as it was"
    );

    // Several lines short, one fine, one unknown: every short one is named, in line order.
    let many_short = place(&ada, &[(&b, 3), (&c, 1), (&unknown, 1), (&a, 9)], at);
    create(store, &many_short).await;
    assert_eq!(
        store
            .reserve(&many_short.reserve(at).expect("reserving"))
            .await,
        Ok(ReserveOutcome::Short(vec![
            Shortage {
                sku: b.sku.clone(),
                requested: 3,
                available: 1
            },
            Shortage {
                sku: unknown.sku.clone(),
                requested: 1,
                available: 0
            },
            Shortage {
                sku: a.sku.clone(),
                requested: 9,
                available: 5
            },
        ])),
        "several lines short"
    );
    check_untouched(store).await;
    assert_eq!(
        stored_product(store, &unknown.sku).await,
        None,
        "nothing created"
    );
    assert_eq!(
        stored(store, &many_short.id).await.as_ref(),
        Some(&many_short)
    );

    // Lines that fit, one SKU on two lines: netted.
    let fits = place(&ada, &[(&a, 2), (&c, 4)], at + seconds(1));
    create(store, &fits).await;
    let reserved = fits.reserve(at + seconds(2)).expect("reserving");
    assert_eq!(store.reserve(&reserved).await, Ok(ReserveOutcome::Reserved));
    assert_eq!(stock_of(store, &a.sku).await, (3, 2, 2), "A: 2 reserved");
    assert_eq!(
        stock_of(store, &c.sku).await,
        (0, 4, 2),
        "C: all 4 reserved"
    );
    assert_eq!(stock_of(store, &b.sku).await, (1, 0, 1), "B untouched");
    assert_eq!(stored(store, &fits.id).await.as_ref(), Some(&reserved));

    // Never below zero: C has nothing left.
    let more = place(&ada, &[(&c, 1)], at + seconds(3));
    create(store, &more).await;
    assert_eq!(
        store.reserve(&more.reserve(at).expect("reserving")).await,
        Ok(ReserveOutcome::Short(vec![Shortage {
            sku: c.sku.clone(),
            requested: 1,
            available: 0
        }]))
    );
    assert_eq!(stock_of(store, &c.sku).await, (0, 4, 2));
}

/// An order write is conditioned on the stored order being the version before it: stale, ahead
/// or absent is `OrderChanged` (even when stock is also short) and writes nothing; an order it
/// creates must not exist (`ConditionFailed`, nothing written); a write taking more from
/// `reserved` than is there is refused and writes nothing.
pub async fn commit_conditions<S: OrderStore + InventoryStore + OrderTransactions>(
    store: &S,
    prefix: &str,
) {
    check_prefix(prefix);
    let at = base_time();
    let ada = customer(prefix, "committer");
    let a = product(&sku(prefix, "CC-A"), 5, at);
    let b = product(&sku(prefix, "CC-B"), 1, at);
    new_products(store, &[&a, &b]).await;

    // The stored order moved on (cancelled) since the reservation was computed.
    let order = place(&ada, &[(&a, 2)], at);
    create(store, &order).await;
    let cancelled = order
        .cancel("changed my mind".into(), "customer", at + seconds(1))
        .expect("cancelling")
        .order;
    let cancelled = save(store, &order, cancelled).await;
    assert_eq!(
        store.reserve(&order.reserve(at).expect("reserving")).await,
        Ok(ReserveOutcome::OrderChanged),
        "a reservation computed from a stale order"
    );
    assert_eq!(stock_of(store, &a.sku).await, (5, 0, 1), "no stock moved");
    assert_eq!(stored(store, &order.id).await.as_ref(), Some(&cancelled));

    // Stale and short: the order's change is what the caller hears of.
    let short = place(&ada, &[(&b, 2)], at);
    create(store, &short).await;
    let rejected = short.reject(vec![], at).expect("rejecting");
    let rejected = save(store, &short, rejected).await;
    assert_eq!(
        store.reserve(&short.reserve(at).expect("reserving")).await,
        Ok(ReserveOutcome::OrderChanged),
        "stale and short"
    );
    assert_eq!(stored(store, &short.id).await.as_ref(), Some(&rejected));

    // A write two versions ahead of the stored order.
    let ahead = place(&ada, &[(&a, 1)], at);
    create(store, &ahead).await;
    let two_ahead = in_fulfillment(&ahead, &format!("{prefix}-WHX"), at);
    assert_eq!(
        store
            .commit(&OrderChange {
                moves: ahead.stock_moves(StockMovement::Reserve),
                order: two_ahead,
                created: None,
            })
            .await,
        Ok(CommitOutcome::OrderChanged),
        "a write two versions ahead"
    );
    assert_eq!(stock_of(store, &a.sku).await, (5, 0, 1));
    assert_eq!(stored(store, &ahead.id).await.as_ref(), Some(&ahead));

    // An order that was never created.
    let ghost = place(&ada, &[(&a, 1)], at);
    assert_eq!(
        store.reserve(&ghost.reserve(at).expect("reserving")).await,
        Ok(ReserveOutcome::OrderChanged),
        "reserving an order that is not stored"
    );
    assert_eq!(
        stored(store, &ghost.id).await,
        None,
        "the write created nothing"
    );
    assert_eq!(stock_of(store, &a.sku).await, (5, 0, 1));

    // Releasing what is not reserved: refused, nothing written.
    let pending = place(&ada, &[(&a, 1)], at);
    create(store, &pending).await;
    let result = store
        .commit(&OrderChange {
            moves: pending.stock_moves(StockMovement::Release),
            order: pending.reserve(at).expect("reserving"),
            created: None,
        })
        .await;
    assert!(
        matches!(result, Err(StoreError::Corrupt(_))),
        "releasing units that are not reserved: {result:?}"
    );
    assert_eq!(stock_of(store, &a.sku).await, (5, 0, 1), "no stock moved");
    assert_eq!(stored(store, &pending.id).await.as_ref(), Some(&pending));

    // A created order: written with the change, or (if it exists) neither.
    let original = place(&ada, &[(&a, 1)], at);
    create(store, &original).await;
    let replacement = place(&ada, &[(&a, 1)], at + seconds(1));
    let write = OrderChange {
        moves: original.stock_moves(StockMovement::Reserve),
        order: original.reserve(at).expect("reserving"),
        created: Some(replacement.clone()),
    };
    assert_eq!(store.commit(&write).await, Ok(CommitOutcome::Committed));
    assert_eq!(
        stored(store, &original.id).await.as_ref(),
        Some(&write.order)
    );
    assert_eq!(
        stored(store, &replacement.id).await.as_ref(),
        Some(&replacement),
        "the created order is written with the change"
    );
    assert_eq!(stock_of(store, &a.sku).await, (4, 1, 2));
    let again = place(&ada, &[(&a, 1)], at);
    create(store, &again).await;
    let clash = OrderChange {
        moves: again.stock_moves(StockMovement::Reserve),
        order: again.reserve(at).expect("reserving"),
        created: Some(replacement.clone()),
    };
    assert_eq!(
        store.commit(&clash).await,
        Err(StoreError::ConditionFailed),
        "creating an order that exists"
    );
    assert_eq!(stored(store, &again.id).await.as_ref(), Some(&again));
    assert_eq!(
        stored(store, &replacement.id).await.as_ref(),
        Some(&replacement)
    );
    assert_eq!(stock_of(store, &a.sku).await, (4, 1, 2), "no stock moved");
}

/// The stock an order's life moves: reserving takes from `available` into `reserved`, shipping
/// takes it out of `reserved` (and the building), cancelling gives it back; each write bumps the
/// product's version once and a repeated write is `OrderChanged`.
pub async fn commit_moves_stock<S: OrderStore + InventoryStore + OrderTransactions>(
    store: &S,
    prefix: &str,
) {
    check_prefix(prefix);
    let at = base_time();
    let ada = customer(prefix, "mover");
    let a = product(&sku(prefix, "MV-A"), 5, at);
    let b = product(&sku(prefix, "MV-B"), 3, at);
    new_products(store, &[&a, &b]).await;

    let order = place(&ada, &[(&a, 2), (&b, 1)], at);
    create(store, &order).await;
    let reserved = order.reserve(at).expect("reserving");
    assert_eq!(store.reserve(&reserved).await, Ok(ReserveOutcome::Reserved));
    assert_eq!(
        store.reserve(&reserved).await,
        Ok(ReserveOutcome::OrderChanged),
        "the same reservation twice"
    );
    assert_eq!(stock_of(store, &a.sku).await, (3, 2, 2));
    assert_eq!(stock_of(store, &b.sku).await, (2, 1, 2));
    let fulfilling = reserved
        .authorized_for_test(at)
        .start_fulfillment(&format!("{prefix}-WHM"), at)
        .expect("to the warehouse");
    let fulfilling = save(store, &reserved, fulfilling).await;
    let picked = save(store, &fulfilling, picked(&fulfilling, at)).await;
    let packed = save(store, &picked, packed(&picked, at)).await;
    let shipped = shipped(&packed, at + seconds(1));
    assert_eq!(store.ship(&shipped).await, Ok(ShipOutcome::Shipped));
    assert_eq!(
        stock_of(store, &a.sku).await,
        (3, 0, 3),
        "A: 2 left the building"
    );
    assert_eq!(
        stock_of(store, &b.sku).await,
        (2, 0, 3),
        "B: 1 left the building"
    );
    assert_eq!(stored(store, &order.id).await.as_ref(), Some(&shipped));
    assert_eq!(
        store.ship(&shipped).await,
        Ok(ShipOutcome::OrderChanged),
        "the same shipment twice"
    );
    assert_eq!(stock_of(store, &a.sku).await, (3, 0, 3));

    // A cancellation gives back what was reserved.
    let other = place(&ada, &[(&a, 3)], at);
    create(store, &other).await;
    let reserved = other.reserve(at).expect("reserving");
    assert_eq!(store.reserve(&reserved).await, Ok(ReserveOutcome::Reserved));
    assert_eq!(stock_of(store, &a.sku).await, (0, 3, 4));
    let step = reserved
        .cancel("changed my mind".into(), "customer", at + seconds(2))
        .expect("cancelling");
    let write = OrderChange {
        order: step.order,
        moves: step.moves,
        created: step.created,
    };
    assert_eq!(store.commit(&write).await, Ok(CommitOutcome::Committed));
    assert_eq!(stock_of(store, &a.sku).await, (3, 0, 5), "released");
    assert_eq!(stored(store, &other.id).await.as_ref(), Some(&write.order));
}

/// Two orders racing for the last unit: exactly one gets it, the other is `Short` with none
/// available, and the counters never go below zero.
pub async fn last_unit_goes_once<S: OrderStore + InventoryStore + OrderTransactions>(
    store: &S,
    prefix: &str,
) {
    check_prefix(prefix);
    let at = base_time();
    let item = product(&sku(prefix, "LAST"), 1, at);
    new_products(store, &[&item]).await;
    let first = place(&customer(prefix, "first"), &[(&item, 1)], at);
    let second = place(&customer(prefix, "second"), &[(&item, 1)], at);
    create(store, &first).await;
    create(store, &second).await;
    let (r1, r2) = (
        first.reserve(at).expect("reserving"),
        second.reserve(at).expect("reserving"),
    );
    let (o1, o2) = both(store.reserve(&r1), store.reserve(&r2)).await;
    let none_left = ReserveOutcome::Short(vec![Shortage {
        sku: item.sku.clone(),
        requested: 1,
        available: 0,
    }]);
    let outcomes = [o1.expect("reserving"), o2.expect("reserving")];
    assert!(
        outcomes == [ReserveOutcome::Reserved, none_left.clone()]
            || outcomes == [none_left, ReserveOutcome::Reserved],
        "one wins, one is short: {outcomes:?}"
    );
    assert_eq!(stock_of(store, &item.sku).await, (0, 1, 2));
}

// -------------------------------------------------------------------------- NotificationStore

/// Preferences are upserts; the notification context reads the cursor, the order and the
/// preferences together. The cursor starts at 1; a claim holds while it is live (of two
/// deliveries one wins) and may be taken over after `NOTIFICATION_CLAIM_SECONDS`, keeping the
/// channels sent; `mark_sent` and `advance` hold only at the cursor; `advance` drops the claim
/// and its channels.
pub async fn notification_store<S: OrderStore + NotificationStore>(store: &S, prefix: &str) {
    check_prefix(prefix);
    let at = base_time();
    let ada = customer(prefix, "notified");
    let item = product(&sku(prefix, "NT"), 5, at);
    let order = place(&ada, &[(&item, 1)], at);
    create(store, &order).await;
    let ghost = place(&customer(prefix, "ghost"), &[(&item, 1)], at);

    assert_eq!(
        store.cursor(&order.id).await,
        Ok(NotificationCursor::default())
    );
    assert_eq!(store.preferences(&ada).await, Ok(None));
    assert_eq!(
        store.notification_context(&order.id, &ada).await,
        Ok((NotificationCursor::default(), Some(order.clone()), None))
    );
    assert_eq!(
        store
            .notification_context(&ghost.id, &ghost.customer_id)
            .await,
        Ok((NotificationCursor::default(), None, None)),
        "nothing stored"
    );
    let quiet = Preferences {
        email: true,
        sms: false,
        webhook: false,
    };
    let loud = Preferences {
        email: true,
        sms: true,
        webhook: true,
    };
    assert_eq!(store.save_preferences(&ada, &quiet, at).await, Ok(()));
    assert_eq!(store.preferences(&ada).await, Ok(Some(quiet)));
    assert_eq!(store.save_preferences(&ada, &loud, at).await, Ok(()));
    assert_eq!(store.preferences(&ada).await, Ok(Some(loud)), "overwritten");
    assert_eq!(
        store.notification_context(&order.id, &ada).await,
        Ok((
            NotificationCursor::default(),
            Some(order.clone()),
            Some(loud)
        ))
    );

    // Before any claim.
    assert_eq!(
        store.mark_sent(&order.id, 1, Channel::Email).await,
        Err(StoreError::ConditionFailed),
        "marking a send of an event nobody claimed"
    );
    assert_eq!(
        store.claim(&order.id, 2, at).await,
        Err(StoreError::ConditionFailed),
        "claiming event 2 while the cursor is at 1"
    );

    // One claim wins.
    assert_eq!(store.claim(&order.id, 1, at).await, Ok(()));
    assert_eq!(
        store.cursor(&order.id).await,
        Ok(NotificationCursor {
            next: 1,
            claimed_at: Some(at),
            sent: vec![],
            skipped: Vec::new(),
            ..NotificationCursor::default()
        })
    );
    let live = at + Duration::milliseconds(NOTIFICATION_CLAIM_SECONDS * 1000 - 1);
    for when in [at, at + seconds(1), live] {
        assert_eq!(
            store.claim(&order.id, 1, when).await,
            Err(StoreError::ConditionFailed),
            "claiming while another claim is live ({} ms in)",
            (when - at).num_milliseconds()
        );
    }
    assert_eq!(
        store.advance(&order.id, 2).await,
        Err(StoreError::ConditionFailed),
        "advancing from where the cursor is not"
    );
    assert_eq!(
        store.mark_sent(&order.id, 2, Channel::Webhook).await,
        Err(StoreError::ConditionFailed),
        "marking a send of an event that is not the cursor's"
    );
    assert_eq!(store.mark_sent(&order.id, 1, Channel::Email).await, Ok(()));
    assert_eq!(
        store.cursor(&order.id).await.map(|c| c.sent),
        Ok(vec![Channel::Email])
    );

    // Taken over once it ran out; what was sent stays recorded.
    let later = at + Duration::milliseconds(NOTIFICATION_CLAIM_SECONDS * 1000 + 1);
    assert_eq!(store.claim(&order.id, 1, later).await, Ok(()), "a takeover");
    assert_eq!(
        store.cursor(&order.id).await,
        Ok(NotificationCursor {
            next: 1,
            claimed_at: Some(later),
            sent: vec![Channel::Email],
            skipped: Vec::new(),
            ..NotificationCursor::default()
        })
    );
    assert_eq!(store.mark_sent(&order.id, 1, Channel::Sms).await, Ok(()));
    assert_eq!(
        store.notification_context(&order.id, &ada).await,
        Ok((
            NotificationCursor {
                next: 1,
                claimed_at: Some(later),
                sent: vec![Channel::Email, Channel::Sms],
                skipped: Vec::new(),
                ..NotificationCursor::default()
            },
            Some(order.clone()),
            Some(loud)
        ))
    );

    // Moving on drops the claim and its sends.
    assert_eq!(store.advance(&order.id, 1).await, Ok(None));
    assert_eq!(
        store.advance(&order.id, 1).await,
        Err(StoreError::ConditionFailed),
        "advancing twice from the same event"
    );
    assert_eq!(
        store.cursor(&order.id).await,
        Ok(NotificationCursor {
            next: 2,
            ..NotificationCursor::default()
        })
    );
    assert_eq!(
        store.claim(&order.id, 1, later).await,
        Err(StoreError::ConditionFailed),
        "claiming an event already handled"
    );
    assert_eq!(
        store.claim(&order.id, 2, later).await,
        Ok(()),
        "the next event is free at once"
    );
    assert_eq!(store.advance(&order.id, 2).await, Ok(None));
    assert_eq!(
        store.advance(&order.id, 3).await,
        Ok(None),
        "an event without a claim just moves on"
    );
    assert_eq!(store.cursor(&order.id).await.map(|c| c.next), Ok(4));

    // A fresh order's cursor moves on from 1 without a claim.
    assert_eq!(store.advance(&ghost.id, 1).await, Ok(None));
    assert_eq!(store.cursor(&ghost.id).await.map(|c| c.next), Ok(2));

    // Events waiting for their turn leave wake tokens; the event that moves the cursor onto one
    // takes it off, and the others stay.
    assert_eq!(
        store.wait_for_turn(&order.id, 3, 5, "token-5").await,
        Err(StoreError::ConditionFailed),
        "a token while the cursor is not where the event saw it"
    );
    assert_eq!(
        store.wait_for_turn(&order.id, 4, 5, "stale-5").await,
        Ok(())
    );
    assert_eq!(
        store.wait_for_turn(&order.id, 4, 5, "token-5").await,
        Ok(()),
        "replaced"
    );
    assert_eq!(
        store.wait_for_turn(&order.id, 4, 6, "token-6").await,
        Ok(())
    );
    assert_eq!(
        store.wait_for_turn(&order.id, 4, 9, "token-9").await,
        Ok(())
    );
    assert_eq!(
        store.cursor(&order.id).await.map(|c| c.waiting),
        Ok([
            (5, "token-5".into()),
            (6, "token-6".into()),
            (9, "token-9".into())
        ]
        .into())
    );
    let fresh = place(&customer(prefix, "fresh"), &[(&item, 1)], at);
    assert_eq!(
        store.wait_for_turn(&fresh.id, 1, 2, "fresh-2").await,
        Ok(()),
        "on an order whose cursor does not exist yet"
    );
    assert_eq!(
        store.cursor(&fresh.id).await.map(|c| (c.next, c.waiting)),
        Ok((1, [(2, "fresh-2".into())].into()))
    );
    assert_eq!(
        store.advance(&fresh.id, 1).await,
        Ok(Some("fresh-2".into()))
    );

    // A gap passed over: from 4 to 7, with 4, 5 and 6 recorded, the claim dropped, and the
    // tokens up to 7 gone (nobody wakes them now); never past a live claim.
    assert_eq!(store.claim(&order.id, 4, later).await, Ok(()));
    assert_eq!(
        store.skip_to(&order.id, 4, 7, later + seconds(1)).await,
        Err(StoreError::ConditionFailed),
        "skipping an event a live delivery is sending"
    );
    let ran_out = later + Duration::milliseconds(NOTIFICATION_CLAIM_SECONDS * 1000);
    assert_eq!(
        store.skip_to(&order.id, 3, 7, ran_out).await,
        Err(StoreError::ConditionFailed),
        "skipping from where the cursor is not"
    );
    assert_eq!(store.skip_to(&order.id, 4, 7, ran_out).await, Ok(()));
    let skipped = store.cursor(&order.id).await.unwrap();
    assert_eq!(
        (skipped.next, skipped.claimed_at, skipped.skipped.clone()),
        (7, None, vec![4, 5, 6])
    );
    assert_eq!(skipped.waiting, [(9, "token-9".into())].into());
    assert_eq!(
        store.wait_for_turn(&order.id, 7, 8, "token-8").await,
        Ok(())
    );
    assert_eq!(
        store.advance(&order.id, 7).await,
        Ok(Some("token-8".into())),
        "the waiting successor's token"
    );
    assert_eq!(
        store
            .cursor(&order.id)
            .await
            .map(|c| (c.skipped, c.waiting)),
        Ok((vec![4, 5, 6], [(9, "token-9".into())].into())),
        "moving on keeps the gap recorded and the later tokens"
    );
    assert_eq!(store.take_skipped(&order.id, 5).await, Ok(()));
    assert_eq!(
        store.take_skipped(&order.id, 5).await,
        Err(StoreError::ConditionFailed),
        "a late event is taken once"
    );
    assert_eq!(
        store.take_skipped(&order.id, 8).await,
        Err(StoreError::ConditionFailed),
        "an event never skipped"
    );
    // A late telling that failed puts its event back, once.
    assert_eq!(store.restore_skipped(&order.id, 5).await, Ok(()));
    assert_eq!(
        store.restore_skipped(&order.id, 5).await,
        Ok(()),
        "recorded already"
    );
    assert_eq!(
        store.cursor(&order.id).await.map(|c| c.skipped),
        Ok(vec![4, 6, 5])
    );
    assert_eq!(store.take_skipped(&order.id, 5).await, Ok(()));
    assert_eq!(
        store.cursor(&order.id).await.map(|c| (c.next, c.skipped)),
        Ok((8, vec![4, 6]))
    );
}

/// A claim is live for less than `NOTIFICATION_CLAIM_SECONDS` (as
/// [`NotificationCursor::claimed_by_another`] says): exactly that long after it, another delivery
/// may take it over.
pub async fn claim_runs_out_after_exactly_the_claim_seconds<S: NotificationStore>(
    store: &S,
    prefix: &str,
) {
    check_prefix(prefix);
    let at = base_time();
    let order = OrderId::generate(at);
    assert_eq!(store.claim(&order, 1, at).await, Ok(()));
    let expiry = at + seconds(NOTIFICATION_CLAIM_SECONDS);
    let cursor = store.cursor(&order).await.expect("reading the cursor");
    assert!(
        !cursor.claimed_by_another(expiry),
        "the domain says the claim has run out"
    );
    assert_eq!(
        store.claim(&order, 1, expiry).await,
        Ok(()),
        "a takeover exactly {NOTIFICATION_CLAIM_SECONDS} s after the claim"
    );
}

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
        super::last_unit_goes_once(&store, "shared-9").await;
        super::notification_store(&store, "shared-10").await;
        super::sweep_listings(&store, "shared-11").await;
        super::catalog_and_history(&store, "shared-12").await;
    }
}

//! The narrow repository traits the application needs, one per aggregate, and their errors.
//!
//! The DynamoDB adapters implement them over one table; [`crate::memory`] implements them in
//! memory with the same conditions. Every write that must not race is conditional: a lost race is
//! [`StoreError::ConditionFailed`], never a silent overwrite.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{CustomerId, IdempotencyKey, OrderId, Sku};
use crate::order::fulfillment::FulfillmentStatus;
use crate::order::{Order, OrderChange, OrderStatus, Shortage};
use crate::purchase::{PurchaseKey, PurchaseOrder, PurchaseStep};
use crate::stock::{Product, StockAdjustment, StockMovement, Transfer, TransferKey, TransferStep};

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A conditional write found the item changed since it was read, or already there.
    #[error("the item changed concurrently")]
    ConditionFailed,
    /// Throttling, a transaction conflict or a timeout: the same call may succeed later.
    #[error("the store is busy: {0}")]
    Retryable(String),
    /// A pagination cursor that this store did not hand out for this query.
    #[error("the cursor is not valid for this query")]
    InvalidCursor,
    /// A stored item that does not parse: a bug or a manual edit, never the client's fault.
    #[error("a stored item is corrupt: {0}")]
    Corrupt(String),
    /// Anything else: permissions, configuration, a malformed request.
    #[error("the store failed: {0}")]
    Failed(String),
}

impl StoreError {
    /// Whether retrying the same operation later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }
}

/// What `POST /orders` answered for one (customer, `Idempotency-Key`): a retry gets the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdempotencyRecord {
    pub customer_id: CustomerId,
    pub key: IdempotencyKey,
    /// [`crate::request::OrderRequest::fingerprint`] of the request that used the key first.
    pub fingerprint: String,
    pub order_id: OrderId,
    /// The exact JSON body of the first answer.
    pub response: String,
    pub created_at: DateTime<Utc>,
}

/// The result of trying to create an order under an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// Another request already used this (customer, key); nothing was written.
    KeyAlreadyUsed,
}

/// One page of a listing, and the opaque cursor of the next page if there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The two lists of orders whose money is watched, each kept by the store as a sparse index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentWatch {
    /// The order's money needs staff ([`Order::payment_attention`]), since its oldest reason.
    Attention,
    /// Authorized and not yet captured ([`Order::awaiting_capture_since`]), since the
    /// authorization: the sweep watches the PSP's capture deadline.
    AwaitingCapture,
    /// A capture asked of the PSP and not yet answered ([`Order::capture_requested_since`]),
    /// since it was asked: the sweep puts it in front of staff if the PSP stays silent.
    CaptureRequested,
}

impl PaymentWatch {
    /// Every list, in the order an order is placed on the first that takes it.
    pub const ALL: [PaymentWatch; 3] = [
        Self::Attention,
        Self::CaptureRequested,
        Self::AwaitingCapture,
    ];

    /// When the order joined this list, if it is on it. An order that needs staff is on that
    /// list alone.
    pub fn since(&self, order: &Order) -> Option<DateTime<Utc>> {
        let attention = order.payment_attention().map(|a| a.since);
        match self {
            Self::Attention => attention,
            Self::AwaitingCapture | Self::CaptureRequested if attention.is_some() => None,
            Self::AwaitingCapture => order.awaiting_capture_since(),
            Self::CaptureRequested => order.capture_requested_since(),
        }
    }
}

/// Orders and the idempotency records that guard their creation.
pub trait OrderStore: Send + Sync {
    /// Writes the order and its idempotency record together, or neither.
    fn create(
        &self,
        order: &Order,
        record: &IdempotencyRecord,
    ) -> impl Future<Output = Result<CreateOutcome, StoreError>> + Send;

    fn idempotency_record(
        &self,
        customer: &CustomerId,
        key: &IdempotencyKey,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>, StoreError>> + Send;

    fn get(&self, id: &OrderId) -> impl Future<Output = Result<Option<Order>, StoreError>> + Send;

    /// Replaces the order on condition that the stored one still has `expected_version`.
    fn save(
        &self,
        order: &Order,
        expected_version: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A customer's orders, newest first.
    fn list_for_customer(
        &self,
        customer: &CustomerId,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<Order>, StoreError>> + Send;

    /// The orders the search index lists under `term` (their ids), at most `limit`, the
    /// newest first where the index sorts by id. The index is written with the order, so it
    /// may name an order whose keys have changed since: the caller checks each order it reads.
    fn search(
        &self,
        term: &crate::order::search::SearchTerm,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<OrderId>, StoreError>> + Send;

    /// Orders with a return waiting for staff, the longest-waiting first: the approval queue.
    fn list_pending_returns(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<Order>, StoreError>> + Send;

    /// Orders with an approved return whose goods have not arrived, the longest-approved first:
    /// what the warehouse expects back. An order with a return still waiting for staff is in
    /// the approval queue instead, until that one is decided.
    fn list_arriving_returns(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<Order>, StoreError>> + Send;

    /// Orders in `status` that entered it before `entered_before` ([`Order::status_since`]), the
    /// longest in it first: the status index, as the scheduled sweep reads it. A change that
    /// keeps the status (a declined payment, say) does not restart the order's time in it.
    fn list_by_status(
        &self,
        status: OrderStatus,
        entered_before: DateTime<Utc>,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<Order>, StoreError>> + Send;

    /// A cursor of [`OrderStore::list_by_status`] for `status` that resumes right after the
    /// position of an order that entered a status at `since` with the id `id` (whichever status
    /// that order is in, or whether it is still there): a listing of several statuses merged by
    /// time in status pages on from one position in all of them.
    fn status_cursor_after(
        &self,
        status: OrderStatus,
        since: DateTime<Utc>,
        id: &OrderId,
    ) -> String;

    /// How many orders are in `status`, counting up to `cap` (and whether there are more): the
    /// status index's count, which may lag a change by a moment.
    fn count_by_status(
        &self,
        status: OrderStatus,
        cap: u32,
    ) -> impl Future<Output = Result<StatusCount, StoreError>> + Send;

    /// Orders whose money is watched ([`PaymentWatch`]), the longest waiting first, only those
    /// waiting since before `since_before` if given.
    fn list_payment_watch(
        &self,
        watch: PaymentWatch,
        since_before: Option<DateTime<Utc>>,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<Order>, StoreError>> + Send;

    /// A location's shipments in one status, oldest first: the pick list. Each is the order
    /// holding it (an order has at most one shipment per location).
    fn list_fulfillments(
        &self,
        warehouse: &str,
        status: FulfillmentStatus,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<Order>, StoreError>> + Send;
}

/// The catalog and its stock counters.
pub trait InventoryStore: Send + Sync {
    /// The products that exist among `skus`, each once (unknown SKUs are simply absent, a SKU
    /// named twice is read once).
    fn products(
        &self,
        skus: &[Sku],
    ) -> impl Future<Output = Result<Vec<Product>, StoreError>> + Send;

    fn product(
        &self,
        sku: &Sku,
    ) -> impl Future<Output = Result<Option<Product>, StoreError>> + Send;

    /// Writes the product on condition that it does not exist (`expected_version` `None`) or still
    /// has `expected_version`, together with the adjustment that explains a stock change (and,
    /// if the adjustment carries an `Idempotency-Key`, on condition that the key is new).
    fn save_product(
        &self,
        product: &Product,
        expected_version: Option<u64>,
        adjustment: Option<&StockAdjustment>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// As [`InventoryStore::save_product`], with the orders a receipt filled
    /// ([`crate::backorder`]) in the same write, each on condition that the stored one is the
    /// version before it.
    fn save_product_filling(
        &self,
        product: &Product,
        expected_version: Option<u64>,
        adjustment: Option<&StockAdjustment>,
        filled: &[crate::order::Order],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The catalog, a page at a time, in SKU order: what staff browse and search.
    fn catalog(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<Product>, StoreError>> + Send;

    /// The products whose SKU begins with `prefix`, in SKU order, at most `limit` of them: a
    /// product's variants (`TSHIRT-RED-` for every size), what a customer may exchange for.
    fn catalog_starting_with(
        &self,
        prefix: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Product>, StoreError>> + Send;

    /// The adjustments of one SKU's stock (receipts, counts, write-offs), newest first: the
    /// audit trail of every change made by hand.
    fn adjustments(
        &self,
        sku: &Sku,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<StockAdjustment>, StoreError>> + Send;

    /// One step of a transfer in one write: the product on condition that the stored one is
    /// the version before `step.product`, the history entry, and the transfer — created (on
    /// condition that it does not exist) when it is in transit, else replaced on condition that
    /// the stored one is still in transit. A lost condition is [`StoreError::ConditionFailed`]
    /// and writes nothing.
    /// A dispatch's `key`, if given, is written with it on condition that it is new; the
    /// orders an arrival `filled` ([`crate::backorder`]) are written with it, each on condition
    /// that the stored one is the version before it.
    fn save_transfer(
        &self,
        step: &TransferStep,
        key: Option<&TransferKey>,
        filled: &[crate::order::Order],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The adjustment of `sku` an `Idempotency-Key` made, if it made one (saved with it by
    /// [`InventoryStore::save_product`], on condition that the key is new for the SKU).
    fn adjustment_by_key(
        &self,
        sku: &Sku,
        key: &IdempotencyKey,
    ) -> impl Future<Output = Result<Option<StockAdjustment>, StoreError>> + Send;

    /// What a dispatch's `Idempotency-Key` made, if it was used for `sku`.
    fn transfer_key(
        &self,
        sku: &Sku,
        key: &IdempotencyKey,
    ) -> impl Future<Output = Result<Option<TransferKey>, StoreError>> + Send;

    fn transfer(
        &self,
        sku: &Sku,
        id: &str,
    ) -> impl Future<Output = Result<Option<Transfer>, StoreError>> + Send;

    /// The transfers of one SKU, newest first.
    fn transfers(
        &self,
        sku: &Sku,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<Transfer>, StoreError>> + Send;

    /// One step of a purchase order in one write: the product on condition that the stored one
    /// is the version before `step.product`, the receipt's history entry if any, and the
    /// purchase order — created (on condition that it does not exist) at its first version,
    /// else replaced on condition that the stored one is the version before. A placing's `key`,
    /// if given, is written with it on condition that it is new. A lost condition is
    /// [`StoreError::ConditionFailed`] and writes nothing.
    fn save_purchase_order(
        &self,
        step: &PurchaseStep,
        key: Option<&PurchaseKey>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// What a placing's `Idempotency-Key` made, if it was used for `sku`.
    fn purchase_key(
        &self,
        sku: &Sku,
        key: &IdempotencyKey,
    ) -> impl Future<Output = Result<Option<PurchaseKey>, StoreError>> + Send;

    fn purchase_order(
        &self,
        sku: &Sku,
        id: &str,
    ) -> impl Future<Output = Result<Option<PurchaseOrder>, StoreError>> + Send;

    /// The purchase orders of one SKU, newest first.
    fn purchase_orders(
        &self,
        sku: &Sku,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<PurchaseOrder>, StoreError>> + Send;
}

/// The business's locations as staff last saved them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredLocations {
    pub locations: Vec<crate::location::Location>,
    /// How many times staff changed the list; the condition of the next write.
    pub version: u64,
    pub updated_at: DateTime<Utc>,
    /// The staff member who saved it.
    pub updated_by: String,
}

/// The list of locations staff keep (until they first change it, the file's list serves).
pub trait LocationStore: Send + Sync {
    fn stored_locations(
        &self,
    ) -> impl Future<Output = Result<Option<StoredLocations>, StoreError>> + Send;

    /// Writes `list` on condition that the stored list is still at `list.version - 1` (none
    /// stored when that is 0).
    fn save_locations(
        &self,
        list: &StoredLocations,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// How many orders a status holds, counted up to a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCount {
    pub count: u32,
    /// More than `count` (the cap) are there.
    pub more: bool,
}

/// The result of trying to reserve an order's stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    Reserved,
    /// Some lines could not be served; nothing was written.
    Short(Vec<Shortage>),
    /// The order is no longer the version the reservation was computed from; nothing was written.
    OrderChanged,
}

/// The result of trying to ship an order's stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShipOutcome {
    Shipped,
    /// The order is no longer the version the shipment was computed from; nothing was written.
    OrderChanged,
}

/// The result of writing an [`OrderChange`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed,
    /// The order is no longer the version the write was computed from; nothing was written.
    OrderChanged,
    /// Some reservations could not be served; nothing was written.
    Short(Vec<Shortage>),
}

/// Order changes that move stock, each written in one transaction with the stock it moves:
/// reservations, shipments, cancellations, and the approval and receipt of returns.
pub trait OrderTransactions: Send + Sync {
    /// In one atomic write: every stock move of `change` (each conditioned on the counter it
    /// takes from holding enough), the order at its next version (conditioned on the stored one
    /// being the version before it) and the created order, if any.
    fn commit(
        &self,
        change: &OrderChange,
    ) -> impl Future<Output = Result<CommitOutcome, StoreError>> + Send;

    /// In one atomic write: takes the units of `shipped`'s shipment `number` out of `reserved`
    /// at its location (the units leave the building, so `onHand` falls with it), and saves the
    /// order on condition that the stored one is the version before `shipped`.
    fn ship(
        &self,
        shipped: &Order,
        number: u32,
    ) -> impl Future<Output = Result<ShipOutcome, StoreError>> + Send {
        async move {
            let change = OrderChange {
                moves: shipped.shipment_moves(number, StockMovement::Ship),
                order: shipped.clone(),
                created: None,
                linked: None,
                stock_history: Vec::new(),
            };
            Ok(match self.commit(&change).await? {
                CommitOutcome::Committed => ShipOutcome::Shipped,
                CommitOutcome::OrderChanged => ShipOutcome::OrderChanged,
                CommitOutcome::Short(_) => unreachable!("shipping reserves nothing"),
            })
        }
    }

    /// In one atomic write: takes every line of `reserved` from `available` into `reserved`,
    /// each on condition that enough is available, and saves the order on condition that the
    /// stored one is the version before `reserved`.
    fn reserve(
        &self,
        reserved: &Order,
    ) -> impl Future<Output = Result<ReserveOutcome, StoreError>> + Send {
        async move {
            let change = OrderChange::with_lines(reserved.clone(), StockMovement::Reserve);
            Ok(match self.commit(&change).await? {
                CommitOutcome::Committed => ReserveOutcome::Reserved,
                CommitOutcome::OrderChanged => ReserveOutcome::OrderChanged,
                CommitOutcome::Short(shortages) => ReserveOutcome::Short(shortages),
            })
        }
    }
}

/// How long a delivery's claim on an event holds before another delivery may take it over (its
/// holder presumably crashed between claiming the event and finishing it). At least the
/// notifier's timeout, so a live delivery is never overtaken, and at most its queue's
/// visibility timeout, so the first redelivery after a crash takes the claim over long before
/// the queue gives the event up (a test reads both from the template).
pub const NOTIFICATION_CLAIM_SECONDS: i64 = 60;

/// Where an order's notifications stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationCursor {
    /// The sequence number of the order's next event to handle (1 before any).
    pub next: u64,
    /// When a delivery claimed that event for sending, if one has and has not finished it.
    pub claimed_at: Option<DateTime<Utc>>,
    /// The event's channels that went out under that claim.
    pub sent: Vec<crate::notifications::Channel>,
    /// Events passed over because a later one waited too long for them (a gap): one that
    /// arrives after all is still told, once.
    pub skipped: Vec<u64>,
    /// Wake tokens left by deliveries of later events waiting for their turn, by sequence: the
    /// delivery that moves the cursor onto one wakes it, rather than it polling.
    pub waiting: std::collections::BTreeMap<u64, String>,
}

impl Default for NotificationCursor {
    fn default() -> Self {
        Self {
            next: 1,
            claimed_at: None,
            sent: Vec::new(),
            skipped: Vec::new(),
            waiting: std::collections::BTreeMap::new(),
        }
    }
}

impl NotificationCursor {
    /// Whether a delivery other than the caller's is sending the next event right now.
    pub fn claimed_by_another(&self, now: DateTime<Utc>) -> bool {
        self.claimed_at
            .is_some_and(|at| now - at < chrono::Duration::seconds(NOTIFICATION_CLAIM_SECONDS))
    }
}

/// What the notifier remembers: each customer's preferences, and per order a cursor: the next
/// event to handle, who is sending it and which of its channels went out.
pub trait NotificationStore: Send + Sync {
    fn preferences(
        &self,
        customer: &CustomerId,
    ) -> impl Future<Output = Result<Option<crate::notifications::Preferences>, StoreError>> + Send;

    fn save_preferences(
        &self,
        customer: &CustomerId,
        preferences: &crate::notifications::Preferences,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The order's notification cursor.
    fn cursor(
        &self,
        order: &OrderId,
    ) -> impl Future<Output = Result<NotificationCursor, StoreError>> + Send;

    /// In one read: the order's cursor, the order, and its customer's preferences.
    #[allow(clippy::type_complexity)]
    fn notification_context(
        &self,
        order: &OrderId,
        customer: &CustomerId,
    ) -> impl Future<
        Output = Result<
            (
                NotificationCursor,
                Option<Order>,
                Option<crate::notifications::Preferences>,
            ),
            StoreError,
        >,
    > + Send;

    /// Claims the event `next` for sending, on condition that the cursor is still at `next` and
    /// nobody else holds a live claim on it: of two deliveries of the same event, one wins and
    /// the other gets [`StoreError::ConditionFailed`]. The channels already sent stay recorded.
    fn claim(
        &self,
        order: &OrderId,
        next: u64,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records that the claimed event `sequence` went out on `channel`, so that a delivery
    /// taking the claim over does not send it again.
    fn mark_sent(
        &self,
        order: &OrderId,
        sequence: u64,
        channel: crate::notifications::Channel,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Moves the cursor from `from` to `from + 1`, dropping the claim and its sent channels, on
    /// condition that it is still at `from`. The skipped events stay recorded. Answers the wake
    /// token that a delivery of event `from + 1` left while it waited, taken off the cursor.
    fn advance(
        &self,
        order: &OrderId,
        from: u64,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Leaves `token` on the cursor for event `sequence`, which waits while the cursor is at
    /// `next`, so that the delivery moving the cursor onto it wakes it: on condition that the
    /// cursor is still at `next` ([`StoreError::ConditionFailed`] if it moved — the event's
    /// turn may have come meanwhile). A later token for the same event replaces the earlier.
    fn wait_for_turn(
        &self,
        order: &OrderId,
        next: u64,
        sequence: u64,
        token: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Passes over a gap: moves the cursor from `from` to `to`, recording `from..to` as
    /// skipped and dropping the claim and the wake tokens up to `to`, on condition that it is
    /// still at `from` and nobody holds a live claim on `from` at `now`.
    fn skip_to(
        &self,
        order: &OrderId,
        from: u64,
        to: u64,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes a skipped event off the record so that one delivery, and only one, tells it late:
    /// [`StoreError::ConditionFailed`] if it is not (or no longer) recorded as skipped.
    fn take_skipped(
        &self,
        order: &OrderId,
        sequence: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Puts a skipped event back on the record after its late telling failed, so that its next
    /// delivery tells it (nothing if it is recorded already).
    fn restore_skipped(
        &self,
        order: &OrderId,
        sequence: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The queue a notifier's event came by, as far as waiting for its turn goes: an event that
/// arrived before its predecessor is kept away a little and woken by the predecessor's delivery.
pub trait TurnQueue: Send + Sync {
    /// Keeps the delivery being handled away for `delay` before it is handed over again, and
    /// answers a token that brings it back sooner ([`TurnQueue::wake`]); `None` if it could
    /// not be kept away (it then comes back after the queue's visibility timeout).
    fn hold(&self, delay: std::time::Duration) -> impl Future<Output = Option<String>> + Send;

    /// Brings back at once the delivery `token` names. Best effort: a delivery handled or
    /// received again meanwhile ignores it, and a held one comes back anyway when its hold runs
    /// out.
    fn wake(&self, token: &str) -> impl Future<Output = ()> + Send;
}

/// Where notifications go: the customer-notifications topic.
pub trait NotificationSink: Send + Sync {
    fn send(
        &self,
        notification: &crate::notifications::Notification,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Attempts counted per key and time window: what slows guessing down (the customers' order
/// lookup). A window's count is kept until it has passed, no longer.
pub trait AttemptCounter: Send + Sync {
    /// Counts one attempt under `key` in the window that starts at `window_start` (unix seconds),
    /// kept until `expires` (unix seconds), and answers how many the window has seen, this one
    /// included.
    fn count_attempt(
        &self,
        key: &str,
        window_start: i64,
        expires: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// A payment the PSP opened for an order, for the customer to complete in their browser with
/// the PSP's own library (card data never reaches this system).
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentIntent {
    /// The PSP's id of the payment: the `pspReference` its events name.
    pub payment_intent_id: String,
    /// What the PSP's browser library confirms the payment with; the customer's alone, never
    /// logged.
    pub client_secret: String,
    pub amount: crate::money::Money,
    /// The PSP's word for where the payment stands (`requires_payment_method`, …).
    pub status: String,
}

/// Written without the client secret, which is the customer's alone.
impl std::fmt::Debug for PaymentIntent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentIntent")
            .field("payment_intent_id", &self.payment_intent_id)
            .field("client_secret", &"(redacted)")
            .field("amount", &self.amount)
            .field("status", &self.status)
            .finish()
    }
}

/// Why the PSP did not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// It could not be reached, was busy or failed: asking again later may succeed.
    #[error("the payment provider is unavailable: {0}")]
    Unavailable(String),
    /// It refused, for good (a declined or expired payment, a key it does not know).
    #[error("the payment provider refused: {0}")]
    Refused(String),
    /// It holds no such payment: the payment is another provider's.
    #[error("the payment provider holds no payment {0}")]
    UnknownPayment(String),
    /// It is not set up in this deployment (no key of its own): the payments are another
    /// provider's.
    #[error("the payment provider is not set up: {0}")]
    NotConfigured(String),
}

/// What the PSP answered a capture, void or refund with, in the ledger's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderAnswer {
    /// The PSP's own name for the state reached (the payment's or the refund's id and its
    /// status): the ledger entry's id, so the PSP's webhook announcing the same state records
    /// nothing twice.
    pub state_id: String,
    /// What happened, if anything has yet (a refund may still be pending).
    pub kind: Option<crate::order::payments::PaymentEventKind>,
    pub amount: crate::money::Money,
    pub reason: Option<String>,
}

/// A capture asked of the PSP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureAsk {
    pub amount: crate::money::Money,
    /// The request's id: the PSP's idempotency key.
    pub idempotency_key: String,
    /// Later parcels' shares follow under the same payment: the rest of the hold must stay
    /// held (otherwise what is not taken may be released).
    pub more_follow: bool,
    /// What the ledger shows taken under the payment so far, in minor units. Captures are asked
    /// one at a time, so a PSP that shows more taken has taken this one already (asked before,
    /// its answer never recorded): it is answered from the PSP's state, never asked again —
    /// the PSP forgets an idempotency key after a day, and a request redriven later must not
    /// take the money twice.
    pub taken_minor: i64,
}

/// The payment service provider's API, as the system calls it.
pub trait PaymentProvider: Send + Sync {
    /// Opens a payment of `amount` for `order`, to be captured later (on shipment), once per
    /// `idempotency_key`: the same key answers the same payment.
    fn create_payment_intent(
        &self,
        order: &OrderId,
        amount: crate::money::Money,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<PaymentIntent, ProviderError>> + Send;

    /// Takes what `ask` asks of the held payment `reference`, once per its idempotency key.
    fn capture(
        &self,
        reference: &str,
        ask: &CaptureAsk,
    ) -> impl Future<Output = Result<ProviderAnswer, ProviderError>> + Send;

    /// Releases the held payment `reference`, once per `idempotency_key`.
    fn cancel(
        &self,
        reference: &str,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<ProviderAnswer, ProviderError>> + Send;

    /// Pays `amount` of the taken payment `reference` back as the refund `refund_id` of
    /// `order`, once per refund.
    fn refund(
        &self,
        reference: &str,
        amount: crate::money::Money,
        order: &OrderId,
        refund_id: &str,
    ) -> impl Future<Output = Result<ProviderAnswer, ProviderError>> + Send;

    /// The events about this system's payments the PSP created from `since` to `until`, as its
    /// webhook sends them: what the reconciliation records when a webhook never arrived. Events
    /// it does not need, and those naming no order, are left out.
    fn events(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<crate::request::payments::PspEvent>, ProviderError>> + Send;
}

//! Catalog and stock administration: `GET/PUT /inventory/{sku}` and stock adjustments.
//!
//! Every change is a read, a rule from [`crate::stock`], and a write conditioned on the version
//! read, retried a few times if another writer got there first, so a count or a receipt can never
//! overwrite a reservation that happened in between.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::app::retry::{until_written, Attempt, Contended};
use crate::app::Caller;
use crate::ids::{IdempotencyKey, Sku};
use crate::location::Locations;
use crate::money::Money;
use crate::ports::{InventoryStore, OrderStore, StoreError};
use crate::purchase::{Placing, PurchaseError, PurchaseKey, PurchaseOrder};
use crate::replenishment::{day_of, Health, HealthPolicy, Replenishment};
use crate::request::inventory::{
    AdjustmentRequest, DeliveryRequest, ProductRequest, PurchaseOrderRequest, StockChange,
    TransferRequest,
};
use crate::shipping::ShippingPolicy;
use crate::stock::{
    AdjustmentReason, Product, StockAdjustment, StockError, StockLevel, Transfer, TransferError,
    TransferKey,
};
use crate::validation::ValidationErrors;

/// What `GET /inventory/{sku}` shows: the product and its counters, `onHand` included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductView {
    pub sku: Sku,
    pub name: String,
    pub unit_price: Money,
    pub weight_grams: u32,
    pub active: bool,
    pub low_stock_threshold: u32,
    /// Its lead time and safety stock (staff only, as is its health).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub replenishment: Option<Replenishment>,
    /// The sums over every location: what a storefront may sell.
    pub available: u32,
    pub reserved: u32,
    pub on_hand: u32,
    /// Units on their way to any location (staff only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incoming: Option<u32>,
    /// Its stock against its demand over every location together: what it sells is the
    /// business's own, so only staff see it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// The counters at each location that holds or held some, in id order.
    pub locations: Vec<LocationStockView>,
    /// What orders for more than is available get.
    pub selling: crate::backorder::SellingPolicy,
    /// How many more units orders may take past what is available now (backordered or
    /// pre-ordered): what a storefront may still sell beyond `available`.
    pub backorderable: u32,
    /// Units ordered and waiting for stock (staff only), and the orders waiting, oldest first:
    /// the SKU's backorder queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backordered: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Vec<WaitingOrderView>>,
    pub version: u64,
    pub updated_at: DateTime<Utc>,
}

/// An order waiting for a SKU's stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitingOrderView {
    pub order_id: String,
    pub placed_at: String,
    pub units: u32,
}

/// One location's counters of a SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationStockView {
    pub location: String,
    #[serde(flatten)]
    pub stock: StockView,
    /// Units on their way here: purchase orders and transfers in transit (staff only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incoming: Option<u32>,
    /// Its stock against its demand at this location (staff only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

impl ProductView {
    /// The product as staff see it at `now`: its health read against `policy`.
    pub fn for_staff(p: &Product, now: DateTime<Utc>, policy: HealthPolicy) -> Self {
        Self::of(p, Some((day_of(now), policy)))
    }

    /// The product as a storefront sees it: its availability, not what it sells.
    pub fn public(p: &Product) -> Self {
        Self::of(p, None)
    }

    fn of(p: &Product, health: Option<(NaiveDate, HealthPolicy)>) -> Self {
        ProductView {
            sku: p.sku.clone(),
            name: p.name.clone(),
            unit_price: p.unit_price,
            weight_grams: p.weight_grams,
            active: p.active,
            low_stock_threshold: p.low_stock_threshold,
            replenishment: health.map(|_| p.replenishment),
            health: health.map(|(today, policy)| p.health(today, policy)),
            available: p.stock.available(),
            reserved: p.stock.reserved(),
            on_hand: p.stock.on_hand(),
            incoming: health.map(|_| p.incoming_total()),
            // Every location that holds or held some, and for staff any that only has some on
            // its way.
            locations: p
                .stock
                .locations()
                .map(|(location, _)| location)
                .chain(
                    p.incoming
                        .keys()
                        .map(String::as_str)
                        .filter(|_| health.is_some()),
                )
                .collect::<std::collections::BTreeSet<&str>>()
                .into_iter()
                .map(|location| LocationStockView {
                    location: location.to_owned(),
                    stock: p.stock.at(location).into(),
                    incoming: health.map(|_| p.incoming_at(location)),
                    health: health.map(|(today, policy)| p.health_at(location, today, policy)),
                })
                .collect(),
            selling: p.backorders.policy,
            backorderable: p.backorders.room(day_of(Utc::now())),
            backordered: health.map(|_| p.backorders.backordered),
            waiting: health.map(|_| {
                p.backorders
                    .waiting
                    .iter()
                    .map(|(key, units)| {
                        let (placed_at, order_id) = key.rsplit_once('#').unwrap_or(("", key));
                        WaitingOrderView {
                            order_id: order_id.to_owned(),
                            placed_at: placed_at.to_owned(),
                            units: *units,
                        }
                    })
                    .collect()
            }),
            version: p.version,
            updated_at: p.updated_at,
        }
    }
}

/// Stock counters as views show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StockView {
    pub available: u32,
    pub reserved: u32,
    pub on_hand: u32,
}

impl From<StockLevel> for StockView {
    fn from(s: StockLevel) -> Self {
        StockView {
            available: s.available(),
            reserved: s.reserved(),
            on_hand: s.on_hand(),
        }
    }
}

/// One entry of a SKU's adjustment history, as `GET /inventory/{sku}/adjustments` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdjustmentView {
    pub id: String,
    /// Where the counters changed.
    pub location: String,
    pub reason: AdjustmentReason,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub before: StockView,
    pub after: StockView,
    /// The staff member who made it (the token's subject).
    pub actor: String,
    pub at: DateTime<Utc>,
}

impl AdjustmentView {
    /// The view of `a`; an adjustment recorded before there were locations was at `default`.
    pub fn of(a: &StockAdjustment, default: &str) -> Self {
        AdjustmentView {
            id: a.id.clone(),
            location: a.location.clone().unwrap_or_else(|| default.to_owned()),
            reason: a.reason,
            note: a.note.clone(),
            before: a.before.into(),
            after: a.after.into(),
            actor: a.actor.clone(),
            at: a.at,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error("SKU {0} does not exist")]
    NotFound(Sku),
    #[error("the stock change was refused: {0}")]
    Stock(#[from] StockError),
    #[error("transfer {0} does not exist")]
    TransferNotFound(String),
    #[error("this Idempotency-Key was already used with a different request body")]
    KeyReused,
    #[error("{0}")]
    Transfer(TransferError),
    #[error("{location} has {found} on hand, not the {expected} the request expected: nothing was changed")]
    NotAsSeen {
        location: String,
        expected: u32,
        found: u32,
    },
    #[error("purchase order {0} does not exist")]
    PurchaseNotFound(String),
    #[error("{found} units of purchase order {id} had arrived, not the {expected} the request expected: nothing was recorded")]
    DeliveryNotAsSeen {
        id: String,
        expected: u32,
        found: u32,
    },
    #[error("{0}")]
    Purchase(PurchaseError),
    #[error("the SKU kept changing; try again")]
    Contended,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<TransferError> for InventoryError {
    fn from(e: TransferError) -> Self {
        match e {
            TransferError::Stock(e) => Self::Stock(e),
            other => Self::Transfer(other),
        }
    }
}

impl Contended for InventoryError {
    fn contended() -> Self {
        Self::Contended
    }
}

/// The stored product `sku` names, or why there is none.
async fn existing<I: InventoryStore>(inventory: &I, sku: &Sku) -> Result<Product, InventoryError> {
    inventory
        .product(sku)
        .await?
        .ok_or_else(|| InventoryError::NotFound(sku.clone()))
}

/// Reads one SKU.
pub async fn get_product<I: InventoryStore>(
    inventory: &I,
    sku: &Sku,
) -> Result<Product, InventoryError> {
    existing(inventory, sku).await
}

/// Creates or replaces a SKU. `onHand` is its stock when it is created (none if absent: a SKU
/// may be listed before its first receipt); on an existing SKU it is a stock count (reserved
/// units stay promised, so a count below them is refused) and, like every count, what it
/// leaves available goes to the orders waiting for the SKU first, in the same write.
pub async fn put_product<I: InventoryStore + OrderStore>(
    inventory: &I,
    policy: &ShippingPolicy,
    locations: &Locations,
    caller: &Caller,
    sku: &Sku,
    body: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(Product, bool), InventoryError> {
    let fields = &ProductRequest::parse(body, policy.currency(), locations)?;
    let location = fields.location.as_str();
    let written = until_written(|| async move {
        let existing = inventory.product(sku).await?;
        let before = existing
            .as_ref()
            .map(|p| p.stock.at(location))
            .unwrap_or_default();
        let (after, expected_version, version) = match &existing {
            Some(p) => (
                match fields.on_hand {
                    Some(on_hand) => before.count(on_hand)?,
                    None => before,
                },
                Some(p.version),
                p.version + 1,
            ),
            None => (StockLevel::new(fields.on_hand.unwrap_or(0))?, None, 1),
        };
        let mut stock = existing
            .as_ref()
            .map(|p| p.stock.clone())
            .unwrap_or_default();
        if after != before || existing.is_none() {
            stock.set(location, after);
        }
        let mut product = Product {
            sku: sku.clone(),
            name: fields.name.clone(),
            unit_price: fields.unit_price,
            weight_grams: fields.weight_grams,
            active: fields.active,
            low_stock_threshold: fields.low_stock_threshold,
            stock,
            replenishment: fields.replenishment,
            incoming: existing
                .as_ref()
                .map(|p| p.incoming.clone())
                .unwrap_or_default(),
            backorders: crate::backorder::Backorders {
                policy: fields.selling,
                ..existing
                    .as_ref()
                    .map(|p| p.backorders.clone())
                    .unwrap_or_default()
            },
            // A whole product's write keeps only the demand health still reads.
            demand: existing
                .as_ref()
                .map(|p| p.demand.recent(day_of(now)))
                .unwrap_or_default(),
            version,
            updated_at: now,
        };
        let reason = if existing.is_some() {
            AdjustmentReason::Count
        } else {
            AdjustmentReason::Receipt
        };
        // A count of an existing SKU serves the waiting orders before anything becomes
        // available to new ones (a new SKU has none waiting); the history entry records the
        // counters the write leaves.
        let filled = if existing.is_some() && after != before {
            fill_waiting(inventory, &mut product, location, locations, now).await?
        } else {
            Vec::new()
        };
        let after = product.stock.at(location);
        let actor = caller.customer_id.as_str();
        let adjustment = (before != after || !filled.is_empty()).then(|| {
            StockAdjustment::of_write(&product, location, reason, None, before, after, actor)
        });
        let written = inventory
            .save_product_filling(&product, expected_version, adjustment.as_ref(), &filled)
            .await;
        Attempt::of_write(written, (product, existing.is_none()))
    })
    .await
    .map_err(|e: InventoryError| e)?;
    continue_filling(inventory, &written.0, location, locations, now).await;
    Ok(written)
}

/// Applies a receipt, count or write-off to a SKU's stock at one location, recording it in the
/// SKU's ledger. With `key` (the request's `Idempotency-Key`; the console's stock forms carry
/// one), once: the same request again answers the SKU as it is, recording nothing more (a form
/// sent from two tabs, a double click); the key with another request is refused.
#[allow(clippy::too_many_arguments)]
pub async fn adjust_stock<I: InventoryStore + OrderStore>(
    inventory: &I,
    locations: &Locations,
    caller: &Caller,
    sku: &Sku,
    body: &serde_json::Value,
    key: Option<&IdempotencyKey>,
    now: DateTime<Utc>,
) -> Result<Product, InventoryError> {
    let AdjustmentRequest {
        location,
        reason,
        change,
        note,
        expected_on_hand,
    } = AdjustmentRequest::parse(body, locations)?;
    let (note, location) = (&note, location.as_str());
    let product = until_written(|| async move {
        if let Some(key) = key {
            if let Some(made) = inventory.adjustment_by_key(sku, key).await? {
                let same = made.reason == reason
                    && made.location.as_deref() == Some(location)
                    && match change {
                        StockChange::Delta(delta) => {
                            i64::from(made.after.on_hand()) - i64::from(made.before.on_hand())
                                == delta
                        }
                        StockChange::Count(on_hand) => made.after.on_hand() == on_hand,
                    };
                if !same {
                    return Err(InventoryError::KeyReused);
                }
                return Ok(Attempt::Done(get_product(inventory, sku).await?));
            }
        }
        let existing = existing(inventory, sku).await?;
        let before = existing.stock.at(location);
        if let Some(expected) = expected_on_hand.filter(|n| *n != before.on_hand()) {
            return Err(InventoryError::NotAsSeen {
                location: location.to_owned(),
                expected,
                found: before.on_hand(),
            });
        }
        let after = match change {
            StockChange::Delta(delta) => before.adjust(delta)?,
            StockChange::Count(on_hand) => before.count(on_hand)?,
        };
        let mut stock = existing.stock.clone();
        stock.set(location, after);
        let mut product = Product {
            stock,
            demand: existing.demand.recent(day_of(now)),
            version: existing.version + 1,
            updated_at: now,
            ..existing.clone()
        };
        // What arrived goes to the orders waiting for it first, in the same write; the history
        // entry records the counters the write leaves.
        let filled = fill_waiting(inventory, &mut product, location, locations, now).await?;
        let after = product.stock.at(location);
        let actor = caller.customer_id.as_str();
        let adjustment = StockAdjustment {
            key: key.cloned(),
            ..StockAdjustment::of_write(
                &product,
                location,
                reason,
                note.clone(),
                before,
                after,
                actor,
            )
        };
        let written = inventory
            .save_product_filling(&product, Some(existing.version), Some(&adjustment), &filled)
            .await;
        Attempt::of_write(written, product)
    })
    .await?;
    continue_filling(inventory, &product, location, locations, now).await;
    Ok(product)
}

/// After a receipt's write: what it left available while orders still wait (more than its
/// write could fill) goes to them next ([`fill_freed`]).
async fn continue_filling<S: InventoryStore + OrderStore>(
    store: &S,
    written: &Product,
    location: &str,
    locations: &Locations,
    now: DateTime<Utc>,
) {
    if !written.backorders.waiting.is_empty() && written.stock.at(location).available() > 0 {
        let freed = [(written.sku.clone(), location.to_owned())];
        fill_freed(store, locations, &freed, now).await;
    }
}

/// A transfer dispatched, or the one its `Idempotency-Key` dispatched before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatched {
    pub transfer: Transfer,
    pub replayed: bool,
}

/// `POST /inventory/{sku}/transfers`: dispatches units from one location to another; they
/// leave the source's available units in the same write as the transfer is recorded. Once per
/// (SKU, `key`): a retry of the same request answers the transfer it made; the key with another
/// request is refused.
pub async fn dispatch_transfer<I: InventoryStore>(
    inventory: &I,
    locations: &Locations,
    caller: &Caller,
    sku: &Sku,
    key: &IdempotencyKey,
    body: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<Dispatched, InventoryError> {
    let request = &TransferRequest::parse(body, locations)?;
    let fingerprint = TransferKey::fingerprint(&request.from, &request.to, request.quantity);
    let fingerprint = &fingerprint;
    until_written(|| async move {
        // A key used before (a retry, or a concurrent twin that won): its transfer.
        if let Some(used) = inventory.transfer_key(sku, key).await? {
            if &used.fingerprint != fingerprint {
                return Err(InventoryError::KeyReused);
            }
            let transfer = inventory.transfer(sku, &used.transfer_id).await?;
            let transfer = transfer.ok_or(InventoryError::TransferNotFound(used.transfer_id))?;
            return Ok(Attempt::Done(Dispatched {
                transfer,
                replayed: true,
            }));
        }
        let product = existing(inventory, sku).await?;
        let (note, by) = (request.note.clone(), caller.customer_id.as_str());
        let (from, to) = (&request.from, &request.to);
        let step = Transfer::dispatch(&product, from, to, request.quantity, note, by, now)?;
        let used = TransferKey {
            sku: sku.clone(),
            key: key.clone(),
            transfer_id: step.transfer.id.clone(),
            fingerprint: fingerprint.clone(),
        };
        let written = inventory.save_transfer(&step, Some(&used), &[]).await;
        let dispatched = Dispatched {
            transfer: step.transfer,
            replayed: false,
        };
        Attempt::of_write(written, dispatched)
    })
    .await
}

/// `POST /inventory/{sku}/transfers/{id}/receive`: the units arrive at the destination and
/// become available there — to the orders waiting for them there first, oldest first, in the
/// same write. A second receipt is refused and changes nothing.
pub async fn receive_transfer<I: InventoryStore + OrderStore>(
    inventory: &I,
    locations: &Locations,
    caller: &Caller,
    sku: &Sku,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Transfer, InventoryError> {
    let (transfer, product) = until_written(|| async move {
        let missing = || InventoryError::TransferNotFound(id.to_owned());
        let transfer = inventory.transfer(sku, id).await?.ok_or_else(missing)?;
        let product = inventory.product(sku).await?.ok_or_else(missing)?;
        let mut step = transfer.receive(&product, caller.customer_id.as_str(), now)?;
        let location = step.transfer.to.clone();
        let filled = fill_waiting(inventory, &mut step.product, &location, locations, now).await?;
        step.adjustment.after = step.product.stock.at(&location);
        let written = inventory.save_transfer(&step, None, &filled).await;
        Attempt::of_write(written, (step.transfer, step.product))
    })
    .await
    .map_err(|e: InventoryError| e)?;
    continue_filling(inventory, &product, &transfer.to, locations, now).await;
    Ok(transfer)
}

/// A purchase order placed, or the one its `Idempotency-Key` placed before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub order: PurchaseOrder,
    pub replayed: bool,
}

/// `POST /inventory/{sku}/purchase-orders`: units ordered from a supplier, incoming at their
/// location from now on. Once per `Idempotency-Key`: a retry answers the purchase order it
/// placed; the key with another request is refused.
pub async fn place_purchase_order<I: InventoryStore + OrderStore>(
    inventory: &I,
    locations: &Locations,
    caller: &Caller,
    sku: &Sku,
    key: &IdempotencyKey,
    body: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<Placed, InventoryError> {
    // The key is looked up on the request as sent, before its date is checked against today.
    let request = &PurchaseOrderRequest::parse(body, locations, None)?;
    let placing = || Placing {
        location: &request.location,
        quantity: request.quantity,
        expected_on: request.expected_on,
        supplier_reference: request.supplier_reference.clone(),
        note: request.note.clone(),
    };
    let fingerprint = &placing().fingerprint();
    let placed = until_written(|| async move {
        if let Some(used) = inventory.purchase_key(sku, key).await? {
            if &used.fingerprint != fingerprint {
                return Err(InventoryError::KeyReused);
            }
            let id = used.purchase_order_id;
            let order = inventory.purchase_order(sku, &id).await?;
            let order = order.ok_or(InventoryError::PurchaseNotFound(id))?;
            return Ok(Attempt::Done(Placed {
                order,
                replayed: true,
            }));
        }
        PurchaseOrderRequest::parse(body, locations, Some(day_of(now)))?;
        let product = existing(inventory, sku).await?;
        let step = PurchaseOrder::place(&product, placing(), caller.customer_id.as_str(), now);
        let used = PurchaseKey {
            sku: sku.clone(),
            key: key.clone(),
            purchase_order_id: step.order.id.clone(),
            fingerprint: fingerprint.clone(),
        };
        let written = inventory.save_purchase_order(&step, Some(&used)).await;
        Attempt::of_write(
            written,
            Placed {
                order: step.order,
                replayed: false,
            },
        )
    })
    .await?;
    // A replay changed nothing: the promises stand.
    if !placed.replayed {
        let until = std::time::Instant::now() + FILLING_FOR;
        revise_promises(inventory, locations, sku, now, until).await;
    }
    Ok(placed)
}

/// After a purchase order of `sku` is placed, partly received or closed: each order waiting
/// for `sku` is promised again what the open purchase orders now bring it — first-in first-out,
/// as at its reservation — and one whose date changed is written with it
/// ([`Order::revise_promise`]), so its customer is told. Writes of their own after the purchase
/// order's, each on the order's version (one that changed meanwhile keeps its promise until the
/// next revision), oldest first until `until` (the request's time for work after its write);
/// failures are logged, never the caller's. Orders further back keep their promise until the
/// next purchase order event reaches them, and a passed date reads as late meanwhile.
pub async fn revise_promises<S: InventoryStore + OrderStore>(
    store: &S,
    locations: &Locations,
    sku: &Sku,
    now: DateTime<Utc>,
    until: std::time::Instant,
) {
    match revise_promises_of(store, locations, sku, now, until).await {
        Ok(0) => {}
        Ok(revised) => tracing::info!(%sku, revised, "promises revised"),
        Err(error) => tracing::warn!(%sku, %error, "promises not revised"),
    }
}

async fn revise_promises_of<S: InventoryStore + OrderStore>(
    store: &S,
    locations: &Locations,
    sku: &Sku,
    now: DateTime<Utc>,
    until: std::time::Instant,
) -> Result<usize, StoreError> {
    let Some(product) = store.product(sku).await? else {
        return Ok(0);
    };
    if product.backorders.waiting.is_empty() {
        return Ok(0);
    }
    let open: Vec<PurchaseOrder> = store
        .purchase_orders(sku, 100, None)
        .await?
        .items
        .into_iter()
        .filter(|po| po.status == crate::purchase::PurchaseStatus::Open)
        .collect();
    let today = day_of(now);
    let (mut position, mut revised) = (0u32, 0usize);
    for (key, units) in &product.backorders.waiting {
        position = position.saturating_add(*units);
        if revised >= MAX_FILLED_PER_RECEIPT || std::time::Instant::now() >= until {
            tracing::info!(%sku, revised, "promises: the rest keep theirs until the next revision");
            break;
        }
        let Some(id) = crate::backorder::order_of_key(key) else {
            continue;
        };
        let Some(order) = store.get(&id).await? else {
            continue;
        };
        let Some(home) = order
            .lines
            .iter()
            .find(|l| &l.sku == sku)
            .and_then(|l| l.backorders.first())
            .map(|b| b.location.clone())
        else {
            continue;
        };
        // Deliveries where its units wait, or where they can be sent from (as reserved).
        let shipping = &order.shipping;
        let brings: Vec<_> = open
            .iter()
            .filter(|po| {
                po.location == home
                    || locations.sends(&po.location, shipping.method, shipping.address.country())
            })
            .map(|po| (po.expected_on, po.quantity.saturating_sub(po.received)))
            .collect();
        let promise = crate::backorder::promised_on(position, brings, today);
        let Some(next) = order.revise_promise(sku, promise, now) else {
            continue;
        };
        match store.save(&next, order.version).await {
            Ok(()) => revised += 1,
            Err(StoreError::ConditionFailed) => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(revised)
}

/// `POST /inventory/{sku}/purchase-orders/{id}/receive` (`{quantity, expectedReceived}`) and `…/close`: some or
/// all of the outstanding units arrive (available at the location, in the SKU's history as a
/// receipt naming the order), or the rest will not. Each step is written on the purchase
/// order's version it was made from, so the same delivery recorded twice counts once: the
/// second is refused if the first received everything, and otherwise reads the order again.
pub async fn step_purchase_order<I: InventoryStore + OrderStore>(
    inventory: &I,
    locations: &Locations,
    caller: &Caller,
    sku: &Sku,
    id: &str,
    receipt: Option<&serde_json::Value>,
    now: DateTime<Utc>,
) -> Result<PurchaseOrder, InventoryError> {
    let delivery = receipt.map(DeliveryRequest::parse).transpose()?;
    // What follows the write (filling the rest, promising again) shares one budget, well
    // inside the function's timeout.
    let after_write = std::time::Instant::now() + 2 * FILLING_FOR;
    let (order, product) = until_written(|| async move {
        let missing = || InventoryError::PurchaseNotFound(id.to_owned());
        let order = inventory
            .purchase_order(sku, id)
            .await?
            .ok_or_else(missing)?;
        let product = inventory.product(sku).await?.ok_or_else(missing)?;
        let by = caller.customer_id.as_str();
        if let Some(expected) = delivery.map(|d| d.expected_received) {
            if expected != order.received {
                return Err(InventoryError::DeliveryNotAsSeen {
                    id: order.id,
                    expected,
                    found: order.received,
                });
            }
        }
        let mut step = match delivery {
            Some(delivery) => order.receive(&product, delivery.quantity, by, now),
            None => order.close(&product, now),
        }
        .map_err(|e| match e {
            PurchaseError::Stock(e) => InventoryError::Stock(e),
            PurchaseError::MoreThanOutstanding { .. } => {
                InventoryError::Invalid(ValidationErrors::one("quantity", e.to_string()))
            }
            other => InventoryError::Purchase(other),
        })?;
        if delivery.is_some() {
            // The delivery goes to the orders waiting for it first, in the same write.
            let location = step.order.location.clone();
            step.filled =
                fill_waiting(inventory, &mut step.product, &location, locations, now).await?;
            let after = step.product.stock.at(&location);
            if let Some(adjustment) = step.adjustment.as_mut() {
                adjustment.after = after;
            }
        }
        let written = inventory.save_purchase_order(&step, None).await;
        Attempt::of_write(written, (step.order, step.product))
    })
    .await?;
    if delivery.is_some() {
        continue_filling(inventory, &product, &order.location, locations, now).await;
    }
    let until = after_write.min(std::time::Instant::now() + FILLING_FOR);
    revise_promises(inventory, locations, sku, now, until).await;
    Ok(order)
}

/// The most waiting orders one write fills: each is an item of the receipt's transaction (at
/// most 100), beside the product, its history entry, the purchase order and keys. A receipt
/// that fills as many is followed at once by writes of their own for the rest
/// ([`fill_freed`]).
pub const MAX_FILLED_PER_RECEIPT: usize = 90;

/// The most waiting orders one fill reads and passes over because the location cannot send
/// their parcels (they wait for stock at another warehouse).
pub const MAX_PASSED_OVER: usize = 300;

/// The most bytes of orders one write fills, as their JSON measures them (DynamoDB's items are
/// of a like size): a transaction holds at most 4 MB, and the product, its history entry and
/// the purchase order share it. The rest is filled by the writes that follow.
pub const FILL_BYTES_PER_WRITE: usize = 3_000_000;

/// Stock that became free at a location without a receipt — units released by a cancellation,
/// an expiry or units called off, a return restocked — and what a receipt left available while
/// more orders waited than its write could fill: it goes to the waiting orders first, oldest
/// first, in writes of its own right after the one that freed it (each the product on its
/// version and the orders it fills). A checkout between the two writes may take a freed unit
/// first; a follow-up that fails leaves the units available, and the sweep's next run (which
/// looks for units available where orders wait), or the next receipt or count, fills the
/// orders. Failures are logged, never the caller's: the freeing write stands.
pub async fn fill_freed<S: InventoryStore + OrderStore>(
    store: &S,
    locations: &Locations,
    freed: &[(Sku, String)],
    now: DateTime<Utc>,
) {
    let mut seen: Vec<&(Sku, String)> = Vec::new();
    for pair in freed {
        if seen.contains(&pair) {
            continue;
        }
        seen.push(pair);
        let (sku, location) = pair;
        if let Err(error) = fill_freed_at(store, locations, sku, location, now).await {
            tracing::warn!(%sku, location, %error, "freed stock not given to waiting orders");
        }
    }
}

async fn fill_freed_at<S: InventoryStore + OrderStore>(
    store: &S,
    locations: &Locations,
    sku: &Sku,
    location: &str,
    now: DateTime<Utc>,
) -> Result<(), InventoryError> {
    // Write after write while each fills some and more could be (stock left, orders waiting),
    // for a few seconds at most: the caller's answer waits for it. What is left then waits for
    // the next receipt or count, which fills the orders first.
    let until = std::time::Instant::now() + FILLING_FOR;
    loop {
        let (filled, more) = until_written(|| async move {
            let Some(product) = store.product(sku).await? else {
                return Ok(Attempt::Done((0, false)));
            };
            let mut next = product.next_version(now);
            let filled = fill_waiting(store, &mut next, location, locations, now).await?;
            if filled.is_empty() {
                return Ok(Attempt::Done((0, false)));
            }
            let more =
                !next.backorders.waiting.is_empty() && next.stock.at(location).available() > 0;
            let written = store
                .save_product_filling(&next, Some(product.version), None, &filled)
                .await;
            Attempt::of_write(written, (filled.len(), more))
        })
        .await
        .map_err(|e: InventoryError| e)?;
        if filled == 0 || !more || std::time::Instant::now() >= until {
            return Ok(());
        }
    }
}

/// How long a request goes on giving freed or left-over stock to waiting orders after its own
/// write, at most (well inside a function's timeout).
const FILLING_FOR: std::time::Duration = std::time::Duration::from_secs(3);

/// Gives what `product` now has available at `location` to the orders waiting for it, oldest
/// first ([`crate::backorder`]): those whose units wait there, and those it can send parcels to
/// (by their method, to their destination: [`Locations::sends`]) — stock arriving at a second
/// warehouse serves the queue before any new order, as at the default one. Each order's units
/// become reserved there (the product's counters with them) and the order is returned at its
/// next version, to be written in the same transaction as the product. A count that leaves
/// nothing available fills nothing.
async fn fill_waiting<S: OrderStore>(
    store: &S,
    product: &mut Product,
    location: &str,
    locations: &Locations,
    now: DateTime<Utc>,
) -> Result<Vec<crate::order::Order>, StoreError> {
    let available = product.stock.at(location).available();
    if available == 0 || product.backorders.waiting.is_empty() {
        return Ok(Vec::new());
    }
    let waiting: Vec<(String, u32)> = product
        .backorders
        .waiting
        .iter()
        .map(|(key, units)| (key.clone(), *units))
        .collect();
    let mut filled = Vec::new();
    let mut bytes = 0;
    let mut left = available;
    // Orders the location cannot serve are passed over (each a read), up to a bound, so a
    // receipt nobody here can use stays cheap — and those further back that it can serve are
    // reached past a long head of orders waiting for another warehouse.
    let mut passed_over = 0;
    for (key, units) in waiting {
        if left == 0 || filled.len() >= MAX_FILLED_PER_RECEIPT || passed_over >= MAX_PASSED_OVER {
            break;
        }
        // An entry naming no order it can read counts as passed over too (each a read).
        let Some(id) = crate::backorder::order_of_key(&key) else {
            passed_over += 1;
            continue;
        };
        let Some(order) = store.get(&id).await? else {
            passed_over += 1;
            continue;
        };
        let waits_here = order
            .lines
            .iter()
            .filter(|l| l.sku == product.sku)
            .flat_map(|l| &l.backorders)
            .any(|b| b.location == location);
        // Elsewhere only for an order whose shipping is settled: an edit awaiting its payment
        // may still be undone, giving its units back where they wait, to its old address.
        let shipping = &order.shipping;
        let sent_from_here = order.awaiting_edit().is_none()
            && locations.sends(location, shipping.method, shipping.address.country());
        if !waits_here && !sent_from_here {
            passed_over += 1;
            continue;
        }
        let units = units.min(order.waiting_for(&product.sku)).min(left);
        let Some(next) = order.fill_backorder_from(&product.sku, units, location, now) else {
            continue;
        };
        // Within what one transaction carries (the first order always: it fits an item).
        let size = serde_json::to_vec(&next).map_or(0, |json| json.len());
        if !filled.is_empty() && bytes + size > FILL_BYTES_PER_WRITE {
            break;
        }
        bytes += size;
        let level = product.stock.at(location);
        let moved = crate::stock::StockLevel::from_counters(
            level.available() - units,
            level.reserved() + units,
        )
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        product.stock.set(location, moved);
        let still = next.waiting_for(&product.sku);
        product.backorders.record(&key, still, -i64::from(units));
        left -= units;
        filled.push(next);
    }
    Ok(filled)
}

/// Parses `items=SKU:2,OTHER:1` (a cart) and prices every shipping method that serves `country`
/// for it, with its delivery estimate: the same calculation order intake charges by.
pub async fn shipping_options<I: InventoryStore>(
    inventory: &I,
    policy: &ShippingPolicy,
    locations: &crate::location::Locations,
    country: Option<&str>,
    postal_code: Option<&str>,
    items: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<crate::shipping::ShippingQuote>, InventoryError> {
    let mut errors = ValidationErrors::default();
    let country = match country.map(crate::contact::CountryCode::parse) {
        Some(Ok(c)) => Some(c),
        _ => {
            errors.add("country", "must be a two-letter ISO 3166-1 country code");
            None
        }
    };
    if !postal_code.is_some_and(|p| !p.trim().is_empty() && p.len() <= 16) {
        errors.add("postalCode", "is required, at most 16 characters");
    }
    // A cart: a SKU named twice counts once with both quantities; at most as many SKUs as an
    // order may have lines.
    let mut wanted: Vec<(Sku, u32)> = Vec::new();
    let entries: Vec<&str> = items
        .unwrap_or_default()
        .split(',')
        .filter(|e| !e.is_empty())
        .collect();
    if entries.len() > crate::MAX_ORDER_LINES {
        errors.add(
            "items",
            format!("must name at most {} SKUs", crate::MAX_ORDER_LINES),
        );
    }
    for (index, entry) in entries.into_iter().enumerate().take(crate::MAX_ORDER_LINES) {
        let (sku, quantity) = entry.split_once(':').unwrap_or((entry, "1"));
        let sku = errors.check(format!("items[{index}].sku"), Sku::parse(sku));
        let quantity = errors.check(
            format!("items[{index}].quantity"),
            quantity
                .parse::<u32>()
                .map_err(|_| "must be a whole number")
                .and_then(|q| crate::quantity::Quantity::new(q).map_err(|_| "must be 1 to 999")),
        );
        if let (Some(sku), Some(quantity)) = (sku, quantity) {
            match wanted.iter_mut().find(|(s, _)| *s == sku) {
                Some((_, total)) => *total += quantity.get(),
                None => wanted.push((sku, quantity.get())),
            }
        }
    }
    if wanted.is_empty() && errors.is_empty() {
        errors.add(
            "items",
            "name at least one SKU, as items=SKU:quantity,SKU:quantity",
        );
    }
    let Some(country) = country.filter(|_| errors.is_empty()) else {
        return Err(errors.into());
    };
    let skus: Vec<Sku> = wanted.iter().map(|(s, _)| s.clone()).collect();
    let catalog = inventory.products(&skus).await?;
    let mut weight: u64 = 0;
    for (index, (sku, quantity)) in wanted.iter().enumerate() {
        match catalog.iter().find(|p| &p.sku == sku && p.active) {
            Some(product) => weight += u64::from(product.weight_grams) * u64::from(*quantity),
            None => errors.add(
                format!("items[{index}].sku"),
                format!("unknown SKU '{sku}'"),
            ),
        }
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let options = policy
        .options(&country, weight, now)
        .map_err(|e| ValidationErrors::one("country", e.to_string()))?;
    // Each method as the routing plan would send the cart from the stock now, as intake will
    // charge it (one parcel from the default location where no plan serves it now).
    let demand: Vec<crate::routing::Demand> = wanted
        .iter()
        .filter_map(|(sku, quantity)| {
            let product = catalog.iter().find(|p| &p.sku == sku)?;
            Some(crate::routing::Demand {
                sku: sku.clone(),
                quantity: *quantity,
                unit_weight_grams: product.weight_grams,
            })
        })
        .collect();
    let available = crate::location::availability(&catalog);
    let mut quotes: Vec<_> = options
        .into_iter()
        .map(|option| {
            locations
                .quote(policy, option.method, &country, &demand, &available, now)
                .unwrap_or(option)
        })
        .collect();
    quotes.sort_by_key(|q| q.price.minor_units());
    Ok(quotes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CustomerId;
    use crate::memory::InMemoryStore;
    use crate::ports::InventoryStore;
    use crate::stock::TransferStatus;
    use serde_json::json;

    fn admin() -> Caller {
        Caller {
            customer_id: CustomerId::parse("staff-1").unwrap(),
            scopes: vec!["oms:admin".into()],
        }
    }

    fn sku() -> Sku {
        Sku::parse("MUG-1").unwrap()
    }

    /// `PUT /inventory/MUG-1` with `body`.
    async fn put(
        store: &InMemoryStore,
        body: serde_json::Value,
    ) -> Result<(ProductView, bool), InventoryError> {
        let policy = ShippingPolicy::default_policy();
        let here = Locations::default_locations();
        put_product(store, &policy, &here, &admin(), &sku(), &body, Utc::now())
            .await
            .map(|(product, created)| (view(&product), created))
    }

    /// The product as the API shows it now.
    fn view(product: &Product) -> ProductView {
        ProductView::for_staff(product, Utc::now(), HealthPolicy::default())
    }

    /// `GET /inventory/MUG-1`.
    async fn get(store: &InMemoryStore) -> ProductView {
        view(&get_product(store, &sku()).await.unwrap())
    }

    /// A store whose mug has `on_hand` units at the default location.
    async fn mug(on_hand: u32) -> InMemoryStore {
        let store = InMemoryStore::default();
        let body = json!({"name": "Mug", "unitPrice": {"amount": 1200, "currency": "EUR"}, "weightGrams": 350, "onHand": on_hand});
        put(&store, body).await.unwrap();
        store
    }

    async fn adjust(
        store: &InMemoryStore,
        body: serde_json::Value,
    ) -> Result<ProductView, InventoryError> {
        let here = Locations::default_locations();
        adjust_stock(store, &here, &admin(), &sku(), &body, None, Utc::now())
            .await
            .map(|p| view(&p))
    }

    /// `POST /inventory/MUG-1/transfers` of `body` under the Idempotency-Key `key`.
    async fn dispatch(
        store: &InMemoryStore,
        key: &str,
        body: serde_json::Value,
    ) -> Result<Dispatched, InventoryError> {
        let (here, key) = (
            Locations::default_locations(),
            IdempotencyKey::parse(key).unwrap(),
        );
        dispatch_transfer(store, &here, &admin(), &sku(), &key, &body, Utc::now()).await
    }

    async fn receive(store: &InMemoryStore, id: &str) -> Result<Transfer, InventoryError> {
        receive_transfer(
            store,
            &Locations::default_locations(),
            &admin(),
            &sku(),
            id,
            Utc::now(),
        )
        .await
    }

    async fn available_at(store: &InMemoryStore, location: &str) -> u32 {
        let p = store.product(&sku()).await.unwrap().unwrap();
        p.stock.at(location).available()
    }

    #[tokio::test]
    async fn creates_then_counts_and_adjusts() {
        let store = mug(10).await;
        let view = get(&store).await;
        assert_eq!((view.available, view.reserved, view.on_hand), (10, 0, 10));
        let view = adjust(&store, json!({"reason": "RECEIPT", "delta": 5}))
            .await
            .unwrap();
        assert_eq!(view.on_hand, 15);
        let view = adjust(&store, json!({"reason": "COUNT", "countedOnHand": 12}))
            .await
            .unwrap();
        assert_eq!(view.on_hand, 12);
        assert_eq!(store.all_adjustments(&sku()).len(), 3);
    }

    #[tokio::test]
    async fn each_location_keeps_its_own_counters_and_the_sku_sums_them() {
        let store = mug(4).await;
        let receipt = json!({"reason": "RECEIPT", "delta": 6, "location": "AMS-1"});
        let view = adjust(&store, receipt).await.unwrap();
        assert_eq!((view.available, view.on_hand), (10, 10), "the sum");
        let at: Vec<_> = view
            .locations
            .iter()
            .map(|l| (l.location.as_str(), l.stock.available))
            .collect();
        assert_eq!(at, [("AMS-1", 6), ("BER-1", 4)]);
        // A write-off at one location cannot take what only the other holds.
        let damage = json!({"reason": "DAMAGE", "delta": -5, "location": "BER-1"});
        let refused = adjust(&store, damage).await;
        assert!(matches!(refused, Err(InventoryError::Stock(_))));
        let trail = store.all_adjustments(&sku());
        assert_eq!(trail.last().unwrap().location.as_deref(), Some("AMS-1"));
        assert_eq!(trail.len(), 2);
    }

    #[tokio::test]
    async fn a_transfer_leaves_one_location_and_arrives_at_the_other_once() {
        let store = mug(5).await;
        // More than Berlin has, and a transfer to where the units already are: refused.
        for (to, quantity) in [("AMS-1", 6), ("BER-1", 1)] {
            let body = json!({"from": "BER-1", "to": to, "quantity": quantity});
            let refused = dispatch(&store, &format!("refused-{to}"), body).await;
            let expected = match to {
                "AMS-1" => matches!(refused, Err(InventoryError::Stock(_))),
                _ => matches!(refused, Err(InventoryError::Invalid(_))),
            };
            assert!(expected, "{refused:?}");
        }

        let body = json!({"from": "BER-1", "to": "AMS-1", "quantity": 3, "note": "rebalance"});
        let sent = dispatch(&store, "t1", body.clone()).await.unwrap();
        assert!(!sent.replayed);
        let sent = sent.transfer;
        assert_eq!(sent.status, TransferStatus::InTransit);
        // A retry of the same request is the same transfer; the key with another is refused.
        let again = dispatch(&store, "t1", body).await.unwrap();
        assert_eq!(
            (again.transfer.id.as_str(), again.replayed),
            (sent.id.as_str(), true)
        );
        let other = json!({"from": "BER-1", "to": "AMS-1", "quantity": 1});
        let reused = dispatch(&store, "t1", other).await;
        assert!(
            matches!(reused, Err(InventoryError::KeyReused)),
            "{reused:?}"
        );
        let both = || async {
            (
                available_at(&store, "BER-1").await,
                available_at(&store, "AMS-1").await,
            )
        };
        assert_eq!(both().await, (2, 0), "in transit: at neither");
        assert_eq!(get(&store).await.on_hand, 2);

        let arrived = receive(&store, &sent.id).await.unwrap();
        assert_eq!(arrived.status, TransferStatus::Received);
        assert_eq!(both().await, (2, 3));
        let again = receive(&store, &sent.id).await;
        assert!(
            matches!(again, Err(InventoryError::Transfer(_))),
            "{again:?}"
        );
        assert_eq!(both().await, (2, 3), "received once");

        let trail: Vec<_> = store
            .all_adjustments(&sku())
            .iter()
            .map(|a| (a.reason, a.location.clone().unwrap()))
            .collect();
        assert_eq!(
            trail[1..],
            [
                (AdjustmentReason::TransferOut, "BER-1".to_owned()),
                (AdjustmentReason::TransferIn, "AMS-1".to_owned())
            ]
        );
        let listed = store.transfers(&sku(), 10, None).await.unwrap();
        assert_eq!(listed.items, [arrived]);
    }

    #[tokio::test]
    async fn refuses_changes_that_would_go_negative_and_writes_nothing() {
        let store = mug(2).await;
        let result = adjust(&store, json!({"reason": "DAMAGE", "delta": -3})).await;
        assert!(matches!(result, Err(InventoryError::Stock(_))));
        assert_eq!(get(&store).await.available, 2);
        assert_eq!(store.all_adjustments(&sku()).len(), 1);
    }

    #[tokio::test]
    async fn names_every_bad_field() {
        let store = InMemoryStore::default();
        let body = json!({"name": "", "unitPrice": {"amount": 5, "currency": "USD"}, "weightGrams": -1, "colour": "red"});
        let Err(InventoryError::Invalid(errors)) = put(&store, body).await else {
            panic!("expected validation errors");
        };
        let fields: Vec<_> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["colour", "name", "unitPrice.currency", "weightGrams"]
        );
    }

    #[tokio::test]
    async fn a_sku_created_without_on_hand_is_listed_with_no_stock() {
        let store = InMemoryStore::default();
        let body =
            json!({"name": "Mug", "unitPrice": {"amount": 5, "currency": "EUR"}, "weightGrams": 1});
        let (view, created) = put(&store, body).await.unwrap();
        assert!(created);
        assert_eq!((view.available, view.reserved, view.on_hand), (0, 0, 0));
        assert!(store.all_adjustments(&sku()).is_empty(), "no stock moved");
    }

    #[tokio::test]
    async fn a_receipt_sent_twice_with_its_key_is_recorded_once() {
        let store = InMemoryStore::with_products([crate::fixtures::product("MUG-1", 500, 4)]);
        let here = Locations::default_locations();
        let form = IdempotencyKey::parse("console-form-1").unwrap();
        let receipt = json!({"reason": "RECEIPT", "delta": 5});
        let at = Utc::now();
        let first = adjust_stock(&store, &here, &admin(), &sku(), &receipt, Some(&form), at)
            .await
            .unwrap();
        let second = adjust_stock(&store, &here, &admin(), &sku(), &receipt, Some(&form), at)
            .await
            .unwrap();
        assert_eq!((first.stock.available(), second.stock.available()), (9, 9));
        assert_eq!(store.all_adjustments(&sku()).len(), 1);
        let other = json!({"reason": "RECEIPT", "delta": 6});
        assert!(matches!(
            adjust_stock(&store, &here, &admin(), &sku(), &other, Some(&form), at).await,
            Err(InventoryError::KeyReused)
        ));
        // Without a key, every request is recorded.
        adjust_stock(&store, &here, &admin(), &sku(), &receipt, None, at)
            .await
            .unwrap();
        assert_eq!(store.all_adjustments(&sku()).len(), 2);
    }

    /// `POST /inventory/MUG-1/purchase-orders` of `body` under the Idempotency-Key `key`.
    async fn order_more(
        store: &InMemoryStore,
        key: &str,
        body: serde_json::Value,
    ) -> Result<Placed, InventoryError> {
        let (here, key) = (
            Locations::default_locations(),
            IdempotencyKey::parse(key).unwrap(),
        );
        place_purchase_order(store, &here, &admin(), &sku(), &key, &body, Utc::now()).await
    }

    #[tokio::test]
    async fn a_purchase_order_is_incoming_until_it_arrives_and_each_delivery_counts_once() {
        let store = mug(2).await;
        let body = json!({"quantity": 10, "expectedOn": (Utc::now() + chrono::Duration::days(5)).date_naive().to_string(), "supplierReference": "ACME-77"});
        let placed = order_more(&store, "po-1", body.clone()).await.unwrap();
        assert!(!placed.replayed);
        let again = order_more(&store, "po-1", body.clone()).await.unwrap();
        assert_eq!(
            (again.order.id.as_str(), again.replayed),
            (placed.order.id.as_str(), true)
        );
        let mut other = body.clone();
        other["quantity"] = json!(11);
        assert!(matches!(
            order_more(&store, "po-1", other).await,
            Err(InventoryError::KeyReused)
        ));
        let view = get(&store).await;
        assert_eq!(
            (view.available, view.incoming),
            (2, Some(10)),
            "ordered once, not yet here"
        );
        assert_eq!(view.locations[0].incoming, Some(10));

        let id = placed.order.id.as_str();
        let receive = |n: u32, seen: u32| {
            let store = &store;
            async move {
                step_purchase_order(
                    store,
                    &Locations::default_locations(),
                    &admin(),
                    &sku(),
                    id,
                    Some(&json!({"quantity": n, "expectedReceived": seen})),
                    Utc::now(),
                )
                .await
            }
        };
        let some = receive(6, 0).await.unwrap();
        assert_eq!(
            (some.received, some.status),
            (6, crate::purchase::PurchaseStatus::Open)
        );
        let view = get(&store).await;
        assert_eq!((view.available, view.incoming), (8, Some(4)));
        assert!(
            matches!(
                receive(6, 0).await,
                Err(InventoryError::DeliveryNotAsSeen { found: 6, .. })
            ),
            "the same delivery again (a retry, a second tab) is refused"
        );
        assert!(
            matches!(receive(5, 6).await, Err(InventoryError::Invalid(e)) if e.0[0].field == "quantity")
        );
        assert_eq!(
            receive(4, 6).await.unwrap().status,
            crate::purchase::PurchaseStatus::Received
        );
        assert!(
            matches!(receive(1, 10).await, Err(InventoryError::Purchase(_))),
            "nothing more arrives on it"
        );
        let view = get(&store).await;
        assert_eq!((view.available, view.incoming), (12, Some(0)));
        let receipts = store.all_adjustments(&sku());
        assert_eq!(receipts.len(), 3, "the creation and two deliveries");

        // Another, closed with units outstanding: no longer incoming.
        let late = order_more(&store, "po-2", body).await.unwrap();
        let closed = step_purchase_order(
            &store,
            &Locations::default_locations(),
            &admin(),
            &sku(),
            &late.order.id,
            None,
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(closed.status, crate::purchase::PurchaseStatus::Closed);
        assert_eq!(get(&store).await.incoming, Some(0));
        assert!(matches!(
            order_more(&store, "po-3", json!({"quantity": 1, "expectedOn": "2020-01-01"})).await,
            Err(InventoryError::Invalid(e)) if e.0[0].field == "expectedOn"
        ));
    }

    #[tokio::test]
    async fn a_transfer_in_transit_is_incoming_at_its_destination() {
        let store = mug(10).await;
        let sent = dispatch(
            &store,
            "tr-1",
            json!({"from": "BER-1", "to": "AMS-1", "quantity": 4}),
        )
        .await
        .unwrap();
        let at = |view: &ProductView, location: &str| {
            view.locations
                .iter()
                .find(|l| l.location == location)
                .and_then(|l| l.incoming)
        };
        let view = get(&store).await;
        assert_eq!((view.incoming, at(&view, "AMS-1")), (Some(4), Some(4)));
        receive(&store, &sent.transfer.id).await.unwrap();
        let view = get(&store).await;
        assert_eq!((view.incoming, at(&view, "AMS-1")), (Some(0), Some(0)));
    }

    /// Units arriving where an order waits for them, or at another location that sends its
    /// parcels, fill it in the write that brings them; arriving at a store that sends no
    /// parcels, they fill nothing until a transfer brings them on.
    #[tokio::test]
    async fn stock_arriving_where_it_can_be_sent_fills_the_waiting_order_in_its_own_write() {
        use crate::app::reservation::{reserve_order, ReservationResult, Routing};
        use crate::order::tests::{placed, product};
        let store = mug(0).await;
        let body = json!({"name": "Mug", "unitPrice": {"amount": 1200, "currency": "EUR"}, "weightGrams": 350,
            "selling": {"policy": "BACKORDER", "limit": 5}});
        put(&store, body).await.unwrap();
        let waiting = |n: u32| {
            let order = placed(
                json!([{"sku": "MUG-1", "quantity": n}]),
                &[product("MUG-1", 1200, 0)],
            )
            .authorized_for_test(Utc::now());
            store.insert_order(order.clone());
            order
        };
        let first = waiting(2);
        let reserved = reserve_order(&store, &store, Routing::demo(), &first.id, Utc::now())
            .await
            .unwrap();
        assert_eq!(reserved, ReservationResult::Reserved);
        assert_eq!(
            store.get(&first.id).await.unwrap().unwrap().backordered(),
            2
        );
        // Two arrive at the store, which sends no parcels: the order still waits.
        adjust(
            &store,
            json!({"reason": "RECEIPT", "delta": 2, "location": "BER-STORE-1"}),
        )
        .await
        .unwrap();
        assert_eq!(
            store.get(&first.id).await.unwrap().unwrap().backordered(),
            2
        );
        // Sent on to Berlin: their arrival fills the order in the transfer's write.
        let body = json!({"from": "BER-STORE-1", "to": "BER-1", "quantity": 2});
        let sent = dispatch(&store, "t-fill", body).await.unwrap().transfer;
        receive(&store, &sent.id).await.unwrap();
        let filled = store.get(&first.id).await.unwrap().unwrap();
        assert_eq!(filled.backordered(), 0);
        assert_eq!(
            filled.last_change.as_ref().unwrap().event,
            crate::order::history::OrderEvent::BackorderFilled
        );
        let mug = store.product(&sku()).await.unwrap().unwrap();
        let berlin = mug.stock.at("BER-1");
        assert_eq!((berlin.available(), berlin.reserved()), (0, 2));
        assert_eq!(mug.backorders.backordered, 0);
        // The history records what the write left.
        let history = store.adjustments(&sku(), 1, None).await.unwrap().items;
        assert_eq!(history[0].after.reserved(), 2);

        // A second order waits in Berlin; a receipt in Amsterdam, which sends its parcels too,
        // fills it there before anything is available to a new order.
        let second = waiting(3);
        reserve_order(&store, &store, Routing::demo(), &second.id, Utc::now())
            .await
            .unwrap();
        adjust(
            &store,
            json!({"reason": "RECEIPT", "delta": 4, "location": "AMS-1"}),
        )
        .await
        .unwrap();
        let filled = store.get(&second.id).await.unwrap().unwrap();
        assert_eq!(filled.backordered(), 0);
        assert_eq!(filled.locations(), ["AMS-1"]);
        assert_eq!(filled.hold(), None, "it goes to the warehouse");
        let change = filled.last_change.as_ref().unwrap();
        assert_eq!(
            change.event,
            crate::order::history::OrderEvent::BackorderFilled
        );
        let mug = store.product(&sku()).await.unwrap().unwrap();
        let amsterdam = mug.stock.at("AMS-1");
        assert_eq!((amsterdam.available(), amsterdam.reserved()), (1, 3));
        assert_eq!(mug.backorders.backordered, 0);
        assert!(mug.backorders.waiting.is_empty());
    }

    /// An order that ships what is there: its units in stock go to the warehouse at once and
    /// leave, their share of the money taken (with the shipping charge); the rest arrives, is
    /// parcelled in a shipment of its own and takes the rest of the total. Another such order
    /// calls its waiting unit off after its first parcel left: the hold's rest is released.
    #[tokio::test]
    async fn an_order_that_ships_what_is_there_leaves_in_parts_and_the_money_follows() {
        use crate::app::fulfillment::{start_fulfillment, StartResult};
        use crate::app::reservation::{reserve_order, ReservationResult, Routing};
        use crate::fixtures::{parcel, tracking};
        use crate::order::payments::PspRequestKind;
        use crate::order::tests::{placed, product};
        use crate::order::OrderStatus;
        let store = mug(2).await;
        let body = json!({"name": "Mug", "unitPrice": {"amount": 1200, "currency": "EUR"}, "weightGrams": 350,
            "selling": {"policy": "BACKORDER", "limit": 5}});
        put(&store, body).await.unwrap();
        let catalog = [product("MUG-1", 1200, 0)];
        let policy = crate::shipping::ShippingPolicy::default_policy();
        let place = |seconds: i64| {
            let mut order = placed(json!([{"sku": "MUG-1", "quantity": 3}]), &catalog);
            let at =
                Utc::now() - chrono::Duration::minutes(10) + chrono::Duration::seconds(seconds);
            order.id = crate::ids::OrderId::generate(at);
            order.created_at = at;
            order.shipping.ship_complete = false;
            order.authorized_for_test(at)
        };
        let ship = |order: &crate::order::Order, number: u32| {
            let packed = order
                .pick(number, "picker", Utc::now())
                .unwrap()
                .pack(number, parcel(), "packer", Utc::now())
                .unwrap();
            let mut tracking = tracking();
            tracking.tracking_number = format!("JJD-{}-{number}", order.id);
            packed
                .ship(
                    number,
                    tracking,
                    packed.shipping.estimate,
                    "packer",
                    Utc::now(),
                )
                .unwrap()
        };
        let order = place(0);
        store.insert_order(order.clone());
        let reserved = reserve_order(&store, &store, Routing::demo(), &order.id, Utc::now())
            .await
            .unwrap();
        assert_eq!(reserved, ReservationResult::Reserved);
        let waiting = store.get(&order.id).await.unwrap().unwrap();
        assert_eq!((waiting.backordered(), waiting.hold()), (1, None));
        // What is there goes to the warehouse now: one parcel of two.
        let started = start_fulfillment(&store, &policy, &order.id, Utc::now())
            .await
            .unwrap();
        assert_eq!(started, StartResult::Started);
        let started = store.get(&order.id).await.unwrap().unwrap();
        assert_eq!(started.shipments.len(), 1);
        assert_eq!(started.shipments[0].units(), 2);
        assert_eq!(
            (started.parcels_expected(), started.units_to_come()),
            (2, 1)
        );
        // It leaves: the order is partly shipped, and two mugs and the shipping are captured,
        // with more to follow under the same payment.
        let first_left = ship(&started, 1);
        assert_eq!(first_left.status, OrderStatus::PartiallyShipped);
        let captures: Vec<_> = first_left
            .payment
            .requests
            .iter()
            .filter(|r| r.kind == PspRequestKind::Capture)
            .collect();
        let shipping = first_left.totals.shipping.minor_units();
        assert_eq!(captures.len(), 1);
        assert_eq!(captures[0].amount.minor_units(), 2 * 1200 + shipping);
        assert!(captures[0].more_follow);
        // The PSP takes it (one capture at a time: the next parcel's waits for this answer).
        let confirm = |order: &crate::order::Order, request: usize| {
            use crate::order::payments::{PaymentEvent, PaymentEventKind, PaymentPolicy};
            let asked = &order.payment.requests[request];
            let event = PaymentEvent {
                event_id: format!("captured-{}", asked.request_id),
                kind: PaymentEventKind::CaptureSucceeded,
                amount: asked.amount,
                occurred_at: Utc::now(),
                psp_reference: asked.psp_reference.clone(),
                refund_id: None,
                request_id: Some(asked.request_id.clone()),
                reason: None,
            };
            match order
                .record_payment(&event, &PaymentPolicy::default(), Utc::now())
                .unwrap()
            {
                crate::order::payments::PaymentUpdate::Recorded(next) => *next,
                other => panic!("not recorded: {other:?}"),
            }
        };
        let first_left = confirm(&first_left, 0);
        store.insert_order(first_left.clone());
        // A mug arrives: it fills the waiting unit, and its parcel is made.
        adjust(&store, json!({"reason": "RECEIPT", "delta": 1}))
            .await
            .unwrap();
        let filled = store.get(&order.id).await.unwrap().unwrap();
        assert_eq!(filled.backordered(), 0);
        assert_eq!(
            filled.last_change.as_ref().unwrap().event,
            crate::order::history::OrderEvent::BackorderFilled
        );
        assert_eq!(
            filled.status,
            OrderStatus::PartiallyShipped,
            "one still to leave"
        );
        assert_eq!(
            start_fulfillment(&store, &policy, &order.id, Utc::now())
                .await
                .unwrap(),
            StartResult::Started
        );
        assert!(
            matches!(
                start_fulfillment(&store, &policy, &order.id, Utc::now())
                    .await
                    .unwrap(),
                StartResult::AlreadyMoved(_)
            ),
            "parcelled once"
        );
        let parcelled = store.get(&order.id).await.unwrap().unwrap();
        assert_eq!(parcelled.shipments.len(), 2);
        assert_eq!(
            (
                parcelled.shipments[1].number,
                parcelled.shipments[1].units()
            ),
            (2, 1)
        );
        assert_eq!(
            parcelled.shipment_at("BER-1").map(|s| s.number),
            Some(2),
            "the pick list shows the parcel still to pick"
        );
        // It leaves too: the rest of the total is captured, and the captures add up to it.
        let all_left = ship(&parcelled, 2);
        assert_eq!(all_left.status, OrderStatus::Shipped);
        let captured: Vec<_> = all_left
            .payment
            .requests
            .iter()
            .filter(|r| r.kind == PspRequestKind::Capture)
            .collect();
        assert_eq!(captured.len(), 2);
        assert_eq!(captured[1].amount.minor_units(), 1200);
        assert!(!captured[1].more_follow);
        let all_left = confirm(&all_left, 1);
        assert_eq!(
            all_left.payment_status(),
            crate::order::payments::PaymentStatus::Paid
        );
        assert_eq!(
            captured.iter().map(|r| r.amount.minor_units()).sum::<i64>(),
            all_left.totals.total.minor_units()
        );

        // Another: its waiting unit is called off after its first parcel left. The order is
        // shipped, and the hold's rest released once the first share is taken.
        let other = place(5);
        store.insert_order(other.clone());
        reserve_order(&store, &store, Routing::demo(), &other.id, Utc::now())
            .await
            .unwrap();
        let before = store.product(&sku()).await.unwrap().unwrap();
        assert_eq!(
            before.backorders.backordered, 3,
            "nothing was free: all wait"
        );
        let waiting = store.get(&other.id).await.unwrap().unwrap();
        assert_eq!(
            waiting.hold(),
            Some("BACKORDERED"),
            "nothing reserved, nothing ships"
        );
        assert!(matches!(
            start_fulfillment(&store, &policy, &other.id, Utc::now())
                .await
                .unwrap(),
            StartResult::Backordered(3)
        ));
        adjust(&store, json!({"reason": "RECEIPT", "delta": 2}))
            .await
            .unwrap();
        start_fulfillment(&store, &policy, &other.id, Utc::now())
            .await
            .unwrap();
        let started = store.get(&other.id).await.unwrap().unwrap();
        assert_eq!(
            (started.shipments[0].units(), started.backordered()),
            (2, 1)
        );
        let first_left = ship(&started, 1);
        assert_eq!(first_left.cancellable_units()[0].1, 1, "the waiting unit");
        let request = crate::order::commands::UnitCancelRequest {
            lines: vec![crate::order::commands::RequestedLine {
                sku: sku(),
                quantity: crate::quantity::Quantity::new(1).unwrap(),
            }],
            reason: "no longer wanted".into(),
        };
        let change = first_left
            .cancel_units(&request, "k-1", "customer", |_, _| None, Utc::now())
            .unwrap();
        let called_off = change.order;
        assert_eq!(called_off.status, OrderStatus::Shipped);
        assert_eq!(called_off.totals.subtotal.minor_units(), 2 * 1200);
        assert_eq!(
            change.moves[0].movement,
            crate::stock::StockMovement::ReleaseBackorder
        );
        let share = called_off
            .payment
            .requests
            .iter()
            .find(|r| r.kind == PspRequestKind::Capture)
            .unwrap()
            .amount
            .minor_units();
        assert_eq!(
            share,
            called_off.totals.total.minor_units(),
            "the first share is all it costs"
        );
        assert!(
            called_off.refunds.is_empty(),
            "nothing taken for the unit called off"
        );
        // Once the first share is taken, what the payment still holds is released.
        let taken = confirm(&called_off, 0);
        let void = taken
            .payment
            .requests
            .iter()
            .find(|r| r.kind == PspRequestKind::Void)
            .expect("the rest of the hold released");
        assert_eq!(void.psp_reference, taken.payment.requests[0].psp_reference);
    }

    /// Stock freed without a receipt goes to the waiting orders first: a cancelled order's
    /// units fill the order waiting for them in a write right after the cancellation's; and a
    /// receipt for more waiting orders than one write fills goes on until all are filled.
    #[tokio::test]
    async fn freed_stock_and_a_big_receipt_fill_the_waiting_orders_first() {
        use crate::app::reservation::{reserve_order, Routing};
        use crate::order::tests::{placed, product};
        let store = mug(2).await;
        let body = json!({"name": "Mug", "unitPrice": {"amount": 1200, "currency": "EUR"}, "weightGrams": 350,
            "selling": {"policy": "BACKORDER", "limit": 200}});
        put(&store, body).await.unwrap();
        let catalog = [product("MUG-1", 1200, 0)];
        let start = Utc::now() - chrono::Duration::minutes(30);
        let place = |units: u32, n: i64| {
            let mut order = placed(json!([{"sku": "MUG-1", "quantity": units}]), &catalog);
            let at = start + chrono::Duration::milliseconds(n * 10);
            order.id = crate::ids::OrderId::generate(at);
            order.created_at = at;
            order.authorized_for_test(at)
        };
        let reserve = |order: crate::order::Order| {
            let store = &store;
            async move {
                store.insert_order(order.clone());
                reserve_order(store, store, Routing::demo(), &order.id, Utc::now())
                    .await
                    .unwrap();
                order.id
            }
        };
        let holder = reserve(place(2, 0)).await;
        let waiting = reserve(place(1, 1)).await;
        assert_eq!(store.get(&waiting).await.unwrap().unwrap().backordered(), 1);
        let customer = crate::app::Caller {
            customer_id: CustomerId::parse("customer-1").unwrap(),
            scopes: vec![],
        };
        crate::app::returns::cancel_order(
            &store,
            &crate::app::locations::LocationDirectory::demo(),
            &customer,
            &holder,
            "no".into(),
            None,
            Utc::now(),
        )
        .await
        .unwrap();
        let filled = store.get(&waiting).await.unwrap().unwrap();
        assert_eq!(
            filled.backordered(),
            0,
            "the freed unit went to the waiting order"
        );
        let mug = store.product(&sku()).await.unwrap().unwrap();
        assert_eq!((mug.stock.available(), mug.stock.reserved()), (1, 1));
        assert!(mug.backorders.waiting.is_empty());

        // 95 orders wait for one each; a receipt of 95 fills them all, oldest first.
        let mut ids = Vec::new();
        for n in 0..96 {
            ids.push(reserve(place(1, 100 + n)).await);
        }
        let first = store.get(&ids[0]).await.unwrap().unwrap();
        assert_eq!(
            first.backordered(),
            0,
            "the one free unit went to the first"
        );
        adjust(&store, json!({"reason": "RECEIPT", "delta": 95}))
            .await
            .unwrap();
        for id in &ids {
            assert_eq!(store.get(id).await.unwrap().unwrap().backordered(), 0);
        }
        let mug = store.product(&sku()).await.unwrap().unwrap();
        assert_eq!((mug.stock.available(), mug.backorders.backordered), (0, 0));
    }

    /// One write fills no more orders than a transaction carries: big orders (long timelines)
    /// are filled a few at a time, the rest by the writes that follow.
    #[tokio::test]
    async fn one_write_fills_no_more_orders_than_a_transaction_carries() {
        use crate::app::reservation::{reserve_order, Routing};
        let store = backordering_mug(50).await;
        adjust(&store, json!({"reason": "SHRINKAGE", "delta": -2}))
            .await
            .unwrap();
        let start = Utc::now() - chrono::Duration::minutes(30);
        let mut ids = Vec::new();
        for n in 0..4 {
            let order = paid_mugs(1, start + chrono::Duration::milliseconds(n * 10));
            store.insert_order(order.clone());
            reserve_order(&store, &store, Routing::demo(), &order.id, Utc::now())
                .await
                .unwrap();
            // A long history: about 1.2 MB of it.
            let mut stored = store.get(&order.id).await.unwrap().unwrap();
            stored.timeline[0].note = Some("x".repeat(1_200_000));
            store.insert_order(stored);
            ids.push(order.id);
        }
        let mut mug = store.product(&sku()).await.unwrap().unwrap();
        assert_eq!(mug.backorders.backordered, 4);
        let at = store.get(&ids[0]).await.unwrap().unwrap().lines[0].backorders[0]
            .location
            .clone();
        mug.stock
            .set(&at, crate::stock::StockLevel::from_counters(4, 0).unwrap());
        let filled = fill_waiting(
            &store,
            &mut mug,
            &at,
            &Locations::default_locations(),
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(filled.len(), 2, "two of 1.2 MB fit 3 MB, a third would not");
        assert_eq!(filled[0].id, ids[0], "the oldest first");
        assert_eq!(
            mug.stock.at(&at).available(),
            2,
            "the rest for the next write"
        );
    }

    /// MUG-1 with 2 on hand that may backorder up to `limit` units.
    async fn backordering_mug(limit: u32) -> InMemoryStore {
        let store = mug(2).await;
        let body = json!({"name": "Mug", "unitPrice": {"amount": 1200, "currency": "EUR"}, "weightGrams": 350,
            "selling": {"policy": "BACKORDER", "limit": limit}});
        put(&store, body).await.unwrap();
        store
    }

    /// A paid order of `units` MUG-1 placed at `at` (its id sorts by it).
    fn paid_mugs(units: u32, at: DateTime<Utc>) -> crate::order::Order {
        use crate::order::tests::{placed, product};
        let mut order = placed(
            json!([{"sku": "MUG-1", "quantity": units}]),
            &[product("MUG-1", 1200, 0)],
        );
        order.created_at = at;
        order.id = crate::ids::OrderId::generate(at);
        order.authorized_for_test(at)
    }

    #[tokio::test]
    async fn waiting_orders_are_promised_again_as_purchase_orders_are_placed_and_closed() {
        use crate::app::reservation::{reserve_order, Routing};
        let store = backordering_mug(10).await;
        let mut placed_at = Utc::now() - chrono::Duration::minutes(10);
        let mut place = |units: u32| {
            placed_at += chrono::Duration::seconds(1);
            paid_mugs(units, placed_at)
        };
        // The oldest takes the two there and waits for one; the second waits for two.
        let (oldest, second) = (place(3), place(2));
        for order in [&oldest, &second] {
            store.insert_order(order.clone());
            reserve_order(&store, &store, Routing::demo(), &order.id, Utc::now())
                .await
                .unwrap();
        }
        let promise = |id: crate::ids::OrderId| {
            let store = &store;
            async move {
                let order = store.get(&id).await.unwrap().unwrap();
                (order.lines[0].promised_on, order.last_change.unwrap().event)
            }
        };
        assert_eq!(promise(oldest.id.clone()).await.0, None);
        let in_days = |n: i64| (Utc::now() + chrono::Duration::days(n)).date_naive();
        // Two ordered for in five days: the oldest's unit is promised then; the second's two
        // are the 2nd and 3rd waiting, which it does not bring.
        let first_po = order_more(
            &store,
            "po-1",
            json!({"quantity": 2, "expectedOn": in_days(5).to_string()}),
        )
        .await
        .unwrap();
        let (on, event) = promise(oldest.id.clone()).await;
        assert_eq!(on, Some(in_days(5)));
        assert_eq!(
            event,
            crate::order::history::OrderEvent::PromiseRevised { sku: sku() }
        );
        assert_eq!(promise(second.id.clone()).await.0, None);
        // Five more for in ten days: the second is promised then.
        order_more(
            &store,
            "po-2",
            json!({"quantity": 5, "expectedOn": in_days(10).to_string()}),
        )
        .await
        .unwrap();
        assert_eq!(promise(second.id.clone()).await.0, Some(in_days(10)));
        let version = store.get(&second.id).await.unwrap().unwrap().version;
        // The first will not come: the oldest now waits for the second delivery; the second's
        // promise stands (no new version, nothing told).
        step_purchase_order(
            &store,
            &Locations::default_locations(),
            &admin(),
            &sku(),
            first_po.order.id.as_str(),
            None,
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(promise(oldest.id.clone()).await.0, Some(in_days(10)));
        assert_eq!(
            store.get(&second.id).await.unwrap().unwrap().version,
            version
        );
    }

    /// Backorders in the application: a SKU that may backorder three units takes orders past
    /// its stock up to that and no further; a receipt fills the oldest first, in its own write;
    /// a count that leaves nothing available fills nothing; a cancellation gives its waiting
    /// units back without touching another order's.
    #[tokio::test]
    async fn backorders_are_taken_up_to_the_limit_and_filled_oldest_first() {
        use crate::app::reservation::{reserve_order, ReservationResult, Routing};
        let store = backordering_mug(3).await;
        let mut placed_at = Utc::now() - chrono::Duration::minutes(10);
        let mut place = |units: u32| {
            placed_at += chrono::Duration::seconds(1);
            paid_mugs(units, placed_at)
        };
        let (oldest, second, third) = (place(3), place(2), place(1));
        for order in [&oldest, &second, &third] {
            store.insert_order(order.clone());
        }
        let reserve = |id: crate::ids::OrderId| {
            let store = &store;
            async move {
                reserve_order(store, store, Routing::demo(), &id, Utc::now())
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            reserve(oldest.id.clone()).await,
            ReservationResult::Reserved
        );
        assert_eq!(
            reserve(second.id.clone()).await,
            ReservationResult::Reserved
        );
        // The limit is reached: the third is rejected, naming the short line.
        let ReservationResult::Rejected(short) = reserve(third.id.clone()).await else {
            panic!("rejected")
        };
        assert_eq!(short[0].sku.as_str(), "MUG-1");
        let counters = |p: &Product| {
            (
                p.stock.available(),
                p.stock.reserved(),
                p.backorders.backordered,
                p.backorders.waiting.len(),
            )
        };
        let mug_now = || async { store.product(&sku()).await.unwrap().unwrap() };
        assert_eq!(counters(&mug_now().await), (0, 2, 3, 2));
        let first = store.get(&oldest.id).await.unwrap().unwrap();
        assert_eq!(
            (
                first.lines[0].allocations[0].quantity.get(),
                first.backordered()
            ),
            (2, 1)
        );
        assert_eq!(first.hold(), Some("BACKORDERED"));
        assert!(matches!(
            first.start_fulfillment("BER-1", Utc::now()),
            Err(crate::order::fulfillment::FulfillmentError::Backordered(1))
        ));

        // Two arrive: the oldest order's one, then one of the second's two; nothing is left
        // available for new orders.
        let after = adjust(&store, json!({"reason": "RECEIPT", "delta": 2}))
            .await
            .unwrap();
        assert_eq!((after.available, after.reserved), (0, 4));
        assert_eq!(counters(&mug_now().await), (0, 4, 1, 1));
        let first = store.get(&oldest.id).await.unwrap().unwrap();
        assert_eq!(first.backordered(), 0);
        assert_eq!(
            first.last_change.as_ref().unwrap().event,
            crate::order::history::OrderEvent::BackorderFilled
        );
        assert_eq!(first.hold(), None);
        assert!(first.start_fulfillment("BER-1", Utc::now()).is_ok());
        let waiting = store.get(&second.id).await.unwrap().unwrap();
        assert_eq!(waiting.backordered(), 1);
        assert_eq!(
            waiting.last_change.as_ref().unwrap().event,
            crate::order::history::OrderEvent::Updated
        );
        // The history records what the write left: the two units reserved for the orders.
        let history = store.adjustments(&sku(), 1, None).await.unwrap().items;
        assert_eq!(
            (history[0].after.available(), history[0].after.reserved()),
            (0, 4)
        );

        // A count that leaves nothing available fills nothing.
        adjust(&store, json!({"reason": "COUNT", "countedOnHand": 4}))
            .await
            .unwrap();
        assert_eq!(counters(&mug_now().await), (0, 4, 1, 1));
        assert_eq!(
            store.get(&second.id).await.unwrap().unwrap().backordered(),
            1
        );
        // A count sent with the SKU itself (`PUT /inventory/MUG-1` with `onHand`) is a count
        // too: the unit it finds goes to the waiting order in its write, none to new orders.
        let body = json!({"name": "Mug", "unitPrice": {"amount": 1200, "currency": "EUR"}, "weightGrams": 350,
            "selling": {"policy": "BACKORDER", "limit": 3}, "onHand": 5});
        put(&store, body).await.unwrap();
        assert_eq!(counters(&mug_now().await), (0, 5, 0, 0));
        assert_eq!(
            store.get(&second.id).await.unwrap().unwrap().backordered(),
            0
        );
        let history = store.adjustments(&sku(), 1, None).await.unwrap().items;
        assert_eq!(
            (history[0].after.available(), history[0].after.reserved()),
            (0, 5)
        );

        // The second order is cancelled: its reserved unit and its waiting one go back; no
        // other order's units move.
        let cancelled = crate::app::returns::cancel_order(
            &store,
            &crate::app::locations::LocationDirectory::demo(),
            &admin(),
            &second.id,
            "changed my mind".into(),
            None,
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(cancelled.status, crate::order::OrderStatus::Cancelled);
        assert_eq!(counters(&mug_now().await), (2, 3, 0, 0));
        let first_again = store.get(&oldest.id).await.unwrap().unwrap();
        assert_eq!(first_again.version, first.version, "untouched");
        let product = mug_now().await;
        assert_eq!(
            product.stock.on_hand(),
            product.stock.available() + product.stock.reserved()
        );
    }
}

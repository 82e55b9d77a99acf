//! The single-table DynamoDB store: one [`DynamoStore`] implementing every port, a file per
//! port — [`orders`] (`OrderStore`), [`inventory`] (`InventoryStore`), [`transactions`]
//! (`OrderTransactions`), [`notifications`] (`NotificationStore`), [`locations`]
//! (`LocationStore`) — over the item layout, the
//! keys and the reads they share, here.
//!
//! ## Item layout
//! | item | `pk` | `sk` | index keys |
//! |---|---|---|---|
//! | order | `ORDER#<orderId>` | `ORDER` | `gsi1`: `CUSTOMER#<customerId>` / `ORDER#<orderId>` (a customer's orders, newest first: order ids are ULIDs); `gsi2`: `STATUS#<status>` / `<statusSince>#<orderId>` (orders by status and how long they have been in it: the sweep); sparse: `gsi3` the pick list (`FULFILLMENT#<location>#<status>` / `<queuedAt>#<orderId>`, for its first shipment still in a warehouse), `gsi4` `RETURNS#PENDING_APPROVAL` / `<requestedAt>#<orderId>` (returns waiting for staff), else `RETURNS#ARRIVING` / `<approvedAt>#<orderId>` (approved returns on their way), `gsi5` `PAYMENTS#ATTENTION`, `PAYMENTS#CAPTURE_REQUESTED` or `PAYMENTS#AWAITING_CAPTURE` / `<since>#<orderId>` (money that needs staff; captures the PSP has not confirmed; authorizations waiting for their capture) |
//! | pick-list entry of a split order's other shipment | `ORDER#<orderId>` | `SHIPMENT#<n>` | sparse `gsi3` as the order's, while that shipment is in its location's work; read back as the order it names |
//! | idempotency record | `IDEMPOTENCY#<customerId>#<key>` | `IDEMPOTENCY` | — (expires after [`IDEMPOTENCY_TTL_DAYS`] through the table's TTL) |
//! | product and its stock (the default location's counters at the top level, every other location's under `locations`) | `SKU#<sku>` | `PRODUCT` | `gsi6`: `CATALOG` / `<sku>` (the catalog in SKU order) |
//! | stock adjustment (and a transfer's step) | `SKU#<sku>` | `ADJUSTMENT#<id>` | — |
//! | transfer between locations | `SKU#<sku>` | `TRANSFER#<id>` | — |
//! | what a transfer dispatch's `Idempotency-Key` made | `SKU#<sku>` | `TRANSFER-KEY#<key>` | — |
//! | purchase order (stock on its way from a supplier) | `SKU#<sku>` | `PURCHASE#<id>` | — |
//! | what a purchase order's `Idempotency-Key` made | `SKU#<sku>` | `PURCHASE-KEY#<key>` | — |
//! | what an adjustment's `Idempotency-Key` made (a copy of the adjustment) | `SKU#<sku>` | `ADJUSTMENT-KEY#<key>` | — |
//! | notification preferences | `CUSTOMER#<customerId>` | `PREFERENCES` | — |
//! | notification cursor (the order's next event to notify, its claim and channels sent) | `ORDER#<orderId>` | `NOTIFIED` | — |
//! | the locations staff keep (the whole list, its version, who saved it) | `CONFIG#LOCATIONS` | `LOCATIONS` | — |
//!
//! Every item carries `entity`, so a reader of the table's stream knows what it holds. The
//! domain's fields are stored as top-level attributes (`serde_dynamo`, flattened), so conditions
//! and updates can name them: `version` on orders and products, `available` and `reserved` on
//! products. Identifiers cannot contain `#` (the domain refuses it), so no value forges a key.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, NaiveDate, Utc};
use oms_domain::ids::{CustomerId, IdempotencyKey, OrderId, Sku};
use oms_domain::notifications::{Channel, Preferences};
use oms_domain::order::fulfillment::{Fulfillment, FulfillmentStatus};
use oms_domain::order::OrderChange;
use oms_domain::order::{Order, OrderStatus, Shortage};
use oms_domain::ports::{
    CommitOutcome, CreateOutcome, IdempotencyRecord, InventoryStore, NotificationCursor,
    NotificationStore, OrderStore, OrderTransactions, Page, PaymentWatch, StoreError,
    NOTIFICATION_CLAIM_SECONDS,
};
use oms_domain::replenishment::{Demand, Replenishment};
use oms_domain::shipping::ShippingPolicy;
use oms_domain::stock::{
    Product, Stock, StockAdjustment, StockDelta, StockLevel, Transfer, TransferKey, TransferStatus,
    TransferStep,
};
use serde::{Deserialize, Serialize};

use crate::aws_error::classify;
use crate::config::LazyClient;

mod attempts;
mod inventory;
mod locations;
mod notifications;
mod orders;
mod transactions;

/// How long a client may retry a `POST /orders` with the same `Idempotency-Key`.
pub const IDEMPOTENCY_TTL_DAYS: i64 = 7;
/// The index of a customer's orders.
pub const CUSTOMER_ORDERS_INDEX: &str = "gsi1";
/// The index of orders by status and age.
pub const ORDERS_BY_STATUS_INDEX: &str = "gsi2";
/// The index of shipments the warehouse has work on, by warehouse and status, oldest first.
pub const PICK_LIST_INDEX: &str = "gsi3";
/// The index of orders with a return waiting for staff, longest-waiting first.
pub const PENDING_RETURNS_INDEX: &str = "gsi4";
const PENDING_RETURNS_PARTITION: &str = "RETURNS#PENDING_APPROVAL";
const ARRIVING_RETURNS_PARTITION: &str = "RETURNS#ARRIVING";
/// The index of orders whose money is watched: those that need staff, and authorizations
/// waiting for their capture, each the longest waiting first.
pub const PAYMENT_WATCH_INDEX: &str = "gsi5";
/// The index of the catalog: every product, in SKU order. It projects keys only and its keys never
/// change, so the stock counters' updates on every reservation write nothing to it.
pub const CATALOG_INDEX: &str = "gsi6";
const CATALOG_PARTITION: &str = "CATALOG";

fn payment_watch_partition(watch: PaymentWatch) -> &'static str {
    match watch {
        PaymentWatch::Attention => "PAYMENTS#ATTENTION",
        PaymentWatch::AwaitingCapture => "PAYMENTS#AWAITING_CAPTURE",
        PaymentWatch::CaptureRequested => "PAYMENTS#CAPTURE_REQUESTED",
    }
}

/// The sort key of a listing: when the order joined it, then its id.
fn listing_sort_key(at: DateTime<Utc>, id: &OrderId) -> String {
    format!(
        "{}#{id}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    )
}

/// The item types of the table, as the `entity` attribute names them.
pub mod entity {
    pub const ORDER: &str = "ORDER";
    pub const IDEMPOTENCY: &str = "IDEMPOTENCY";
    pub const PRODUCT: &str = "PRODUCT";
    pub const STOCK_ADJUSTMENT: &str = "STOCK_ADJUSTMENT";
    pub const TRANSFER: &str = "TRANSFER";
    pub const SHIPMENT: &str = "SHIPMENT";
    pub const TRANSFER_KEY: &str = "TRANSFER_KEY";
    pub const PURCHASE_ORDER: &str = "PURCHASE_ORDER";
    pub const PURCHASE_KEY: &str = "PURCHASE_KEY";
    pub const ADJUSTMENT_KEY: &str = "ADJUSTMENT_KEY";
    pub const PREFERENCES: &str = "PREFERENCES";
    pub const NOTIFICATION_CURSOR: &str = "NOTIFICATION_CURSOR";
    pub const LOCATIONS: &str = "LOCATIONS";
    pub const SEARCH: &str = "SEARCH";
    pub const ATTEMPTS: &str = "ATTEMPTS";
}

fn order_pk(id: &OrderId) -> String {
    format!("ORDER#{id}")
}

fn sku_pk(sku: &Sku) -> String {
    format!("SKU#{sku}")
}

fn idempotency_pk(customer: &CustomerId, key: &IdempotencyKey) -> String {
    format!("IDEMPOTENCY#{customer}#{key}")
}

#[derive(Serialize, Deserialize)]
struct OrderItem {
    pk: String,
    sk: String,
    entity: String,
    gsi1pk: String,
    gsi1sk: String,
    gsi2pk: String,
    gsi2sk: String,
    /// Set only while the warehouse has work on the order: the pick list is a sparse index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi3pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi3sk: Option<String>,
    /// Set only while a return waits for staff (the approval queue), else while an approved
    /// one's goods are on their way (what the warehouse expects): a sparse index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi4pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi4sk: Option<String>,
    /// Set only while the order's money is watched (it needs staff, or an authorization waits
    /// for its capture): a sparse index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi5pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi5sk: Option<String>,
    #[serde(flatten)]
    order: Order,
}

impl OrderItem {
    fn new(order: &Order) -> Self {
        let watched = PaymentWatch::ALL
            .into_iter()
            .find_map(|watch| watch.since(order).map(|since| (watch, since)));
        let returns_queue = order
            .oldest_pending_return()
            .map(|at| (PENDING_RETURNS_PARTITION, at))
            .or_else(|| {
                order
                    .oldest_arriving_return()
                    .map(|at| (ARRIVING_RETURNS_PARTITION, at))
            });
        OrderItem {
            pk: order_pk(&order.id),
            sk: "ORDER".into(),
            entity: entity::ORDER.into(),
            gsi1pk: format!("CUSTOMER#{}", order.customer_id),
            gsi1sk: format!("ORDER#{}", order.id),
            gsi2pk: format!("STATUS#{}", order.status.as_str()),
            gsi2sk: listing_sort_key(order.status_since(), &order.id),
            gsi3pk: on_pick_list(order)
                .next()
                .map(|f| pick_list_key(&f.warehouse, f.status)),
            gsi3sk: on_pick_list(order)
                .next()
                .map(|f| pick_list_sort_key(f, order)),
            gsi4pk: returns_queue.map(|(partition, _)| partition.to_owned()),
            gsi4sk: returns_queue.map(|(_, at)| {
                format!(
                    "{}#{}",
                    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    order.id
                )
            }),
            gsi5pk: watched.map(|(watch, _)| payment_watch_partition(watch).to_owned()),
            gsi5sk: watched.map(|(_, since)| listing_sort_key(since, &order.id)),
            order: order.clone(),
        }
    }
}

/// One key the console's search finds an order by ([`oms_domain::order::search`]), written
/// with the order under its partition (`ORDER#<id>` / `SEARCH#<n>`), so whatever removes the
/// order removes its keys. It is listed on the customer index under a partition of its own
/// (`SEARCH#…`): that index's customer partitions and these never share a key, and a search
/// costs no index of its own.
#[derive(Serialize, Deserialize)]
struct SearchItem {
    pk: String,
    sk: String,
    entity: String,
    gsi1pk: String,
    gsi1sk: String,
}

const SEARCH_PARTITION_PREFIX: &str = "SEARCH#";

fn search_items(order: &Order) -> Vec<SearchItem> {
    order
        .search_entries()
        .into_iter()
        .enumerate()
        .map(|(n, entry)| SearchItem {
            pk: order_pk(&order.id),
            sk: format!("SEARCH#{}", n + 1),
            entity: entity::SEARCH.into(),
            gsi1pk: format!("{SEARCH_PARTITION_PREFIX}{}", entry.partition),
            gsi1sk: entry.sort,
        })
        .collect()
}

fn pick_list_key(warehouse: &str, status: FulfillmentStatus) -> String {
    format!("FULFILLMENT#{warehouse}#{}", status.as_str())
}

fn pick_list_sort_key(shipment: &Fulfillment, order: &Order) -> String {
    format!(
        "{}#{}",
        shipment
            .queued_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        order.id
    )
}

/// The order's shipments on a pick list: those its locations still have work on, while the
/// order is in the warehouses' hands (a cancelled order leaves the pick lists with its
/// shipments wherever they had got to). The order's item carries the first on the pick-list
/// index; each other one has a [`ShipmentEntry`] of its own.
fn on_pick_list(order: &Order) -> impl Iterator<Item = &Fulfillment> {
    let in_warehouses = matches!(
        order.status,
        OrderStatus::Fulfilling | OrderStatus::PartiallyShipped
    );
    order
        .shipments
        .iter()
        .filter(move |f| in_warehouses && f.status.is_warehouse_work())
}

/// A pick-list entry for a shipment of an order that leaves as several parcels, other than
/// the one the order's item lists: the index can list an item under one key only, and each
/// parcel is on its own location's list. Written with the order (`ORDER#<id>` /
/// `SHIPMENT#<n>`), only for orders that have had several shipments, so an order that leaves
/// as one parcel writes what it always did. The pick list reads the orders it names and keeps those
/// whose shipment there is still in the listed status, so an entry a write could not fit (a
/// cancellation of an order with ninety-odd SKUs) lists nothing.
#[derive(Serialize, Deserialize)]
struct ShipmentEntry {
    pk: String,
    sk: String,
    entity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi3pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi3sk: Option<String>,
}

fn shipment_entry_sk(number: u32) -> String {
    format!("SHIPMENT#{number}")
}

/// What an order's write does to its shipments' pick-list entries, once it has had more than
/// one shipment: every shipment number it ever used gets its entry written — on the pick-list
/// index for a shipment in its location's work that the order's item does not carry, off it
/// for every other (the carried one, one that left, one a move emptied) — so no entry is left
/// listing what no longer waits there.
fn shipment_entries(order: &Order) -> Vec<ShipmentEntry> {
    let last = order.last_shipment_number();
    if last <= 1 {
        return Vec::new();
    }
    let carried = on_pick_list(order).next().map(|f| f.number);
    (1..=last)
        .map(|number| {
            let listed =
                on_pick_list(order).find(|f| f.number == number && Some(number) != carried);
            ShipmentEntry {
                pk: order_pk(&order.id),
                sk: shipment_entry_sk(number),
                entity: entity::SHIPMENT.into(),
                gsi3pk: listed.map(|f| pick_list_key(&f.warehouse, f.status)),
                gsi3sk: listed.map(|f| pick_list_sort_key(f, order)),
            }
        })
        .collect()
}

impl IdempotencyItem {
    fn new(record: &IdempotencyRecord) -> Self {
        IdempotencyItem {
            pk: idempotency_pk(&record.customer_id, &record.key),
            sk: "IDEMPOTENCY".into(),
            entity: entity::IDEMPOTENCY.into(),
            expires_at: (record.created_at + chrono::Duration::days(IDEMPOTENCY_TTL_DAYS))
                .timestamp(),
            record: record.clone(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct IdempotencyItem {
    pk: String,
    sk: String,
    entity: String,
    /// Epoch seconds after which DynamoDB's TTL may delete the record: the attribute the
    /// table's `TimeToLiveSpecification` names (a test reads it from the template). Records
    /// written before it had its name carried `expires_at`, which TTL never read; they are
    /// still read (the alias) and repaired as the README says.
    #[serde(rename = "expiresAt", alias = "expires_at")]
    expires_at: i64,
    #[serde(flatten)]
    record: IdempotencyRecord,
}

/// A product and its stock counters: the default location's as the top-level `available` and
/// `reserved` (where a product written before there were locations keeps its one warehouse's),
/// every other location's under `locations.<id>`. All of a SKU's counters live in its one item,
/// so an order's write touches one item per SKU however many locations it takes units from, and
/// an order that leaves from the default location writes exactly what it always did.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProductItem {
    pk: String,
    sk: String,
    entity: String,
    /// Absent on products written before the catalog index existed: they are listed once
    /// saved again (see the README on backfilling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi6pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi6sk: Option<String>,
    sku: Sku,
    name: String,
    unit_price: oms_domain::money::Money,
    weight_grams: u32,
    active: bool,
    low_stock_threshold: u32,
    /// Absent on products written before replenishment was kept: the defaults.
    #[serde(default = "default_lead_time")]
    lead_time_days: u32,
    #[serde(default)]
    safety_stock: u32,
    /// Units on their way to each location; absent when none are.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    incoming: BTreeMap<String, u32>,
    available: u32,
    reserved: u32,
    /// Whether the default location keeps the SKU — has counters, zero or not — as the
    /// in-memory store says by holding them: its `available` and `reserved` are attributes of
    /// every item, so zero there would not tell a SKU kept only elsewhere from one that ran out
    /// here. Written with the whole item and by every move of stock there; absent on items
    /// written before it was kept: the default location keeps the SKU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    home_kept: Option<bool>,
    /// Always written (empty or not), so that an update can name a location under it.
    #[serde(default)]
    locations: BTreeMap<String, StockLevel>,
    /// What orders for more than is available get; absent: `DENY`.
    #[serde(default, skip_serializing_if = "is_deny")]
    selling: oms_domain::backorder::SellingPolicy,
    /// Units backordered, and the room its limit leaves: an order's write backorders on
    /// condition that `backorderRoom` holds enough, taking from it what it adds to
    /// `backordered` (DynamoDB's conditions cannot add). Each waiting order is a top-level
    /// `waiting#<key>` attribute of its units.
    #[serde(default, skip_serializing_if = "is_zero")]
    backordered: u32,
    /// Below zero while staff's lowered limit is under what already waits: releases then give
    /// room back from there, never past the limit.
    #[serde(default)]
    backorder_room: i64,
    version: u64,
    updated_at: DateTime<Utc>,
}

/// A SKU that sells only what is available is written as it was before backorders.
fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_deny(policy: &oms_domain::backorder::SellingPolicy) -> bool {
    *policy == oms_domain::backorder::SellingPolicy::Deny
}

impl ProductItem {
    fn new(product: &Product, default_location: &str) -> Self {
        let home = product.stock.at(default_location);
        ProductItem {
            pk: sku_pk(&product.sku),
            sk: "PRODUCT".into(),
            entity: entity::PRODUCT.into(),
            gsi6pk: Some(CATALOG_PARTITION.into()),
            gsi6sk: Some(product.sku.to_string()),
            sku: product.sku.clone(),
            name: product.name.clone(),
            unit_price: product.unit_price,
            weight_grams: product.weight_grams,
            active: product.active,
            low_stock_threshold: product.low_stock_threshold,
            lead_time_days: product.replenishment.lead_time_days,
            safety_stock: product.replenishment.safety_stock,
            incoming: product.incoming.clone(),
            available: home.available(),
            reserved: home.reserved(),
            home_kept: Some(
                product
                    .stock
                    .locations()
                    .any(|(id, _)| id == default_location),
            ),
            locations: product
                .stock
                .locations()
                .filter(|(id, _)| *id != default_location)
                .map(|(id, level)| (id.to_owned(), level))
                .collect(),
            selling: product.backorders.policy,
            backordered: product.backorders.backordered,
            backorder_room: i64::from(product.backorders.policy.limit())
                - i64::from(product.backorders.backordered),
            version: product.version,
            updated_at: product.updated_at,
        }
    }

    fn into_product(self, default_location: &str) -> Result<Product, StoreError> {
        let home = StockLevel::from_counters(self.available, self.reserved)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", self.sku)))?;
        let mut stock = Stock::default();
        for (id, level) in self.locations {
            stock.set(&id, level);
        }
        if self.home_kept != Some(false) || home.available() > 0 || home.reserved() > 0 {
            stock.set(default_location, home);
        }
        Ok(Product {
            sku: self.sku,
            name: self.name,
            unit_price: self.unit_price,
            weight_grams: self.weight_grams,
            active: self.active,
            low_stock_threshold: self.low_stock_threshold,
            stock,
            replenishment: Replenishment {
                lead_time_days: self.lead_time_days,
                safety_stock: self.safety_stock,
            },
            // Read from the item's own attributes by `product_of`.
            demand: Demand::default(),
            incoming: self.incoming,
            backorders: oms_domain::backorder::Backorders {
                policy: self.selling,
                backordered: self.backordered,
                waiting: BTreeMap::new(),
            },
            version: self.version,
            updated_at: self.updated_at,
        })
    }
}

fn default_lead_time() -> u32 {
    Replenishment::DEFAULT_LEAD_TIME_DAYS
}

/// A product's demand is kept as one top-level number per location and day,
/// `demand#<location>#<YYYY-MM-DD>`: an order's write adds to its day's with
/// `if_not_exists(…, 0) + n` in the same update that moves the SKU's counters, which a nested
/// map could not do on a product written before demand was kept (its map would not exist). A
/// write of the whole product writes the window's days back and so drops the older ones.
const DEMAND_PREFIX: &str = "demand#";

/// A waiting order's entry: `waiting#<placed at>#<order id>`, its units still waiting.
const WAITING_PREFIX: &str = "waiting#";

fn waiting_attribute(key: &str) -> String {
    format!("{WAITING_PREFIX}{key}")
}

fn demand_attribute(location: &str, day: NaiveDate) -> String {
    format!("{DEMAND_PREFIX}{location}#{day}")
}

/// The product an item holds, its demand attributes included.
fn product_of(
    item: impl Into<serde_dynamo::Item>,
    default_location: &str,
) -> Result<Product, StoreError> {
    let mut item: serde_dynamo::Item = item.into();
    let mut waiting = BTreeMap::new();
    let entries: Vec<String> = item
        .keys()
        .filter(|name| name.starts_with(WAITING_PREFIX))
        .cloned()
        .collect();
    for name in entries {
        match item.remove(&name) {
            Some(serde_dynamo::AttributeValue::N(units)) => {
                let units = units
                    .parse::<u32>()
                    .map_err(|_| StoreError::Corrupt(format!("{name}: not a count")))?;
                waiting.insert(name[WAITING_PREFIX.len()..].to_owned(), units);
            }
            _ => return Err(StoreError::Corrupt(format!("{name}: not a count"))),
        }
    }
    let names: Vec<String> = item
        .keys()
        .filter(|name| name.starts_with(DEMAND_PREFIX))
        .cloned()
        .collect();
    let mut demand = Demand::default();
    for name in names {
        let units = match item.remove(&name) {
            Some(serde_dynamo::AttributeValue::N(n)) => n.parse::<u32>().ok(),
            _ => None,
        };
        let day = name[DEMAND_PREFIX.len()..]
            .rsplit_once('#')
            .and_then(|(location, day)| Some((location, day.parse::<NaiveDate>().ok()?)));
        match (day, units) {
            (Some((location, day)), Some(units)) => demand.record(location, day, units),
            _ => return Err(StoreError::Corrupt(format!("{name}: not a day's demand"))),
        }
    }
    let mut product = from_item::<ProductItem>(item)?.into_product(default_location)?;
    product.demand = demand;
    product.backorders.waiting = waiting;
    Ok(product)
}

/// A product as the item its put writes: its fields and its demand's days.
fn product_item(
    product: &Product,
    default_location: &str,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let mut item = to_item(&ProductItem::new(product, default_location))?;
    for (location, day, units) in product.demand.entries() {
        item.insert(demand_attribute(location, day), n(units));
    }
    for (key, units) in &product.backorders.waiting {
        item.insert(waiting_attribute(key), n(*units));
    }
    Ok(item)
}

/// An entry of a SKU's partition (`SKU#<sku>` / `sk`) that holds `value` whole.
#[derive(Serialize, Deserialize)]
struct SkuEntry<T> {
    pk: String,
    sk: String,
    entity: String,
    #[serde(flatten)]
    value: T,
}

#[derive(Serialize, Deserialize)]
struct TransferItem {
    pk: String,
    sk: String,
    entity: String,
    #[serde(flatten)]
    transfer: Transfer,
}

/// What a transfer dispatch's `Idempotency-Key` made.
#[derive(Serialize, Deserialize)]
struct TransferKeyItem {
    pk: String,
    sk: String,
    entity: String,
    #[serde(flatten)]
    key: TransferKey,
}

/// The item that records which adjustment an `Idempotency-Key` made (a copy of it).
fn adjustment_key_sk(key: &IdempotencyKey) -> String {
    format!("ADJUSTMENT-KEY#{key}")
}

fn transfer_key_sk(key: &IdempotencyKey) -> String {
    format!("TRANSFER-KEY#{key}")
}

#[derive(Serialize, Deserialize)]
struct AdjustmentItem {
    pk: String,
    sk: String,
    entity: String,
    #[serde(flatten)]
    adjustment: StockAdjustment,
}

impl AdjustmentItem {
    /// An entry of its SKU's stock history (`SKU#<sku>` / `ADJUSTMENT#<id>`).
    fn new(adjustment: &StockAdjustment) -> Self {
        AdjustmentItem {
            pk: sku_pk(&adjustment.sku),
            sk: format!("ADJUSTMENT#{}", adjustment.id),
            entity: entity::STOCK_ADJUSTMENT.into(),
            adjustment: adjustment.clone(),
        }
    }
}

/// What one item of the table holds, as the stream's reader needs it.
#[derive(Debug)]
pub enum TableItem {
    Order(Box<Order>),
    Product(Box<Product>),
    /// Idempotency records and adjustments: no event derives from them.
    Other,
}

/// Decodes an item from the table (or its stream) by its `entity` attribute.
pub fn decode_item(
    item: serde_dynamo::Item,
    default_location: &str,
) -> Result<TableItem, StoreError> {
    let kind = match item.get("entity") {
        Some(serde_dynamo::AttributeValue::S(kind)) => kind.clone(),
        // Every item this system writes names its entity; an image without one is not an
        // order or a product (an emulator may show an upsert's "before" as the bare key).
        _ => return Ok(TableItem::Other),
    };
    match kind.as_str() {
        entity::ORDER => Ok(TableItem::Order(Box::new(
            from_item::<OrderItem>(item)?
                .order
                .with_legacy_locations(default_location),
        ))),
        entity::PRODUCT => Ok(TableItem::Product(Box::new(product_of(
            item,
            default_location,
        )?))),
        _ => Ok(TableItem::Other),
    }
}

fn to_item<T: Serialize>(value: &T) -> Result<HashMap<String, AttributeValue>, StoreError> {
    serde_dynamo::to_item(value)
        .map_err(|e| StoreError::Failed(format!("cannot encode an item: {e}")))
}

fn from_item<T: for<'de> Deserialize<'de>>(
    item: impl Into<serde_dynamo::Item>,
) -> Result<T, StoreError> {
    let item: serde_dynamo::Item = item.into();
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// Waits a little longer on every attempt, with jitter, so racing writers spread out.
async fn backoff(attempt: u32) {
    let jitter = u64::from(Utc::now().timestamp_subsec_nanos() % 20);
    tokio::time::sleep(Duration::from_millis((10u64 << attempt.min(5)) + jitter)).await;
}

/// How often a write that records a notification already sent (a channel sent, the cursor moved
/// on) is tried while DynamoDB throttles or fails, each try with the SDK's own retries: failing
/// it would have the event delivered again and the customer told twice. (SNS and DynamoDB share
/// no transaction, so a process killed between the two still sends again: each notification
/// carries its event id and channel for the senders to drop a repeat.)
const RECORD_SENT_ATTEMPTS: u32 = 6;

/// Runs `write` until it succeeds, fails for good, or has been tried [`RECORD_SENT_ATTEMPTS`]
/// times while only retryable errors came back.
async fn recording<T, F, Fut>(mut write: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 1;
    loop {
        match write().await {
            Err(error) if error.is_retryable() && attempt < RECORD_SENT_ATTEMPTS => {
                backoff(attempt).await;
                attempt += 1;
            }
            answer => return answer,
        }
    }
}

/// How often a transaction that lost a conflict is tried again before the caller hears of it.
const CONFLICT_ATTEMPTS: u32 = 4;

/// The DynamoDB implementation of every store port, over one table.
#[derive(Clone)]
pub struct DynamoStore {
    client: LazyClient<Client>,
    table: String,
    /// Where attempts are counted ([`oms_domain::ports::AttemptCounter`]): a table of their
    /// own where the deployment names one, else the orders table.
    attempts_table: Option<String>,
    /// The location whose counters a product item keeps at its top level, and where orders
    /// reserved before there were locations hold their units: the shipping policy's warehouse.
    default_location: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client: LazyClient::ready(client),
            table: table.into(),
            attempts_table: None,
            default_location: ShippingPolicy::default_policy().warehouse().to_owned(),
        }
    }

    /// The same store counting attempts in the table `table`.
    pub fn with_attempts_table(mut self, table: impl Into<String>) -> Self {
        self.attempts_table = Some(table.into());
        self
    }

    /// The same store with another default location (a business whose shipping policy names
    /// another warehouse).
    pub fn with_default_location(mut self, location: impl Into<String>) -> Self {
        self.default_location = location.into();
        self
    }

    /// An order as stored, read as one with locations.
    fn order_from(&self, item: impl Into<serde_dynamo::Item>) -> Result<Order, StoreError> {
        Ok(from_item::<OrderItem>(item)?
            .order
            .with_legacy_locations(&self.default_location))
    }

    /// A product as stored.
    fn product_from(&self, item: impl Into<serde_dynamo::Item>) -> Result<Product, StoreError> {
        product_of(item, &self.default_location)
    }

    /// A store on `table` whose client is built from the shared SDK configuration on its first
    /// request: what a function's cold start uses.
    /// A store on the table `TABLE_NAME` names, whose client is built on first use.
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        let policy = crate::config::shipping_policy_from_env()?;
        Ok(
            Self::lazy(crate::config::TableConfig::from_env()?.table_name)
                .with_default_location(policy.warehouse()),
        )
    }

    pub fn lazy(table: impl Into<String>) -> Self {
        Self {
            client: LazyClient::new(Client::new),
            table: table.into(),
            attempts_table: None,
            default_location: ShippingPolicy::default_policy().warehouse().to_owned(),
        }
    }

    /// A store on `table`, with a client built from `config` now.
    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(config), table)
    }

    fn put(
        &self,
        item: HashMap<String, AttributeValue>,
    ) -> aws_sdk_dynamodb::types::builders::PutBuilder {
        Put::builder().table_name(&self.table).set_item(Some(item))
    }

    /// Runs a transaction, trying again while it loses conflicts with other transactions.
    /// `Ok(None)` is success; `Ok(Some(reasons))` a cancellation for a failed condition, with one
    /// code per item (`None`, `ConditionalCheckFailed`, …) and the item where one was returned.
    async fn transact(
        &self,
        what: &str,
        items: Vec<TransactWriteItem>,
    ) -> Result<Option<Vec<aws_sdk_dynamodb::types::CancellationReason>>, StoreError> {
        let mut attempt = 0;
        loop {
            let result = self
                .client
                .get()
                .await
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(None),
                Err(error) => error,
            };
            let reasons = match error.as_service_error() {
                Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
                    cancelled,
                )) => cancelled.cancellation_reasons().to_vec(),
                _ => return Err(classify(what, error)),
            };
            let code = |r: &aws_sdk_dynamodb::types::CancellationReason| {
                r.code().unwrap_or("None").to_owned()
            };
            if reasons.iter().any(|r| code(r) == "ConditionalCheckFailed") {
                return Ok(Some(reasons));
            }
            // Only another transaction or throttling cancels a well-formed write for a while;
            // anything else (a malformed update) will fail the same way again.
            let passing = |c: &str| {
                matches!(
                    c,
                    "None"
                        | "TransactionConflict"
                        | "ThrottlingError"
                        | "ProvisionedThroughputExceeded"
                )
            };
            if !reasons.iter().all(|r| passing(&code(r))) {
                let codes: Vec<_> = reasons.iter().map(code).collect();
                return Err(StoreError::Failed(format!(
                    "{what}: transaction cancelled: {codes:?}"
                )));
            }
            attempt += 1;
            if attempt >= CONFLICT_ATTEMPTS {
                let codes: Vec<_> = reasons.iter().map(code).collect();
                return Err(StoreError::Retryable(format!(
                    "{what}: transaction cancelled: {codes:?}"
                )));
            }
            backoff(attempt).await;
        }
    }

    fn encode_cursor(last: &HashMap<String, AttributeValue>) -> Option<String> {
        let map: serde_json::Map<String, serde_json::Value> = last
            .iter()
            .filter_map(|(k, v)| {
                v.as_s()
                    .ok()
                    .map(|s| (k.clone(), serde_json::Value::String(s.clone())))
            })
            .collect();
        Some(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&map).ok()?))
    }

    /// The key attributes a cursor this store handed out carries, whatever query it was of.
    fn cursor_keys(cursor: &str) -> Result<HashMap<String, String>, StoreError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| StoreError::InvalidCursor)?;
        serde_json::from_slice(&bytes).map_err(|_| StoreError::InvalidCursor)
    }

    /// A cursor of a query on the table itself: its key, in `expected_partition`.
    fn decode_table_cursor(
        cursor: &str,
        expected_partition: &str,
    ) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let map = Self::cursor_keys(cursor)?;
        if map.len() != 2
            || !map.contains_key("sk")
            || map.get("pk").map(String::as_str) != Some(expected_partition)
        {
            return Err(StoreError::InvalidCursor);
        }
        Ok(map.into_iter().map(|(k, v)| (k, s(v))).collect())
    }

    fn decode_cursor(
        cursor: &str,
        index: &str,
        expected_partition: &str,
    ) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let map = Self::cursor_keys(cursor)?;
        let (partition_key, sort_key) = (format!("{index}pk"), format!("{index}sk"));
        let expected_keys = ["pk", "sk", partition_key.as_str(), sort_key.as_str()];
        if map.len() != expected_keys.len()
            || !expected_keys.iter().all(|k| map.contains_key(*k))
            || map[&partition_key] != expected_partition
        {
            return Err(StoreError::InvalidCursor);
        }
        Ok(map.into_iter().map(|(k, v)| (k, s(v))).collect())
    }
}

impl DynamoStore {
    /// One item by its key, read strongly consistent: every read here decides a write or shows a
    /// customer what they just did.
    async fn read(
        &self,
        key: HashMap<String, AttributeValue>,
        what: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let output = self
            .client
            .get()
            .await
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(what, e))?;
        Ok(output.item)
    }

    /// Up to 100 items by their keys in one BatchGetItem, read strongly consistent; keys
    /// DynamoDB did not get to (throttling, size) are asked for again. Items that do not exist
    /// are simply absent.
    async fn read_many(
        &self,
        keys: Vec<HashMap<String, AttributeValue>>,
        what: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::with_capacity(keys.len());
        let mut request = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Failed(e.to_string()))?,
        );
        let mut attempt = 0;
        while let Some(keys) = request.take() {
            let output = self
                .client
                .get()
                .await
                .batch_get_item()
                .request_items(&self.table, keys)
                .send()
                .await
                .map_err(|e| classify(what, e))?;
            items.extend(
                output
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default(),
            );
            request = output
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .filter(|k| !k.keys.is_empty());
            if request.is_some() {
                attempt += 1;
                if attempt > 5 {
                    return Err(StoreError::Retryable(format!(
                        "{what}: keys left unprocessed"
                    )));
                }
                backoff(attempt).await;
            }
        }
        Ok(items)
    }

    /// One page of an index's partition, as the index projects its items.
    async fn query_index(
        &self,
        query: &IndexQuery<'_>,
    ) -> Result<(Vec<HashMap<String, AttributeValue>>, Option<String>), StoreError> {
        let IndexQuery {
            index,
            partition,
            oldest_first,
            sort_keys,
            limit,
            cursor,
        } = query;
        let start = cursor
            .map(|c| Self::decode_cursor(c, index, partition))
            .transpose()?;
        let mut request = self
            .client
            .get()
            .await
            .query()
            .table_name(&self.table)
            .index_name(*index)
            .expression_attribute_names("#pk", format!("{index}pk"))
            .expression_attribute_values(":pk", s(partition.clone()));
        request = match sort_keys {
            // The sort keys start with a time: every key before `before#…` sorts below it.
            SortKeys::Before(before) => request
                .key_condition_expression("#pk = :pk AND #sk < :before")
                .expression_attribute_names("#sk", format!("{index}sk"))
                .expression_attribute_values(":before", s(before.clone())),
            SortKeys::StartingWith(prefix) => request
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#sk", format!("{index}sk"))
                .expression_attribute_values(":prefix", s(prefix.clone())),
            SortKeys::All => request.key_condition_expression("#pk = :pk"),
        };
        let output = request
            .scan_index_forward(*oldest_first)
            .limit(i32::try_from(*limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify("list orders", e))?;
        let next_cursor = output
            .last_evaluated_key
            .as_ref()
            .and_then(Self::encode_cursor);
        Ok((output.items.unwrap_or_default(), next_cursor))
    }

    /// One page of a keys-only index's partition, its items then read from the table (one
    /// strongly consistent batch) and decoded. An index written with every change lists what
    /// may have moved on since, so callers check what they read; a batch answers in any order,
    /// so callers sort.
    async fn query_keys_then_read<T>(
        &self,
        query: &IndexQuery<'_>,
        sk: &str,
        what: &str,
        decode: impl Fn(HashMap<String, AttributeValue>) -> Result<T, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let (keys, next_cursor) = self.query_index(query).await?;
        let keys: Vec<_> = keys
            .into_iter()
            .filter_map(|k| Some(key(k.get("pk")?.as_s().ok()?.clone(), sk)))
            .collect();
        let mut items = Vec::with_capacity(keys.len());
        if !keys.is_empty() {
            for item in self.read_many(keys, what).await? {
                items.push(decode(item)?);
            }
        }
        Ok(Page { items, next_cursor })
    }
}

/// The sort keys of an index partition a listing reads.
enum SortKeys {
    All,
    /// Those below this (the sort keys start with a time).
    Before(String),
    /// Those that begin with this.
    StartingWith(String),
}

/// Which page of which index partition a listing reads.
struct IndexQuery<'a> {
    index: &'a str,
    partition: String,
    oldest_first: bool,
    /// Which of the partition's sort keys it reads.
    sort_keys: SortKeys,
    limit: u32,
    cursor: Option<&'a str>,
}

#[cfg(test)]
mod tests;

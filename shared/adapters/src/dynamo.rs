//! The single-table DynamoDB store.
//!
//! ## Item layout
//! | item | `pk` | `sk` | index keys |
//! |---|---|---|---|
//! | order | `ORDER#<orderId>` | `ORDER` | `gsi1`: `CUSTOMER#<customerId>` / `ORDER#<orderId>` (a customer's orders, newest first: order ids are ULIDs); `gsi2`: `STATUS#<status>` / `<statusSince>#<orderId>` (orders by status and how long they have been in it: the sweep); sparse: `gsi3` the pick list, `gsi4` returns waiting for staff, `gsi5` `PAYMENTS#ATTENTION` or `PAYMENTS#AWAITING_CAPTURE` / `<since>#<orderId>` (money that needs staff; authorizations waiting for their capture) |
//! | idempotency record | `IDEMPOTENCY#<customerId>#<key>` | `IDEMPOTENCY` | — (expires after [`IDEMPOTENCY_TTL_DAYS`] through the table's TTL) |
//! | product and its stock | `SKU#<sku>` | `PRODUCT` | `gsi6`: `CATALOG` / `<sku>` (the catalog in SKU order) |
//! | stock adjustment | `SKU#<sku>` | `ADJUSTMENT#<id>` | — |
//! | notification preferences | `CUSTOMER#<customerId>` | `PREFERENCES` | — |
//! | notification cursor (the order's next event to notify, its claim and channels sent) | `ORDER#<orderId>` | `NOTIFIED` | — |
//!
//! Every item carries `entity`, so a reader of the table's stream knows what it holds. The
//! domain's fields are stored as top-level attributes (`serde_dynamo`, flattened), so conditions
//! and updates can name them: `version` on orders and products, `available` and `reserved` on
//! products. Identifiers cannot contain `#` (the domain refuses it), so no value forges a key.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use oms_domain::ids::{CustomerId, IdempotencyKey, OrderId, Sku};
use oms_domain::notifications::{Channel, Preferences};
use oms_domain::order::fulfillment::FulfillmentStatus;
use oms_domain::order::OrderChange;
use oms_domain::order::{Order, OrderStatus, Shortage};
use oms_domain::ports::{
    CommitOutcome, CreateOutcome, IdempotencyRecord, InventoryStore, NotificationCursor,
    NotificationStore, OrderStore, OrderTransactions, Page, PaymentWatch, StoreError,
    NOTIFICATION_CLAIM_SECONDS,
};
use oms_domain::stock::{Product, StockAdjustment, StockDelta};
use serde::{Deserialize, Serialize};

use crate::aws_error::classify;
use crate::config::LazyClient;

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
    pub const PREFERENCES: &str = "PREFERENCES";
    pub const NOTIFICATION_CURSOR: &str = "NOTIFICATION_CURSOR";
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
    /// Set only while a return waits for staff: the approval queue is a sparse index.
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
        OrderItem {
            pk: order_pk(&order.id),
            sk: "ORDER".into(),
            entity: entity::ORDER.into(),
            gsi1pk: format!("CUSTOMER#{}", order.customer_id),
            gsi1sk: format!("ORDER#{}", order.id),
            gsi2pk: format!("STATUS#{}", order.status.as_str()),
            gsi2sk: listing_sort_key(order.status_since(), &order.id),
            gsi3pk: pick_list_partition(order),
            gsi3sk: order.fulfillment.as_ref().map(|f| {
                format!(
                    "{}#{}",
                    f.queued_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    order.id
                )
            }),
            gsi4pk: order
                .oldest_pending_return()
                .map(|_| PENDING_RETURNS_PARTITION.to_owned()),
            gsi4sk: order.oldest_pending_return().map(|at| {
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

fn pick_list_key(warehouse: &str, status: FulfillmentStatus) -> String {
    format!("FULFILLMENT#{warehouse}#{}", status.as_str())
}

fn pick_list_partition(order: &Order) -> Option<String> {
    // A cancelled order leaves the pick list with its shipment wherever it had got to.
    if order.status != OrderStatus::Fulfilling {
        return None;
    }
    let fulfillment = order.fulfillment.as_ref()?;
    fulfillment
        .status
        .is_warehouse_work()
        .then(|| pick_list_key(&fulfillment.warehouse, fulfillment.status))
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

#[derive(Serialize, Deserialize)]
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
    #[serde(flatten)]
    product: Product,
}

impl ProductItem {
    fn new(product: &Product) -> Self {
        ProductItem {
            pk: sku_pk(&product.sku),
            sk: "PRODUCT".into(),
            entity: entity::PRODUCT.into(),
            gsi6pk: Some(CATALOG_PARTITION.into()),
            gsi6sk: Some(product.sku.to_string()),
            product: product.clone(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct AdjustmentItem {
    pk: String,
    sk: String,
    entity: String,
    #[serde(flatten)]
    adjustment: StockAdjustment,
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
pub fn decode_item(item: serde_dynamo::Item) -> Result<TableItem, StoreError> {
    let kind = match item.get("entity") {
        Some(serde_dynamo::AttributeValue::S(kind)) => kind.clone(),
        // Every item this system writes names its entity; an image without one is not an
        // order or a product (an emulator may show an upsert's "before" as the bare key).
        _ => return Ok(TableItem::Other),
    };
    match kind.as_str() {
        entity::ORDER => Ok(TableItem::Order(Box::new(
            from_item::<OrderItem>(item)?.order,
        ))),
        entity::PRODUCT => Ok(TableItem::Product(Box::new(
            from_item::<ProductItem>(item)?.product,
        ))),
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
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client: LazyClient::ready(client),
            table: table.into(),
        }
    }

    /// A store on `table` whose client is built from the shared SDK configuration on its first
    /// request: what a function's cold start uses.
    /// A store on the table `TABLE_NAME` names, whose client is built on first use.
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        Ok(Self::lazy(
            crate::config::TableConfig::from_env()?.table_name,
        ))
    }

    pub fn lazy(table: impl Into<String>) -> Self {
        Self {
            client: LazyClient::new(Client::new),
            table: table.into(),
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

    /// A cursor of a query on the table itself: its key, in `expected_partition`.
    fn decode_table_cursor(
        cursor: &str,
        expected_partition: &str,
    ) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| StoreError::InvalidCursor)?;
        let map: HashMap<String, String> =
            serde_json::from_slice(&bytes).map_err(|_| StoreError::InvalidCursor)?;
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
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| StoreError::InvalidCursor)?;
        let map: HashMap<String, String> =
            serde_json::from_slice(&bytes).map_err(|_| StoreError::InvalidCursor)?;
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

impl OrderStore for DynamoStore {
    async fn create(
        &self,
        order: &Order,
        record: &IdempotencyRecord,
    ) -> Result<CreateOutcome, StoreError> {
        let idempotency = IdempotencyItem::new(record);
        let not_there = |item| {
            self.put(item)
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map(|put| TransactWriteItem::builder().put(put).build())
        };
        let items = vec![
            not_there(to_item(&OrderItem::new(order))?)
                .map_err(|e| StoreError::Failed(e.to_string()))?,
            not_there(to_item(&idempotency)?).map_err(|e| StoreError::Failed(e.to_string()))?,
        ];
        match self.transact("create order", items).await? {
            None => Ok(CreateOutcome::Created),
            Some(reasons)
                if reasons.get(1).and_then(|r| r.code()) == Some("ConditionalCheckFailed") =>
            {
                Ok(CreateOutcome::KeyAlreadyUsed)
            }
            Some(_) => Err(StoreError::ConditionFailed),
        }
    }

    async fn idempotency_record(
        &self,
        customer: &CustomerId,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let item = self
            .read(
                self::key(idempotency_pk(customer, key), "IDEMPOTENCY"),
                "get idempotency record",
            )
            .await?;
        item.map(|item| from_item::<IdempotencyItem>(item).map(|i| i.record))
            .transpose()
    }

    async fn get(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        let item = self.read(key(order_pk(id), "ORDER"), "get order").await?;
        item.map(|item| from_item::<OrderItem>(item).map(|i| i.order))
            .transpose()
    }

    async fn save(&self, order: &Order, expected_version: u64) -> Result<(), StoreError> {
        self.client
            .get()
            .await
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&OrderItem::new(order))?))
            .condition_expression("#version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":expected", n(expected_version))
            .send()
            .await
            .map_err(|e| classify("save order", e))?;
        Ok(())
    }

    async fn list_for_customer(
        &self,
        customer: &CustomerId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        self.query_orders(
            CUSTOMER_ORDERS_INDEX,
            format!("CUSTOMER#{customer}"),
            false,
            None,
            limit,
            cursor,
        )
        .await
    }

    async fn list_pending_returns(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        self.query_orders(
            PENDING_RETURNS_INDEX,
            PENDING_RETURNS_PARTITION.to_owned(),
            true,
            None,
            limit,
            cursor,
        )
        .await
    }

    async fn list_by_status(
        &self,
        status: OrderStatus,
        entered_before: DateTime<Utc>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        // The status index projects keys only (it is written with every change of every order):
        // the orders are read from the table, strongly consistent, and those that have left the
        // status since the index was written are left out.
        let (keys, next_cursor) = self
            .query_index(
                ORDERS_BY_STATUS_INDEX,
                format!("STATUS#{}", status.as_str()),
                true,
                Some(entered_before.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                limit,
                cursor,
            )
            .await?;
        let keys: Vec<_> = keys
            .into_iter()
            .filter_map(|k| Some(key(k.get("pk")?.as_s().ok()?.clone(), "ORDER")))
            .collect();
        let mut orders = Vec::with_capacity(keys.len());
        if !keys.is_empty() {
            for item in self.read_many(keys, "list orders by status").await? {
                orders.push(from_item::<OrderItem>(item)?.order);
            }
        }
        orders.retain(|o| o.status == status && o.status_since() < entered_before);
        orders.sort_by(|a, b| (a.status_since(), &a.id).cmp(&(b.status_since(), &b.id)));
        Ok(Page {
            items: orders,
            next_cursor,
        })
    }

    async fn list_payment_watch(
        &self,
        watch: PaymentWatch,
        since_before: Option<DateTime<Utc>>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        self.query_orders(
            PAYMENT_WATCH_INDEX,
            payment_watch_partition(watch).to_owned(),
            true,
            since_before.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            limit,
            cursor,
        )
        .await
    }

    async fn list_fulfillments(
        &self,
        warehouse: &str,
        status: FulfillmentStatus,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        self.query_orders(
            PICK_LIST_INDEX,
            pick_list_key(warehouse, status),
            true,
            None,
            limit,
            cursor,
        )
        .await
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

    /// A transaction item that applies one SKU's netted moves, conditioned on each counter
    /// holding what the write takes from it, and bumps the SKU's version. A failed condition
    /// returns the item as it was, so the caller can say how many were there.
    fn move_stock(
        &self,
        delta: &StockDelta,
        now: &AttributeValue,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(sku_pk(&delta.sku), "PRODUCT")))
            .update_expression(
                "SET #available = #available + :da, #reserved = #reserved + :dr, #version = #version + :one, #updatedAt = :now",
            )
            .condition_expression(
                "attribute_exists(pk) AND #available >= :needAvailable AND #reserved >= :needReserved",
            )
            .expression_attribute_names("#available", "available")
            .expression_attribute_names("#reserved", "reserved")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#updatedAt", "updatedAt")
            .expression_attribute_values(":da", n(delta.available))
            .expression_attribute_values(":dr", n(delta.reserved))
            .expression_attribute_values(":needAvailable", n(delta.takes_available))
            .expression_attribute_values(":needReserved", n(delta.takes_reserved))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", now.clone())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A transaction item that writes `order` on condition that the stored one has `expected`.
    fn put_order_at_version(
        &self,
        order: &Order,
        expected: u64,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = self
            .put(to_item(&OrderItem::new(order))?)
            .condition_expression("#version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":expected", n(expected))
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// One page of the orders in one partition of an index, with an opaque cursor that only
    /// opens the same partition.
    async fn query_orders(
        &self,
        index: &str,
        partition: String,
        oldest_first: bool,
        sorted_before: Option<String>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        let (items, next_cursor) = self
            .query_index(index, partition, oldest_first, sorted_before, limit, cursor)
            .await?;
        let items = items
            .into_iter()
            .map(|item| from_item::<OrderItem>(item).map(|i| i.order))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, next_cursor })
    }

    /// One page of an index's partition, as the index projects its items.
    async fn query_index(
        &self,
        index: &str,
        partition: String,
        oldest_first: bool,
        sorted_before: Option<String>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<HashMap<String, AttributeValue>>, Option<String>), StoreError> {
        let start = cursor
            .map(|c| Self::decode_cursor(c, index, &partition))
            .transpose()?;
        let mut query = self
            .client
            .get()
            .await
            .query()
            .table_name(&self.table)
            .index_name(index)
            .expression_attribute_names("#pk", format!("{index}pk"))
            .expression_attribute_values(":pk", s(partition));
        query = match sorted_before {
            // The sort keys start with a time: every key before `before#…` sorts below it.
            Some(before) => query
                .key_condition_expression("#pk = :pk AND #sk < :before")
                .expression_attribute_names("#sk", format!("{index}sk"))
                .expression_attribute_values(":before", s(before)),
            None => query.key_condition_expression("#pk = :pk"),
        };
        let output = query
            .scan_index_forward(oldest_first)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
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
}

impl InventoryStore for DynamoStore {
    async fn products(&self, skus: &[Sku]) -> Result<Vec<Product>, StoreError> {
        let mut products = Vec::with_capacity(skus.len());
        // BatchGetItem refuses a key named twice, and takes at most 100 keys.
        for chunk in oms_domain::ids::distinct_skus(skus).chunks(100) {
            let keys = chunk
                .iter()
                .map(|sku| key(sku_pk(sku), "PRODUCT"))
                .collect();
            for item in self.read_many(keys, "get products").await? {
                products.push(from_item::<ProductItem>(item)?.product);
            }
        }
        Ok(products)
    }

    async fn product(&self, sku: &Sku) -> Result<Option<Product>, StoreError> {
        let item = self
            .read(key(sku_pk(sku), "PRODUCT"), "get product")
            .await?;
        item.map(|item| from_item::<ProductItem>(item).map(|i| i.product))
            .transpose()
    }

    async fn save_product(
        &self,
        product: &Product,
        expected_version: Option<u64>,
        adjustment: Option<&StockAdjustment>,
    ) -> Result<(), StoreError> {
        let mut put = self.put(to_item(&ProductItem::new(product))?);
        put = match expected_version {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(version) => put
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":expected", n(version)),
        };
        let mut items = vec![TransactWriteItem::builder()
            .put(put.build().map_err(|e| StoreError::Failed(e.to_string()))?)
            .build()];
        if let Some(adjustment) = adjustment {
            let item = AdjustmentItem {
                pk: sku_pk(&adjustment.sku),
                sk: format!("ADJUSTMENT#{}", adjustment.id),
                entity: entity::STOCK_ADJUSTMENT.into(),
                adjustment: adjustment.clone(),
            };
            let put = self
                .put(to_item(&item)?)
                .condition_expression("attribute_not_exists(pk)");
            items.push(
                TransactWriteItem::builder()
                    .put(put.build().map_err(|e| StoreError::Failed(e.to_string()))?)
                    .build(),
            );
        }
        match self.transact("save product", items).await? {
            None => Ok(()),
            Some(_) => Err(StoreError::ConditionFailed),
        }
    }

    async fn catalog(&self, limit: u32, cursor: Option<&str>) -> Result<Page<Product>, StoreError> {
        let (keys, next_cursor) = self
            .query_index(
                CATALOG_INDEX,
                CATALOG_PARTITION.to_owned(),
                true,
                None,
                limit,
                cursor,
            )
            .await?;
        let keys: Vec<_> = keys
            .into_iter()
            .filter_map(|k| Some(key(k.get("pk")?.as_s().ok()?.clone(), "PRODUCT")))
            .collect();
        let mut products = Vec::with_capacity(keys.len());
        if !keys.is_empty() {
            for item in self.read_many(keys, "list the catalog").await? {
                products.push(from_item::<ProductItem>(item)?.product);
            }
        }
        // A batch read answers in any order.
        products.sort_by(|a, b| a.sku.cmp(&b.sku));
        Ok(Page {
            items: products,
            next_cursor,
        })
    }

    async fn adjustments(
        &self,
        sku: &Sku,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<StockAdjustment>, StoreError> {
        let partition = sku_pk(sku);
        let start = cursor
            .map(|c| Self::decode_table_cursor(c, &partition))
            .transpose()?;
        let output = self
            .client
            .get()
            .await
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :adjustment)")
            .expression_attribute_values(":pk", s(partition))
            .expression_attribute_values(":adjustment", s("ADJUSTMENT#".to_owned()))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify("list stock adjustments", e))?;
        let next_cursor = output
            .last_evaluated_key
            .as_ref()
            .and_then(Self::encode_cursor);
        let items = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| from_item::<AdjustmentItem>(item).map(|i| i.adjustment))
            .collect::<Result<_, _>>()?;
        Ok(Page { items, next_cursor })
    }
}

impl OrderTransactions for DynamoStore {
    async fn commit(&self, write: &OrderChange) -> Result<CommitOutcome, StoreError> {
        let order = &write.order;
        let now = s(order
            .updated_at
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
        let deltas = StockDelta::net(&write.moves);
        let mut items = Vec::with_capacity(deltas.len() + 2);
        for delta in &deltas {
            items.push(self.move_stock(delta, &now)?);
        }
        items.push(self.put_order_at_version(order, order.version - 1)?);
        if let Some(created) = &write.created {
            let put = self
                .put(to_item(&OrderItem::new(created))?)
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| StoreError::Failed(e.to_string()))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let Some(reasons) = self.transact("write order and stock", items).await? else {
            return Ok(CommitOutcome::Committed);
        };
        let failed = |index: usize| {
            reasons.get(index).and_then(|r| r.code()) == Some("ConditionalCheckFailed")
        };
        if failed(deltas.len()) {
            return Ok(CommitOutcome::OrderChanged);
        }
        if failed(deltas.len() + 1) {
            return Err(StoreError::ConditionFailed);
        }
        let counter = |index: usize, name: &str| {
            reasons[index]
                .item()
                .and_then(|item| item.get(name))
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<u32>().ok())
        };
        let mut shortages = Vec::new();
        for (index, delta) in deltas.iter().enumerate().filter(|(i, _)| failed(*i)) {
            let available = counter(index, "available").unwrap_or(0);
            let reserved = counter(index, "reserved");
            if reserved.is_some_and(|r| r < delta.takes_reserved) {
                return Err(StoreError::Corrupt(format!(
                    "order {}: fewer units of {} reserved than it takes",
                    order.id, delta.sku
                )));
            }
            shortages.push(Shortage {
                sku: delta.sku.clone(),
                requested: delta.takes_available,
                available,
            });
        }
        Ok(CommitOutcome::Short(shortages))
    }
}

fn preferences_key(customer: &CustomerId) -> HashMap<String, AttributeValue> {
    key(format!("CUSTOMER#{customer}"), "PREFERENCES")
}

fn cursor_key(order: &OrderId) -> HashMap<String, AttributeValue> {
    key(order_pk(order), "NOTIFIED")
}

/// An order's notification cursor as stored.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CursorItem {
    next: u64,
    /// Epoch milliseconds.
    #[serde(default)]
    claimed_at: Option<i64>,
    #[serde(default)]
    sent: Vec<Channel>,
    #[serde(default)]
    skipped: Vec<u64>,
}

/// The attribute of the cursor item holding the wake token of event `sequence` (one attribute per
/// waiting event, so that leaving one is a single `SET` on an item that may not exist yet).
fn wake_attribute(sequence: u64) -> String {
    format!("{WAKE_PREFIX}{sequence}")
}

const WAKE_PREFIX: &str = "wake";

/// The most wake tokens a pass over a gap takes off the cursor item in its one write.
const MAX_TOKENS_DROPPED: usize = 32;

impl CursorItem {
    fn cursor(item: HashMap<String, AttributeValue>) -> Result<NotificationCursor, StoreError> {
        let waiting = item
            .iter()
            .filter_map(|(name, value)| {
                let sequence = name.strip_prefix(WAKE_PREFIX)?.parse().ok()?;
                Some((sequence, value.as_s().ok()?.clone()))
            })
            .collect();
        let stored = from_item::<CursorItem>(item)?;
        Ok(NotificationCursor {
            waiting,
            next: stored.next,
            claimed_at: stored
                .claimed_at
                .and_then(chrono::DateTime::from_timestamp_millis),
            sent: stored.sent,
            skipped: stored.skipped,
        })
    }
}

/// The condition that the cursor is at `at`: an order with no cursor item is at 1.
fn cursor_at(at: u64) -> &'static str {
    if at == 1 {
        "(attribute_not_exists(#next) OR #next = :at)"
    } else {
        "#next = :at"
    }
}

impl NotificationStore for DynamoStore {
    async fn preferences(&self, customer: &CustomerId) -> Result<Option<Preferences>, StoreError> {
        let item = self
            .read(preferences_key(customer), "get preferences")
            .await?;
        item.map(|item| from_item::<PreferencesItem>(item).map(|i| i.preferences))
            .transpose()
    }

    async fn save_preferences(
        &self,
        customer: &CustomerId,
        preferences: &Preferences,
        now: chrono::DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let item = PreferencesItem {
            pk: format!("CUSTOMER#{customer}"),
            sk: "PREFERENCES".into(),
            entity: entity::PREFERENCES.into(),
            preferences: *preferences,
            updated_at: now,
        };
        self.client
            .get()
            .await
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&item)?))
            .send()
            .await
            .map_err(|e| classify("save preferences", e))?;
        Ok(())
    }

    async fn cursor(&self, order: &OrderId) -> Result<NotificationCursor, StoreError> {
        self.read(cursor_key(order), "get notification cursor")
            .await?
            .map(CursorItem::cursor)
            .unwrap_or(Ok(NotificationCursor::default()))
    }

    async fn notification_context(
        &self,
        order: &OrderId,
        customer: &CustomerId,
    ) -> Result<(NotificationCursor, Option<Order>, Option<Preferences>), StoreError> {
        let items = self
            .read_many(
                vec![
                    cursor_key(order),
                    key(order_pk(order), "ORDER"),
                    preferences_key(customer),
                ],
                "get notification context",
            )
            .await?;
        let mut context = (NotificationCursor::default(), None, None);
        for item in items {
            match item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
            {
                Some("NOTIFIED") => context.0 = CursorItem::cursor(item)?,
                Some("ORDER") => context.1 = Some(from_item::<OrderItem>(item)?.order),
                Some("PREFERENCES") => {
                    context.2 = Some(from_item::<PreferencesItem>(item)?.preferences)
                }
                _ => {}
            }
        }
        Ok(context)
    }

    async fn claim(
        &self,
        order: &OrderId,
        next: u64,
        now: chrono::DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let stale = now - chrono::Duration::seconds(NOTIFICATION_CLAIM_SECONDS);
        self.client
            .get()
            .await
            .update_item()
            .table_name(&self.table)
            .set_key(Some(cursor_key(order)))
            .update_expression("SET #next = :at, claimedAt = :now, entity = :entity")
            .condition_expression(format!(
                "{} AND (attribute_not_exists(claimedAt) OR claimedAt <= :stale)",
                cursor_at(next)
            ))
            .expression_attribute_names("#next", "next")
            .expression_attribute_values(":at", n(next))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .expression_attribute_values(":stale", n(stale.timestamp_millis()))
            .expression_attribute_values(":entity", s(entity::NOTIFICATION_CURSOR))
            .send()
            .await
            .map_err(|e| classify("claim notification", e))?;
        Ok(())
    }

    async fn mark_sent(
        &self,
        order: &OrderId,
        sequence: u64,
        channel: Channel,
    ) -> Result<(), StoreError> {
        // Appending the channel twice (a write that succeeded, its answer lost) changes nothing
        // the cursor is read for.
        recording(|| async {
            self.client
                .get()
                .await
                .update_item()
                .table_name(&self.table)
                .set_key(Some(cursor_key(order)))
                .update_expression("SET sent = list_append(if_not_exists(sent, :none), :channel)")
                .condition_expression("#next = :at")
                .expression_attribute_names("#next", "next")
                .expression_attribute_values(":at", n(sequence))
                .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
                .expression_attribute_values(
                    ":channel",
                    AttributeValue::L(vec![s(channel.as_str())]),
                )
                .send()
                .await
                .map_err(|e| classify("mark notification sent", e))?;
            Ok(())
        })
        .await
    }

    async fn advance(&self, order: &OrderId, from: u64) -> Result<Option<String>, StoreError> {
        // The claim and its sent channels go with the event; skipped events stay recorded, and
        // so do later events' wake tokens. A try that moved the cursor with its answer lost
        // makes the next one a failed condition, which the notifier reads as the event done
        // (its successor then comes back when its short hold runs out rather than at once).
        let wake = wake_attribute(from + 1);
        recording(|| async {
            let old = self
                .client
                .get()
                .await
                .update_item()
                .table_name(&self.table)
                .set_key(Some(cursor_key(order)))
                .update_expression(
                    "SET #next = :to, entity = :entity REMOVE claimedAt, sent, #wake",
                )
                .condition_expression(cursor_at(from))
                .expression_attribute_names("#next", "next")
                .expression_attribute_names("#wake", &wake)
                .expression_attribute_values(":at", n(from))
                .expression_attribute_values(":to", n(from + 1))
                .expression_attribute_values(":entity", s(entity::NOTIFICATION_CURSOR))
                .return_values(ReturnValue::AllOld)
                .send()
                .await
                .map_err(|e| classify("advance notification cursor", e))?;
            Ok(old
                .attributes
                .and_then(|mut item| item.remove(&wake))
                .and_then(|token| token.as_s().ok().cloned()))
        })
        .await
    }

    async fn wait_for_turn(
        &self,
        order: &OrderId,
        next: u64,
        sequence: u64,
        token: &str,
    ) -> Result<(), StoreError> {
        self.client
            .get()
            .await
            .update_item()
            .table_name(&self.table)
            .set_key(Some(cursor_key(order)))
            .update_expression(
                "SET #next = if_not_exists(#next, :at), entity = :entity, #wake = :token",
            )
            .condition_expression(cursor_at(next))
            .expression_attribute_names("#next", "next")
            .expression_attribute_names("#wake", wake_attribute(sequence))
            .expression_attribute_values(":at", n(next))
            .expression_attribute_values(":token", s(token))
            .expression_attribute_values(":entity", s(entity::NOTIFICATION_CURSOR))
            .send()
            .await
            .map_err(|e| classify("leave a wake token", e))?;
        Ok(())
    }

    async fn skip_to(
        &self,
        order: &OrderId,
        from: u64,
        to: u64,
        now: chrono::DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if to <= from {
            return Err(StoreError::ConditionFailed);
        }
        let gap = AttributeValue::L((from..to).map(n).collect());
        let stale = now - chrono::Duration::seconds(NOTIFICATION_CLAIM_SECONDS);
        // The tokens of the events passed over and of the one passing: nobody wakes them now.
        // (A longer gap leaves its older tokens behind; they only take room.)
        let tokens: Vec<String> = (from + 1..=to)
            .rev()
            .take(MAX_TOKENS_DROPPED)
            .map(wake_attribute)
            .collect();
        let mut update = self
            .client
            .get()
            .await
            .update_item()
            .table_name(&self.table)
            .set_key(Some(cursor_key(order)))
            .update_expression(format!(
                "SET #next = :to, entity = :entity, \
                 skipped = list_append(if_not_exists(skipped, :none), :gap) \
                 REMOVE claimedAt, sent{}",
                (0..tokens.len())
                    .map(|i| format!(", #wake{i}"))
                    .collect::<String>()
            ))
            .condition_expression(format!(
                "{} AND (attribute_not_exists(claimedAt) OR claimedAt <= :stale)",
                cursor_at(from)
            ))
            .expression_attribute_names("#next", "next")
            .expression_attribute_values(":at", n(from))
            .expression_attribute_values(":to", n(to))
            .expression_attribute_values(":stale", n(stale.timestamp_millis()))
            .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
            .expression_attribute_values(":gap", gap)
            .expression_attribute_values(":entity", s(entity::NOTIFICATION_CURSOR));
        for (i, token) in tokens.iter().enumerate() {
            update = update.expression_attribute_names(format!("#wake{i}"), token);
        }
        update
            .send()
            .await
            .map_err(|e| classify("skip notification gap", e))?;
        Ok(())
    }

    async fn restore_skipped(&self, order: &OrderId, sequence: u64) -> Result<(), StoreError> {
        let restored = recording(|| async {
            self.client
                .get()
                .await
                .update_item()
                .table_name(&self.table)
                .set_key(Some(cursor_key(order)))
                .update_expression("SET skipped = list_append(if_not_exists(skipped, :none), :one)")
                .condition_expression(
                    "attribute_not_exists(skipped) OR NOT contains(skipped, :sequence)",
                )
                .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
                .expression_attribute_values(":one", AttributeValue::L(vec![n(sequence)]))
                .expression_attribute_values(":sequence", n(sequence))
                .send()
                .await
                .map_err(|e| classify("restore a skipped notification", e))?;
            Ok(())
        })
        .await;
        match restored {
            // Recorded already.
            Err(StoreError::ConditionFailed) => Ok(()),
            other => other,
        }
    }

    async fn take_skipped(&self, order: &OrderId, sequence: u64) -> Result<(), StoreError> {
        // A list element is removed by its position: read it, and remove it on condition that
        // the same event is still there; another late event taken meanwhile shifts the list,
        // so read again before answering that this one is gone.
        for _ in 0..oms_domain::app::retry::ATTEMPTS {
            let cursor = self.cursor(order).await?;
            let index = cursor
                .skipped
                .iter()
                .position(|s| *s == sequence)
                .ok_or(StoreError::ConditionFailed)?;
            let removed = self
                .client
                .get()
                .await
                .update_item()
                .table_name(&self.table)
                .set_key(Some(cursor_key(order)))
                .update_expression(format!("REMOVE skipped[{index}]"))
                .condition_expression(format!("skipped[{index}] = :sequence"))
                .expression_attribute_values(":sequence", n(sequence))
                .send()
                .await
                .map_err(|e| classify("take a skipped notification", e));
            match removed {
                Ok(_) => return Ok(()),
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Retryable(
            "the skipped events kept changing".into(),
        ))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PreferencesItem {
    pk: String,
    sk: String,
    entity: String,
    preferences: Preferences,
    updated_at: chrono::DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_only_opens_the_listing_it_came_from() {
        let last = HashMap::from([
            ("pk".to_owned(), s("ORDER#1")),
            ("sk".to_owned(), s("ORDER")),
            ("gsi1pk".to_owned(), s("CUSTOMER#alice")),
            ("gsi1sk".to_owned(), s("ORDER#1")),
        ]);
        let cursor = DynamoStore::encode_cursor(&last).unwrap();
        let decode = |index, partition| DynamoStore::decode_cursor(&cursor, index, partition);
        assert_eq!(decode("gsi1", "CUSTOMER#alice").unwrap(), last);
        assert_eq!(
            decode("gsi1", "CUSTOMER#mallory"),
            Err(StoreError::InvalidCursor)
        );
        assert_eq!(
            decode("gsi3", "CUSTOMER#alice"),
            Err(StoreError::InvalidCursor)
        );
        assert_eq!(
            DynamoStore::decode_cursor("not base64!", "gsi1", "CUSTOMER#alice"),
            Err(StoreError::InvalidCursor)
        );
    }

    /// The item as DynamoDB JSON (`{"S": ..}`, `{"N": ..}`, maps in key order), so a snapshot
    /// shows each attribute's type as well as its name.
    fn dynamo_json(value: &AttributeValue) -> serde_json::Value {
        use serde_json::{json, Map, Value};
        match value {
            AttributeValue::S(s) => json!({ "S": s }),
            AttributeValue::N(n) => json!({ "N": n }),
            AttributeValue::Bool(b) => json!({ "BOOL": b }),
            AttributeValue::Null(_) => json!({ "NULL": true }),
            AttributeValue::L(items) => {
                json!({ "L": items.iter().map(dynamo_json).collect::<Vec<_>>() })
            }
            AttributeValue::M(map) => {
                let sorted: std::collections::BTreeMap<_, _> = map
                    .iter()
                    .map(|(k, v)| (k.clone(), dynamo_json(v)))
                    .collect();
                json!({ "M": sorted.into_iter().collect::<Map<String, Value>>() })
            }
            other => json!({ "unexpected": format!("{other:?}") }),
        }
    }

    fn item_json(item: &HashMap<String, AttributeValue>) -> serde_json::Value {
        let sorted: std::collections::BTreeMap<_, _> = item
            .iter()
            .map(|(k, v)| (k.clone(), dynamo_json(v)))
            .collect();
        serde_json::to_value(sorted).unwrap()
    }

    fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
        s.parse().unwrap()
    }

    /// The stored shape of an order is the table's, not the API's: a rename in the aggregate
    /// that would change what is stored (and what every existing item holds) fails here first.
    #[test]
    fn the_stored_shape_of_an_order_is_pinned() {
        use oms_domain::fixtures::delivered_order;
        use oms_domain::order::returns::policy::ReturnPolicy;
        use oms_domain::request::returns::{ReceiptRequest, ReturnRequest};
        let delivered = delivered_order(
            "01JDAAAAAAAAAAAAAAAAAAAAAA",
            "customer-ada",
            at("2026-11-20T10:00:00Z"),
        );
        let sku = delivered.lines[0].sku.as_str().to_owned();
        let policy = ReturnPolicy::default_policy();
        let request = ReturnRequest::parse(&serde_json::json!({"lines": [
            {"sku": sku, "quantity": 1, "reason": "DAMAGED", "comment": "cracked"}
        ]}))
        .unwrap();
        let key = IdempotencyKey::parse("return-1").unwrap();
        let requested = delivered
            .request_return(&request, key, &[], &policy, at("2026-11-21T09:00:00Z"))
            .unwrap()
            .order;
        let rma = requested.returns[0].return_id.clone();
        let requested = if requested.returns[0].status
            == oms_domain::order::returns::ReturnStatus::PendingApproval
        {
            requested
                .decide_return(
                    &rma,
                    true,
                    "admin staff-grace",
                    None,
                    at("2026-11-21T10:00:00Z"),
                )
                .unwrap()
                .order
        } else {
            requested
        };
        let receipt = ReceiptRequest::parse(&serde_json::json!({
            "lines": [{"sku": sku, "quantity": 1, "disposition": "RESTOCK"}],
            "note": "box dented"
        }))
        .unwrap();
        let received = requested
            .receive_return(
                &rma,
                &receipt,
                "warehouse packer-1",
                &policy,
                &oms_domain::shipping::ShippingPolicy::default_policy(),
                at("2026-11-25T08:00:00Z"),
            )
            .unwrap()
            .order;
        let item = to_item(&OrderItem::new(&received)).unwrap();
        insta::assert_json_snapshot!("order_item_returned", item_json(&item));
        // And it reads back as the same order.
        assert_eq!(from_item::<OrderItem>(item).unwrap().order, received);
    }

    /// The attribute the template's table expires items by.
    fn ttl_attribute() -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/template.yaml");
        let template: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        template["Resources"]["OrdersTable"]["Properties"]["TimeToLiveSpecification"]
            ["AttributeName"]
            .as_str()
            .expect("the orders table names a TTL attribute")
            .to_owned()
    }

    /// Idempotency records hold a first answer with the customer's name, address and contact:
    /// they must carry the attribute the table's TTL reads, as a number of epoch seconds, or
    /// they are kept forever.
    #[test]
    fn idempotency_records_carry_the_attribute_the_table_expires_by() {
        let created = at("2026-11-20T10:00:00Z");
        let record = IdempotencyRecord {
            customer_id: CustomerId::parse("customer-ada").unwrap(),
            key: IdempotencyKey::parse("k-1").unwrap(),
            fingerprint: "f".into(),
            order_id: OrderId::parse("01JDAAAAAAAAAAAAAAAAAAAAAA").unwrap(),
            response: "{}".into(),
            created_at: created,
        };
        let item = to_item(&IdempotencyItem::new(&record)).unwrap();
        let ttl = ttl_attribute();
        let expires = created + chrono::Duration::days(IDEMPOTENCY_TTL_DAYS);
        assert_eq!(
            item.get(&ttl),
            Some(&AttributeValue::N(expires.timestamp().to_string())),
            "the idempotency record must carry {ttl}"
        );
        // A record written under the old name still reads.
        let mut old = item.clone();
        let value = old.remove(&ttl).unwrap();
        old.insert("expires_at".into(), value);
        assert_eq!(from_item::<IdempotencyItem>(old).unwrap().record, record);
    }
}

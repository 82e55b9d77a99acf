//! An in-memory implementation of every port, for handler and application tests.
//!
//! It honours the same conditions as the DynamoDB adapter: a create whose key exists, a save or
//! reservation whose expected version is stale, and a reservation that any line cannot serve all
//! fail and change nothing. One lock around the whole state plays the part of a transaction.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::ids::{CustomerId, IdempotencyKey, OrderId, Sku};
use crate::notifications::{Channel, Preferences};
use crate::order::fulfillment::FulfillmentStatus;
use crate::order::{Order, OrderChange, Shortage};
use crate::ports::{
    CommitOutcome, CreateOutcome, IdempotencyRecord, InventoryStore, OrderStore, OrderTransactions,
    Page, StoreError,
};
use crate::ports::{NotificationCursor, NotificationStore};
use crate::stock::{Product, StockAdjustment, StockDelta, StockError};

#[derive(Default)]
struct State {
    orders: HashMap<OrderId, Order>,
    idempotency: HashMap<(CustomerId, IdempotencyKey), IdempotencyRecord>,
    products: HashMap<Sku, Product>,
    adjustments: Vec<StockAdjustment>,
    preferences: HashMap<CustomerId, Preferences>,
    cursors: HashMap<OrderId, NotificationCursor>,
}

/// A write another caller makes between one caller's read and its write.
type Interleaved = Box<dyn FnOnce(&mut HashMap<OrderId, Order>) + Send>;

/// The whole system's state behind one lock.
#[derive(Default)]
pub struct InMemoryStore {
    state: Mutex<State>,
    after_next_read: Mutex<Option<Interleaved>>,
}

impl InMemoryStore {
    /// A store whose catalog holds `products`.
    pub fn with_products(products: impl IntoIterator<Item = Product>) -> Self {
        let store = Self::default();
        store.lock().products = products.into_iter().map(|p| (p.sku.clone(), p)).collect();
        store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock can only come from a failed test assertion.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores an order as it is, for tests that start mid-life.
    pub fn insert_order(&self, order: Order) {
        self.lock().orders.insert(order.id.clone(), order);
    }

    /// Lands `write` on the orders right after the next order is read: a concurrent writer
    /// between a caller's read and its conditional write, for the tests of what the condition
    /// decides.
    pub fn interleave_after_next_read(
        &self,
        write: impl FnOnce(&mut HashMap<OrderId, Order>) + Send + 'static,
    ) {
        *self
            .after_next_read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Box::new(write));
    }

    pub fn order_count(&self) -> usize {
        self.lock().orders.len()
    }

    /// Every product, in no particular order.
    pub fn catalog(&self) -> Vec<Product> {
        self.lock().products.values().cloned().collect()
    }

    /// The adjustments recorded for one SKU, oldest first.
    pub fn all_adjustments(&self, sku: &Sku) -> Vec<StockAdjustment> {
        self.lock()
            .adjustments
            .iter()
            .filter(|a| &a.sku == sku)
            .cloned()
            .collect()
    }
}

/// Where an order stands in a listing: a sortable key, as an index's sort key is.
fn listing_key(at: Option<chrono::DateTime<chrono::Utc>>, id: &OrderId) -> String {
    let at = at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
    format!("{}#{id}", at.unwrap_or_default())
}

/// One page of a listing, as a query of an index pages: `entries` are (sort key, order) of the
/// listing named `listing` (an index and its partition); the cursor names the listing and the
/// last key handed out, so it opens no other listing and resumes after its position even once
/// its order has left the listing.
fn page_of<T: Clone>(
    listing: &str,
    mut entries: Vec<(String, &T)>,
    newest_first: bool,
    limit: u32,
    cursor: Option<&str>,
) -> Result<Page<T>, StoreError> {
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    if newest_first {
        entries.reverse();
    }
    let start = match cursor {
        None => 0,
        Some(cursor) => {
            let (named, last) = cursor.split_once('|').ok_or(StoreError::InvalidCursor)?;
            if named != listing {
                return Err(StoreError::InvalidCursor);
            }
            entries.partition_point(|(key, _)| {
                if newest_first {
                    key.as_str() >= last
                } else {
                    key.as_str() <= last
                }
            })
        }
    };
    let page: Vec<&(String, &T)> = entries.iter().skip(start).take(limit as usize).collect();
    let next_cursor = (start + page.len() < entries.len())
        .then(|| page.last().map(|(key, _)| format!("{listing}|{key}")))
        .flatten();
    Ok(Page {
        items: page.into_iter().map(|(_, o)| (*o).clone()).collect(),
        next_cursor,
    })
}

impl OrderStore for InMemoryStore {
    async fn create(
        &self,
        order: &Order,
        record: &IdempotencyRecord,
    ) -> Result<CreateOutcome, StoreError> {
        let mut state = self.lock();
        let key = (record.customer_id.clone(), record.key.clone());
        if state.idempotency.contains_key(&key) {
            return Ok(CreateOutcome::KeyAlreadyUsed);
        }
        if state.orders.contains_key(&order.id) {
            return Err(StoreError::ConditionFailed);
        }
        state.idempotency.insert(key, record.clone());
        state.orders.insert(order.id.clone(), order.clone());
        Ok(CreateOutcome::Created)
    }

    async fn idempotency_record(
        &self,
        customer: &CustomerId,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self
            .lock()
            .idempotency
            .get(&(customer.clone(), key.clone()))
            .cloned())
    }

    async fn get(&self, id: &OrderId) -> Result<Option<Order>, StoreError> {
        let mut state = self.lock();
        let read = state.orders.get(id).cloned();
        let interleaved = self
            .after_next_read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(write) = interleaved {
            write(&mut state.orders);
        }
        Ok(read)
    }

    async fn save(&self, order: &Order, expected_version: u64) -> Result<(), StoreError> {
        let mut state = self.lock();
        match state.orders.get(&order.id) {
            Some(stored) if stored.version == expected_version => {
                state.orders.insert(order.id.clone(), order.clone());
                Ok(())
            }
            _ => Err(StoreError::ConditionFailed),
        }
    }

    async fn list_for_customer(
        &self,
        customer: &CustomerId,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        let state = self.lock();
        let mine = state
            .orders
            .values()
            .filter(|o| &o.customer_id == customer)
            .map(|o| (listing_key(Some(o.created_at), &o.id), o))
            .collect();
        page_of(&format!("customer:{customer}"), mine, true, limit, cursor)
    }

    async fn list_pending_returns(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        let state = self.lock();
        let waiting = state
            .orders
            .values()
            .filter(|o| o.oldest_pending_return().is_some())
            .map(|o| (listing_key(o.oldest_pending_return(), &o.id), o))
            .collect();
        page_of("returns", waiting, false, limit, cursor)
    }

    async fn list_by_status(
        &self,
        status: crate::order::OrderStatus,
        entered_before: chrono::DateTime<chrono::Utc>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        let state = self.lock();
        let entries = state
            .orders
            .values()
            .filter(|o| o.status == status && o.status_since() < entered_before)
            .map(|o| (listing_key(Some(o.status_since()), &o.id), o))
            .collect();
        page_of(
            &format!("status-{}", status.as_str()),
            entries,
            false,
            limit,
            cursor,
        )
    }

    async fn list_payment_watch(
        &self,
        watch: crate::ports::PaymentWatch,
        since_before: Option<chrono::DateTime<chrono::Utc>>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        let state = self.lock();
        let entries = state
            .orders
            .values()
            .filter_map(|o| watch.since(o).map(|since| (since, o)))
            .filter(|(since, _)| since_before.is_none_or(|before| *since < before))
            .map(|(since, o)| (listing_key(Some(since), &o.id), o))
            .collect();
        page_of(
            &format!("payments-{watch:?}"),
            entries,
            false,
            limit,
            cursor,
        )
    }

    async fn list_fulfillments(
        &self,
        warehouse: &str,
        status: FulfillmentStatus,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        let state = self.lock();
        let work = state
            .orders
            .values()
            .filter(|o| {
                // As DynamoDB's sparse pick list: only while the warehouse has work on the order,
                // so neither once it shipped nor once it was cancelled (the shipment stays where
                // it had got to).
                o.status == crate::order::OrderStatus::Fulfilling
                    && o.fulfillment
                        .as_ref()
                        .is_some_and(|f| f.warehouse == warehouse && f.status == status)
            })
            .map(|o| {
                (
                    listing_key(o.fulfillment.as_ref().map(|f| f.queued_at), &o.id),
                    o,
                )
            })
            .collect();
        let listing = format!("pick:{warehouse}:{}", status.as_str());
        page_of(&listing, work, false, limit, cursor)
    }
}

impl InventoryStore for InMemoryStore {
    async fn products(&self, skus: &[Sku]) -> Result<Vec<Product>, StoreError> {
        let state = self.lock();
        Ok(crate::ids::distinct_skus(skus)
            .into_iter()
            .filter_map(|s| state.products.get(s).cloned())
            .collect())
    }

    async fn product(&self, sku: &Sku) -> Result<Option<Product>, StoreError> {
        Ok(self.lock().products.get(sku).cloned())
    }

    async fn save_product(
        &self,
        product: &Product,
        expected_version: Option<u64>,
        adjustment: Option<&StockAdjustment>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.products.get(&product.sku).map(|p| p.version) != expected_version {
            return Err(StoreError::ConditionFailed);
        }
        state.products.insert(product.sku.clone(), product.clone());
        state.adjustments.extend(adjustment.cloned());
        Ok(())
    }

    async fn catalog(&self, limit: u32, cursor: Option<&str>) -> Result<Page<Product>, StoreError> {
        let state = self.lock();
        let entries = state
            .products
            .values()
            .map(|p| (p.sku.to_string(), p))
            .collect();
        page_of("catalog", entries, false, limit, cursor)
    }

    async fn adjustments(
        &self,
        sku: &Sku,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<StockAdjustment>, StoreError> {
        let state = self.lock();
        let entries = state
            .adjustments
            .iter()
            .filter(|a| &a.sku == sku)
            .map(|a| (a.id.clone(), a))
            .collect();
        page_of(&format!("adjustments:{sku}"), entries, true, limit, cursor)
    }
}

impl OrderTransactions for InMemoryStore {
    async fn commit(&self, write: &OrderChange) -> Result<CommitOutcome, StoreError> {
        let mut state = self.lock();
        let order = &write.order;
        if state.orders.get(&order.id).map(|o| o.version + 1) != Some(order.version) {
            return Ok(CommitOutcome::OrderChanged);
        }
        if let Some(created) = &write.created {
            if state.orders.contains_key(&created.id) {
                return Err(StoreError::ConditionFailed);
            }
        }
        let mut updated = Vec::new();
        let mut shortages = Vec::new();
        for delta in StockDelta::net(&write.moves) {
            let Some(product) = state.products.get(&delta.sku) else {
                shortages.push(Shortage {
                    sku: delta.sku.clone(),
                    requested: delta.takes_available,
                    available: 0,
                });
                continue;
            };
            match product.stock.apply(&delta) {
                Ok(stock) => updated.push(Product {
                    stock,
                    version: product.version + 1,
                    updated_at: order.updated_at,
                    ..product.clone()
                }),
                Err(StockError::Insufficient {
                    requested,
                    available,
                }) => shortages.push(Shortage {
                    sku: delta.sku.clone(),
                    requested,
                    available,
                }),
                Err(e) => return Err(StoreError::Corrupt(format!("{}: {e}", delta.sku))),
            }
        }
        if !shortages.is_empty() {
            return Ok(CommitOutcome::Short(shortages));
        }
        for product in updated {
            state.products.insert(product.sku.clone(), product);
        }
        state.orders.insert(order.id.clone(), order.clone());
        if let Some(created) = &write.created {
            state.orders.insert(created.id.clone(), created.clone());
        }
        Ok(CommitOutcome::Committed)
    }
}

impl NotificationStore for InMemoryStore {
    async fn preferences(&self, customer: &CustomerId) -> Result<Option<Preferences>, StoreError> {
        Ok(self.lock().preferences.get(customer).copied())
    }

    async fn save_preferences(
        &self,
        customer: &CustomerId,
        preferences: &Preferences,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        self.lock()
            .preferences
            .insert(customer.clone(), *preferences);
        Ok(())
    }

    async fn cursor(&self, order: &OrderId) -> Result<NotificationCursor, StoreError> {
        Ok(self.lock().cursors.get(order).cloned().unwrap_or_default())
    }

    async fn notification_context(
        &self,
        order: &OrderId,
        customer: &CustomerId,
    ) -> Result<(NotificationCursor, Option<Order>, Option<Preferences>), StoreError> {
        let state = self.lock();
        Ok((
            state.cursors.get(order).cloned().unwrap_or_default(),
            state.orders.get(order).cloned(),
            state.preferences.get(customer).copied(),
        ))
    }

    async fn claim(
        &self,
        order: &OrderId,
        next: u64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let cursor = state.cursors.entry(order.clone()).or_default();
        if cursor.next != next || cursor.claimed_by_another(now) {
            return Err(StoreError::ConditionFailed);
        }
        cursor.claimed_at = Some(now);
        Ok(())
    }

    async fn mark_sent(
        &self,
        order: &OrderId,
        sequence: u64,
        channel: Channel,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        match state.cursors.get_mut(order) {
            Some(cursor) if cursor.next == sequence => {
                cursor.sent.push(channel);
                Ok(())
            }
            _ => Err(StoreError::ConditionFailed),
        }
    }

    async fn advance(&self, order: &OrderId, from: u64) -> Result<Option<String>, StoreError> {
        let mut state = self.lock();
        let cursor = state.cursors.entry(order.clone()).or_default();
        if cursor.next != from {
            return Err(StoreError::ConditionFailed);
        }
        let mut waiting = std::mem::take(&mut cursor.waiting);
        let woken = waiting.remove(&(from + 1));
        *cursor = NotificationCursor {
            next: from + 1,
            skipped: std::mem::take(&mut cursor.skipped),
            waiting,
            ..NotificationCursor::default()
        };
        Ok(woken)
    }

    async fn wait_for_turn(
        &self,
        order: &OrderId,
        next: u64,
        sequence: u64,
        token: &str,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let cursor = state.cursors.entry(order.clone()).or_default();
        if cursor.next != next {
            return Err(StoreError::ConditionFailed);
        }
        cursor.waiting.insert(sequence, token.to_owned());
        Ok(())
    }

    async fn skip_to(
        &self,
        order: &OrderId,
        from: u64,
        to: u64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let cursor = state.cursors.entry(order.clone()).or_default();
        if cursor.next != from || to <= from || cursor.claimed_by_another(now) {
            return Err(StoreError::ConditionFailed);
        }
        let mut skipped = std::mem::take(&mut cursor.skipped);
        skipped.extend(from..to);
        let mut waiting = std::mem::take(&mut cursor.waiting);
        waiting.retain(|sequence, _| *sequence > to);
        *cursor = NotificationCursor {
            next: to,
            skipped,
            waiting,
            ..NotificationCursor::default()
        };
        Ok(())
    }

    async fn restore_skipped(&self, order: &OrderId, sequence: u64) -> Result<(), StoreError> {
        let mut state = self.lock();
        let cursor = state.cursors.entry(order.clone()).or_default();
        if !cursor.skipped.contains(&sequence) {
            cursor.skipped.push(sequence);
        }
        Ok(())
    }

    async fn take_skipped(&self, order: &OrderId, sequence: u64) -> Result<(), StoreError> {
        let mut state = self.lock();
        let cursor = state.cursors.entry(order.clone()).or_default();
        match cursor.skipped.iter().position(|s| *s == sequence) {
            Some(index) => {
                cursor.skipped.remove(index);
                Ok(())
            }
            None => Err(StoreError::ConditionFailed),
        }
    }
}

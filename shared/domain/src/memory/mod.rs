//! An in-memory implementation of every port, for handler and application tests: the store and
//! its state here, a file per port beside it.
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
use crate::stock::{
    Product, StockAdjustment, StockDelta, StockError, Transfer, TransferKey, TransferStatus,
    TransferStep,
};

#[derive(Default)]
struct State {
    orders: HashMap<OrderId, Order>,
    idempotency: HashMap<(CustomerId, IdempotencyKey), IdempotencyRecord>,
    products: HashMap<Sku, Product>,
    adjustments: Vec<StockAdjustment>,
    transfers: Vec<Transfer>,
    transfer_keys: Vec<TransferKey>,
    purchase_orders: Vec<crate::purchase::PurchaseOrder>,
    purchase_keys: Vec<crate::purchase::PurchaseKey>,
    preferences: HashMap<CustomerId, Preferences>,
    cursors: HashMap<OrderId, NotificationCursor>,
    locations: Option<crate::ports::StoredLocations>,
    attempts: HashMap<(String, i64), u64>,
}

/// A write another caller makes between one caller's read and its write.
type Interleaved = Box<dyn FnOnce(&mut HashMap<OrderId, Order>) + Send>;

/// A stock change another caller makes between one caller's read of the counters and its write.
type InterleavedStock = Box<dyn FnOnce(&mut HashMap<Sku, Product>) + Send>;

/// The whole system's state behind one lock.
#[derive(Default)]
pub struct InMemoryStore {
    state: Mutex<State>,
    after_next_read: Mutex<Option<Interleaved>>,
    after_next_products_read: Mutex<Option<InterleavedStock>>,
}

impl InMemoryStore {
    /// A store whose catalog holds `products`.
    pub fn with_products(products: impl IntoIterator<Item = Product>) -> Self {
        let store = Self::default();
        store.lock().products = products.into_iter().map(|p| (p.sku.clone(), p)).collect();
        store
    }

    /// The list of locations staff saved, if any.
    pub fn stored_locations_now(&self) -> Option<crate::ports::StoredLocations> {
        self.lock().locations.clone()
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

    /// Lands `write` on the products right after the next read of several products (what a
    /// reservation plans from): stock taken between the plan and its conditional write.
    pub fn interleave_after_next_products_read(
        &self,
        write: impl FnOnce(&mut HashMap<Sku, Product>) + Send + 'static,
    ) {
        *self
            .after_next_products_read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Box::new(write));
    }

    /// The stored order `id` names, for tests that look at what a handler wrote.
    #[track_caller]
    pub fn stored(&self, id: &str) -> Order {
        let id = OrderId::parse(id).expect("a test names a valid order id");
        match self.lock().orders.get(&id) {
            Some(order) => order.clone(),
            None => panic!("no order {id} is stored"),
        }
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

mod inventory;
mod notifications;
mod orders;
mod transactions;

impl crate::ports::LocationStore for InMemoryStore {
    async fn stored_locations(&self) -> Result<Option<crate::ports::StoredLocations>, StoreError> {
        Ok(self.lock().locations.clone())
    }

    async fn save_locations(&self, list: &crate::ports::StoredLocations) -> Result<(), StoreError> {
        let mut state = self.lock();
        let stored = state.locations.as_ref().map_or(0, |l| l.version);
        if stored + 1 != list.version {
            return Err(StoreError::ConditionFailed);
        }
        state.locations = Some(list.clone());
        Ok(())
    }
}

impl crate::ports::AttemptCounter for InMemoryStore {
    async fn count_attempt(
        &self,
        key: &str,
        window_start: i64,
        _expires: i64,
    ) -> Result<u64, crate::ports::StoreError> {
        let mut state = self.lock();
        let count = state
            .attempts
            .entry((key.to_owned(), window_start))
            .or_default();
        *count += 1;
        Ok(*count)
    }
}

//! The inventory port in memory.

use super::*;
use crate::purchase::{PurchaseKey, PurchaseOrder, PurchaseStep};

impl InventoryStore for InMemoryStore {
    async fn products(&self, skus: &[Sku]) -> Result<Vec<Product>, StoreError> {
        let mut state = self.lock();
        let found = crate::ids::distinct_skus(skus)
            .into_iter()
            .filter_map(|s| state.products.get(s).cloned())
            .collect();
        let interleaved = self
            .after_next_products_read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(write) = interleaved {
            write(&mut state.products);
        }
        Ok(found)
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
        self.save_product_filling(product, expected_version, adjustment, &[])
            .await
    }

    async fn save_product_filling(
        &self,
        product: &Product,
        expected_version: Option<u64>,
        adjustment: Option<&StockAdjustment>,
        filled: &[crate::order::Order],
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.products.get(&product.sku).map(|p| p.version) != expected_version {
            return Err(StoreError::ConditionFailed);
        }
        if !orders_follow_stored(&state, filled) {
            return Err(StoreError::ConditionFailed);
        }
        if let Some(key) = adjustment.and_then(|a| a.key.as_ref()) {
            let used = |a: &StockAdjustment| a.sku == product.sku && a.key.as_ref() == Some(key);
            if state.adjustments.iter().any(used) {
                return Err(StoreError::ConditionFailed);
            }
        }
        state.products.insert(product.sku.clone(), product.clone());
        state.adjustments.extend(adjustment.cloned());
        for order in filled {
            state.orders.insert(order.id.clone(), order.clone());
        }
        Ok(())
    }

    async fn adjustment_by_key(
        &self,
        sku: &Sku,
        key: &IdempotencyKey,
    ) -> Result<Option<StockAdjustment>, StoreError> {
        let state = self.lock();
        let made = |a: &&StockAdjustment| &a.sku == sku && a.key.as_ref() == Some(key);
        Ok(state.adjustments.iter().find(made).cloned())
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

    async fn catalog_starting_with(
        &self,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<Product>, StoreError> {
        let state = self.lock();
        let mut found: Vec<Product> = state
            .products
            .values()
            .filter(|p| p.sku.as_str().starts_with(prefix))
            .cloned()
            .collect();
        found.sort_by(|a, b| a.sku.cmp(&b.sku));
        found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(found)
    }

    async fn adjustments(
        &self,
        sku: &Sku,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<StockAdjustment>, StoreError> {
        let state = self.lock();
        let of_sku = |a: &StockAdjustment| (&a.sku == sku).then(|| a.id.clone());
        let listing = format!("adjustments:{sku}");
        newest_first(&listing, &state.adjustments, of_sku, limit, cursor)
    }

    async fn save_transfer(
        &self,
        step: &TransferStep,
        key: Option<&TransferKey>,
        filled: &[crate::order::Order],
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(key) = key {
            let used = state
                .transfer_keys
                .iter()
                .any(|k| k.sku == key.sku && k.key == key.key);
            if used {
                return Err(StoreError::ConditionFailed);
            }
        }
        let product = &step.product;
        if !follows_stored(&state, product) || !orders_follow_stored(&state, filled) {
            return Err(StoreError::ConditionFailed);
        }
        let transfer = &step.transfer;
        let stored = state
            .transfers
            .iter()
            .position(|t| t.sku == transfer.sku && t.id == transfer.id);
        match (transfer.status, stored) {
            (TransferStatus::InTransit, None) => state.transfers.push(transfer.clone()),
            (TransferStatus::Received, Some(at))
                if state.transfers[at].status == TransferStatus::InTransit =>
            {
                state.transfers[at] = transfer.clone()
            }
            _ => return Err(StoreError::ConditionFailed),
        }
        state.products.insert(product.sku.clone(), product.clone());
        state.adjustments.push(step.adjustment.clone());
        state.transfer_keys.extend(key.cloned());
        for order in filled {
            state.orders.insert(order.id.clone(), order.clone());
        }
        Ok(())
    }

    async fn transfer_key(
        &self,
        sku: &Sku,
        key: &IdempotencyKey,
    ) -> Result<Option<TransferKey>, StoreError> {
        Ok(self
            .lock()
            .transfer_keys
            .iter()
            .find(|k| &k.sku == sku && &k.key == key)
            .cloned())
    }

    async fn transfer(&self, sku: &Sku, id: &str) -> Result<Option<Transfer>, StoreError> {
        Ok(self
            .lock()
            .transfers
            .iter()
            .find(|t| &t.sku == sku && t.id == id)
            .cloned())
    }

    async fn transfers(
        &self,
        sku: &Sku,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Transfer>, StoreError> {
        let state = self.lock();
        let of_sku = |t: &Transfer| (&t.sku == sku).then(|| t.id.clone());
        let listing = format!("transfers:{sku}");
        newest_first(&listing, &state.transfers, of_sku, limit, cursor)
    }

    async fn save_purchase_order(
        &self,
        step: &PurchaseStep,
        key: Option<&PurchaseKey>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(key) = key {
            let used = state
                .purchase_keys
                .iter()
                .any(|k| k.sku == key.sku && k.key == key.key);
            if used {
                return Err(StoreError::ConditionFailed);
            }
        }
        let product = &step.product;
        if !follows_stored(&state, product) || !orders_follow_stored(&state, &step.filled) {
            return Err(StoreError::ConditionFailed);
        }
        let order = &step.order;
        let stored = state
            .purchase_orders
            .iter()
            .position(|o| o.sku == order.sku && o.id == order.id);
        match stored {
            None if order.version == 1 => state.purchase_orders.push(order.clone()),
            Some(at) if state.purchase_orders[at].version + 1 == order.version => {
                state.purchase_orders[at] = order.clone()
            }
            _ => return Err(StoreError::ConditionFailed),
        }
        state.products.insert(product.sku.clone(), product.clone());
        state.adjustments.extend(step.adjustment.clone());
        state.purchase_keys.extend(key.cloned());
        for order in &step.filled {
            state.orders.insert(order.id.clone(), order.clone());
        }
        Ok(())
    }

    async fn purchase_key(
        &self,
        sku: &Sku,
        key: &IdempotencyKey,
    ) -> Result<Option<PurchaseKey>, StoreError> {
        Ok(self
            .lock()
            .purchase_keys
            .iter()
            .find(|k| &k.sku == sku && &k.key == key)
            .cloned())
    }

    async fn purchase_order(
        &self,
        sku: &Sku,
        id: &str,
    ) -> Result<Option<PurchaseOrder>, StoreError> {
        Ok(self
            .lock()
            .purchase_orders
            .iter()
            .find(|o| &o.sku == sku && o.id == id)
            .cloned())
    }

    async fn purchase_orders(
        &self,
        sku: &Sku,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<PurchaseOrder>, StoreError> {
        let state = self.lock();
        let of_sku = |o: &PurchaseOrder| (&o.sku == sku).then(|| o.id.clone());
        let listing = format!("purchase-orders:{sku}");
        newest_first(&listing, &state.purchase_orders, of_sku, limit, cursor)
    }
}

/// Whether `product` is the next version of the stored one: the condition of a step's write.
fn follows_stored(state: &State, product: &Product) -> bool {
    state.products.get(&product.sku).map(|p| p.version) == Some(product.version - 1)
}

/// One page of a SKU's entries (its adjustments, its transfers), newest first by id: the
/// entries `id_if_of_sku` names an id for.
fn newest_first<T: Clone>(
    listing: &str,
    entries: &[T],
    id_if_of_sku: impl Fn(&T) -> Option<String>,
    limit: u32,
    cursor: Option<&str>,
) -> Result<Page<T>, StoreError> {
    let entries = entries
        .iter()
        .filter_map(|e| id_if_of_sku(e).map(|id| (id, e)))
        .collect();
    page_of(listing, entries, true, limit, cursor)
}

/// Whether every order is the version after the stored one: a receipt's fills are written on
/// the versions they were made from.
fn orders_follow_stored(state: &State, orders: &[crate::order::Order]) -> bool {
    orders
        .iter()
        .all(|o| state.orders.get(&o.id).map(|stored| stored.version + 1) == Some(o.version))
}

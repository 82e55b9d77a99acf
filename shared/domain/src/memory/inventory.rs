//! The inventory port in memory.

use super::*;

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

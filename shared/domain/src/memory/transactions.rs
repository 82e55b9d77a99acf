//! Orders and stock moved together, in memory: the one lock plays the transaction.

use super::*;
use crate::replenishment::day_of;

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
        if let Some(linked) = &write.linked {
            if linked.id == order.id {
                return Err(StoreError::Corrupt(format!(
                    "order {}: a write cannot link the order to itself",
                    order.id
                )));
            }
            if state.orders.get(&linked.id).map(|o| o.version + 1) != Some(linked.version) {
                return Ok(CommitOutcome::OrderChanged);
            }
        }
        let mut updated = Vec::new();
        let mut shortages = Vec::new();
        for delta in StockDelta::net(&write.moves) {
            let Some(product) = state.products.get(&delta.sku) else {
                shortages.push(Shortage {
                    sku: delta.sku.clone(),
                    requested: delta.locations.iter().map(|d| d.takes_available).sum(),
                    available: 0,
                });
                continue;
            };
            // An entry of the SKU's history was computed from counters that changed since.
            let stale = write.stock_history.iter().any(|e| {
                e.sku == delta.sku
                    && e.location.as_deref().map(|at| product.stock.at(at)) != Some(e.before)
            });
            if stale {
                return Ok(CommitOutcome::OrderChanged);
            }
            // Units backordered need room under the SKU's limit.
            let takes_room: u32 = delta.locations.iter().map(|d| d.takes_room).sum();
            if takes_room > product.backorders.room_left() {
                shortages.push(Shortage {
                    sku: delta.sku.clone(),
                    requested: takes_room,
                    available: product.backorders.room_left(),
                });
                continue;
            }
            // Units given back are units that waited: never below none.
            let change: i64 = delta.locations.iter().map(|d| d.backordered).sum();
            if i64::from(product.backorders.backordered) + change < 0 {
                return Err(StoreError::Corrupt(format!(
                    "order {}: gives back more backordered units of {} than wait",
                    order.id, delta.sku
                )));
            }
            match product.stock.apply(&delta) {
                Ok(stock) => {
                    let mut next = Product {
                        stock,
                        version: product.version + 1,
                        updated_at: order.updated_at,
                        ..product.clone()
                    };
                    next.record_demand(&delta, day_of(order.updated_at));
                    let change: i64 = delta.locations.iter().map(|d| d.backordered).sum();
                    if change != 0 {
                        let left = order.waiting_for(&delta.sku);
                        let key = crate::backorder::waiting_key(order.created_at, &order.id);
                        next.backorders.record(&key, left, change);
                    }
                    updated.push(next);
                }
                Err((
                    _,
                    StockError::Insufficient {
                        requested,
                        available,
                    },
                )) => shortages.push(Shortage {
                    sku: delta.sku.clone(),
                    requested,
                    available,
                }),
                Err((location, e)) => {
                    return Err(StoreError::Corrupt(format!(
                        "{} at {location}: {e}",
                        delta.sku
                    )))
                }
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
        if let Some(linked) = &write.linked {
            state.orders.insert(linked.id.clone(), linked.clone());
        }
        state
            .adjustments
            .extend(write.stock_history.iter().cloned());
        Ok(CommitOutcome::Committed)
    }
}

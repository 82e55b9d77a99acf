//! The transactions that move an order and its stock together: reservations, shipments,
//! cancellations and returns, all lines or none.

use super::*;

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

impl DynamoStore {
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
}

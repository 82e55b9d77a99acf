//! The transactions that move an order and its stock together: reservations, shipments,
//! cancellations and returns, all lines or none.

use super::*;

impl OrderTransactions for DynamoStore {
    async fn commit(&self, write: &OrderChange) -> Result<CommitOutcome, StoreError> {
        let order = &write.order;
        if write.linked.as_ref().is_some_and(|l| l.id == order.id) {
            return Err(StoreError::Corrupt(format!(
                "order {}: a write cannot link the order to itself",
                order.id
            )));
        }
        let now = s(order
            .updated_at
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
        let deltas = StockDelta::net(&write.moves);
        // The counters a SKU's history entries were computed from, per location: the write is
        // conditioned on them.
        let recorded = |sku: &Sku| -> Vec<(String, StockLevel)> {
            write
                .stock_history
                .iter()
                .filter(|e| &e.sku == sku)
                .filter_map(|e| Some((e.location.clone()?, e.before)))
                .collect()
        };
        let mut items = Vec::with_capacity(deltas.len() + 2);
        let today = oms_domain::replenishment::day_of(order.updated_at);
        for delta in &deltas {
            // The order's entry among the SKU's waiting orders, if the write changes what it
            // waits for: its units still waiting after it.
            let waiting = delta.locations.iter().any(|d| d.backordered != 0).then(|| {
                let left = order.waiting_for(&delta.sku);
                (
                    oms_domain::backorder::waiting_key(order.created_at, &order.id),
                    left,
                )
            });
            items.push(self.move_stock(delta, &now, today, &recorded(&delta.sku), waiting)?);
        }
        // Where each kind of item sits in the transaction, for reading its cancellation.
        let order_at = items.len();
        items.push(self.put_order_at_version(order, order.version - 1)?);
        let linked_at = write.linked.as_ref().map(|_| items.len());
        if let Some(linked) = &write.linked {
            items.push(self.put_order_at_version(linked, linked.version - 1)?);
        }
        let created_at = write.created.as_ref().map(|_| items.len());
        if let Some(created) = &write.created {
            let put = self
                .put(to_item(&OrderItem::new(created))?)
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| StoreError::Failed(e.to_string()))?;
            items.push(TransactWriteItem::builder().put(put).build());
            // Its search keys where they fit (a return accepted under an older, larger limit
            // still receives; its replacement is then found by its id).
            let room = oms_domain::MAX_TRANSACTION_ITEMS
                .saturating_sub(items.len() + write.stock_history.len());
            items.extend(self.search_item_writes(created)?.into_iter().take(room));
        }
        let history_at = items.len()..items.len() + write.stock_history.len();
        for entry in &write.stock_history {
            items.push(self.put_new(&AdjustmentItem::new(entry))?);
        }
        // The pick-list entries of a split order's shipments ride along where they fit: the
        // order's own item is the truth the pick list checks them against, so an entry left
        // out of a write that ends the warehouses' work (a cancellation of an order with
        // ninety-odd SKUs) lists nothing; a move, which adds one, is refused before it could
        // be left out.
        let room = oms_domain::MAX_TRANSACTION_ITEMS.saturating_sub(items.len());
        let entries = self.shipment_entry_writes(order)?;
        items.extend(entries.into_iter().take(room));
        let Some(reasons) = self.transact("write order and stock", items).await? else {
            return Ok(CommitOutcome::Committed);
        };
        let failed = |index: usize| {
            reasons.get(index).and_then(|r| r.code()) == Some("ConditionalCheckFailed")
        };
        // A history entry's id taken (two moves in the same millisecond): read and try again,
        // as when the order changed.
        if failed(order_at) || linked_at.is_some_and(failed) || history_at.clone().any(failed) {
            return Ok(CommitOutcome::OrderChanged);
        }
        if created_at.is_some_and(failed) {
            return Err(StoreError::ConditionFailed);
        }
        let mut shortages = Vec::new();
        for (index, delta) in deltas.iter().enumerate().filter(|(i, _)| failed(*i)) {
            // The item as it was when its condition failed: which location fell short, and by
            // how much. A missing item holds nothing anywhere.
            let before = match reasons[index].item() {
                Some(item) => Some(self.product_from(item.clone())?),
                None => None,
            };
            // Counters a history entry was computed from changed since they were read: read
            // again.
            if let Some(found) = &before {
                if recorded(&delta.sku)
                    .iter()
                    .any(|(at, level)| found.stock.at(at) != *level)
                {
                    return Ok(CommitOutcome::OrderChanged);
                }
            }
            // Giving back more backordered units than wait: only a bug can.
            let gives_back: i64 = -delta.locations.iter().map(|d| d.backordered).sum::<i64>();
            if gives_back > 0
                && before
                    .as_ref()
                    .is_some_and(|p| i64::from(p.backorders.backordered) < gives_back)
            {
                return Err(StoreError::Corrupt(format!(
                    "order {}: gives back more backordered units of {} than wait",
                    order.id, delta.sku
                )));
            }
            // Backordered past the limit's room (staff lowered it, or others took it first).
            let takes_room: u32 = delta.locations.iter().map(|d| d.takes_room).sum();
            let room = before.as_ref().map_or(0, |p| p.backorders.room_left());
            if takes_room > room {
                shortages.push(Shortage {
                    sku: delta.sku.clone(),
                    requested: takes_room,
                    available: room,
                });
                continue;
            }
            for at in &delta.locations {
                let level = before
                    .as_ref()
                    .map(|p| p.stock.at(&at.location))
                    .unwrap_or_default();
                if before.is_some() && level.reserved() < at.takes_reserved {
                    return Err(StoreError::Corrupt(format!(
                        "order {}: fewer units of {} reserved at {} than it takes",
                        order.id, delta.sku, at.location
                    )));
                }
                if level.available() < at.takes_available || before.is_none() {
                    shortages.push(Shortage {
                        sku: delta.sku.clone(),
                        requested: at.takes_available,
                        available: level.available(),
                    });
                }
            }
        }
        if shortages.is_empty() {
            // Every counter held enough: the write named a location the SKU has no counters
            // at, which only a bug can do.
            return Err(StoreError::Corrupt(format!(
                "order {}: a stock write names a location without counters",
                order.id
            )));
        }
        Ok(CommitOutcome::Short(shortages))
    }
}

impl DynamoStore {
    /// A transaction item that applies one SKU's netted moves at every location they touch,
    /// conditioned on each counter holding what the write takes from it, and bumps the SKU's
    /// version; what it reserves is added to `today`'s demand at each location. A failed
    /// condition returns the item as it was, so the caller can say how many were there. The default location's counters are the item's top-level ones; another
    /// location's are under `locations.<id>`, which must hold it already when the write takes
    /// from it (the condition fails otherwise) and which a write that only adds to it (a
    /// restock) finds there, because units come back only where they were reserved.
    fn move_stock(
        &self,
        delta: &StockDelta,
        now: &AttributeValue,
        today: NaiveDate,
        recorded: &[(String, StockLevel)],
        waiting: Option<(String, u32)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut sets = vec![
            "#version = #version + :one".to_owned(),
            "#updatedAt = :now".to_owned(),
        ];
        let mut conditions = vec!["attribute_exists(pk)".to_owned()];
        // Demand days before the window, dropped as a reservation passes (a missing one is no
        // error).
        let mut removes: Vec<String> = Vec::new();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(sku_pk(&delta.sku), "PRODUCT")))
            .expression_attribute_names("#available", "available")
            .expression_attribute_names("#reserved", "reserved")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#updatedAt", "updatedAt")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", now.clone());
        for (i, at) in delta.locations.iter().enumerate() {
            let path = if at.location == self.default_location {
                // Stock moved here: the default location keeps the SKU from now on.
                sets.push("#homeKept = :kept".to_owned());
                update = update
                    .expression_attribute_names("#homeKept", "homeKept")
                    .expression_attribute_values(":kept", AttributeValue::Bool(true));
                String::new()
            } else {
                update = update
                    .expression_attribute_names("#locations", "locations")
                    .expression_attribute_names(format!("#l{i}"), &at.location);
                conditions.push(format!("attribute_exists(#locations.#l{i})"));
                format!("#locations.#l{i}.")
            };
            sets.push(format!(
                "{path}#available = {path}#available + :da{i}, {path}#reserved = {path}#reserved + :dr{i}"
            ));
            conditions.push(format!(
                "{path}#available >= :na{i} AND {path}#reserved >= :nr{i}"
            ));
            // A history entry records this location's counters before and after: they must
            // still be the ones it was computed from.
            if let Some((_, before)) = recorded.iter().find(|(l, _)| *l == at.location) {
                conditions.push(format!(
                    "{path}#available = :ba{i} AND {path}#reserved = :br{i}"
                ));
                update = update
                    .expression_attribute_values(format!(":ba{i}"), n(before.available()))
                    .expression_attribute_values(format!(":br{i}"), n(before.reserved()));
            }
            if at.ordered > 0 {
                sets.push(format!("#dm{i} = if_not_exists(#dm{i}, :zero) + :no{i}"));
                update = update
                    .expression_attribute_names(
                        format!("#dm{i}"),
                        demand_attribute(&at.location, today),
                    )
                    .expression_attribute_values(":zero", n(0))
                    .expression_attribute_values(format!(":no{i}"), n(at.ordered));
                for (k, old) in Demand::cleared_by(today).enumerate() {
                    removes.push(format!("#dc{i}x{k}"));
                    update = update.expression_attribute_names(
                        format!("#dc{i}x{k}"),
                        demand_attribute(&at.location, old),
                    );
                }
            }
            update = update
                .expression_attribute_values(format!(":da{i}"), n(at.available))
                .expression_attribute_values(format!(":dr{i}"), n(at.reserved))
                .expression_attribute_values(format!(":na{i}"), n(at.takes_available))
                .expression_attribute_values(format!(":nr{i}"), n(at.takes_reserved));
        }
        // Backorders: room taken from (or given back to) the SKU's limit, the units
        // backordered, and the order's entry among those waiting.
        let takes_room: u32 = delta.locations.iter().map(|d| d.takes_room).sum();
        let backordered: i64 = delta.locations.iter().map(|d| d.backordered).sum();
        if backordered != 0 {
            sets.push(
                "#backordered = if_not_exists(#backordered, :zero) + :bo, #room = if_not_exists(#room, :zero) - :bo".to_owned(),
            );
            update = update
                .expression_attribute_names("#backordered", "backordered")
                .expression_attribute_names("#room", "backorderRoom")
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":bo", n(backordered));
            // Units given back are units that waited: never below none.
            if backordered < 0 {
                conditions.push("#backordered >= :bofloor".to_owned());
                update = update.expression_attribute_values(":bofloor", n(-backordered));
            }
        }
        if takes_room > 0 {
            conditions.push("#room >= :room".to_owned());
            update = update
                .expression_attribute_names("#room", "backorderRoom")
                .expression_attribute_values(":room", n(takes_room));
        }
        if let Some((key, left)) = waiting {
            update = update.expression_attribute_names("#waiting", waiting_attribute(&key));
            if left == 0 {
                removes.push("#waiting".to_owned());
            } else {
                sets.push("#waiting = :waiting".to_owned());
                update = update.expression_attribute_values(":waiting", n(left));
            }
        }
        let update = update
            .update_expression(if removes.is_empty() {
                format!("SET {}", sets.join(", "))
            } else {
                format!("SET {} REMOVE {}", sets.join(", "), removes.join(", "))
            })
            .condition_expression(conditions.join(" AND "))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The writes of a split order's pick-list entries ([`shipment_entries`]): each is put,
    /// with its list's key while its shipment is on a pick list and without one after, which
    /// takes it off the index (a put rather than a delete, so every function that writes orders
    /// needs no right to delete items).
    pub(super) fn shipment_entry_writes(
        &self,
        order: &Order,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        shipment_entries(order)
            .into_iter()
            .map(|entry| {
                let put = self
                    .put(to_item(&entry)?)
                    .build()
                    .map_err(|e| StoreError::Failed(e.to_string()))?;
                Ok(TransactWriteItem::builder().put(put).build())
            })
            .collect()
    }

    /// The transaction items that write a new order's search keys.
    pub(super) fn search_item_writes(
        &self,
        order: &Order,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        search_items(order)
            .iter()
            .map(|item| {
                let put = self
                    .put(to_item(item)?)
                    .build()
                    .map_err(|e| StoreError::Failed(e.to_string()))?;
                Ok(TransactWriteItem::builder().put(put).build())
            })
            .collect()
    }

    /// A transaction item that writes `order` on condition that the stored one has `expected`.
    pub(super) fn put_order_at_version(
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

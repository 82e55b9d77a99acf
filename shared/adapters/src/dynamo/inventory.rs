//! The inventory port: products and their stock counters, the catalog index and the adjustment
//! trail.

use super::*;
use oms_domain::purchase::{PurchaseKey, PurchaseOrder, PurchaseStep};

fn purchase_sk(id: &str) -> String {
    format!("PURCHASE#{id}")
}

fn purchase_key_sk(key: &IdempotencyKey) -> String {
    format!("PURCHASE-KEY#{key}")
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
                products.push(self.product_from(item)?);
            }
        }
        Ok(products)
    }

    async fn product(&self, sku: &Sku) -> Result<Option<Product>, StoreError> {
        let item = self
            .read(key(sku_pk(sku), "PRODUCT"), "get product")
            .await?;
        item.map(|item| self.product_from(item)).transpose()
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
        filled: &[Order],
    ) -> Result<(), StoreError> {
        let mut items = self.product_writes(product, expected_version, adjustment)?;
        for order in filled {
            items.push(self.put_order_at_version(order, order.version - 1)?);
        }
        match self.transact("save product", items).await? {
            None => Ok(()),
            Some(_) => Err(StoreError::ConditionFailed),
        }
    }

    async fn save_transfer(
        &self,
        step: &TransferStep,
        key: Option<&TransferKey>,
        filled: &[Order],
    ) -> Result<(), StoreError> {
        let mut items = self.product_writes(
            &step.product,
            Some(step.product.version - 1),
            Some(&step.adjustment),
        )?;
        let transfer = &step.transfer;
        let item = TransferItem {
            pk: sku_pk(&transfer.sku),
            sk: format!("TRANSFER#{}", transfer.id),
            entity: entity::TRANSFER.into(),
            transfer: transfer.clone(),
        };
        let put = self.put(to_item(&item)?);
        let put = match transfer.status {
            TransferStatus::InTransit => put.condition_expression("attribute_not_exists(pk)"),
            // Received once: the stored transfer must still be on its way.
            TransferStatus::Received => put
                .condition_expression("#status = :inTransit")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":inTransit", s(TransferStatus::InTransit.as_str())),
        };
        items.push(
            TransactWriteItem::builder()
                .put(put.build().map_err(|e| StoreError::Failed(e.to_string()))?)
                .build(),
        );
        for order in filled {
            items.push(self.put_order_at_version(order, order.version - 1)?);
        }
        if let Some(key) = key {
            let item = TransferKeyItem {
                pk: sku_pk(&key.sku),
                sk: transfer_key_sk(&key.key),
                entity: entity::TRANSFER_KEY.into(),
                key: key.clone(),
            };
            items.push(self.put_new(&item)?);
        }
        match self.transact("save transfer", items).await? {
            None => Ok(()),
            Some(_) => Err(StoreError::ConditionFailed),
        }
    }

    async fn adjustment_by_key(
        &self,
        sku: &Sku,
        idempotency: &IdempotencyKey,
    ) -> Result<Option<StockAdjustment>, StoreError> {
        let item = self
            .read(
                key(sku_pk(sku), &adjustment_key_sk(idempotency)),
                "get adjustment key",
            )
            .await?;
        item.map(|item| from_item::<AdjustmentItem>(item).map(|i| i.adjustment))
            .transpose()
    }

    async fn transfer_key(
        &self,
        sku: &Sku,
        idempotency: &IdempotencyKey,
    ) -> Result<Option<TransferKey>, StoreError> {
        let item = self
            .read(
                key(sku_pk(sku), &transfer_key_sk(idempotency)),
                "get transfer key",
            )
            .await?;
        item.map(|item| from_item::<TransferKeyItem>(item).map(|i| i.key))
            .transpose()
    }

    async fn transfer(&self, sku: &Sku, id: &str) -> Result<Option<Transfer>, StoreError> {
        let item = self
            .read(key(sku_pk(sku), &format!("TRANSFER#{id}")), "get transfer")
            .await?;
        item.map(|item| from_item::<TransferItem>(item).map(|i| i.transfer))
            .transpose()
    }

    async fn transfers(
        &self,
        sku: &Sku,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Transfer>, StoreError> {
        self.sku_history(sku, "TRANSFER#", limit, cursor, "list transfers", |item| {
            from_item::<TransferItem>(item).map(|i| i.transfer)
        })
        .await
    }

    async fn save_purchase_order(
        &self,
        step: &PurchaseStep,
        key: Option<&PurchaseKey>,
    ) -> Result<(), StoreError> {
        let mut items = self.product_writes(
            &step.product,
            Some(step.product.version - 1),
            step.adjustment.as_ref(),
        )?;
        let order = &step.order;
        let item = SkuEntry {
            pk: sku_pk(&order.sku),
            sk: purchase_sk(&order.id),
            entity: entity::PURCHASE_ORDER.into(),
            value: order.clone(),
        };
        let put = self.put(to_item(&item)?);
        let put = if order.version == 1 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            // Each step on the version it was made from: a receipt sent twice counts once.
            put.condition_expression("#version = :before")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":before", n(order.version - 1))
        };
        items.push(
            TransactWriteItem::builder()
                .put(put.build().map_err(|e| StoreError::Failed(e.to_string()))?)
                .build(),
        );
        if let Some(key) = key {
            items.push(self.put_new(&SkuEntry {
                pk: sku_pk(&key.sku),
                sk: purchase_key_sk(&key.key),
                entity: entity::PURCHASE_KEY.into(),
                value: key.clone(),
            })?);
        }
        for filled in &step.filled {
            items.push(self.put_order_at_version(filled, filled.version - 1)?);
        }
        match self.transact("save purchase order", items).await? {
            None => Ok(()),
            Some(_) => Err(StoreError::ConditionFailed),
        }
    }

    async fn purchase_key(
        &self,
        sku: &Sku,
        idempotency: &IdempotencyKey,
    ) -> Result<Option<PurchaseKey>, StoreError> {
        let item = self
            .read(
                key(sku_pk(sku), &purchase_key_sk(idempotency)),
                "get purchase order key",
            )
            .await?;
        item.map(|item| from_item::<SkuEntry<PurchaseKey>>(item).map(|i| i.value))
            .transpose()
    }

    async fn purchase_order(
        &self,
        sku: &Sku,
        id: &str,
    ) -> Result<Option<PurchaseOrder>, StoreError> {
        let item = self
            .read(key(sku_pk(sku), &purchase_sk(id)), "get purchase order")
            .await?;
        item.map(|item| from_item::<SkuEntry<PurchaseOrder>>(item).map(|i| i.value))
            .transpose()
    }

    async fn purchase_orders(
        &self,
        sku: &Sku,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<PurchaseOrder>, StoreError> {
        self.sku_history(
            sku,
            "PURCHASE#",
            limit,
            cursor,
            "list purchase orders",
            |item| from_item::<SkuEntry<PurchaseOrder>>(item).map(|i| i.value),
        )
        .await
    }

    async fn catalog(&self, limit: u32, cursor: Option<&str>) -> Result<Page<Product>, StoreError> {
        self.catalog_page(SortKeys::All, limit, cursor).await
    }

    async fn catalog_starting_with(
        &self,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<Product>, StoreError> {
        let starting = SortKeys::StartingWith(prefix.to_owned());
        Ok(self.catalog_page(starting, limit, None).await?.items)
    }

    async fn adjustments(
        &self,
        sku: &Sku,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<StockAdjustment>, StoreError> {
        self.sku_history(
            sku,
            "ADJUSTMENT#",
            limit,
            cursor,
            "list stock adjustments",
            |item| from_item::<AdjustmentItem>(item).map(|i| i.adjustment),
        )
        .await
    }
}

impl DynamoStore {
    /// The product on condition that it is new (`expected_version` `None`) or still at
    /// `expected_version`, and the history entry that explains its change, as transaction items.
    fn product_writes(
        &self,
        product: &Product,
        expected_version: Option<u64>,
        adjustment: Option<&StockAdjustment>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut put = self.put(product_item(product, &self.default_location)?);
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
            items.push(self.put_new(&AdjustmentItem::new(adjustment))?);
            // The request's key, once per SKU: the same form sent twice loses this condition.
            if let Some(idempotency) = &adjustment.key {
                let item = AdjustmentItem {
                    sk: adjustment_key_sk(idempotency),
                    entity: entity::ADJUSTMENT_KEY.into(),
                    ..AdjustmentItem::new(adjustment)
                };
                items.push(self.put_new(&item)?);
            }
        }
        Ok(items)
    }

    /// A transaction item that writes `item` on condition that no item has its key yet.
    pub(super) fn put_new<T: Serialize>(&self, item: &T) -> Result<TransactWriteItem, StoreError> {
        let put = self
            .put(to_item(item)?)
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A SKU's items whose sort key starts with `prefix` (its adjustments, its transfers),
    /// newest first, a page at a time.
    async fn sku_history<T>(
        &self,
        sku: &Sku,
        prefix: &str,
        limit: u32,
        cursor: Option<&str>,
        what: &str,
        decode: impl Fn(HashMap<String, AttributeValue>) -> Result<T, StoreError>,
    ) -> Result<Page<T>, StoreError> {
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
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(partition))
            .expression_attribute_values(":prefix", s(prefix.to_owned()))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify(what, e))?;
        let next_cursor = output
            .last_evaluated_key
            .as_ref()
            .and_then(Self::encode_cursor);
        let items = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(decode)
            .collect::<Result<_, _>>()?;
        Ok(Page { items, next_cursor })
    }

    /// A page of the catalog index's products whose SKUs `sort_keys` selects, in SKU order.
    async fn catalog_page(
        &self,
        sort_keys: SortKeys,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Product>, StoreError> {
        let query = IndexQuery {
            index: CATALOG_INDEX,
            partition: CATALOG_PARTITION.to_owned(),
            oldest_first: true,
            sort_keys,
            limit,
            cursor,
        };
        let Page {
            items: mut products,
            next_cursor,
        } = self
            .query_keys_then_read(&query, "PRODUCT", "list the catalog", |item| {
                self.product_from(item)
            })
            .await?;
        // A batch read answers in any order.
        products.sort_by(|a, b| a.sku.cmp(&b.sku));
        Ok(Page {
            items: products,
            next_cursor,
        })
    }
}

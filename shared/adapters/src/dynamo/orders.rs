//! The orders port: creating an order once per idempotency key, reading and saving it on
//! condition of its version, and its listings on the indexes.

use super::*;

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
        let mut items = vec![
            not_there(to_item(&OrderItem::new(order))?)
                .map_err(|e| StoreError::Failed(e.to_string()))?,
            not_there(to_item(&idempotency)?).map_err(|e| StoreError::Failed(e.to_string()))?,
        ];
        // Its search keys after the two whose conditions the outcome is read from.
        items.extend(self.search_item_writes(order)?);
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
        item.map(|item| self.order_from(item)).transpose()
    }

    async fn save(&self, order: &Order, expected_version: u64) -> Result<(), StoreError> {
        let entries = self.shipment_entry_writes(order)?;
        if !entries.is_empty() {
            // A split order: its item and its shipments' pick-list entries in one write.
            let mut items = vec![self.put_order_at_version(order, expected_version)?];
            items.extend(entries);
            return match self.transact("save split order", items).await? {
                None => Ok(()),
                Some(_) => Err(StoreError::ConditionFailed),
            };
        }
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
        self.query_orders(&IndexQuery {
            index: CUSTOMER_ORDERS_INDEX,
            partition: format!("CUSTOMER#{customer}"),
            oldest_first: false,
            sort_keys: SortKeys::All,
            limit,
            cursor,
        })
        .await
    }

    async fn search(
        &self,
        term: &oms_domain::order::search::SearchTerm,
        limit: u32,
    ) -> Result<Vec<OrderId>, StoreError> {
        let partition = format!("{SEARCH_PARTITION_PREFIX}{}", term.partition);
        let mut query = self
            .client
            .get()
            .await
            .query()
            .table_name(&self.table)
            .index_name(CUSTOMER_ORDERS_INDEX)
            .expression_attribute_values(":partition", s(partition.clone()))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX));
        query = if term.prefix.is_empty() {
            query.key_condition_expression("gsi1pk = :partition")
        } else {
            query
                .key_condition_expression("gsi1pk = :partition AND begins_with(gsi1sk, :prefix)")
                .expression_attribute_values(":prefix", s(term.prefix.clone()))
        };
        let output = query
            .send()
            .await
            .map_err(|e| classify("search orders", e))?;
        Ok(output
            .items()
            .iter()
            .filter_map(|item| {
                let sort = item.get("gsi1sk")?.as_s().ok()?.clone();
                oms_domain::order::search::order_of(&oms_domain::order::search::SearchEntry {
                    partition: term.partition.clone(),
                    sort,
                })
            })
            .collect())
    }

    async fn list_pending_returns(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        self.returns_queue(PENDING_RETURNS_PARTITION, limit, cursor)
            .await
    }

    async fn list_arriving_returns(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        self.returns_queue(ARRIVING_RETURNS_PARTITION, limit, cursor)
            .await
    }

    async fn count_by_status(
        &self,
        status: OrderStatus,
        cap: u32,
    ) -> Result<oms_domain::ports::StatusCount, StoreError> {
        // One query of the keys-only status index, at most `cap` keys evaluated: a bounded
        // cost however many orders a status holds.
        let output = self
            .client
            .get()
            .await
            .query()
            .table_name(&self.table)
            .index_name(ORDERS_BY_STATUS_INDEX)
            .key_condition_expression("gsi2pk = :status")
            .expression_attribute_values(":status", s(format!("STATUS#{}", status.as_str())))
            .select(aws_sdk_dynamodb::types::Select::Count)
            // One more than the cap: exactly `cap` orders is not "more".
            .limit(i32::try_from(cap.saturating_add(1)).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| classify("count orders by status", e))?;
        let counted = u32::try_from(output.count).unwrap_or(0);
        Ok(oms_domain::ports::StatusCount {
            count: counted.min(cap),
            more: counted > cap,
        })
    }

    fn status_cursor_after(
        &self,
        status: OrderStatus,
        since: DateTime<Utc>,
        id: &OrderId,
    ) -> String {
        // The status index's key of that position, as the index would have handed it out: a
        // query starts after it whether or not such an item is there.
        let key = HashMap::from([
            ("pk".to_owned(), s(order_pk(id))),
            ("sk".to_owned(), s("ORDER".to_owned())),
            (
                "gsi2pk".to_owned(),
                s(format!("STATUS#{}", status.as_str())),
            ),
            ("gsi2sk".to_owned(), s(listing_sort_key(since, id))),
        ]);
        Self::encode_cursor(&key).unwrap_or_default()
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
        let query = IndexQuery {
            index: ORDERS_BY_STATUS_INDEX,
            partition: format!("STATUS#{}", status.as_str()),
            oldest_first: true,
            sort_keys: SortKeys::Before(
                entered_before.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
            limit,
            cursor,
        };
        let Page {
            items: mut orders,
            next_cursor,
        } = self
            .query_keys_then_read(&query, "ORDER", "list orders by status", |item| {
                self.order_from(item)
            })
            .await?;
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
        self.query_orders(&IndexQuery {
            index: PAYMENT_WATCH_INDEX,
            partition: payment_watch_partition(watch).to_owned(),
            oldest_first: true,
            sort_keys: since_before.map_or(SortKeys::All, |t| {
                SortKeys::Before(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            }),
            limit,
            cursor,
        })
        .await
    }

    async fn list_fulfillments(
        &self,
        warehouse: &str,
        status: FulfillmentStatus,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        let query = IndexQuery {
            index: PICK_LIST_INDEX,
            partition: pick_list_key(warehouse, status),
            oldest_first: true,
            sort_keys: SortKeys::All,
            limit,
            cursor,
        };
        let (items, next_cursor) = self.query_index(&query).await?;
        // Orders list themselves whole; a split order's other shipments are entries naming
        // their order, which is read (strongly consistent) and kept only if its shipment here
        // is still in the listed status.
        let mut listed: Vec<(usize, Order)> = Vec::with_capacity(items.len());
        let mut named: Vec<(usize, HashMap<String, AttributeValue>)> = Vec::new();
        for (position, item) in items.into_iter().enumerate() {
            match item
                .get("entity")
                .and_then(|e| e.as_s().ok())
                .map(String::as_str)
            {
                Some(entity::SHIPMENT) => {
                    // An order named twice is read once (a batch may not repeat a key).
                    if let Some(pk) = item.get("pk").and_then(|pk| pk.as_s().ok()) {
                        let seen = named
                            .iter()
                            .any(|(_, k)| k.get("pk").and_then(|v| v.as_s().ok()) == Some(pk));
                        if !seen {
                            named.push((position, key(pk.clone(), "ORDER")));
                        }
                    }
                }
                _ => listed.push((position, self.order_from(item)?)),
            }
        }
        if !named.is_empty() {
            let positions: HashMap<String, usize> = named
                .iter()
                .filter_map(|(p, k)| Some((k.get("pk")?.as_s().ok()?.clone(), *p)))
                .collect();
            let keys = named.into_iter().map(|(_, k)| k).collect();
            for item in self
                .read_many(keys, "read split orders of a pick list")
                .await?
            {
                let order = self.order_from(item)?;
                if let Some(position) = positions.get(&order_pk(&order.id)) {
                    listed.push((*position, order));
                }
            }
        }
        listed.sort_by_key(|(position, _)| *position);
        let mut orders: Vec<Order> = Vec::with_capacity(listed.len());
        for (_, order) in listed {
            let here = order.shipment_in(warehouse, status).is_some()
                && matches!(
                    order.status,
                    OrderStatus::Fulfilling | OrderStatus::PartiallyShipped
                );
            if here && !orders.iter().any(|o| o.id == order.id) {
                orders.push(order);
            }
        }
        Ok(Page {
            items: orders,
            next_cursor,
        })
    }
}

impl DynamoStore {
    /// A page of one of the returns index's queues (`partition`), oldest first.
    async fn returns_queue(
        &self,
        partition: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        self.query_orders(&IndexQuery {
            index: PENDING_RETURNS_INDEX,
            partition: partition.to_owned(),
            oldest_first: true,
            sort_keys: SortKeys::All,
            limit,
            cursor,
        })
        .await
    }

    /// One page of the orders in one partition of an index (which projects them whole), with an
    /// opaque cursor that only opens the same partition.
    async fn query_orders(&self, query: &IndexQuery<'_>) -> Result<Page<Order>, StoreError> {
        let (items, next_cursor) = self.query_index(query).await?;
        let items = items
            .into_iter()
            .map(|item| self.order_from(item))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, next_cursor })
    }
}

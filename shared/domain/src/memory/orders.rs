//! The orders port in memory.

use super::*;

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
        let mine = |o: &Order| (&o.customer_id == customer).then_some(Some(o.created_at));
        self.order_listing(&format!("customer:{customer}"), mine, true, limit, cursor)
    }

    async fn search(
        &self,
        term: &crate::order::search::SearchTerm,
        limit: u32,
    ) -> Result<Vec<OrderId>, StoreError> {
        let state = self.lock();
        let mut found: Vec<OrderId> = state
            .orders
            .values()
            .filter(|o| o.found_by(std::slice::from_ref(term)))
            .map(|o| o.id.clone())
            .collect();
        found.sort_by(|a, b| b.cmp(a));
        found.truncate(limit as usize);
        Ok(found)
    }

    async fn list_pending_returns(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        let waiting = |o: &Order| o.oldest_pending_return().map(Some);
        self.order_listing("returns", waiting, false, limit, cursor)
    }

    async fn list_arriving_returns(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        // As the store keeps it: the approval queue first.
        let arriving = |o: &Order| match o.oldest_pending_return() {
            Some(_) => None,
            None => o.oldest_arriving_return().map(Some),
        };
        self.order_listing("arriving returns", arriving, false, limit, cursor)
    }

    fn status_cursor_after(
        &self,
        status: crate::order::OrderStatus,
        since: chrono::DateTime<chrono::Utc>,
        id: &OrderId,
    ) -> String {
        format!(
            "status-{}|{}",
            status.as_str(),
            super::listing_key(Some(since), id)
        )
    }

    async fn list_by_status(
        &self,
        status: crate::order::OrderStatus,
        entered_before: chrono::DateTime<chrono::Utc>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        let since = |o: &Order| {
            (o.status == status && o.status_since() < entered_before)
                .then(|| Some(o.status_since()))
        };
        let listing = format!("status-{}", status.as_str());
        self.order_listing(&listing, since, false, limit, cursor)
    }

    async fn count_by_status(
        &self,
        status: crate::order::OrderStatus,
        cap: u32,
    ) -> Result<crate::ports::StatusCount, StoreError> {
        let n = self
            .lock()
            .orders
            .values()
            .filter(|o| o.status == status)
            .count();
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        Ok(crate::ports::StatusCount {
            count: n.min(cap),
            more: n > cap,
        })
    }

    async fn list_payment_watch(
        &self,
        watch: crate::ports::PaymentWatch,
        since_before: Option<chrono::DateTime<chrono::Utc>>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        let since = |o: &Order| {
            watch
                .since(o)
                .filter(|since| since_before.is_none_or(|before| *since < before))
                .map(Some)
        };
        let listing = format!("payments-{watch:?}");
        self.order_listing(&listing, since, false, limit, cursor)
    }

    async fn list_fulfillments(
        &self,
        warehouse: &str,
        status: FulfillmentStatus,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        let queued = |o: &Order| {
            // As DynamoDB's sparse pick list: only while the location has work on the order's
            // shipment there, so neither once it shipped nor once the order was cancelled (the
            // shipment stays where it had got to).
            let in_warehouses = matches!(
                o.status,
                crate::order::OrderStatus::Fulfilling | crate::order::OrderStatus::PartiallyShipped
            );
            let shipment = o.shipment_in(warehouse, status).filter(|_| in_warehouses);
            shipment.map(|f| Some(f.queued_at))
        };
        let listing = format!("pick:{warehouse}:{}", status.as_str());
        self.order_listing(&listing, queued, false, limit, cursor)
    }
}

impl InMemoryStore {
    /// A page of the orders listing `listing` (oldest first unless `newest_first`): the orders
    /// `position` places in it, by the time it gives (an order with none sorts first), as the
    /// index's sort key orders them.
    fn order_listing(
        &self,
        listing: &str,
        position: impl Fn(&Order) -> Option<Option<chrono::DateTime<chrono::Utc>>>,
        newest_first: bool,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Order>, StoreError> {
        let state = self.lock();
        let entries = state
            .orders
            .values()
            .filter_map(|o| Some((listing_key(position(o)?, &o.id), o)))
            .collect();
        page_of(listing, entries, newest_first, limit, cursor)
    }
}

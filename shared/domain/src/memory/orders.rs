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

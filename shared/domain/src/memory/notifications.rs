//! The notifier's port in memory.

use super::*;

impl NotificationStore for InMemoryStore {
    async fn preferences(&self, customer: &CustomerId) -> Result<Option<Preferences>, StoreError> {
        Ok(self.lock().preferences.get(customer).copied())
    }

    async fn save_preferences(
        &self,
        customer: &CustomerId,
        preferences: &Preferences,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        self.lock()
            .preferences
            .insert(customer.clone(), *preferences);
        Ok(())
    }

    async fn cursor(&self, order: &OrderId) -> Result<NotificationCursor, StoreError> {
        Ok(self.lock().cursors.get(order).cloned().unwrap_or_default())
    }

    async fn notification_context(
        &self,
        order: &OrderId,
        customer: &CustomerId,
    ) -> Result<(NotificationCursor, Option<Order>, Option<Preferences>), StoreError> {
        let state = self.lock();
        Ok((
            state.cursors.get(order).cloned().unwrap_or_default(),
            state.orders.get(order).cloned(),
            state.preferences.get(customer).copied(),
        ))
    }

    async fn claim(
        &self,
        order: &OrderId,
        next: u64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let cursor = state.cursors.entry(order.clone()).or_default();
        if cursor.next != next || cursor.claimed_by_another(now) {
            return Err(StoreError::ConditionFailed);
        }
        cursor.claimed_at = Some(now);
        Ok(())
    }

    async fn mark_sent(
        &self,
        order: &OrderId,
        sequence: u64,
        channel: Channel,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        match state.cursors.get_mut(order) {
            Some(cursor) if cursor.next == sequence => {
                cursor.sent.push(channel);
                Ok(())
            }
            _ => Err(StoreError::ConditionFailed),
        }
    }

    async fn advance(&self, order: &OrderId, from: u64) -> Result<Option<String>, StoreError> {
        let mut state = self.lock();
        let cursor = state.cursors.entry(order.clone()).or_default();
        if cursor.next != from {
            return Err(StoreError::ConditionFailed);
        }
        let mut waiting = std::mem::take(&mut cursor.waiting);
        let woken = waiting.remove(&(from + 1));
        *cursor = NotificationCursor {
            next: from + 1,
            skipped: std::mem::take(&mut cursor.skipped),
            waiting,
            ..NotificationCursor::default()
        };
        Ok(woken)
    }

    async fn wait_for_turn(
        &self,
        order: &OrderId,
        next: u64,
        sequence: u64,
        token: &str,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let cursor = state.cursors.entry(order.clone()).or_default();
        if cursor.next != next {
            return Err(StoreError::ConditionFailed);
        }
        cursor.waiting.insert(sequence, token.to_owned());
        Ok(())
    }

    async fn skip_to(
        &self,
        order: &OrderId,
        from: u64,
        to: u64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let cursor = state.cursors.entry(order.clone()).or_default();
        if cursor.next != from || to <= from || cursor.claimed_by_another(now) {
            return Err(StoreError::ConditionFailed);
        }
        let mut skipped = std::mem::take(&mut cursor.skipped);
        skipped.extend(from..to);
        let mut waiting = std::mem::take(&mut cursor.waiting);
        waiting.retain(|sequence, _| *sequence > to);
        *cursor = NotificationCursor {
            next: to,
            skipped,
            waiting,
            ..NotificationCursor::default()
        };
        Ok(())
    }

    async fn restore_skipped(&self, order: &OrderId, sequence: u64) -> Result<(), StoreError> {
        let mut state = self.lock();
        let cursor = state.cursors.entry(order.clone()).or_default();
        if !cursor.skipped.contains(&sequence) {
            cursor.skipped.push(sequence);
        }
        Ok(())
    }

    async fn take_skipped(&self, order: &OrderId, sequence: u64) -> Result<(), StoreError> {
        let mut state = self.lock();
        let cursor = state.cursors.entry(order.clone()).or_default();
        match cursor.skipped.iter().position(|s| *s == sequence) {
            Some(index) => {
                cursor.skipped.remove(index);
                Ok(())
            }
            None => Err(StoreError::ConditionFailed),
        }
    }
}

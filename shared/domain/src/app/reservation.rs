//! Reserving an order's stock: the consumer of `oms.order.placed`.
//!
//! All lines or none: one atomic write moves every line's units from `available` to `reserved`
//! on condition that enough is available, and moves the order `PENDING → RESERVED`. If any line
//! falls short, nothing moves and the order is rejected with the short SKUs. A repeated message
//! finds the order no longer `PENDING` and changes nothing.

use chrono::{DateTime, Utc};

use crate::app::retry::{until_written, Attempt, Contended};
use crate::ids::OrderId;
use crate::order::{OrderStatus, Shortage};
use crate::ports::{OrderStore, OrderTransactions, ReserveOutcome, StoreError};

/// What became of the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReservationResult {
    Reserved,
    Rejected(Vec<Shortage>),
    /// The order had already left `PENDING` (a duplicate message, or a cancellation): no-op.
    AlreadyDecided(OrderStatus),
}

#[derive(Debug, thiserror::Error)]
pub enum ReservationError {
    #[error("order {0} does not exist")]
    OrderNotFound(OrderId),
    #[error("the order kept changing under the reservation")]
    Contended,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReservationError {
    /// Whether the message should be tried again (rather than sent towards the dead-letter queue
    /// at once, which the queue's redrive policy does after its last attempt either way).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Contended => true,
            Self::OrderNotFound(_) => false,
        }
    }
}

/// Reserves the order's stock, or rejects the order if stock falls short.
pub async fn reserve_order<O: OrderStore, R: OrderTransactions>(
    orders: &O,
    reservations: &R,
    id: &OrderId,
    now: DateTime<Utc>,
) -> Result<ReservationResult, ReservationError> {
    until_written(|| async move {
        let order = orders
            .get(id)
            .await?
            .ok_or_else(|| ReservationError::OrderNotFound(id.clone()))?;
        let Ok(reserved) = order.reserve(now) else {
            return Ok(Attempt::Done(ReservationResult::AlreadyDecided(
                order.status,
            )));
        };
        match reservations.reserve(&reserved).await? {
            ReserveOutcome::Reserved => Ok(Attempt::Done(ReservationResult::Reserved)),
            ReserveOutcome::OrderChanged => Ok(Attempt::LostRace),
            ReserveOutcome::Short(shortages) => {
                let rejected = order
                    .reject(shortages.clone(), now)
                    .expect("a pending order can be rejected");
                let written = orders.save(&rejected, order.version).await;
                Attempt::of_write(written, ReservationResult::Rejected(shortages))
            }
        }
    })
    .await
}

impl Contended for ReservationError {
    fn contended() -> Self {
        Self::Contended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::InMemoryStore;
    use crate::order::tests::{placed, product};
    use crate::ports::InventoryStore;
    use serde_json::json;

    #[tokio::test]
    async fn reserves_all_lines_or_none() {
        let store = InMemoryStore::with_products([product("A", 100, 5), product("B", 100, 1)]);
        let ok = placed(
            json!([{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}]),
            &store.catalog(),
        );
        let short = placed(
            json!([{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}]),
            &store.catalog(),
        );
        store.insert_order(ok.clone());
        store.insert_order(short.clone());

        assert_eq!(
            reserve_order(&store, &store, &ok.id, Utc::now())
                .await
                .unwrap(),
            ReservationResult::Reserved
        );
        let result = reserve_order(&store, &store, &short.id, Utc::now())
            .await
            .unwrap();
        let ReservationResult::Rejected(shortages) = result else {
            panic!("expected a rejection")
        };
        assert_eq!(
            (shortages[0].sku.as_str(), shortages[0].available),
            ("B", 0)
        );

        let a = store.product(&"A".parse_sku()).await.unwrap().unwrap();
        assert_eq!(
            (a.stock.available(), a.stock.reserved()),
            (3, 2),
            "the rejected order moved nothing"
        );
        assert_eq!(
            store.get(&short.id).await.unwrap().unwrap().status,
            OrderStatus::Rejected
        );
    }

    #[tokio::test]
    async fn a_duplicate_message_changes_nothing() {
        let store = InMemoryStore::with_products([product("A", 100, 5)]);
        let order = placed(json!([{"sku": "A", "quantity": 2}]), &store.catalog());
        store.insert_order(order.clone());
        reserve_order(&store, &store, &order.id, Utc::now())
            .await
            .unwrap();
        let again = reserve_order(&store, &store, &order.id, Utc::now())
            .await
            .unwrap();
        assert_eq!(
            again,
            ReservationResult::AlreadyDecided(OrderStatus::Reserved)
        );
        let a = store.product(&"A".parse_sku()).await.unwrap().unwrap();
        assert_eq!(a.stock.reserved(), 2);
    }

    trait ParseSku {
        fn parse_sku(&self) -> crate::ids::Sku;
    }
    impl ParseSku for str {
        fn parse_sku(&self) -> crate::ids::Sku {
            crate::ids::Sku::parse(self).unwrap()
        }
    }
}

//! The payment service provider's side.
//!
//! [`record_psp_event`] writes one PSP transaction event into its order's ledger
//! ([`crate::order::payments`]); what follows — the warehouse taking the order, a capture or void
//! asked of the PSP, the customer told — comes from the table's stream, never from a second
//! write here. The scheduled sweep ([`crate::app::sweep`]) expires the orders never authorized
//! within the window and flags authorizations near their capture deadline with
//! [`expire_one`] and [`flag_one`]. An authorization racing its order's expiry has one winner,
//! decided by the order's version: the loser reads the order again and finds it no longer
//! applies (an authorized order does not expire; an authorization of an expired order is
//! recorded and voided).

use chrono::{DateTime, Utc};

use crate::app::retry::{until_written, Attempt, Contended};
use crate::ids::OrderId;
use crate::order::payments::{
    ExpireError, PaymentError, PaymentEvent, PaymentPolicy, PaymentUpdate,
};
use crate::order::refunds::RefundRetryError;
use crate::order::Order;
use crate::ports::{CommitOutcome, OrderStore, OrderTransactions, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PaymentAppError {
    #[error("no such order")]
    NotFound,
    #[error(transparent)]
    NotAllowed(#[from] PaymentError),
    #[error(transparent)]
    Refund(#[from] RefundRetryError),
    #[error(transparent)]
    Acknowledge(#[from] crate::order::payments::AcknowledgeError),
    #[error("the order changed since the caller read it: it is at version {current}")]
    PreconditionFailed { current: u64 },
    #[error("this needs the scope {0}")]
    Forbidden(&'static str),
    #[error("the order kept changing; try again")]
    Contended,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Contended for PaymentAppError {
    fn contended() -> Self {
        Self::Contended
    }
}

/// What recording a PSP event came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The order as it now is.
    pub order: Order,
    /// False if the PSP event id was recorded before: nothing changed.
    pub new: bool,
}

/// Records a PSP transaction event in its order's ledger, once per PSP event id.
pub async fn record_psp_event<O: OrderStore>(
    orders: &O,
    policy: &PaymentPolicy,
    id: &OrderId,
    event: &PaymentEvent,
    now: DateTime<Utc>,
) -> Result<Recorded, PaymentAppError> {
    until_written(|| async move {
        let order = orders.get(id).await?.ok_or(PaymentAppError::NotFound)?;
        match order.record_payment(event, policy, now)? {
            PaymentUpdate::Duplicate => Ok(Attempt::Done(Recorded { order, new: false })),
            PaymentUpdate::Recorded(next) => {
                let written = orders.save(&next, order.version).await;
                Attempt::of_write(
                    written,
                    Recorded {
                        order: *next,
                        new: true,
                    },
                )
            }
        }
    })
    .await
}

/// Staff ask the PSP again for a refund it could not pay out ([`Order::retry_refund`]).
pub async fn retry_refund<O: OrderStore>(
    orders: &O,
    id: &OrderId,
    refund_id: &str,
    now: DateTime<Utc>,
) -> Result<Order, PaymentAppError> {
    until_written(|| async move {
        let order = orders.get(id).await?.ok_or(PaymentAppError::NotFound)?;
        let next = order.retry_refund(refund_id, now)?;
        let written = orders.save(&next, order.version).await;
        Attempt::of_write(written, next)
    })
    .await
}

/// Staff acknowledge what the order's money needs, with how they dealt with it
/// ([`Order::acknowledge_payment_attention`]), on the order's version they saw.
pub async fn acknowledge_attention<O: OrderStore>(
    orders: &O,
    caller: &crate::app::Caller,
    id: &OrderId,
    note: String,
    if_match: Option<u64>,
    now: DateTime<Utc>,
) -> Result<Order, PaymentAppError> {
    // Staff's decision about the money: administrators only, whoever calls this.
    if !caller.is_admin() {
        return Err(PaymentAppError::Forbidden(crate::app::caller::SCOPE_ADMIN));
    }
    let note = &note;
    until_written(|| async move {
        let order = orders.get(id).await?.ok_or(PaymentAppError::NotFound)?;
        if if_match.is_some_and(|seen| seen != order.version) {
            return Err(PaymentAppError::PreconditionFailed {
                current: order.version,
            });
        }
        let by = caller.customer_id.as_str();
        let next = order.acknowledge_payment_attention(by, note.clone(), now)?;
        let written = orders.save(&next, order.version).await;
        Attempt::of_write(written, next)
    })
    .await
}

/// Expires the order if it still may: true if this call expired it.
pub(crate) async fn expire_one<S: OrderStore + OrderTransactions>(
    store: &S,
    policy: &PaymentPolicy,
    id: &OrderId,
    now: DateTime<Utc>,
) -> Result<bool, PaymentAppError> {
    until_written(|| async move {
        let Some(order) = store.get(id).await? else {
            return Ok(Attempt::Done(false));
        };
        let change = match order.expire(policy, now) {
            Ok(change) => change,
            Err(ExpireError::NotOpen(_) | ExpireError::Paid(_) | ExpireError::NotYet) => {
                return Ok(Attempt::Done(false))
            }
        };
        match store.commit(&change).await? {
            CommitOutcome::Committed => Ok(Attempt::Done(true)),
            // An authorization (or any change) won the race: read again and decide again.
            CommitOutcome::OrderChanged => Ok(Attempt::LostRace),
            CommitOutcome::Short(_) => unreachable!("a release takes nothing from available"),
        }
    })
    .await
}

/// Flags the order's money for staff if the sweep's watch still finds it due (a capture not
/// confirmed in time, an authorization near its deadline): true if flagged now.
pub(crate) async fn flag_one<O: OrderStore>(
    orders: &O,
    policy: &PaymentPolicy,
    id: &OrderId,
    now: DateTime<Utc>,
) -> Result<bool, PaymentAppError> {
    until_written(|| async move {
        let Some(order) = orders.get(id).await? else {
            return Ok(Attempt::Done(false));
        };
        let Some(next) = order.flag_payment(policy, now) else {
            return Ok(Attempt::Done(false));
        };
        Attempt::of_write(orders.save(&next, order.version).await, true)
    })
    .await
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::memory::InMemoryStore;
    use crate::order::payments::PaymentEventKind;
    use crate::order::tests::{placed, product};
    use serde_json::json;

    /// An order of `quantity` units of SKU `A`, placed and reserved in `store`.
    pub(crate) async fn reserved(store: &InMemoryStore, quantity: u32) -> Order {
        let order = placed(
            json!([{"sku": "A", "quantity": quantity}]),
            &store.catalog(),
        );
        crate::app::reservation::insert_reserved(store, &order).await;
        store.get(&order.id).await.unwrap().unwrap()
    }

    /// The PSP's authorization `id` of the order's whole total.
    pub(crate) fn authorization(order: &Order, id: &str) -> PaymentEvent {
        PaymentEvent {
            event_id: id.into(),
            kind: PaymentEventKind::AuthorizationSucceeded,
            amount: order.totals.total,
            occurred_at: order.created_at,
            psp_reference: Some("pi_1".into()),
            refund_id: None,
            request_id: None,
            reason: None,
        }
    }

    #[tokio::test]
    async fn only_an_administrator_acknowledges_what_the_money_needs() {
        let store = InMemoryStore::with_products([product("A", 1000, 10)]);
        let order = reserved(&store, 1).await;
        let mut wrong = authorization(&order, "e1");
        wrong.amount = crate::money::Money::new(1, order.totals.total.currency()).unwrap();
        record_psp_event(
            &store,
            &PaymentPolicy::default(),
            &order.id,
            &wrong,
            Utc::now(),
        )
        .await
        .unwrap();
        let caller = |scope: &str| crate::app::Caller {
            customer_id: crate::ids::CustomerId::parse("staff-1").unwrap(),
            scopes: vec![scope.into()],
        };
        let note = "voided at the PSP".to_owned();
        let packer = acknowledge_attention(
            &store,
            &caller("oms:warehouse"),
            &order.id,
            note.clone(),
            None,
            Utc::now(),
        )
        .await;
        assert!(matches!(packer, Err(PaymentAppError::Forbidden(_))));
        let done = acknowledge_attention(
            &store,
            &caller("oms:admin"),
            &order.id,
            note,
            None,
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(done.payment_attention(), None);
    }

    #[tokio::test]
    async fn a_repeated_psp_event_is_acknowledged_and_changes_nothing() {
        let store = InMemoryStore::with_products([product("A", 1000, 10)]);
        let policy = PaymentPolicy::default();
        let order = reserved(&store, 1).await;
        let event = authorization(&order, "e1");
        let first = record_psp_event(&store, &policy, &order.id, &event, order.created_at)
            .await
            .unwrap();
        let second = record_psp_event(&store, &policy, &order.id, &event, order.created_at)
            .await
            .unwrap();
        assert!(first.new && !second.new);
        assert_eq!(first.order.version, second.order.version);
        assert!(matches!(
            record_psp_event(
                &store,
                &policy,
                &OrderId::generate(order.created_at),
                &event,
                order.created_at
            )
            .await,
            Err(PaymentAppError::NotFound)
        ));
    }
}

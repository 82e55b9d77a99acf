//! The payment service provider's side, and the scheduled sweep.
//!
//! [`record_psp_event`] writes one PSP transaction event into its order's ledger
//! ([`crate::order::payments`]); what follows — the warehouse taking the order, a capture or void
//! asked of the PSP, the customer told — comes from the table's stream, never from a second
//! write here. [`sweep`] is what a schedule runs: it reads the status index by age and expires
//! the orders never authorized within the window (releasing their stock in the same
//! transaction), and puts authorizations near the PSP's capture deadline in front of staff. An
//! authorization racing its order's expiry has one winner, decided by the order's version: the
//! loser reads the order again and finds it no longer applies (an authorized order does not
//! expire; an authorization of an expired order is recorded and voided).

use chrono::{DateTime, Utc};

use crate::app::retry::{until_written, Attempt, Contended};
use crate::ids::OrderId;
use crate::order::payments::{
    ExpireError, PaymentError, PaymentEvent, PaymentPolicy, PaymentUpdate,
};
use crate::order::{Order, OrderStatus};
use crate::ports::{CommitOutcome, OrderStore, OrderTransactions, PaymentWatch, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PaymentAppError {
    #[error("no such order")]
    NotFound,
    #[error(transparent)]
    NotAllowed(#[from] PaymentError),
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

/// What one run of the sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Orders looked at.
    pub examined: usize,
    /// Cancelled as expired, their stock released.
    pub expired: Vec<OrderId>,
    /// Authorizations near their capture deadline, put in front of staff.
    pub flagged: Vec<OrderId>,
    /// Orders that changed under the sweep so often it gave up on them this run (the next run
    /// takes them again).
    pub contended: Vec<OrderId>,
    /// Whether it stopped at its budget with more to look at.
    pub more: bool,
}

/// One run of the scheduled sweep, looking at no more than `budget` orders (the next run goes
/// on where this one stopped: what it changed has left the lists it reads).
pub async fn sweep<S: OrderStore + OrderTransactions>(
    store: &S,
    policy: &PaymentPolicy,
    now: DateTime<Utc>,
    budget: usize,
) -> Result<SweepReport, PaymentAppError> {
    let mut report = SweepReport::default();
    // Unpaid: placed (never decided) or reserved, unchanged for the whole window. An order
    // whose last change is younger (a declined payment, say) waits a window from then.
    let cutoff = now - policy.authorization_window;
    for status in [OrderStatus::Reserved, OrderStatus::Pending] {
        let mut cursor = None;
        loop {
            let page = store
                .list_by_status(status, cutoff, 100, cursor.as_deref())
                .await?;
            for order in page.items {
                if report.examined >= budget {
                    report.more = true;
                    return Ok(report);
                }
                report.examined += 1;
                match expire_one(store, policy, &order.id, now).await {
                    Ok(true) => report.expired.push(order.id),
                    Ok(false) => {}
                    Err(PaymentAppError::Contended) => report.contended.push(order.id),
                    Err(e) => return Err(e),
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    let deadline = now - (policy.authorization_lifetime - policy.deadline_margin);
    let mut cursor = None;
    loop {
        let page = store
            .list_payment_watch(
                PaymentWatch::AwaitingCapture,
                Some(deadline),
                100,
                cursor.as_deref(),
            )
            .await?;
        for order in page.items {
            if report.examined >= budget {
                report.more = true;
                return Ok(report);
            }
            report.examined += 1;
            match flag_one(store, policy, &order.id, now).await {
                Ok(true) => report.flagged.push(order.id),
                Ok(false) => {}
                Err(PaymentAppError::Contended) => report.contended.push(order.id),
                Err(e) => return Err(e),
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(report)
}

/// Expires the order if it still may: true if this call expired it.
async fn expire_one<S: OrderStore + OrderTransactions>(
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

/// Flags the order's authorization if it still waits near its deadline: true if flagged now.
async fn flag_one<O: OrderStore>(
    orders: &O,
    policy: &PaymentPolicy,
    id: &OrderId,
    now: DateTime<Utc>,
) -> Result<bool, PaymentAppError> {
    until_written(|| async move {
        let Some(order) = orders.get(id).await? else {
            return Ok(Attempt::Done(false));
        };
        let Some(next) = order.flag_authorization_deadline(policy, now) else {
            return Ok(Attempt::Done(false));
        };
        Attempt::of_write(orders.save(&next, order.version).await, true)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::InMemoryStore;
    use crate::order::payments::{PaymentEventKind, PaymentStatus, PspRequestKind};
    use crate::order::tests::{placed, product};
    use crate::ports::InventoryStore;
    use chrono::Duration;
    use serde_json::json;

    async fn reserved(store: &InMemoryStore, quantity: u32) -> Order {
        let order = placed(
            json!([{"sku": "A", "quantity": quantity}]),
            &store.catalog(),
        );
        store.insert_order(order.clone());
        crate::app::reservation::reserve_order(store, store, &order.id, order.created_at)
            .await
            .unwrap();
        store.get(&order.id).await.unwrap().unwrap()
    }

    async fn available(store: &InMemoryStore) -> (u32, u32) {
        let p = store
            .product(&crate::ids::Sku::parse("A").unwrap())
            .await
            .unwrap()
            .unwrap();
        (p.stock.available(), p.stock.reserved())
    }

    fn authorization(order: &Order, id: &str) -> PaymentEvent {
        PaymentEvent {
            event_id: id.into(),
            kind: PaymentEventKind::AuthorizationSucceeded,
            amount: order.totals.total,
            occurred_at: order.created_at,
            psp_reference: Some("pi_1".into()),
            refund_id: None,
            reason: None,
        }
    }

    #[tokio::test]
    async fn the_sweep_expires_what_was_never_paid_and_nothing_else() {
        let store = InMemoryStore::with_products([product("A", 1000, 10)]);
        let policy = PaymentPolicy::default();
        let unpaid = reserved(&store, 2).await;
        let paid = reserved(&store, 3).await;
        record_psp_event(
            &store,
            &policy,
            &paid.id,
            &authorization(&paid, "e1"),
            paid.created_at,
        )
        .await
        .unwrap();
        assert_eq!(available(&store).await, (5, 5));

        let early = sweep(
            &store,
            &policy,
            unpaid.created_at + Duration::minutes(10),
            100,
        )
        .await
        .unwrap();
        assert!(early.expired.is_empty());
        let later = unpaid.created_at + Duration::minutes(31);
        let report = sweep(&store, &policy, later, 100).await.unwrap();
        assert_eq!(report.expired, [unpaid.id.clone()]);
        assert_eq!(available(&store).await, (7, 3), "its two units are back");
        let expired = store.get(&unpaid.id).await.unwrap().unwrap();
        assert_eq!(expired.status, OrderStatus::Cancelled);
        assert_eq!(expired.payment_status(), PaymentStatus::Expired);
        assert_eq!(
            store.get(&paid.id).await.unwrap().unwrap().status,
            OrderStatus::Reserved
        );
        let again = sweep(&store, &policy, later, 100).await.unwrap();
        assert!(again.expired.is_empty(), "an expired order expires once");
        assert_eq!(available(&store).await, (7, 3));

        // The authorization that arrives after all is recorded, and its void asked for.
        let late = record_psp_event(
            &store,
            &policy,
            &unpaid.id,
            &authorization(&unpaid, "late"),
            later,
        )
        .await
        .unwrap();
        assert_eq!(late.order.status, OrderStatus::Cancelled);
        assert_eq!(late.order.payment.requests[0].kind, PspRequestKind::Void);
        assert_eq!(available(&store).await, (7, 3), "nothing is reserved again");
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

    #[tokio::test]
    async fn the_sweep_stops_at_its_budget_and_the_next_run_goes_on() {
        let store = InMemoryStore::with_products([product("A", 1000, 10)]);
        let policy = PaymentPolicy::default();
        let mut last = None;
        for _ in 0..3 {
            last = Some(reserved(&store, 1).await);
        }
        let later = last.unwrap().created_at + Duration::hours(1);
        let first = sweep(&store, &policy, later, 2).await.unwrap();
        assert_eq!((first.expired.len(), first.more), (2, true));
        let second = sweep(&store, &policy, later, 2).await.unwrap();
        assert_eq!((second.expired.len(), second.more), (1, false));
        assert_eq!(available(&store).await, (10, 0));
    }

    #[tokio::test]
    async fn authorizations_near_their_deadline_are_flagged() {
        let store = InMemoryStore::with_products([product("A", 1000, 10)]);
        let policy = PaymentPolicy::default();
        let order = reserved(&store, 1).await;
        record_psp_event(
            &store,
            &policy,
            &order.id,
            &authorization(&order, "e1"),
            order.created_at,
        )
        .await
        .unwrap();
        let report = sweep(
            &store,
            &policy,
            order.created_at + Duration::days(6) + Duration::minutes(1),
            100,
        )
        .await
        .unwrap();
        assert_eq!(report.flagged, [order.id.clone()]);
        let waiting = store
            .list_payment_watch(PaymentWatch::Attention, None, 10, None)
            .await
            .unwrap();
        assert_eq!(waiting.items.len(), 1);
    }
}

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
use crate::money::Money;
use crate::order::payments::{
    ExpireError, PaymentError, PaymentEvent, PaymentEventKind, PaymentPolicy, PaymentUpdate,
};
use crate::order::refunds::RefundRetryError;
use crate::order::{Order, OrderStatus};
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
    /// Nothing is to be paid: the order is paid for, or called off.
    #[error("{0}")]
    NotPayable(String),
    #[error(transparent)]
    Provider(#[from] crate::ports::ProviderError),
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

/// Whether the order waits for a payment its customer can make now: a change that made it
/// dearer, or an order not yet paid (never paid, declined, or its hold released) before it
/// reaches the warehouse. What [`start_payment`] opens a payment for.
pub fn awaits_payment(order: &Order) -> bool {
    order.awaiting_edit().is_some()
        || (matches!(order.status, OrderStatus::Pending | OrderStatus::Reserved)
            && order.payment_status().is_unpaid())
}

/// Opens the order's payment at the PSP for its customer (or `oms:admin`): a payment of the
/// order's total, captured when it ships, with the order's id for the PSP's events to name. Once
/// per payment attempt: asked again, the same payment answers (the idempotency key names the
/// order and how many payments it has seen released), and after the PSP released a hold, a new
/// one; after an edit, one for the new total. Refused (409) for an order that is paid for or
/// called off.
pub async fn start_payment<O: OrderStore, P: crate::ports::PaymentProvider>(
    orders: &O,
    provider: &P,
    caller: &crate::app::Caller,
    id: &OrderId,
) -> Result<crate::ports::PaymentIntent, PaymentAppError> {
    let order = orders.get(id).await?.ok_or(PaymentAppError::NotFound)?;
    if order.customer_id != caller.customer_id && !caller.is_admin() {
        return Err(PaymentAppError::NotFound);
    }
    // An edit made the order dearer while its money was held or after it was taken: a new
    // payment for the whole new total replaces the earlier one (one per edit).
    if let Some(edit) = order.awaiting_edit() {
        let key = format!("{}-INTENT", edit.id);
        return Ok(provider
            .create_payment_intent(&order.id, order.totals.total, &key)
            .await?);
    }
    if !awaits_payment(&order) {
        return Err(PaymentAppError::NotPayable(format!(
            "order {} needs no payment: it is {} and its payment {}",
            order.id,
            order.status.as_str(),
            order.payment_status().as_str()
        )));
    }
    let attempt = 1 + order
        .payment
        .ledger
        .iter()
        .filter(|e| e.kind == PaymentEventKind::VoidSucceeded && e.mismatch.is_none())
        .count();
    // An edit or a cancellation of some units before the first payment changed the total: a
    // payment of the new one (the PSP refuses a key asked again for another amount).
    let mut key = format!("{}-INTENT-{attempt}", order.id);
    if !order.edits.is_empty() {
        key.push_str(&format!("-E{}", order.edits.len()));
    }
    if !order.unit_cancellations.is_empty() {
        key.push_str(&format!("-U{}", order.unit_cancellations.len()));
    }
    Ok(provider
        .create_payment_intent(&order.id, order.totals.total, &key)
        .await?)
}

/// What an order asked of its PSP, as the PSP's subscriber acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PspAsk {
    /// `more_follow`: later parcels' shares follow under the same payment.
    Capture {
        request_id: String,
        amount: Money,
        more_follow: bool,
    },
    Void {
        request_id: String,
    },
    Refund {
        refund_id: String,
        amount: Money,
    },
}

/// What became of an ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// The PSP's answer is in the order's ledger (or was already).
    Recorded,
    /// The PSP took it and has not decided yet (a pending refund): its webhook will say.
    Pending,
    /// The PSP holds no such payment: another provider's to act on.
    NotThisProvider,
    /// The PSP refused a void (a payment already captured or released): nothing to record;
    /// the order's money is in front of staff if it needs them.
    VoidRefused(String),
}

/// Asks `provider` for what the order `id` asked of its PSP on the payment `reference`, under
/// the request's own id (its idempotency key: asked twice, the PSP acts once), and records the
/// answer in the order's ledger through the path the PSP's webhook takes — its id the state the
/// PSP reached, so the webhook announcing the same state records nothing twice, and a lost
/// webhook leaves no order waiting. A refusal of a capture or a refund is recorded as its
/// failure (in front of staff); the PSP unavailable is an error to try again.
pub async fn ask_provider<O: OrderStore, P: crate::ports::PaymentProvider>(
    orders: &O,
    provider: &P,
    policy: &PaymentPolicy,
    id: &OrderId,
    reference: &str,
    ask: &PspAsk,
    now: DateTime<Utc>,
) -> Result<Asked, PaymentAppError> {
    use crate::ports::ProviderError;
    // Already answered (a redelivery, a redrive after the PSP forgot its idempotency key):
    // never asked again, so no money moves twice.
    let order = orders.get(id).await?.ok_or(PaymentAppError::NotFound)?;
    let answered = match ask {
        PspAsk::Capture { request_id, .. } | PspAsk::Void { request_id } => {
            order.payment.answered(request_id)
        }
        PspAsk::Refund { refund_id, .. } => {
            order.refund_state(refund_id) != crate::order::payments::RefundState::Requested
        }
    };
    if answered {
        return Ok(Asked::Recorded);
    }
    let answer = match ask {
        PspAsk::Capture {
            request_id,
            amount,
            more_follow,
        } => {
            let taken_minor = order
                .payment
                .payments()
                .iter()
                .find(|p| p.reference == Some(reference))
                .map_or(0, |p| p.captured_minor);
            let ask = crate::ports::CaptureAsk {
                amount: *amount,
                idempotency_key: request_id.clone(),
                more_follow: *more_follow,
                taken_minor,
            };
            provider.capture(reference, &ask).await
        }
        PspAsk::Void { request_id } => provider.cancel(reference, request_id).await,
        PspAsk::Refund { refund_id, amount } => {
            provider.refund(reference, *amount, id, refund_id).await
        }
    };
    let (request_id, refund_id) = match ask {
        PspAsk::Capture { request_id, .. } | PspAsk::Void { request_id } => {
            (Some(request_id.clone()), None)
        }
        PspAsk::Refund { refund_id, .. } => (None, Some(refund_id.clone())),
    };
    let event = match answer {
        Ok(answer) => {
            let Some(kind) = answer.kind else {
                return Ok(Asked::Pending);
            };
            PaymentEvent {
                event_id: answer.state_id,
                kind,
                amount: answer.amount,
                occurred_at: now,
                psp_reference: Some(reference.to_owned()),
                refund_id,
                request_id,
                reason: answer.reason,
            }
        }
        Err(ProviderError::UnknownPayment(_) | ProviderError::NotConfigured(_)) => {
            return Ok(Asked::NotThisProvider)
        }
        Err(ProviderError::Unavailable(why)) => {
            return Err(PaymentAppError::Provider(ProviderError::Unavailable(why)))
        }
        Err(ProviderError::Refused(why)) => match ask {
            PspAsk::Void { .. } => return Ok(Asked::VoidRefused(why)),
            PspAsk::Capture {
                request_id, amount, ..
            } => PaymentEvent {
                event_id: format!("{request_id}-REFUSED"),
                kind: PaymentEventKind::CaptureFailed,
                amount: *amount,
                occurred_at: now,
                psp_reference: Some(reference.to_owned()),
                refund_id: None,
                request_id: Some(request_id.clone()),
                reason: Some(why),
            },
            PspAsk::Refund { refund_id, amount } => PaymentEvent {
                event_id: format!("{refund_id}-REFUSED"),
                kind: PaymentEventKind::RefundFailed,
                amount: *amount,
                occurred_at: now,
                psp_reference: Some(reference.to_owned()),
                refund_id: Some(refund_id.clone()),
                request_id: None,
                reason: Some(why),
            },
        },
    };
    record_psp_event(orders, policy, id, &event, now).await?;
    Ok(Asked::Recorded)
}

/// What one reconciliation run came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// The PSP's events about payments in the window, each looked at.
    pub examined: usize,
    /// Recorded by this run, the order and the PSP's event: their webhook never arrived (or
    /// has not yet).
    pub recovered: Vec<(OrderId, String)>,
    /// Events naming an order this system does not hold.
    pub unmatched: Vec<String>,
    /// Events not recorded, and why (a write that kept contending, a store error, a change the
    /// ledger refuses): logged, and looked at again by the next run while still in its window.
    pub failed: Vec<(String, String)>,
}

/// The reconciliation of a missed webhook: asks `provider` for the events it created about
/// payments from `since` to `until`, and records each in its order's ledger through the path
/// its webhook takes. An event the webhook delivered is a repeat and changes nothing; one it
/// never delivered (an endpoint down longer than the PSP retries, an event lost on the way) is
/// recorded now, so an authorized order does not wait, and expire, for want of its webhook.
pub async fn reconcile<O: OrderStore, P: crate::ports::PaymentProvider>(
    orders: &O,
    provider: &P,
    policy: &PaymentPolicy,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Reconciliation, crate::ports::ProviderError> {
    let mut run = Reconciliation::default();
    for found in provider.events(since, until).await? {
        run.examined += 1;
        let event_id = found.event.event_id.clone();
        match record_psp_event(orders, policy, &found.order_id, &found.event, now).await {
            Ok(Recorded { new: true, .. }) => run.recovered.push((found.order_id, event_id)),
            Ok(Recorded { new: false, .. }) => {}
            Err(PaymentAppError::NotFound) => run.unmatched.push(event_id),
            Err(e) => run.failed.push((event_id, e.to_string())),
        }
    }
    Ok(run)
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
) -> Result<Option<Vec<(crate::ids::Sku, String)>>, PaymentAppError> {
    until_written(|| async move {
        let Some(order) = store.get(id).await? else {
            return Ok(Attempt::Done(None));
        };
        let change = match order.expire(policy, now) {
            Ok(change) => change,
            Err(
                ExpireError::NotOpen(_)
                | ExpireError::Paid(_)
                | ExpireError::NotYet
                | ExpireError::Replacement,
            ) => return Ok(Attempt::Done(None)),
        };
        match store.commit(&change).await? {
            // Expired: with where it made units available again.
            CommitOutcome::Committed => Ok(Attempt::Done(Some(change.freed()))),
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
    use crate::order::tests::{placed, product};
    use serde_json::json;

    use crate::fixtures::FakePsp as Psp;

    #[tokio::test]
    async fn a_payment_is_opened_for_the_orders_customer_once_per_attempt_and_never_twice_paid() {
        let store = InMemoryStore::with_products([product("A", 1000, 5)]);
        let order = reserved(&store, 1).await;
        let psp = Psp::default();
        let customer = crate::app::Caller {
            customer_id: order.customer_id.clone(),
            scopes: vec![],
        };
        let intent = start_payment(&store, &psp, &customer, &order.id)
            .await
            .unwrap();
        assert_eq!(intent.amount, order.totals.total);
        let again = start_payment(&store, &psp, &customer, &order.id)
            .await
            .unwrap();
        assert_eq!(
            again.payment_intent_id, intent.payment_intent_id,
            "the same key"
        );
        assert_eq!(psp.keys()[0], format!("{}-INTENT-1", order.id));
        let stranger = crate::app::Caller {
            customer_id: crate::ids::CustomerId::parse("someone-else").unwrap(),
            scopes: vec![],
        };
        assert!(matches!(
            start_payment(&store, &psp, &stranger, &order.id).await,
            Err(PaymentAppError::NotFound)
        ));
        // Authorized: nothing more to pay.
        let mut auth = PaymentEvent {
            event_id: "e1".into(),
            kind: PaymentEventKind::AuthorizationSucceeded,
            amount: order.totals.total,
            occurred_at: Utc::now(),
            psp_reference: Some(intent.payment_intent_id.clone()),
            refund_id: None,
            request_id: None,
            reason: None,
        };
        record_psp_event(
            &store,
            &PaymentPolicy::default(),
            &order.id,
            &auth,
            Utc::now(),
        )
        .await
        .unwrap();
        assert!(matches!(
            start_payment(&store, &psp, &customer, &order.id).await,
            Err(PaymentAppError::NotPayable(_))
        ));
        // Released by the PSP: a new payment, under a new key.
        auth.event_id = "e2".into();
        auth.kind = PaymentEventKind::VoidSucceeded;
        record_psp_event(
            &store,
            &PaymentPolicy::default(),
            &order.id,
            &auth,
            Utc::now(),
        )
        .await
        .unwrap();
        let second = start_payment(&store, &psp, &customer, &order.id)
            .await
            .unwrap();
        assert_eq!(
            second.payment_intent_id,
            format!("pi_{}-INTENT-2", order.id)
        );
    }

    /// Some units called off before the first payment: the payment opened after is one of the
    /// new total, under a key of its own (the PSP refuses a key asked again for another
    /// amount).
    #[tokio::test]
    async fn a_payment_opened_after_some_units_were_called_off_is_one_of_the_new_total() {
        let store = InMemoryStore::with_products([product("A", 1000, 5)]);
        let order = reserved(&store, 2).await;
        let psp = Psp::default();
        let customer = crate::app::Caller {
            customer_id: order.customer_id.clone(),
            scopes: vec![],
        };
        let first = start_payment(&store, &psp, &customer, &order.id)
            .await
            .unwrap();
        let request = crate::request::staff::UnitCancelRequest::parse(
            &json!({"lines": [{"sku": "A", "quantity": 1}], "reason": "one is enough"}),
        )
        .unwrap();
        let smaller = order
            .cancel_units(&request, "k1", "customer", |_, _| None, Utc::now())
            .unwrap()
            .order;
        store.insert_order(smaller.clone());
        let second = start_payment(&store, &psp, &customer, &order.id)
            .await
            .unwrap();
        assert_eq!(second.amount, smaller.totals.total);
        assert!(second.amount.minor_units() < first.amount.minor_units());
        assert_eq!(
            second.payment_intent_id,
            format!("pi_{}-INTENT-1-U1", order.id)
        );
    }

    #[tokio::test]
    async fn a_capture_asked_of_the_provider_is_recorded_once_and_a_refusal_goes_to_staff() {
        let store = InMemoryStore::with_products([product("A", 1000, 5)]);
        let order = reserved(&store, 1).await;
        let psp = Psp::default();
        let policy = PaymentPolicy::default();
        record_psp_event(
            &store,
            &policy,
            &order.id,
            &authorization(&order, "e1"),
            Utc::now(),
        )
        .await
        .unwrap();
        let ask = PspAsk::Capture {
            request_id: format!("{}-CAPTURE-1", order.id),
            amount: order.totals.total,
            more_follow: false,
        };
        let asked = ask_provider(&store, &psp, &policy, &order.id, "pi_1", &ask, Utc::now());
        assert_eq!(asked.await.unwrap(), Asked::Recorded);
        assert_eq!(
            psp.captures.lock().unwrap()[0],
            (false, 0),
            "the whole hold, nothing taken before"
        );
        let paid = store.get(&order.id).await.unwrap().unwrap();
        assert_eq!(
            paid.payment_status(),
            crate::order::payments::PaymentStatus::Paid
        );
        // Asked again (a redelivered request): the same state, recorded once.
        ask_provider(&store, &psp, &policy, &order.id, "pi_1", &ask, Utc::now())
            .await
            .unwrap();
        let again = store.get(&order.id).await.unwrap().unwrap();
        assert_eq!(again.version, paid.version);
        // Another provider's payment: left alone.
        let other = ask_provider(
            &store,
            &psp,
            &policy,
            &order.id,
            "pi_unknown",
            &ask,
            Utc::now(),
        );
        assert_eq!(other.await.unwrap(), Asked::NotThisProvider);
        // Refused: recorded as the capture's failure, in front of staff.
        let second = reserved(&store, 1).await;
        record_psp_event(
            &store,
            &policy,
            &second.id,
            &authorization(&second, "e9"),
            Utc::now(),
        )
        .await
        .unwrap();
        let refused = PspAsk::Capture {
            request_id: format!("{}-CAPTURE-1", second.id),
            amount: second.totals.total,
            more_follow: false,
        };
        ask_provider(
            &store,
            &psp,
            &policy,
            &second.id,
            "pi_declined",
            &refused,
            Utc::now(),
        )
        .await
        .unwrap();
        let failed = store.get(&second.id).await.unwrap().unwrap();
        assert_eq!(
            failed.payment.ledger.last().unwrap().kind,
            PaymentEventKind::CaptureFailed
        );
    }

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

    #[tokio::test]
    async fn the_reconciliation_records_what_no_webhook_brought_once() {
        let store = InMemoryStore::with_products([product("A", 1000, 5)]);
        let policy = PaymentPolicy::default();
        let order = reserved(&store, 1).await;
        let at = Utc::now();
        let psp = Psp::default();
        let mut lost = authorization(&order, "stripe:pi_1:capturable");
        lost.occurred_at = at - chrono::Duration::seconds(300);
        let mut late = authorization(&order, "too-late");
        late.occurred_at = at;
        let stranger = OrderId::generate(at);
        let mut unmatched = lost.clone();
        unmatched.event_id = "elsewhere".into();
        *psp.events.lock().unwrap() = vec![
            crate::request::payments::PspEvent {
                order_id: order.id.clone(),
                event: lost,
            },
            crate::request::payments::PspEvent {
                order_id: order.id.clone(),
                event: late,
            },
            crate::request::payments::PspEvent {
                order_id: stranger,
                event: unmatched,
            },
        ];
        let (since, until) = (
            at - chrono::Duration::hours(1),
            at - chrono::Duration::seconds(60),
        );
        let run = reconcile(&store, &psp, &policy, since, until, at)
            .await
            .unwrap();
        assert_eq!(
            run.examined, 2,
            "the event inside the window and the stranger's"
        );
        assert_eq!(
            run.recovered,
            [(order.id.clone(), "stripe:pi_1:capturable".to_owned())]
        );
        assert_eq!(run.unmatched, ["elsewhere"]);
        let authorized = store.get(&order.id).await.unwrap().unwrap();
        assert!(authorized.payment_status().allows_fulfillment());
        // The next run finds the same event recorded: nothing changes.
        let again = reconcile(&store, &psp, &policy, since, until, at)
            .await
            .unwrap();
        assert!(again.recovered.is_empty());
        assert_eq!(
            store.get(&order.id).await.unwrap().unwrap().version,
            authorized.version
        );
        let down = Psp {
            unavailable: true,
            ..Psp::default()
        };
        assert!(reconcile(&store, &down, &policy, since, until, at)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn a_parcels_share_is_asked_with_what_follows_and_what_the_ledger_shows_taken() {
        let store = InMemoryStore::with_products([product("A", 1000, 5)]);
        let order = reserved(&store, 1).await;
        let psp = Psp::default();
        let policy = PaymentPolicy::default();
        let auth = authorization(&order, "e1");
        record_psp_event(&store, &policy, &order.id, &auth, Utc::now())
            .await
            .unwrap();
        let share = PspAsk::Capture {
            request_id: format!("{}-CAPTURE-1", order.id),
            amount: crate::money::Money::new(300, order.totals.total.currency()).unwrap(),
            more_follow: true,
        };
        ask_provider(&store, &psp, &policy, &order.id, "pi_1", &share, Utc::now())
            .await
            .unwrap();
        assert_eq!(*psp.captures.lock().unwrap(), [(true, 0)]);
    }
}

//! Cancelling orders (or some of their units), editing them, and handling returns:
//! `POST /orders/{id}/cancel`, `POST /orders/{id}/cancel-units`, `POST /orders/{id}/edits`,
//! `POST /orders/{id}/returns`, `GET /returns/{id}`, approve,
//! reject and receive.
//!
//! Each operation reads the order, applies a rule from [`crate::order::returns`], and writes the new
//! version together with the stock it moves in one atomic [`OrderChange`], on condition that the
//! order is still the version read. A lost race re-reads and decides again, so a cancel racing the
//! reservation ends with exact counters whichever wins: the reservation's write fails if the cancel
//! landed first (the order is no longer `PENDING`), and the cancel releases what the reservation
//! took if the reservation landed first.

use chrono::{DateTime, Utc};

use crate::app::caller::SCOPE_WAREHOUSE;
use crate::app::inventory::fill_freed;
use crate::app::locations::LocationDirectory;
use crate::app::retry::{until_written, Attempt, Contended};
use crate::app::Caller;
use crate::ids::{IdempotencyKey, OrderId, ReturnId, Sku};
use crate::order::cancellation::CancelError;
use crate::order::edits::EditError;
use crate::order::returns::policy::ReturnPolicy;
use crate::order::returns::{Return, ReturnError};
use crate::order::OrderChange;
use crate::order::{Order, OrderLine, OrderStatus, Shortage};
use crate::ports::{
    CommitOutcome, InventoryStore, LocationStore, OrderStore, OrderTransactions, StoreError,
};
use crate::request::returns::{ReceiptRequest, ReturnRequest};
use crate::request::staff::{OrderEditRequest, UnitCancelRequest};
use crate::stock::Product;
use crate::validation::ValidationErrors;

#[derive(Debug, thiserror::Error)]
pub enum ReturnsAppError {
    /// Absent, or not the caller's: indistinguishable on purpose.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Cancel(#[from] CancelError),
    #[error(transparent)]
    Edit(#[from] EditError),
    #[error(transparent)]
    Return(ReturnError),
    #[error(transparent)]
    Invalid(ValidationErrors),
    #[error("this Idempotency-Key was used for a different return request")]
    KeyReused,
    #[error("not enough stock for the exchange: {}", describe(.0))]
    ExchangeUnavailable(Vec<Shortage>),
    #[error("the order kept changing; try again")]
    Contended,
    /// The caller acted on a version of the order that is no longer the stored one.
    #[error("the order changed since it was read (it is now version {current})")]
    Stale { current: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The order, if it is still the version the caller saw (`None`: the caller saw none and
/// takes the order as it is). The write that follows is conditioned on the version read, so
/// once this passed the store decides: a change that lands between the read and the write
/// fails the condition, and the next read answers [`ReturnsAppError::Stale`].
fn as_seen(order: Order, expected: Option<u64>) -> Result<Order, ReturnsAppError> {
    match expected {
        Some(seen) if seen != order.version => Err(ReturnsAppError::Stale {
            current: order.version,
        }),
        _ => Ok(order),
    }
}

fn describe(shortages: &[Shortage]) -> String {
    shortages
        .iter()
        .map(|s| {
            format!(
                "{} ({} wanted, {} available)",
                s.sku, s.requested, s.available
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<ReturnError> for ReturnsAppError {
    fn from(error: ReturnError) -> Self {
        match error {
            ReturnError::NotFound => Self::NotFound("return"),
            ReturnError::Invalid(errors) => Self::Invalid(errors),
            other => Self::Return(other),
        }
    }
}

/// The order, if the caller may act on it as its customer or as an administrator.
async fn visible_order<S: OrderStore>(
    store: &S,
    caller: &Caller,
    id: &OrderId,
    staff_scope: Option<&str>,
) -> Result<Order, ReturnsAppError> {
    match store.get(id).await? {
        Some(order)
            if order.customer_id == caller.customer_id
                || caller.is_admin()
                || staff_scope.is_some_and(|s| caller.has_scope(s)) =>
        {
            Ok(order)
        }
        _ => Err(ReturnsAppError::NotFound("order")),
    }
}

/// Writes a change with the stock it moves; a lost race if the order changed since it was read.
async fn commit<S: OrderTransactions>(
    store: &S,
    change: OrderChange,
) -> Result<Attempt<Order>, ReturnsAppError> {
    match store.commit(&change).await? {
        CommitOutcome::Committed => Ok(Attempt::Done(change.order)),
        CommitOutcome::OrderChanged => Ok(Attempt::LostRace),
        CommitOutcome::Short(shortages) => Err(ReturnsAppError::ExchangeUnavailable(shortages)),
    }
}

impl Contended for ReturnsAppError {
    fn contended() -> Self {
        Self::Contended
    }
}

/// Who did it, as timelines record it.
fn actor(caller: &Caller, order: &Order) -> &'static str {
    if caller.customer_id == order.customer_id {
        "customer"
    } else {
        "admin"
    }
}

/// Cancels the order and releases its stock, if it is still the version `expected` (when the
/// caller saw one). Cancelling a cancelled order again answers it as it is, so a client's retry
/// succeeds.
pub async fn cancel_order<S: OrderStore + OrderTransactions + LocationStore + InventoryStore>(
    store: &S,
    locations: &LocationDirectory,
    caller: &Caller,
    id: &OrderId,
    reason: String,
    expected: Option<u64>,
    now: DateTime<Utc>,
) -> Result<Order, ReturnsAppError> {
    let reason = &reason;
    let (order, freed) = until_written(|| async move {
        let order = visible_order(store, caller, id, None).await?;
        if order.status == OrderStatus::Cancelled {
            return Ok(Attempt::Done((order, Vec::new())));
        }
        let order = as_seen(order, expected)?;
        let mut change = order.cancel(reason.clone(), actor(caller, &order), now)?;
        // An exchange's replacement called off: its original order refunds the goods that came
        // back, in the same write.
        if let Some(of) = &order.replacement_for {
            if let Some(original) = store.get(&of.order_id).await? {
                change.linked = original.refund_called_off_exchange(&change.order, now);
            }
        }
        commit_freeing(store, change).await
    })
    .await?;
    // What it held goes to orders waiting for it first.
    give_freed(store, locations, &freed, now).await;
    Ok(order)
}

/// What a write made available again goes to the orders waiting for it first, in writes right
/// after it ([`fill_freed`]); a failure is logged, never the caller's: the freeing write stands.
async fn give_freed<S: OrderStore + LocationStore + InventoryStore>(
    store: &S,
    locations: &LocationDirectory,
    freed: &[(Sku, String)],
    now: DateTime<Utc>,
) {
    if freed.is_empty() {
        return;
    }
    match locations.current(store).await {
        Ok(places) => fill_freed(store, &places, freed, now).await,
        Err(error) => tracing::warn!(%error, "freed stock not given to waiting orders"),
    }
}

/// Commits `change`, answering with where it made units available again.
async fn commit_freeing<S: OrderTransactions>(
    store: &S,
    change: OrderChange,
) -> Result<Attempt<(Order, Vec<(Sku, String)>)>, ReturnsAppError> {
    let freed = change.freed();
    Ok(match commit(store, change).await? {
        Attempt::Done(order) => Attempt::Done((order, freed)),
        Attempt::LostRace => Attempt::LostRace,
    })
}

/// Calls off some units of some lines of the order (all of them: the order), once per
/// `Idempotency-Key`, if it is still the version `expected` (when the caller saw one). The
/// shipping charge is re-quoted from the locations the units leave from ([`Order::cancel_units`]).
/// The same request again answers the order as it is; another body under the same key is
/// refused.
#[allow(clippy::too_many_arguments)]
pub async fn cancel_units<S: OrderStore + OrderTransactions + LocationStore + InventoryStore>(
    store: &S,
    locations: &LocationDirectory,
    caller: &Caller,
    id: &OrderId,
    request: &UnitCancelRequest,
    key: &IdempotencyKey,
    expected: Option<u64>,
    now: DateTime<Utc>,
) -> Result<Order, ReturnsAppError> {
    let places = locations.current(store).await?;
    let shipping = locations.shipping();
    let fingerprint = request.fingerprint();
    let (places, fingerprint) = (&places, &fingerprint);
    let (order, freed) = until_written(|| async move {
        let order = visible_order(store, caller, id, None).await?;
        if let Some(done) = order.unit_cancellation_for_key(key.as_str()) {
            return if &done.fingerprint == fingerprint {
                Ok(Attempt::Done((order, Vec::new())))
            } else {
                Err(ReturnsAppError::KeyReused)
            };
        }
        if let Some(whole) = order
            .cancellation
            .as_ref()
            .filter(|c| c.key.as_deref() == Some(key.as_str()))
        {
            return if whole.fingerprint.as_ref() == Some(fingerprint) {
                Ok(Attempt::Done((order, Vec::new())))
            } else {
                Err(ReturnsAppError::KeyReused)
            };
        }
        let order = as_seen(order, expected)?;
        let (method, country) = (
            order.shipping.method,
            order.shipping.address.country().clone(),
        );
        let requote = |location: Option<&str>, grams: u64| {
            shipping.parcel_cost(method, places.zone_of(location)?, &country, grams)
        };
        let change =
            order.cancel_units(request, key.as_str(), actor(caller, &order), requote, now)?;
        commit_freeing(store, change).await
    })
    .await?;
    // What they held goes to orders waiting for it first.
    fill_freed(store, places, &freed, now).await;
    Ok(order)
}

/// Changes where or how the order ships, or adds units to it, before it is packed, once per
/// `Idempotency-Key`, on the version `expected` the caller saw (an edit is always made on a
/// version seen): added units reserved where the order ships from in the same write, the charge
/// re-quoted, the money following ([`Order::edit`]).
/// `window` is how long a dearer edit of an order whose money is held waits for its new
/// authorization. The same request again answers the order as it is; another body under the
/// same key is refused.
#[allow(clippy::too_many_arguments)]
pub async fn edit_order<S: OrderStore + OrderTransactions + LocationStore + InventoryStore>(
    store: &S,
    locations: &LocationDirectory,
    caller: &Caller,
    id: &OrderId,
    request: &OrderEditRequest,
    key: &IdempotencyKey,
    expected: u64,
    window: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<Order, ReturnsAppError> {
    let places = locations.current(store).await?;
    let shipping = locations.shipping();
    let fingerprint = request.fingerprint();
    let (places, fingerprint) = (&places, &fingerprint);
    let skus: Vec<_> = request.add_lines.iter().map(|l| l.sku.clone()).collect();
    let skus = &skus;
    until_written(|| async move {
        let order = visible_order(store, caller, id, None).await?;
        if let Some(done) = order.edit_for_key(key.as_str()) {
            return if &done.fingerprint == fingerprint {
                Ok(Attempt::Done(order))
            } else {
                Err(ReturnsAppError::KeyReused)
            };
        }
        let order = as_seen(order, Some(expected))?;
        let zone_of = |location: Option<&str>| places.zone_of(location).map(str::to_owned);
        // Read on every attempt: the stock an added line is reserved from is checked as read,
        // and the write is conditioned on it.
        let catalog = if skus.is_empty() {
            Vec::new()
        } else {
            store.products(skus).await?
        };
        let mut change = order.edit(
            request,
            key.as_str(),
            actor(caller, &order),
            shipping,
            zone_of,
            &catalog,
            window,
            now,
        )?;
        // Units added past stock are promised the date of the open purchase order that brings
        // the last of them, behind those already waiting (as at a reservation).
        let waiting_added: Vec<(Sku, u32)> = change
            .order
            .edits
            .last()
            .filter(|e| e.key == key.as_str())
            .map(|e| {
                e.added
                    .iter()
                    .filter(|a| a.backordered > 0)
                    .map(|a| (a.sku.clone(), a.backordered))
                    .collect()
            })
            .unwrap_or_default();
        for (sku, _) in waiting_added {
            let Some(product) = catalog.iter().find(|p| p.sku == sku) else {
                continue;
            };
            // Its units wait at its place in the queue (by its placing time): behind the units
            // of the orders placed before it, and all of its own.
            let key = crate::backorder::waiting_key(change.order.created_at, &change.order.id);
            let ahead: u32 = product
                .backorders
                .waiting
                .range(..key)
                .map(|(_, units)| *units)
                .sum();
            let position = ahead + change.order.waiting_for(&sku);
            let open: Vec<_> = store
                .purchase_orders(&sku, 100, None)
                .await?
                .items
                .into_iter()
                .filter(|po| {
                    po.status == crate::purchase::PurchaseStatus::Open
                        && (po.location == shipping.warehouse()
                            || places.sends(
                                &po.location,
                                change.order.shipping.method,
                                change.order.shipping.address.country(),
                            ))
                })
                .map(|po| (po.expected_on, po.quantity.saturating_sub(po.received)))
                .collect();
            if let Some(line) = change.order.lines.iter_mut().find(|l| l.sku == sku) {
                line.promised_on = crate::backorder::promised_on(
                    position,
                    open,
                    crate::replenishment::day_of(now),
                );
            }
        }
        match store.commit(&change).await? {
            CommitOutcome::Committed => Ok(Attempt::Done(change.order)),
            CommitOutcome::OrderChanged => Ok(Attempt::LostRace),
            // Sold meanwhile: read again and decide again (another location may have them).
            CommitOutcome::Short(_) => Ok(Attempt::LostRace),
        }
    })
    .await
}

/// What `POST /orders/{id}/returns` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    pub rma: Return,
    /// False when an earlier request with the same key had created it.
    pub created: bool,
    /// The order as it now is, holding the return.
    pub order: Order,
}

/// Opens a return (an RMA) on the order, once per `Idempotency-Key`.
pub async fn request_return<S: OrderStore + InventoryStore + OrderTransactions>(
    store: &S,
    policy: &ReturnPolicy,
    caller: &Caller,
    id: &OrderId,
    request: &ReturnRequest,
    key: IdempotencyKey,
    now: DateTime<Utc>,
) -> Result<Requested, ReturnsAppError> {
    let exchange_skus: Vec<_> = request
        .lines
        .iter()
        .filter_map(|l| l.exchange_sku.clone())
        .collect();
    let catalog = if exchange_skus.is_empty() {
        Vec::new()
    } else {
        store.products(&exchange_skus).await?
    };
    let (key, catalog) = (&key, &catalog);
    until_written(|| async move {
        let order = visible_order(store, caller, id, None).await?;
        if let Some(existing) = order.return_for_key(key) {
            return if existing.fingerprint == request.fingerprint() {
                Ok(Attempt::Done(Requested {
                    rma: existing.clone(),
                    created: false,
                    order: order.clone(),
                }))
            } else {
                Err(ReturnsAppError::KeyReused)
            };
        }
        let change = order.request_return(request, key.clone(), catalog, policy, now)?;
        Ok(match commit(store, change).await? {
            Attempt::Done(saved) => Attempt::Done(Requested {
                rma: saved.returns.last().expect("a return was added").clone(),
                created: true,
                order: saved,
            }),
            Attempt::LostRace => Attempt::LostRace,
        })
    })
    .await
}

/// The most products [`exchange_choices`] reads for one line.
const VARIANTS_READ: u32 = 100;

/// What a customer may ask for instead of a refund of `line` of `order`: the item itself, then
/// its variants — the products whose SKU is the line's stem (the SKU up to its last hyphen) and
/// one more part (`TSHIRT-RED-L` for `TSHIRT-RED-M`; not `TSHIRT-RED-KIDS-M`) — each on sale
/// with units available now (approval reserves it, or refuses if it sold out meanwhile), at any
/// price in the order's currency: a dearer one's difference is paid before it ships, a cheaper
/// one's refunded on receipt (the item itself costs what was paid for it). A replacement's
/// lines are priced at what was paid for them (nothing, or a difference), so they are exchanged
/// only for items of that price. A pre-order not yet released is none. A SKU without a hyphen
/// has no variants.
pub async fn exchange_choices<S: InventoryStore>(
    store: &S,
    order: &Order,
    line: &OrderLine,
) -> Result<Vec<Product>, StoreError> {
    let mut products = store.products(std::slice::from_ref(&line.sku)).await?;
    if let Some((stem, _)) = line.sku.as_str().rsplit_once('-') {
        let stem = format!("{stem}-");
        let variants = store.catalog_starting_with(&stem, VARIANTS_READ).await?;
        products.extend(variants.into_iter().filter(|p| {
            p.sku != line.sku
                && p.sku
                    .as_str()
                    .strip_prefix(&stem)
                    .is_some_and(|rest| !rest.contains('-'))
        }));
    }
    let any_price = order.replacement_for.is_none();
    let today = crate::replenishment::day_of(chrono::Utc::now());
    products.retain(|p| {
        p.active
            && p.stock.available() > 0
            // Any price in the order's currency (the same item again costs what was paid for
            // it); a replacement's lines only at their own price.
            && (any_price && (p.sku == line.sku || p.unit_price.currency() == line.unit_price.currency())
                || p.unit_price == line.unit_price)
            // A pre-order not yet released is not sent as an exchange.
            && p.backorders.policy.release_after(today).is_none()
    });
    Ok(products)
}

/// One return and its order, for its customer, administrators and the warehouse.
pub async fn get_return<S: OrderStore>(
    store: &S,
    caller: &Caller,
    id: &ReturnId,
) -> Result<(Return, Order), ReturnsAppError> {
    let order = visible_order(store, caller, id.order_id(), Some(SCOPE_WAREHOUSE))
        .await
        .map_err(|_| ReturnsAppError::NotFound("return"))?;
    let rma = order
        .find_return(id)
        .cloned()
        .ok_or(ReturnsAppError::NotFound("return"))?;
    Ok((rma, order))
}

/// The returns waiting for staff, the longest-waiting first, a page of orders at a time (an
/// order may hold more than one). The caller's scope is checked at the edge.
pub async fn pending_returns<S: OrderStore>(
    store: &S,
    limit: u32,
    cursor: Option<&str>,
) -> Result<(Vec<Return>, Option<String>), ReturnsAppError> {
    let page = store.list_pending_returns(limit, cursor).await?;
    let returns = page
        .items
        .iter()
        .flat_map(|o| o.returns.iter())
        .filter(|r| r.status == crate::order::returns::ReturnStatus::PendingApproval)
        .cloned()
        .collect();
    Ok((returns, page.next_cursor))
}

/// The approved returns whose goods are on their way, the longest-approved first, a page of
/// orders at a time: what the warehouse expects back (each names its order). The caller's scope
/// is checked at the edge.
pub async fn arriving_returns<S: OrderStore>(
    store: &S,
    limit: u32,
    cursor: Option<&str>,
) -> Result<(Vec<Return>, Option<String>), ReturnsAppError> {
    let page = store.list_arriving_returns(limit, cursor).await?;
    let mut arriving: Vec<Return> = page
        .items
        .into_iter()
        .flat_map(|o| o.returns)
        .filter(|r| r.status == crate::order::returns::ReturnStatus::Approved)
        .collect();
    arriving.sort_by_key(Return::approved_at);
    Ok((arriving, page.next_cursor))
}

/// Closes the order's oldest approved return nothing arrived for within `policy`'s days
/// ([`Order::expire_return`]), with the release of its exchange in the same write; again if the
/// order changed meanwhile. Answers where it made units available again, or `None` when no
/// return of the order was due (or the order is gone).
pub async fn expire_arriving_return<S: OrderStore + OrderTransactions>(
    store: &S,
    policy: &ReturnPolicy,
    id: &OrderId,
    now: DateTime<Utc>,
) -> Result<Option<Vec<(Sku, String)>>, ReturnsAppError> {
    until_written(|| async move {
        let Some(order) = store.get(id).await? else {
            return Ok(Attempt::Done(None));
        };
        let Some(change) = order.expire_return(policy, now) else {
            return Ok(Attempt::Done(None));
        };
        Ok(match commit_freeing(store, change).await? {
            Attempt::Done((_, freed)) => Attempt::Done(Some(freed)),
            Attempt::LostRace => Attempt::LostRace,
        })
    })
    .await
}

/// Reads the return's order, applies `change`, writes it; again if the order changed meanwhile.
/// Answers the return and its order as written.
async fn change_return<S: OrderStore + OrderTransactions>(
    store: &S,
    id: &ReturnId,
    expected: Option<u64>,
    now: DateTime<Utc>,
    change: impl Fn(&Order) -> Result<OrderChange, ReturnError>,
) -> Result<(Return, Order, Vec<(Sku, String)>), ReturnsAppError> {
    let change = &change;
    until_written(|| async move {
        let order = store
            .get(id.order_id())
            .await?
            .ok_or(ReturnsAppError::NotFound("return"))?;
        let order = as_seen(order, expected)?;
        let mut write = change(&order)?;
        // Units of an exchange's replacement received back: the replacement's lines are priced
        // at the difference it cost, so its original order refunds what was paid for them, in
        // the same write.
        let received = |o: &Order| {
            o.find_return(id)
                .is_some_and(|r| r.status == crate::order::returns::ReturnStatus::Received)
        };
        if let Some(of) = order
            .replacement_for
            .as_ref()
            .filter(|_| received(&write.order) && !received(&order))
        {
            if let Some(original) = store.get(&of.order_id).await? {
                write.linked = original.refund_returned_replacement(&write.order, id, now);
            }
        }
        Ok(match commit_freeing(store, write).await? {
            Attempt::Done((saved, freed)) => {
                let rma = saved.find_return(id).expect("the return exists").clone();
                Attempt::Done((rma, saved, freed))
            }
            Attempt::LostRace => Attempt::LostRace,
        })
    })
    .await
}

/// Staff approve (reserving any exchange) or reject a return waiting for them, on the version
/// of its order they saw (if they name one). The caller's scope is checked at the edge.
pub async fn decide_return<S: OrderStore + OrderTransactions>(
    store: &S,
    caller: &Caller,
    id: &ReturnId,
    approved: bool,
    note: Option<String>,
    expected: Option<u64>,
    now: DateTime<Utc>,
) -> Result<(Return, Order), ReturnsAppError> {
    let by = format!("admin {}", caller.customer_id);
    let (rma, order, _) = change_return(store, id, expected, now, |order| {
        order.decide_return(id, approved, &by, note.clone(), now)
    })
    .await?;
    Ok((rma, order))
}

/// Staff close an approved return nothing arrived for before its time, on the version of the
/// order they saw (if they name one): `EXPIRED`, its exchange released in the same write (and
/// given to orders waiting for it), the customer told. The caller's scope is checked at the
/// edge.
pub async fn close_return<S: OrderStore + OrderTransactions + LocationStore + InventoryStore>(
    store: &S,
    locations: &LocationDirectory,
    caller: &Caller,
    id: &ReturnId,
    note: Option<String>,
    expected: Option<u64>,
    now: DateTime<Utc>,
) -> Result<(Return, Order), ReturnsAppError> {
    let by = format!("admin {}", caller.customer_id);
    let (rma, order, freed) = change_return(store, id, expected, now, |order| {
        order.close_return(id, &by, note.clone(), now)
    })
    .await?;
    give_freed(store, locations, &freed, now).await;
    Ok((rma, order))
}

/// The warehouse records what arrived, on the version of the order it saw (if it names one).
/// The caller's scope is checked at the edge.
#[allow(clippy::too_many_arguments)]
pub async fn receive_return<S: OrderStore + OrderTransactions + LocationStore + InventoryStore>(
    store: &S,
    policy: &ReturnPolicy,
    locations: &LocationDirectory,
    caller: &Caller,
    id: &ReturnId,
    receipt: &ReceiptRequest,
    expected: Option<u64>,
    now: DateTime<Utc>,
) -> Result<(Return, Order), ReturnsAppError> {
    let by = format!("warehouse {}", caller.customer_id);
    let shipping = locations.shipping();
    let (rma, order, freed) = change_return(store, id, expected, now, |order| {
        order.receive_return(id, receipt, &by, policy, shipping, now)
    })
    .await?;
    // What was restocked (or an exchange's reservation released) goes to orders waiting for
    // it first.
    give_freed(store, locations, &freed, now).await;
    Ok((rma, order))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::reservation::{reserve_order, ReservationResult};
    use crate::ids::{CustomerId, Sku};
    use crate::memory::InMemoryStore;
    use crate::order::fulfillment::{CarrierEventKind, CarrierUpdate, Tracking};
    use crate::order::returns::{Disposition, ReturnStatus};
    use crate::order::tests::{placed, product};
    use serde_json::json;

    fn customer() -> Caller {
        Caller {
            customer_id: CustomerId::parse("customer-1").unwrap(),
            scopes: vec![],
        }
    }

    fn staff(scope: &str) -> Caller {
        Caller {
            customer_id: CustomerId::parse("staff-1").unwrap(),
            scopes: vec![scope.to_owned()],
        }
    }

    fn sku(s: &str) -> Sku {
        Sku::parse(s).unwrap()
    }

    fn key(k: &str) -> IdempotencyKey {
        IdempotencyKey::parse(k).unwrap()
    }

    async fn stock(store: &InMemoryStore, s: &str) -> (u32, u32) {
        let p = store.product(&sku(s)).await.unwrap().unwrap();
        (p.stock.available(), p.stock.reserved())
    }

    /// A placed order taken through the warehouse and delivered `days_ago` days ago, stock moved
    /// as the real steps move it.
    async fn delivered(store: &InMemoryStore, lines: serde_json::Value, days_ago: u64) -> Order {
        let now = Utc::now();
        let order = placed(lines, &store.catalog());
        crate::app::reservation::insert_reserved(store, &order).await;
        let reserved = store.get(&order.id).await.unwrap().unwrap();
        let packed = reserved
            .authorized_for_test(now)
            .start_fulfillment("BER-1", now)
            .unwrap()
            .pick(1, "picker", now)
            .unwrap()
            .pack(1, crate::fixtures::parcel(), "packer", now)
            .unwrap();
        store.insert_order(packed.clone());
        let tracking = Tracking {
            carrier: "DHL".into(),
            tracking_number: "JJD1".into(),
            tracking_url: "https://track.example/JJD1".into(),
        };
        let shipped = packed
            .ship(1, tracking, packed.shipping.estimate, "packer", now)
            .unwrap();
        store.ship(&shipped, 1).await.unwrap();
        let at = now - chrono::Days::new(days_ago);
        let CarrierUpdate::Applied(done) = shipped
            .carrier_event(1, "c1", CarrierEventKind::Delivered, None, at, now)
            .unwrap()
        else {
            panic!("delivered")
        };
        store.save(&done, shipped.version).await.unwrap();
        *done
    }

    fn return_request(lines: serde_json::Value) -> ReturnRequest {
        ReturnRequest::parse(&json!({ "lines": lines })).unwrap()
    }

    fn receipt(lines: serde_json::Value) -> ReceiptRequest {
        ReceiptRequest::parse(&json!({ "lines": lines })).unwrap()
    }

    #[tokio::test]
    async fn cancelling_a_reserved_order_releases_its_stock_and_refunds_what_was_paid() {
        let store = InMemoryStore::with_products([product("A", 1000, 5)]);
        let order = placed(json!([{"sku": "A", "quantity": 2}]), &store.catalog())
            .captured_for_test(Utc::now());
        crate::app::reservation::insert_reserved(&store, &order).await;
        assert_eq!(stock(&store, "A").await, (3, 2));

        let cancelled = cancel_order(
            &store,
            &LocationDirectory::demo(),
            &customer(),
            &order.id,
            "changed my mind".into(),
            None,
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(cancelled.status, OrderStatus::Cancelled);
        assert_eq!(stock(&store, "A").await, (5, 0));
        assert_eq!(cancelled.refunds[0].amount, order.totals.total);

        // A retry answers the cancelled order and releases nothing twice.
        let again = cancel_order(
            &store,
            &LocationDirectory::demo(),
            &customer(),
            &order.id,
            "again".into(),
            None,
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(again.version, cancelled.version);
        assert_eq!(stock(&store, "A").await, (5, 0));
    }

    #[tokio::test]
    async fn a_cancellation_of_a_version_that_changed_under_it_is_refused_by_the_write() {
        let store = InMemoryStore::with_products([product("A", 1000, 5)]);
        let order = placed(json!([{"sku": "A", "quantity": 2}]), &store.catalog());
        crate::app::reservation::insert_reserved(&store, &order).await;
        let shown = store.get(&order.id).await.unwrap().unwrap();
        // Another change lands after the cancellation read the order and before it writes.
        let elsewhere = shown.authorized_for_test(Utc::now());
        let landed = elsewhere.version;
        store.interleave_after_next_read(move |orders| {
            orders.insert(elsewhere.id.clone(), elsewhere);
        });
        let refused = cancel_order(
            &store,
            &LocationDirectory::demo(),
            &customer(),
            &order.id,
            "changed my mind".into(),
            Some(shown.version),
            Utc::now(),
        )
        .await;
        assert!(
            matches!(refused, Err(ReturnsAppError::Stale { current }) if current == landed),
            "{refused:?}"
        );
        let stored = store.get(&order.id).await.unwrap().unwrap();
        assert_eq!(
            stored.status,
            OrderStatus::Reserved,
            "nothing was cancelled"
        );
        assert_eq!(stock(&store, "A").await, (3, 2), "nothing was released");
        // Without a version seen, the caller takes the order as it is.
        let cancelled = cancel_order(
            &store,
            &LocationDirectory::demo(),
            &customer(),
            &order.id,
            "x".into(),
            None,
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(cancelled.status, OrderStatus::Cancelled);
    }

    #[tokio::test]
    async fn a_pending_order_cancelled_first_is_never_reserved() {
        let store = InMemoryStore::with_products([product("A", 1000, 5)]);
        let order = placed(json!([{"sku": "A", "quantity": 2}]), &store.catalog());
        store.insert_order(order.clone());
        cancel_order(
            &store,
            &LocationDirectory::demo(),
            &customer(),
            &order.id,
            "oops".into(),
            None,
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(
            reserve_order(
                &store,
                &store,
                crate::app::reservation::Routing::demo(),
                &order.id,
                Utc::now()
            )
            .await
            .unwrap(),
            ReservationResult::AlreadyDecided(OrderStatus::Cancelled)
        );
        assert_eq!(stock(&store, "A").await, (5, 0));
    }

    #[tokio::test]
    async fn shipped_and_packed_orders_cannot_be_cancelled_and_others_cannot_see_them() {
        let store = InMemoryStore::with_products([product("A", 1000, 5)]);
        let order = delivered(&store, json!([{"sku": "A", "quantity": 1}]), 1).await;
        let error = cancel_order(
            &store,
            &LocationDirectory::demo(),
            &customer(),
            &order.id,
            "late".into(),
            None,
            Utc::now(),
        )
        .await
        .unwrap_err();
        assert!(matches!(
            error,
            ReturnsAppError::Cancel(CancelError::Shipped)
        ));
        assert!(error.to_string().contains("return it instead"));

        let stranger = Caller {
            customer_id: CustomerId::parse("someone-else").unwrap(),
            scopes: vec![],
        };
        assert!(matches!(
            cancel_order(
                &store,
                &LocationDirectory::demo(),
                &stranger,
                &order.id,
                "x".into(),
                None,
                Utc::now()
            )
            .await,
            Err(ReturnsAppError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_partial_return_restocks_one_line_and_records_the_other() {
        let store = InMemoryStore::with_products([product("A", 1000, 5), product("B", 500, 5)]);
        let order = delivered(
            &store,
            json!([{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}]),
            3,
        )
        .await;
        assert_eq!(stock(&store, "A").await, (3, 0));
        let requested = request_return(
            &store,
            &ReturnPolicy::default_policy(),
            &customer(),
            &order.id,
            &return_request(json!([
                {"sku": "A", "quantity": 1, "reason": "DAMAGED"},
                {"sku": "B", "quantity": 1, "reason": "NO_LONGER_NEEDED"}
            ])),
            key("k1"),
            Utc::now(),
        )
        .await
        .unwrap();
        assert!(requested.created);
        assert_eq!(
            requested.rma.status,
            ReturnStatus::Approved,
            "within the auto-approval rules"
        );

        let (received, _) = receive_return(
            &store,
            &ReturnPolicy::default_policy(),
            &LocationDirectory::demo(),
            &staff(SCOPE_WAREHOUSE),
            &requested.rma.return_id,
            &receipt(json!([
                {"sku": "A", "quantity": 1, "disposition": "RESTOCK"},
                {"sku": "B", "quantity": 1, "disposition": "RECYCLE"}
            ])),
            None,
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(received.status, ReturnStatus::Received);
        assert_eq!(
            stock(&store, "A").await,
            (4, 0),
            "one unit of A is sellable again"
        );
        assert_eq!(stock(&store, "B").await, (4, 0), "the recycled unit is not");
        let saved = store.get(&order.id).await.unwrap().unwrap();
        let refund = &saved.refunds[0];
        // A damaged item: the policy refunds shipping too.
        assert_eq!(
            refund.amount.minor_units(),
            1000 + 500 + order.totals.shipping.minor_units()
        );
        assert_eq!(
            saved.returns[0].receipt.as_ref().unwrap().lines[1].disposition,
            Disposition::Recycle
        );

        // Received twice: refused, nothing moves.
        let again = receive_return(
            &store,
            &ReturnPolicy::default_policy(),
            &LocationDirectory::demo(),
            &staff(SCOPE_WAREHOUSE),
            &requested.rma.return_id,
            &receipt(json!([{"sku": "A", "quantity": 1, "disposition": "RESTOCK"}])),
            None,
            Utc::now(),
        )
        .await;
        assert!(matches!(
            again,
            Err(ReturnsAppError::Return(ReturnError::AlreadyReceived))
        ));
        assert_eq!(stock(&store, "A").await, (4, 0));
    }

    #[tokio::test]
    async fn returns_outside_the_rules_are_refused_and_change_nothing() {
        let store = InMemoryStore::with_products([product("A", 1000, 5)]);
        let policy = ReturnPolicy::default_policy();
        let old = delivered(&store, json!([{"sku": "A", "quantity": 2}]), 45).await;
        let request =
            return_request(json!([{"sku": "A", "quantity": 1, "reason": "DOES_NOT_FIT"}]));
        let late = request_return(
            &store,
            &policy,
            &customer(),
            &old.id,
            &request,
            key("a"),
            Utc::now(),
        )
        .await;
        let Err(ReturnsAppError::Invalid(errors)) = late else {
            panic!("expected a window error, got {late:?}")
        };
        assert!(errors.to_string().contains("return window of 30 days"));

        let recent = delivered(&store, json!([{"sku": "A", "quantity": 2}]), 1).await;
        let too_many =
            return_request(json!([{"sku": "A", "quantity": 3, "reason": "DOES_NOT_FIT"}]));
        let result = request_return(
            &store,
            &policy,
            &customer(),
            &recent.id,
            &too_many,
            key("b"),
            Utc::now(),
        )
        .await;
        assert!(matches!(result, Err(ReturnsAppError::Invalid(_))));
        // Two returns of one unit each, then a third is more than was delivered.
        for k in ["c", "d"] {
            request_return(
                &store,
                &policy,
                &customer(),
                &recent.id,
                &request,
                key(k),
                Utc::now(),
            )
            .await
            .unwrap();
        }
        let third = request_return(
            &store,
            &policy,
            &customer(),
            &recent.id,
            &request,
            key("e"),
            Utc::now(),
        )
        .await;
        let Err(ReturnsAppError::Invalid(errors)) = third else {
            panic!("expected a quantity error")
        };
        assert!(errors.to_string().contains("2 already being returned"));

        let pending = placed(json!([{"sku": "A", "quantity": 1}]), &store.catalog());
        store.insert_order(pending.clone());
        let result = request_return(
            &store,
            &policy,
            &customer(),
            &pending.id,
            &request,
            key("f"),
            Utc::now(),
        )
        .await;
        assert!(matches!(
            result,
            Err(ReturnsAppError::Return(ReturnError::NotDelivered(
                "PENDING"
            )))
        ));
        assert_eq!(store.get(&pending.id).await.unwrap().unwrap().version, 1);
    }

    #[tokio::test]
    async fn the_same_key_answers_the_same_return_and_a_different_body_is_refused() {
        let store = InMemoryStore::with_products([product("A", 1000, 5)]);
        let policy = ReturnPolicy::default_policy();
        let order = delivered(&store, json!([{"sku": "A", "quantity": 2}]), 1).await;
        let request =
            return_request(json!([{"sku": "A", "quantity": 1, "reason": "DOES_NOT_FIT"}]));
        let first = request_return(
            &store,
            &policy,
            &customer(),
            &order.id,
            &request,
            key("k"),
            Utc::now(),
        )
        .await
        .unwrap();
        let retry = request_return(
            &store,
            &policy,
            &customer(),
            &order.id,
            &request,
            key("k"),
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(
            (retry.rma.return_id, retry.created),
            (first.rma.return_id, false)
        );
        let other = return_request(json!([{"sku": "A", "quantity": 2, "reason": "DOES_NOT_FIT"}]));
        assert!(matches!(
            request_return(
                &store,
                &policy,
                &customer(),
                &order.id,
                &other,
                key("k"),
                Utc::now()
            )
            .await,
            Err(ReturnsAppError::KeyReused)
        ));
        assert_eq!(
            store.get(&order.id).await.unwrap().unwrap().returns.len(),
            1
        );
    }

    /// A line's exchange choices: its variants at its price with units to sell, itself first;
    /// never another price, a product off sale, one sold out, another product's SKUs or a
    /// deeper family's (`TEE-RED-KIDS-M` is no size of `TEE-RED-M`).
    #[tokio::test]
    async fn a_line_may_be_exchanged_for_its_variants_in_stock_at_any_price() {
        // Its stock came early; it is not released until next year: no exchange yet.
        let pre_order = |sku: &str, price: i64, units: u32| {
            let mut p = product(sku, price, units);
            p.backorders.policy = crate::backorder::SellingPolicy::PreOrder {
                release_on: Utc::now().date_naive() + chrono::Duration::days(30),
                cap: 10,
            };
            p
        };
        let mut retired = product("TEE-RED-S", 1000, 4);
        retired.active = false;
        let store = InMemoryStore::with_products([
            product("TEE-RED-M", 1000, 5),
            product("TEE-RED-L", 1000, 2),
            product("TEE-RED-XL", 1200, 9),
            pre_order("TEE-RED-XXL", 1000, 6),
            product("TEE-RED-XS", 1000, 0),
            retired,
            product("TEE-REDWOOD", 1000, 3),
            product("TEE-RED-KIDS-M", 1000, 3),
            product("MUG", 1000, 3),
        ]);
        let order = delivered(&store, json!([{"sku": "TEE-RED-M", "quantity": 1}]), 1).await;
        let choices = exchange_choices(&store, &order, &order.lines[0])
            .await
            .unwrap();
        let skus: Vec<&str> = choices.iter().map(|p| p.sku.as_str()).collect();
        assert_eq!(
            skus,
            ["TEE-RED-M", "TEE-RED-L", "TEE-RED-XL"],
            "the dearer XL too"
        );

        // A replacement's line is priced at what was paid for it: only that price.
        let mut replacement = order.clone();
        replacement.replacement_for = Some(crate::order::returns::ReplacementOf {
            order_id: order.id.clone(),
            return_id: crate::ids::ReturnId::new(order.id.clone(), 1),
        });
        replacement.lines[0].unit_price =
            crate::money::Money::new(200, replacement.lines[0].unit_price.currency()).unwrap();
        let choices = exchange_choices(&store, &replacement, &replacement.lines[0])
            .await
            .unwrap();
        assert!(choices.is_empty(), "{choices:?}");

        let order = delivered(&store, json!([{"sku": "MUG", "quantity": 1}]), 1).await;
        let choices = exchange_choices(&store, &order, &order.lines[0])
            .await
            .unwrap();
        let skus: Vec<&str> = choices.iter().map(|p| p.sku.as_str()).collect();
        assert_eq!(skus, ["MUG"], "no hyphen: no variants but itself");
    }

    /// An approved return nothing arrives for: the scheduled sweep closes it once the policy's
    /// days have passed, and the units its exchange held are for sale again; a run before then,
    /// and a second run after, change nothing.
    #[tokio::test]
    async fn the_sweep_closes_a_return_that_never_arrives_and_frees_its_exchange() {
        use crate::app::sweep::{sweep, SweepPolicies};
        let store =
            InMemoryStore::with_products([product("A", 1000, 5), product("A-LARGE", 1000, 2)]);
        let policy = ReturnPolicy::default_policy();
        let order = delivered(&store, json!([{"sku": "A", "quantity": 3}]), 1).await;
        let requested = request_return(
            &store,
            &policy,
            &customer(),
            &order.id,
            &return_request(json!([
                {"sku": "A", "quantity": 2, "reason": "DOES_NOT_FIT", "exchangeSku": "A-LARGE"}
            ])),
            key("x"),
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(requested.rma.status, ReturnStatus::Approved);
        assert_eq!(stock(&store, "A-LARGE").await, (0, 2));
        // A second return waits for staff: the order is in the approval queue, not on the list
        // of returns on their way — its approved one still expires.
        let mut strict = ReturnPolicy::default_policy();
        strict.auto_approval.reasons.clear();
        let waiting = request_return(
            &store,
            &strict,
            &customer(),
            &order.id,
            &return_request(json!([{"sku": "A", "quantity": 1, "reason": "DOES_NOT_FIT"}])),
            key("y"),
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(waiting.rma.status, ReturnStatus::PendingApproval);
        let payment = crate::order::payments::PaymentPolicy::default();
        let shipping = crate::shipping::ShippingPolicy::default_policy();
        let locations = crate::location::Locations::default_locations();
        let policies = SweepPolicies {
            payment: &payment,
            returns: &policy,
            shipping: &shipping,
            locations: &locations,
            stuck_after: chrono::Duration::minutes(5),
            stop_by: None,
        };
        let early = sweep(
            &store,
            &policies,
            Utc::now() + chrono::Duration::days(29),
            100,
        )
        .await
        .unwrap();
        assert!(early.returns_expired.is_empty());
        let later = Utc::now() + chrono::Duration::days(31);
        let run = sweep(&store, &policies, later, 100).await.unwrap();
        assert_eq!(run.returns_expired, [order.id.clone()]);
        let stored = store.get(&order.id).await.unwrap().unwrap();
        assert_eq!(stored.returns[0].status, ReturnStatus::Expired);
        assert_eq!(stored.returns[1].status, ReturnStatus::PendingApproval);
        assert_eq!(stock(&store, "A-LARGE").await, (2, 0));
        let again = sweep(&store, &policies, later, 100).await.unwrap();
        assert!(again.returns_expired.is_empty());
        assert_eq!(
            store.get(&order.id).await.unwrap().unwrap().version,
            stored.version
        );
    }

    #[tokio::test]
    async fn an_exchange_reserves_on_approval_and_ships_on_receipt() {
        let store =
            InMemoryStore::with_products([product("A", 1000, 5), product("A-LARGE", 1000, 2)]);
        let mut policy = ReturnPolicy::default_policy();
        policy.auto_approval.exchanges = false;
        let order = delivered(&store, json!([{"sku": "A", "quantity": 2}]), 1).await;
        let requested = request_return(
            &store,
            &policy,
            &customer(),
            &order.id,
            &return_request(json!([
                {"sku": "A", "quantity": 2, "reason": "DOES_NOT_FIT", "exchangeSku": "A-LARGE"}
            ])),
            key("x"),
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(requested.rma.status, ReturnStatus::PendingApproval);
        assert_eq!(
            stock(&store, "A-LARGE").await,
            (2, 0),
            "nothing reserved before approval"
        );

        let id = requested.rma.return_id;
        let (approved, _) = decide_return(
            &store,
            &staff("oms:admin"),
            &id,
            true,
            None,
            None,
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(approved.status, ReturnStatus::Approved);
        assert_eq!(stock(&store, "A-LARGE").await, (0, 2));

        // One of the two units comes back: one replacement ships, the other is released.
        let (received, _) = receive_return(
            &store,
            &policy,
            &LocationDirectory::demo(),
            &staff(SCOPE_WAREHOUSE),
            &id,
            &receipt(json!([{"sku": "A", "quantity": 1, "disposition": "RESTOCK"}])),
            None,
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(stock(&store, "A-LARGE").await, (1, 1));
        let replacement_id = received.replacement_order_id.unwrap();
        let replacement = store.get(&replacement_id).await.unwrap().unwrap();
        assert_eq!(replacement.status, OrderStatus::Fulfilling);
        assert_eq!(
            (
                replacement.lines[0].sku.as_str(),
                replacement.lines[0].quantity.get()
            ),
            ("A-LARGE", 1)
        );
        assert_eq!(replacement.totals.total.minor_units(), 0);
        assert_eq!(received.receipt.unwrap().missing.get(&sku("A")), Some(&1));
        let saved = store.get(&order.id).await.unwrap().unwrap();
        assert!(saved.refunds.is_empty(), "an exchange is not refunded");

        // The customer calls the replacement off before it is packed: its unit goes back, and
        // the original order refunds the unit that came back — in the same write, once.
        let (directory, caller) = (LocationDirectory::demo(), customer());
        let call_off = || {
            cancel_order(
                &store,
                &directory,
                &caller,
                &replacement_id,
                "changed my mind".into(),
                None,
                Utc::now(),
            )
        };
        let cancelled = call_off().await.unwrap();
        assert_eq!(cancelled.status, OrderStatus::Cancelled);
        assert_eq!(stock(&store, "A-LARGE").await, (2, 0));
        let refunded = store.get(&order.id).await.unwrap().unwrap();
        assert_eq!(refunded.version, saved.version + 1);
        assert_eq!(refunded.refunds.len(), 1);
        let refund = &refunded.refunds[0];
        assert_eq!(refund.amount.minor_units(), 1000);
        assert_eq!(refund.return_id.as_ref(), Some(&id));
        assert_eq!(
            (refund.lines[0].sku.as_str(), refund.lines[0].quantity.get()),
            ("A", 1)
        );
        assert!(
            refund.awaiting_capture,
            "the capture asked as the order shipped is not confirmed yet"
        );
        // Asked again, the cancellation answers as it is and refunds nothing more.
        call_off().await.unwrap();
        assert_eq!(
            store.get(&order.id).await.unwrap().unwrap().refunds.len(),
            1
        );
    }

    /// A damaged unit exchanged for the same SKU: approval reserves a unit of it, and the receipt
    /// restocks the returned one and hands the reserved one to the replacement in one write,
    /// which a transaction can do only with the moves netted per SKU.
    #[tokio::test]
    async fn an_exchange_for_the_same_sku_nets_its_moves() {
        let store = InMemoryStore::with_products([product("A", 1000, 5)]);
        let policy = ReturnPolicy::default_policy();
        let order = delivered(&store, json!([{"sku": "A", "quantity": 2}]), 1).await;
        assert_eq!(stock(&store, "A").await, (3, 0));
        let requested = request_return(
            &store,
            &policy,
            &customer(),
            &order.id,
            &return_request(json!([
                {"sku": "A", "quantity": 2, "reason": "DAMAGED", "exchangeSku": "A"}
            ])),
            key("same"),
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(
            stock(&store, "A").await,
            (1, 2),
            "two replacements reserved"
        );
        let (received, _) = receive_return(
            &store,
            &policy,
            &LocationDirectory::demo(),
            &staff(SCOPE_WAREHOUSE),
            &requested.rma.return_id,
            &receipt(json!([
                {"sku": "A", "quantity": 1, "disposition": "RESTOCK"},
                {"sku": "A", "quantity": 1, "disposition": "DISCARD"}
            ])),
            None,
            Utc::now(),
        )
        .await
        .unwrap();
        // One unit back on the shelf; both replacements still reserved for the new order.
        assert_eq!(stock(&store, "A").await, (2, 2));
        let replacement = store
            .get(&received.replacement_order_id.unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(replacement.lines[0].quantity.get(), 2);
    }

    #[tokio::test]
    async fn an_exchange_without_stock_is_refused_on_approval() {
        let store =
            InMemoryStore::with_products([product("A", 1000, 5), product("A-LARGE", 1000, 0)]);
        let order = delivered(&store, json!([{"sku": "A", "quantity": 1}]), 1).await;
        let result = request_return(
            &store,
            &ReturnPolicy::default_policy(),
            &customer(),
            &order.id,
            &return_request(json!([
                {"sku": "A", "quantity": 1, "reason": "DOES_NOT_FIT", "exchangeSku": "A-LARGE"}
            ])),
            key("y"),
            Utc::now(),
        )
        .await;
        assert!(matches!(
            result,
            Err(ReturnsAppError::ExchangeUnavailable(_))
        ));
        assert!(store
            .get(&order.id)
            .await
            .unwrap()
            .unwrap()
            .returns
            .is_empty());
    }
}

//! The scheduled sweep: one mechanism for everything time alone decides.
//!
//! A schedule runs [`sweep`] every minute. It reads the orders by status and age from the status
//! index — never a TTL, whose deletions come late and take the item with them — and for each one
//! decides from the order itself, read fresh, with a write conditioned on its version, so a run
//! that races a queue consumer or a PSP event has one winner and a repeated run changes nothing:
//! - **expiry** of unpaid orders: `PENDING` or `RESERVED`, never authorized within the payment
//!   window, are cancelled as expired and their stock released ([`crate::app::payments`]);
//! - **stuck orders re-driven**: an order left `PENDING` for [`STUCK_AFTER_MINUTES`] (its
//!   `oms.order.placed` never reached the reservation, or was dead-lettered) is reserved here, as
//!   the reservation would have; a `RESERVED` order that is authorized but never reached the
//!   warehouse is handed to it — a pre-order on its release date too, the day's first run
//!   sending it. What the sweep cannot move is left for the next run and counted;
//! - **release dates moved**: a `RESERVED` order with a pre-ordered line whose SKU's release
//!   date the business has moved since (or stopped selling as a pre-order: released now)
//!   follows it, its customer told, before either pass decides anything else of it;
//! - **money to watch**: a capture the PSP has not confirmed within the policy's time, and an
//!   uncaptured authorization near the PSP's capture deadline, are put in front of staff;
//! - **returns that never arrive**: an approved return nothing reached the warehouse for within
//!   the return policy's `arrivalDays` is closed (`EXPIRED`) and the exchange it holds released
//!   ([`crate::app::returns::expire_arriving_return`]), from the warehouse's list of returns on
//!   their way, the longest-approved first.
//!
//! An order whose hold the PSP released while it was in the warehouse is back in `RESERVED`
//! (held for payment) since the release, so the expiry pass finds it when its window, counted
//! from the release, has passed.
//!
//! Each pass of a run looks at no more than its budget of orders and says whether it stopped
//! early. What a pass changed has left the list it reads; what it left unchanged (an order that
//! became paid for since it was listed, say) is listed again by the next run, which is why the
//! passes are budgeted apart. An order the sweep cannot handle is counted and logged, and the run
//! goes on.

use chrono::{DateTime, Duration, Utc};

use crate::app::fulfillment::{start_fulfillment, FulfillmentAppError, Releases, StartResult};
use crate::app::payments::{expire_one, flag_one, PaymentAppError};
use crate::app::reservation::{reserve_order, ReservationError, ReservationResult, Routing};
use crate::app::retry::{until_written, Attempt};
use crate::ids::OrderId;
use crate::location::Locations;
use crate::order::payments::PaymentPolicy;
use crate::order::returns::policy::ReturnPolicy;
use crate::order::{Order, OrderStatus};
use crate::ports::{InventoryStore, OrderStore, OrderTransactions, PaymentWatch, StoreError};
use crate::shipping::ShippingPolicy;

/// How long an order may sit `PENDING`, or `RESERVED` and paid for, before the sweep moves it
/// itself: the queue consumers take well under a second, and retry through their queues for a
/// few minutes before a message is dead-lettered.
pub const STUCK_AFTER_MINUTES: i64 = 5;

/// The rules one run applies.
#[derive(Debug, Clone, Copy)]
pub struct SweepPolicies<'a> {
    pub payment: &'a PaymentPolicy,
    /// How long an approved return may take to arrive.
    pub returns: &'a ReturnPolicy,
    pub shipping: &'a ShippingPolicy,
    /// Where stock is kept: a stuck reservation is planned again over them.
    pub locations: &'a Locations,
    /// How long before an order counts as stuck.
    pub stuck_after: Duration,
    /// When the run stops taking up more orders (the function's deadline less a margin): what
    /// is left is reported as `more` and waits for the next run. `None`: the budget alone.
    pub stop_by: Option<std::time::Instant>,
}

impl SweepPolicies<'_> {
    fn out_of_time(&self) -> bool {
        self.stop_by
            .is_some_and(|stop| std::time::Instant::now() >= stop)
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Orders looked at.
    pub examined: usize,
    /// Cancelled as expired, their stock released.
    pub expired: Vec<OrderId>,
    /// Stuck `PENDING`, reserved (or rejected for stock) by the sweep.
    pub reservations_redriven: Vec<OrderId>,
    /// Stuck `RESERVED` and paid for, handed to the warehouse by the sweep.
    pub fulfillments_redriven: Vec<OrderId>,
    /// Captures the PSP has not confirmed in time and authorizations near their capture
    /// deadline, put in front of staff.
    pub flagged: Vec<OrderId>,
    /// Orders whose approved return never arrived, closed and their exchange released.
    pub returns_expired: Vec<OrderId>,
    /// Pre-orders whose SKU's release date the business moved, now waiting for the new date
    /// (their customers told).
    pub releases_followed: Vec<OrderId>,
    /// Orders that changed under the sweep so often it left them for the next run.
    pub contended: Vec<OrderId>,
    /// Orders the sweep could not handle, and why (a store error, an item that does not read):
    /// each is logged and counted, and the run goes on with the others.
    pub failed: Vec<(OrderId, String)>,
    /// Whether a pass stopped at its budget with more to look at.
    pub more: bool,
    /// Where expiries made units available again (per SKU and location): given to the orders
    /// waiting for them once the passes are done, so an order the same run expires gets none.
    pub freed: Vec<(crate::ids::Sku, String)>,
    /// Where units were found available while orders waited for them (freed stock whose
    /// hand-over was lost to a timeout or a failed write): given to those orders.
    pub found_waiting: Vec<(crate::ids::Sku, String)>,
    /// Listings the sweep could not read (a store error, an item that does not read): each is
    /// logged and counted, and the run goes on with its other passes.
    pub listings_failed: Vec<String>,
}

/// The most pages of the approval queue one run reads for approved returns past their time.
const MAX_APPROVAL_QUEUE_PAGES: usize = 5;

/// The most waiting lines of listed orders one run looks at for stock left available (each
/// names a SKU, read once).
const MAX_WAITING: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the sweep did to one order.
enum Outcome {
    Changed,
    Unchanged,
    Contended,
}

/// The outcome of one job, or why the order could not be handled (the run records it and goes
/// on).
fn outcome_of<E: std::fmt::Display>(
    result: Result<bool, E>,
    contended: impl Fn(&E) -> bool,
) -> Result<Outcome, String> {
    match result {
        Ok(true) => Ok(Outcome::Changed),
        Ok(false) => Ok(Outcome::Unchanged),
        Err(e) if contended(&e) => Ok(Outcome::Contended),
        Err(e) => Err(e.to_string()),
    }
}

/// Which of the sweep's jobs a pass over one listing does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Expire,
    RedriveReservation,
    RedriveFulfillment,
    FlagPayment,
}

/// One run of the scheduled sweep, each of its passes looking at no more than `budget` orders
/// (so abandoned checkouts waiting to expire cannot starve the deadline watch), and none once
/// the run is out of time (`policies.stop_by`).
pub async fn sweep<S: OrderStore + InventoryStore + OrderTransactions>(
    store: &S,
    policies: &SweepPolicies<'_>,
    now: DateTime<Utc>,
    budget: usize,
) -> Result<SweepReport, SweepError> {
    let mut report = SweepReport::default();
    // The money the sweep watches first (a sparse list each, so cheap, and what a run cut short
    // must not miss): captures the PSP has not confirmed in time, then authorizations near the
    // PSP's capture deadline.
    let watches = [
        (
            PaymentWatch::CaptureRequested,
            now - policies.payment.capture_confirmation,
        ),
        (
            PaymentWatch::AwaitingCapture,
            now - (policies.payment.authorization_lifetime - policies.payment.deadline_margin),
        ),
    ];
    for (watch, before) in watches {
        let mut cursor = None;
        let mut examined = 0;
        'watch: loop {
            let page = match store
                .list_payment_watch(watch, Some(before), 100, cursor.as_deref())
                .await
            {
                Ok(page) => page,
                Err(error) => {
                    report.listings_failed.push(format!("{watch:?}: {error}"));
                    break 'watch;
                }
            };
            for order in page.items {
                if examined >= budget || policies.out_of_time() {
                    report.more = true;
                    break 'watch;
                }
                examined += 1;
                report.examined += 1;
                apply(store, policies, Job::FlagPayment, &order, now, &mut report).await;
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    expire_returns(store, policies, now, budget, &mut report).await;
    // Then the orders, expiry first: an unpaid order past its window is called off, not
    // re-driven.
    let expiry = now - policies.payment.authorization_window;
    let stuck = now - policies.stuck_after;
    let passes = [
        (Job::Expire, OrderStatus::Reserved, expiry),
        (Job::Expire, OrderStatus::Pending, expiry),
        (Job::RedriveReservation, OrderStatus::Pending, stuck),
        (Job::RedriveFulfillment, OrderStatus::Reserved, stuck),
    ];
    let mut freed_given = false;
    // Where paid orders wait for stock, and where it could come from: stock left available for
    // them is handed over at the end.
    let mut waiting: Vec<Waiting> = Vec::new();
    // The release dates of the pre-ordered SKUs met so far, each read once a run.
    let mut releases = Releases::default();
    for (job, status, before) in passes {
        // What the expiries freed goes to the orders waiting for it before a stuck order is
        // reserved again: those waiting were first.
        if job != Job::Expire && !freed_given && !policies.out_of_time() {
            give_freed(store, policies, &mut report, now).await;
            freed_given = true;
        }
        let mut cursor = None;
        let mut examined = 0;
        'pass: loop {
            let page = match store
                .list_by_status(status, before, 100, cursor.as_deref())
                .await
            {
                Ok(page) => page,
                Err(error) => {
                    // The other passes still run (the deadline watch above all).
                    report
                        .listings_failed
                        .push(format!("{} {job:?}: {error}", status.as_str()));
                    break 'pass;
                }
            };
            for mut order in page.items {
                // Out of time: every order, looked at or passed over, waits for the next run.
                if policies.out_of_time() {
                    report.more = true;
                    break 'pass;
                }
                // A pre-order follows its SKU's release date as the business moves it, before
                // anything decides whether it leaves today (in whichever pass over `RESERVED`
                // orders lists it first: the expiry's, listing those reserved for the payment
                // window, or the re-drive's, for the time an order takes to count as stuck).
                // One about to expire unpaid (in this pass, or one that outran it) is not
                // written first.
                let expiring = order
                    .payment_due_by(policies.payment)
                    .is_some_and(|due| due <= now);
                if status == OrderStatus::Reserved && !expiring {
                    match follow_releases(store, &mut releases, &order, now).await {
                        Ok(Some(moved)) => {
                            report.releases_followed.push(order.id.clone());
                            let today = crate::replenishment::day_of(now);
                            // Released now: it goes to the warehouse in this run if nothing
                            // else holds it (whichever pass listed it).
                            if order.held_for_release(today).is_some()
                                && moved.held_for_release(today).is_none()
                            {
                                match start_fulfillment(store, policies.shipping, &moved.id, now)
                                    .await
                                {
                                    Ok(StartResult::Started) => {
                                        report.fulfillments_redriven.push(moved.id.clone());
                                        continue;
                                    }
                                    Ok(_) => {}
                                    Err(error) => {
                                        unmoved(&mut report, &moved.id, error);
                                        continue;
                                    }
                                }
                            }
                            order = moved;
                        }
                        Ok(None) => {}
                        Err(error) => {
                            unmoved(&mut report, &order.id, error);
                            continue;
                        }
                    }
                }
                if job == Job::RedriveFulfillment
                    && order.awaiting_edit().is_none()
                    && waiting.len() < MAX_WAITING
                {
                    waiting.extend(Waiting::of(&order));
                }
                // Reserved and waiting for its money is not stuck (the expiry takes it if the
                // money never comes), nor is one waiting for stock (the receipt that fills it
                // starts it) or a pre-order before its release date (a run on the day starts
                // it): passed over without using the budget.
                if job == Job::RedriveFulfillment
                    && (!order.payment_status().allows_fulfillment()
                        || order.waits_for_stock()
                        || order.awaiting_edit().is_some()
                        || order
                            .held_for_release(crate::replenishment::day_of(now))
                            .is_some())
                {
                    continue;
                }
                // Only what is due expires: a paid order waiting for its stock, an exchange's
                // replacement waiting for its difference, or a window reopened by a released
                // hold is passed over without using the budget (paid orders waiting for weeks
                // never keep an unpaid one from expiring).
                if job == Job::Expire
                    && !order
                        .payment_due_by(policies.payment)
                        .is_some_and(|due| due <= now)
                {
                    continue;
                }
                if examined >= budget || policies.out_of_time() {
                    report.more = true;
                    break 'pass;
                }
                examined += 1;
                report.examined += 1;
                apply(store, policies, job, &order, now, &mut report).await;
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    // Out of time, the stock waits for the next run (which finds it available where orders
    // wait): a hand-over cut off by the function's deadline would be lost the same way.
    if !policies.out_of_time() {
        if !freed_given {
            give_freed(store, policies, &mut report, now).await;
        }
        give_found_waiting(store, policies, &waiting, &mut report, now).await;
    }
    Ok(report)
}

/// Closes the approved returns nothing arrived for in time, from the list of returns on their
/// way (the longest-approved first, so the pass ends at the first order with none due) and the
/// approval queue (an order with a return waiting for staff is listed there, its approved ones
/// too), at most `budget` orders; what their exchanges held goes to waiting orders with the
/// expiries' stock.
async fn expire_returns<S: OrderStore + OrderTransactions>(
    store: &S,
    policies: &SweepPolicies<'_>,
    now: DateTime<Utc>,
    budget: usize,
    report: &mut SweepReport,
) {
    let due = |order: &Order| {
        order.returns.iter().any(|r| {
            r.status == crate::order::returns::ReturnStatus::Approved
                && policies.returns.arrival_due(r.approved_at()) <= now
        })
    };
    // The list of returns on their way, sorted by approval, ends at the first order not due;
    // an order with another return waiting for staff is in the approval queue instead (a short
    // list, read whole within the budget).
    let mut examined = 0;
    for arriving in [true, false] {
        let mut cursor = None;
        let mut pages = 0;
        'pass: loop {
            // The approval queue is read a bounded number of pages a run: what lies beyond
            // waits for staff's decisions to shorten it.
            if !arriving && pages == MAX_APPROVAL_QUEUE_PAGES {
                break 'pass;
            }
            pages += 1;
            let listed = if arriving {
                store.list_arriving_returns(100, cursor.as_deref()).await
            } else {
                store.list_pending_returns(100, cursor.as_deref()).await
            };
            let page = match listed {
                Ok(page) => page,
                Err(error) => {
                    report
                        .listings_failed
                        .push(format!("returns (on their way: {arriving}): {error}"));
                    break 'pass;
                }
            };
            for order in page.items {
                if !due(&order) {
                    if arriving {
                        break 'pass;
                    }
                    continue;
                }
                if examined >= budget || policies.out_of_time() {
                    report.more = true;
                    return;
                }
                examined += 1;
                report.examined += 1;
                match crate::app::returns::expire_arriving_return(
                    store,
                    policies.returns,
                    &order.id,
                    now,
                )
                .await
                {
                    Ok(Some(freed)) => {
                        report.freed.extend(freed);
                        report.returns_expired.push(order.id.clone());
                    }
                    Ok(None) => {}
                    Err(crate::app::returns::ReturnsAppError::Contended) => {
                        report.contended.push(order.id.clone())
                    }
                    Err(error) => report.failed.push((order.id.clone(), error.to_string())),
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
}

/// Records an order the sweep could not move now: contended (left for the next run) or failed.
fn unmoved(report: &mut SweepReport, id: &OrderId, error: FulfillmentAppError) {
    match error {
        FulfillmentAppError::Contended => report.contended.push(id.clone()),
        error => report.failed.push((id.clone(), error.to_string())),
    }
}

/// Moves the pre-ordered lines of a `RESERVED` order to the release dates their SKUs have now,
/// one write per SKU moved (the order read fresh, on its version), each its own event told to
/// the customer. `releases`, read once a run, only finds the orders to look at: a write is
/// decided on the products read again, so a date moved during the run (and followed by a start
/// meanwhile) is never written back. The order as it stands after, if any line moved.
async fn follow_releases<S: OrderStore + InventoryStore>(
    store: &S,
    releases: &mut Releases,
    listed: &Order,
    now: DateTime<Utc>,
) -> Result<Option<Order>, FulfillmentAppError> {
    if listed.status != OrderStatus::Reserved || listed.release_date().is_none() {
        return Ok(None);
    }
    releases.read_for(store, listed).await?;
    let releases = &*releases;
    let mut moved = None;
    // One line a write, at most as many writes as it has lines.
    for _ in &listed.lines {
        let id = &listed.id;
        let written = until_written::<_, FulfillmentAppError, _>(|| async move {
            let Some(order) = store.get(id).await? else {
                return Ok(Attempt::Done(None));
            };
            if releases.follow(&order, now).is_none() {
                return Ok(Attempt::Done(None));
            }
            let mut fresh = Releases::default();
            fresh.read_for(store, &order).await?;
            let Some(next) = fresh.follow(&order, now) else {
                return Ok(Attempt::Done(None));
            };
            Attempt::of_write(store.save(&next, order.version).await, Some(next.clone()))
        })
        .await?;
        match written {
            Some(next) => moved = Some(next),
            None => break,
        }
    }
    Ok(moved)
}

/// Units of a paid `RESERVED` order waiting for stock: its SKU, where they wait, and where the
/// order's parcels may leave from otherwise (by its method, to its destination).
struct Waiting {
    sku: crate::ids::Sku,
    at: String,
    method: crate::shipping::ShippingMethod,
    country: crate::contact::CountryCode,
}

impl Waiting {
    fn of(order: &Order) -> Vec<Waiting> {
        order
            .lines
            .iter()
            .flat_map(|l| l.backorders.iter().map(move |b| (l, b)))
            .map(|(line, waits)| Waiting {
                sku: line.sku.clone(),
                at: waits.location.clone(),
                method: order.shipping.method,
                country: order.shipping.address.country().clone(),
            })
            .collect()
    }
}

/// Does `job` to the listed `order` and records what came of it; an order the sweep cannot
/// handle is recorded as failed, and the run goes on.
async fn apply<S: OrderStore + InventoryStore + OrderTransactions>(
    store: &S,
    policies: &SweepPolicies<'_>,
    job: Job,
    order: &Order,
    now: DateTime<Utc>,
    report: &mut SweepReport,
) {
    if let Err(error) = try_apply(store, policies, job, order, now, report).await {
        report.failed.push((order.id.clone(), error));
    }
}

/// Does `job` to the listed `order` (read fresh by the listing; each job reads it again before
/// its conditional write).
async fn try_apply<S: OrderStore + InventoryStore + OrderTransactions>(
    store: &S,
    policies: &SweepPolicies<'_>,
    job: Job,
    order: &Order,
    now: DateTime<Utc>,
    report: &mut SweepReport,
) -> Result<(), String> {
    let id = &order.id;
    let (outcome, changed) = match job {
        Job::Expire => {
            let expired =
                expire_one(store, policies.payment, id, now)
                    .await
                    .map(|freed| match freed {
                        Some(freed) => {
                            // What it held goes to orders waiting for it, once the passes are done.
                            report.freed.extend(freed);
                            true
                        }
                        None => false,
                    });
            let outcome = outcome_of(expired, |e| matches!(e, PaymentAppError::Contended))?;
            (outcome, &mut report.expired)
        }
        Job::FlagPayment => (
            outcome_of(flag_one(store, policies.payment, id, now).await, |e| {
                matches!(e, PaymentAppError::Contended)
            })?,
            &mut report.flagged,
        ),
        Job::RedriveReservation => {
            let routing = Routing {
                locations: policies.locations,
                shipping: policies.shipping,
            };
            let result = reserve_order(store, store, routing, id, now)
                .await
                .map(|r| {
                    matches!(
                        r,
                        ReservationResult::Reserved | ReservationResult::Rejected(_)
                    )
                });
            (
                outcome_of(result, |e| matches!(e, ReservationError::Contended))?,
                &mut report.reservations_redriven,
            )
        }
        Job::RedriveFulfillment => {
            let result = start_fulfillment(store, policies.shipping, id, now)
                .await
                .map(|r| r == StartResult::Started);
            (
                outcome_of(result, |e| matches!(e, FulfillmentAppError::Contended))?,
                &mut report.fulfillments_redriven,
            )
        }
    };
    match outcome {
        Outcome::Changed => changed.push(id.clone()),
        Outcome::Unchanged => {}
        Outcome::Contended => report.contended.push(id.clone()),
    }
    Ok(())
}

/// Gives units found available, where the listed orders wait for them or can be sent them
/// from, to the orders waiting (oldest first, as any arrival): the catch-up for a hand-over of
/// freed stock that was lost (the freeing write stands without it). Only a location that can
/// serve one of those orders is tried, so stock no waiting order can use costs no order reads.
/// Each SKU is read once; what cannot be read waits for the next run.
async fn give_found_waiting<S: OrderStore + InventoryStore>(
    store: &S,
    policies: &SweepPolicies<'_>,
    waiting: &[Waiting],
    report: &mut SweepReport,
    now: DateTime<Utc>,
) {
    let mut found: Vec<(crate::ids::Sku, String)> = Vec::new();
    let mut read: Vec<&crate::ids::Sku> = Vec::new();
    for sku in waiting.iter().map(|w| &w.sku) {
        if read.contains(&sku) {
            continue;
        }
        read.push(sku);
        let product = match store.product(sku).await {
            Ok(Some(product)) if !product.backorders.waiting.is_empty() => product,
            Ok(_) => continue,
            Err(error) => {
                tracing::warn!(%sku, %error, "the sweep could not read a waited-for SKU");
                continue;
            }
        };
        for (location, level) in product.stock.locations() {
            let serves = waiting.iter().filter(|w| &w.sku == sku).any(|w| {
                w.at == location || policies.locations.sends(location, w.method, &w.country)
            });
            if level.available() > 0 && serves {
                found.push((sku.clone(), location.to_owned()));
            }
        }
    }
    crate::app::inventory::fill_freed(store, policies.locations, &found, now).await;
    report.found_waiting = found;
}

/// Gives what the expiries freed so far to the orders waiting for it, once.
async fn give_freed<S: OrderStore + InventoryStore>(
    store: &S,
    policies: &SweepPolicies<'_>,
    report: &mut SweepReport,
    now: DateTime<Utc>,
) {
    let mut freed = std::mem::take(&mut report.freed);
    freed.sort();
    freed.dedup();
    crate::app::inventory::fill_freed(store, policies.locations, &freed, now).await;
    report.freed = freed;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::payments::record_psp_event;
    use crate::app::payments::tests::{authorization, reserved};
    use crate::memory::InMemoryStore;
    use crate::order::payments::{PaymentStatus, PspRequestKind};
    use crate::order::tests::{placed, product};
    use crate::ports::InventoryStore;
    use serde_json::json;

    fn policies(payment: &PaymentPolicy) -> SweepPolicies<'_> {
        static SHIPPING: std::sync::OnceLock<ShippingPolicy> = std::sync::OnceLock::new();
        static LOCATIONS: std::sync::OnceLock<Locations> = std::sync::OnceLock::new();
        static RETURNS: std::sync::OnceLock<ReturnPolicy> = std::sync::OnceLock::new();
        SweepPolicies {
            payment,
            returns: RETURNS.get_or_init(ReturnPolicy::default_policy),
            shipping: SHIPPING.get_or_init(ShippingPolicy::default_policy),
            locations: LOCATIONS.get_or_init(Locations::default_locations),
            stuck_after: Duration::minutes(STUCK_AFTER_MINUTES),
            stop_by: None,
        }
    }

    /// The policies of a run already out of time.
    fn out_of_time(payment: &PaymentPolicy) -> SweepPolicies<'_> {
        SweepPolicies {
            stop_by: Some(std::time::Instant::now()),
            ..policies(payment)
        }
    }

    /// A store whose SKU `A` has `on_hand` units and may backorder up to `limit`.
    fn backordering(on_hand: u32, limit: u32) -> InMemoryStore {
        let mut a = product("A", 1000, on_hand);
        a.backorders.policy = crate::backorder::SellingPolicy::Backorder { limit };
        InMemoryStore::with_products([a])
    }

    /// The PSP's authorization of `order`, recorded as of its placing.
    async fn authorize_when_placed(store: &InMemoryStore, policy: &PaymentPolicy, order: &Order) {
        let event = authorization(order, "e1");
        record_psp_event(store, policy, &order.id, &event, order.created_at)
            .await
            .unwrap();
    }

    async fn available(store: &InMemoryStore) -> (u32, u32) {
        let p = store
            .product(&crate::ids::Sku::parse("A").unwrap())
            .await
            .unwrap()
            .unwrap();
        (p.stock.available(), p.stock.reserved())
    }

    #[tokio::test]
    async fn the_sweep_expires_what_was_never_paid_and_nothing_else() {
        let store = InMemoryStore::with_products([product("A", 1000, 10)]);
        let policy = PaymentPolicy::default();
        let unpaid = reserved(&store, 2).await;
        let paid = reserved(&store, 3).await;
        authorize_when_placed(&store, &policy, &paid).await;
        assert_eq!(available(&store).await, (5, 5));

        let early = sweep(
            &store,
            &policies(&policy),
            unpaid.created_at + Duration::minutes(10),
            100,
        )
        .await
        .unwrap();
        assert!(early.expired.is_empty());
        let later = unpaid.created_at + Duration::minutes(31);
        let report = sweep(&store, &policies(&policy), later, 100).await.unwrap();
        assert_eq!(report.expired, [unpaid.id.clone()]);
        assert_eq!(available(&store).await, (7, 3), "its two units are back");
        let expired = store.get(&unpaid.id).await.unwrap().unwrap();
        assert_eq!(expired.status, OrderStatus::Cancelled);
        assert_eq!(expired.payment_status(), PaymentStatus::Expired);
        assert_eq!(
            store.get(&paid.id).await.unwrap().unwrap().status,
            OrderStatus::Fulfilling,
            "paid for and never handed to the warehouse: the sweep hands it over"
        );
        let again = sweep(&store, &policies(&policy), later, 100).await.unwrap();
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

    /// What an expiry frees goes to the paid order waiting for it, once the passes are done.
    #[tokio::test]
    async fn what_an_expiry_frees_goes_to_the_order_waiting_for_it() {
        let store = backordering(2, 5);
        let policy = PaymentPolicy::default();
        let unpaid = reserved(&store, 2).await;
        let waiting = reserved(&store, 1).await;
        authorize_when_placed(&store, &policy, &waiting).await;
        assert_eq!(
            store.get(&waiting.id).await.unwrap().unwrap().hold(),
            Some("BACKORDERED")
        );
        // Paid for and never reserved (its placed event was lost): the sweep reserves it
        // again, but only after the order waiting got what the expiry freed.
        let stuck = placed(json!([{"sku": "A", "quantity": 2}]), &store.catalog());
        let stuck = stuck.authorized_for_test(stuck.created_at);
        store.insert_order(stuck.clone());
        let later = unpaid.created_at + Duration::minutes(31);
        let report = sweep(&store, &policies(&policy), later, 100).await.unwrap();
        assert_eq!(report.expired, [unpaid.id.clone()]);
        assert_eq!(report.reservations_redriven, [stuck.id.clone()]);
        assert_eq!(report.freed.len(), 1);
        let filled = store.get(&waiting.id).await.unwrap().unwrap();
        assert_eq!(filled.backordered(), 0, "the freed unit went to it");
        let stuck = store.get(&stuck.id).await.unwrap().unwrap();
        assert_eq!(stuck.backordered(), 1, "the later order waits for one");
        assert_eq!(available(&store).await, (0, 2));
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
        let first = sweep(&store, &policies(&policy), later, 2).await.unwrap();
        assert_eq!((first.expired.len(), first.more), (2, true));
        let second = sweep(&store, &policies(&policy), later, 2).await.unwrap();
        assert_eq!((second.expired.len(), second.more), (1, false));
        assert_eq!(available(&store).await, (10, 0));
    }

    /// Paid orders waiting for stock stay `RESERVED` for weeks: they never use the expiry
    /// pass's budget, so the unpaid order behind them expires.
    #[tokio::test]
    async fn paid_orders_waiting_for_stock_do_not_keep_an_unpaid_one_from_expiring() {
        let store = backordering(0, 10);
        let policy = PaymentPolicy::default();
        for _ in 0..2 {
            let waiting = reserved(&store, 1).await;
            authorize_when_placed(&store, &policy, &waiting).await;
        }
        let unpaid = reserved(&store, 1).await;
        let later = unpaid.created_at + Duration::minutes(40);
        let report = sweep(&store, &policies(&policy), later, 2).await.unwrap();
        assert_eq!(report.expired, [unpaid.id.clone()]);
    }

    /// The units an expiry freed reach the waiting orders even when the run that expired it
    /// stopped before giving them (a timeout, a failed write): the next run finds them
    /// available while orders wait for them.
    #[tokio::test]
    async fn stock_available_while_orders_wait_for_it_is_given_to_them_by_the_next_run() {
        let store = backordering(2, 5);
        let policy = PaymentPolicy::default();
        let unpaid = reserved(&store, 2).await;
        let waiting = reserved(&store, 1).await;
        authorize_when_placed(&store, &policy, &waiting).await;
        let later = unpaid.created_at + Duration::minutes(31);
        // Expired, its freed units never handed on.
        crate::app::payments::expire_one(&store, &policy, &unpaid.id, later)
            .await
            .unwrap();
        assert_eq!(available(&store).await, (2, 0));
        // A run out of time hands nothing over (it would be cut off mid-write).
        let out_of_time = out_of_time(&policy);
        let cut_short = sweep(&store, &out_of_time, later, 100).await.unwrap();
        assert!(cut_short.found_waiting.is_empty());
        assert_eq!(available(&store).await, (2, 0));
        let report = sweep(&store, &policies(&policy), later, 100).await.unwrap();
        assert!(report.expired.is_empty());
        assert_eq!(
            report.found_waiting,
            [(crate::ids::Sku::parse("A").unwrap(), "BER-1".to_owned())]
        );
        let filled = store.get(&waiting.id).await.unwrap().unwrap();
        assert_eq!(filled.backordered(), 0, "the available unit went to it");
        assert_eq!(available(&store).await, (1, 1));
    }

    /// A run out of time takes up no more orders: they are left for the next run.
    #[tokio::test]
    async fn a_run_out_of_time_leaves_the_rest_to_the_next() {
        let store = InMemoryStore::with_products([product("A", 1000, 10)]);
        let policy = PaymentPolicy::default();
        let unpaid = reserved(&store, 1).await;
        let later = unpaid.created_at + Duration::hours(1);
        let out_of_time = out_of_time(&policy);
        let cut_short = sweep(&store, &out_of_time, later, 100).await.unwrap();
        assert_eq!((cut_short.examined, cut_short.more), (0, true));
        let next = sweep(&store, &policies(&policy), later, 100).await.unwrap();
        assert_eq!(next.expired, [unpaid.id.clone()]);
    }

    #[tokio::test]
    async fn authorizations_near_their_deadline_are_flagged() {
        let store = InMemoryStore::with_products([product("A", 1000, 10)]);
        let policy = PaymentPolicy::default();
        let order = reserved(&store, 1).await;
        authorize_when_placed(&store, &policy, &order).await;
        let report = sweep(
            &store,
            &policies(&policy),
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

    /// A pre-order whose stock came before its release date: reserved and paid, it is not
    /// sent to the warehouse (however often fulfillment is asked), held as awaiting its
    /// release; runs before the day pass it over, and the day's first run sends it.
    #[tokio::test]
    async fn a_pre_order_paid_and_in_stock_leaves_on_its_release_date_not_before() {
        let placed_at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let release_on = placed_at.date_naive() + Duration::days(3);
        let mut a = product("A", 1000, 5);
        a.backorders.policy = crate::backorder::SellingPolicy::PreOrder {
            release_on,
            cap: 10,
        };
        let store = InMemoryStore::with_products([a]);
        let policy = PaymentPolicy::default();
        let order = reserved(&store, 2).await;
        assert_eq!(order.lines[0].release_on, Some(release_on));
        assert_eq!(order.backordered(), 0, "in stock already");
        authorize_when_placed(&store, &policy, &order).await;
        let order = store.get(&order.id).await.unwrap().unwrap();
        assert_eq!(order.status, OrderStatus::Reserved, "paid, and held");
        assert_eq!(order.hold(), Some("AWAITING_RELEASE"));
        let asked = crate::app::fulfillment::start_fulfillment(
            &store,
            &ShippingPolicy::default_policy(),
            &order.id,
            placed_at + Duration::hours(1),
        )
        .await
        .unwrap();
        assert_eq!(
            asked,
            crate::app::fulfillment::StartResult::AwaitingRelease(release_on)
        );
        // The day before: passed over, nothing examined.
        let eve = release_on.and_hms_opt(23, 59, 0).unwrap().and_utc() - Duration::days(1);
        let report = sweep(&store, &policies(&policy), eve, 100).await.unwrap();
        assert!(report.fulfillments_redriven.is_empty(), "{report:?}");
        assert_eq!(report.examined, 0, "passed over without using the budget");
        // The day itself: sent.
        let day = release_on.and_hms_opt(0, 1, 0).unwrap().and_utc();
        let report = sweep(&store, &policies(&policy), day, 100).await.unwrap();
        assert_eq!(report.fulfillments_redriven, [order.id.clone()]);
        let sent = store.get(&order.id).await.unwrap().unwrap();
        assert_eq!(sent.status, OrderStatus::Fulfilling);
        assert_eq!(sent.hold(), None);
        // Ordered on or after the release date: an ordinary order.
        let mut later = placed(json!([{"sku": "A", "quantity": 1}]), &store.catalog());
        later.created_at = day;
        crate::app::reservation::insert_reserved(&store, &later).await;
        let later = store.get(&later.id).await.unwrap().unwrap();
        assert_eq!(later.lines[0].release_on, None);
    }

    /// The business moves a pre-order's release date: the sweep moves the orders reserved with
    /// the old one (each once, its customer told by a revised promise), so none leaves on the
    /// old date when the new one is later, and they leave on a sooner one.
    #[tokio::test]
    async fn a_pre_order_follows_its_release_date_as_the_business_moves_it() {
        let placed_at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let first = placed_at.date_naive() + Duration::days(3);
        let later = first + Duration::days(4);
        let pre_order = |release_on| crate::backorder::SellingPolicy::PreOrder {
            release_on,
            cap: 10,
        };
        let mut a = product("A", 1000, 5);
        a.backorders.policy = pre_order(first);
        let store = InMemoryStore::with_products([a]);
        let policy = PaymentPolicy::default();
        let order = reserved(&store, 2).await;
        authorize_when_placed(&store, &policy, &order).await;
        let paid = store.get(&order.id).await.unwrap().unwrap();
        let move_release = |policy| {
            let store = &store;
            async move {
                let mut product = store
                    .product(&crate::ids::Sku::parse("A").unwrap())
                    .await
                    .unwrap()
                    .unwrap();
                let version = product.version;
                product.backorders.policy = policy;
                product.version += 1;
                store
                    .save_product(&product, Some(version), None)
                    .await
                    .unwrap();
            }
        };
        move_release(pre_order(later)).await;
        // The run after the move: the order waits for the new date, told once.
        let run_at = placed_at + Duration::hours(1);
        let report = sweep(&store, &policies(&policy), run_at, 100)
            .await
            .unwrap();
        assert_eq!(report.releases_followed, [order.id.clone()], "{report:?}");
        let moved = store.get(&order.id).await.unwrap().unwrap();
        assert_eq!(moved.lines[0].release_on, Some(later));
        assert_eq!(moved.hold(), Some("AWAITING_RELEASE"));
        let event = crate::events::order_event(Some(&paid), Some(&moved));
        assert_eq!(
            event.map(|e| e.event_type),
            Some(crate::events::EventType::ReleaseMoved)
        );
        assert_eq!(
            crate::events::recorded_agrees_with_legacy(Some(&paid), &moved),
            Ok(true)
        );
        let again = sweep(&store, &policies(&policy), run_at, 100)
            .await
            .unwrap();
        assert!(again.releases_followed.is_empty(), "moved once: {again:?}");
        // The old date comes: it does not leave.
        let old_day = first.and_hms_opt(0, 1, 0).unwrap().and_utc();
        let report = sweep(&store, &policies(&policy), old_day, 100)
            .await
            .unwrap();
        assert!(report.fulfillments_redriven.is_empty(), "{report:?}");
        assert_eq!(
            store.get(&order.id).await.unwrap().unwrap().status,
            OrderStatus::Reserved
        );
        // Brought forward to today: released now, it leaves in the same run.
        move_release(crate::backorder::SellingPolicy::Deny).await;
        let report = sweep(&store, &policies(&policy), old_day, 100)
            .await
            .unwrap();
        assert_eq!(report.releases_followed, [order.id.clone()]);
        assert_eq!(report.fulfillments_redriven, [order.id.clone()]);
        let sent = store.get(&order.id).await.unwrap().unwrap();
        assert_eq!(sent.status, OrderStatus::Fulfilling);
        assert_eq!(
            sent.lines[0].release_on,
            Some(first),
            "released on the day it was"
        );
    }

    /// Whatever asks to start a pre-order (its payment, its stock arriving) follows its SKU's
    /// release date as it is now first, even before any sweep ran: a date put off is the one
    /// it waits for, and one brought to today lets it leave.
    #[tokio::test]
    async fn a_start_follows_the_release_date_as_it_is_now() {
        let placed_at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let first = placed_at.date_naive() + Duration::days(3);
        let later = first + Duration::days(4);
        let mut a = product("A", 1000, 5);
        a.backorders.policy = crate::backorder::SellingPolicy::PreOrder {
            release_on: first,
            cap: 10,
        };
        let store = InMemoryStore::with_products([a]);
        let policy = PaymentPolicy::default();
        let order = reserved(&store, 2).await;
        authorize_when_placed(&store, &policy, &order).await;
        let set_policy = |policy| {
            let store = &store;
            async move {
                let sku = crate::ids::Sku::parse("A").unwrap();
                let mut product = store.product(&sku).await.unwrap().unwrap();
                let version = product.version;
                product.backorders.policy = policy;
                product.version += 1;
                store
                    .save_product(&product, Some(version), None)
                    .await
                    .unwrap();
            }
        };
        set_policy(crate::backorder::SellingPolicy::PreOrder {
            release_on: later,
            cap: 10,
        })
        .await;
        let eve = first.and_hms_opt(8, 0, 0).unwrap().and_utc() - Duration::days(1);
        let start = |at| {
            crate::app::fulfillment::start_fulfillment(
                &store,
                policies(&policy).shipping,
                &order.id,
                at,
            )
        };
        assert_eq!(
            start(eve).await.unwrap(),
            StartResult::AwaitingRelease(later)
        );
        let held = store.get(&order.id).await.unwrap().unwrap();
        assert_eq!(held.lines[0].release_on, Some(later));
        assert_eq!(
            held.last_change.map(|c| c.event),
            Some(crate::order::history::OrderEvent::ReleaseMoved {
                sku: crate::ids::Sku::parse("A").unwrap()
            })
        );
        set_policy(crate::backorder::SellingPolicy::Deny).await;
        assert_eq!(start(eve).await.unwrap(), StartResult::Started);
    }

    #[tokio::test]
    async fn stuck_orders_are_moved_on_and_those_waiting_for_money_are_not() {
        let store = InMemoryStore::with_products([product("A", 1000, 10)]);
        let policy = PaymentPolicy::default();
        // Placed, paid for, and its placed event never reached the reservation.
        let pending = placed(json!([{"sku": "A", "quantity": 2}]), &store.catalog());
        let pending = pending.authorized_for_test(pending.created_at);
        store.insert_order(pending.clone());
        // Reserved and paid for, and the warehouse never heard of it.
        let paid = reserved(&store, 1).await;
        authorize_when_placed(&store, &policy, &paid).await;
        // Reserved and not paid for: waiting, not stuck.
        let unpaid = reserved(&store, 1).await;
        let later = pending.created_at + Duration::minutes(STUCK_AFTER_MINUTES + 1);
        let report = sweep(&store, &policies(&policy), later, 100).await.unwrap();
        assert_eq!(report.reservations_redriven, [pending.id.clone()]);
        assert_eq!(report.fulfillments_redriven, [paid.id.clone()]);
        assert!(report.expired.is_empty());
        let status = |id: &OrderId| {
            let store = &store;
            let id = id.clone();
            async move { store.get(&id).await.unwrap().unwrap().status }
        };
        assert_eq!(status(&pending.id).await, OrderStatus::Reserved);
        assert_eq!(status(&paid.id).await, OrderStatus::Fulfilling);
        assert_eq!(status(&unpaid.id).await, OrderStatus::Reserved);
        assert_eq!(available(&store).await, (6, 4));
        let again = sweep(&store, &policies(&policy), later, 100).await.unwrap();
        assert!(
            again.reservations_redriven.is_empty() && again.fulfillments_redriven.is_empty(),
            "a second run moves nothing twice: {again:?}"
        );
    }
}

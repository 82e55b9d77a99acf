//! Calling an order off before it is packed.
//!
//! ```text
//! PENDING | RESERVED | FULFILLING (awaiting pick or picked) ──► CANCELLED
//! ```
//! A cancellation releases what was reserved in the same transaction ([`OrderChange`]) and asks
//! the payment service provider to give the money back: a void of an authorization, a refund of
//! what was captured ([`crate::order::payments`]). Once packed the parcel is about to leave; once shipped
//! the way back is a return.
//!
//! Some units of some lines may be called off the same way ([`Order::cancel_units`]): those
//! not yet packed. Their reservation is released in the same write, the lines and totals
//! shrink (the shipping charge re-quoted for what still ships, never above what was charged),
//! and the money follows: what was taken for them is refunded; what is only held is not taken
//! — the capture asks for the smaller total and the PSP releases the rest of the hold with it.
//! Each such change is recorded ([`UnitCancellation`]) with the totals before and after, under
//! the caller's `Idempotency-Key`. Cancelling every unit left cancels the order as a whole.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::Sku;
use crate::money::Money;
use crate::order::commands::UnitCancelRequest;
use crate::order::fulfillment::{FulfillmentStatus, FulfillmentStep};
use crate::order::history::OrderEvent;
use crate::order::payments::CaptureMode;
use crate::order::refunds::{Refund, RefundLine, RefundReason};
use crate::order::{Order, OrderChange, OrderLine, OrderStatus, Totals};
use crate::quantity::Quantity;
use crate::stock::{StockMove, StockMovement};
use crate::validation::ValidationErrors;

/// The most unit cancellations one order records: what the order item holds is bounded.
pub const MAX_UNIT_CANCELLATIONS: usize = 20;

/// Some units of some lines called off before they were packed, and what it did to the money.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitCancellation {
    /// `<order id>-CANCEL-<n>`.
    pub id: String,
    /// The units called off, each at the price paid.
    pub lines: Vec<CancelledLine>,
    pub reason: String,
    /// `customer` or `admin`.
    pub by: String,
    pub at: DateTime<Utc>,
    /// The order's totals before and after: the difference is what the customer no longer owes.
    pub totals_before: Totals,
    pub totals_after: Totals,
    /// The refund of what had been taken for them (none when the money was only held: the
    /// capture takes the smaller total).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    /// The caller's `Idempotency-Key` and the digest of its body: the same request again
    /// answers this cancellation, another body under the same key is refused.
    pub key: String,
    pub fingerprint: String,
}

/// Units of one line called off, at the price paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelledLine {
    pub sku: Sku,
    pub name: String,
    pub quantity: Quantity,
    pub amount: Money,
}

impl UnitCancellation {
    /// What the customer no longer owes.
    pub fn difference(&self) -> i64 {
        self.totals_before.total.minor_units() - self.totals_after.total.minor_units()
    }
}

/// Why an order was called off, and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cancellation {
    pub reason: String,
    /// `customer` or `admin`.
    pub by: String,
    pub at: DateTime<Utc>,
    /// Called off by the system because it was never paid for within the payment window.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expired: bool,
    /// The `Idempotency-Key` of the unit cancellation that called off the last units, and the
    /// digest of its body, so its retry answers the cancelled order (and another body under
    /// the key is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// A cancellation the order's state does not allow. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    #[error(
        "the order has shipped; return it instead (POST /orders/{{id}}/returns once delivered)"
    )]
    Shipped,
    #[error("the parcel is packed and about to ship; it can no longer be cancelled")]
    Packed,
    #[error("the order is {0} and cannot be cancelled")]
    Final(&'static str),
    /// A line names what the order does not hold, or more units than can still be called off.
    #[error("{0}")]
    Units(ValidationErrors),
    #[error(
        "the order ships the exchange of a return: it is cancelled whole (the return's order \
         then refunds the goods that came back), not in part"
    )]
    Replacement,
    #[error(
        "the order has recorded {MAX_UNIT_CANCELLATIONS} unit cancellations, the most it keeps"
    )]
    TooManyChanges,
    #[error("an edit of the order waits for its payment: pay it, or let it expire, first")]
    EditAwaitingPayment,
}

/// Units of one SKU called off from one place: a shipment (by number) or, before the order
/// reached the warehouse, the reservation at a location (`None` before it was reserved).
struct Taken {
    sku: Sku,
    shipment: Option<u32>,
    location: Option<String>,
    units: u32,
    /// Units backordered (waiting for stock at `location`), not reserved.
    backordered: bool,
}

/// Where units of a line can be called off from: a shipment (by number), the location that
/// holds or awaits them, how many, and whether they are backordered.
type Place = (Option<u32>, Option<String>, u32, bool);

impl Order {
    /// Calls the order off before it is packed, releasing what it reserved, and asks for a void
    /// of what is authorized or a refund of what was paid.
    pub fn cancel(
        &self,
        reason: String,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<OrderChange, CancelError> {
        let releases = match self.status {
            OrderStatus::Pending => false,
            OrderStatus::Reserved => true,
            OrderStatus::Fulfilling => {
                // Every parcel must still be before packing.
                let unpacked = self.shipments.iter().all(|f| {
                    matches!(
                        f.status,
                        FulfillmentStatus::AwaitingPick | FulfillmentStatus::Picked
                    )
                });
                if !unpacked || self.shipments.is_empty() {
                    return Err(CancelError::Packed);
                }
                true
            }
            OrderStatus::PartiallyShipped
            | OrderStatus::Shipped
            | OrderStatus::PartiallyDelivered
            | OrderStatus::Delivered => return Err(CancelError::Shipped),
            status @ (OrderStatus::Rejected | OrderStatus::Cancelled) => {
                return Err(CancelError::Final(status.as_str()))
            }
        };
        let next = self
            .transition(
                OrderStatus::Cancelled,
                &[
                    OrderStatus::Pending,
                    OrderStatus::Reserved,
                    OrderStatus::Fulfilling,
                ],
                now,
                Some(format!("cancelled by {by}: {reason}")),
                |next| {
                    next.cancellation = Some(Cancellation {
                        reason,
                        by: by.to_owned(),
                        at: now,
                        expired: false,
                        key: None,
                        fingerprint: None,
                    });
                    next.close_waiting_edit(now);
                    // Called off, so the capture mode does not matter: what is held is voided,
                    // what was taken is refunded.
                    next.request_what_is_due(CaptureMode::OnShipment, now);
                    OrderEvent::Cancelled
                },
            )
            .map_err(|e| CancelError::Final(e.from.as_str()))?;
        // Everything it held before the change, the units an edit waiting for its payment
        // added among them (the called-off order no longer lists those).
        Ok(if releases {
            OrderChange {
                moves: self.stock_moves(StockMovement::Release),
                ..OrderChange::order_only(next)
            }
        } else {
            OrderChange::order_only(next)
        })
    }
}

impl Order {
    /// Where the units of `sku` that can still be called off are, in the order they are taken:
    /// before the warehouse has the order, its backordered units first (they are furthest
    /// off), then its reservation's locations (the last first; no location before it is
    /// reserved); then its shipments not yet packed, those not yet picked and the last made
    /// first.
    fn cancellable(&self, sku: &Sku) -> Vec<Place> {
        let mut places = Vec::new();
        if self.shipments.is_empty() {
            for line in self.lines.iter().filter(|l| &l.sku == sku) {
                for at in &line.backorders {
                    places.push((None, Some(at.location.clone()), at.quantity.get(), true));
                }
                let reserved = line.quantity.get() - line.backordered();
                if line.allocations.is_empty() && reserved > 0 {
                    places.push((None, None, reserved, false));
                }
                for at in line.allocations.iter().rev() {
                    places.push((None, Some(at.location.clone()), at.quantity.get(), false));
                }
            }
            return places;
        }
        // Units still waiting for stock, of an order whose other units are in the warehouses
        // (it ships what is there), are the furthest off: first.
        for line in self.lines.iter().filter(|l| &l.sku == sku) {
            for at in &line.backorders {
                places.push((None, Some(at.location.clone()), at.quantity.get(), true));
            }
        }
        let mut open: Vec<_> = self
            .shipments
            .iter()
            .filter(|s| {
                matches!(
                    s.status,
                    FulfillmentStatus::AwaitingPick | FulfillmentStatus::Picked
                )
            })
            .collect();
        open.sort_by_key(|s| {
            (
                s.status == FulfillmentStatus::Picked,
                std::cmp::Reverse(s.number),
            )
        });
        for shipment in open {
            for line in shipment.lines.iter().filter(|l| &l.sku == sku) {
                places.push((
                    Some(shipment.number),
                    Some(shipment.warehouse.clone()),
                    line.quantity.get(),
                    false,
                ));
            }
        }
        places
    }

    /// How many units of each line can still be called off (none once the order is past
    /// packing, final, ships an exchange, or an edit waits for its payment): what a form offers.
    pub fn cancellable_units(&self) -> Vec<(&Sku, u32)> {
        let open = (matches!(
            self.status,
            OrderStatus::Pending
                | OrderStatus::Reserved
                | OrderStatus::Fulfilling
                | OrderStatus::PartiallyShipped
        ) || self.waits_after_shipping())
            && self.replacement_for.is_none()
            && self.awaiting_edit().is_none()
            && self.unit_cancellations.len() < MAX_UNIT_CANCELLATIONS;
        self.lines
            .iter()
            .map(|l| {
                let units = if open {
                    self.cancellable(&l.sku).iter().map(|p| p.2).sum()
                } else {
                    0
                };
                (&l.sku, units)
            })
            .collect()
    }

    /// Whether units of it still wait for stock after some of it left (it ships what is
    /// there): those can be called off until they arrive.
    fn waits_after_shipping(&self) -> bool {
        matches!(
            self.status,
            OrderStatus::PartiallyShipped | OrderStatus::PartiallyDelivered
        ) && self.backordered() > 0
    }

    /// The unit cancellation made under `key`, if one was.
    pub fn unit_cancellation_for_key(&self, key: &str) -> Option<&UnitCancellation> {
        self.unit_cancellations.iter().find(|c| c.key == key)
    }

    /// Calls off some units of some lines before they are packed: their reservation is
    /// released in the same write (at the location, and from the shipment, that held them),
    /// the lines and totals shrink — the shipping charge re-quoted by `requote` (a parcel's
    /// price from a location, or the default one, for its weight) for what still ships, never
    /// above what was charged — and the money follows: what was taken, or asked to be taken,
    /// for them is refunded; what is only held is not taken (the capture asks for the smaller
    /// total and the PSP releases the rest with it). Every shipment that loses units records a
    /// step, so a warehouse screen that read it before is refused its next step and reads it
    /// again. Calling off every unit left cancels the order as [`Order::cancel`] does.
    pub fn cancel_units(
        &self,
        request: &UnitCancelRequest,
        key: &str,
        by: &str,
        requote: impl Fn(Option<&str>, u64) -> Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<OrderChange, CancelError> {
        match self.status {
            OrderStatus::Pending
            | OrderStatus::Reserved
            | OrderStatus::Fulfilling
            | OrderStatus::PartiallyShipped => {}
            _ if self.waits_after_shipping() => {}
            OrderStatus::Shipped | OrderStatus::PartiallyDelivered | OrderStatus::Delivered => {
                return Err(CancelError::Shipped)
            }
            status @ (OrderStatus::Rejected | OrderStatus::Cancelled) => {
                return Err(CancelError::Final(status.as_str()))
            }
        }
        if self.replacement_for.is_some() {
            return Err(CancelError::Replacement);
        }
        if self.awaiting_edit().is_some() {
            return Err(CancelError::EditAwaitingPayment);
        }
        if self.unit_cancellations.len() >= MAX_UNIT_CANCELLATIONS {
            return Err(CancelError::TooManyChanges);
        }
        let mut errors = ValidationErrors::default();
        let mut taken: Vec<Taken> = Vec::new();
        for (index, wanted) in request.lines.iter().enumerate() {
            let ordered: u32 = self
                .lines
                .iter()
                .filter(|l| l.sku == wanted.sku)
                .map(|l| l.quantity.get())
                .sum();
            if ordered == 0 {
                errors.add(
                    format!("lines[{index}].sku"),
                    format!("the order has no '{}'", wanted.sku),
                );
                continue;
            }
            let places = self.cancellable(&wanted.sku);
            let open: u32 = places.iter().map(|p| p.2).sum();
            let mut n = wanted.quantity.get();
            if n > open {
                let message = if open == ordered {
                    format!("the order has {ordered} of '{}'", wanted.sku)
                } else {
                    format!(
                        "{open} of the order's {ordered} '{}' can still be cancelled: the others are packed or shipped",
                        wanted.sku
                    )
                };
                errors.add(format!("lines[{index}].quantity"), message);
                continue;
            }
            for (shipment, location, units, backordered) in places {
                let take = n.min(units);
                if take == 0 {
                    break;
                }
                taken.push(Taken {
                    sku: wanted.sku.clone(),
                    shipment,
                    location,
                    units: take,
                    backordered,
                });
                n -= take;
            }
        }
        if !errors.is_empty() {
            return Err(CancelError::Units(errors));
        }
        let ordered: u32 = self.lines.iter().map(|l| l.quantity.get()).sum();
        let cancelling: u32 = taken.iter().map(|t| t.units).sum();
        if cancelling >= ordered {
            // Nothing would be left: the order is called off as a whole.
            let mut change = self.cancel(request.reason.clone(), by, now)?;
            if let Some(cancellation) = change.order.cancellation.as_mut() {
                cancellation.key = Some(key.to_owned());
                cancellation.fingerprint = Some(request.fingerprint());
            }
            return Ok(change);
        }

        // The lines, their allocations and the shipments, less what is called off.
        let mut lines = self.lines.clone();
        let mut shipments = self.shipments.clone();
        let mut moves = Vec::new();
        let mut left: Vec<u32> = lines.iter().map(|l| l.quantity.get()).collect();
        for t in &taken {
            let units = Quantity::new(t.units).expect("only units taken are listed");
            if let Some(i) = lines.iter().position(|l| l.sku == t.sku) {
                left[i] -= t.units;
                match (&t.location, t.backordered) {
                    (Some(location), true) => {
                        lines[i].backorders = shrink(&lines[i].backorders, location, t.units);
                        if lines[i].backorders.is_empty() {
                            lines[i].promised_on = None;
                        }
                    }
                    (Some(location), false) => {
                        lines[i].allocations = shrink(&lines[i].allocations, location, t.units);
                    }
                    (None, _) => {}
                }
            }
            if let Some(number) = t.shipment {
                if let Some(shipment) = shipments.iter_mut().find(|s| s.number == number) {
                    shipment.lines = shrink_shipment(&shipment.lines, &t.sku, t.units);
                }
            }
            // Units held for the order are released where they are held (a PENDING order holds
            // none yet: its reservation reads the smaller lines).
            if let (Some(location), true) = (&t.location, self.status != OrderStatus::Pending) {
                moves.push(StockMove {
                    sku: t.sku.clone(),
                    location: location.clone(),
                    quantity: units,
                    movement: if t.backordered {
                        StockMovement::ReleaseBackorder
                    } else {
                        StockMovement::Release
                    },
                });
            }
        }
        let currency = self.totals.total.currency();
        let money = |minor: i64| Money::new(minor, currency).unwrap_or(Money::zero(currency));
        let mut cancelled: Vec<CancelledLine> = Vec::new();
        for (line, left) in lines.iter_mut().zip(&left) {
            let gone = line.quantity.get() - left;
            if gone == 0 {
                continue;
            }
            cancelled.push(CancelledLine {
                sku: line.sku.clone(),
                name: line.name.clone(),
                quantity: Quantity::new(gone).expect("more than none"),
                amount: money(line.unit_price.minor_units() * i64::from(gone)),
            });
            if let Ok(quantity) = Quantity::new(*left) {
                line.quantity = quantity;
                line.line_total = money(line.unit_price.minor_units() * i64::from(*left));
            }
        }
        let lines: Vec<_> = lines
            .into_iter()
            .zip(&left)
            .filter(|(_, left)| **left > 0)
            .map(|(line, _)| line)
            .collect();
        let units_note: Vec<String> = cancelled
            .iter()
            .map(|c| format!("{} × {}", c.quantity.get(), c.sku))
            .collect();
        let note = format!(
            "{} cancelled by {by}: {}",
            units_note.join(", "),
            request.reason
        );
        for shipment in shipments.iter_mut().filter(|s| {
            taken
                .iter()
                .any(|t| t.shipment == Some(s.number) && !s.lines.is_empty())
        }) {
            shipment.steps.push(FulfillmentStep {
                status: shipment.status,
                at: now,
                by: by.to_owned(),
                note: Some(note.clone()),
            });
        }
        shipments.retain(|s| !s.lines.is_empty());

        // The totals: the lines' prices, and shipping re-quoted for what still ships (each
        // location's units as one parcel), never more than was charged.
        let before = self.totals;
        let subtotal: i64 = lines.iter().map(|l| l.line_total.minor_units()).sum();
        let requoted: Option<i64> = parcel_weights(&lines)
            .iter()
            .map(|(location, grams)| requote(*location, *grams))
            .sum();
        let shipping = match requoted {
            Some(price) if price < before.shipping.minor_units() => money(price),
            _ => before.shipping,
        };
        let after = Totals {
            subtotal: money(subtotal),
            shipping,
            total: money(subtotal + shipping.minor_units()),
        };

        let refund = self.refund_of_difference(
            before,
            after,
            RefundReason::UnitsCancelled,
            cancelled
                .iter()
                .map(|c| RefundLine {
                    sku: c.sku.clone(),
                    quantity: c.quantity,
                    amount: c.amount,
                })
                .collect(),
            now,
        );
        let record = UnitCancellation {
            id: format!("{}-CANCEL-{}", self.id, self.unit_cancellations.len() + 1),
            lines: cancelled,
            reason: request.reason.clone(),
            by: by.to_owned(),
            at: now,
            totals_before: before,
            totals_after: after,
            refund_id: refund.as_ref().map(|r| r.refund_id.clone()),
            key: key.to_owned(),
            fingerprint: request.fingerprint(),
        };
        let next = self.record(now, Some(note), |next| {
            next.lines = lines;
            next.shipments = shipments;
            if matches!(
                next.status,
                OrderStatus::Fulfilling
                    | OrderStatus::PartiallyShipped
                    | OrderStatus::PartiallyDelivered
            ) {
                // Every parcel called off while units still wait for stock: the order waits as
                // it did before any parcel was made (held for its stock; the arrivals make
                // its parcels), and nothing has left to be paid for.
                next.status = if next.shipments.is_empty() {
                    OrderStatus::Reserved
                } else {
                    next.status_of_shipments()
                };
            }
            next.totals = after;
            // The charge the order ships for now: an edit re-quotes from it.
            next.shipping.price = after.shipping;
            next.refunds.extend(refund);
            next.unit_cancellations.push(record);
            next.request_what_is_due(CaptureMode::OnShipment, now);
            OrderEvent::UnitsCancelled
        });
        Ok(OrderChange {
            order: next,
            moves,
            created: None,
            linked: None,
            stock_history: Vec::new(),
        })
    }

    /// Whether `amount` is what the order cost before a unit cancellation: a hold made for it
    /// then is the order's own.
    pub(crate) fn cost_before_a_cancellation(&self, amount: Money) -> bool {
        self.unit_cancellations
            .iter()
            .any(|c| c.totals_before.total == amount)
    }
}

impl Order {
    /// The refund of what was taken, or asked to be taken, beyond what the order costs after a
    /// change from `before` to `after` (a smaller order, a cheaper shipping): exactly the
    /// difference, or what of it was taken; it waits for the capture if that is not confirmed
    /// yet. `None` when nothing taken exceeds the new total (what is only held is not taken:
    /// the capture asks for the smaller total and the PSP releases the rest).
    pub(crate) fn refund_of_difference(
        &self,
        before: Totals,
        after: Totals,
        reason: RefundReason,
        lines: Vec<RefundLine>,
        now: DateTime<Utc>,
    ) -> Option<Refund> {
        let currency = before.total.currency();
        let money = |minor: i64| Money::new(minor, currency).unwrap_or(Money::zero(currency));
        let asked: i64 = self
            .payment
            .unanswered_captures()
            .iter()
            .map(|r| r.amount.minor_units())
            .sum();
        let taken_minor: i64 = self.payment.captured_minor();
        let (refunded, _) = self.refunded();
        let difference = before.total.minor_units() - after.total.minor_units();
        // What the business keeps afterwards: what the order then costs, less what returned
        // goods were refunded for (a return does not lower the total; it may have given back
        // the whole shipping charge already) — never below nothing.
        let returned: i64 = self
            .refunds
            .iter()
            .filter(|r| r.retried_as.is_none() && r.reason == RefundReason::Return)
            .map(|r| r.amount.minor_units())
            .sum();
        let kept = refunded + (after.total.minor_units() - returned).max(0);
        let owed_back = difference.min(taken_minor + asked - kept);
        (owed_back > 0).then(|| Refund {
            refund_id: self.next_refund_id(),
            reason,
            return_id: None,
            lines,
            // Of it, the shipping charge given back — never more than what of the charge a
            // return has not given back already (a seller's-fault return may have given back
            // all of it; differences given back before lowered the charge itself).
            shipping: money(
                (before.shipping.minor_units() - after.shipping.minor_units())
                    .min(owed_back)
                    .min(
                        before.shipping.minor_units()
                            - self
                                .refunds
                                .iter()
                                .filter(|r| {
                                    r.retried_as.is_none() && !r.reason.gives_back_a_difference()
                                })
                                .map(|r| r.shipping.minor_units())
                                .sum::<i64>(),
                    )
                    .max(0),
            ),
            amount: money(owed_back),
            requested_at: now,
            retried_as: None,
            awaiting_capture: taken_minor - kept < owed_back,
            from_payment: None,
        })
    }
}

/// What the order's lines weigh per location they leave from (their allocations and
/// backorders; `None` for lines not yet reserved anywhere): the parcels shipping is quoted for.
pub(crate) fn parcel_weights(lines: &[OrderLine]) -> Vec<(Option<&str>, u64)> {
    let mut parcels: Vec<(Option<&str>, u64)> = Vec::new();
    for line in lines {
        let weigh = |units: u32| u64::from(line.unit_weight_grams) * u64::from(units);
        let mut at: Vec<(Option<&str>, u64)> = line
            .allocations
            .iter()
            .chain(&line.backorders)
            .map(|a| (Some(a.location.as_str()), weigh(a.quantity.get())))
            .collect();
        if at.is_empty() {
            at.push((None, weigh(line.quantity.get())));
        }
        for (location, grams) in at {
            match parcels.iter_mut().find(|(l, _)| *l == location) {
                Some(parcel) => parcel.1 += grams,
                None => parcels.push((location, grams)),
            }
        }
    }
    parcels
}

/// `allocations` with `units` fewer at `location` (an entry left with none goes).
pub(crate) fn shrink(
    allocations: &[crate::order::LocationUnits],
    location: &str,
    units: u32,
) -> Vec<crate::order::LocationUnits> {
    let mut units = units;
    allocations
        .iter()
        .filter_map(|at| {
            if at.location != location || units == 0 {
                return Some(at.clone());
            }
            let take = units.min(at.quantity.get());
            units -= take;
            Quantity::new(at.quantity.get() - take)
                .ok()
                .map(|quantity| crate::order::LocationUnits {
                    location: at.location.clone(),
                    quantity,
                })
        })
        .collect()
}

/// A shipment's `lines` with `units` fewer of `sku` (a line left with none goes).
pub(crate) fn shrink_shipment(
    lines: &[crate::order::fulfillment::ShipmentLine],
    sku: &Sku,
    units: u32,
) -> Vec<crate::order::fulfillment::ShipmentLine> {
    let mut units = units;
    lines
        .iter()
        .filter_map(|line| {
            if &line.sku != sku || units == 0 {
                return Some(line.clone());
            }
            let take = units.min(line.quantity.get());
            units -= take;
            Quantity::new(line.quantity.get() - take)
                .ok()
                .map(|quantity| crate::order::fulfillment::ShipmentLine {
                    sku: line.sku.clone(),
                    quantity,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::commands::RequestedLine;
    use crate::order::payments::{
        PaymentEvent, PaymentEventKind, PaymentPolicy, PaymentStatus, PaymentUpdate, PspRequestKind,
    };
    use crate::order::tests::{placed, product};
    use crate::routing::{Plan, PlannedShipment};
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_100, 0).unwrap()
    }

    /// The rate table's standard domestic parcel: 4.90 and 0.50 per started kilogram.
    fn rate(_: Option<&str>, grams: u64) -> Option<i64> {
        Some(490 + 50 * grams.div_ceil(1000) as i64)
    }

    fn units(lines: &[(&str, u32)]) -> UnitCancelRequest {
        UnitCancelRequest {
            lines: lines
                .iter()
                .map(|(sku, n)| RequestedLine {
                    sku: Sku::parse(*sku).unwrap(),
                    quantity: Quantity::new(*n).unwrap(),
                })
                .collect(),
            reason: "changed my mind".into(),
        }
    }

    /// 2 × A at 10.00 and 3 × B at 5.00 (400 g each: 2 kg, shipping 5.90), reserved at BER-1.
    fn reserved() -> Order {
        placed(
            json!([{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 3}]),
            &[product("A", 1000, 5), product("B", 500, 5)],
        )
        .reserve_all_at("BER-1", now())
        .unwrap()
    }

    fn psp(order: &Order, id: &str, kind: PaymentEventKind, amount: i64) -> Order {
        let event = PaymentEvent {
            event_id: id.into(),
            kind,
            amount: Money::new(amount, order.totals.total.currency()).unwrap(),
            occurred_at: now(),
            psp_reference: Some("pi_1".into()),
            refund_id: None,
            request_id: None,
            reason: None,
        };
        match order
            .record_payment(&event, &PaymentPolicy::default(), now())
            .unwrap()
        {
            PaymentUpdate::Recorded(next) => *next,
            PaymentUpdate::Duplicate => panic!("a duplicate"),
        }
    }

    fn refund_settled(order: &Order, refund_id: &str, amount: i64) -> Order {
        let event = PaymentEvent {
            event_id: format!("settled-{refund_id}"),
            kind: PaymentEventKind::RefundSucceeded,
            amount: Money::new(amount, order.totals.total.currency()).unwrap(),
            occurred_at: now(),
            psp_reference: Some("pi_1".into()),
            refund_id: Some(refund_id.into()),
            request_id: None,
            reason: None,
        };
        match order
            .record_payment(&event, &PaymentPolicy::default(), now())
            .unwrap()
        {
            PaymentUpdate::Recorded(next) => *next,
            PaymentUpdate::Duplicate => panic!("a duplicate"),
        }
    }

    #[test]
    fn units_of_an_authorized_order_are_released_and_only_the_smaller_total_is_taken() {
        let order = psp(
            &reserved(),
            "auth",
            PaymentEventKind::AuthorizationSucceeded,
            4090,
        );
        assert_eq!(order.totals.total.minor_units(), 2000 + 1500 + 590);
        let change = order
            .cancel_units(&units(&[("B", 3)]), "k1", "customer", rate, now())
            .unwrap();
        assert_eq!(change.moves.len(), 1);
        assert_eq!(change.moves[0].sku.as_str(), "B");
        assert_eq!(change.moves[0].location, "BER-1");
        assert_eq!(change.moves[0].quantity.get(), 3);
        assert_eq!(change.moves[0].movement, StockMovement::Release);
        let next = change.order;
        assert_eq!(next.status, OrderStatus::Reserved);
        assert_eq!(next.lines.len(), 1, "a line with no units left goes");
        assert_eq!(next.lines[0].allocations[0].quantity.get(), 2);
        // 2 × 400 g: one started kilogram, 5.40 instead of 5.90.
        assert_eq!(next.totals.shipping.minor_units(), 540);
        assert_eq!(next.totals.total.minor_units(), 2000 + 540);
        let record = &next.unit_cancellations[0];
        assert_eq!(record.difference(), 4090 - 2540);
        assert_eq!(record.lines[0].amount.minor_units(), 1500);
        assert_eq!(
            record.refund_id, None,
            "nothing was taken: nothing to refund"
        );
        assert!(next.refunds.is_empty());
        assert_eq!(
            next.last_change.as_ref().unwrap().event,
            OrderEvent::UnitsCancelled
        );
        assert_eq!(next.payment_status(), PaymentStatus::Authorized);

        // It ships: the capture asks for the smaller total, the last of its payment.
        let shipped = next
            .start_fulfillment("BER-1", now())
            .unwrap()
            .pick(1, "p", now())
            .unwrap()
            .pack(1, crate::fixtures::parcel(), "p", now())
            .unwrap()
            .ship(
                1,
                crate::fixtures::tracking(),
                next.shipping.estimate,
                "p",
                now(),
            )
            .unwrap();
        let capture = shipped
            .payment
            .requests
            .iter()
            .find(|r| r.kind == PspRequestKind::Capture)
            .unwrap();
        assert_eq!(capture.amount.minor_units(), 2540);
        assert!(!capture.more_follow);
        let paid = psp(&shipped, "cap", PaymentEventKind::CaptureSucceeded, 2540);
        assert_eq!(
            paid.payment_status(),
            PaymentStatus::Paid,
            "the rest of the hold was released with the last capture"
        );
        assert_eq!(paid.payment_attention(), None);
    }

    #[test]
    fn units_of_a_paid_order_are_refunded_exactly_and_a_later_cancellation_refunds_the_rest() {
        let order = psp(&reserved(), "cap", PaymentEventKind::CaptureSucceeded, 4090);
        assert_eq!(order.payment_status(), PaymentStatus::Paid);
        let next = order
            .cancel_units(&units(&[("A", 1)]), "k1", "admin", rate, now())
            .unwrap()
            .order;
        // 4 × 400 g is still 2 kg: the shipping charge stays.
        assert_eq!(next.totals.total.minor_units(), 1000 + 1500 + 590);
        let refund = &next.refunds[0];
        assert_eq!(refund.amount.minor_units(), 1000);
        assert_eq!(refund.shipping.minor_units(), 0);
        assert!(!refund.awaiting_capture);
        assert_eq!(
            next.unit_cancellations[0].refund_id.as_deref(),
            Some(refund.refund_id.as_str())
        );
        let refunded = refund_settled(&next, &refund.refund_id.clone(), 1000);
        assert_eq!(refunded.payment_status(), PaymentStatus::PartiallyRefunded);
        // A second cancellation of units: its own refund, exactly its share — the units, and
        // the shipping of 2 kg down to 1 kg.
        let again = refunded
            .cancel_units(&units(&[("B", 2)]), "k2", "admin", rate, now())
            .unwrap()
            .order;
        assert_eq!(again.refunds.len(), 2);
        assert_eq!(again.refunds[1].amount.minor_units(), 1000 + 50);
        assert_eq!(again.refunds[1].shipping.minor_units(), 50);
        // Then the whole order: the rest of what was taken, and no more.
        let cancelled = again.cancel("gone".into(), "admin", now()).unwrap().order;
        let refunded_total: i64 = cancelled
            .refunds
            .iter()
            .map(|r| r.amount.minor_units())
            .sum();
        assert_eq!(refunded_total, 4090, "exactly what was taken");
        assert_eq!(
            cancelled.refunds[2].amount.minor_units(),
            again.totals.total.minor_units()
        );
    }

    #[test]
    fn a_return_after_units_were_refunded_gives_back_the_rest_of_what_was_paid() {
        use crate::ids::IdempotencyKey;
        use crate::order::fulfillment::{CarrierEventKind, CarrierUpdate};
        use crate::order::returns::policy::ReturnPolicy;
        use crate::request::returns::{ReceiptRequest, ReturnRequest};
        let paid = psp(&reserved(), "cap", PaymentEventKind::CaptureSucceeded, 4090);
        let smaller = paid
            .cancel_units(&units(&[("B", 2)]), "k1", "customer", rate, now())
            .unwrap()
            .order;
        assert_eq!(smaller.refunds[0].amount.minor_units(), 1000);
        assert_eq!(smaller.refunds[0].reason, RefundReason::UnitsCancelled);
        // The refund is paid out before the parcel leaves: partly refunded, still paid for
        // what ships, so the warehouse may work on it.
        let smaller = refund_settled(&smaller, &smaller.refunds[0].refund_id.clone(), 1000);
        assert_eq!(smaller.payment_status(), PaymentStatus::PartiallyRefunded);
        let shipped = smaller
            .start_fulfillment("BER-1", now())
            .unwrap()
            .pick(1, "p", now())
            .unwrap()
            .pack(1, crate::fixtures::parcel(), "p", now())
            .unwrap()
            .ship(
                1,
                crate::fixtures::tracking(),
                smaller.shipping.estimate,
                "p",
                now(),
            )
            .unwrap();
        assert!(
            shipped.payment.requests.is_empty(),
            "taken already: nothing more to capture"
        );
        let CarrierUpdate::Applied(delivered) = shipped
            .carrier_event(1, "c1", CarrierEventKind::Delivered, None, now(), now())
            .unwrap()
        else {
            panic!("delivered")
        };
        // Everything left comes back: its price, out of what is left of what was paid.
        let lines = json!({"lines": [
            {"sku": "A", "quantity": 2, "reason": "NO_LONGER_NEEDED"},
            {"sku": "B", "quantity": 1, "reason": "NO_LONGER_NEEDED"}
        ]});
        let later = now() + chrono::Duration::days(1);
        let requested = delivered
            .request_return(
                &ReturnRequest::parse(&lines).unwrap(),
                IdempotencyKey::parse("r1").unwrap(),
                &[],
                &ReturnPolicy::default_policy(),
                later,
            )
            .unwrap()
            .order;
        let rma = requested.returns[0].return_id.clone();
        let received = requested
            .receive_return(
                &rma,
                &ReceiptRequest::parse(&json!({"lines": [
                    {"sku": "A", "quantity": 2, "disposition": "RESTOCK"},
                    {"sku": "B", "quantity": 1, "disposition": "RESTOCK"}
                ]}))
                .unwrap(),
                "dock",
                &ReturnPolicy::default_policy(),
                &crate::shipping::ShippingPolicy::default_policy(),
                later,
            )
            .unwrap()
            .order;
        let refunded: i64 = received
            .refunds
            .iter()
            .map(|r| r.amount.minor_units())
            .sum();
        assert_eq!(received.refunds[1].lines.len(), 2);
        assert!(
            received.refunds[1].amount.minor_units() >= 2000 + 500,
            "the returned items in full: {:?}",
            received.refunds[1]
        );
        assert!(refunded <= 4090, "never more than was taken: {refunded}");
    }

    #[test]
    fn a_failed_last_capture_of_a_split_order_releases_nothing() {
        let order = placed(
            json!([{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}]),
            &[product("A", 1000, 5), product("B", 1000, 5)],
        );
        let shipment = |location: &str, sku: &str| PlannedShipment {
            location: location.into(),
            lines: vec![(Sku::parse(sku).unwrap(), 1)],
            weight_grams: 0,
            cost: 0,
        };
        let plan = Plan {
            shipments: vec![shipment("BER-1", "A"), shipment("AMS-1", "B")],
        };
        let total = order.totals.total.minor_units();
        let held = psp(
            &order.reserve(&plan, now()).unwrap(),
            "auth",
            PaymentEventKind::AuthorizationSucceeded,
            total,
        );
        let ship = |o: &Order, n: u32| {
            o.pick(n, "p", now())
                .unwrap()
                .pack(n, crate::fixtures::parcel(), "p", now())
                .unwrap()
                .ship(
                    n,
                    crate::order::fulfillment::Tracking {
                        tracking_number: format!("JJD{n}"),
                        ..crate::fixtures::tracking()
                    },
                    o.shipping.estimate,
                    "p",
                    now(),
                )
                .unwrap()
        };
        let first = ship(&held.start_fulfillment("BER-1", now()).unwrap(), 1);
        let share = first.payment.requests[0].amount.minor_units();
        let taken = psp(&first, "cap1", PaymentEventKind::CaptureSucceeded, share);
        let both = ship(&taken, 2);
        let last = both.payment.requests[1].amount.minor_units();
        let failed = psp(&both, "cap2", PaymentEventKind::CaptureFailed, last);
        assert!(
            !failed
                .payment
                .requests
                .iter()
                .any(|r| r.kind == PspRequestKind::Void),
            "the money the second parcel owes stays held"
        );
    }

    #[test]
    fn a_capture_asked_but_unconfirmed_refunds_once_it_is() {
        let policy = PaymentPolicy {
            capture: crate::order::payments::CaptureMode::Immediately,
            ..PaymentPolicy::default()
        };
        let event = PaymentEvent {
            event_id: "auth".into(),
            kind: PaymentEventKind::AuthorizationSucceeded,
            amount: reserved().totals.total,
            occurred_at: now(),
            psp_reference: Some("pi_1".into()),
            refund_id: None,
            request_id: None,
            reason: None,
        };
        let PaymentUpdate::Recorded(order) =
            reserved().record_payment(&event, &policy, now()).unwrap()
        else {
            panic!("recorded")
        };
        assert_eq!(order.payment.requests.len(), 1, "the capture is asked");
        let next = order
            .cancel_units(&units(&[("B", 1)]), "k1", "customer", rate, now())
            .unwrap()
            .order;
        assert_eq!(next.refunds[0].amount.minor_units(), 500);
        assert!(
            next.refunds[0].awaiting_capture,
            "the money it gives back is not taken yet"
        );
    }

    #[test]
    fn only_units_not_yet_packed_are_called_off_and_every_bad_line_is_named() {
        let order = reserved().authorized_for_test(now());
        let Err(CancelError::Units(errors)) =
            order.cancel_units(&units(&[("A", 3), ("Z", 1)]), "k1", "customer", rate, now())
        else {
            panic!("refused")
        };
        let fields: Vec<_> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["lines[0].quantity", "lines[1].sku"]);
        let packed = order
            .start_fulfillment("BER-1", now())
            .unwrap()
            .pick(1, "p", now())
            .unwrap()
            .pack(1, crate::fixtures::parcel(), "p", now())
            .unwrap();
        assert!(matches!(
            packed.cancel_units(&units(&[("A", 1)]), "k1", "customer", rate, now()),
            Err(CancelError::Units(_))
        ));
        // Picked, not packed: the shipment loses the units and records it, so the packer's
        // screen that read it before is refused its next step.
        let picked = order
            .start_fulfillment("BER-1", now())
            .unwrap()
            .pick(1, "p", now())
            .unwrap();
        let seen = picked.shipments[0].version();
        let next = picked
            .cancel_units(&units(&[("A", 1)]), "k1", "customer", rate, now())
            .unwrap()
            .order;
        assert_eq!(next.shipments[0].version(), seen + 1);
        assert_eq!(next.shipments[0].units(), 4);
        assert_eq!(next.status, OrderStatus::Fulfilling);
    }

    #[test]
    fn calling_off_every_unit_cancels_the_order() {
        let order = reserved().authorized_for_test(now());
        let change = order
            .cancel_units(&units(&[("A", 2), ("B", 3)]), "k1", "customer", rate, now())
            .unwrap();
        assert_eq!(change.order.status, OrderStatus::Cancelled);
        assert_eq!(change.moves.len(), 2);
        assert_eq!(
            change.order.cancellation.as_ref().unwrap().key.as_deref(),
            Some("k1")
        );
        assert!(change
            .order
            .payment
            .requests
            .iter()
            .any(|r| r.kind == PspRequestKind::Void && r.amount == order.totals.total));
    }

    #[test]
    fn a_pending_order_shrinks_before_its_reservation_and_a_hold_for_the_old_total_counts() {
        let pending = placed(
            json!([{"sku": "A", "quantity": 2}]),
            &[product("A", 1000, 5)],
        );
        let before = pending.totals.total.minor_units();
        let change = pending
            .cancel_units(&units(&[("A", 1)]), "k1", "customer", rate, now())
            .unwrap();
        assert!(change.moves.is_empty(), "nothing was held yet");
        let next = change.order;
        assert_eq!(next.lines[0].quantity.get(), 1);
        // The customer's payment was opened for the old total: still the order's own.
        let held = psp(
            &next,
            "auth",
            PaymentEventKind::AuthorizationSucceeded,
            before,
        );
        assert_eq!(held.payment_status(), PaymentStatus::Authorized);
        assert_eq!(held.payment_attention(), None);
        // Called off afterwards: the void releases what the hold holds.
        let cancelled = held.cancel("x".into(), "customer", now()).unwrap().order;
        let void = cancelled
            .payment
            .requests
            .iter()
            .find(|r| r.kind == PspRequestKind::Void)
            .unwrap();
        assert_eq!(void.amount.minor_units(), before);
    }

    /// 2 × A at 10.00 leaving BER-1 and 1 × B at 30.00 leaving AMS-1: the order, placed, and its
    /// plan of two parcels.
    fn split_a_and_b() -> (Order, Plan) {
        let order = placed(
            json!([{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}]),
            &[product("A", 1000, 5), product("B", 3000, 5)],
        );
        let shipment = |location: &str, sku: &str, units: u32| PlannedShipment {
            location: location.into(),
            lines: vec![(Sku::parse(sku).unwrap(), units)],
            weight_grams: 0,
            cost: 0,
        };
        let plan = Plan {
            shipments: vec![shipment("BER-1", "A", 2), shipment("AMS-1", "B", 1)],
        };
        (order, plan)
    }

    /// A split order taken at once: the first parcel delivered and returned (refunded), then
    /// the parcel still to leave called off. The goods returned were refunded for themselves:
    /// calling off the rest gives back exactly what the rest cost, so the business keeps what
    /// the order now costs less what came back.
    #[test]
    fn units_called_off_after_a_return_was_refunded_give_back_their_whole_share() {
        let (order, plan) = split_a_and_b();
        let total = order.totals.total.minor_units();
        let at_once = PaymentPolicy {
            capture: crate::order::payments::CaptureMode::Immediately,
            ..PaymentPolicy::default()
        };
        let said = |order: &Order, id: &str, kind: PaymentEventKind, amount: i64| {
            let event = PaymentEvent {
                event_id: id.into(),
                kind,
                amount: Money::new(amount, order.totals.total.currency()).unwrap(),
                occurred_at: now(),
                psp_reference: Some("pi_1".into()),
                refund_id: None,
                request_id: None,
                reason: None,
            };
            match order.record_payment(&event, &at_once, now()).unwrap() {
                PaymentUpdate::Recorded(next) => *next,
                PaymentUpdate::Duplicate => panic!("a duplicate"),
            }
        };
        let reserved = order.reserve(&plan, now()).unwrap();
        let held = said(
            &reserved,
            "auth",
            PaymentEventKind::AuthorizationSucceeded,
            total,
        );
        let paid = said(&held, "cap", PaymentEventKind::CaptureSucceeded, total);
        let shipped = paid
            .start_fulfillment("BER-1", now())
            .unwrap()
            .pick(1, "p", now())
            .unwrap()
            .pack(1, crate::fixtures::parcel(), "p", now())
            .unwrap()
            .ship(
                1,
                crate::fixtures::tracking(),
                paid.shipping.estimate,
                "p",
                now(),
            )
            .unwrap();
        let delivered = match shipped
            .carrier_event(
                1,
                "evt-delivered",
                crate::order::fulfillment::CarrierEventKind::Delivered,
                None,
                now(),
                now(),
            )
            .unwrap()
        {
            crate::order::fulfillment::CarrierUpdate::Applied(order) => *order,
            _ => panic!("delivered"),
        };
        let returned = delivered
            .returned_for_test("A", 2, "RESTOCK", now())
            .unwrap()
            .order;
        // Damaged: the seller's fault, so the shipping charge came back with the two A.
        let for_the_return = returned.refunds.last().unwrap().amount.minor_units();
        assert_eq!(
            for_the_return,
            2000 + returned.totals.shipping.minor_units()
        );
        let next = returned
            .cancel_units(&units(&[("B", 1)]), "k1", "customer", rate, now())
            .unwrap()
            .order;
        let refund = next.refunds.last().unwrap();
        assert_eq!(refund.reason, RefundReason::UnitsCancelled);
        // B itself; the shipping charge came back with the return already.
        assert_eq!(refund.amount.minor_units(), 3000);
        let refunded: i64 = next.refunds.iter().map(|r| r.amount.minor_units()).sum();
        assert_eq!(refunded, total, "everything came back or was called off");
    }

    #[test]
    fn the_units_of_a_parcel_still_to_leave_are_released_with_the_rest_of_the_hold() {
        let (order, plan) = split_a_and_b();
        let total = order.totals.total.minor_units();
        let reserved = order.reserve(&plan, now()).unwrap();
        let held = psp(
            &reserved,
            "auth",
            PaymentEventKind::AuthorizationSucceeded,
            total,
        );
        let first_left = held
            .start_fulfillment("BER-1", now())
            .unwrap()
            .pick(1, "p", now())
            .unwrap()
            .pack(1, crate::fixtures::parcel(), "p", now())
            .unwrap()
            .ship(
                1,
                crate::fixtures::tracking(),
                held.shipping.estimate,
                "p",
                now(),
            )
            .unwrap();
        let share = first_left.payment.requests[0].amount.minor_units();
        assert!(first_left.payment.requests[0].more_follow);
        let taken = psp(
            &first_left,
            "cap1",
            PaymentEventKind::CaptureSucceeded,
            share,
        );
        assert_eq!(taken.payment_status(), PaymentStatus::PartiallyPaid);
        // The customer calls off the parcel still in AMS-1: nothing is left to ship.
        let next = taken
            .cancel_units(&units(&[("B", 1)]), "k1", "customer", rate, now())
            .unwrap()
            .order;
        assert_eq!(next.status, OrderStatus::Shipped);
        assert_eq!(next.shipments.len(), 1);
        // What was taken for the first parcel is at most the smaller total: the rest of the
        // hold is released; anything taken beyond the new total is refunded.
        let void = next
            .payment
            .requests
            .iter()
            .find(|r| r.kind == PspRequestKind::Void)
            .expect("the rest of the hold is released");
        assert_eq!(void.amount.minor_units(), total);
        let refunded: i64 = next.refunds.iter().map(|r| r.amount.minor_units()).sum();
        assert_eq!(
            refunded,
            (share - next.totals.total.minor_units()).max(0),
            "what was taken beyond the new total comes back"
        );
        let released = psp(&next, "void", PaymentEventKind::VoidSucceeded, total);
        assert_ne!(released.payment_status(), PaymentStatus::PartiallyPaid);
        assert_ne!(released.payment_status(), PaymentStatus::Voided);
    }
}

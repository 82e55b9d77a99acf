//! What the API answers about an order: its own types, apart from the aggregate the domain
//! reasons about and from the item the table stores, so renaming a field of one cannot
//! silently change the others. `GET /orders/{id}`, the cancel answer and the intake answer
//! (stored in the idempotency record and replayed byte for byte) are all an [`OrderView`]; its
//! shape is pinned by a snapshot test, as the stored item's is in the adapters.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::contact::{Address, Contact};
use crate::ids::{CustomerId, OrderId, Sku};
use crate::money::Money;
use crate::order::cancellation::Cancellation;
use crate::order::fulfillment::Fulfillment;
use crate::order::payments::{
    LedgerEntry, PaymentAttention, PaymentStatus, PspRequest, RefundState,
};
use crate::order::refunds::Refund;
use crate::order::returns::{ReplacementOf, Return};
use crate::order::{Order, OrderStatus, Shortage};
use crate::quantity::Quantity;
use crate::shipping::{DeliveryEstimate, ShippingMethod};

/// An order as its customer and staff see it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderView<'a> {
    pub order_id: &'a OrderId,
    pub customer_id: &'a CustomerId,
    pub status: OrderStatus,
    pub lines: Vec<LineView<'a>>,
    pub shipping: ShippingView<'a>,
    pub contact: &'a Contact,
    pub totals: TotalsView,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub shortages: &'a [Shortage],
    pub timeline: Vec<TimelineView<'a>>,
    /// Its first shipment, as the order showed it when every order left as one parcel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fulfillment: Option<&'a Fulfillment>,
    /// Its shipments, one per location its units leave from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shipments: Vec<ShipmentView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation: Option<CancellationView<'a>>,
    /// Units called off before they were packed, with the totals before and after.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unit_cancellations: Vec<UnitCancellationView<'a>>,
    /// Changes of where or how it ships, with the totals before and after and where each
    /// stands.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub edits: Vec<EditView<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub returns: Vec<ReturnView<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refunds: Vec<RefundView<'a>>,
    pub payment: PaymentView<'a>,
    /// Why the order is not in the warehouse's hands although it could be: `AWAITING_PAYMENT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement_for: Option<&'a ReplacementOf>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The order's version: its `ETag` is `"v<version>"`.
    pub version: u64,
}

/// A return as it is shown: everything but the key it was asked under and its request's
/// digest (the caller's own, kept to answer a retry).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnView<'a> {
    pub return_id: &'a crate::ids::ReturnId,
    pub status: crate::order::returns::ReturnStatus,
    pub lines: &'a [crate::order::returns::ReturnLine],
    pub requested_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<&'a crate::order::returns::Decision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<&'a crate::order::returns::Receipt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement_order_id: Option<&'a OrderId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_due: Option<Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_location: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closing: Option<&'a crate::order::returns::Decision>,
}

impl<'a> ReturnView<'a> {
    pub fn of(rma: &'a Return) -> Self {
        Self {
            return_id: &rma.return_id,
            status: rma.status,
            lines: &rma.lines,
            requested_at: rma.requested_at,
            decision: rma.decision.as_ref(),
            receipt: rma.receipt.as_ref(),
            refund_id: rma.refund_id.as_deref(),
            replacement_order_id: rma.replacement_order_id.as_ref(),
            exchange_due: rma.exchange_due,
            exchange_location: rma.exchange_location.as_deref(),
            closing: rma.closing.as_ref(),
        }
    }
}

/// Why and by whom the order was called off (the key it was asked under is the caller's own).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CancellationView<'a> {
    pub reason: &'a str,
    pub by: &'a str,
    pub at: DateTime<Utc>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub expired: bool,
}

/// Units called off, what they cost, and what it did to the totals and the money.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitCancellationView<'a> {
    pub cancellation_id: &'a str,
    pub lines: &'a [crate::order::cancellation::CancelledLine],
    pub reason: &'a str,
    pub by: &'a str,
    pub at: DateTime<Utc>,
    pub totals_before: TotalsView,
    pub totals_after: TotalsView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<&'a str>,
}

/// An edit of where or how the order ships (the key it was asked under is the caller's own,
/// and the old address is not shown).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EditView<'a> {
    pub edit_id: &'a str,
    pub state: crate::order::edits::EditState,
    pub reason: &'a str,
    pub by: &'a str,
    pub at: DateTime<Utc>,
    pub address_changed: bool,
    /// The units it added, where each is reserved.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub added: &'a [crate::order::edits::AddedLine],
    pub shipping_before: &'a crate::order::edits::ShippingChoice,
    pub shipping_after: &'a crate::order::edits::ShippingChoice,
    pub totals_before: TotalsView,
    pub totals_after: TotalsView,
    /// While it awaits its payment: when it is undone unless the new total is authorized.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_by: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<&'a str>,
}

/// A shipment with its id.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentView<'a> {
    pub shipment_id: crate::ids::ShipmentId,
    /// Its entity tag, as the warehouse's routes answer it.
    pub version: u64,
    #[serde(flatten)]
    pub shipment: &'a Fulfillment,
}

/// A refund and where the payment service provider has got with it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundView<'a> {
    #[serde(flatten)]
    pub refund: &'a Refund,
    pub state: RefundState,
}

/// The order's money: its status derived from the PSP's events, the events themselves, what was
/// asked of the PSP, and what needs staff.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView<'a> {
    pub status: PaymentStatus,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub ledger: &'a [LedgerEntry],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub requests: &'a [PspRequest],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attention: Option<PaymentAttention>,
}

/// An order whose money needs staff, as the payment attention list shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentAttentionView<'a> {
    pub order_id: &'a OrderId,
    pub customer_id: &'a CustomerId,
    pub status: OrderStatus,
    pub payment_status: PaymentStatus,
    pub total: Money,
    pub attention: PaymentAttention,
    pub updated_at: DateTime<Utc>,
}

impl<'a> PaymentAttentionView<'a> {
    /// The view of an order on the attention list; `None` if it needs no one (any more).
    pub fn of(order: &'a Order) -> Option<Self> {
        Some(PaymentAttentionView {
            order_id: &order.id,
            customer_id: &order.customer_id,
            status: order.status,
            payment_status: order.payment_status(),
            total: order.totals.total,
            attention: order.payment_attention()?,
            updated_at: order.updated_at,
        })
    }
}

/// One line with the price it was sold at.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LineView<'a> {
    pub sku: &'a Sku,
    pub name: &'a str,
    pub quantity: Quantity,
    pub unit_price: Money,
    pub line_total: Money,
    pub unit_weight_grams: u32,
    /// Where its units come from, from the reservation on.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub allocations: &'a [crate::order::LocationUnits],
    /// Its units waiting for stock, and when they are expected.
    #[serde(skip_serializing_if = "is_zero")]
    pub backordered: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promised_on: Option<chrono::NaiveDate>,
    /// A pre-order's release date: the order leaves on it, not before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_on: Option<chrono::NaiveDate>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How and where the order ships.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShippingView<'a> {
    pub method: ShippingMethod,
    pub address: &'a Address,
    pub price: Money,
    pub estimate: DeliveryEstimate,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pickup_location: Option<&'a str>,
    /// False: what is in stock ships before backordered units arrive.
    pub ship_complete: bool,
}

/// What the customer pays.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TotalsView {
    pub subtotal: Money,
    pub shipping: Money,
    pub total: Money,
}

impl TotalsView {
    fn of(totals: &crate::order::Totals) -> Self {
        TotalsView {
            subtotal: totals.subtotal,
            shipping: totals.shipping,
            total: totals.total,
        }
    }
}

/// One step of the order's history.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineView<'a> {
    pub status: OrderStatus,
    pub at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'a str>,
}

impl<'a> OrderView<'a> {
    /// The order as its customer sees it: the payment's status alone, without the PSP's events
    /// (their references and decline reasons), what was asked of the PSP, or what staff must
    /// look at.
    pub fn for_customer(order: &'a Order) -> Self {
        let mut view = OrderView::from(order);
        view.payment.ledger = &[];
        view.payment.requests = &[];
        view.payment.attention = None;
        view
    }

    /// The order as `staff` (anyone with `oms:admin`) or its customer sees it (a customer's
    /// order is one [`as_seen_by`] answered).
    pub fn for_caller(order: &'a Order, staff: bool) -> Self {
        if staff {
            OrderView::from(order)
        } else {
            Self::for_customer(order)
        }
    }
}

/// The order as `staff` see it, or a copy as its customer sees it: who in the business decided a
/// return, received it or worked a parcel is told by role (`staff`, `warehouse`), never by their
/// account, in the records and in the timeline's notes; what the warehouse noted on a receipt
/// is staff's own.
pub fn as_seen_by(order: &Order, staff: bool) -> std::borrow::Cow<'_, Order> {
    if staff {
        return std::borrow::Cow::Borrowed(order);
    }
    let mut seen = order.clone();
    // Accounts named, longest first (one may contain another), with the role that replaces it.
    let mut named: Vec<(String, &'static str)> = Vec::new();
    let mut name = |by: &mut String, role: &'static str| {
        if !matches!(
            by.as_str(),
            "customer" | "system" | "policy" | "carrier" | "admin"
        ) {
            named.push((std::mem::replace(by, role.to_owned()), role));
        }
    };
    for rma in &mut seen.returns {
        if let Some(decision) = rma.decision.as_mut() {
            name(&mut decision.by, "staff");
        }
        if let Some(closing) = rma.closing.as_mut() {
            name(&mut closing.by, "staff");
        }
        if let Some(receipt) = rma.receipt.as_mut() {
            name(&mut receipt.by, "warehouse");
            receipt.note = None;
        }
    }
    for shipment in &mut seen.shipments {
        for step in &mut shipment.steps {
            name(&mut step.by, "warehouse");
        }
    }
    // Notes name an account as "by <account>" (a return decided, a parcel moved before moves
    // stopped naming theirs): that phrase alone is replaced, so other figures stay as written.
    named.sort_by_key(|(account, _)| std::cmp::Reverse(account.len()));
    named.dedup();
    let redact = |note: &mut String| {
        for (account, role) in &named {
            let phrase = format!("by {account}");
            if note.contains(&phrase) {
                *note = note.replace(&phrase, &format!("by {role}"));
            }
        }
    };
    for entry in &mut seen.timeline {
        if let Some(note) = entry.note.as_mut() {
            redact(note);
        }
    }
    for step in seen.shipments.iter_mut().flat_map(|s| s.steps.iter_mut()) {
        if let Some(note) = step.note.as_mut() {
            redact(note);
        }
    }
    std::borrow::Cow::Owned(seen)
}

impl<'a> From<&'a Order> for OrderView<'a> {
    fn from(order: &'a Order) -> Self {
        OrderView {
            order_id: &order.id,
            customer_id: &order.customer_id,
            status: order.status,
            lines: order
                .lines
                .iter()
                .map(|l| LineView {
                    sku: &l.sku,
                    name: &l.name,
                    quantity: l.quantity,
                    unit_price: l.unit_price,
                    line_total: l.line_total,
                    unit_weight_grams: l.unit_weight_grams,
                    allocations: &l.allocations,
                    backordered: if order.status.is_final() {
                        0
                    } else {
                        l.backordered()
                    },
                    promised_on: l.promised_on.filter(|_| !order.status.is_final()),
                    release_on: l.release_on,
                })
                .collect(),
            shipping: ShippingView {
                method: order.shipping.method,
                address: &order.shipping.address,
                price: order.shipping.price,
                estimate: order.shipping.estimate,
                pickup_location: order.shipping.pickup_location.as_deref(),
                ship_complete: order.shipping.ship_complete,
            },
            contact: &order.contact,
            totals: TotalsView {
                subtotal: order.totals.subtotal,
                shipping: order.totals.shipping,
                total: order.totals.total,
            },
            shortages: &order.shortages,
            timeline: order
                .timeline
                .iter()
                .map(|t| TimelineView {
                    status: t.status,
                    at: t.at,
                    note: t.note.as_deref(),
                })
                .collect(),
            fulfillment: order.shipments.first(),
            shipments: order
                .shipments
                .iter()
                .map(|shipment| ShipmentView {
                    shipment_id: shipment.id(order),
                    version: shipment.version(),
                    shipment,
                })
                .collect(),
            cancellation: order
                .cancellation
                .as_ref()
                .map(|c: &'a Cancellation| CancellationView {
                    reason: &c.reason,
                    by: &c.by,
                    at: c.at,
                    expired: c.expired,
                }),
            unit_cancellations: order
                .unit_cancellations
                .iter()
                .map(|c| UnitCancellationView {
                    cancellation_id: &c.id,
                    lines: &c.lines,
                    reason: &c.reason,
                    by: &c.by,
                    at: c.at,
                    totals_before: TotalsView::of(&c.totals_before),
                    totals_after: TotalsView::of(&c.totals_after),
                    refund_id: c.refund_id.as_deref(),
                })
                .collect(),
            edits: order
                .edits
                .iter()
                .map(|e| EditView {
                    edit_id: &e.id,
                    state: e.state,
                    reason: &e.reason,
                    by: &e.by,
                    at: e.at,
                    address_changed: e.address_changed,
                    added: &e.added,
                    shipping_before: &e.shipping_before,
                    shipping_after: &e.shipping_after,
                    totals_before: TotalsView::of(&e.totals_before),
                    totals_after: TotalsView::of(&e.totals_after),
                    due_by: e.due_by,
                    settled_at: e.settled_at,
                    refund_id: e.refund_id.as_deref(),
                })
                .collect(),
            returns: order.returns.iter().map(ReturnView::of).collect(),
            refunds: order
                .refunds
                .iter()
                .map(|refund| RefundView {
                    refund,
                    state: order.refund_state(&refund.refund_id),
                })
                .collect(),
            payment: PaymentView {
                status: order.payment_status(),
                ledger: &order.payment.ledger,
                requests: &order.payment.requests,
                attention: order.payment_attention(),
            },
            hold: order.hold(),
            replacement_for: order.replacement_for.as_ref(),
            created_at: order.created_at,
            updated_at: order.updated_at,
            version: order.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{delivered_order, sample_order};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// Its customer sees who worked their order by role: the accounts of the staff who decided
    /// and received a return and worked its parcel appear nowhere (nor the receipt's note);
    /// staff see them all.
    #[test]
    fn a_customer_sees_staff_by_their_role_not_their_account() {
        let delivered = delivered_order(
            "01JDAAAAAAAAAAAAAAAAAAAAAA",
            "customer-ada",
            at("2026-11-20T10:00:00Z"),
        );
        let mut order = delivered
            .returned_for_test("TSHIRT-RED-M", 1, "RESTOCK", at("2026-11-22T10:00:00Z"))
            .unwrap()
            .order;
        let rma = &mut order.returns[0];
        rma.decision.as_mut().unwrap().by = "admin staff-9".into();
        let receipt = rma.receipt.as_mut().unwrap();
        receipt.by = "warehouse packer-7".into();
        receipt.note = Some("box crushed, told Jo".into());
        order.shipments[0].steps[0].by = "picker-3".into();
        order.shipments[0].steps[0].note =
            Some("moved 1 unit from BER-1 to AMS-1 by picker-3".into());
        order.timeline.push(crate::order::TimelineEntry {
            status: order.status,
            at: at("2026-11-22T11:00:00Z"),
            note: Some("return approved by admin staff-9; received by warehouse packer-7".into()),
        });
        // A figure that happens to spell an account is left as written.
        order.shipments[0].steps[1].by = "42".into();
        order.timeline.push(crate::order::TimelineEntry {
            status: order.status,
            at: at("2026-11-22T12:00:00Z"),
            note: Some("payment: refund.succeeded 42.00 EUR".into()),
        });
        let customer =
            serde_json::to_string(&OrderView::for_customer(&as_seen_by(&order, false))).unwrap();
        for account in ["staff-9", "packer-7", "picker-3", "told Jo"] {
            assert!(!customer.contains(account), "{account} shown: {customer}");
        }
        assert!(customer.contains("received by warehouse"));
        assert!(customer.contains("42.00 EUR"), "{customer}");
        let staff = serde_json::to_string(&OrderView::from(&*as_seen_by(&order, true))).unwrap();
        for account in ["staff-9", "packer-7", "picker-3", "told Jo"] {
            assert!(staff.contains(account), "{account} hidden from staff");
        }
    }

    #[test]
    fn the_api_shape_of_a_delivered_order_is_pinned() {
        let order = delivered_order(
            "01JDAAAAAAAAAAAAAAAAAAAAAA",
            "customer-ada",
            at("2026-11-20T10:00:00Z"),
        );
        insta::assert_json_snapshot!("order_view_delivered", OrderView::from(&order));
    }

    #[test]
    fn the_api_shape_of_a_cancelled_order_is_pinned() {
        let order = sample_order(
            "01JDBBBBBBBBBBBBBBBBBBBBBB",
            "customer-ada",
            at("2026-11-20T10:00:00Z"),
        );
        let cancelled = order
            .authorized_for_test(at("2026-11-20T10:00:01Z"))
            .reserve_all_at("BER-1", at("2026-11-20T10:00:01Z"))
            .unwrap()
            .cancel(
                "ordered twice".into(),
                "customer",
                at("2026-11-20T10:05:00Z"),
            )
            .unwrap()
            .order;
        insta::assert_json_snapshot!("order_view_cancelled", OrderView::from(&cancelled));
    }
}

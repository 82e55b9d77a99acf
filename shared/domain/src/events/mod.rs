//! Domain events, recorded by the changes that make them and carried as CloudEvents 1.0.
//!
//! Handlers never publish: they write the table, and the event publisher turns each change it
//! reads from the table's stream into its events. An order's change recorded what happened
//! ([`crate::order::history`]), so [`order_event`], [`refund_events`] and [`psp_request_events`]
//! map the new image's recorded change directly — one order event per version, whose `sequence`
//! is the version, plus what the change asked of the payment system — and items written before
//! changes were recorded are read by the [`legacy`] comparison of the old and new images. A
//! product's change yields at most a low-stock alert ([`stock_event`]). An event's id is derived
//! from the change (`<order id>-<version>`, or the refund's or request's own id), so a change
//! read twice yields the same event twice, and consumers deduplicate on the id. Events carry no
//! address, e-mail or phone number: a consumer that needs them reads the order.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{CustomerId, OrderId, Sku};
use crate::ids::{ReturnId, ShipmentId};
use crate::money::Money;
use crate::order::fulfillment::{FulfillmentStatus, Tracking};
use crate::order::history::{Announcement, Change, OrderEvent};
use crate::order::payments::{PaymentStatus, PspRequest};
use crate::order::refunds::Refund;
use crate::order::returns::ReturnStatus;
use crate::order::{Order, OrderStatus, Shortage, Totals};
use crate::quantity::Quantity;
use crate::shipping::{DeliveryEstimate, ShippingMethod};
use crate::stock::Product;

mod legacy;

/// Every kind of event the system publishes. Subscribers filter on [`EventType::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "oms.order.placed")]
    OrderPlaced,
    #[serde(rename = "oms.order.reserved")]
    OrderReserved,
    #[serde(rename = "oms.order.rejected")]
    OrderRejected,
    #[serde(rename = "oms.order.cancelled")]
    OrderCancelled,
    /// Some units of some lines called off before packing: the order is smaller, its totals
    /// too, and a refund may follow.
    #[serde(rename = "oms.order.units-cancelled")]
    UnitsCancelled,
    /// Stock arrived for the last of the order's backordered units: it goes to the warehouse,
    /// and the customer is told.
    #[serde(rename = "oms.order.backorder-filled")]
    BackorderFilled,
    /// Where or how the order ships changed before packing; its totals may have too (a refund
    /// may follow, or a new payment is due: `hold` says so).
    #[serde(rename = "oms.order.edited")]
    OrderEdited,
    /// The new total of an edit that waited for it is held: the order goes back to the
    /// warehouse.
    #[serde(rename = "oms.order.edit-paid")]
    EditPaid,
    /// An edit's new total was never authorized: the order ships as it did before.
    #[serde(rename = "oms.order.edit-undone")]
    EditUndone,
    #[serde(rename = "oms.order.promise-revised")]
    PromiseRevised,
    /// The business moved the release date of a SKU the order pre-ordered: it waits for the
    /// new one (or, no longer a pre-order, is released today).
    #[serde(rename = "oms.order.release-moved")]
    ReleaseMoved,
    #[serde(rename = "oms.order.fulfillment-started")]
    FulfillmentStarted,
    #[serde(rename = "oms.order.shipped")]
    OrderShipped,
    #[serde(rename = "oms.order.delivered")]
    OrderDelivered,
    #[serde(rename = "oms.fulfillment.picked")]
    Picked,
    #[serde(rename = "oms.fulfillment.packed")]
    Packed,
    #[serde(rename = "oms.fulfillment.in-transit")]
    InTransit,
    #[serde(rename = "oms.fulfillment.out-for-delivery")]
    OutForDelivery,
    #[serde(rename = "oms.fulfillment.delivery-exception")]
    DeliveryException,
    /// Any other change of an order (a repeated carrier scan, say): every version of an order is
    /// an event, so consumers that follow an order's sequence numbers never wait on a gap.
    #[serde(rename = "oms.order.updated")]
    OrderUpdated,
    #[serde(rename = "oms.return.requested")]
    ReturnRequested,
    #[serde(rename = "oms.return.approved")]
    ReturnApproved,
    #[serde(rename = "oms.return.rejected")]
    ReturnRejected,
    #[serde(rename = "oms.return.received")]
    ReturnReceived,
    /// An approved return nothing arrived for within the policy's days, closed.
    #[serde(rename = "oms.return.expired")]
    ReturnExpired,
    /// Money owed to a customer, for the payment system. Its subject is the refund, not the
    /// order, so it sits outside the order's sequence.
    #[serde(rename = "oms.refund.requested")]
    RefundRequested,
    #[serde(rename = "oms.inventory.low-stock")]
    LowStock,
    /// A SKU's stock fell to its reorder point (see [`crate::replenishment`]): order more now.
    #[serde(rename = "oms.inventory.reorder-point-reached")]
    ReorderPointReached,
    /// Never paid within the payment window: cancelled by the system, its stock released.
    #[serde(rename = "oms.order.expired")]
    OrderExpired,
    /// The money is held (or taken) for the first time: the customer hears "payment received",
    /// and a reserved order goes to the warehouse.
    #[serde(rename = "oms.payment.authorized")]
    PaymentAuthorized,
    /// What was held is taken.
    #[serde(rename = "oms.payment.captured")]
    PaymentCaptured,
    /// The authorization was declined: the customer hears what to do.
    #[serde(rename = "oms.payment.failed")]
    PaymentFailed,
    /// The hold was released.
    #[serde(rename = "oms.payment.voided")]
    PaymentVoided,
    /// The PSP paid a refund out: the customer hears "refund issued".
    #[serde(rename = "oms.payment.refund-issued")]
    RefundIssued,
    /// The PSP could not pay a refund out: it waits for staff.
    #[serde(rename = "oms.payment.refund-failed")]
    RefundFailed,
    /// Any other entry in the ledger (a mismatch, a failed capture, a repeat of a state).
    #[serde(rename = "oms.payment.updated")]
    PaymentUpdated,
    /// For the PSP: take the authorized amount. Outside the order's sequence, like refunds.
    #[serde(rename = "oms.psp.capture-requested")]
    CaptureRequested,
    /// For the PSP: release the authorization.
    #[serde(rename = "oms.psp.void-requested")]
    VoidRequested,
}

impl EventType {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::OrderPlaced => "oms.order.placed",
            Self::OrderReserved => "oms.order.reserved",
            Self::OrderRejected => "oms.order.rejected",
            Self::OrderCancelled => "oms.order.cancelled",
            Self::UnitsCancelled => "oms.order.units-cancelled",
            Self::BackorderFilled => "oms.order.backorder-filled",
            Self::OrderEdited => "oms.order.edited",
            Self::EditPaid => "oms.order.edit-paid",
            Self::EditUndone => "oms.order.edit-undone",
            Self::PromiseRevised => "oms.order.promise-revised",
            Self::ReleaseMoved => "oms.order.release-moved",
            Self::FulfillmentStarted => "oms.order.fulfillment-started",
            Self::OrderShipped => "oms.order.shipped",
            Self::OrderDelivered => "oms.order.delivered",
            Self::Picked => "oms.fulfillment.picked",
            Self::Packed => "oms.fulfillment.packed",
            Self::InTransit => "oms.fulfillment.in-transit",
            Self::OutForDelivery => "oms.fulfillment.out-for-delivery",
            Self::DeliveryException => "oms.fulfillment.delivery-exception",
            Self::OrderUpdated => "oms.order.updated",
            Self::ReturnRequested => "oms.return.requested",
            Self::ReturnApproved => "oms.return.approved",
            Self::ReturnRejected => "oms.return.rejected",
            Self::ReturnReceived => "oms.return.received",
            Self::ReturnExpired => "oms.return.expired",
            Self::RefundRequested => "oms.refund.requested",
            Self::LowStock => "oms.inventory.low-stock",
            Self::ReorderPointReached => "oms.inventory.reorder-point-reached",
            Self::OrderExpired => "oms.order.expired",
            Self::PaymentAuthorized => "oms.payment.authorized",
            Self::PaymentCaptured => "oms.payment.captured",
            Self::PaymentFailed => "oms.payment.failed",
            Self::PaymentVoided => "oms.payment.voided",
            Self::RefundIssued => "oms.payment.refund-issued",
            Self::RefundFailed => "oms.payment.refund-failed",
            Self::PaymentUpdated => "oms.payment.updated",
            Self::CaptureRequested => "oms.psp.capture-requested",
            Self::VoidRequested => "oms.psp.void-requested",
        }
    }
}

/// A CloudEvents 1.0 envelope in its JSON format, with a `sequence` extension that orders the
/// events of one subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent<T> {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub time: DateTime<Utc>,
    pub subject: String,
    pub datacontenttype: String,
    pub sequence: u64,
    pub data: T,
}

impl<T> CloudEvent<T> {
    fn new(
        event_type: EventType,
        source: &str,
        subject: String,
        sequence: u64,
        time: DateTime<Utc>,
        data: T,
    ) -> Self {
        CloudEvent {
            specversion: "1.0".into(),
            id: format!("{subject}-{sequence}"),
            source: source.into(),
            event_type,
            time,
            subject,
            datacontenttype: "application/json".into(),
            sequence,
            data,
        }
    }
}

/// A line as events describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventLine {
    pub sku: Sku,
    pub quantity: Quantity,
    pub unit_price: Money,
}

/// What an order event says: the order's state after the change, without personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderEventData {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub status: OrderStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<OrderStatus>,
    /// Where the order's money is after the change (events published before payments existed
    /// carry none: pending).
    #[serde(default)]
    pub payment_status: PaymentStatus,
    pub lines: Vec<EventLine>,
    pub totals: Totals,
    pub shipping_method: ShippingMethod,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shortages: Vec<Shortage>,
    pub estimate: DeliveryEstimate,
    /// The status of the shipment the change moved (else of the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fulfillment_status: Option<FulfillmentStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking: Option<Tracking>,
    /// The parcel the change moved, for an order that leaves as several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parcel: Option<EventParcel>,
    /// What the last step said (a carrier's exception reason, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The return this change is about, and where it now is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_id: Option<ReturnId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_status: Option<ReturnStatus>,
    /// The amount of a refund this change requested (a cancellation, a received return) or
    /// settled (issued or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<Money>,
    /// The refund this change settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    /// Why the PSP declined, for a failed payment or refund.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_reason: Option<String>,
    /// The order that ships this return's exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement_order_id: Option<OrderId>,
    /// The unit cancellation this change recorded (`<order id>-CANCEL-<n>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_cancellation_id: Option<String>,
    /// The edit this change made, paid or undone (`<order id>-EDIT-<n>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit_id: Option<String>,
    /// The SKU whose waiting units this change promised again (`oms.order.promise-revised`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revised_sku: Option<Sku>,
}

/// One parcel of an order that leaves as several: which, of how many, from where, and how many
/// of the order's units it carries ("2 of your 3 items have shipped").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventParcel {
    pub shipment_id: ShipmentId,
    /// Its place among the order's parcels now, of `of`.
    pub number: u32,
    pub of: u32,
    pub location: String,
    pub units: u32,
    pub order_units: u32,
    pub lines: Vec<EventParcelLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventParcelLine {
    pub sku: Sku,
    pub quantity: Quantity,
}

/// What a change did besides its event, as the order event's data says it.
struct ChangeFacts<'a> {
    previous_status: Option<OrderStatus>,
    return_id: Option<&'a ReturnId>,
    refund_added: Option<&'a str>,
    refund_settled: Option<&'a str>,
    payment_reason: Option<String>,
    /// The edit the change made, paid or undone.
    edit_id: Option<&'a str>,
    /// The SKU whose waiting units' promise the change revised.
    revised_sku: Option<&'a Sku>,
}

/// The order's event for one of its versions.
fn order_cloud_event(
    new: &Order,
    event_type: EventType,
    facts: ChangeFacts<'_>,
) -> CloudEvent<OrderEventData> {
    let changed_return = facts.return_id.and_then(|id| new.find_return(id));
    let refund =
        |id: Option<&str>| id.and_then(|id| new.refunds.iter().find(|r| r.refund_id == id));
    let moved = new
        .last_change
        .as_ref()
        .filter(|c| c.version == new.version)
        .and_then(|c| c.shipment)
        .and_then(|number| new.shipments.iter().find(|s| s.number == number));
    let shipment = moved.or(new.shipments.first());
    let data = OrderEventData {
        order_id: new.id.clone(),
        customer_id: new.customer_id.clone(),
        status: new.status,
        previous_status: facts.previous_status,
        payment_status: new.payment_status(),
        lines: new
            .lines
            .iter()
            .map(|l| EventLine {
                sku: l.sku.clone(),
                quantity: l.quantity,
                unit_price: l.unit_price,
            })
            .collect(),
        totals: new.totals,
        shipping_method: new.shipping.method,
        shortages: new.shortages.clone(),
        estimate: new.shipping.estimate,
        fulfillment_status: shipment.map(|f| f.status),
        tracking: shipment.and_then(|f| f.tracking.clone()),
        parcel: moved
            .filter(|_| new.leaves_in_parts())
            .map(|f| EventParcel {
                shipment_id: f.id(new),
                number: new.parcel_position(f.number),
                of: new.parcels_expected(),
                location: f.warehouse.clone(),
                units: f.units(),
                order_units: new.lines.iter().map(|l| l.quantity.get()).sum(),
                lines: f
                    .lines
                    .iter()
                    .map(|l| EventParcelLine {
                        sku: l.sku.clone(),
                        quantity: l.quantity,
                    })
                    .collect(),
            }),
        note: match (&new.cancellation, changed_return) {
            (Some(cancellation), _) if new.status == OrderStatus::Cancelled => {
                Some(cancellation.reason.clone())
            }
            _ if event_type == EventType::UnitsCancelled => {
                new.unit_cancellations.last().map(|c| c.reason.clone())
            }
            _ if event_type == EventType::OrderEdited => new.edits.last().map(|e| e.reason.clone()),
            // Staff's note closing it before anything arrived, else their decision's.
            (_, Some(rma)) => rma
                .closing
                .as_ref()
                .and_then(|c| c.note.clone())
                .or_else(|| rma.decision.as_ref().and_then(|d| d.note.clone())),
            _ => shipment
                .and_then(|f| f.steps.last())
                .and_then(|s| s.note.clone()),
        },
        return_id: changed_return.map(|r| r.return_id.clone()),
        return_status: changed_return.map(|r| r.status),
        refund: refund(facts.refund_added)
            .or(refund(facts.refund_settled))
            .map(|r| r.amount),
        refund_id: refund(facts.refund_settled).map(|r| r.refund_id.clone()),
        payment_reason: facts.payment_reason,
        replacement_order_id: changed_return.and_then(|r| r.replacement_order_id.clone()),
        unit_cancellation_id: (event_type == EventType::UnitsCancelled)
            .then(|| new.unit_cancellations.last().map(|c| c.id.clone()))
            .flatten(),
        edit_id: facts.edit_id.map(str::to_owned),
        revised_sku: facts.revised_sku.cloned(),
    };
    CloudEvent::new(
        event_type,
        "urn:oms:orders",
        new.id.to_string(),
        new.version,
        new.updated_at,
        data,
    )
}

/// The edit an edit's event is about, read from the images (for changes stored before they
/// were recorded): the one added, or the one whose state changed.
pub(super) fn edited<'a>(
    old: Option<&Order>,
    new: &'a Order,
    event_type: EventType,
) -> Option<&'a str> {
    if !matches!(
        event_type,
        EventType::OrderEdited | EventType::EditPaid | EventType::EditUndone
    ) {
        return None;
    }
    let before = old.map_or(&[][..], |o| o.edits.as_slice());
    new.edits
        .iter()
        .find(|e| !before.iter().any(|b| b.id == e.id && b.state == e.state))
        .map(|e| e.id.as_str())
}

/// The change recorded in `new` for its own version, if it was recorded (items written before
/// changes were recorded have none, and are read by [`legacy`]).
fn recorded(new: &Order) -> Option<&Change> {
    new.last_change
        .as_ref()
        .filter(|c| c.version == new.version)
}

/// Whether the stream record is a rewrite of the same version (nothing happened to the order).
fn rewritten(old: Option<&Order>, new: &Order) -> bool {
    old.is_some_and(|old| old.version == new.version)
}

/// The wire type of what happened.
pub fn event_type_of(event: &OrderEvent) -> EventType {
    match event {
        OrderEvent::Placed => EventType::OrderPlaced,
        OrderEvent::Reserved => EventType::OrderReserved,
        OrderEvent::Rejected => EventType::OrderRejected,
        OrderEvent::FulfillmentStarted => EventType::FulfillmentStarted,
        OrderEvent::Picked => EventType::Picked,
        OrderEvent::Packed => EventType::Packed,
        OrderEvent::Shipped => EventType::OrderShipped,
        OrderEvent::InTransit => EventType::InTransit,
        OrderEvent::OutForDelivery => EventType::OutForDelivery,
        OrderEvent::DeliveryException => EventType::DeliveryException,
        OrderEvent::Delivered => EventType::OrderDelivered,
        OrderEvent::Cancelled => EventType::OrderCancelled,
        OrderEvent::UnitsCancelled => EventType::UnitsCancelled,
        OrderEvent::BackorderFilled => EventType::BackorderFilled,
        OrderEvent::Edited { .. } => EventType::OrderEdited,
        OrderEvent::EditPaid { .. } => EventType::EditPaid,
        OrderEvent::EditUndone { .. } => EventType::EditUndone,
        OrderEvent::PromiseRevised { .. } => EventType::PromiseRevised,
        OrderEvent::ReleaseMoved { .. } => EventType::ReleaseMoved,
        OrderEvent::Expired => EventType::OrderExpired,
        OrderEvent::ReturnRequested { .. } => EventType::ReturnRequested,
        OrderEvent::ReturnApproved { .. } => EventType::ReturnApproved,
        OrderEvent::ReturnRejected { .. } => EventType::ReturnRejected,
        OrderEvent::ReturnReceived { .. } => EventType::ReturnReceived,
        OrderEvent::ReturnExpired { .. } => EventType::ReturnExpired,
        OrderEvent::PaymentAuthorized => EventType::PaymentAuthorized,
        OrderEvent::PaymentCaptured => EventType::PaymentCaptured,
        OrderEvent::PaymentFailed => EventType::PaymentFailed,
        OrderEvent::PaymentVoided => EventType::PaymentVoided,
        OrderEvent::PaymentUpdated => EventType::PaymentUpdated,
        OrderEvent::RefundIssued { .. } => EventType::RefundIssued,
        OrderEvent::RefundFailed { .. } => EventType::RefundFailed,
        OrderEvent::Updated => EventType::OrderUpdated,
    }
}

/// The order's event for its change from `old` to `new`: what the change recorded, mapped to
/// its CloudEvent. Every version of an order is one event, whose `sequence` is the version.
pub fn order_event(old: Option<&Order>, new: Option<&Order>) -> Option<CloudEvent<OrderEventData>> {
    let new = new?;
    let Some(change) = recorded(new) else {
        return legacy::order_event(old, new);
    };
    if rewritten(old, new) {
        return None;
    }
    Some(order_cloud_event(
        new,
        event_type_of(&change.event),
        ChangeFacts {
            previous_status: change.from,
            return_id: change.return_id.as_ref(),
            refund_added: change.refund_added.as_deref(),
            refund_settled: change.refund_settled.as_deref(),
            payment_reason: change.payment_reason.clone(),
            edit_id: match &change.event {
                OrderEvent::Edited { edit_id }
                | OrderEvent::EditPaid { edit_id }
                | OrderEvent::EditUndone { edit_id } => Some(edit_id.as_str()),
                _ => None,
            },
            revised_sku: match &change.event {
                OrderEvent::PromiseRevised { sku } | OrderEvent::ReleaseMoved { sku } => Some(sku),
                _ => None,
            },
        },
    ))
}

/// For replaying stored changes: whether the recorded change of `new` publishes, byte for
/// byte, what the comparison of the two images published before changes were recorded.
/// `Ok(false)` if `new` recorded no change for its version (nothing to compare).
#[cfg(any(test, feature = "conformance"))]
pub fn recorded_agrees_with_legacy(old: Option<&Order>, new: &Order) -> Result<bool, String> {
    if recorded(new).is_none() {
        return Ok(false);
    }
    let json = |v: &dyn erased_json::Json| v.text();
    let pairs = [
        (
            order_event(old, Some(new)).map(|e| json(&e)),
            legacy::order_event(old, new).map(|e| json(&e)),
        ),
        (
            Some(json(&refund_events(old, Some(new)))),
            Some(json(
                &legacy::refunds_asked(old, new)
                    .map(|r| refund_cloud_event(new, r))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            Some(json(&psp_request_events(old, Some(new)))),
            Some(json(
                &legacy::requests_asked(old, new)
                    .map(|r| psp_request_cloud_event(new, r))
                    .collect::<Vec<_>>(),
            )),
        ),
    ];
    for (recorded, legacy) in pairs {
        if recorded != legacy {
            return Err(format!(
                "order {} version {}: recorded {recorded:?}, legacy {legacy:?}",
                new.id, new.version
            ));
        }
    }
    Ok(true)
}

#[cfg(any(test, feature = "conformance"))]
mod erased_json {
    pub trait Json {
        fn text(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn text(&self) -> String {
            serde_json::to_string(self).expect("an event serializes")
        }
    }
}

/// What a refund event says: the refund, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundEventData {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    /// The PSP's payment to refund: the one the money was taken under (for a payment an edit
    /// replaced, that one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psp_reference: Option<String>,
    #[serde(flatten)]
    pub refund: Refund,
}

fn refund_cloud_event(new: &Order, refund: &Refund) -> CloudEvent<RefundEventData> {
    let mut event = CloudEvent::new(
        EventType::RefundRequested,
        "urn:oms:refunds",
        refund.refund_id.clone(),
        1,
        refund.requested_at,
        RefundEventData {
            order_id: new.id.clone(),
            customer_id: new.customer_id.clone(),
            psp_reference: refund
                .from_payment
                .clone()
                .or_else(|| new.money_reference().map(str::to_owned)),
            refund: refund.clone(),
        },
    );
    event.id = refund.refund_id.clone();
    event
}

/// One `oms.refund.requested` event per refund the change asked of the PSP (added, or released
/// once its capture was confirmed). Consumers deduplicate on its id, the refund's.
pub fn refund_events(old: Option<&Order>, new: Option<&Order>) -> Vec<CloudEvent<RefundEventData>> {
    let Some(new) = new else {
        return Vec::new();
    };
    let Some(change) = recorded(new) else {
        return legacy::refunds_asked(old, new)
            .map(|refund| refund_cloud_event(new, refund))
            .collect();
    };
    if rewritten(old, new) {
        return Vec::new();
    }
    change
        .announced
        .iter()
        .filter_map(|a| match a {
            Announcement::RefundRequested { refund_id } => {
                new.refunds.iter().find(|r| &r.refund_id == refund_id)
            }
            _ => None,
        })
        .map(|refund| refund_cloud_event(new, refund))
        .collect()
}

/// What a capture or void request says: the request, the PSP's payment and whose order it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PspRequestEventData {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    #[serde(flatten)]
    pub request: PspRequest,
}

fn psp_request_cloud_event(new: &Order, request: &PspRequest) -> CloudEvent<PspRequestEventData> {
    use crate::order::payments::PspRequestKind;
    let event_type = match request.kind {
        PspRequestKind::Capture => EventType::CaptureRequested,
        PspRequestKind::Void => EventType::VoidRequested,
    };
    let mut event = CloudEvent::new(
        event_type,
        "urn:oms:payments",
        request.request_id.clone(),
        1,
        request.requested_at,
        PspRequestEventData {
            order_id: new.id.clone(),
            customer_id: new.customer_id.clone(),
            request: request.clone(),
        },
    );
    event.id = request.request_id.clone();
    event
}

/// One `oms.psp.capture-requested` or `oms.psp.void-requested` event per request the change
/// asked; its id is the request's, the PSP's idempotency key.
pub fn psp_request_events(
    old: Option<&Order>,
    new: Option<&Order>,
) -> Vec<CloudEvent<PspRequestEventData>> {
    let Some(new) = new else {
        return Vec::new();
    };
    let Some(change) = recorded(new) else {
        return legacy::requests_asked(old, new)
            .map(|request| psp_request_cloud_event(new, request))
            .collect();
    };
    if rewritten(old, new) {
        return Vec::new();
    }
    change
        .announced
        .iter()
        .filter_map(|a| match a {
            Announcement::CaptureRequested { request_id }
            | Announcement::VoidRequested { request_id } => new
                .payment
                .requests
                .iter()
                .find(|r| &r.request_id == request_id),
            Announcement::RefundRequested { .. } => None,
        })
        .map(|request| psp_request_cloud_event(new, request))
        .collect()
}

/// What a stock event says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockEventData {
    pub sku: Sku,
    pub available: u32,
    pub reserved: u32,
    pub on_hand: u32,
    pub low_stock_threshold: u32,
}

/// A low-stock alert when a SKU's `available` falls below its threshold (once per crossing).
pub fn stock_event(
    old: Option<&Product>,
    new: Option<&Product>,
) -> Option<CloudEvent<StockEventData>> {
    let new = new?;
    let low = |p: &Product| p.stock.available() < p.low_stock_threshold;
    if !new.active || !low(new) || old.is_some_and(low) {
        return None;
    }
    let data = StockEventData {
        sku: new.sku.clone(),
        available: new.stock.available(),
        reserved: new.stock.reserved(),
        on_hand: new.stock.on_hand(),
        low_stock_threshold: new.low_stock_threshold,
    };
    Some(CloudEvent::new(
        EventType::LowStock,
        "urn:oms:inventory",
        new.sku.to_string(),
        new.version,
        new.updated_at,
        data,
    ))
}

/// What a reorder-point event says: the SKU's stock over every location against its demand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReorderEventData {
    pub sku: Sku,
    pub available: u32,
    /// Units reserved for orders in the last 30 days.
    pub demand_30_days: u32,
    pub reorder_point: u32,
    pub lead_time_days: u32,
    pub safety_stock: u32,
}

/// A reorder alert when a SKU's stock falls to its reorder point, once per crossing: the old
/// and new images are both read on the day of the new one's write, so a day's rollover alone
/// never raises it. The reorder point does not depend on the business's cover targets, so the
/// publisher needs none. Its id is `<sku>-<version>-reorder`, apart from a low-stock alert of
/// the same write.
pub fn reorder_event(
    old: Option<&Product>,
    new: Option<&Product>,
) -> Option<CloudEvent<ReorderEventData>> {
    let new = new?;
    let today = crate::replenishment::day_of(new.updated_at);
    let policy = crate::replenishment::HealthPolicy::default();
    let due = |p: &Product| p.health(today, policy).reorder;
    if !new.active || !due(new) || old.is_some_and(due) {
        return None;
    }
    let health = new.health(today, policy);
    let data = ReorderEventData {
        sku: new.sku.clone(),
        available: new.stock.available(),
        demand_30_days: health.demand_30_days,
        reorder_point: health.reorder_point,
        lead_time_days: new.replenishment.lead_time_days,
        safety_stock: new.replenishment.safety_stock,
    };
    let mut event = CloudEvent::new(
        EventType::ReorderPointReached,
        "urn:oms:inventory",
        new.sku.to_string(),
        new.version,
        new.updated_at,
        data,
    );
    event.id = format!("{}-reorder", event.id);
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::tests::{placed, product};
    use crate::quantity::Quantity;
    use serde_json::json;

    #[test]
    fn a_new_order_is_placed_and_each_status_change_is_one_event() {
        let order = placed(
            json!([{"sku": "A", "quantity": 1}]),
            &[product("A", 100, 1)],
        );
        let placed_event = order_event(None, Some(&order)).unwrap();
        assert_eq!(placed_event.event_type, EventType::OrderPlaced);
        assert_eq!(placed_event.id, format!("{}-1", order.id));
        assert_eq!(placed_event.sequence, 1);

        let reserved = order.reserve_all_at("BER-1", Utc::now()).unwrap();
        let event = order_event(Some(&order), Some(&reserved)).unwrap();
        assert_eq!(event.event_type, EventType::OrderReserved);
        assert_eq!(event.data.previous_status, Some(OrderStatus::Pending));
        assert_eq!(event.sequence, 2);

        assert!(order_event(Some(&reserved), Some(&reserved)).is_none());
        assert!(order_event(Some(&reserved), None).is_none());

        let fulfilling = reserved
            .authorized_for_test(Utc::now())
            .start_fulfillment("BER-1", Utc::now())
            .unwrap();
        let picked = fulfilling.pick(1, "picker", Utc::now()).unwrap();
        assert_eq!(
            order_event(Some(&reserved), Some(&fulfilling))
                .unwrap()
                .event_type,
            EventType::FulfillmentStarted
        );
        let event = order_event(Some(&fulfilling), Some(&picked)).unwrap();
        assert_eq!(
            (event.event_type, event.data.fulfillment_status),
            (EventType::Picked, Some(FulfillmentStatus::Picked))
        );
    }

    /// Every kind of change, recorded where it is made, and the CloudEvent it becomes.
    #[test]
    fn each_kind_of_change_is_recorded_and_published_as_its_event() {
        use crate::fixtures::{parcel, tracking};
        use crate::ids::IdempotencyKey;
        use crate::order::fulfillment::{CarrierEventKind, CarrierUpdate};
        use crate::order::payments::{
            PaymentEvent, PaymentEventKind, PaymentPolicy, PaymentUpdate,
        };
        use crate::order::returns::policy::ReturnPolicy;
        use crate::request::returns::{ReceiptRequest, ReturnRequest};
        use crate::shipping::ShippingPolicy;
        use chrono::Duration;

        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let catalog = [product("A", 1000, 5)];
        let new_order = || placed(json!([{"sku": "A", "quantity": 2}]), &catalog);
        let psp = |order: &Order, id: &str, kind: PaymentEventKind, refund: Option<&str>| {
            let amount = refund
                .and_then(|r| order.refunds.iter().find(|x| x.refund_id == r))
                .map_or(order.totals.total, |r| r.amount);
            let event = PaymentEvent {
                event_id: id.into(),
                kind,
                amount,
                occurred_at: t,
                psp_reference: Some("pi_1".into()),
                refund_id: refund.map(str::to_owned),
                request_id: None,
                reason: None,
            };
            match order
                .record_payment(&event, &PaymentPolicy::default(), t)
                .unwrap()
            {
                PaymentUpdate::Recorded(next) => *next,
                PaymentUpdate::Duplicate => panic!("a new event"),
            }
        };
        let carrier = |order: &Order, id: &str, kind: CarrierEventKind| match order
            .carrier_event(1, id, kind, None, t, t)
            .unwrap()
        {
            CarrierUpdate::Applied(next) => *next,
            other => panic!("{other:?}"),
        };

        let mut seen: Vec<(Order, Order)> = Vec::new();
        let placed_order = new_order();
        let reserved = placed_order.reserve_all_at("BER-1", t).unwrap();
        seen.push((placed_order.clone(), reserved.clone()));
        seen.push((
            placed_order.clone(),
            placed_order.reject(vec![], t).unwrap(),
        ));
        let declined = psp(&reserved, "e0", PaymentEventKind::AuthorizationFailed, None);
        seen.push((reserved.clone(), declined));
        let authorized = psp(
            &reserved,
            "e1",
            PaymentEventKind::AuthorizationSucceeded,
            None,
        );
        seen.push((reserved.clone(), authorized.clone()));
        let fulfilling = authorized.start_fulfillment("BER-1", t).unwrap();
        seen.push((authorized.clone(), fulfilling.clone()));
        let picked = fulfilling.pick(1, "p", t).unwrap();
        seen.push((fulfilling.clone(), picked.clone()));
        let voided = psp(&picked, "e2", PaymentEventKind::VoidSucceeded, None);
        seen.push((picked.clone(), voided));
        let cancelled = picked
            .cancel("changed my mind".into(), "customer", t)
            .unwrap()
            .order;
        seen.push((picked.clone(), cancelled));
        let packed = picked.pack(1, parcel(), "p", t).unwrap();
        seen.push((picked.clone(), packed.clone()));
        let shipped = packed
            .ship(1, tracking(), packed.shipping.estimate, "p", t)
            .unwrap();
        seen.push((packed.clone(), shipped.clone()));
        let captured = psp(&shipped, "e3", PaymentEventKind::CaptureSucceeded, None);
        seen.push((shipped.clone(), captured.clone()));
        let again = psp(&captured, "e4", PaymentEventKind::CaptureFailed, None);
        seen.push((captured.clone(), again));
        let moving = carrier(&captured, "c1", CarrierEventKind::InTransit);
        seen.push((captured.clone(), moving.clone()));
        let moving_again = carrier(&moving, "c1b", CarrierEventKind::InTransit);
        seen.push((moving.clone(), moving_again));
        let near = carrier(&moving, "c2", CarrierEventKind::OutForDelivery);
        seen.push((moving.clone(), near.clone()));
        let missed = carrier(&near, "c3", CarrierEventKind::DeliveryException);
        seen.push((near.clone(), missed));
        let delivered = carrier(&near, "c4", CarrierEventKind::Delivered);
        seen.push((near.clone(), delivered.clone()));
        let lines = json!({"lines": [{"sku": "A", "quantity": 1, "reason": "NO_LONGER_NEEDED"}]});
        let requested = delivered
            .request_return(
                &ReturnRequest::parse(&lines).unwrap(),
                IdempotencyKey::parse("k1").unwrap(),
                &catalog,
                &ReturnPolicy::default_policy(),
                t + Duration::days(1),
            )
            .unwrap()
            .order;
        seen.push((delivered.clone(), requested.clone()));
        let rma = requested.returns[0].return_id.clone();
        let received = requested
            .receive_return(
                &rma,
                &ReceiptRequest::parse(
                    &json!({"lines": [{"sku": "A", "quantity": 1, "disposition": "RESTOCK"}]}),
                )
                .unwrap(),
                "dock",
                &ReturnPolicy::default_policy(),
                &ShippingPolicy::default_policy(),
                t + Duration::days(2),
            )
            .unwrap()
            .order;
        seen.push((requested.clone(), received.clone()));
        // The same return never arriving: closed after the policy's days.
        let never_came = requested
            .expire_return(&ReturnPolicy::default_policy(), t + Duration::days(40))
            .expect("due")
            .order;
        seen.push((requested.clone(), never_came));
        let refund = received.refunds[0].refund_id.clone();
        let failed = psp(
            &received,
            "e5",
            PaymentEventKind::RefundFailed,
            Some(&refund),
        );
        seen.push((received.clone(), failed.clone()));
        seen.push((
            received.clone(),
            psp(
                &received,
                "e6",
                PaymentEventKind::RefundSucceeded,
                Some(&refund),
            ),
        ));
        let expired = reserved
            .expire(&PaymentPolicy::default(), t + Duration::hours(1))
            .unwrap()
            .order;
        seen.push((reserved.clone(), expired));
        let one_fewer = reserved
            .cancel_units(
                &crate::request::staff::UnitCancelRequest::parse(
                    &json!({"lines": [{"sku": "A", "quantity": 1}], "reason": "one is enough"}),
                )
                .unwrap(),
                "k3",
                "customer",
                |_, _| None,
                t,
            )
            .unwrap()
            .order;
        let event = order_event(Some(&reserved), Some(&one_fewer)).unwrap();
        assert_eq!(
            event.data.unit_cancellation_id.as_deref(),
            Some(format!("{}-CANCEL-1", one_fewer.id).as_str())
        );
        assert_eq!(event.data.note.as_deref(), Some("one is enough"));
        assert_eq!(
            recorded_agrees_with_legacy(Some(&reserved), &one_fewer),
            Ok(true)
        );
        seen.push((reserved.clone(), one_fewer));
        // One unit waits for stock, then arrives.
        let pending = new_order();
        let sku = pending.lines[0].sku.clone();
        let waiting = pending
            .reserve_backordering(
                &crate::routing::Plan::one_location(
                    "BER-1",
                    [(&sku, crate::quantity::Quantity::new(1).unwrap())],
                ),
                &[crate::order::Backordered {
                    sku: sku.clone(),
                    units: 1,
                    location: "BER-1".into(),
                    promised_on: None,
                }],
                t,
            )
            .unwrap();
        assert_eq!(waiting.hold(), Some("AWAITING_PAYMENT"));
        let filled = waiting.fill_backorder(&sku, 1, t).unwrap();
        assert_eq!(
            recorded_agrees_with_legacy(Some(&waiting), &filled),
            Ok(true)
        );
        assert_eq!(filled.backordered(), 0);
        assert_eq!(filled.lines[0].allocations[0].quantity.get(), 2);
        seen.push((waiting.clone(), filled));
        // A delivery is ordered for the unit that waits: its expected date is revised.
        let revised = waiting
            .revise_promise(&sku, chrono::NaiveDate::from_ymd_opt(2026, 12, 20), t)
            .unwrap();
        assert_eq!(
            recorded_agrees_with_legacy(Some(&waiting), &revised),
            Ok(true)
        );
        assert!(
            revised
                .revise_promise(&sku, revised.lines[0].promised_on, t)
                .is_none(),
            "the same promise is no change"
        );
        seen.push((waiting.clone(), revised));
        // A pre-order's release date moved by the business, then released today.
        let pre_order = pending
            .reserve_for_release(
                &crate::routing::Plan::one_location("BER-1", pending.quantities()),
                &[],
                &[(sku.clone(), t.date_naive() + chrono::Duration::days(5))],
                t,
            )
            .unwrap();
        let moved = pre_order
            .follow_release(
                &sku,
                Some(t.date_naive() + chrono::Duration::days(9)),
                t.date_naive(),
                t,
            )
            .unwrap();
        assert_eq!(
            recorded_agrees_with_legacy(Some(&pre_order), &moved),
            Ok(true)
        );
        let released = moved.follow_release(&sku, None, t.date_naive(), t).unwrap();
        assert_eq!(
            recorded_agrees_with_legacy(Some(&moved), &released),
            Ok(true)
        );
        seen.push((pre_order, moved));
        // One that ships what is there: its reserved unit leaves first, the other follows as
        // it arrives, in a parcel of its own.
        let mut partial = waiting.clone();
        partial.shipping.ship_complete = false;
        let partial = partial.authorized_for_test(t);
        let started = partial.start_fulfillment("BER-1", t).unwrap();
        let first_packed = started
            .pick(1, "p", t)
            .unwrap()
            .pack(1, parcel(), "p", t)
            .unwrap();
        let first_left = first_packed
            .ship(1, tracking(), first_packed.shipping.estimate, "p", t)
            .unwrap();
        assert_eq!(first_left.status, OrderStatus::PartiallyShipped);
        let shipped_event = order_event(Some(&first_packed), Some(&first_left)).unwrap();
        let parcel_of = shipped_event.data.parcel.expect("a parcel of two");
        assert_eq!((parcel_of.number, parcel_of.of, parcel_of.units), (1, 2, 1));
        let arrived = first_left.fill_backorder(&sku, 1, t).unwrap();
        let parcelled = arrived.start_fulfillment("BER-1", t).unwrap();
        assert_eq!(parcelled.shipments.len(), 2);
        for (before, after) in [
            (&partial, &started),
            (&first_packed, &first_left),
            (&first_left, &arrived),
            (&arrived, &parcelled),
        ] {
            assert_eq!(recorded_agrees_with_legacy(Some(before), after), Ok(true));
            seen.push((before.clone(), after.clone()));
        }
        // An edit whose new total waits for a new hold: paid, or undone.
        let edit = crate::order::commands::OrderEditRequest {
            shipping_address: None,
            shipping_method: Some(ShippingMethod::Express),
            add_lines: Vec::new(),
            ship_complete: None,
            reason: "faster please".into(),
        };
        let edited = picked
            .edit(
                &edit,
                "k4",
                "admin",
                &ShippingPolicy::default_policy(),
                |_| Some("domestic".into()),
                &[],
                Duration::minutes(30),
                t,
            )
            .unwrap()
            .order;
        seen.push((picked.clone(), edited.clone()));
        let event = PaymentEvent {
            event_id: "e7".into(),
            kind: PaymentEventKind::AuthorizationSucceeded,
            amount: edited.totals.total,
            occurred_at: t,
            psp_reference: Some("pi_2".into()),
            refund_id: None,
            request_id: None,
            reason: None,
        };
        let PaymentUpdate::Recorded(edit_paid) = edited
            .record_payment(&event, &PaymentPolicy::default(), t)
            .unwrap()
        else {
            panic!("a new event")
        };
        seen.push((edited.clone(), *edit_paid));
        let undone = edited
            .expire(&PaymentPolicy::default(), t + Duration::hours(1))
            .unwrap()
            .order;
        seen.push((edited.clone(), undone));
        // Returns decided by staff: a policy that approves nothing at once.
        let mut strict = ReturnPolicy::default_policy();
        strict.auto_approval.reasons.clear();
        let pending = delivered
            .request_return(
                &ReturnRequest::parse(&lines).unwrap(),
                IdempotencyKey::parse("k2").unwrap(),
                &catalog,
                &strict,
                t + Duration::days(1),
            )
            .unwrap()
            .order;
        seen.push((delivered.clone(), pending.clone()));
        let rma = pending.returns[0].return_id.clone();
        for approved in [true, false] {
            let decided = pending
                .decide_return(&rma, approved, "staff", None, t)
                .unwrap()
                .order;
            seen.push((pending.clone(), decided));
        }

        let mut kinds = std::collections::BTreeSet::new();
        for (before, after) in &seen {
            let change = after.last_change.as_ref().expect("recorded");
            assert_eq!(change.version, after.version);
            assert_eq!(change.from, Some(before.status));
            let event = order_event(Some(before), Some(after)).expect("one event per version");
            assert_eq!(
                event.event_type,
                event_type_of(&change.event),
                "{:?}",
                change.event
            );
            assert_eq!(event.id, format!("{}-{}", after.id, after.version));
            assert_eq!(event.sequence, after.version);
            assert_eq!(event.data.previous_status, Some(before.status));
            kinds.insert(event.event_type.as_str());
        }
        let placed_event = order_event(None, Some(&placed_order)).unwrap();
        assert_eq!(placed_event.event_type, EventType::OrderPlaced);
        kinds.insert(placed_event.event_type.as_str());
        // Every kind of order change is among them: a new kind needs its case here.
        let every = [
            OrderEvent::Placed,
            OrderEvent::Reserved,
            OrderEvent::Rejected,
            OrderEvent::FulfillmentStarted,
            OrderEvent::Picked,
            OrderEvent::Packed,
            OrderEvent::Shipped,
            OrderEvent::InTransit,
            OrderEvent::OutForDelivery,
            OrderEvent::DeliveryException,
            OrderEvent::Delivered,
            OrderEvent::Cancelled,
            OrderEvent::UnitsCancelled,
            OrderEvent::BackorderFilled,
            OrderEvent::PromiseRevised { sku: sku.clone() },
            OrderEvent::ReleaseMoved { sku: sku.clone() },
            OrderEvent::Edited {
                edit_id: "E".into(),
            },
            OrderEvent::EditPaid {
                edit_id: "E".into(),
            },
            OrderEvent::EditUndone {
                edit_id: "E".into(),
            },
            OrderEvent::Expired,
            OrderEvent::ReturnRequested {
                return_id: rma.clone(),
            },
            OrderEvent::ReturnApproved {
                return_id: rma.clone(),
            },
            OrderEvent::ReturnRejected {
                return_id: rma.clone(),
            },
            OrderEvent::ReturnReceived {
                return_id: rma.clone(),
            },
            OrderEvent::ReturnExpired {
                return_id: rma.clone(),
            },
            OrderEvent::PaymentAuthorized,
            OrderEvent::PaymentCaptured,
            OrderEvent::PaymentFailed,
            OrderEvent::PaymentVoided,
            OrderEvent::PaymentUpdated,
            OrderEvent::RefundIssued {
                refund_id: refund.clone(),
            },
            OrderEvent::RefundFailed {
                refund_id: refund.clone(),
            },
            OrderEvent::Updated,
        ];
        for event in &every {
            // An exhaustive match: a variant added to OrderEvent fails to compile here until
            // it is listed above and walked.
            match event {
                OrderEvent::Placed
                | OrderEvent::Reserved
                | OrderEvent::Rejected
                | OrderEvent::FulfillmentStarted
                | OrderEvent::Picked
                | OrderEvent::Packed
                | OrderEvent::Shipped
                | OrderEvent::InTransit
                | OrderEvent::OutForDelivery
                | OrderEvent::DeliveryException
                | OrderEvent::Delivered
                | OrderEvent::Cancelled
                | OrderEvent::UnitsCancelled
                | OrderEvent::BackorderFilled
                | OrderEvent::PromiseRevised { .. }
                | OrderEvent::ReleaseMoved { .. }
                | OrderEvent::Edited { .. }
                | OrderEvent::EditPaid { .. }
                | OrderEvent::EditUndone { .. }
                | OrderEvent::Expired
                | OrderEvent::ReturnRequested { .. }
                | OrderEvent::ReturnApproved { .. }
                | OrderEvent::ReturnRejected { .. }
                | OrderEvent::ReturnReceived { .. }
                | OrderEvent::ReturnExpired { .. }
                | OrderEvent::PaymentAuthorized
                | OrderEvent::PaymentCaptured
                | OrderEvent::PaymentFailed
                | OrderEvent::PaymentVoided
                | OrderEvent::PaymentUpdated
                | OrderEvent::RefundIssued { .. }
                | OrderEvent::RefundFailed { .. }
                | OrderEvent::Updated => {}
            }
            assert!(
                kinds.contains(event_type_of(event).as_str()),
                "{event:?} is not walked"
            );
        }
        // What the return's receipt asked of the PSP, and the shipment's capture, announced
        // once each, by the change that asked.
        assert_eq!(refund_events(Some(&requested), Some(&received)).len(), 1);
        assert!(refund_events(Some(&received), Some(&failed)).is_empty());
        let capture = psp_request_events(Some(&packed), Some(&shipped));
        assert_eq!(capture.len(), 1);
        assert_eq!(capture[0].event_type, EventType::CaptureRequested);
        assert_eq!(
            capture[0].data.request.psp_reference.as_deref(),
            Some("pi_1")
        );
    }

    #[test]
    fn events_carry_no_personal_data() {
        let order = placed(
            json!([{"sku": "A", "quantity": 1}]),
            &[product("A", 100, 1)],
        );
        let json = serde_json::to_string(&order_event(None, Some(&order)).unwrap()).unwrap();
        assert!(!json.contains("ada@example.com"));
        assert!(!json.contains("Main St"));
        assert!(json.contains("\"type\":\"oms.order.placed\""));
    }

    #[test]
    fn a_reorder_point_is_announced_once_per_crossing_on_the_write_s_own_day() {
        let mut full = product("A", 100, 20);
        full.replenishment = crate::replenishment::Replenishment {
            lead_time_days: 10,
            safety_stock: 2,
        };
        let day = crate::replenishment::day_of(full.updated_at);
        // 30 units in the window: a unit a day, so the reorder point is 10 + 2 = 12.
        full.demand.record("BER-1", day, 30);
        let with = |p: &Product, available: u32, version: u64| {
            let mut next = Product {
                version,
                ..p.clone()
            };
            next.stock
                .set("BER-1", crate::stock::StockLevel::new(available).unwrap());
            next
        };
        let above = with(&full, 13, 2);
        let at = with(&full, 12, 3);
        let below = with(&full, 5, 4);
        assert!(reorder_event(Some(&full), Some(&above)).is_none());
        let event = reorder_event(Some(&above), Some(&at)).unwrap();
        assert_eq!(event.event_type, EventType::ReorderPointReached);
        assert_eq!(event.id, "A-3-reorder");
        assert_eq!(
            (
                event.data.reorder_point,
                event.data.demand_30_days,
                event.data.available
            ),
            (12, 30, 12)
        );
        assert!(
            reorder_event(Some(&at), Some(&below)).is_none(),
            "once per crossing"
        );
        // Demand that left the window by the time of the write is not read.
        let mut stale = above.clone();
        stale.updated_at += chrono::Duration::days(30);
        stale
            .stock
            .set("BER-1", crate::stock::StockLevel::new(0).unwrap());
        let later = reorder_event(Some(&above), Some(&stale)).unwrap();
        assert_eq!(later.data.reorder_point, 2, "the safety stock alone");
        let inactive = Product {
            active: false,
            ..at.clone()
        };
        assert!(reorder_event(Some(&above), Some(&inactive)).is_none());
    }

    #[test]
    fn low_stock_is_raised_once_per_crossing() {
        let full = product("A", 100, 3);
        let reserve = |p: &Product, n: u32| {
            let mut stock = p.stock.clone();
            let here = "BER-1";
            let level = stock.at(here).reserve(Quantity::new(n).unwrap()).unwrap();
            stock.set(here, level);
            stock
        };
        let low = Product {
            stock: reserve(&full, 2),
            version: 2,
            ..full.clone()
        };
        let lower = Product {
            stock: reserve(&low, 1),
            version: 3,
            ..full.clone()
        };
        assert!(stock_event(None, Some(&full)).is_none());
        let event = stock_event(Some(&full), Some(&low)).unwrap();
        assert_eq!(
            (event.event_type, event.data.available),
            (EventType::LowStock, 1)
        );
        assert!(stock_event(Some(&low), Some(&lower)).is_none());
    }
}
